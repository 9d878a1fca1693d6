#!/usr/bin/env bash
# Benchmarks workflows end to end (release build): a private broker (or a three-node cluster),
# `warren serve`, a worker process and a client process on the same machine. Prints three-step
# workflows/s at 1, 32 and 256 in flight (each started with rpc and awaited through its settled
# event), and the idle latency from resolving a promise a workflow waits on to the workflow's
# result.
#   Scripts/bench-workflows.sh [--workflows N] [--samples N] [--queue-type classic|quorum|both] [--cluster]
#                              [--db sqlite|postgres|both] [--history LENGTHS]
# --queue-type both runs classic, then quorum queues, on the same broker in the same run and prints
# their ratio; --cluster runs on a three-node cluster (Scripts/cluster.sh), every process given all
# three nodes; --db postgres keeps the promises on a private PostgreSQL (Scripts/postgres.sh) instead
# of SQLite, --db both runs both in the same run and prints their ratio. --history 10,100,1000,10000
# also measures a resume against the history's length: n steps in one run, and n runs of one step
# with continueAsNew (and the time per run of that loop), with the worker's memory before and after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
workflows=2000; samples=200; types=classic; cluster=false; dbs=sqlite; history=""
usage() { echo "usage: $0 [--workflows N] [--samples N] [--queue-type classic|quorum|both] [--cluster] [--db sqlite|postgres|both] [--history LENGTHS]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --workflows) workflows=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --queue-type) types=$2; shift 2 ;;
    --cluster) cluster=true; shift ;;
    --db) dbs=$2; shift 2 ;;
    --history) history=$2; shift 2 ;;
    *) usage ;;
  esac
done
case "$types" in classic|quorum) ;; both) types="classic quorum" ;; *) usage ;; esac
case "$dbs" in sqlite|postgres) ;; both) dbs="sqlite postgres" ;; *) usage ;; esac
Scripts/install-deps.sh
if $cluster; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/warren-wf-bench.XXXXXX")
  bench_pids=()
  cleanup_cluster() { Scripts/cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true; bench_cleanup; }
  trap cleanup_cluster EXIT INT TERM
  Scripts/cluster.sh start "$work/cluster" --nodes 3 >/dev/null
  url=$(Scripts/cluster.sh url "$work/cluster")
  # One pid a line (the pid files end without a newline).
  broker_pids=$(for f in "$work"/cluster/node*/broker.pid; do cat "$f"; echo; done)
else
  bench_environment wf-bench 5697
  broker_pids=$(cat "$work/broker/broker.pid")
fi
if [[ " $dbs " == *" postgres "* ]]; then
  Scripts/install-deps.sh --postgres
  mkdir -p "$work/postgres"; chmod 711 "$work"
  Scripts/postgres.sh start "$work/postgres" --port "$(free_port 15532)" >/dev/null
  pg_url=$(Scripts/postgres.sh url "$work/postgres")
  trap 'Scripts/postgres.sh stop "$work/postgres" >/dev/null 2>&1 || true; '"$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT$//")" EXIT
fi
# WARREN_BENCH_BIN: a folder with release builds of warren and WorkflowBenchmark to run instead of
# building this tree's (to compare two commits alternately on the same machine).
if [ -n "${WARREN_BENCH_BIN:-}" ]; then
  bin=$WARREN_BENCH_BIN
else
  swift build -c release --product warren >/dev/null
  swift build -c release --product WorkflowBenchmark >/dev/null
  bin=$(swift build -c release --show-bin-path)
fi
echo "workflow benchmark: three-step workflows started with rpc, each awaited through its subscription"
echo "(on $($cluster && echo "a three-node cluster" || echo "one broker"); cpu_*: microseconds of CPU per workflow, by process, over the throughput run alone)"
declare -A at256
declare -A db256
for db in $dbs; do
for type in $types; do
  export WARREN_PREFIX="wb-$type-$db" WARREN_QUEUE_TYPE="$type"
  if [ "$db" = postgres ]; then database="$pg_url?schema=wb_$type"; else database="$work/warren-$type.db"; fi
  background "$bin/warren" serve --amqp-url "$url" --db "$database" --log-level warning --http-port "$(free_port 18300)" 2>"$work/warren-$type.log"
  orchestrator_pid=${bench_pids[-1]}
  background "$bin/WorkflowBenchmark" worker "$url" >"$work/worker-$type.log" 2>&1
  worker_pid=${bench_pids[-1]}
  for _ in $(seq 1 300); do grep -q "worker serving" "$work/worker-$type.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  echo "queues: $type, store: $db"
  for n in 1 32 256; do
    count=$workflows
    [ "$n" -eq 1 ] && count=$((workflows / 10))
    # shellcheck disable=SC2086
    b0=$(cpu_ms $broker_pids); o0=$(cpu_ms "$orchestrator_pid"); w0=$(cpu_ms "$worker_pid")
    line=$("$bin/WorkflowBenchmark" client "$url" "$count" "$n" 0)
    # shellcheck disable=SC2086
    b=$(( ($(cpu_ms $broker_pids) - b0) * 1000 / count )); o=$(( ($(cpu_ms "$orchestrator_pid") - o0) * 1000 / count ))
    w=$(( ($(cpu_ms "$worker_pid") - w0) * 1000 / count ))
    echo "  in flight $n ($count workflows): $line cpu_broker=$b cpu_orchestrator=$o cpu_worker=$w"
    [ "$n" -eq 256 ] && at256[$type]=$(sed 's/.*workflows_per_s=\([0-9]*\).*/\1/' <<<"$line") && db256[$db]=${at256[$type]}
  done
  echo "  idle resume ($samples samples: resolve a promise a waiting workflow awaits -> its result at the client):"
  echo "    $("$bin/WorkflowBenchmark" client "$url" 1 1 "$samples" | sed 's/workflows_per_s=[0-9]* //')"
  if [ -n "$history" ]; then
    echo "  resume against history length (median of 3; one run: every resume replays n steps; continued: n runs of one step, a resume replays the last):"
    rss0=$(ps -o rss= -p "$worker_pid" | tr -d ' ')
    "$bin/WorkflowBenchmark" history "$url" "$history" 3 | sed 's/^/    /'
    echo "    worker rss_kb before=$rss0 after=$(ps -o rss= -p "$worker_pid" | tr -d ' ') orchestrator rss_kb=$(ps -o rss= -p "$orchestrator_pid" | tr -d ' ')"
  fi
  kill "$worker_pid" "$orchestrator_pid" 2>/dev/null || true
  wait "$worker_pid" "$orchestrator_pid" 2>/dev/null || true
done
done
if [ -n "${at256[classic]:-}" ] && [ -n "${at256[quorum]:-}" ]; then
  echo "quorum / classic at 256 in flight: $(awk "BEGIN { printf \"%.2f\", ${at256[quorum]} / ${at256[classic]} }")"
fi
if [ -n "${db256[sqlite]:-}" ] && [ -n "${db256[postgres]:-}" ]; then
  echo "postgres / sqlite at 256 in flight: $(awk "BEGIN { printf \"%.2f\", ${db256[postgres]} / ${db256[sqlite]} }")"
fi
