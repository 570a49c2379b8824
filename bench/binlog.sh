#!/usr/bin/env bash
# Benchmark: CHANGES inserts, updates and deletes (Chinese text, emoji, DECIMAL, DATETIME, NULLs)
# made on a MariaDB with its binary log on, carried binlog -> RabbitMQ -> transform -> load
# (release build, three processes) into a copy of the table; next to the same statements applied
# by `mariadb` directly to another copy in the same run. Prints changes/s for both, the lag after
# the source's last commit, and each process's peak RSS; fails unless the target ends equal to the
# source row by row.
#
#   bench/binlog.sh [CHANGES]      (default 100000; needs RabbitMQ and MariaDB, starts them if not)
#   FERRY_BIN=target/debug/ferry bench/binlog.sh 20000    (a binary already built, e.g. a debug one)
set -euo pipefail
cd "$(dirname "$0")/.."
CHANGES=${1:-100000}
scripts/services.sh
if [ -n "${FERRY_BIN:-}" ]; then
  FERRY=$FERRY_BIN
else
  cargo build --release --locked --bin ferry >&2
  FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
fi
ID=c$(date +%s)
DST=ferry_bench_${ID}_dst BASE=ferry_bench_${ID}_base STATE=ferry_bench_${ID}_state
OUT=$PWD/bench/out/$ID
mkdir -p "$OUT/schemes" "$OUT/source"
SQL() { mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 "$@"; }

# The source: a MariaDB of its own with the binary log on, on a free port.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mariadb-install-db --no-defaults --datadir="$OUT/source/data" --auth-root-authentication-method=normal \
  --user=root --skip-test-db >"$OUT/source/install.log" 2>&1
mariadbd --no-defaults --datadir="$OUT/source/data" --port="$PORT" --socket="$OUT/source/sock" \
  --pid-file="$OUT/source/pid" --log-bin="$OUT/source/data/binlog" --binlog-format=ROW --server-id=1 \
  --bind-address=127.0.0.1 --user=root --innodb-buffer-pool-size=256M \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci >"$OUT/source/server.log" 2>&1 &
