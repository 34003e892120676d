#!/usr/bin/env bash
# The throughput points as users run their clients, against mosquitto and RabbitMQ in the same run (each run of each
# scenario against one broker then the other; medians of --runs):
#   MQTT: MQTT 3.1.1 clients, 64 publishes in flight per publisher (QoS 1: unacknowledged PUBLISHes), each message
#         acknowledged by the subscriber's client as it arrives, publishers paused while more than 10,000 messages are
#         undelivered; QoS 0 and 1, 1→1 64 B and 1 KiB, fan-in 4→1, fan-out 1→4, latency at 1,000 msg/s.
#   AMQP: a basic.ack per message with prefetch 1,000 (manual-ack flows), publishers at most 10,000 messages ahead of
#         the deliveries; transient auto-ack and manual ack, persistent with confirms, 1→1 and 2→2, latency.
# Usage: bench/users.sh [--runs 3] [--out DIR] [--mqtt-only|--amqp-only] [--no-build]
#        [--messages N] [--messages-qos1 N] [--amqp-messages N] [--amqp-persistent-messages N]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
OUT=""
MQTT=1
AMQP=1
BUILD=()
MESSAGES=100000
MESSAGES_QOS1=50000
AMQP_MESSAGES=100000
AMQP_PERSISTENT=50000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --mqtt-only) AMQP=0; shift ;;
    --amqp-only) MQTT=0; shift ;;
    --no-build) BUILD=(--no-build); shift ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --messages-qos1) MESSAGES_QOS1="$2"; shift 2 ;;
    --amqp-messages) AMQP_MESSAGES="$2"; shift 2 ;;
    --amqp-persistent-messages) AMQP_PERSISTENT="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/broker-bench-users.XXXXXX)"
mkdir -p "$OUT"

if [[ $MQTT == 1 ]]; then
  bench/run.sh --runs "$RUNS" --out "$OUT/mqtt" ${BUILD[@]+"${BUILD[@]}"} --messages "$MESSAGES" --messages-qos1 "$MESSAGES_QOS1" \
    --scenario qos0-64,qos0-1k,qos1-64,qos1-1k,fanin,fanout,latency -- --protocol 3.1.1 --window 64 --backlog 10000
  BUILD=(--no-build)
fi
if [[ $AMQP == 1 ]]; then
  bench/run.sh --amqp --runs "$RUNS" --out "$OUT/amqp" ${BUILD[@]+"${BUILD[@]}"} --messages "$AMQP_MESSAGES" \
    --messages-persistent "$AMQP_PERSISTENT" \
    --scenario amqp-transient-autoack-1to1,amqp-transient-autoack-2to2,amqp-transient-manualack-1to1,amqp-transient-manualack-2to2,amqp-persistent-confirms-1to1,amqp-persistent-confirms-2to2,amqp-latency \
    -- --prefetch 1000 --ack-every 1 --backlog 10000
fi
echo "results: $OUT/mqtt/results.md $OUT/amqp/results.md" >&2
