#!/usr/bin/env bash
# Installs, from Debian's packages, what Warren builds and runs with, when it is missing:
# RabbitMQ (server), rabbitmq-c (librabbitmq-dev), amqp-tools, SQLite, pkg-config, openssl, curl.
# With --test, also what only the tests use: chromium and its driver (the approval page in a
# real browser) and docker-compose (to validate compose/docker-compose.yml).
#   Scripts/install-deps.sh [--test]
set -euo pipefail
packages=(rabbitmq-server librabbitmq-dev amqp-tools libsqlite3-dev pkg-config openssl curl)
[ "${1:-}" = "--test" ] && packages+=(chromium chromium-driver docker-compose)
need=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "install-deps.sh: installing ${need[*]}"
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package's post-install script may start a system broker where systemd or init.d work;
# Warren's scripts run their own brokers, so stop a system one if it came up.
$sudo service rabbitmq-server stop >/dev/null 2>&1 || true
