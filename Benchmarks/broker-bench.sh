#!/usr/bin/env bash
# Broker benchmarks for docs/BENCHMARKS.md, with real Kafka clients against a release build:
#   produce  kcat -P (librdkafka): 100-byte records, gzip, idempotent, acks=all        → MB/s, records/s
#   fetch    kcat -C -o beginning -e: the same records read back, page cache dropped   → MB/s, records/s
#   disk     dd conv=fdatasync write and a dropped-cache read, in the same run         → the ratios' denominators
#   latency  confluent-kafka at a fixed rate, acks=all, no linger                       → p50/p99/p99.9 ms
# Each run starts a fresh broker; the summary is the median of RUNS runs.
#
#   Benchmarks/broker-bench.sh [RUNS]        env: RECORDS=2000000 RATE=1000 SECONDS=20 BENCH_DIR=/tmp SCRATCH=.build
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
RECORDS=${RECORDS:-2000000}
RATE=${RATE:-1000}
SECONDS_AT_RATE=${SECONDS:-20}
SCRATCH=${SCRATCH:-.build}
KCAT=$(command -v kcat)

swift build -c release --scratch-path "$SCRATCH" --product outpost >&2
BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/outpost
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/outpost-broker-bench.XXXXXX")
RESULTS="$WORK/results.jsonl"
BROKER_PID=""
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then kill -TERM "$BROKER_PID"; wait "$BROKER_PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 Benchmarks/broker/bench.py records --out "$WORK/records.txt" --count "$RECORDS" >&2

for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS" >&2
  DATA="$WORK/data-$run"
  # The 1-minute load average before the run: these figures are only comparable on an otherwise idle machine.
  LOAD=$(cut -d' ' -f1 /proc/loadavg)
  python3 Benchmarks/broker/bench.py disk --dir "$WORK" --mib 1024 | sed "s/^{/{\"run\": $run, \"kind\": \"disk\", \"load1\": $LOAD, /" >> "$RESULTS"

  "$BIN" broker --data-dir "$DATA" --listen 127.0.0.1:0 --metrics off --log-level warning \
    --topic bench:3 --topic latency:1 > "$WORK/ready-$run" 2> "$WORK/broker-$run.log" &
  BROKER_PID=$!
  for _ in $(seq 1 100); do grep -q "ready" "$WORK/ready-$run" 2>/dev/null && break; sleep 0.1; done
  PORT=$(sed -n 's/.*kafka=\([0-9]*\).*/\1/p' "$WORK/ready-$run")
  [ -n "$PORT" ] || { echo "broker did not start: $(cat "$WORK/broker-$run.log")" >&2; exit 1; }

  # Broker CPU seconds per phase (utime + stime), to tell a client-bound figure from a broker-bound one.
  cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$BROKER_PID/stat"; }
  BEFORE=$(cpu)
  python3 Benchmarks/broker/bench.py produce --kcat "$KCAT" --bootstrap "127.0.0.1:$PORT" --topic bench \
    --input "$WORK/records.txt" --count "$RECORDS" > "$WORK/produce.json"
  AFTER=$(cpu)
  STORED=$(du -sb "$DATA"/topics/bench-* | awk '{ sum += $1 } END { print sum }')
  sed "s/^{/{\"run\": $run, \"kind\": \"produce\", \"stored_bytes\": $STORED, \"broker_cpu_s\": $(awk -v a="$AFTER" -v b="$BEFORE" 'BEGIN { printf "%.3f", a - b }'), /" "$WORK/produce.json" >> "$RESULTS"
  BEFORE=$(cpu)
  python3 Benchmarks/broker/bench.py fetch --kcat "$KCAT" --bootstrap "127.0.0.1:$PORT" --topic bench \
    --count "$RECORDS" > "$WORK/fetch.json"
  AFTER=$(cpu)
  sed "s/^{/{\"run\": $run, \"kind\": \"fetch\", \"broker_cpu_s\": $(awk -v a="$AFTER" -v b="$BEFORE" 'BEGIN { printf "%.3f", a - b }'), /" "$WORK/fetch.json" >> "$RESULTS"
  python3 Benchmarks/broker/bench.py latency --bootstrap "127.0.0.1:$PORT" --topic latency \
    --rate "$RATE" --seconds "$SECONDS_AT_RATE" | sed "s/^{/{\"run\": $run, \"kind\": \"latency\", /" >> "$RESULTS"

  kill -TERM "$BROKER_PID"; wait "$BROKER_PID"; BROKER_PID=""
  rm -rf "$DATA"
done

cat "$RESULTS" >&2
python3 - "$RESULTS" "$RECORDS" "$RATE" "$RUNS" <<'PY'
import json, statistics, sys
path, records, rate, runs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(line) for line in open(path)]
def median(kind, key):
    return statistics.median(row[key] for row in rows if row["kind"] == kind)
disk_w, disk_r = median("disk", "write_mb_s"), median("disk", "read_mb_s")
prod_mb, prod_rec = median("produce", "mb_s"), median("produce", "records_s")
stored_mb = statistics.median(row["stored_bytes"] / 1e6 / row["seconds"] for row in rows if row["kind"] == "produce")
ratio = statistics.median(row["stored_bytes"] / (records * 100) for row in rows if row["kind"] == "produce")
fetch_mb, fetch_rec = median("fetch", "mb_s"), median("fetch", "records_s")
def busy(kind):
    return statistics.median(row["broker_cpu_s"] / row["seconds"] * 100 for row in rows if row["kind"] == kind)
print(f"broker benchmarks: median of {runs} runs, {records} records of 100 bytes, gzip (stored/raw {ratio:.2f}), "
      f"load average before the runs {min(r['load1'] for r in rows if r['kind'] == 'disk'):.2f}…{max(r['load1'] for r in rows if r['kind'] == 'disk'):.2f}")
print(f"| measure | value | ratio to disk | broker CPU |")
print(f"| --- | --- | --- | --- |")
print(f"| disk write (dd conv=fdatasync) | {disk_w:.0f} MB/s | | |")
print(f"| disk read (dropped cache) | {disk_r:.0f} MB/s | | |")
print(f"| disk fdatasync of a 4 KiB append | p50 {median('disk','fsync_p50_ms'):.2f} ms, p99 {median('disk','fsync_p99_ms'):.2f} ms | | |")
print(f"| produce, kcat, acks=all, idempotent | {prod_mb:.1f} MB/s, {prod_rec/1e3:.0f}k records/s ({stored_mb:.1f} MB/s stored) | {prod_mb/disk_w:.2f} of write ({stored_mb/disk_w:.3f} stored) | {busy('produce'):.0f}% of a core |")
print(f"| fetch from the beginning, kcat | {fetch_mb:.1f} MB/s, {fetch_rec/1e3:.0f}k records/s | {fetch_mb/disk_r:.2f} of read | {busy('fetch'):.0f}% of a core |")
print(f"| produce latency at {rate:.0f}/s, acks=all | p50 {median('latency','p50_ms'):.2f} ms, p99 {median('latency','p99_ms'):.2f} ms, p99.9 {median('latency','p999_ms'):.2f} ms | | |")
PY
