#!/usr/bin/env bash
# Installs the Debian packages the tests run as users would: mosquitto_passwd (package mosquitto) and
# mosquitto_pub/mosquitto_sub (mosquitto-clients), curl for the admin API, paho (python3-paho-mqtt) over WebSocket, the Prometheus parser (python3-prometheus-client), and Debian's chromium with its chromedriver for the dashboard's browser tests (nothing downloads a browser). Idempotent; needs root or sudo only when something is missing.
set -euo pipefail

missing=()
command -v mosquitto_passwd >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v curl >/dev/null 2>&1 || missing+=(curl)
/usr/bin/python3 -c 'import paho.mqtt' >/dev/null 2>&1 || missing+=(python3-paho-mqtt)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing+=(python3-prometheus-client)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ "${#missing[@]}" -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 || { echo "test-tools.sh: install ${missing[*]} (apt-get is not available)" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "test-tools.sh: need root (or sudo) to install ${missing[*]}" >&2; exit 1
  fi
}
echo "test-tools.sh: installing ${missing[*]}" >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
# Only its tools are used: the tests start no mosquitto broker, and none listens on their ports (free ones, picked at run time).
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
