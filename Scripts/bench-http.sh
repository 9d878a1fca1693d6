#!/usr/bin/env bash
# Benchmarks the orchestrator's HTTP API (release build) with wrk, 64 connections: reading a
# promise, and creating promises (each request a new id; concurrent requests share commits),
# beside GET /health (the HTTP stack alone, the baseline of the same run). Prints requests/s and
# latency, 3 rounds, medians, and the ratios to the baseline.
#   Scripts/bench-http.sh [--seconds N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh
seconds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N]" >&2; exit 64 ;;
  esac
done
Scripts/install-deps.sh
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"; $sudo apt-get install -y -qq wrk >/dev/null; }
bench_environment http-bench 5698
swift build -c release --product warren >/dev/null
bin=$(swift build -c release --show-bin-path)
http_port=$(free_port 8801)
base="http://127.0.0.1:$http_port"
background "$bin/warren" serve --amqp-url "$url" --db "$work/warren.db" --http-port "$http_port" --log-level warning 2>"$work/warren.log"
for _ in $(seq 1 100); do curl -s -o /dev/null "$base/health" && break; sleep 0.1; done
curl -s -X POST "$base/promises" -d '{"id": "read-me", "timeout": 4102444800000, "param": {"data": "eyJhIjoxfQ=="}}' >/dev/null

# Each wrk thread numbers its requests; setup gives every thread (and every run) its own prefix.
cat >"$work/ids.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", string.format("%d-%d", os.time(), threads))
end
LUA
cat "$work/ids.lua" - >"$work/create.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/promises", {["content-type"] = "application/json"},
    string.format('{"id": "c-%s-%d", "timeout": 4102444800000}', prefix, n))
end
LUA

run() {  # NAME ARGS...: one wrk run; prints NAME=requests/s NAME_p50_us=… NAME_p99_us=…
  local name=$1; shift
  wrk -t2 -c64 -d"${seconds}s" --latency "$@" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def us(label):
    m = re.search(r"\s" + label + r"\s+([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: sys.exit("non-2xx answers: " + errors.group(1))
p50, p99 = us("50%"), us("99%")
print(f"'"$name"'={rps:.0f} '"$name"'_p50_us={p50:.0f} '"$name"'_p99_us={p99:.0f}", end=" ")'
}

echo "HTTP benchmark: wrk, 2 threads, 64 connections, ${seconds} s per run, 3 rounds (release build)"
for round in 1 2 3; do
  line="$(run health "$base/health")$(run get "$base/promises/read-me")$(run create -s "$work/create.lua" "$base")"
  echo "round $round: $line"
  echo "$line" >>"$work/rounds"
done
echo
report_medians "$work/rounds" health:"GET /health requests/s (the HTTP stack alone)" get:"GET /promises/{id} requests/s" get_p99_us:"GET /promises/{id} p99 (us)" \
  create:"POST /promises requests/s" create_p99_us:"POST /promises p99 (us)"
python3 - "$work/rounds" <<'PY'
import statistics, sys
rows = [dict((k, float(v)) for k, v in (kv.split("=") for kv in line.split())) for line in open(sys.argv[1])]
m = lambda k: statistics.median(r[k] for r in rows)
print(f"ratio GET /promises/{{id}} / GET /health                  {m('get') / m('health'):10.2f}")
print(f"ratio POST /promises / GET /health                       {m('create') / m('health'):10.2f}")
PY
