#!/usr/bin/env bash
# Benchmarks our broker node against mosquitto on 127.0.0.1 and prints a markdown table.
# Usage: bench/run.sh [--runs 3] [--messages 100000] [--messages-qos1 50000] [--scenario all]
#                     [--clients 2000] [--latency-seconds 10] [--out DIR] [--no-build] [-- extra bench options]
#        bench/run.sh --cluster [--runs 3] [--messages 50000] [--messages-qos1 20000] [--latency-seconds 5]
#                     [--failover-runs 3] [--no-single] [--out DIR] [--no-build] [-- extra bench options]
#        bench/run.sh --amqp [--runs 3] [--messages 100000] [--messages-persistent 50000] [--scenario amqp]
#                     [--clients 1000] [--latency-seconds 10] [--out DIR] [--no-build] [-- extra bench options]
#        bench/run.sh --python [--runs 3] [--messages 20000] [--scenario all] [--out DIR] [--no-build]
#        bench/run.sh --scale [--runs 3] [--clients 2000] [--concurrency 100] [--idle-clients 20000] [--sessions 10000]
#                     [--protocol 5|3.1.1] [--scenario scale] [--warmup-connects 0] [--timeout 600] [--out DIR]
#                     [--no-build] [-- extra bench options]
#   --cluster: a local 3-node cluster (scripts/cluster.sh): cross-node against same-node, a single node for
#   reference, then fail-over runs (SIGKILL of node-3, restart). See docs/benchmarks.md.
#   --amqp: the AMQP 0.9.1 scenarios against our node and a RabbitMQ from Debian, alternately in one run.
#   --python: the clients users run (paho MQTT 3.1.1 and 5, mosquitto_pub/mosquitto_sub, pika) against our node, mosquitto
#   and RabbitMQ, alternately in one run (bench/pyclients.py).
#   --scale: the connection-scale scenarios (connect-seq, connect-conc, session-create, session-resume, memory-20k
#   against both brokers, restart on our node only), fresh brokers for every run; see docs/benchmarks.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=3
MESSAGES=""
MESSAGES_QOS1=""
SCENARIO=""
CLIENTS=""
MESSAGES_PERSISTENT=""
AMQP=0
LATENCY_SECONDS=""
OUT=""
BUILD=1
EXTRA=()
CLUSTER=0
FAILOVER_RUNS=3
SINGLE=1
SCALE=0
PYTHON=0
CONCURRENCY=""
IDLE_CLIENTS=""
SESSIONS=""
PROTOCOL=""
TIMEOUT=""
WARMUP_CONNECTS=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --messages-qos1) MESSAGES_QOS1="$2"; shift 2 ;;
    --scenario) SCENARIO="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --messages-persistent) MESSAGES_PERSISTENT="$2"; shift 2 ;;
    --amqp) AMQP=1; shift ;;
    --latency-seconds) LATENCY_SECONDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --cluster) CLUSTER=1; shift ;;
    --failover-runs) FAILOVER_RUNS="$2"; shift 2 ;;
    --no-single) SINGLE=0; shift ;;
    --scale) SCALE=1; shift ;;
    --python) PYTHON=1; shift ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --idle-clients) IDLE_CLIENTS="$2"; shift 2 ;;
    --sessions) SESSIONS="$2"; shift 2 ;;
    --protocol) PROTOCOL="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --warmup-connects) WARMUP_CONNECTS="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

[[ $((CLUSTER + AMQP + SCALE + PYTHON)) -le 1 ]] || { echo "--cluster, --amqp, --scale and --python do not go together" >&2; exit 2; }
if [[ $PYTHON == 1 ]]; then
  : "${MESSAGES:=20000}" "${SCENARIO:=all}"
  command -v mosquitto >/dev/null || { echo "mosquitto not found: apt-get install -y mosquitto" >&2; exit 1; }
  command -v mosquitto_pub >/dev/null || { echo "mosquitto_pub not found: apt-get install -y mosquitto-clients" >&2; exit 1; }
  /usr/bin/python3 -c 'import paho.mqtt, pika' 2>/dev/null \
    || { echo "paho or pika not found: apt-get install -y python3-paho-mqtt python3-pika" >&2; exit 1; }
  RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
  [[ -x $RABBITMQ_SERVER ]] || { echo "rabbitmq-server not installed: apt-get install -y rabbitmq-server" >&2; exit 1; }
