#!/usr/bin/env bash
# The chaos suite: a seeded schedule of workflows of mixed kinds (steps, retries, parallel
# children, human waits with deadlines, durable sleeps) on a private RabbitMQ, while the driver
# SIGKILLs workers and the orchestrator, stops and starts the broker, sends duplicate resolves
# and resolves that race their timeouts, and injects bad inputs. It then checks that every
# workflow has the result a fault-free run of the same seed gives, that recorded steps are the
# ones the workflows used, that nothing valid is dead-lettered and no task is stuck, and prints
# the figures. A failure prints the seed that replays it.
#   Scripts/chaos.sh [--seed N] [--workflows N] [--rate PER_SECOND] [--workers N] [--fault-every SECONDS] [--release] [--cluster]
# With --cluster it runs on a three-node cluster (Scripts/cluster.sh) with quorum queues, every
# process given all the nodes, and the broker fault SIGKILLs one node and restarts it.
# Defaults: a small run (300 workflows started at 5 a second, a fault every 2 s on average: about
# two minutes); the full size: --workflows 2000 --rate 10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh

seed=$(( $(date +%s) % 100000 )); workflows=300; rate=5; workers=2; fault_every=2; config=debug; cluster=false
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    --workflows) workflows=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --fault-every) fault_every=$2; shift 2 ;;
    --release) config=release; shift ;;
    --cluster) cluster=true; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--seed N] [--workflows N] [--rate PER_SECOND] [--workers N] [--fault-every SECONDS] [--release] [--cluster]" >&2; exit 64 ;;
  esac
done

Scripts/install-deps.sh
swift build -c "$config" --product warren
swift build -c "$config" --product WarrenChaos
bin=$(swift build -c "$config" --show-bin-path)

extra=()
if $cluster; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/warren-chaos.XXXXXX")
  bench_pids=()
  cleanup_cluster() { Scripts/cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true; bench_cleanup; }
  trap cleanup_cluster EXIT INT TERM
  Scripts/cluster.sh start "$work/cluster" --nodes 3
  extra=(--cluster-dir "$work/cluster" --cluster-url "$(Scripts/cluster.sh url "$work/cluster")" --nodes 3)
  port=0
  echo "chaos: a three-node cluster with quorum queues, work in $work"
else
  bench_environment chaos 5900
  echo "chaos: broker on port $port, work in $work"
fi
mkdir -p "$work/run"
status=0
"$bin/WarrenChaos" drive --seed "$seed" --workflows "$workflows" --workers "$workers" --fault-every "$fault_every" --rate "$rate" \
  --bin "$bin" --broker-dir "$work/broker" --port "$port" --scripts "$PWD/Scripts" --work "$work/run" "${extra[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "chaos: the last lines of the orchestrator's log:"; tail -n 30 "$work/run/orchestrator.log" || true
fi
exit "$status"
