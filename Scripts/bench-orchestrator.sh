#!/usr/bin/env bash
# Benchmarks `warren serve` (release build) on a private broker, through the message contract:
# promises created and resolved per second (2 messages in, 1 settled event out, each) with many
# in flight, and the idle latency from a resolve message to its settled event.
#   Scripts/bench-orchestrator.sh [--promises N] [--in-flight N] [--samples N] [--rounds R]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
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
work=$(mktemp -d "${TMPDIR:-/tmp}/warren-orch-bench.XXXXXX")
orchestrator=""
cleanup() {
  [ -n "$orchestrator" ] && kill "$orchestrator" 2>/dev/null && wait "$orchestrator" 2>/dev/null || true
  Scripts/broker.sh stop "$work/broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
port=5695
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
Scripts/broker.sh start "$work/broker" --port "$port" >/dev/null
url="amqp://guest:guest@127.0.0.1:$port/%2f"
swift build -c release --product warren >/dev/null
swift build -c release --product OrchestratorBenchmark >/dev/null
bin=$(swift build -c release --show-bin-path)
"$bin/warren" serve --amqp-url "$url" --db "$work/warren.db" --log-level warning 2>"$work/warren.log" &
orchestrator=$!
for _ in $(seq 1 100); do
  Scripts/broker.sh ctl "$work/broker" list_queues name consumers 2>/dev/null | grep -q "^warren.orchestrator[[:space:]]1" && break
  sleep 0.1
done
echo "orchestrator benchmark: $promises promises (create + resolve), $in_flight in flight, $samples latency samples, $rounds rounds"
for r in $(seq 1 "$rounds"); do
  line=$("$bin/OrchestratorBenchmark" "$url" warren "$promises" "$in_flight" "$samples")
  echo "round $r: $line"
  echo "$line" >>"$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [dict((k, float(v)) for k, v in (kv.split("=") for kv in line.split())) for line in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rows)
print()
print(f"median promises/s (create + resolve + event)  {med('promises_per_s'):>8.0f}")
print(f"median idle resolve -> settled event p50      {med('settle_p50_us')/1000:>8.2f} ms")
print(f"median idle resolve -> settled event p99      {med('settle_p99_us')/1000:>8.2f} ms")
PY