SOURCE_PID=$!
SRC() { mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 -P"$PORT" "$@"; }
PIDS=()
# Each Ferry process runs under /usr/bin/time: the signal goes to Ferry (time's child), so that it
# stops gracefully and time still writes the peak RSS. A bare `wait` would also wait for mariadbd.
stop_ferry() {
  for p in "${PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  [ ${#PIDS[@]} -eq 0 ] || wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}
cleanup() {
  stop_ferry
  kill -TERM $SOURCE_PID 2>/dev/null || true; wait $SOURCE_PID 2>/dev/null || true
  for db in $DST $BASE $STATE; do SQL -e "DROP DATABASE IF EXISTS \`$db\`" || true; done
  rabbitmqctl list_queues -q name 2>/dev/null | grep "^ferry\.cdc-$ID\." | xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null 2>&1 || true
  rm -rf "$OUT/source"
}
trap cleanup EXIT
for _ in $(seq 100); do SRC -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

TABLE="(id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  qty INT NULL, created_at DATETIME NULL, note TEXT NULL) CHARACTER SET utf8mb4"
SRC -e "CREATE DATABASE shop CHARACTER SET utf8mb4; CREATE TABLE shop.orders $TABLE"
SQL -e "CREATE DATABASE $DST CHARACTER SET utf8mb4; CREATE TABLE $DST.orders $TABLE;
        CREATE DATABASE $BASE CHARACTER SET utf8mb4; CREATE TABLE $BASE.orders $TABLE"

# The changes: 6 inserts, 3 updates and 1 delete in every 10, 100 statements per transaction.
python3 - "$CHANGES" >"$OUT/changes.sql" <<'PY'
import sys
n = int(sys.argv[1])
names = ["张三", "李四🚀", "Ωmega", "王五 😀 公司"]
print("SET autocommit = 0;")
next_id, live = 1, []
for k in range(n):
    r = k % 10
    if r < 6 or len(live) < 10:
        i = next_id; next_id += 1; live.append(i)
        note = "NULL" if i % 3 == 0 else f"'备注 {i} ✓'"
        print(f"INSERT INTO orders VALUES ({i}, '{names[i % 4]}-{i}', {(i * 7919 % 1000000) / 100:.2f}, {i % 100}, "
              f"'2026-01-01 00:00:00' + INTERVAL {i} SECOND, {note});")
    elif r < 9:
        i = live[(k * 7919) % len(live)]
        print(f"UPDATE orders SET amount = amount + 0.01, note = CONCAT(IFNULL(note, ''), ' 已更新') WHERE id = {i};")
    else:
        i = live.pop((k * 104729) % len(live))
        print(f"DELETE FROM orders WHERE id = {i};")
    if k % 100 == 99:
        print("COMMIT;")
print("COMMIT;")
PY

cat > "$OUT/ferry.toml" <<TOML
schemes = "schemes/*.json"
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
prefetch = 8
[state]
url = "mysql://root@127.0.0.1:3306/$STATE"
[connections.src]
kind = "mysql"
url = "mysql://root@127.0.0.1:$PORT/shop"
[connections.dst]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/$DST"
TOML
cat > "$OUT/schemes/cdc.json" <<JSON
{ "name": "cdc-$ID",
  "source": { "connection": "src", "metadata": { "api": "binlog", "tables": ["orders"],
    "pagination": { "pageSize": 2000 } } },
  "target": { "connection": "dst", "metadata": { "api": "batchexecute", "idCheck": true, "batch_size": 2000,
    "request": [ { "field": "id", "type": "int", "value": "{id}" }, { "field": "customer", "value": "{customer}" },
      { "field": "amount", "type": "decimal", "value": "{amount}" }, { "field": "qty", "type": "int", "value": "{qty}" },
      { "field": "created_at", "value": "{created_at}" }, { "field": "note", "value": "{note}" } ],
    "otherRequest": [
      { "field": "main_sql", "value": "INSERT INTO orders (id, customer, amount, qty, created_at, note) VALUES (:id, :customer, :amount, :qty, :created_at, :note) ON DUPLICATE KEY UPDATE customer = VALUES(customer), amount = VALUES(amount), qty = VALUES(qty), created_at = VALUES(created_at), note = VALUES(note)" },
      { "field": "delete_sql", "value": "DELETE FROM orders WHERE id = :id" } ] } } }
JSON
export FERRY_CONFIG=$OUT/ferry.toml FERRY_LOG=warn

# Baseline: the same statements applied by mariadb directly.
start=$(date +%s.%N)
SQL "$BASE" <"$OUT/changes.sql"
base_secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")

/usr/bin/time -v -o "$OUT/transform.time" $FERRY transform 2>"$OUT/transform.log" & PIDS+=($!)
/usr/bin/time -v -o "$OUT/load.time" $FERRY load 2>"$OUT/load.log" & PIDS+=($!)
/usr/bin/time -v -o "$OUT/extract.time" env FERRY_LOG=info $FERRY extract --once >"$OUT/extract.out" 2>"$OUT/extract.log" & PIDS+=($!)
until grep -q "snapshot copied" "$OUT/extract.log"; do sleep 0.2; done

digest() { echo "SELECT COUNT(*), IFNULL(SHA2(GROUP_CONCAT(CONCAT_WS('|', id, customer, amount, IFNULL(qty, '-'), IFNULL(created_at, '-'), IFNULL(note, '-')) ORDER BY id SEPARATOR '\n'), 256), '') FROM orders"; }
start=$(date +%s.%N)
SRC shop <"$OUT/changes.sql"
source_secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")
want=$(SRC -N shop -e "SET SESSION group_concat_max_len = 1073741824; $(digest)")
until [ "$(SQL -N "$DST" -e "SET SESSION group_concat_max_len = 1073741824; $(digest)")" = "$want" ]; do
  sleep 0.1
  awk "BEGIN { exit !($(date +%s.%N) - $start > 600) }" && { echo "the target did not catch up in 600 s" >&2; exit 1; }
done
ferry_secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")
base=$(SQL -N "$BASE" -e "SET SESSION group_concat_max_len = 1073741824; $(digest)")
[ "$base" = "$want" ] || { echo "the baseline differs from the source" >&2; exit 1; }
stop_ferry

rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MiB", $2/1024}' "$OUT/$1.time"; }
printf '%-44s %10s %12s\n' "run ($CHANGES changes, $(echo "$want" | cut -f1) rows left)" seconds changes/s
printf '%-44s %10.1f %12.0f\n' "mariadb applying the statements directly" "$base_secs" "$(awk "BEGIN { print $CHANGES / $base_secs }")"
printf '%-44s %10.1f %12.0f\n' "binlog -> ferry -> target (source commits + lag)" "$ferry_secs" "$(awk "BEGIN { print $CHANGES / $ferry_secs }")"
printf '%-44s %10.1f\n' "  of which the source's own commits" "$source_secs"
echo "peak RSS: extract $(rss extract), transform $(rss transform), load $(rss load)"
