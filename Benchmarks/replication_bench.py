#!/usr/bin/env python3
"""Replication benchmarks (issue #7): gateway log → `outpost broker` on the same machine, release build.

    python3 Benchmarks/replication_bench.py [--runs 3] [--backlog-bytes 1GiB] [--only drain,live]

drain  With the broker absent, `outpost-load` fills the gateway's log over TCP until the partitions hold
       --backlog-bytes of batches (what the replicator will send: gzip batches as stored). Then the broker
       starts, and the time from its start to the last acknowledgement gives the drain rate in MB/s of
       batch bytes and points/s. This is the replicator's throughput to a local broker with nothing else to
       do; it includes the broker's own start and the first reconnect.
live   The broker is up; `outpost-load` sends as fast as it can over TCP; the replication rate is points
       acknowledged centrally per second from the first byte sent to the moment the lag is zero again —
       ingest and replication sharing the machine.

The reference for the drain is the broker's own produce rate with kcat (Benchmarks/broker-bench.sh)
and the gateway's TCP ingest rate (gateway_bench.py): catch-up must run at ≥ 5x the ingest rate the
gateway is deployed at. Prints a Markdown table; figures are medians of --runs runs.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_bench as gb  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_size(text):
    match = re.fullmatch(r"(\d+)\s*(KiB|MiB|GiB|)", text)
    if not match:
        raise ValueError(f"size {text!r}: expected N, NKiB, NMiB or NGiB")
    return int(match.group(1)) * {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[match.group(2)]


class Broker:
    def __init__(self, port, directory):
        self.port = port
        self.dir = directory
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [gb.OUTPOST, "broker", "--data-dir", self.dir, "--listen", f"127.0.0.1:{self.port}", "--topic", "telemetry:3",
             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=open(self.dir + ".stderr", "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("broker did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def log_bytes(directory):
    total = 0
    for root, _, files in os.walk(directory):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".log"))
    return total


def wait_drained(gateway, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lag = gateway.metric("outpost_gateway_replication_lag_records")
        sent = gateway.metric("outpost_gateway_replication_sent_records_total")
        if sent > 0 and lag == 0:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError("replication did not drain: lag %s" % gateway.metric("outpost_gateway_replication_lag_records"))


def drain(backlog_bytes):
    work = tempfile.mkdtemp(prefix="outpost-repl-bench-")
    port = free_port()
    broker = Broker(port, work + "/broker")
    yaml = (f"log: {{fsync: interval(5ms), segment_bytes: 64MiB, retention_bytes: 64GiB}}\n"
            f"replication: {{brokers: [\"127.0.0.1:{port}\"], central_topic: telemetry, backoff: 100ms, backoff_max: 500ms}}\n")
    gateway = gb.Gateway(yaml, ["--no-mqtt"])
    try:
        data = gateway.dir + "/data/topics"
        while log_bytes(data) < backlog_bytes:
            gb.run_load(["tcp", "--port", gateway.ports["tcp"], "--points", 2_000_000, "--connections", 2])
        points = gateway.committed()
        gb.wait_committed(gateway, points)
        batch_bytes = log_bytes(data)
        start = time.time()
        broker.start()
        end = wait_drained(gateway, timeout=3600)
        seconds = end - start
        return batch_bytes / seconds / 1e6, points / seconds, batch_bytes, points, seconds
    finally:
        gateway.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def live(points):
    work = tempfile.mkdtemp(prefix="outpost-repl-bench-")
    port = free_port()
    broker = Broker(port, work + "/broker")
    broker.start()
    yaml = f"log: {{fsync: interval(5ms)}}\nreplication: {{brokers: [\"127.0.0.1:{port}\"], central_topic: telemetry}}\n"
    gateway = gb.Gateway(yaml, ["--no-mqtt"])
    try:
        start = time.time()
        sent = gb.run_load(["tcp", "--port", gateway.ports["tcp"], "--points", points, "--connections", 2])
        gb.wait_committed(gateway, sent["points"])
        end = wait_drained(gateway, timeout=600)
        replicated = gateway.metric("outpost_gateway_replication_sent_records_total")
        batch_bytes = gateway.metric("outpost_gateway_replication_sent_bytes_total")
        return replicated / (end - start), batch_bytes / (end - start) / 1e6
    finally:
        gateway.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backlog-bytes", default="1GiB")
    parser.add_argument("--live-points", type=int, default=5_000_000)
    parser.add_argument("--only", default="drain,live")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        gb.build()
    only = set(args.only.split(","))
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, median of {args.runs} runs")
    print("| scenario | result |")
    print("|---|---|")
    if "drain" in only:
        results = [drain(parse_size(args.backlog_bytes)) for _ in range(args.runs)]
        mbps = statistics.median(r[0] for r in results)
        pps = statistics.median(r[1] for r in results)
        size = statistics.median(r[2] for r in results)
        points = statistics.median(r[3] for r in results)
        seconds = statistics.median(r[4] for r in results)
        print(f"| drain of a {size / (1 << 30):.2f} GiB backlog ({points:,.0f} points, gzip batches, 3 partitions) to a local broker, from broker start | {mbps:,.1f} MB/s of batch bytes, {pps:,.0f} points/s, {seconds:.1f} s (runs: {', '.join(f'{r[0]:.1f} MB/s' for r in results)}) |")
    if "live" in only:
        results = [live(args.live_points) for _ in range(args.runs)]
        pps = statistics.median(r[0] for r in results)
        mbps = statistics.median(r[1] for r in results)
        print(f"| live: {args.live_points:,} points over TCP as fast as possible, replicated while ingesting, until lag 0 | {pps:,.0f} points/s replicated, {mbps:,.1f} MB/s of batch bytes |")


if __name__ == "__main__":
    sys.exit(main())
