#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for trying Ferry's `[broker] urls` and node loss
# by hand; the chaos tests drive the same script (tests/common/cluster.rs). No Docker: each node is
# the machine's own RabbitMQ server started as a separate Erlang node with its own name, ports,
# data directory and config file, one shared Erlang cookie, and nodes 2 and 3 joined to node 1.
#
#   scripts/cluster.sh start          start the nodes that are down; form the cluster (~20 s)
#   scripts/cluster.sh stop           stop every node cleanly and keep the data
#   scripts/cluster.sh status         each node: running or down, its AMQP URL; the cluster's members
#   scripts/cluster.sh urls           the AMQP URLs, comma-separated (for FERRY_AMQP_URL)
#   scripts/cluster.sh kill N         kill -9 node N (1, 2 or 3), as a crash would
#   scripts/cluster.sh start-node N   start node N again (it rejoins the cluster from its data)
#   scripts/cluster.sh stop-node N    stop node N cleanly
#   scripts/cluster.sh leader QUEUE   the node leading quorum queue QUEUE (its number)
#   scripts/cluster.sh destroy        kill every node and remove the data directory
#
# Settings (environment):
#   FERRY_CLUSTER_DIR    data, logs and pid files (default /tmp/ferry-cluster)
#   FERRY_CLUSTER_NAME   node names are NAME1@localhost, NAME2@..., NAME3@... (default ferry)
#   FERRY_CLUSTER_PORTS  the three AMQP ports (default "5681 5682 5683"); distribution ports are
#                        FERRY_CLUSTER_DIST_PORTS (default each AMQP port + 20000)
# The ports and names are written into the data directory at the first start, so later commands
# (kill, start-node) find the same nodes without the settings.
set -euo pipefail

bin=/usr/lib/rabbitmq/bin
dir=${FERRY_CLUSTER_DIR:-/tmp/ferry-cluster}
timeout_secs=${FERRY_CLUSTER_TIMEOUT_SECS:-120}

die() { echo "cluster.sh: $*" >&2; exit 1; }

[ -x "$bin/rabbitmq-server" ] || die "no $bin/rabbitmq-server: install RabbitMQ (Debian package rabbitmq-server)"

settings() {
  mkdir -p "$dir"
  if [ ! -f "$dir/settings" ]; then
    local p1 p2 p3 d1 d2 d3
    read -r p1 p2 p3 <<<"${FERRY_CLUSTER_PORTS:-5681 5682 5683}"
    read -r d1 d2 d3 <<<"${FERRY_CLUSTER_DIST_PORTS:-$((p1 + 20000)) $((p2 + 20000)) $((p3 + 20000))}"
    printf 'name=%s\nports="%s %s %s"\ndist="%s %s %s"\n' "${FERRY_CLUSTER_NAME:-ferry}" \
      "$p1" "$p2" "$p3" "$d1" "$d2" "$d3" >"$dir/settings"
  fi
  # shellcheck disable=SC1091
  . "$dir/settings"
  read -r -a amqp_ports <<<"$ports"
  read -r -a dist_ports <<<"$dist"
  # One cookie for the three nodes and for rabbitmqctl (both read $HOME/.erlang.cookie).
  if [ ! -f "$dir/.erlang.cookie" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie")
    chmod 400 "$dir/.erlang.cookie"
  fi
}

node_name() { echo "${name}$1@localhost"; }
node_dir() { echo "$dir/node$1"; }
amqp_port() { echo "${amqp_ports[$(($1 - 1))]}"; }
url() { echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$1")/%2f"; }

check_node() {
  case "${1:-}" in 1 | 2 | 3) ;; *) die "name a node: 1, 2 or 3" ;; esac
}

# rabbitmqctl as the nodes' user, with their cookie; every call bounded in time.
ctl() {
  HOME="$dir" RABBITMQ_CONF_ENV_FILE="$dir/no-env" timeout 60 "$bin/rabbitmqctl" "$@"
}

pid_of() {
  local f
  f="$(node_dir "$1")/pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {
  local n=$1 d
  d=$(node_dir "$n")
  if pid_of "$n" >/dev/null; then
    return 0
  fi
  if port_open "$(amqp_port "$n")"; then
    die "port $(amqp_port "$n") of node $n is taken by another process; choose FERRY_CLUSTER_PORTS"
  fi
  mkdir -p "$d/log"
  echo "[]." >"$d/enabled_plugins"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
loopback_users.guest = true
disk_free_limit.absolute = 50MB
cluster_partition_handling = pause_minority
EOF
  # RUNNING_UNDER_SYSTEMD makes the script exec the Erlang VM: the pid is the node itself.
  HOME="$dir" \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT="${dist_ports[$((n - 1))]}" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/no-advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$d/no-env" \
    ERL_CRASH_DUMP="$d/erl_crash.dump" \
    RUNNING_UNDER_SYSTEMD=1 \
    setsid "$bin/rabbitmq-server" </dev/null >>"$d/server.log" 2>&1 &
  echo $! >"$d/pid"
}

