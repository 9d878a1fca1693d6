#!/usr/bin/env bash
# Benchmarks the durable promise store (release build, synchronous=FULL, WAL): single-command
# transactions/s, batched commands/s (100 per transaction: half creates, half resolves) and the
# bytes on disk per pending promise with a small payload. Prints each round and the medians.
#   Scripts/bench-store.sh [--rounds R]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
rounds=5
[ "${1:-}" = "--rounds" ] && rounds=$2
Scripts/install-deps.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/warren-store-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
swift build -c release --product StoreBenchmark >/dev/null
bin=$(swift build -c release --show-bin-path)/StoreBenchmark
echo "store benchmark: 5,000 single-command transactions, 500 batches of 100 commands, 100,000 pending promises; $rounds rounds"
for r in $(seq 1 "$rounds"); do
  line=$("$bin" bench --dir "$work/round$r")
  echo "round $r: $line"
  echo "$line" >>"$work/results"
  rm -rf "$work/round$r"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [dict((k, float(v)) for k, v in (kv.split("=") for kv in line.split())) for line in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rows)
print()
print(f"median single-command transactions/s   {med('single_tx_per_s'):>9.0f}")
print(f"median batched commands/s (100 per tx) {med('batched_cmds_per_s'):>9.0f}   goal >= 50,000")
print(f"bytes per pending promise              {med('bytes_per_pending_promise'):>9.0f}   (payload {med('payload_bytes'):.0f}, id {med('id_bytes'):.0f})")
print(f"bytes beyond the payload               {med('overhead_bytes'):>9.0f}   goal <= 512")
PY
