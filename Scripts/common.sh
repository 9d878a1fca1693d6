# Shared by Warren's scripts: source it, do not run it.

# Swift from /opt/swift when it is not on PATH (as on the development machines).
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

# free_port START: the first port from START on where nothing listens, with START+20000 free too
# (a broker's distribution port).
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$((port + 20000))") 2>/dev/null; do
    port=$((port + 1))
  done
  echo "$port"
}

# wait_for_consumer BROKER_DIR QUEUE: until QUEUE has a consumer (10 s at most).
wait_for_consumer() {
  for _ in $(seq 1 100); do
    "$(dirname "${BASH_SOURCE[0]}")/broker.sh" ctl "$1" list_queues name consumers 2>/dev/null | grep -q "^$2[[:space:]]1" && return 0
    sleep 0.1
  done
  echo "no consumer on $2 after 10 s" >&2
  return 1
}

# report_medians FILE KEY:LABEL...: medians of KEY=value lines, one row per key.
report_medians() {
  local file=$1; shift
  python3 - "$file" "$@" <<'PY'
import statistics, sys
rows = [dict((k, float(v)) for k, v in (kv.split("=") for kv in line.split())) for line in open(sys.argv[1])]
for spec in sys.argv[2:]:
    key, label = spec.split(":", 1)
    print(f"median {label:<44}{statistics.median(r[key] for r in rows):>10.0f}")
PY
}

# bench_environment NAME START_PORT: a work folder, a private broker on a free port, and a trap
# that, when the script ends, stops what `background` started, stops the broker and removes the
# folder. Sets `work`, `port` and `url`.
bench_environment() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/warren-$1.XXXXXX")
  bench_pids=()
  trap bench_cleanup EXIT INT TERM
  port=$(free_port "$2")
  "$(dirname "${BASH_SOURCE[0]}")/broker.sh" start "$work/broker" --port "$port" >/dev/null
  url="amqp://guest:guest@127.0.0.1:$port/%2f"
}

bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$(dirname "${BASH_SOURCE[0]}")/broker.sh" stop "$work/broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# background COMMAND...: runs COMMAND in the background until the script ends.
background() {
  "$@" &
  bench_pids+=($!)
}

# cpu_ms PID...: CPU time (user + system) the processes have used so far, in milliseconds.
cpu_ms() {
  local total=0 pid t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo $((total * 1000 / $(getconf CLK_TCK)))
}
