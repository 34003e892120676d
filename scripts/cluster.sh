#!/usr/bin/env bash
# A local cluster of broker nodes, each its own process on 127.0.0.1.
#
#   scripts/cluster.sh up [N]    build (Release), start nodes node-1..node-N (default 3), wait until each is ready
#   scripts/cluster.sh down      SIGTERM every node, SIGKILL what is still running after CLUSTER_STOP_TIMEOUT
#   scripts/cluster.sh status    which nodes run, and their /ready answer
#   scripts/cluster.sh kill I    SIGKILL node I (a crash)
#   scripts/cluster.sh start I   start node I again; it joins the nodes that are running
#
# Node i listens on MQTT CLUSTER_MQTT_BASE+i-1 (1883), AMQP CLUSTER_AMQP_BASE+i-1 (5672), admin HTTP
# CLUSTER_ADMIN_BASE+i-1 (8082) and Akka remoting CLUSTER_REMOTE_BASE+i-1 (2552). node-1 seeds the cluster.
# Storage: one SQLite file, <CLUSTER_DIR>/broker.db, shared by all nodes; or PostgreSQL when
# BROKER_DB_PROVIDER=postgresql and BROKER_DB_CONNECTION are set. Pid files and logs (node-I.pid,
# node-I.log) are in CLUSTER_DIR (./data/cluster). `up` records the layout in CLUSTER_DIR/cluster.env;
# the other commands use that record.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CLUSTER_DIR:-$root/data/cluster}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
dll="$root/src/Edge/bin/Release/net10.0/Broker.Edge.dll"
layout="$dir/cluster.env"
ready_timeout="${CLUSTER_READY_TIMEOUT:-120}"
stop_timeout="${CLUSTER_STOP_TIMEOUT:-30}"

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 up [N] | down | status | kill I | start I"; }

load_layout() {
  [ -f "$layout" ] || die "no cluster in $dir (run: $0 up)"
  # shellcheck source=/dev/null
  . "$layout"
}

