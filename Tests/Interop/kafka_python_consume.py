#!/usr/bin/env python3
"""Reads a whole topic with kafka-python (an independent Kafka client) and prints what it holds.

    kafka_python_consume.py --bootstrap HOST:PORT --topic T [--timeout S]

Assigns every partition, reads from the beginning to the end offsets found at the start (kafka-python
checks every batch's CRC-32C by default), and prints one JSON line: {"records": [[partition, offset,
key_hex, value_hex, timestamp, [[header_key, header_value_hex], …]], …]} in partition then offset order.
Exit 3 when kafka-python is missing.
"""
import argparse
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        from kafka import KafkaConsumer, TopicPartition
    except ImportError as error:
        print(error, file=sys.stderr)
        sys.exit(3)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", check_crcs=True,
        request_timeout_ms=30000)
    partitions = sorted(consumer.partitions_for_topic(args.topic) or [])
    assigned = [TopicPartition(args.topic, p) for p in partitions]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    ends = consumer.end_offsets(assigned)
    records = []
    deadline = time.time() + args.timeout
    while time.time() < deadline and any(consumer.position(tp) < ends[tp] for tp in assigned):
        for tp, messages in consumer.poll(timeout_ms=500).items():
            for message in messages:
                if message.offset >= ends[tp]:
                    continue
                records.append([
                    message.partition, message.offset,
                    None if message.key is None else message.key.hex(),
                    None if message.value is None else message.value.hex(),
                    message.timestamp,
                    [[key, None if value is None else value.hex()] for key, value in message.headers],
                ])
    consumer.close()
    records.sort(key=lambda r: (r[0], r[1]))
    print(json.dumps({"records": records}))


if __name__ == "__main__":
    main()
