#!/usr/bin/env bash
# Runs every test of Warren on a fresh Debian machine: installs what is missing (apt), starts a
# private RabbitMQ and a private PostgreSQL for the tests, runs `swift test`, and stops every
# server it or the tests started.
#   Scripts/test.sh [swift test arguments, e.g. --filter MessagingTests]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. Scripts/common.sh

Scripts/install-deps.sh --test
# From PyPI into a venv: selenium drives the browser in the approval page's test; pika is the
# Python client of the README's example.
if [ ! -x .build/ui-venv/bin/python ] || ! .build/ui-venv/bin/python -c "import selenium, pika" 2>/dev/null; then
  python3 -m venv .build/ui-venv
  .build/ui-venv/bin/pip install -q --disable-pip-version-check "selenium>=4.20,<5" "pika>=1.3,<2"
fi

# Everything of this run (the shared broker, the tests' own brokers) lives under one folder.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/warren-tests.XXXXXX")
cleanup() {
  Scripts/postgres.sh stop "$run_dir/postgres" >/dev/null 2>&1 || true
  for dir in "$run_dir"/broker "$run_dir"/warren-test-brokers/*; do
    [ -f "$dir/broker.env" ] && Scripts/broker.sh stop "$dir" >/dev/null 2>&1 || true
    [ -f "$dir/cluster.env" ] && Scripts/cluster.sh stop "$dir" >/dev/null 2>&1 || true
  done
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

port=$(free_port 5673)
Scripts/broker.sh start "$run_dir/broker" --port "$port"
export WARREN_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
# The PostgreSQL store's tests: each in a schema of its own on this server (which, under root,
# runs as the postgres user: it must be able to reach its folder).
chmod 711 "$run_dir"
mkdir -p "$run_dir/postgres"
Scripts/postgres.sh start "$run_dir/postgres" --port "$(free_port 15432)" >/dev/null
export WARREN_TEST_POSTGRES_URL=$(Scripts/postgres.sh url "$run_dir/postgres")
# Tests that need a broker of their own (restarts, TLS, a three-node cluster) create it under $TMPDIR.
# The cluster test runs 200 workflows through node failures; WARREN_CLUSTER_WORKFLOWS=2000 for more.
export TMPDIR="$run_dir"

swift build --build-tests
swift test --skip-build "$@"

# The chaos suite, at a small size (about two minutes, and one more on a cluster), when the whole suite runs; the full size
# is `Scripts/chaos.sh --workflows 2000 --rate 10` (docs/reliability.md). A fixed seed here, so a
# failure in CI replays; `Scripts/chaos.sh` alone takes a new seed each run.
if [ $# -eq 0 ]; then
  Scripts/chaos.sh --seed 20261129 --workflows 300
  # And on a three-node cluster with quorum queues, a node SIGKILLed as the broker fault.
  Scripts/chaos.sh --cluster --seed 20261202 --workflows 150
fi