elif [[ $SCALE == 1 ]]; then
  : "${SCENARIO:=scale}" "${CLIENTS:=2000}" "${CONCURRENCY:=100}" "${SESSIONS:=10000}" "${PROTOCOL:=5}" "${TIMEOUT:=600}"
  command -v mosquitto >/dev/null || { echo "mosquitto not found: apt-get install -y mosquitto" >&2; exit 1; }
elif [[ $AMQP == 1 ]]; then
  : "${MESSAGES:=100000}" "${MESSAGES_PERSISTENT:=50000}" "${LATENCY_SECONDS:=10}" "${SCENARIO:=amqp}" "${CLIENTS:=1000}"
  RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
  if [[ ! -x $RABBITMQ_SERVER ]]; then
    # Only the package's files are used: the broker below is started by hand on its own ports, name and epmd.
    echo "rabbitmq-server not installed: apt-get install -y rabbitmq-server" >&2
    apt-get install -y rabbitmq-server >&2 || { echo "could not install rabbitmq-server" >&2; exit 1; }
  fi
elif [[ $CLUSTER == 1 ]]; then
  # Smaller counts than single-node runs: the whole cluster run (three configurations, fail-over) fits in ~15 min.
  : "${MESSAGES:=50000}" "${MESSAGES_QOS1:=20000}" "${LATENCY_SECONDS:=5}" "${SCENARIO:=qos0-64,qos1-64,fanin,fanout,latency}"
else
  : "${MESSAGES:=100000}" "${MESSAGES_QOS1:=50000}" "${LATENCY_SECONDS:=10}" "${SCENARIO:=all}" "${CLIENTS:=2000}"
  command -v mosquitto >/dev/null || { echo "mosquitto not found: apt-get install -y mosquitto" >&2; exit 1; }
fi
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/broker-bench.XXXXXX)"
mkdir -p "$OUT"
echo "results and logs in $OUT" >&2

# 2,000 client sockets per broker plus the bench's own ends; --scale: 20,000 idle connections.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if [[ $SCALE == 1 && -z "$IDLE_CLIENTS" ]]; then
  # The broker and the bench each hold one descriptor per idle connection, plus their own (~1,000 is ample).
  IDLE_CLIENTS=20000
  if [[ "$(ulimit -n)" != unlimited && $(($(ulimit -n) - 1000)) -lt $IDLE_CLIENTS ]]; then
    IDLE_CLIENTS=$(($(ulimit -n) - 1000))
    echo "open files limited to $(ulimit -n) (hard limit $(ulimit -Hn)): memory-20k opens $IDLE_CLIENTS connections" >&2
  fi
fi

if [[ $BUILD == 1 ]]; then
  dotnet build "$ROOT/src/Edge" -c Release -nologo -v q >"$OUT/build-edge.log" 2>&1 || { tail -30 "$OUT/build-edge.log" >&2; exit 1; }
  dotnet build "$ROOT/bench" -c Release -nologo -v q >"$OUT/build-bench.log" 2>&1 || { tail -30 "$OUT/build-bench.log" >&2; exit 1; }
fi
BENCH=(dotnet "$ROOT/bench/bin/Release/net10.0/Broker.Bench.dll")
# EDGE_DLL=... (with --no-build) and EDGE_CONFIG=... measure another build of the node and its cluster.hocon.
EDGE_DLL="${EDGE_DLL:-$ROOT/src/Edge/bin/Release/net10.0/Broker.Edge.dll}"
EDGE_CONFIG="${EDGE_CONFIG:-$ROOT/cluster.hocon}"

