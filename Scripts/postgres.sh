#!/usr/bin/env bash
# A private PostgreSQL server from Debian's packages, in a folder of its own, as Scripts/broker.sh
# does for RabbitMQ: for tests, benchmarks and trying Warren's PostgreSQL store. It listens on
# 127.0.0.1 only, trusts local connections, and holds one database, `warren`.
#   Scripts/postgres.sh start DIR [--port P]   initdb (first time) and start; prints the URL
#   Scripts/postgres.sh url DIR                 postgres://warren@127.0.0.1:P/warren
#   Scripts/postgres.sh stop DIR                stop it (fast shutdown)
#   Scripts/postgres.sh kill DIR                SIGKILL the postmaster (a crash)
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the package
# creates, and DIR is given to it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
usage() { echo "usage: $0 start DIR [--port P] | url DIR | stop DIR | kill DIR" >&2; exit 64; }
[ $# -ge 2 ] || usage
command=$1; dir=$2; shift 2
port=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    *) usage ;;
  esac
done

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
data="$dir/data"

case "$command" in
  start)
    if [ -z "$bin" ]; then
      Scripts/install-deps.sh --postgres
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    mkdir -p "$dir"
    [ -n "$port" ] || port=$(cat "$dir/port" 2>/dev/null || free_port 15432)
    echo "$port" >"$dir/port"
    if [ "$(id -u)" -eq 0 ]; then
      chown -R postgres "$dir"
      runuser -u postgres -- test -w "$dir" || {
        echo "postgres.sh: the postgres user cannot reach $dir (a parent folder is closed to it): use a folder it can reach" >&2; exit 1; }
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -U warren --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # The socket goes into DIR too: nothing of the system's /var/run/postgresql is needed.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200" start >/dev/null \
      || { tail -20 "$dir/server.log" >&2; exit 1; }
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U warren -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'warren'" | grep -q 1; then
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U warren warren
    fi
    echo "postgres.sh: PostgreSQL ready on 127.0.0.1:$port in $dir"
    echo "postgres://warren@127.0.0.1:$port/warren"
    ;;
  url)
    echo "postgres://warren@127.0.0.1:$(cat "$dir/port")/warren"
    ;;
  stop)
    [ -f "$data/postmaster.pid" ] || exit 0
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    ;;
  kill)
    [ -f "$data/postmaster.pid" ] || exit 0
    kill -9 "$(head -1 "$data/postmaster.pid")" 2>/dev/null || true
    ;;
  *) usage ;;
esac
