#!/usr/bin/env bash
# Benchmarks `warren serve` (release build) on a private broker, through the message contract:
# promises created and resolved per second (2 messages in, 1 settled event out, each) with many
# in flight, and the idle latency from a resolve message to its settled event.
#   Scripts/bench-orchestrator.sh [--promises N] [--in-flight N] [--samples N] [--rounds R]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
promises=20000; in_flight=256; samples=500; rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --promises) promises=$2; shift 2 ;;
    --in-flight) in_flight=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--promises N] [--in-flight N] [--samples N] [--rounds R]" >&2; exit 64 ;;
  esac
done
Scripts/install-deps.sh
bench_environment orch-bench 5695
swift build -c release --product warren >/dev/null
swift build -c release --product OrchestratorBenchmark >/dev/null
bin=$(swift build -c release --show-bin-path)
background "$bin/warren" serve --amqp-url "$url" --db "$work/warren.db" --log-level warning 2>"$work/warren.log"
wait_for_consumer "$work/broker" warren.orchestrator
echo "orchestrator benchmark: $promises promises (create + resolve), $in_flight in flight, $samples latency samples, $rounds rounds"
for r in $(seq 1 "$rounds"); do
  line=$("$bin/OrchestratorBenchmark" "$url" warren "$promises" "$in_flight" "$samples")
  echo "round $r: $line"
  echo "$line" >>"$work/results"
done
echo
report_medians "$work/results" "promises_per_s:promises/s (create + resolve + event)" \
  "settle_p50_us:idle resolve -> settled event p50 (us)" "settle_p99_us:idle resolve -> settled event p99 (us)"
