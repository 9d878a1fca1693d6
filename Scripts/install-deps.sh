#!/usr/bin/env bash
# Installs, from Debian's packages, what Warren builds and runs with, when it is missing:
# RabbitMQ (server), rabbitmq-c (librabbitmq-dev), amqp-tools, SQLite, pkg-config, openssl, curl.
# With --test, also what only the tests use: chromium and its driver (the approval page in a
# real browser), docker-compose (to validate compose/docker-compose.yml) and PostgreSQL (the
# PostgreSQL store's tests, on a private server Scripts/postgres.sh starts); with --postgres,
# PostgreSQL alone.
#   Scripts/install-deps.sh [--test | --postgres]
set -euo pipefail
packages=(rabbitmq-server librabbitmq-dev amqp-tools libsqlite3-dev pkg-config openssl curl)
[ "${1:-}" = "--test" ] && packages+=(chromium chromium-driver docker-compose postgresql)
[ "${1:-}" = "--postgres" ] && packages=(postgresql)
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "install-deps.sh: installing ${need[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# The machine is left as it was found: a system RabbitMQ that runs keeps running, and one that
# this script's install starts (the package's post-install script does, where systemd or init.d
# work) is stopped again, since Warren's scripts run brokers of their own. Only a broker that
# was not there before the install is stopped, and only when this run installed the server.
installs_server=false; installs_postgres=false
for pkg in "${need[@]}"; do
  [ "$pkg" = rabbitmq-server ] && installs_server=true
  [ "$pkg" = postgresql ] && installs_postgres=true
done
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if $installs_server; then
  $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
fi
if $installs_postgres; then
  $sudo service postgresql stop >/dev/null 2>&1 || true
fi
