#!/usr/bin/env bash
# Benchmarks our broker node against mosquitto on 127.0.0.1 and prints a markdown table.
# Usage: bench/run.sh [--runs 3] [--messages 100000] [--messages-qos1 50000] [--scenario all]
#                     [--clients 2000] [--latency-seconds 10] [--out DIR] [--no-build] [-- extra bench options]
# See docs/benchmarks.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=3
MESSAGES=100000
MESSAGES_QOS1=50000
SCENARIO=all
CLIENTS=2000
LATENCY_SECONDS=10
OUT=""
BUILD=1
EXTRA=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --messages-qos1) MESSAGES_QOS1="$2"; shift 2 ;;
    --scenario) SCENARIO="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --latency-seconds) LATENCY_SECONDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

command -v mosquitto >/dev/null || { echo "mosquitto not found: apt-get install -y mosquitto" >&2; exit 1; }
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/broker-bench.XXXXXX)"
mkdir -p "$OUT"
echo "results and logs in $OUT" >&2

# 2,000 client sockets per broker plus the bench's own ends.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

if [[ $BUILD == 1 ]]; then
  dotnet build "$ROOT/src/Edge" -c Release -nologo -v q >"$OUT/build-edge.log" 2>&1 || { tail -30 "$OUT/build-edge.log" >&2; exit 1; }
  dotnet build "$ROOT/bench" -c Release -nologo -v q >"$OUT/build-bench.log" 2>&1 || { tail -30 "$OUT/build-bench.log" >&2; exit 1; }
fi
BENCH=(dotnet "$ROOT/bench/bin/Release/net10.0/Broker.Bench.dll")
EDGE_DLL="$ROOT/src/Edge/bin/Release/net10.0/Broker.Edge.dll"

OURS_PID=""
OURS_PORT=""
MOSQ_PID=""
MOSQ_PORT=""
DATA_DIR=""

# Stops a process by pid: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid="$1" name="$2"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; echo "$name stopped" >&2; return 0; }
    sleep 0.1
  done
  echo "$name did not stop within 20 s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_both() {
  stop_pid "$OURS_PID" "ours"
  stop_pid "$MOSQ_PID" "mosquitto"
  OURS_PID=""
  MOSQ_PID=""
  [[ -z "$DATA_DIR" ]] || rm -rf "$DATA_DIR"
  DATA_DIR=""
}
trap stop_both EXIT
trap 'exit 130' INT TERM

# Starts our node on free ports with a fresh data folder; $1 names its log.
start_ours() {
  DATA_DIR="$(mktemp -d /tmp/broker-bench-data.XXXXXX)"
  local log="$OUT/ours-$1.log"
  (
    cd "$ROOT"
    export BROKER_CONFIG="$ROOT/cluster.hocon" BROKER_HOST=127.0.0.1 BROKER_DATA_DIR="$DATA_DIR" \
           BROKER_MQTT_PORT=0 BROKER_ADMIN_PORT=0 BROKER_REMOTE_PORT=0 BROKER_SEED_NODES=
    exec dotnet "$EDGE_DLL"
  ) >"$log" 2>&1 &
  OURS_PID=$!
  OURS_PORT=""
  for _ in $(seq 1 600); do   # 60 s
    kill -0 "$OURS_PID" 2>/dev/null || { echo "our node exited during start-up:" >&2; tail -30 "$log" >&2; exit 1; }
    [[ -n "$OURS_PORT" ]] || OURS_PORT="$(sed -n 's/.*MQTT listener on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$log" | head -1)"
    if [[ -n "$OURS_PORT" ]] && grep -q ' ready' "$log"; then break; fi
    sleep 0.1
  done
  grep -q ' ready' "$log" && [[ -n "$OURS_PORT" ]] || { echo "our node not ready within 60 s:" >&2; tail -30 "$log" >&2; exit 1; }
  echo "ours: pid $OURS_PID, port $OURS_PORT, log $log" >&2
}

# Starts mosquitto on a free port of 127.0.0.1 (no persistence, default queue and in-flight limits); $1 names its files.
start_mosquitto() {
  local log="$OUT/mosquitto-$1.log" conf="$OUT/mosquitto-$1.conf"
  MOSQ_PORT="$("${BENCH[@]}" freeport)"
  printf '%s\n' "listener $MOSQ_PORT 127.0.0.1" "allow_anonymous true" "persistence false" "log_dest stdout" \
    "log_type error" "log_type warning" "log_type notice" "connection_messages false" >"$conf"
  mosquitto -c "$conf" >"$log" 2>&1 &
  MOSQ_PID=$!
  for _ in $(seq 1 100); do   # 10 s
    kill -0 "$MOSQ_PID" 2>/dev/null || { echo "mosquitto exited during start-up:" >&2; cat "$log" >&2; exit 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$MOSQ_PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "mosquitto: pid $MOSQ_PID, port $MOSQ_PORT, $(mosquitto -h 2>/dev/null | head -1 || true), log $log" >&2
}

# Runs the bench against both brokers: $1 = scenario ids, $2 = runs, rest = extra bench options.
bench_both() {
  local spec="$1" runs="$2"; shift 2
  local common=(--runs "$runs" --scenario "$spec" --messages "$MESSAGES" --messages-qos1 "$MESSAGES_QOS1"
                --clients "$CLIENTS" --latency-seconds "$LATENCY_SECONDS" --append "$@" ${EXTRA[@]+"${EXTRA[@]}"})
  "${BENCH[@]}" run --host 127.0.0.1 --port "$OURS_PORT" --pid "$OURS_PID" --name ours --json "$OUT/ours.json" "${common[@]}" \
    2>&1 | tee -a "$OUT/bench-ours.log" >&2
  "${BENCH[@]}" run --host 127.0.0.1 --port "$MOSQ_PORT" --pid "$MOSQ_PID" --name mosquitto --json "$OUT/mosquitto.json" "${common[@]}" \
    2>&1 | tee -a "$OUT/bench-mosquitto.log" >&2
}

IDS="$("${BENCH[@]}" list "$SCENARIO" | cut -f1)"
MAIN_IDS="$(grep -vx memory <<<"$IDS" | paste -sd, - || true)"
rm -f "$OUT/ours.json" "$OUT/mosquitto.json" "$OUT/bench-ours.log" "$OUT/bench-mosquitto.log"

# Every scenario but memory: both brokers started once, run one after the other.
if [[ -n "$MAIN_IDS" ]]; then
  start_ours main
  start_mosquitto main
  bench_both "$MAIN_IDS" "$RUNS"
  stop_both
fi

# Memory: a freshly started pair of brokers for each run, since memory freed by earlier scenarios is reused and hides growth.
if grep -qx memory <<<"$IDS"; then
  for r in $(seq 1 "$RUNS"); do
    start_ours "memory-$r"
    start_mosquitto "memory-$r"
    bench_both memory 1 --warmup 0
    stop_both
  done
fi

"${BENCH[@]}" report "$OUT/ours.json" "$OUT/mosquitto.json" | tee "$OUT/results.md"
