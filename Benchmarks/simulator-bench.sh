#!/usr/bin/env bash
# Simulator benchmarks (issue 5), release build, median of $RUNS runs each:
#   tcp   points/s one `outpost simulate` process sustains over TCP (pinned to one core) into a sink that
#         discards (pinned to the other core); also whether a 1,000,000 points/s schedule is kept.
#   udp   the same over UDP (1,400-byte datagrams), with the sink's received count and kernel drops.
#   mqtt  10,000 devices at 1 point/s each, one MQTT connection per device (QoS 1) against mosquitto, for
#         $MQTT_SECONDS s: connections held, points acknowledged, PUBACK latency, and a counting subscriber.
# The simulator raises its own file-descriptor limit (setrlimit, up to the hard limit; and creates its
# libmosquitto clients without their unused wake-up socket pairs, so it needs one descriptor per
# connection); mosquitto gets `ulimit -n <hard limit>` here.
# Usage: Benchmarks/simulator-bench.sh [tcp] [udp] [mqtt]     (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
MQTT_SECONDS=${MQTT_SECONDS:-30}
SCRATCH=${SCRATCH:-.build-sim}
WHAT=${*:-tcp udp mqtt}
FLEET=Benchmarks/simulator/bench-fleet.yaml
SINK=Benchmarks/simulator/sink.py
WORK=$(mktemp -d /tmp/outpost-simbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

swift build -c release --scratch-path "$SCRATCH" --product outpost >&2
BIN=$SCRATCH/release/outpost
CORES=$(nproc)
SIM_CPU=0
SINK_CPU=$(( CORES > 1 ? 1 : 0 ))

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.0f}")' "$@"; }
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); 
v=d
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print(v)' "$1" "$2"; }

start_sink() {  # mode → sets SINK_PID, SINK_PORT
  rm -f "$WORK/port" "$WORK/sink.json"
  taskset -c $SINK_CPU python3 $SINK "$1" --port-file "$WORK/port" > "$WORK/sink.json" &
  SINK_PID=$!
  for _ in $(seq 100); do [ -f "$WORK/port" ] && break; sleep 0.05; done
  SINK_PORT=$(cat "$WORK/port")
}
stop_sink() {  # the sink prints its counts on SIGTERM; wait for them (this runs in a subshell, which cannot `wait`)
  kill -TERM $SINK_PID
  for _ in $(seq 100); do [ -s "$WORK/sink.json" ] && break; sleep 0.05; done
  cat "$WORK/sink.json"
}

for mode in tcp udp; do
  case " $WHAT " in *" $mode "*) ;; *) continue ;; esac
  rates=()
  echo "== $mode: --rate max for ${SECONDS_PER_RUN}s, simulator on cpu $SIM_CPU, sink on cpu $SINK_CPU"
  for run in $(seq "$RUNS"); do
    start_sink $mode
    out=$(taskset -c $SIM_CPU "$BIN" simulate $FLEET --$mode 127.0.0.1:$SINK_PORT --rate max --duration ${SECONDS_PER_RUN}s --json --quiet)
    sleep 0.5
    sink=$(stop_sink)
    rate=$(field "$out" points_per_s)
    rates+=("$rate")
    echo "run $run: $(printf '%.0f' "$rate") points/s sent=$(field "$out" sent) failed=$(field "$out" failed) sink_lines=$(field "$sink" lines) kernel_drops=$(field "$sink" kernel_drops)"
  done
  echo "$mode median: $(median "${rates[@]}") points/s"
  if [ "$mode" = tcp ]; then
    start_sink tcp
    out=$(taskset -c $SIM_CPU "$BIN" simulate $FLEET --tcp 127.0.0.1:$SINK_PORT --rate 1000000 --duration ${SECONDS_PER_RUN}s --json --quiet)
    sleep 0.5
    sink=$(stop_sink)
    echo "tcp paced at 1,000,000/s: achieved $(printf '%.0f' "$(field "$out" points_per_s)") points/s, behind schedule max $(field "$out" behind_schedule_ms.max) ms, at the end $(field "$out" behind_schedule_ms.final) ms, sink lines $(field "$sink" lines)"
  fi
done

case " $WHAT " in *" mqtt "*)
  echo "== mqtt: 10,000 devices, one connection each, 1 point/s each (QoS 1) for ${MQTT_SECONDS}s"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nlog_dest none\n' "$PORT" > "$WORK/mosquitto.conf"
  # mosquitto needs a descriptor per connection: raise its soft limit to the hard limit (≥ 10,100 needed).
  ( ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec mosquitto -c "$WORK/mosquitto.conf" ) &
  MOSQ_PID=$!
  for _ in $(seq 100); do python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$PORT)))" && break; sleep 0.05; done
  connected=(); acked=()
  for run in $(seq "$RUNS"); do
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'telemetry/#' -q 0 > "$WORK/sub.out" &
    SUB_PID=$!
    sleep 0.5
    out=$("$BIN" simulate $FLEET --protocol mqtt --mqtt 127.0.0.1:$PORT --duration ${MQTT_SECONDS}s --mqtt-threads 2 --json --quiet)
    sleep 1
    kill $SUB_PID; wait $SUB_PID 2>/dev/null || true
    received=$(wc -l < "$WORK/sub.out")
    connected+=("$(field "$out" mqtt_connected)")
    acked+=("$(field "$out" acknowledged)")
    echo "run $run: connections $(field "$out" mqtt_connected)/10000, points $(field "$out" points) at $(printf '%.0f' "$(field "$out" points_per_s)")/s, acknowledged $(field "$out" acknowledged), failed $(field "$out" failed), PUBACK p50 $(field "$out" ack_latency_ms.p50) ms p99 $(field "$out" ack_latency_ms.p99) ms, behind max $(field "$out" behind_schedule_ms.max) ms, subscriber got $received"
  done
  echo "mqtt median: connections held $(median "${connected[@]}"), acknowledged $(median "${acked[@]}") of $((10000 * MQTT_SECONDS))"
  kill -TERM $MOSQ_PID; wait $MOSQ_PID 2>/dev/null || true
  ;;
esac
