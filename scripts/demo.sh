#!/usr/bin/env bash
# The main job: the five seed schemes against the vendor sandbox.
# Starts RabbitMQ and MariaDB if needed, builds ferry, starts `ferry sandbox`, creates the demo
# databases and tables (config/sql/*.sql), then `ferry run --once` for every scheme, and shows
# what arrived. Re-running it writes nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh

# The dev profile: the demo's data is small, and the tests share this build.
cargo build --locked --bin ferry
FERRY=${CARGO_TARGET_DIR:-target}/debug/ferry
export FERRY_CONFIG=${FERRY_CONFIG:-config/ferry.toml}
export SANDBOX_URL=${SANDBOX_URL:-http://127.0.0.1:9180}

$FERRY lint

for sql in config/sql/*.sql; do
  mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 < "$sql"
done

sandbox_log=$(mktemp -t ferry-sandbox.XXXXXX.log)
$FERRY sandbox --listen 127.0.0.1:9180 >"$sandbox_log" 2>&1 &
sandbox_pid=$!
trap 'kill $sandbox_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/9180) 2>/dev/null && break
  sleep 0.2
done

$FERRY run --once
echo
$FERRY status
echo
echo "What arrived:"
SQL() { mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 -N -e "$1"; }
echo "  finance.hc_dd_fktk (seed 001, Yida refunds): $(SQL 'SELECT COUNT(*) FROM finance.hc_dd_fktk') rows"
echo "  bi.bi_shops        (seed 002, Jushuitan):    $(SQL 'SELECT COUNT(*) FROM bi.bi_shops') rows"
robot=$(curl -fsS http://127.0.0.1:9180/robot/messages 2>/dev/null || echo '[]')
echo "  DingTalk group     (seed 000): $(printf '%s' "$robot" | grep -o '"msgtype"' | wc -l) message(s) pushed to the sandbox robot by this run (none on a re-run: the ledger has them)"
echo "  Latest refund rows:"
SQL 'SELECT extend_processInstanceId, order_no_new, datetime_new, sales_count, Document_Type FROM finance.hc_dd_fktk ORDER BY datetime_new DESC LIMIT 3' | sed 's/^/    /'
