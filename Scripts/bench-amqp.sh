#!/usr/bin/env bash
# Benchmarks Warren's AMQP layer against a plain C loop making the same rabbitmq-c calls, on one
# private broker, in the same run: publish-with-confirms and consume-and-ack throughput
# (persistent 64-byte messages, durable classic queue) and publish->consume latency.
#   Scripts/bench-amqp.sh [--messages N] [--window W] [--samples S] [--rounds R]
# Prints each round and the medians, with Swift/C ratios (1.00 = as fast as C).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
messages=50000; window=1000; samples=2000; rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--messages N] [--window W] [--samples S] [--rounds R]" >&2; exit 64 ;;
  esac
done
Scripts/install-deps.sh
bench_environment amqp-bench 5690

gcc -O2 -o "$work/amqp_bench" Scripts/bench/amqp_bench.c $(pkg-config --cflags --libs librabbitmq)
swift build -c release --product AMQPBenchmark >/dev/null
swift_bin=$(swift build -c release --show-bin-path)/AMQPBenchmark

echo "AMQP layer benchmark: $messages persistent 64-byte messages, window $window, $samples latency samples, $rounds rounds"
for r in $(seq 1 "$rounds"); do
  # Alternate which goes first, so that neither always meets a warmer broker.
  if [ $((r % 2)) -eq 1 ]; then
    c=$("$work/amqp_bench" 127.0.0.1 "$port" "$messages" "$window" "$samples")
    s=$("$swift_bin" "$url" "$messages" "$window" "$samples")
  else
    s=$("$swift_bin" "$url" "$messages" "$window" "$samples")
    c=$("$work/amqp_bench" 127.0.0.1 "$port" "$messages" "$window" "$samples")
  fi
  echo "round $r  C:     $c"
  echo "round $r  Swift: $s"
  echo "C $c" >>"$work/results"
  echo "Swift $s" >>"$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {"C": [], "Swift": []}
for line in open(sys.argv[1]):
    who, rest = line.split(" ", 1)
    rows[who].append(dict((k, float(v)) for k, v in (kv.split("=") for kv in rest.split())))
def med(who, key): return statistics.median(r[key] for r in rows[who])
print()
print(f"{'median':<28}{'C':>12}{'Swift':>12}{'Swift/C':>10}")
for key, label, higher_better in [("publish_confirm", "publish+confirm msg/s", True),
                                  ("consume_ack", "consume+ack msg/s", True),
                                  ("latency_p50_us", "latency p50 us", False),
                                  ("latency_p99_us", "latency p99 us", False)]:
    c, s = med("C", key), med("Swift", key)
    ratio = s / c if higher_better else c / s
    print(f"{label:<28}{c:>12.0f}{s:>12.0f}{ratio:>10.2f}")
print("(Swift/C: throughput ratio, or for latency C's over Swift's; above 1.00 the Swift layer is faster)")
PY