OURS_PID=""
OURS_PORT=""
OURS_AMQP_PORT=""
RMQ_PID=""
RMQ_BEAM_PID=""
RMQ_PORT=""
EPMD_PID=""
MOSQ_PID=""
MOSQ_PORT=""
DATA_DIR=""

# Stops a process by pid: SIGTERM, then SIGKILL after 20 s.
# A pid that has exited but was not yet reaped (a zombie) counts as stopped.
running() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }
stop_pid() {
  local pid="$1" name="$2"
  [[ -n "$pid" ]] && running "$pid" || { [[ -z "$pid" ]] || wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    running "$pid" || { wait "$pid" 2>/dev/null || true; echo "$name stopped" >&2; return 0; }
    sleep 0.1
  done
  echo "$name did not stop within 20 s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
RESTART_PID_FILE=""
stop_both() {
  stop_pid "$OURS_PID" "ours"
  if [[ -n "$RESTART_PID_FILE" && -f "$RESTART_PID_FILE" ]]; then
    stop_pid "$(cat "$RESTART_PID_FILE")" "ours (restarted)"
    rm -f "$RESTART_PID_FILE"
  fi
  RESTART_PID_FILE=""
  stop_pid "$MOSQ_PID" "mosquitto"
  stop_rabbitmq
  OURS_PID=""
  MOSQ_PID=""
  [[ -z "$DATA_DIR" ]] || rm -rf "$DATA_DIR"
  DATA_DIR=""
}
CLUSTER_UP=0
cleanup() {
  stop_both
  if [[ $CLUSTER_UP == 1 ]]; then
    "$ROOT/scripts/cluster.sh" down >&2 || true
    CLUSTER_UP=0
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts our node on free ports with a fresh data folder; $1 names its log. With $2 = fixed the ports are chosen
# here (free now) instead of by the node, so that it can be started again on the same ones (OURS_PORTS holds them).
OURS_PORTS=(0 0 0 0)
start_ours() {
  DATA_DIR="$(mktemp -d /tmp/broker-bench-data.XXXXXX)"
  local log="$OUT/ours-$1.log"
  OURS_PORTS=(0 0 0 0)
  if [[ "${2:-}" == fixed ]]; then
    OURS_PORTS=("$("${BENCH[@]}" freeport)" "$("${BENCH[@]}" freeport)" "$("${BENCH[@]}" freeport)" "$("${BENCH[@]}" freeport)")
  fi
  (
    cd "$ROOT"
    export BROKER_CONFIG="$EDGE_CONFIG" BROKER_HOST=127.0.0.1 BROKER_DATA_DIR="$DATA_DIR" \
           BROKER_MQTT_PORT="${OURS_PORTS[0]}" BROKER_AMQP_PORT="${OURS_PORTS[1]}" BROKER_ADMIN_PORT="${OURS_PORTS[2]}" \
           BROKER_REMOTE_PORT="${OURS_PORTS[3]}" BROKER_WS_PORT=0 BROKER_WSS_PORT=0 BROKER_SEED_NODES=
    exec dotnet "$EDGE_DLL"
  ) >"$log" 2>&1 &
  OURS_PID=$!
  OURS_PORT=""
  OURS_AMQP_PORT=""
  for _ in $(seq 1 600); do   # 60 s
    kill -0 "$OURS_PID" 2>/dev/null || { echo "our node exited during start-up:" >&2; tail -30 "$log" >&2; exit 1; }
    [[ -n "$OURS_PORT" ]] || OURS_PORT="$(sed -n 's/.*MQTT listener on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$log" | head -1)"
    [[ -n "$OURS_AMQP_PORT" ]] || OURS_AMQP_PORT="$(sed -n 's/.*AMQP listener on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$log" | head -1)"
    if [[ -n "$OURS_PORT" && -n "$OURS_AMQP_PORT" ]] && grep -q ' ready' "$log"; then break; fi
    sleep 0.1
  done
  grep -q ' ready' "$log" && [[ -n "$OURS_PORT" && -n "$OURS_AMQP_PORT" ]] \
    || { echo "our node not ready within 60 s:" >&2; tail -30 "$log" >&2; exit 1; }
  echo "ours: pid $OURS_PID, MQTT port $OURS_PORT, AMQP port $OURS_AMQP_PORT, log $log" >&2
}

# Starts RabbitMQ by hand (not as a system service) with a fresh folder: its own epmd on a free port, node
# bench@localhost, AMQP on a free port of 127.0.0.1, no plugins; $1 names the folder. RMQ_PID is the
# rabbitmq-server script (SIGTERM stops the broker), RMQ_BEAM_PID the Erlang VM whose RSS is measured.
start_rabbitmq() {
  local dir="$OUT/rabbitmq-$1" epmd_port dist_port
  rm -rf "$dir"
  mkdir -p "$dir"
  epmd_port="$("${BENCH[@]}" freeport)"
  dist_port="$("${BENCH[@]}" freeport)"
  RMQ_PORT="$("${BENCH[@]}" freeport)"
  echo "[]." >"$dir/enabled_plugins"
  printf '%s\n' "loopback_users.guest = true" "log.console = false" "log.file.level = warning" >"$dir/rabbitmq.conf"
  epmd -port "$epmd_port" >"$dir/epmd.log" 2>&1 &
  EPMD_PID=$!
  (
    # HOME holds the Erlang cookie this node creates.
    export HOME="$dir" ERL_EPMD_PORT="$epmd_port" RABBITMQ_NODENAME=bench@localhost \
           RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RMQ_PORT" RABBITMQ_DIST_PORT="$dist_port" \
           RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
           RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    exec "$RABBITMQ_SERVER"
  ) >"$dir/stdout.log" 2>&1 &
  RMQ_PID=$!
  RMQ_BEAM_PID=""
  # The script's other children are short-lived (command substitutions while it reads its environment): wait for
  # the one that has become the VM.
  for _ in $(seq 1 100); do   # 10 s
    kill -0 "$RMQ_PID" 2>/dev/null || { echo "rabbitmq-server exited during start-up:" >&2; tail -30 "$dir/stdout.log" >&2; exit 1; }
    for child in $(ps -o pid= --ppid "$RMQ_PID" || true); do
      [[ "$(cat "/proc/$child/comm" 2>/dev/null)" == beam.smp ]] && RMQ_BEAM_PID="$child"
    done
    [[ -n "$RMQ_BEAM_PID" ]] && break
    sleep 0.1
  done
  [[ -n "$RMQ_BEAM_PID" ]] || { echo "no Erlang VM under rabbitmq-server (pid $RMQ_PID)" >&2; exit 1; }
  "${BENCH[@]}" wait-amqp "$RMQ_PORT" 90 || { echo "RabbitMQ not ready within 90 s:" >&2; tail -30 "$dir/stdout.log" >&2; exit 1; }
  [[ "$(cat "/proc/$RMQ_BEAM_PID/comm" 2>/dev/null)" == beam.smp ]] || { echo "RabbitMQ's VM (pid $RMQ_BEAM_PID) is gone" >&2; exit 1; }
  echo "rabbitmq: pid $RMQ_PID (beam $RMQ_BEAM_PID), port $RMQ_PORT, $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || true), folder $dir" >&2
}

stop_rabbitmq() {
  stop_pid "$RMQ_PID" "rabbitmq-server"
  # The script stops its VM; should the VM outlive it, stop it too (if the pid is still that VM).
  if [[ -n "$RMQ_BEAM_PID" && "$(cat "/proc/$RMQ_BEAM_PID/comm" 2>/dev/null)" == beam.smp ]]; then
    stop_pid "$RMQ_BEAM_PID" "rabbitmq beam"
  fi
  stop_pid "$EPMD_PID" "epmd"
  RMQ_PID=""
  RMQ_BEAM_PID=""
  EPMD_PID=""
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

# Runs the bench against both brokers, each run of each scenario against one then the other (one bench process,
# --also), so drift on a shared machine hits both alike: $1 = scenario ids, $2 = runs, rest = extra bench options.
bench_both() {
  local spec="$1" runs="$2"; shift 2
  local common=(--runs "$runs" --scenario "$spec" --messages "$MESSAGES" --messages-qos1 "$MESSAGES_QOS1"
                --clients "$CLIENTS" --latency-seconds "$LATENCY_SECONDS" --append "$@" ${EXTRA[@]+"${EXTRA[@]}"})
  "${BENCH[@]}" run --host 127.0.0.1 --port "$OURS_PORT" --pid "$OURS_PID" --name ours --json "$OUT/ours.json" \
    --also "mosquitto,$MOSQ_PORT,$MOSQ_PID,$OUT/mosquitto.json" "${common[@]}" 2>&1 | tee -a "$OUT/bench.log" >&2
}

# node-1 starts every shard while it is alone; once the others join, the coordinator moves shards to them, ten
# every 2 s. Messages that reach a shard during its hand-off are dropped by the sharding layer, so measuring starts
# only when no rebalance has started for 6 s (at most 90 s), as the node logs tell.
wait_rebalanced() {
  local logs=("$1"/node-*.log) last=-1 n same=0 t0
  t0=$(date +%s)
  for _ in $(seq 1 180); do
    n="$(cat "${logs[@]}" | grep -c "Starting rebalance" || true)"
    if [[ "$n" == "$last" ]]; then same=$((same + 1)); else same=0; last="$n"; fi
    [[ $same -ge 12 ]] && break
    sleep 0.5
  done
  echo "shards settled after $(($(date +%s) - t0)) s ($last rebalance rounds)" >&2
}

# Cluster mode: the same scenarios with publisher(s) on node-1 and subscriber(s) on node-2 (cross-node) and with
# both on node-1 (same node), alternating per scenario so drift on a shared machine hits both alike; a single node
# before the cluster starts, for reference; then the fail-over runs, each killing node-3 and starting it again.
run_cluster() {
  local ids common id first=1 cdir layout
  ids="$("${BENCH[@]}" list "$SCENARIO" | cut -f1 | grep -vx -e memory -e connect -e failover || true)"
  common=(--runs "$RUNS" --messages "$MESSAGES" --messages-qos1 "$MESSAGES_QOS1" --latency-seconds "$LATENCY_SECONDS" --append)
  rm -f "$OUT"/{cross-node,same-node,single-node,failover}.json "$OUT"/bench-*.log

  if [[ $SINGLE == 1 && -n "$ids" ]]; then
    start_ours single
    "${BENCH[@]}" run --host 127.0.0.1 --port "$OURS_PORT" --pid "$OURS_PID" --name single-node --json "$OUT/single-node.json" \
      --scenario "$(paste -sd, - <<<"$ids")" "${common[@]}" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-single-node.log" >&2
    stop_both
  fi

  # A fresh cluster folder (SQLite database, pid files, node logs) in the output folder unless CLUSTER_DIR is set.
  export CLUSTER_DIR="${CLUSTER_DIR:-$OUT/cluster}"
  cdir="$CLUSTER_DIR"
  layout="$cdir/cluster.env"
  "$ROOT/scripts/cluster.sh" up 3 >&2
  CLUSTER_UP=1
  # shellcheck source=/dev/null
  . "$layout"
  wait_rebalanced "$cdir"
  local m1=$mqtt_base m2=$((mqtt_base + 1)) m3=$((mqtt_base + 2)) a1=$admin_base a3=$((admin_base + 2))
  local pids=()
  for i in 1 2 3; do pids+=("$(cat "$cdir/node-$i.pid")"); done
  echo "cluster: node-1 $host:$m1, node-2 $host:$m2, node-3 $host:$m3 (pids ${pids[*]})" >&2

  for id in $ids; do
    local warm=(--warmup 0)
    [[ $first == 1 ]] && warm=()
    "${BENCH[@]}" run --host "$host" --pub-ports "$m1" --sub-ports "$m2" --name cross-node --json "$OUT/cross-node.json" \
      --scenario "$id" "${common[@]}" "${warm[@]}" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-cross-node.log" >&2
    "${BENCH[@]}" run --host "$host" --port "$m1" --pid "${pids[0]}" --name same-node --json "$OUT/same-node.json" \
      --scenario "$id" "${common[@]}" "${warm[@]}" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-same-node.log" >&2
    first=0
  done

  # One bench invocation per fail-over run: a run whose restart of node-3 failed (the failure is in its results)
  # does not take the following runs with it, they start node-3 again first.
  for r in $(seq 1 "$FAILOVER_RUNS"); do
    local status
    status="$("$ROOT/scripts/cluster.sh" status 2>&1 || true)"
    if ! grep -q "^node-3: running" <<<"$status"; then
      echo "node-3 is not running before fail-over run $r: starting it" >&2
      "$ROOT/scripts/cluster.sh" start 3 >&2 || { echo "node-3 does not start; no further fail-over runs" >&2; break; }
      wait_rebalanced "$cdir"
    fi
    "${BENCH[@]}" run --host "$host" --name failover --json "$OUT/failover.json" --scenario failover --runs 1 --append \
      --warmup 0 --timeout 240 --pub-ports "$m1" --sub-ports "$m2,$m3" --reconnect-port "$m2" --kill-port "$m3" \
      --admin-port "$a1" --kill-pid-file "$cdir/node-3.pid" --kill-node node-3 \
      --restart-cmd "$(printf '%q start 3 >&2' "$ROOT/scripts/cluster.sh")" --restart-admin-port "$a3" \
      ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-failover.log" >&2
  done

  "$ROOT/scripts/cluster.sh" down >&2
  CLUSTER_UP=0
  echo "node logs in $cdir" >&2

  {
    if [[ -f "$OUT/cross-node.json" && -f "$OUT/same-node.json" ]]; then
      local sets=("$OUT/cross-node.json" "$OUT/same-node.json")
      [[ -f "$OUT/single-node.json" ]] && sets+=("$OUT/single-node.json")
      "${BENCH[@]}" report "${sets[@]}"
      echo
    fi
    if [[ -f "$OUT/failover.json" ]]; then
      "${BENCH[@]}" report-failover "$OUT/failover.json"
    fi
  } | tee "$OUT/results.md"
}

# AMQP mode: our node and RabbitMQ started once for every scenario but idle memory, each run of each scenario
# against both in turn (one bench process, --also); then idle memory on a fresh pair per run.
run_amqp() {
  local ids main_ids common
  ids="$("${BENCH[@]}" list "$SCENARIO" | cut -f1 | grep '^amqp-' || true)"
  [[ -n "$ids" ]] || { echo "no AMQP scenario in '$SCENARIO'" >&2; exit 2; }
  main_ids="$(grep -vx amqp-idle-memory <<<"$ids" | paste -sd, - || true)"
  common=(--amqp-messages "$MESSAGES" --amqp-persistent-messages "$MESSAGES_PERSISTENT" --clients "$CLIENTS"
          --latency-seconds "$LATENCY_SECONDS" --append)
  rm -f "$OUT/ours.json" "$OUT/rabbitmq.json" "$OUT/bench-amqp.log"

  if [[ -n "$main_ids" ]]; then
    start_ours amqp
    start_rabbitmq amqp
    # A longer warm-up than the MQTT mode's (200,000 messages of each warm-up scenario). After 20,000 our node and the
    # bench itself were still compiling their AMQP paths to optimized code through the first 200,000 measured messages
    # (about 100,000 msg/s against 250,000-300,000 once compiled), so the first runs of the first scenario measured the
    # JIT, and the bench's own cold start fell on whichever broker ran first (docs/benchmarks.md, "Warm-up").
    "${BENCH[@]}" run --host 127.0.0.1 --port "$OURS_AMQP_PORT" --pid "$OURS_PID" --name ours --json "$OUT/ours.json" \
      --also "rabbitmq,$RMQ_PORT,$RMQ_BEAM_PID,$OUT/rabbitmq.json" --runs "$RUNS" --scenario "$main_ids" --warmup 200000 "${common[@]}" \
      ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-amqp.log" >&2
    stop_both
  fi

  # Idle memory: a freshly started pair for each run, since memory freed by earlier scenarios is reused and hides growth.
  if grep -qx amqp-idle-memory <<<"$ids"; then
    for r in $(seq 1 "$RUNS"); do
      start_ours "amqp-memory-$r"
      start_rabbitmq "amqp-memory-$r"
      "${BENCH[@]}" run --host 127.0.0.1 --port "$OURS_AMQP_PORT" --pid "$OURS_PID" --name ours --json "$OUT/ours.json" \
        --also "rabbitmq,$RMQ_PORT,$RMQ_BEAM_PID,$OUT/rabbitmq.json" --runs 1 --scenario amqp-idle-memory --warmup 0 "${common[@]}" \
        ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-amqp.log" >&2
      stop_both
    done
  fi

  "${BENCH[@]}" report "$OUT/ours.json" "$OUT/rabbitmq.json" | tee "$OUT/results.md"
}

# Runs the bench against one broker with the scale options: $1 = name, $2 = port, $3 = pid, $4 = scenario ids, rest = options.
bench_scale() {
  local name="$1" port="$2" pid="$3" spec="$4"; shift 4
  "${BENCH[@]}" run --host 127.0.0.1 --port "$port" --pid "$pid" --name "$name" --json "$OUT/$name.json" --append --runs 1 \
    --warmup 0 --scenario "$spec" --clients "$CLIENTS" --concurrency "$CONCURRENCY" --protocol "$PROTOCOL" --timeout "$TIMEOUT" \
    --sessions "$SESSIONS" "$@" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee -a "$OUT/bench-$name.log" >&2
}

# Scale mode: every run on a freshly started pair of brokers (a broker's state after one run, its sessions, heap and
# TIME_WAIT sockets, would weigh on the next): the connect and session scenarios, memory-20k on a pair of its own,
# then restart on our node alone (started on fixed ports; the bench stops it with SIGTERM and runs the script written
# here, which starts it again on the same data folder and ports and writes its pid for stop_both).
run_scale() {
  local ids main_ids r launcher
  ids="$("${BENCH[@]}" list "$SCENARIO" | cut -f1)"
  main_ids="$(grep -vx -e memory-20k -e restart <<<"$ids" | grep -E '^(connect-seq|connect-conc|session-create|session-resume|session-resume-rest)$' | paste -sd, - || true)"
  rm -f "$OUT/ours.json" "$OUT/mosquitto.json" "$OUT/bench-ours.log" "$OUT/bench-mosquitto.log"
  for r in $(seq 1 "$RUNS"); do
    if [[ -n "$main_ids" ]]; then
      start_ours "scale-$r"
      start_mosquitto "scale-$r"
      # With --warmup-connects N each broker first takes N untimed clean connects. The default, 0, measures a freshly
      # started node, as a node restarted into a reconnect storm is; a fresh node of ours needs about 10,000 connects
      # before its sequential connect rate settles (docs/benchmarks.md).
      bench_scale ours "$OURS_PORT" "$OURS_PID" "$main_ids" --warmup "$WARMUP_CONNECTS"
      bench_scale mosquitto "$MOSQ_PORT" "$MOSQ_PID" "$main_ids" --warmup "$WARMUP_CONNECTS"
      stop_both
    fi
    if grep -qx memory-20k <<<"$ids"; then
      start_ours "memory-20k-$r"
      start_mosquitto "memory-20k-$r"
      bench_scale ours "$OURS_PORT" "$OURS_PID" memory-20k --clients "$IDLE_CLIENTS"
      bench_scale mosquitto "$MOSQ_PORT" "$MOSQ_PID" memory-20k --clients "$IDLE_CLIENTS"
      stop_both
    fi
    if grep -qx restart <<<"$ids"; then
      start_ours "restart-$r" fixed
      RESTART_PID_FILE="$OUT/ours-restart-$r-after.pid"
      launcher="$OUT/restart-ours-$r.sh"
      rm -f "$RESTART_PID_FILE" "$OUT/ours-restart-$r-after.log"
      {
        echo '#!/usr/bin/env bash'
        echo "# Written by bench/run.sh --scale: starts our node again on the data folder and ports of restart run $r."
        printf 'cd %q
' "$ROOT"
        printf 'export BROKER_CONFIG=%q BROKER_HOST=127.0.0.1 BROKER_DATA_DIR=%q BROKER_MQTT_PORT=%q BROKER_AMQP_PORT=%q BROKER_ADMIN_PORT=%q BROKER_REMOTE_PORT=%q BROKER_WS_PORT=0 BROKER_WSS_PORT=0 BROKER_SEED_NODES=\n' \
          "$ROOT/cluster.hocon" "$DATA_DIR" "${OURS_PORTS[@]}"
        printf 'dotnet %q >%q 2>&1 </dev/null &\n' "$EDGE_DLL" "$OUT/ours-restart-$r-after.log"
        printf 'echo $! >%q\n' "$RESTART_PID_FILE"
      } >"$launcher"
      bench_scale ours "$OURS_PORT" "$OURS_PID" restart --restart-cmd "bash $(printf '%q' "$launcher")" \
        --ready-log "$OUT/ours-restart-$r-after.log"
      stop_both
    fi
  done
  if [[ -f "$OUT/ours.json" && -f "$OUT/mosquitto.json" ]]; then
    "${BENCH[@]}" report "$OUT/ours.json" "$OUT/mosquitto.json" | tee "$OUT/results.md"
  fi
}

if [[ $SCALE == 1 ]]; then
  start=$(date +%s)
  load0="$(cut -d' ' -f1-3 /proc/loadavg)"
  run_scale
  echo "scale bench took $(($(date +%s) - start)) s; load average (1, 5, 15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/results.md" >&2
  exit 0
fi

if [[ $PYTHON == 1 ]]; then
  start=$(date +%s)
  load0="$(cut -d' ' -f1-3 /proc/loadavg)"
  start_ours python
  start_mosquitto python
  start_rabbitmq python
  /usr/bin/python3 "$ROOT/bench/pyclients.py" --mqtt "ours=$OURS_PORT" --mqtt "mosquitto=$MOSQ_PORT" \
    --amqp "ours=$OURS_AMQP_PORT" --amqp "rabbitmq=$RMQ_PORT" --runs "$RUNS" --messages "$MESSAGES" --scenario "$SCENARIO" \
    --out "$OUT/results.md" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee "$OUT/bench-python.log" >&2
  stop_both
  cat "$OUT/results.md"
  echo "python clients bench took $(($(date +%s) - start)) s; load average (1, 5, 15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/results.md" >&2
  exit 0
fi

if [[ $AMQP == 1 ]]; then
  start=$(date +%s)
  load0="$(cut -d' ' -f1-3 /proc/loadavg)"
  run_amqp
  echo "AMQP bench took $(($(date +%s) - start)) s; load average (1, 5, 15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/results.md" >&2
  exit 0
fi

if [[ $CLUSTER == 1 ]]; then
  start=$(date +%s)
  # The machine may be shared: the load averages before and after tell how comparable a run is.
  load0="$(cut -d' ' -f1-3 /proc/loadavg)"
  run_cluster
  echo "cluster bench took $(($(date +%s) - start)) s; load average (1, 5, 15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/results.md" >&2
  exit 0
fi

IDS="$("${BENCH[@]}" list "$SCENARIO" | cut -f1)"
MAIN_IDS="$(grep -vx memory <<<"$IDS" | paste -sd, - || true)"
rm -f "$OUT/ours.json" "$OUT/mosquitto.json" "$OUT/bench.log"

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
