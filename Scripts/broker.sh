#!/usr/bin/env bash
# A private RabbitMQ broker in a folder of its own, run as the current user without systemd.
#
#   Scripts/broker.sh start DIR [--port N] [--tls-port N] [--consumer-timeout MS] [--max-message-size BYTES] [--management-port N]
#                               [--cookie SECRET]   (the Erlang cookie: the same on every node of a cluster)
#   Scripts/broker.sh stop DIR          stop the broker started in DIR (and epmd if no other node runs)
#   Scripts/broker.sh kill DIR          SIGKILL the broker (a crash, for tests)
#   Scripts/broker.sh status DIR        exit 0 when the broker in DIR answers
#   Scripts/broker.sh ctl DIR ARGS...   rabbitmqctl against the broker in DIR
#
# Everything the broker writes (database, logs, cookie, config, TLS files) stays in DIR. A second
# broker needs only another DIR and --port. Installs RabbitMQ from Debian's packages when missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RMQ_BIN=/usr/lib/rabbitmq/bin

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 64; }

[ $# -ge 2 ] || usage
cmd=$1; dir=$2; shift 2
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)

load_env() {
  [ -f "$dir/broker.env" ] || { echo "broker.sh: no broker was started in $dir" >&2; exit 1; }
  # shellcheck disable=SC1091
  set -a; . "$dir/broker.env"; set +a
}

ctl() { "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

case "$cmd" in
start)
  port=5672; tls_port=""; consumer_timeout=""; mgmt_port=""; max_message_size=""; cookie=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port=$2; shift 2 ;;
      --tls-port) tls_port=$2; shift 2 ;;
      --consumer-timeout) consumer_timeout=$2; shift 2 ;;
      --max-message-size) max_message_size=$2; shift 2 ;;
      --management-port) mgmt_port=$2; shift 2 ;;
      --cookie) cookie=$2; shift 2 ;;
      *) echo "broker.sh: unknown option $1" >&2; usage ;;
    esac
  done
  [ -x "$RMQ_BIN/rabbitmq-server" ] || "$here/install-deps.sh"
  if [ -f "$dir/broker.env" ]; then
    load_env
    if ctl status >/dev/null 2>&1; then echo "broker.sh: already running in $dir (port $RABBITMQ_NODE_PORT)"; exit 0; fi
  fi
  mkdir -p "$dir/mnesia" "$dir/log"
  node="warren${port}@localhost"
  if [ -n "$cookie" ]; then
    # The node and rabbitmqctl both read it from HOME (the broker's folder).
    rm -f "$dir/.erlang.cookie"
    printf '%s' "$cookie" >"$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
  fi
  {
    echo "listeners.tcp.default = 127.0.0.1:$port"
    echo "loopback_users = none"
    [ -n "$consumer_timeout" ] && echo "consumer_timeout = $consumer_timeout"
    [ -n "$max_message_size" ] && echo "max_message_size = $max_message_size"
    if [ -n "$tls_port" ]; then
      "$here/tls-certs.sh" "$dir/tls" >/dev/null
      echo "listeners.ssl.default = 127.0.0.1:$tls_port"
      echo "ssl_options.cacertfile = $dir/tls/ca.pem"
      echo "ssl_options.certfile = $dir/tls/server.pem"
      echo "ssl_options.keyfile = $dir/tls/server.key"
      echo "ssl_options.verify = verify_peer"
      echo "ssl_options.fail_if_no_peer_cert = false"
    fi
    [ -n "$mgmt_port" ] && echo "management.tcp.port = $mgmt_port" && echo "management.tcp.ip = 127.0.0.1"
    true
  } >"$dir/rabbitmq.conf"
  # The broker checks consumer timeouts on its channel tick, once a minute by default: with a
  # short timeout (a test's), tick often enough for the timeout to mean what it says.
  tick=60000
  [ -n "$consumer_timeout" ] && tick=$(( consumer_timeout / 4 > 100 ? consumer_timeout / 4 : 100 ))
  # A node of a cluster (--cookie) notices a peer that died within seconds, not net_ticktime's default minute.
  kernel=""
  [ -n "$cookie" ] && kernel=", {kernel, [{net_ticktime, ${RABBITMQ_NET_TICKTIME:-10}}]}"
  echo "[{rabbit, [{channel_tick_interval, $tick}]}$kernel]." >"$dir/advanced.config"
  if [ -n "$mgmt_port" ]; then echo "[rabbitmq_management]." >"$dir/enabled_plugins"; else echo "[]." >"$dir/enabled_plugins"; fi
  cat >"$dir/broker.env" <<ENV
HOME=$dir
RABBITMQ_NODENAME=$node
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$port
RABBITMQ_DIST_PORT=$((port + 20000))
RABBITMQ_MNESIA_BASE=$dir/mnesia
RABBITMQ_LOG_BASE=$dir/log
RABBITMQ_PID_FILE=$dir/broker.pid
RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
ERL_CRASH_DUMP=$dir/erl_crash.dump
ENV
  : >"$dir/rabbitmq-env.conf"
  load_env
  rm -f "$RABBITMQ_PID_FILE"
  nohup "$RMQ_BIN/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/launcher.pid"
  # rabbitmqctl wait needs the pid file, which the server writes a moment after it starts.
  for _ in $(seq 1 100); do [ -s "$RABBITMQ_PID_FILE" ] && break; sleep 0.1; done
  if ! ctl wait --timeout 90 "$RABBITMQ_PID_FILE" >"$dir/log/wait.log" 2>&1; then
    echo "broker.sh: the broker in $dir did not start; its log:" >&2
    tail -30 "$dir/log/stdout.log" >&2 || true
    exit 1
  fi
  echo "broker.sh: RabbitMQ ready on 127.0.0.1:$port${tls_port:+ (TLS on $tls_port)} in $dir"
  ;;
stop)
  load_env
  pid=$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)
  ctl shutdown >/dev/null 2>&1 || { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
  if [ -n "$pid" ]; then for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; fi
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  # epmd outlives the broker; it refuses to die while another node is registered.
  epmd -kill >/dev/null 2>&1 || true
  echo "broker.sh: stopped the broker in $dir"
  ;;
kill)
  load_env
  pid=$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  echo "broker.sh: killed the broker in $dir"
  ;;
status)
  load_env
  ctl status >/dev/null 2>&1
  ;;
ctl)
  load_env
  ctl "$@"
  ;;
*) usage ;;
esac
