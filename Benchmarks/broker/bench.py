#!/usr/bin/env python3
"""Broker benchmarks with real Kafka clients (librdkafka through kcat and confluent-kafka).

    bench.py disk      --dir DIR [--mib 1024]
    bench.py records   --out FILE --count N           # N lines of exactly 100-byte telemetry records
    bench.py produce   --kcat KCAT --bootstrap B --topic T --input FILE --count N
    bench.py fetch     --kcat KCAT --bootstrap B --topic T --count N --partitions P
    bench.py latency   --bootstrap B --topic T --rate R --seconds S

Each prints one JSON line. Driven by Benchmarks/broker-bench.sh, which starts the broker and takes medians.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def drop_caches():
    """Empties the page cache so reads hit the disk; False when not permitted (not root)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def disk(args):
    path = os.path.join(args.dir, "disk-probe")
    started = time.time()
    run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % args.mib, "conv=fdatasync"])
    write_seconds = time.time() - started
    dropped = drop_caches()
    command = ["dd", "if=" + path, "of=/dev/null", "bs=1M"]
    if not dropped:
        command.append("iflag=direct")  # bypass the cache when it cannot be dropped
    started = time.time()
    run(command)
    read_seconds = time.time() - started
    os.remove(path)
    # Small appends each followed by fdatasync: the floor under an acks=all produce's latency.
    fsyncs = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 4096
    for _ in range(1000):
        os.write(descriptor, block)
        started = time.perf_counter()
        os.fdatasync(descriptor)
        fsyncs.append(time.perf_counter() - started)
    os.close(descriptor)
    os.remove(path)
    fsyncs.sort()
    print(json.dumps({
        "write_mb_s": args.mib * 1.048576 / write_seconds, "read_mb_s": args.mib * 1.048576 / read_seconds,
        "caches_dropped": dropped, "fsync_p50_ms": fsyncs[len(fsyncs) // 2] * 1000, "fsync_p99_ms": fsyncs[int(len(fsyncs) * 0.99)] * 1000,
    }))


def records(args):
    """Line-protocol readings padded to exactly 100 bytes: realistic, so gzip compresses as it would."""
    rng = random.Random(42)
    with open(args.out, "w") as handle:
        for index in range(args.count):
            line = "greenhouse,device=gh-%04d,site=north temperature=%.2f,humidity=%.1f,seq=%di %d" % (
                index % 1000, 15 + rng.random() * 15, 40 + rng.random() * 40, index, 1732300000000000000 + index * 1000000)
            line = (line + " " * 100)[:100] if len(line) < 100 else line[:100]
            handle.write(line + "\n")
    print(json.dumps({"records": args.count, "bytes": args.count * 100}))


def produce(args):
    """kcat -P from a file: idempotent, acks=all, gzip. Timed to the last acknowledgement (kcat exits)."""
    started = time.time()
    run([
        args.kcat, "-b", args.bootstrap, "-P", "-t", args.topic, "-z", "gzip", "-l", args.input,
        "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=20", "-X", "batch.size=1000000",
        "-X", "batch.num.messages=10000", "-X", "queue.buffering.max.messages=1000000", "-X", "queue.buffering.max.kbytes=1048576",
    ])
    seconds = time.time() - started
    print(json.dumps({"seconds": seconds, "records_s": args.count / seconds, "mb_s": args.count * 100 / 1e6 / seconds}))


def fetch(args):
    """kcat -C from the beginning of every partition to the end (-e), output discarded."""
    dropped = drop_caches()
    started = time.time()
    with open(os.devnull, "w") as sink:
        subprocess.run(
            [args.kcat, "-b", args.bootstrap, "-C", "-t", args.topic, "-o", "beginning", "-e", "-q", "-f", "%s\n",
             "-X", "fetch.max.bytes=52428800", "-X", "max.partition.fetch.bytes=10485760", "-X", "fetch.wait.max.ms=100"],
            check=True, stdout=sink)
    seconds = time.time() - started
    print(json.dumps({"seconds": seconds, "records_s": args.count / seconds, "mb_s": args.count * 100 / 1e6 / seconds, "caches_dropped": dropped}))


def latency(args):
    """A steady rate of single records (acks=all, idempotent, no linger): time from produce() to the
    delivery report, i.e. until the broker answered after the fsync."""
    from confluent_kafka import Producer
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all", "compression.type": "gzip",
        "linger.ms": 0, "socket.nagle.disable": True,
    })
    samples = []
    sent = {}
    warmup = int(args.rate * 1)  # the first second: connections and producer id set up

    def report(error, message):
        index = int(message.key())
        started = sent.pop(index)
        if error is None and index >= warmup:
            samples.append(time.perf_counter() - started)

    interval = 1.0 / args.rate
    total = int(args.rate * args.seconds)
    payload = b"x" * 100
    next_send = time.perf_counter()
    for index in range(total + warmup):
        now = time.perf_counter()
        while now < next_send:
            producer.poll(next_send - now)
            now = time.perf_counter()
        sent[index] = time.perf_counter()
        producer.produce(args.topic, key=str(index).encode(), value=payload, on_delivery=report)
        producer.poll(0)
        next_send += interval
    producer.flush(30)
    samples.sort()

    def percentile(p):
        return samples[min(len(samples) - 1, int(p * len(samples)))] * 1000

    print(json.dumps({"samples": len(samples), "p50_ms": percentile(0.50), "p99_ms": percentile(0.99), "p999_ms": percentile(0.999), "max_ms": samples[-1] * 1000}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["disk", "records", "produce", "fetch", "latency"])
    parser.add_argument("--dir")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--out")
    parser.add_argument("--count", type=int, default=2_000_000)
    parser.add_argument("--kcat", default="kcat")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--input")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    {"disk": disk, "records": records, "produce": produce, "fetch": fetch, "latency": latency}[args.mode](args)


if __name__ == "__main__":
    main()
