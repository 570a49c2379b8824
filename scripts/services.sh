#!/usr/bin/env bash
# Make sure RabbitMQ (127.0.0.1:5672) and MariaDB (127.0.0.1:3306) are up: start them if they are
# installed but stopped, install them (Debian packages) if they are missing. Idempotent.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2 waited=0
  until port_open "$port"; do
    if [ "$waited" -ge 90 ]; then
      log "$name did not open port $port within 90 s"; return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
}

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 3306; then
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 MariaDB
fi
# Root over TCP with an empty password is what the tests and the shipped config use.
until mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; do
  sleep 1; waited=$(( ${waited:-0} + 1 ))
  [ "$waited" -lt 60 ] || { log "MariaDB accepts no root login on 127.0.0.1"; exit 1; }
done

if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ
fi
# The port opens before the broker accepts logins; wait for the node to finish booting.
rabbitmqctl await_startup >/dev/null 2>&1 || true
log "RabbitMQ and MariaDB are up"
