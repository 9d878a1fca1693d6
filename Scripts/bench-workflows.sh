#!/usr/bin/env bash
# Benchmarks workflows end to end (release build): a private broker, `warren serve`, a worker
# process and a client process on the same machine. Prints three-step workflows/s at 1, 32 and
# 256 in flight (each started with rpc and awaited through its settled event), and the idle
# latency from resolving a promise a workflow waits on to the workflow's result.
#   Scripts/bench-workflows.sh [--workflows N] [--samples N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
workflows=2000; samples=200
while [ $# -gt 0 ]; do
  case "$1" in
    --workflows) workflows=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    *) echo "usage: $0 [--workflows N] [--samples N]" >&2; exit 64 ;;
  esac
done
Scripts/install-deps.sh
bench_environment wf-bench 5697
swift build -c release --product warren >/dev/null
swift build -c release --product WorkflowBenchmark >/dev/null
bin=$(swift build -c release --show-bin-path)
background "$bin/warren" serve --amqp-url "$url" --db "$work/warren.db" --log-level warning 2>"$work/warren.log"
background "$bin/WorkflowBenchmark" worker "$url" >"$work/worker.log" 2>&1
wait_for_consumer "$work/broker" warren.group.bench
broker_pid=$(cat "$work/broker/broker.pid")
orchestrator_pid=${bench_pids[0]}; worker_pid=${bench_pids[1]}
echo "workflow benchmark: three-step workflows started with rpc, each awaited through its subscription"
echo "(cpu_*: microseconds of CPU per workflow, by process, over the throughput run alone)"
for n in 1 32 256; do
  count=$workflows
  [ "$n" -eq 1 ] && count=$((workflows / 10))
  b0=$(cpu_ms "$broker_pid"); o0=$(cpu_ms "$orchestrator_pid"); w0=$(cpu_ms "$worker_pid")
  line=$("$bin/WorkflowBenchmark" client "$url" "$count" "$n" 0)
  b=$(( ($(cpu_ms "$broker_pid") - b0) * 1000 / count )); o=$(( ($(cpu_ms "$orchestrator_pid") - o0) * 1000 / count ))
  w=$(( ($(cpu_ms "$worker_pid") - w0) * 1000 / count ))
  echo "in flight $n ($count workflows): $line cpu_broker=$b cpu_orchestrator=$o cpu_worker=$w"
done
echo "idle resume ($samples samples: resolve a promise a waiting workflow awaits -> its result at the client):"
echo "  $("$bin/WorkflowBenchmark" client "$url" 1 1 "$samples" | sed 's/workflows_per_s=[0-9]* //')"
