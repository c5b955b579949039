#!/usr/bin/env python3
"""A Kafka client over TLS and/or SASL/PLAIN against an outpost broker.

    broker_security.py roundtrip --bootstrap HOST:PORT --topic T --count N --client confluent|kafka-python
                       --security-protocol SSL|SASL_SSL|SASL_PLAINTEXT [--ca FILE] [--cert FILE --key FILE]
                       [--username U --password P]
    broker_security.py refused   (same options): expects the connection to be refused

roundtrip: an idempotent producer (acks=all, gzip) sends N indexed messages, then a group consumer (its own
coordinator connection, which authenticates too) reads the topic from the beginning and commits. Prints
{"delivered", "consumed", "distinct", "duplicates", "missing", "errors"}.
refused: connects and asks for metadata; prints {"refused": true/false, "errors": [...]} with what the client
reported. Exit 3 when the client library is missing.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["roundtrip", "refused"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="secure")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    parser.add_argument("--security-protocol", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser.parse_args()


def confluent_config(args):
    config = {"bootstrap.servers": args.bootstrap, "security.protocol": args.security_protocol}
    if args.ca:
        config["ssl.ca.location"] = args.ca
    if args.cert:
        config["ssl.certificate.location"] = args.cert
        config["ssl.key.location"] = args.key
    if args.username is not None:
        config.update({"sasl.mechanisms": "PLAIN", "sasl.username": args.username, "sasl.password": args.password})
    return config


def kafka_python_config(args):
    config = {"bootstrap_servers": args.bootstrap, "security_protocol": args.security_protocol}
    if args.ca:
        config["ssl_cafile"] = args.ca
    if args.cert:
        config["ssl_certfile"] = args.cert
        config["ssl_keyfile"] = args.key
    if args.username is not None:
        config.update({"sasl_mechanism": "PLAIN", "sasl_plain_username": args.username, "sasl_plain_password": args.password})
    return config


def value_of(index):
    return ("%d:%s" % (index, "s" * (index % 40))).encode()


def roundtrip_confluent(args, errors):
    from confluent_kafka import Consumer, Producer
    producer = Producer(dict(confluent_config(args), **{
        "enable.idempotence": True, "acks": "all", "compression.type": "gzip", "linger.ms": 5,
        "message.timeout.ms": int(args.timeout * 1000), "error_cb": lambda error: errors.append("producer: %s" % error),
    }))
    delivered = set()

    def report(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            delivered.add(int(message.value().split(b":")[0]))

    for index in range(args.count):
        producer.produce(args.topic, key=b"device-%d" % (index % 8), value=value_of(index), on_delivery=report)
        producer.poll(0)
    producer.flush(args.timeout)

    consumer = Consumer(dict(confluent_config(args), **{
        "group.id": "secure-%d" % os.getpid(), "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "error_cb": lambda error: errors.append("consumer: %s" % error),
    }))
    consumer.subscribe([args.topic])
    seen = []
    deadline = time.time() + args.timeout
    while len(set(seen)) < args.count and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        seen.append(int(message.value().split(b":")[0]))
    if seen:
        consumer.commit(asynchronous=False)
    consumer.close()
    return delivered, seen


def roundtrip_kafka_python(args, errors):
    from kafka import KafkaConsumer, KafkaProducer
    producer = KafkaProducer(acks="all", enable_idempotence=True, compression_type="gzip", linger_ms=5, **kafka_python_config(args))
    futures = [(index, producer.send(args.topic, key=b"device-%d" % (index % 8), value=value_of(index))) for index in range(args.count)]
    delivered = set()
    for index, future in futures:
        try:
            future.get(timeout=args.timeout)
            delivered.add(index)
        except Exception as error:  # noqa: BLE001 - any failure is reported
            errors.append("%d: %r" % (index, error))
    producer.close()

    consumer = KafkaConsumer(
        args.topic, group_id="secure-%d" % os.getpid(), auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=int(args.timeout * 1000), **kafka_python_config(args))
    seen = []
    deadline = time.time() + args.timeout
    while len(set(seen)) < args.count and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(int(record.value.split(b":")[0]) for record in records)
    if seen:
        consumer.commit()
    consumer.close()
    return delivered, seen


def refused_confluent(args, errors):
    from confluent_kafka import KafkaException, Producer
    producer = Producer(dict(confluent_config(args), error_cb=lambda error: errors.append(str(error))))
    try:
        producer.list_topics(timeout=5)
        return False
    except KafkaException as error:
        errors.append(str(error))
        producer.poll(1)  # serves error_cb: the reason (e.g. _AUTHENTICATION) comes that way
        return True


def refused_kafka_python(args, errors):
    from kafka import KafkaProducer
    try:
        producer = KafkaProducer(request_timeout_ms=5000, max_block_ms=5000, bootstrap_timeout_ms=5000, **kafka_python_config(args))
        producer.partitions_for(args.topic)
        producer.close()
        return False
    except Exception as error:  # noqa: BLE001 - the refusal is what is being tested
        errors.append("%s: %s" % (type(error).__name__, error))
        return True


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
    errors = []
    if args.mode == "refused":
        refused = (refused_confluent if args.client == "confluent" else refused_kafka_python)(args, errors)
        print(json.dumps({"refused": refused, "errors": errors[:10]}))
        return
    delivered, seen = (roundtrip_confluent if args.client == "confluent" else roundtrip_kafka_python)(args, errors)
    distinct = set(seen)
    print(json.dumps({
        "delivered": len(delivered), "consumed": len(seen), "distinct": len(distinct),
        "duplicates": len(seen) - len(distinct), "missing": len(set(range(args.count)) - distinct), "errors": errors[:20],
    }))


if __name__ == "__main__":
    main()
