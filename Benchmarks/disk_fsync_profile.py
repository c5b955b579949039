#!/usr/bin/env python3
"""How this disk's fdatasync cost grows with the bytes it flushes: the ceiling for any group commit.

    python3 Benchmarks/disk_fsync_profile.py [--dir DIR] [--seconds S] [--runs N]

For k = 1, 2, 4, 8, 16 it writes k batch-sized blocks (62 KB, the log benchmark's batch size) at the end of
a file and fdatasyncs once, for S seconds, and reports MB/s, fdatasyncs/s and the per-round latency. k = 1 is
the log benchmark's bare loop; k = 8 is the best a group commit of 8 appenders could do (no locks, no
waiting to gather the group). A second pass overwrites blocks of a file written and fsynced beforehand,
which spares ext4 the journal commit an append needs (the file size and block map do not change).

Median of N runs per row. Works inside its own subdirectory of DIR (default /tmp) and removes only that.
"""
import argparse
import os
import shutil
import statistics
import time

BLOCK = 62 * 1024


def one_run(path: str, group: int, seconds: float, overwrite: bool) -> tuple[float, float, float, float]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        limit = 1 << 30
        if overwrite:
            zeros = bytes(1 << 20)
            for _ in range(limit >> 20):
                os.write(descriptor, zeros)
            os.fsync(descriptor)
        data = os.urandom(BLOCK)
        position = 0
        rounds = 0
        latencies = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds and position + group * BLOCK < limit:
            round_start = time.perf_counter()
            for _ in range(group):
                os.pwrite(descriptor, data, position)
                position += BLOCK
            os.fdatasync(descriptor)
            rounds += 1
            latencies.append(time.perf_counter() - round_start)
        elapsed = time.perf_counter() - start
        latencies.sort()
        return (position / elapsed / 1e6, rounds / elapsed,
                latencies[len(latencies) // 2] * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6)
    finally:
        os.close(descriptor)
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    scratch = os.path.join(options.dir, f"outpost-fsync-profile-{os.getpid()}")
    os.makedirs(scratch)
    try:
        path = os.path.join(scratch, "blocks.bin")
        print("| file | blocks per fdatasync | MB/s | fdatasyncs/s | p50 µs per round | p99 µs per round | vs k=1 append |")
        print("|---|---|---|---|---|---|---|")
        reference = None
        for overwrite in (False, True):
            for group in (1, 2, 4, 8, 16):
                runs = [one_run(path, group, options.seconds, overwrite) for _ in range(options.runs)]
                rate, rounds, p50, p99 = (statistics.median(values) for values in zip(*runs))
                if reference is None:
                    reference = rate
                label = "overwrite fsynced blocks" if overwrite else "append"
                print(f"| {label} | {group} | {rate:.1f} | {rounds:.0f} | {p50:.0f} | {p99:.0f} | {rate / reference:.2f}x |",
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
