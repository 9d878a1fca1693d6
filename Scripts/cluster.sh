#!/usr/bin/env bash
# A private RabbitMQ cluster of several nodes on this machine, without systemd: one folder per
# node under DIR (each a Scripts/broker.sh broker), one Erlang cookie, joined with
# `rabbitmqctl join_cluster`.
#
#   Scripts/cluster.sh start DIR [--nodes 3] [--port N]   nodes on ports N, N+1, … (default: free ones)
#   Scripts/cluster.sh url DIR                            the AMQP URI naming every node
#   Scripts/cluster.sh kill DIR I                         SIGKILL node I (1-based): a crash
#   Scripts/cluster.sh restart DIR I                      start node I again (it rejoins the cluster)
#   Scripts/cluster.sh ctl DIR I ARGS...                  rabbitmqctl against node I
#   Scripts/cluster.sh stop DIR                           stop every node
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/common.sh"

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 64; }
[ $# -ge 2 ] || usage
cmd=$1; dir=$2; shift 2
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)

load() {
  [ -f "$dir/cluster.env" ] || { echo "cluster.sh: no cluster was started in $dir" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
}
port_of() { echo "${ports[$(($1 - 1))]}"; }

case "$cmd" in
start)
  nodes=3; first=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes=$2; shift 2 ;;
      --port) first=$2; shift 2 ;;
      *) echo "cluster.sh: unknown option $1" >&2; usage ;;
    esac
  done
  [ "$nodes" -ge 1 ] || usage
  ports=()
  if [ -n "$first" ]; then
    for i in $(seq 0 $((nodes - 1))); do ports+=($((first + i))); done
  else
    next=5680
    for _ in $(seq 1 "$nodes"); do p=$(free_port "$next"); ports+=("$p"); next=$((p + 1)); done
  fi
  cookie=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  { echo "ports=(${ports[*]})"; echo "cookie=$cookie"; } >"$dir/cluster.env"
  for i in $(seq 1 "$nodes"); do
    "$here/broker.sh" start "$dir/node$i" --port "${ports[$((i - 1))]}" --cookie "$cookie" >/dev/null
  done
  seed="warren${ports[0]}@localhost"
  for i in $(seq 2 "$nodes"); do
    "$here/broker.sh" ctl "$dir/node$i" stop_app >/dev/null
    "$here/broker.sh" ctl "$dir/node$i" join_cluster "$seed" >/dev/null
    "$here/broker.sh" ctl "$dir/node$i" start_app >/dev/null
  done
  "$here/broker.sh" ctl "$dir/node1" await_online_nodes "$nodes" >/dev/null 2>&1 || true
  echo "cluster.sh: $nodes nodes on ports ${ports[*]} in $dir"
  ;;
url)
  load
  hosts=""
  for p in "${ports[@]}"; do hosts="${hosts:+$hosts,}127.0.0.1:$p"; done
  echo "amqp://guest:guest@$hosts/%2f"
  ;;
kill)
  load
  [ $# -eq 1 ] || usage
  "$here/broker.sh" kill "$dir/node$1"
  ;;
restart)
  load
  [ $# -eq 1 ] || usage
  "$here/broker.sh" start "$dir/node$1" --port "$(port_of "$1")" --cookie "$cookie"
  ;;
ctl)
  load
  [ $# -ge 1 ] || usage
  i=$1; shift
  "$here/broker.sh" ctl "$dir/node$i" "$@"
  ;;
stop)
  load
  # The others first, the seed last; epmd goes with the last node.
  for i in $(seq "${#ports[@]}" -1 1); do "$here/broker.sh" stop "$dir/node$i" >/dev/null 2>&1 || true; done
  echo "cluster.sh: stopped the cluster in $dir"
  ;;
*) usage ;;
esac
