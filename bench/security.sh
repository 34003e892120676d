#!/usr/bin/env bash
# Authentication and TLS cost, against mosquitto in the same run: sequential connects per second and QoS 1 messages
# per second (one publisher, one subscriber, 64 B) through the plain and the TLS listener, every client logging in
# with a user name and password from a mosquitto_passwd file, paho-mqtt 3.1.1 clients (bench/security.py).
#
# Usage: bench/security.sh [--runs 3] [--connects 500] [--messages 20000]
# mosquitto runs with set_tcp_nodelay (as our node does): without it its CONNACK after a TLS handshake waits for the
# client's delayed ACK (Nagle), about 50 ms per TLS connect here (20/s against about 180/s with it).
# Needs: a Release build (dotnet build Cluster.sln -c Release), mosquitto, openssl, python3-paho-mqtt.
# Both brokers run on 127.0.0.1 only, on ports free at start; each is stopped by its pid at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=3 CONNECTS=500 MESSAGES=20000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --connects) CONNECTS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
EDGE_DLL="$ROOT/src/Edge/bin/Release/net10.0/Broker.Edge.dll"
[[ -f "$EDGE_DLL" ]] || { echo "build first: dotnet build Cluster.sln -c Release" >&2; exit 1; }
WORK="$(mktemp -d /tmp/broker-bench-security.XXXXXX)"
OURS_PID="" MOSQ_PID=""
stop() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { stop "$OURS_PID"; stop "$MOSQ_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on $1 after 60 s" >&2; exit 1
}

# A CA and a certificate for 127.0.0.1 signed by it; one password file for both brokers.
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
chmod 644 server.key
mosquitto_passwd -c -b passwords bench bench-pw

OURS_PLAIN="$(freeport)" OURS_TLS="$(freeport)" MOSQ_PLAIN="$(freeport)" MOSQ_TLS="$(freeport)"
printf '%s\n' "user root" "per_listener_settings false" "allow_anonymous false" "password_file $WORK/passwords" \
  "persistence false" "max_queued_messages 1000000" "set_tcp_nodelay true" "log_dest stdout" "log_type error" "log_type warning" "connection_messages false" \
  "listener $MOSQ_PLAIN 127.0.0.1" "listener $MOSQ_TLS 127.0.0.1" "cafile $WORK/ca.pem" "certfile $WORK/server.pem" \
  "keyfile $WORK/server.key" "tls_version tlsv1.2" > mosquitto.conf
mosquitto -c mosquitto.conf > mosquitto.log 2>&1 &
MOSQ_PID=$!
(
  cd "$ROOT"
  export BROKER_CONFIG="$ROOT/cluster.hocon" BROKER_HOST=127.0.0.1 BROKER_DATA_DIR="$WORK/data" BROKER_MQTT_PORT="$OURS_PLAIN" \
    BROKER_MQTT_TLS_PORT="$OURS_TLS" BROKER_AMQP_PORT=0 BROKER_AMQP_TLS_PORT=0 BROKER_ADMIN_PORT=0 BROKER_ADMIN_TLS_PORT=0 BROKER_WS_PORT=0 BROKER_WSS_PORT=0 \
    BROKER_REMOTE_PORT=0 BROKER_SEED_NODES= BROKER_MQTT_PASSWORD_FILE="$WORK/passwords" \
    BROKER_TLS_CERT_FILE="$WORK/server.pem" BROKER_TLS_KEY_FILE="$WORK/server.key"
  exec dotnet "$EDGE_DLL"
) > ours.log 2>&1 &
OURS_PID=$!
for port in "$MOSQ_PLAIN" "$MOSQ_TLS" "$OURS_PLAIN" "$OURS_TLS"; do wait_port "$port"; done
echo "ours: pid $OURS_PID (plain $OURS_PLAIN, TLS $OURS_TLS); mosquitto: pid $MOSQ_PID (plain $MOSQ_PLAIN, TLS $MOSQ_TLS); $WORK" >&2

run() {
  /usr/bin/python3 "$ROOT/bench/security.py" --port "$2" --tls-port "$3" --cafile "$WORK/ca.pem" --user bench --password bench-pw \
    --connects "$CONNECTS" --messages "$MESSAGES" | sed "s/^/{\"broker\":\"$1\",\"result\":/; s/\$/}/" | tee -a results.jsonl >&2
}
# One untimed round each (JIT, first sessions), then alternate which broker goes first.
/usr/bin/python3 "$ROOT/bench/security.py" --port "$OURS_PLAIN" --tls-port "$OURS_TLS" --cafile ca.pem --user bench --password bench-pw \
  --connects 200 --messages 5000 > /dev/null
for r in $(seq 1 "$RUNS"); do
  if (( r % 2 )); then run ours "$OURS_PLAIN" "$OURS_TLS"; run mosquitto "$MOSQ_PLAIN" "$MOSQ_TLS"
  else run mosquitto "$MOSQ_PLAIN" "$MOSQ_TLS"; run ours "$OURS_PLAIN" "$OURS_TLS"; fi
done
/usr/bin/python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(broker, listener, metric):
    return statistics.median(r["result"][listener][metric] for r in rows if r["broker"] == broker)
print(f"{'metric':<28}{'ours':>12}{'mosquitto':>12}{'ratio':>8}   (medians of {len(rows)//2} runs)")
for listener in ("plain", "tls"):
    for metric in ("connects_per_s", "qos1_msgs_per_s"):
        o, m = med("ours", listener, metric), med("mosquitto", listener, metric)
        print(f"{listener + ' ' + metric:<28}{o:>12,.0f}{m:>12,.0f}{o / m:>8.2f}")
for broker in ("ours", "mosquitto"):
    print(f"{broker}: TLS/plain connects {med(broker, 'tls', 'connects_per_s') / med(broker, 'plain', 'connects_per_s'):.2f}, "
          f"messages {med(broker, 'tls', 'qos1_msgs_per_s') / med(broker, 'plain', 'qos1_msgs_per_s'):.2f}")
PY
