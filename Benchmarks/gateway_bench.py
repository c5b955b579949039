#!/usr/bin/env python3
"""End-to-end gateway benchmarks through real sockets (issue #4), release build.

    python3 Benchmarks/gateway_bench.py [--runs 3] [--only tcp,udp,http,rss,mqtt]

Each scenario starts a fresh `outpost gateway` on loopback ports, drives it with Benchmarks' `outpost-load`
(or mosquitto for MQTT) on the same machine, and reads the gateway's own counters from /metrics:
throughput is points *committed to the durable log* per second, from the first byte sent to the last commit.
Prints a Markdown table; figures are medians of --runs runs.
"""
import argparse
import json
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPOST = os.environ.get("OUTPOST_BIN") or os.path.join(ROOT, ".build", "release", "outpost")
LOAD = os.path.join(ROOT, "Benchmarks", ".build", "release", "outpost-load")


def build():
    subprocess.run(["swift", "build", "-c", "release", "--product", "outpost"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["swift", "build", "-c", "release", "--product", "outpost-load"], cwd=os.path.join(ROOT, "Benchmarks"),
                   check=True, stdout=subprocess.DEVNULL)


class Gateway:
    def __init__(self, yaml="", extra=()):
        self.dir = tempfile.mkdtemp(prefix="outpost-gw-bench-")
        config = os.path.join(self.dir, "gateway.yaml")
        with open(config, "w") as f:
            f.write(yaml)
        args = [OUTPOST, "gateway", "--config", config, "--data-dir", self.dir + "/data", "--tcp", "127.0.0.1:0",
                "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "warning"]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.dir + "/stderr", "w"), text=True)
        ready = self.proc.stdout.readline()
        if not ready.startswith("outpost gateway ready"):
            raise RuntimeError("gateway did not start: " + ready + open(self.dir + "/stderr").read())
        self.ports = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", ready)}

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metrics']}/metrics").read().decode()
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else 0.0

    def committed(self):
        return self.metric("outpost_gateway_points_committed_total")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_committed(gateway, target, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gateway.committed() >= target:
            return time.time()
        time.sleep(0.02)
    raise RuntimeError(f"only {gateway.committed()} of {target} points committed")


def run_load(args):
    out = subprocess.run([LOAD] + [str(a) for a in args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def tcp_ingest(points):
    gateway = Gateway("log: {fsync: interval(5ms)}\n", ["--no-mqtt"])
    try:
        start = time.time()
        sent = run_load(["tcp", "--port", gateway.ports["tcp"], "--points", points, "--connections", 2])
        end = wait_committed(gateway, sent["points"])
        return sent["points"] / (end - start)
    finally:
        gateway.stop()


def http_ingest(points):
    gateway = Gateway("log: {fsync: interval(5ms)}\n", ["--no-mqtt"])
    try:
        start = time.time()
        sent = run_load(["http", "--port", gateway.ports["http"], "--points", points, "--connections", 4, "--lines-per-request", 5000])
        end = time.time()  # every request was answered 204: committed
        return sent["points"] / (end - start)
    finally:
        gateway.stop()


def udp_ingest(rate, seconds):
    gateway = Gateway("log: {fsync: interval(5ms)}\n", ["--no-mqtt"])
    try:
        points = int(rate * seconds)
        sent = run_load(["udp", "--port", gateway.ports["udp"], "--points", points, "--rate", rate, "--lines-per-datagram", 12])
        time.sleep(1.0)
        received = gateway.metric("outpost_gateway_points_received_total{listener=\"udp\"}")
        kernel_drops = gateway.metric("outpost_gateway_udp_kernel_drops")
        committed = gateway.committed()
        drop = 1 - received / sent["points"]
        return sent["points_per_second"], received, committed, drop, kernel_drops
    finally:
        gateway.stop()


def rss_at(rate, seconds):
    gateway = Gateway("log: {fsync: interval(5ms)}\n", ["--no-mqtt"])
    try:
        load = subprocess.Popen([LOAD, "tcp", "--port", str(gateway.ports["tcp"]), "--points", str(int(rate * seconds)),
                                 "--rate", str(rate), "--connections", "2"], stdout=subprocess.PIPE)
        samples = []
        time.sleep(3)  # warm up to steady state
        while load.poll() is None:
            samples.append(gateway.rss_kib())
            time.sleep(0.5)
        return max(samples) if samples else 0, statistics.median(samples) if samples else 0
    finally:
        gateway.stop()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="outpost-mosquitto-bench-")
        self.port = free_port()
        with open(self.dir + "/mosquitto.conf", "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.dir + "/mosquitto.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def publish(port, count):
    # One QoS 1 publisher (libmosquitto through OutpostMQTT), waiting for every PUBACK.
    run_load(["mqtt", "--port", port, "--points", count])


def mqtt_reference(count):
    broker = Mosquitto()
    try:
        subscriber = subprocess.Popen([LOAD, "mqtt-count", "--port", str(broker.port), "--points", str(count)], stdout=subprocess.PIPE, text=True)
        subscriber.stdout.readline()  # subscribed
        time.sleep(0.5)
        start = time.time()
        publish(broker.port, count)
        subscriber.wait(timeout=300)
        return count / (time.time() - start)
    finally:
        broker.stop()


def mqtt_gateway(count):
    broker = Mosquitto()
    gateway = Gateway("log: {fsync: interval(5ms)}\nlisteners:\n  mqtt: {client_id: bench-gateway}\n", ["--mqtt-broker", f"127.0.0.1:{broker.port}"])
    try:
        deadline = time.time() + 15
        while time.time() < deadline and b'"mqtt":"connected"' not in urllib.request.urlopen(f"http://127.0.0.1:{gateway.ports['metrics']}/healthz").read():
            time.sleep(0.05)
        time.sleep(0.5)
        start = time.time()
        publish(broker.port, count)
        end = wait_committed(gateway, count, timeout=300)
        window = puback_window(gateway)
        return count / (end - start), window
    finally:
        gateway.stop()
        broker.stop()


def puback_window(gateway):
    """p50 and p99 of the PUBACK→commit histogram, from its cumulative buckets."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.ports['metrics']}/metrics").read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("outpost_gateway_mqtt_puback_to_commit_seconds_bucket"):
            bound = re.search(r'le="([^"]+)"', line).group(1)
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    def quantile(q):
        for bound, count in buckets:
            if count >= q * total:
                return bound
        return float("nan")
    return quantile(0.5), quantile(0.99)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="tcp,udp,http,rss,mqtt")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        build()
    only = set(args.only.split(","))
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, median of {args.runs} runs")
    print("| scenario | result | target |")
    print("|---|---|---|")
    if "tcp" in only:
        rates = [tcp_ingest(5_000_000) for _ in range(args.runs)]
        print(f"| TCP line protocol → durable log, fsync interval(5ms), 2 connections | {statistics.median(rates):,.0f} points/s (runs: {', '.join(f'{r:,.0f}' for r in rates)}) | ≥ 1,000,000 |")
    if "http" in only:
        rates = [http_ingest(2_000_000) for _ in range(args.runs)]
        print(f"| HTTP /api/v2/write, 5,000-line requests, 4 connections, 204 after commit | {statistics.median(rates):,.0f} points/s | — |")
    if "udp" in only:
        results = [udp_ingest(300_000, 10) for _ in range(args.runs)]
        sent = statistics.median(r[0] for r in results)
        drop = statistics.median(r[3] for r in results)
        kernel = statistics.median(r[4] for r in results)
        print(f"| UDP at 300,000 points/s offered (12 lines/datagram) | sent {sent:,.0f}/s, drops {drop * 100:.2f}% (kernel drop counter: {kernel:.0f}) | ≥ 300,000 with < 1% drops |")
    if "mqtt" in only:
        count = 200_000
        references = [mqtt_reference(count) for _ in range(args.runs)]
        gateways = [mqtt_gateway(count) for _ in range(args.runs)]
        reference = statistics.median(references)
        rate = statistics.median(g[0] for g in gateways)
        p50 = statistics.median(g[1][0] for g in gateways)
        p99 = statistics.median(g[1][1] for g in gateways)
        print(f"| MQTT QoS 1 ({count:,} one-point messages from one libmosquitto publisher) → gateway, committed | {rate:,.0f} msg/s; mosquitto alone to a counting subscriber: {reference:,.0f} msg/s; ratio {rate / reference:.2f}; PUBACK→commit p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms (histogram bucket bounds) | ≥ 0.90 of mosquitto alone |")
    if "rss" in only:
        results = [rss_at(100_000, 20) for _ in range(args.runs)]
        peak = statistics.median(r[0] for r in results)
        median = statistics.median(r[1] for r in results)
        print(f"| gateway RSS at 100,000 points/s steady (TCP) | peak {peak / 1024:.1f} MiB, median {median / 1024:.1f} MiB | ≤ 64 MiB |")


if __name__ == "__main__":
    sys.exit(main())
