#!/usr/bin/env python3
"""Sends random and mutated Kafka request frames at a broker.

    broker_fuzz.py --host H --port P --fixtures DIR --cases N [--seed S]

Seeds are the captured real-client frames under DIR (Tests/Fixtures/kafka-requests). Each case opens a
connection, sends one or more frames (random bytes; fixture frames with bit flips, extreme integers,
truncation, insertion, splices, lying size prefixes; valid frames with random API keys and versions),
reads whatever comes back for a moment, and closes. One seed decides the whole run and is printed, so a
failing run can be replayed. Prints one JSON line with counts; connect failures mean the broker died.
"""
import argparse
import json
import os
import random
import select
import socket
import struct
import time


def load_fixtures(directory):
    frames = []
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            if name.endswith(".bin"):
                with open(os.path.join(root, name), "rb") as handle:
                    frames.append(handle.read())
    return frames


EXTREMES16 = [0, 1, 0x7FFF, 0x8000, 0xFFFF]
EXTREMES32 = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x00010000]


def reframe(body):
    return struct.pack(">i", len(body)) + body


def mutate(rng, frame):
    body = bytearray(frame[4:])
    for _ in range(rng.randint(1, 4)):
        if not body:
            body += bytes([rng.randrange(256)])
        choice = rng.randrange(8)
        position = rng.randrange(len(body))
        if choice == 0:  # bit flip
            body[position] ^= 1 << rng.randrange(8)
        elif choice == 1:  # extreme int16
            value = struct.pack(">H", rng.choice(EXTREMES16))
            body[position:position + 2] = value
        elif choice == 2:  # extreme int32 (lengths, counts)
            value = struct.pack(">I", rng.choice(EXTREMES32))
            body[position:position + 4] = value
        elif choice == 3:  # truncate
            del body[position:]
        elif choice == 4:  # insert random bytes
            body[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice == 5:  # delete a run
            del body[position:position + rng.randint(1, 16)]
        elif choice == 6:  # random byte
            body[position] = rng.randrange(256)
        else:  # overwrite api key / version in the header
            if len(body) >= 4:
                body[0:4] = struct.pack(">hh", rng.choice([-1, 0, 1, 3, 18, 19, 32, 60, 1000]), rng.choice([-1, 0, 3, 4, 7, 12, 127, 32767]))
    roll = rng.random()
    if roll < 0.75:
        return reframe(bytes(body))  # well framed, damaged body
    if roll < 0.85:
        return struct.pack(">i", rng.choice([len(body) + rng.randint(1, 100), max(1, len(body) - rng.randint(1, 8))])) + bytes(body)
    return struct.pack(">I", rng.choice(EXTREMES32)) + bytes(body)  # lying size prefix


def random_frame(rng):
    length = rng.randint(0, 600)
    payload = bytes(rng.randrange(256) for _ in range(length))
    if rng.random() < 0.5:
        return reframe(payload)
    return payload


def splice(rng, first, second):
    cut_a = rng.randrange(4, max(5, len(first)))
    cut_b = rng.randrange(4, max(5, len(second)))
    return reframe(first[4:cut_a] + second[cut_b:])


def one_case(rng, fixtures):
    kind = rng.random()
    if kind < 0.15:
        return [random_frame(rng)], "random"
    if kind < 0.25:
        return [splice(rng, rng.choice(fixtures), rng.choice(fixtures))], "splice"
    if kind < 0.35:
        frames = [rng.choice(fixtures) if rng.random() < 0.5 else mutate(rng, rng.choice(fixtures)) for _ in range(rng.randint(2, 8))]
        return frames, "pipeline"
    return [mutate(rng, rng.choice(fixtures))], "mutate"


def run_case(host, port, frames, wait):
    outcome = {"connected": False, "response_bytes": 0, "closed_by_broker": False}
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            outcome["connected"] = True
            sock.setblocking(False)
            data = b"".join(frames)
            try:
                view = memoryview(data)
                deadline = time.time() + 1.0
                while view and time.time() < deadline:
                    _, writable, _ = select.select([], [sock], [], 0.05)
                    if writable:
                        sent = sock.send(view)
                        view = view[sent:]
            except (BrokenPipeError, ConnectionResetError):
                outcome["closed_by_broker"] = True
                return outcome
            deadline = time.time() + wait
            while time.time() < deadline:
                readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.time()))
                if not readable:
                    break
                try:
                    chunk = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    outcome["closed_by_broker"] = True
                    break
                if not chunk:
                    outcome["closed_by_broker"] = True
                    break
                outcome["response_bytes"] += len(chunk)
    except OSError:
        pass
    return outcome


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--wait", type=float, default=0.05)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    fixtures = load_fixtures(args.fixtures)
    counts = {"cases": 0, "seed": seed, "connect_failures": 0, "responses": 0, "closed_by_broker": 0, "kinds": {}}
    for _ in range(args.cases):
        frames, kind = one_case(rng, fixtures)
        outcome = run_case(args.host, args.port, frames, args.wait)
        counts["cases"] += 1
        counts["kinds"][kind] = counts["kinds"].get(kind, 0) + 1
        if not outcome["connected"]:
            counts["connect_failures"] += 1
            if counts["connect_failures"] >= 5:
                break
            time.sleep(0.2)
        if outcome["response_bytes"]:
            counts["responses"] += 1
        if outcome["closed_by_broker"]:
            counts["closed_by_broker"] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