wait_node() {
  local n=$1 deadline=$((SECONDS + timeout_secs))
  until port_open "$(amqp_port "$n")"; do
    pid_of "$n" >/dev/null || die "node $n exited while starting: $(tail -n 20 "$(node_dir "$n")/server.log")"
    [ "$SECONDS" -lt "$deadline" ] || die "node $n did not listen on $(amqp_port "$n") within ${timeout_secs} s"
    sleep 0.5
  done
}

join() {
  local n=$1
  if ctl -n "$(node_name "$n")" cluster_status --formatter json 2>/dev/null |
    tr -d ' \n' | grep -q "\"disk_nodes\":\[[^]]*\"$(node_name 1)\""; then
    return 0
  fi
  ctl -n "$(node_name "$n")" stop_app >/dev/null
  ctl -n "$(node_name "$n")" join_cluster "$(node_name 1)" >/dev/null
  ctl -n "$(node_name "$n")" start_app >/dev/null
}

cmd_start() {
  local started=$SECONDS
  for n in 1 2 3; do start_node "$n"; done
  for n in 1 2 3; do wait_node "$n"; done
  ctl -n "$(node_name 1)" await_startup >/dev/null
  for n in 2 3; do
    ctl -n "$(node_name "$n")" await_startup >/dev/null
    join "$n"
  done
  echo "cluster up in $((SECONDS - started)) s: $(cmd_urls)"
}

cmd_stop_node() {
  local n=$1 pid
  pid=$(pid_of "$n") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(node_dir "$n")/pid"
}

cmd_kill() {
  local n=$1 pid
  pid=$(pid_of "$n") || die "node $n is not running"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$(node_dir "$n")/pid"
  echo "node $n ($(node_name "$n"), pid $pid) killed"
}

cmd_urls() {
  local out=()
  for n in 1 2 3; do out+=("$(url "$n")"); done
  (IFS=,; echo "${out[*]}")
}

cmd_status() {
  for n in 1 2 3; do
    if pid_of "$n" >/dev/null && port_open "$(amqp_port "$n")"; then
      echo "node $n $(node_name "$n"): running, pid $(pid_of "$n"), $(url "$n")"
    else
      echo "node $n $(node_name "$n"): down, $(url "$n")"
    fi
  done
  for n in 1 2 3; do
    if pid_of "$n" >/dev/null; then
      echo "running members (as node $n sees them): $(ctl -n "$(node_name "$n")" cluster_status --formatter json 2>/dev/null |
        tr -d ' \n' | grep -o '"running_nodes":\[[^]]*\]' | sed 's/.*\[//; s/\]//; s/"//g; s/,/, /g')"
      break
    fi
  done
}

cmd_leader() {
  local queue=$1 n
  for n in 1 2 3; do
    pid_of "$n" >/dev/null || continue
    local leader
    leader=$(ctl -n "$(node_name "$n")" list_queues name leader --formatter json --no-table-headers 2>/dev/null |
      tr '}' '\n' | grep -F "\"name\":\"$queue\"" | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p' | head -n1)
    [ -n "$leader" ] || die "no queue $queue (or no leader) seen from node $n"
    for m in 1 2 3; do
      [ "$leader" = "$(node_name "$m")" ] && { echo "$m"; return 0; }
    done
    die "queue $queue is led by $leader, not one of this cluster's nodes"
  done
  die "no node is running"
}

cmd=${1:-status}
case "$cmd" in
  start) settings; cmd_start ;;
  stop) settings; for n in 3 2 1; do cmd_stop_node "$n"; done; echo "cluster stopped (data kept in $dir)" ;;
  status) settings; cmd_status ;;
  urls) settings; cmd_urls ;;
  kill) settings; check_node "${2:-}"; cmd_kill "$2" ;;
  start-node) settings; check_node "${2:-}"; start_node "$2"; wait_node "$2"; ctl -n "$(node_name "$2")" await_startup >/dev/null; echo "node $2 up" ;;
  stop-node) settings; check_node "${2:-}"; cmd_stop_node "$2"; echo "node $2 stopped" ;;
  leader) settings; [ -n "${2:-}" ] || die "name a queue"; cmd_leader "$2" ;;
  destroy)
    if [ -d "$dir" ]; then
      settings
      for n in 1 2 3; do pid=$(pid_of "$n") && kill -KILL "$pid" 2>/dev/null || true; done
      rm -rf "$dir"
    fi
    echo "cluster removed" ;;
  *) die "unknown command $cmd (start, stop, status, urls, kill N, start-node N, stop-node N, leader QUEUE, destroy)" ;;
esac
