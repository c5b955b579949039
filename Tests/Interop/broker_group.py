#!/usr/bin/env python3
"""Two consumers in one group against an outpost broker (confluent-kafka).

    broker_group.py split    --bootstrap HOST:PORT --topic T --group G --count N
    broker_group.py resume   --bootstrap HOST:PORT --topic T --group G --count N --previous P
    broker_group.py crash    --bootstrap HOST:PORT --topic T --group G --count N

split: produces N messages, starts two consumers in group G, waits until they split the partitions
(disjoint, together all of them), consumes about half, commits; then the second one leaves (close sends
LeaveGroup) and the first must take over every partition and consume the rest. Commits synchronously.
resume (after a broker restart): produces N more, starts one consumer in G, and reports what it reads: it
must resume at the committed offsets, i.e. read exactly the N new messages, none of the P earlier ones.
crash: like split, but the second member runs in a child process that is killed with SIGKILL (no
LeaveGroup): the first must take over every partition once the dead member's session times out.
Prints one JSON line; exit 3 when confluent-kafka is missing.
"""
import argparse
import json
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["split", "resume", "crash", "member"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--previous", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser.parse_args()


def produce(args, first, count):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all", "compression.type": "gzip"})
    for index in range(first, first + count):
        producer.produce(args.topic, key="k%d" % index, value=str(index))
        producer.poll(0)
    assert producer.flush(30) == 0, "produce did not complete"


class Member:
    def __init__(self, args, name, session_ms=10000):
        from confluent_kafka import Consumer
        self.name = name
        self.assignment = set()
        self.records = []
        self.consumer = Consumer({
            "bootstrap.servers": args.bootstrap, "group.id": args.group, "client.id": name, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": session_ms, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
        })
        self.consumer.subscribe([args.topic], on_assign=self.assigned, on_revoke=self.revoked)

    def assigned(self, consumer, partitions):
        self.assignment = {p.partition for p in partitions}

    def revoked(self, consumer, partitions):
        # Commit what was consumed before giving partitions away (as librdkafka apps do).
        try:
            consumer.commit(asynchronous=False)
        except Exception:  # noqa: BLE001 - nothing consumed yet is fine
            pass
        self.assignment = set()

    def poll(self, timeout=0.1):
        message = self.consumer.poll(timeout)
        if message is not None and not message.error():
            self.records.append((message.partition(), message.offset(), int(message.value())))
            return True
        return False

    def commit(self):
        try:
            self.consumer.commit(asynchronous=False)
        except Exception:  # noqa: BLE001 - "no offset to commit" is fine
            pass


def split(args):
    produce(args, 0, args.count)
    first = Member(args, "member-a")
    second = Member(args, "member-b")
    deadline = time.time() + args.timeout
    split_seen = None
    # Phase 1: both members hold disjoint, non-empty assignments covering every partition.
    while time.time() < deadline:
        first.poll()
        second.poll()
        if first.assignment and second.assignment and not (first.assignment & second.assignment):
            split_seen = (sorted(first.assignment), sorted(second.assignment))
            if len(first.records) + len(second.records) >= args.count // 2:
                break
    first.commit()
    second.commit()
    # Phase 2: the second member leaves; the first takes over and reads the rest.
    second_consumed = len(second.records)
    second.consumer.close()
    takeover = None
    while time.time() < deadline:
        first.poll()
        if takeover is None and len(first.assignment) >= len((split_seen or ([], []))[0]) + len((split_seen or ([], []))[1]):
            takeover = sorted(first.assignment)
        values = {value for _, _, value in first.records} | {value for _, _, value in second.records}
        if takeover is not None and len(values) >= args.count:
            break
    first.commit()
    first.consumer.close()
    values = [value for _, _, value in first.records + second.records]
    print(json.dumps({
        "split": split_seen, "takeover": takeover, "consumed_by_second": second_consumed,
        "distinct": len(set(values)), "duplicates": len(values) - len(set(values)),
        "missing": len(set(range(args.count)) - set(values)),
    }))


def resume(args):
    from confluent_kafka import Consumer, TopicPartition
    produce(args, args.previous, args.count)
    probe = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group})
    metadata = probe.list_topics(args.topic, timeout=10)
    partitions = sorted(metadata.topics[args.topic].partitions)
    committed = probe.committed([TopicPartition(args.topic, p) for p in partitions], timeout=10)
    committed_total = sum(max(tp.offset, 0) for tp in committed)
    probe.close()
    member = Member(args, "member-c")
    deadline = time.time() + args.timeout
    while time.time() < deadline and len(member.records) < args.count:
        member.poll(0.2)
    # A little longer: anything re-delivered from before the restart would show up now.
    quiet_until = time.time() + 1.0
    while time.time() < quiet_until:
        member.poll(0.1)
    member.commit()
    member.consumer.close()
    values = [value for _, _, value in member.records]
    print(json.dumps({
        "committed_before": committed_total, "consumed": len(values),
        "old": sum(1 for value in values if value < args.previous),
        "new_distinct": len({value for value in values if value >= args.previous}),
        "duplicates": len(values) - len(set(values)),
    }))


def member(args):
    """A group member that reports its assignment on stdout and runs until killed."""
    one = Member(args, "member-crash", session_ms=6000)
    reported = None
    while True:
        one.poll(0.1)
        if one.assignment and one.assignment != reported:
            reported = set(one.assignment)
            print("assigned " + ",".join(str(p) for p in sorted(reported)), flush=True)


def crash(args):
    import signal
    import subprocess
    import threading
    produce(args, 0, args.count)
    survivor = Member(args, "member-a", session_ms=6000)
    child = subprocess.Popen(
        [sys.executable, __file__, "member", "--bootstrap", args.bootstrap, "--topic", args.topic, "--group", args.group],
        stdout=subprocess.PIPE, text=True)
    child_assignment = []

    def read_child():
        for line in child.stdout:
            if line.startswith("assigned "):
                child_assignment.append(line.split()[1])

    threading.Thread(target=read_child, daemon=True).start()
    deadline = time.time() + args.timeout
    split_seen = None
    while time.time() < deadline:
        survivor.poll()
        if child_assignment and survivor.assignment and len(survivor.assignment) < 4:
            split_seen = [sorted(survivor.assignment), [int(p) for p in child_assignment[-1].split(",")]]
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = time.time()
    takeover = None
    takeover_seconds = None
    while time.time() < deadline:
        survivor.poll()
        if takeover is None and split_seen and len(survivor.assignment) == len(split_seen[0]) + len(split_seen[1]):
            takeover = sorted(survivor.assignment)
            takeover_seconds = time.time() - killed_at
        if takeover is not None and len({value for _, _, value in survivor.records}) >= args.count:
            break
    survivor.consumer.close()
    values = [value for _, _, value in survivor.records]
    print(json.dumps({
        "split": split_seen, "takeover": takeover, "takeover_seconds": takeover_seconds,
        "missing": len(set(range(args.count)) - set(values)),
    }))


def main():
    args = parse_args()
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
    {"split": split, "resume": resume, "crash": crash, "member": member}[args.phase](args)


if __name__ == "__main__":
    main()
