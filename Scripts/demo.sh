#!/usr/bin/env bash
# Warren's main job, end to end, on embedded defaults: the seed article's human-in-the-loop
# workflow on a private RabbitMQ and a SQLite file.
#
# Installs what is missing, starts a private broker, builds in release mode, starts the
# orchestrator (`warren serve`), a worker and the gateway, starts workflow hitl-001 through the
# gateway, prints the signed approval link the workflow mails, opens it (a confirmation page,
# which settles nothing) and approves through it as its button does (or, with --interactive,
# waits for you to open it, or to approve on the approval page), prints the workflow's result,
# and stops everything it started.
#   Scripts/demo.sh [--interactive] [--workflow ID]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh

interactive=false; workflow=hitl-001
while [ $# -gt 0 ]; do
  case "$1" in
    --interactive) interactive=true; shift ;;
    --workflow) workflow=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--interactive] [--workflow ID]" >&2; exit 64 ;;
  esac
done

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing what is missing (RabbitMQ, rabbitmq-c, SQLite, curl)"
Scripts/install-deps.sh

step "Building Warren in release mode (the first build takes a few minutes)"
swift build -c release --product warren
swift build -c release --product hitl-worker
swift build -c release --product hitl-gateway
bin=$(swift build -c release --show-bin-path)

step "Starting a private RabbitMQ"
bench_environment demo 5672
echo "broker: $url (data in $work/broker)"
http_port=$(free_port 8001)
gateway_port=$(free_port 5001)
export WARREN_AMQP_URL="$url" GATEWAY_PORT="$gateway_port" GATEWAY_URL="http://localhost:$gateway_port"
# The key that signs approval links, made for this run: the orchestrator verifies with it, the
# worker signs with it (in production both read it from a secret store; docs/http.md).
link_key="demo-$(date +%Y%m) $(openssl rand -base64 32)"
export WARREN_LINK_URL="http://localhost:$http_port"

step "Starting the orchestrator, a worker and the gateway"
WARREN_LINK_KEYS="$link_key" background "$bin/warren" serve --db "$work/warren.db" --http-port "$http_port" 2>"$work/orchestrator.log"
wait_for_consumer "$work/broker" warren.orchestrator
WARREN_LINK_KEY="$link_key" background "$bin/hitl-worker" >"$work/worker.log" 2>&1
background "$bin/hitl-gateway" >"$work/gateway.log" 2>&1
wait_for_consumer "$work/broker" warren.group.workers
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$gateway_port/" && break; sleep 0.1; done
echo "orchestrator: warren serve, HTTP API on http://127.0.0.1:$http_port (approval page: /ui)"
echo "worker:       hitl-worker, group workers"
echo "gateway:      hitl-gateway on http://localhost:$gateway_port"

step "Starting workflow $workflow: POST /start-workflow (the answer comes when it completes)"
curl -s -X POST "http://localhost:$gateway_port/start-workflow" -H 'content-type: application/json' \
  -d "{\"workflow_id\": \"$workflow\"}" >"$work/result.json" &
start_pid=$!
bench_pids+=("$start_pid")

link=""
for _ in $(seq 1 300); do
  link=$(grep -o "http://[^ ]*/approve/[^ ]*" "$work/worker.log" | head -1 || true)
  [ -n "$link" ] && break
  sleep 0.1
done
[ -n "$link" ] || { echo "the worker printed no approval link; its log:" >&2; cat "$work/worker.log" >&2; exit 1; }
echo "the worker says:"
sed 's/^/    /' "$work/worker.log"

if $interactive; then
  step "Waiting for you"
  promise_id=${link#*/approve/}; promise_id=${promise_id%%\?*}
  echo "Approve with the link:      open $link"
  echo "or on the approval page:    http://127.0.0.1:$http_port/ui"
  echo "or from the command line:   $bin/warren promises resolve $promise_id --data '\"approved\"' --server http://127.0.0.1:$http_port"
  echo "(the workflow holds no memory and no message while it waits; Ctrl-C stops the demo)"
else
  step "Opening the link, as the human would: GET shows what it decides, and settles nothing"
  page=$(curl -s -w '\n%{http_code}' "$link")
  [ "$(tail -1 <<<"$page")" = 200 ] || { echo "the link's page answered $(tail -1 <<<"$page")" >&2; exit 1; }
  grep -o '<h1>[^<]*</h1>' <<<"$page" | sed 's/<[^>]*>//g; s/^/    page: /'
  grep -o 'data-outcome="[^"]*"' <<<"$page" | sed 's/data-outcome=/    button: /'
  step "Clicking Approve: the page POSTs the outcome to the same link"
  curl -s -X POST "$link" -H 'content-type: application/json' -d '{"outcome": "approved", "comment": "approved in the demo"}' \
    | sed 's/^/    /'; echo
fi

wait "$start_pid" || { echo "the gateway did not answer; logs in $work" >&2; exit 1; }
step "The workflow completed"
echo "POST /start-workflow answered: $(cat "$work/result.json")"
grep -q "foo workflow $workflow complete" "$work/result.json" || { echo "unexpected result" >&2; exit 1; }
echo "the worker says:"
sed 's/^/    /' "$work/worker.log"
step "Stopping everything the demo started"
