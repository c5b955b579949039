#!/usr/bin/env python3
"""Idempotent producer (acks=all, gzip) against an outpost broker, then a full read-back.

    broker_produce.py --bootstrap HOST:PORT --topic T --count N --client confluent|kafka-python
                      [--progress-file PATH --progress-at K]

Every message carries its index; keys spread them over the partitions. After producing, every partition
is read from the beginning and the script checks that each index arrived exactly once and that each key's
messages are in order. With --progress-file, the file is created once K messages are acknowledged (the
test then kills and restarts the broker while production continues). Prints one JSON line; exit 3 when the
client library is missing.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    parser.add_argument("--progress-file")
    parser.add_argument("--progress-at", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args()


def key_of(index):
    return "device-%02d" % (index % 16)


def value_of(index):
    return "%d:%s" % (index, "x" * (index % 50))


def produce_confluent(args, delivered, errors, progress):
    from confluent_kafka import Producer
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all", "compression.type": "gzip",
        "linger.ms": 5, "batch.num.messages": 200, "message.timeout.ms": int(args.timeout * 1000),
        "max.in.flight.requests.per.connection": 5,
    })

    def report(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            delivered[int(message.value().split(b":")[0])] = (message.partition(), message.offset())
            progress()

    for index in range(args.count):
        while True:
            try:
                producer.produce(args.topic, key=key_of(index), value=value_of(index), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if index % 100 == 99:
            time.sleep(0.002)  # spread production so a restart lands mid-stream
    remaining = producer.flush(args.timeout)
    if remaining:
        errors.append("%d messages not delivered before the timeout" % remaining)


def produce_kafka_python(args, delivered, errors, progress):
    from kafka import KafkaProducer
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True, compression_type="gzip", linger_ms=5,
        retries=2147483647, delivery_timeout_ms=int(args.timeout * 1000), request_timeout_ms=30000)
    futures = []
    for index in range(args.count):
        futures.append((index, producer.send(args.topic, key=key_of(index).encode(), value=value_of(index).encode())))
    for index, future in futures:
        try:
            metadata = future.get(timeout=args.timeout)
            delivered[index] = (metadata.partition, metadata.offset)
            progress()
        except Exception as error:  # noqa: BLE001 - any failure is reported
            errors.append("%d: %r" % (index, error))
    producer.close()


def read_back_confluent(args, partitions):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "read-back-%d" % os.getpid(), "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "enable.partition.eof": True,
    })
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])
    records = []
    at_end = set()
    deadline = time.time() + args.timeout
    while len(at_end) < len(partitions) and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == -191:  # _PARTITION_EOF
                at_end.add(message.partition())
            continue
        at_end.discard(message.partition())
        records.append((message.partition(), message.offset(), message.key().decode(), message.value().decode()))
    consumer.close()
    return records


def main():
    args = parse_args()
    try:
        if args.client == "confluent":
            import confluent_kafka  # noqa: F401
        else:
            import kafka  # noqa: F401
    except ImportError as error:
        print(error, file=sys.stderr)
        sys.exit(3)

    delivered = {}
    errors = []
    state = {"signalled": False}

    def progress():
        if args.progress_file and not state["signalled"] and len(delivered) >= args.progress_at:
            state["signalled"] = True
            with open(args.progress_file, "w") as handle:
                handle.write(str(len(delivered)))

    started = time.time()
    if args.client == "confluent":
        produce_confluent(args, delivered, errors, progress)
    else:
        produce_kafka_python(args, delivered, errors, progress)
    produce_seconds = time.time() - started

    partitions = sorted({partition for partition, _ in delivered.values()}) or [0]
    records = read_back_confluent(args, partitions)
    seen = {}
    for partition, offset, key, value in records:
        index = int(value.split(":")[0])
        seen.setdefault(index, []).append((partition, offset))
    duplicates = sum(len(places) - 1 for places in seen.values() if len(places) > 1)
    missing = [index for index in range(args.count) if index not in seen]
    out_of_order = 0
    last_by_key = {}
    for partition, offset, key, value in sorted(records):
        index = int(value.split(":")[0])
        if key in last_by_key and index <= last_by_key[key]:
            out_of_order += 1
        last_by_key[key] = index
    mismatched = sum(1 for index, place in delivered.items() if seen.get(index, [None])[0] != place)
    print(json.dumps({
        "delivered": len(delivered), "errors": errors[:20], "consumed": len(records), "duplicates": duplicates,
        "missing": len(missing), "out_of_order": out_of_order, "offset_mismatches": mismatched,
        "partitions": len(partitions), "produce_seconds": round(produce_seconds, 3),
    }))


if __name__ == "__main__":
    main()
