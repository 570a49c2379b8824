#!/usr/bin/env bash
# Benchmark: 1,000,000 rows MySQL -> RabbitMQ -> transform -> MySQL through three separate
# processes (extract, transform, load), next to `mariadb-dump | mariadb` copying the same table
# in the same run. Prints records/s and each process's peak RSS.
#
#   bench/pipeline.sh [ROWS]        (default 1000000; needs RabbitMQ and MariaDB, starts them if not)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
scripts/services.sh
cargo build --release --locked --bin ferry >&2
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
ID=b$(date +%s)
SRC=ferry_bench_${ID}_src DST=ferry_bench_${ID}_dst DUMP=ferry_bench_${ID}_dump STATE=ferry_bench_${ID}_state
OUT=$PWD/bench/out/$ID
mkdir -p "$OUT/schemes"
SQL() { mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 "$@"; }
cleanup() {
  for db in $SRC $DST $DUMP $STATE; do SQL -e "DROP DATABASE IF EXISTS \`$db\`" || true; done
  rabbitmqctl list_queues -q name 2>/dev/null | grep "^ferry\.bench-$ID\." | xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "generating $ROWS rows..." >&2
SQL <<SQL
CREATE DATABASE $SRC CHARACTER SET utf8mb4; CREATE DATABASE $DST CHARACTER SET utf8mb4; CREATE DATABASE $DUMP CHARACTER SET utf8mb4;
CREATE TABLE $SRC.orders (id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  qty INT NULL, created_at DATETIME NULL, note TEXT NULL) CHARACTER SET utf8mb4;
INSERT INTO $SRC.orders SELECT seq, CONCAT(ELT(1 + seq % 4, '张三', '李四🚀', 'Ωmega', '王五 😀 公司'), '-', seq),
  ROUND((seq * 7919 % 1000000) / 100, 2), seq % 100, '2026-01-01 00:00:00' + INTERVAL seq SECOND,
  IF(seq % 3 = 0, NULL, CONCAT('备注 ', seq)) FROM $SRC.seq_1_to_$ROWS;
CREATE TABLE $DST.orders LIKE $SRC.orders;
SQL

cat > "$OUT/ferry.toml" <<TOML
schemes = "schemes/*.json"
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
prefetch = 8
[state]
url = "mysql://root@127.0.0.1:3306/$STATE"
[connections.src]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/$SRC"
[connections.dst]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/$DST"
max_connections = 8
TOML
cat > "$OUT/schemes/bench.json" <<JSON
{ "name": "bench-$ID",
  "source": { "connection": "src", "metadata": { "api": "select", "id": "id",
    "pagination": { "pageSize": 2000, "mode": "keyset" },
    "otherRequest": [{ "field": "main_sql", "value": "SELECT id, customer, amount, qty, created_at, note FROM orders WHERE id > :last_id ORDER BY id LIMIT :limit" }] } },
  "target": { "connection": "dst", "metadata": { "api": "batchexecute", "idCheck": true, "batch_size": 2000,
    "request": [ { "field": "id", "type": "int", "value": "{id}" }, { "field": "customer", "value": "{customer}" },
      { "field": "amount", "type": "decimal", "value": "{amount}" }, { "field": "qty", "type": "int", "value": "{qty}" },
      { "field": "created_at", "value": "{created_at}" }, { "field": "note", "value": "{note}" } ],
    "otherRequest": [{ "field": "main_sql", "value": "INSERT INTO orders (id, customer, amount, qty, created_at, note) VALUES (:id, :customer, :amount, :qty, :created_at, :note) ON DUPLICATE KEY UPDATE customer = VALUES(customer), amount = VALUES(amount), qty = VALUES(qty), created_at = VALUES(created_at), note = VALUES(note)" }] } } }
JSON
export FERRY_CONFIG=$OUT/ferry.toml FERRY_LOG=warn

# Baseline: the same table through mariadb-dump | mariadb.
start=$(date +%s.%N)
mariadb-dump --default-character-set=utf8mb4 -uroot -h127.0.0.1 --single-transaction $SRC orders | SQL $DUMP
base_secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")

# Ferry: three processes; /usr/bin/time -v reports each one's peak RSS.
/usr/bin/time -v -o "$OUT/transform.time" $FERRY transform --workers 2 2>"$OUT/transform.log" &
tpid=$!
/usr/bin/time -v -o "$OUT/load.time" $FERRY load --workers 3 2>"$OUT/load.log" &
lpid=$!
sleep 1
start=$(date +%s.%N)
/usr/bin/time -v -o "$OUT/extract.time" $FERRY extract --once >"$OUT/extract.out" 2>"$OUT/extract.log"
until [ "$(SQL -N -e "SELECT COUNT(*) FROM $STATE.ferry_runs WHERE status = 'done'")" = 1 ]; do sleep 0.2; done
ferry_secs=$(awk "BEGIN { print $(date +%s.%N) - $start }")
pkill -TERM -P $tpid; pkill -TERM -P $lpid; wait $tpid $lpid || true

count=$(SQL -N -e "SELECT COUNT(*) FROM $DST.orders")
[ "$count" = "$ROWS" ] || { echo "target has $count rows, expected $ROWS" >&2; exit 1; }
same=$(SQL -N -e "SELECT (SELECT SUM(amount) FROM $SRC.orders) = (SELECT SUM(amount) FROM $DST.orders)")
[ "$same" = 1 ] || { echo "SUM(amount) differs" >&2; exit 1; }

rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MiB", $2/1024}' "$OUT/$1.time"; }
printf '%-28s %10s %12s\n' "run ($ROWS rows)" seconds records/s
printf '%-28s %10.1f %12.0f\n' "mariadb-dump | mariadb" "$base_secs" "$(awk "BEGIN { print $ROWS / $base_secs }")"
printf '%-28s %10.1f %12.0f\n' "ferry extract+transform+load" "$ferry_secs" "$(awk "BEGIN { print $ROWS / $ferry_secs }")"
echo "peak RSS: extract $(rss extract), transform $(rss transform), load $(rss load)"
