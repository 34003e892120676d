#!/usr/bin/env bash
# Makes a local PostgreSQL usable for the broker and its tests. Idempotent.
#
#   scripts/postgres.sh               install if missing, start the cluster, create role and database,
#                                     print the Npgsql connection string (the only line on stdout)
#   scripts/postgres.sh createdb NAME create database NAME owned by the broker role (if missing), print its connection string
#   scripts/postgres.sh dropdb NAME   drop database NAME (if present)
#
# PG_USER, PG_PASSWORD and PG_DATABASE override the role, its password and the database (all "broker").
# PG_CLUSTER ("15/main" if it exists, else the first cluster pg_lsclusters lists) picks the cluster.
set -euo pipefail

user="${PG_USER:-broker}"
password="${PG_PASSWORD:-broker}"
database="${PG_DATABASE:-broker}"

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    (cd / && "$@")
  elif [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  elif command -v sudo >/dev/null 2>&1; then
    (cd / && sudo -u postgres "$@")
  else
    die "need root, sudo or the postgres user to run: $*"
  fi
}

valid_name() { [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "'$1' is not a plain SQL name ([A-Za-z_][A-Za-z0-9_]*)"; }

install() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; then
    return
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
  log "installing postgresql"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
}

# Sets version, name and port of the cluster to use; creates one if the package left none.
pick_cluster() {
  local clusters
  clusters="$(pg_lsclusters --no-header 2>/dev/null || true)"
  if [ -z "$clusters" ]; then
    local v
    v="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)"
    [ -n "$v" ] || die "no PostgreSQL server under /usr/lib/postgresql"
    log "creating cluster $v/main"
    as_root pg_createcluster "$v" main >&2
    clusters="$(pg_lsclusters --no-header)"
  fi
  local wanted="${PG_CLUSTER:-}"
  if [ -z "$wanted" ]; then
    if awk '$1 == "15" && $2 == "main" { found = 1 } END { exit !found }' <<<"$clusters"; then
      wanted="15/main"
    else
      wanted="$(awk 'NR == 1 { print $1 "/" $2 }' <<<"$clusters")"
    fi
  fi
  version="${wanted%%/*}"
  name="${wanted#*/}"
  port="$(awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $3 }' <<<"$clusters")"
  [ -n "$port" ] || die "no cluster $wanted (pg_lsclusters: $clusters)"
}

status() { pg_lsclusters --no-header | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $4 }'; }

wait_tcp() {
  local i
  for i in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$port" && return 0
    sleep 1
  done
  return 1
}

start() {
  if [ "$(status)" != online ]; then
    log "starting cluster $version/$name on port $port"
    as_root pg_ctlcluster "$version" "$name" start >&2
  fi
  if ! wait_tcp; then
    # Not reachable over TCP: make it listen on localhost and restart once.
    log "cluster $version/$name does not answer on 127.0.0.1:$port; setting listen_addresses = 'localhost'"
    as_postgres psql -q -X -p "$port" -c "ALTER SYSTEM SET listen_addresses = 'localhost'" >&2
    as_root pg_ctlcluster "$version" "$name" restart >&2
    wait_tcp || die "cluster $version/$name does not answer on 127.0.0.1:$port (see /var/log/postgresql/postgresql-$version-$name.log)"
  fi
}

superuser_psql() { as_postgres psql -q -X -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }

exists() { [ "$(superuser_psql -tA -c "$1")" = 1 ]; }

ensure_role_and_database() {
  # psql interpolates :'var' / :"var" only in scripts read from stdin, not in -c.
  if exists "SELECT 1 FROM pg_roles WHERE rolname = '$user'"; then
    superuser_psql -v u="$user" -v p="$password" <<<'ALTER ROLE :"u" WITH LOGIN CREATEDB PASSWORD :'"'"'p'"'"';'
  else
    log "creating role $user"
    superuser_psql -v u="$user" -v p="$password" <<<'CREATE ROLE :"u" WITH LOGIN CREATEDB PASSWORD :'"'"'p'"'"';'
  fi
  create_database "$database"
}

create_database() {
  if ! exists "SELECT 1 FROM pg_database WHERE datname = '$1'"; then
    log "creating database $1"
    superuser_psql -v d="$1" -v u="$user" <<<'CREATE DATABASE :"d" OWNER :"u";'
  fi
}

connection_string() { echo "Host=127.0.0.1;Port=$port;Username=$user;Password=$password;Database=$1"; }

# Logs in the way the broker does (password over TCP) so a bad pg_hba.conf fails here, not in a node.
check_login() {
  PGPASSWORD="$password" psql -q -X -tA -h 127.0.0.1 -p "$port" -U "$user" -d "$1" -c 'SELECT 1' >/dev/null \
    || die "cannot log in as $user to database $1 on 127.0.0.1:$port"
}

valid_name "$user"
valid_name "$database"
install
pick_cluster
start
ensure_role_and_database

case "${1:-}" in
  "")
    check_login "$database"
    connection_string "$database"
    ;;
  createdb)
    [ $# -eq 2 ] || die "usage: $0 createdb NAME"
    valid_name "$2"
    create_database "$2"
    check_login "$2"
    connection_string "$2"
    ;;
  dropdb)
    [ $# -eq 2 ] || die "usage: $0 dropdb NAME"
    valid_name "$2"
    [ "$2" != "$database" ] || die "refusing to drop the broker database $2"
    superuser_psql -v d="$2" <<<'DROP DATABASE IF EXISTS :"d" WITH (FORCE);'
    ;;
  *)
    die "usage: $0 [createdb NAME | dropdb NAME]"
    ;;
esac