check_index() {
  [[ "${1:-}" =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$size" ] || die "node index must be 1..$size"
}

mqtt_port() { echo $((mqtt_base + $1 - 1)); }
amqp_port() { echo $((amqp_base + $1 - 1)); }
admin_port() { echo $((admin_base + $1 - 1)); }
remote_port() { echo $((remote_base + $1 - 1)); }
# MQTT over WebSocket: off unless CLUSTER_WS_BASE gives node I the port base + I - 1 (8083 would collide with node-2's admin port).
ws_port() { if [ "${ws_base:-0}" -eq 0 ]; then echo 0; else echo $((ws_base + $1 - 1)); fi; }
pid_file() { echo "$dir/node-$1.pid"; }
log_file() { echo "$dir/node-$1.log"; }

# The pid of node I if that process is still this node (a pid can be reused once the node is gone).
running_pid() {
  local f pid
  f="$(pid_file "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "Broker.Edge.dll" || return 1
  echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

# A process that has exited but is not yet reaped (a zombie child of this script) counts as gone.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$state" != Z* ]]
}

check_ports() {
  local port
  for port in "$(mqtt_port "$1")" "$(admin_port "$1")" "$(remote_port "$1")"; do
    if port_in_use "$port"; then
      echo "cluster.sh: node-$1: port $port on $host is in use" >&2
      return 1
    fi
  done
}

declare -A offsets

# Starts node I with the given seed nodes; the log is appended to, so it keeps earlier runs.
launch() {
  local i="$1" seeds="$2" log
  log="$(log_file "$i")"
  echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting node-$i (seeds $seeds)" >>"$log"
  # Readiness is judged on what this run writes, not on earlier runs in the same log.
  offsets[$i]="$(stat -c %s "$log")"
  (
    cd "$root"
    export BROKER_NODE_NAME="node-$i" BROKER_HOST="$host" BROKER_MQTT_PORT="$(mqtt_port "$i")" \
      BROKER_AMQP_PORT="$(amqp_port "$i")" BROKER_ADMIN_PORT="$(admin_port "$i")" \
      BROKER_REMOTE_PORT="$(remote_port "$i")" BROKER_WS_PORT="$(ws_port "$i")" BROKER_WSS_PORT=0 BROKER_SEED_NODES="$seeds" BROKER_DATA_DIR="$data_dir" \
      BROKER_DB_PROVIDER="$db_provider" BROKER_DB_CONNECTION="$db_connection"
    exec nohup dotnet "$dll" </dev/null >>"$log" 2>&1
  ) &
  echo "$!" >"$(pid_file "$i")"
}

# Waits until node I logs "ready"; on failure prints the end of its log.
wait_ready() {
  local i="$1" deadline="$2" log pid
  log="$(log_file "$i")"
  pid="$(cat "$(pid_file "$i")")"
  while true; do
    if tail -c +"$((offsets[$i] + 1))" "$log" | grep -q "node node-$i ready"; then
      return 0
    fi
    if ! alive "$pid"; then
      echo "cluster.sh: node-$i (pid $pid) exited before it was ready; end of $log:" >&2
      tail -n 30 "$log" >&2
      rm -f "$(pid_file "$i")"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "cluster.sh: node-$i (pid $pid) not ready after ${ready_timeout}s; end of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
}

# SIGTERM the given nodes, wait, then SIGKILL survivors; all by the pids in their pid files.
stop_nodes() {
  local i pid pids=() deadline
  for i in "$@"; do
    if pid="$(running_pid "$i")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$i:$pid")
    else
      rm -f "$(pid_file "$i")"
    fi
  done
  deadline=$(($(date +%s) + stop_timeout))
  for entry in "${pids[@]}"; do
    i="${entry%%:*}"
    pid="${entry#*:}"
    while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
      sleep 0.5
    done
    if alive "$pid"; then
      echo "node-$i (pid $pid) still running after ${stop_timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    else
      echo "node-$i (pid $pid) stopped"
    fi
    rm -f "$(pid_file "$i")"
  done
}

table() {
  local i pid
  printf '%-8s %-8s %-20s %-20s %s\n' node pid MQTT AMQP admin
  for i in $(seq 1 "$size"); do
    pid="$(running_pid "$i" || echo -)"
    printf '%-8s %-8s %-20s %-20s %s\n' "node-$i" "$pid" "$host:$(mqtt_port "$i")" "$host:$(amqp_port "$i")" "http://$host:$(admin_port "$i")"
  done
  echo "logs: $dir/node-I.log   storage: $db_provider"
}

up() {
  local n="${1:-3}" i started=() t0 deadline
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || usage
  if [ -f "$layout" ]; then
    (load_layout; for i in $(seq 1 "$size"); do running_pid "$i" >/dev/null && exit 1; done; exit 0) \
      || die "a cluster is already running in $dir (run: $0 down)"
  fi
  size="$n"
  host="${CLUSTER_HOST:-127.0.0.1}"
  mqtt_base="${CLUSTER_MQTT_BASE:-1883}"
  amqp_base="${CLUSTER_AMQP_BASE:-5672}"
  admin_base="${CLUSTER_ADMIN_BASE:-8082}"
  remote_base="${CLUSTER_REMOTE_BASE:-2552}"
  ws_base="${CLUSTER_WS_BASE:-0}"
  db_provider="${BROKER_DB_PROVIDER:-sqlite}"
  db_connection="${BROKER_DB_CONNECTION:-}"
  data_dir="${BROKER_DATA_DIR:-$dir}"
  if [ "$db_provider" = postgresql ] || [ "$db_provider" = postgres ]; then
    [ -n "$db_connection" ] || die "BROKER_DB_PROVIDER=$db_provider needs BROKER_DB_CONNECTION (see scripts/postgres.sh)"
  fi

  for i in $(seq 1 "$n"); do check_ports "$i" || exit 1; done

  echo "building src/Edge (Release)"
  dotnet build "$root/src/Edge" -c Release --nologo -v quiet >"$dir/build.log" 2>&1 \
    || { tail -n 30 "$dir/build.log" >&2; die "build failed (full output in $dir/build.log)"; }

  (umask 077; {
    for v in size host mqtt_base amqp_base admin_base remote_base ws_base db_provider db_connection data_dir; do
      printf '%s=%q\n' "$v" "${!v}"
    done
  } >"$layout")
  for i in $(seq 1 "$n"); do : >"$(log_file "$i")"; done

  t0=$(date +%s)
  deadline=$((t0 + ready_timeout))
  seed="$host:$(remote_port 1)"
  # node-1 forms the cluster (it is its own seed); the others join it, all at once.
  launch 1 "$seed"
  started+=(1)
  wait_ready 1 "$deadline" || { stop_nodes "${started[@]}" >&2; exit 1; }
  echo "node-1 ready after $(($(date +%s) - t0))s"
  for i in $(seq 2 "$n"); do
    launch "$i" "$seed"
    started+=("$i")
  done
  for i in $(seq 2 "$n"); do
    wait_ready "$i" "$deadline" || { stop_nodes "${started[@]}" >&2; exit 1; }
  done
  echo "$n nodes ready after $(($(date +%s) - t0))s"
  table
}

start_one() {
  local i="$1" j seeds=()
  load_layout
  check_index "$i"
  pid="$(running_pid "$i")" && die "node-$i already runs (pid $pid)"
  [ -f "$dll" ] || die "$dll is missing (run: $0 up)"
  check_ports "$i" || exit 1
  # Join the nodes that run; with none running, this node forms a new cluster by itself.
  for j in $(seq 1 "$size"); do
    [ "$j" != "$i" ] && running_pid "$j" >/dev/null && seeds+=("$host:$(remote_port "$j")")
  done
  [ ${#seeds[@]} -gt 0 ] || seeds=("$host:$(remote_port "$i")")
  local t0
  t0=$(date +%s)
  launch "$i" "$(IFS=,; echo "${seeds[*]}")"
  wait_ready "$i" $((t0 + ready_timeout)) || exit 1
  echo "node-$i ready after $(($(date +%s) - t0))s"
  table
}

case "${1:-}" in
  up)
    [ $# -le 2 ] || usage
    up "${2:-3}"
    ;;
  down)
    [ $# -eq 1 ] || usage
    [ -f "$layout" ] || { echo "no cluster in $dir"; exit 0; }
    load_layout
    stop_nodes $(seq 1 "$size")
    ;;
  status)
    [ $# -eq 1 ] || usage
    load_layout
    table
    for i in $(seq 1 "$size"); do
      if running_pid "$i" >/dev/null; then
        echo "node-$i: running, /ready: $(curl -s -m 3 "http://$host:$(admin_port "$i")/ready" || echo 'no answer')"
      else
        echo "node-$i: stopped"
      fi
    done
    ;;
  kill)
    [ $# -eq 2 ] || usage
    load_layout
    check_index "$2"
    pid="$(running_pid "$2")" || die "node-$2 does not run"
    kill -KILL "$pid"
    rm -f "$(pid_file "$2")"
    echo "node-$2 (pid $pid) killed"
    ;;
  start)
    [ $# -eq 2 ] || usage
    start_one "$2"
    ;;
  *)
    usage
    ;;
esac
