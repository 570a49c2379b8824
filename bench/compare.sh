#!/usr/bin/env bash
# One command, one table: the same generated contact table (Chinese text, emoji, DECIMAL,
# DATETIME, NULLs) copied MySQL -> MySQL every way we compare Ferry with, in one run:
#
#   dump|restore        mariadb-dump | mariadb                       (the baseline)
#   INSERT...SELECT     one server-side statement
#   ferry keyset        ferry run --once, `id > :last_id order by id limit :limit`, batchexecute upsert
#   ferry offset        ferry run --once, seed 000's `limit :limit offset :offset` (paged by key)
#   ferry offset_written  the same with `pagination.mode = "offset"`: offset paging as written
#   ferry 3 processes   ferry extract --once + ferry transform + ferry load, keyset
#   load xN             N = 1, 2, 4 `ferry load` processes draining a pre-filled load queue into a
#                       table whose trigger sleeps 2 ms per row (a latency-bound target), beside
#                       8 plain `mariadb` clients inserting the same rows (the database's own limit)
#
# For each: wall seconds, records/s, the ratio to dump|restore's rate, CPU seconds of MariaDB and
# RabbitMQ (from /proc/PID/stat, so other work on the same servers counts too: run it on a quiet
# machine) and of the copying client or Ferry processes (`/usr/bin/time -v`), Ferry's CPU
# microseconds per record, and the peak RSS of each client process. Every Ferry copy is checked:
# the target's row count and CHECKSUM TABLE equal the source's. Not part of CI.
#
#   bench/compare.sh [ROWS] [SCALE_ROWS]     (defaults 200000 and 20000)
#
# Environment: FERRY (a ferry binary; default: build --release), PAGE (rows per page, 2000),
# SCALE_PAGE (rows per message in the scaling case, 250), CASES (which rows to run, default
# "dump insert keyset offset offset_written three scale"), WRAP (a command put before `ferry run
# --once` in the one-process cases, e.g. WRAP="perf record -e cpu-clock -g -o keyset.perf" to
# profile them; its own CPU then counts in the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-200000}
SCALE_ROWS=${2:-20000}
PAGE=${PAGE:-2000}
SCALE_PAGE=${SCALE_PAGE:-250}
CASES=${CASES:-dump insert keyset offset offset_written three scale}
scripts/services.sh
if [ -z "${FERRY:-}" ]; then
  cargo build --release --locked --bin ferry >&2
  FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
fi
ID=c$(date +%s)
DB=ferry_bench_$ID
OUT=$PWD/bench/out/$ID
mkdir -p "$OUT"
SQL() { mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 "$@"; }
Q() { SQL -N -e "$1"; }
HZ=$(getconf CLK_TCK)
cleanup() {
  Q "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '${DB}%'" |
    while read -r db; do Q "DROP DATABASE IF EXISTS \`$db\`" || true; done
  rabbitmqctl list_queues -q name 2>/dev/null | grep "^ferry\.bench-$ID" |
    xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null 2>&1 || true
}
trap cleanup EXIT

# CPU seconds (user + system) so far of the process listening on TCP port $1 (the server this
# benchmark uses, not another broker or database someone runs beside it).
listener() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
MARIADB_PID=$(listener 3306) RABBIT_PID=$(listener 5672)
cpu_of() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
now() { date +%s.%N; }
# user + system seconds and peak RSS (MiB) from a `/usr/bin/time -v` file.
time_cpu() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }
time_rss() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"; }
sum() { awk '{ s += $1 } END { printf "%.2f", s }'; }

ROWS_OUT=()
# row NAME RECORDS WALL MARIADB_CPU RABBIT_CPU CLIENT_CPU FERRY(1 if the client is Ferry) RSS
row() { local IFS=$'\t'; ROWS_OUT+=("$*"); }
marks() { M0=$(cpu_of "$MARIADB_PID"); R0=$(cpu_of "$RABBIT_PID"); T0=$(now); }
since() { # -> WALL MDB RMQ
  local t1 m1 r1
  t1=$(now); m1=$(cpu_of "$MARIADB_PID"); r1=$(cpu_of "$RABBIT_PID")
  echo "$(awk "BEGIN { print $t1 - $T0 }") $(awk "BEGIN { print $m1 - $M0 }") $(awk "BEGIN { print $r1 - $R0 }")"
}

echo "generating $ROWS contact rows..." >&2
SQL <<SQL
CREATE DATABASE ${DB}_src CHARACTER SET utf8mb4;
CREATE TABLE ${DB}_src.www_contact (id BIGINT PRIMARY KEY, company VARCHAR(100) NOT NULL,
  name VARCHAR(50) NOT NULL, phone VARCHAR(20) NULL, amount DECIMAL(12,2) NULL, message TEXT NULL,
  created_at DATETIME NOT NULL) CHARACTER SET utf8mb4;
INSERT INTO ${DB}_src.www_contact SELECT seq,
  CONCAT(ELT(1 + seq % 4, '某某科技有限公司', '深圳🚀贸易', 'Ωmega GmbH', '王五 😀 公司'), ' ', seq),
  CONCAT(ELT(1 + seq % 3, '张三', '李四', 'Zoë'), seq),
  IF(seq % 7 = 0, NULL, CONCAT('138', LPAD(seq, 8, '0'))),
  IF(seq % 5 = 0, NULL, ROUND((seq * 7919 % 1000000) / 100, 2)),
  IF(seq % 3 = 0, NULL, CONCAT('想了解一下贵公司的产品报价 👍 #', seq)),
  NOW() - INTERVAL (seq % 80000) SECOND
  FROM ${DB}_src.seq_1_to_$ROWS;
SQL
SRC_SUM=$(Q "CHECKSUM TABLE ${DB}_src.www_contact" | awk '{ print $2 }')

target() { # new database $1 with an empty copy of the table
  Q "CREATE DATABASE $1 CHARACTER SET utf8mb4; CREATE TABLE $1.www_contact LIKE ${DB}_src.www_contact"
}
check() { # target database $1 holds exactly the source's first $2 rows
  local n s want
  n=$(Q "SELECT COUNT(*) FROM $1.www_contact")
  [ "$n" = "$2" ] || { echo "$1: $n rows, expected $2" >&2; exit 1; }
  if [ "$2" = "$ROWS" ]; then
    s=$(Q "CHECKSUM TABLE $1.www_contact" | awk '{ print $2 }')
    [ "$s" = "$SRC_SUM" ] || { echo "$1: CHECKSUM TABLE $s, the source's $SRC_SUM" >&2; exit 1; }
  else
    want=$(Q "SELECT COUNT(*) FROM ${DB}_src.www_contact s JOIN $1.www_contact t USING (id)
      WHERE s.id <= $2 AND s.company <=> t.company AND s.name <=> t.name AND s.phone <=> t.phone
      AND s.amount <=> t.amount AND s.message <=> t.message AND s.created_at <=> t.created_at")
    [ "$want" = "$2" ] || { echo "$1: $want of $2 rows equal the source's" >&2; exit 1; }
  fi
}

# A ferry.toml in $OUT/$1 for scheme files written there, target database $2.
ferry_config() {
  mkdir -p "$OUT/$1/schemes"
  cat >"$OUT/$1/ferry.toml" <<TOML
schemes = "schemes/*.json"
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
[state]
url = "mysql://root@127.0.0.1:3306/${DB}_state"
[connections.src]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/${DB}_src"
[connections.dst]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/$2"
max_connections = 8
TOML
}
# scheme CASE NAME PAGE_SIZE SQL [REQUEST] [MODE]: a scheme copying www_contact by SQL into `dst`.
scheme() {
  local mode=""
  [ -z "${6:-}" ] || mode=", \"mode\": \"$6\""
  cat >"$OUT/$1/schemes/$2.json" <<JSON
{ "name": "$2",
  "source": { "connection": "src", "metadata": { "api": "select", "id": "id",
    "pagination": { "pageSize": $3$mode }, ${5:-}
    "otherRequest": [{ "field": "main_sql", "label": "主查询语句", "type": "string", "value": "$4" }] } },
  "target": { "connection": "dst", "metadata": { "api": "batchexecute", "idCheck": true, "batch_size": $3,
    "request": [ { "field": "id", "type": "int", "value": "{id}" }, { "field": "company", "value": "{company}" },
      { "field": "name", "value": "{name}" }, { "field": "phone", "value": "{phone}" },
      { "field": "amount", "type": "decimal", "value": "{amount}" }, { "field": "message", "value": "{message}" },
      { "field": "created_at", "type": "datetime", "value": "{created_at}" } ],
    "otherRequest": [{ "field": "main_sql", "value": "INSERT INTO www_contact (id, company, name, phone, amount, message, created_at) VALUES (:id, :company, :name, :phone, :amount, :message, :created_at) ON DUPLICATE KEY UPDATE company = VALUES(company), name = VALUES(name), phone = VALUES(phone), amount = VALUES(amount), message = VALUES(message), created_at = VALUES(created_at)" }] } } }
JSON
}
COLS="id, company, name, phone, amount, message, created_at"
WINDOW="created_at >= '{{DAYS_AGO_1|datetime}}'"
KEYSET_SQL="select $COLS from www_contact where $WINDOW and id > :last_id order by id limit :limit"
OFFSET_SQL="select $COLS from www_contact where $WINDOW limit :limit offset :offset"
OFFSET_REQUEST='"request": [{ "field": "main_params", "label": "主参数", "type": "object", "children": [
      { "field": "limit", "label": "limit", "type": "string", "value": "{PAGINATION_PAGE_SIZE}", "parent": "main_params" },
      { "field": "offset", "label": "offset", "type": "string", "value": "{PAGINATION_START_ROW}", "parent": "main_params" } ] }],'
run_done() { # the run of scheme $1 has finished
  [ "$(Q "SELECT COUNT(*) FROM ${DB}_state.ferry_runs WHERE scheme = '$1' AND status = 'done'" 2>/dev/null || echo 0)" = 1 ]
}
ferry_bg() { # ferry_bg NAME ARGS...: start a ferry process under /usr/bin/time; its time pid in $!
  local name=$1; shift
  /usr/bin/time -v -o "$OUT/$name.time" "$FERRY" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log" &
}
stop_bg() { # stop the ferry processes under the given /usr/bin/time pids, wait for them
  local tp child
  for tp in "$@"; do
    for child in $(pgrep -P "$tp"); do kill -TERM "$child" 2>/dev/null || true; done
  done
  wait "$@" 2>/dev/null || true
}

case_on() { [[ " $CASES " == *" $1 "* ]]; }

if case_on dump; then
  echo "dump|restore..." >&2
  target ${DB}_dump
  marks
  /usr/bin/time -v -o "$OUT/dump.time" mariadb-dump --default-character-set=utf8mb4 -uroot -h127.0.0.1 \
    --single-transaction ${DB}_src www_contact >"$OUT/dump.sql"
  /usr/bin/time -v -o "$OUT/restore.time" mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 ${DB}_dump <"$OUT/dump.sql"
  read -r wall mdb rmq < <(since)
  check ${DB}_dump "$ROWS"
  row "dump|restore" "$ROWS" "$wall" "$mdb" "$rmq" \
    "$(printf '%s\n' "$(time_cpu "$OUT/dump.time")" "$(time_cpu "$OUT/restore.time")" | sum)" 0 \
    "dump $(time_rss "$OUT/dump.time"), mariadb $(time_rss "$OUT/restore.time")"
  rm -f "$OUT/dump.sql"
fi

if case_on insert; then
  echo "INSERT...SELECT..." >&2
  target ${DB}_insert
  marks
  Q "INSERT INTO ${DB}_insert.www_contact SELECT * FROM ${DB}_src.www_contact"
  read -r wall mdb rmq < <(since)
  check ${DB}_insert "$ROWS"
  row "INSERT...SELECT" "$ROWS" "$wall" "$mdb" "$rmq" 0 0 "-"
fi

once_case() { # once_case NAME SQL [REQUEST] [MODE]: ferry run --once, one process
  echo "ferry run --once ($1)..." >&2
  target ${DB}_$1
  ferry_config "$1" ${DB}_$1
  scheme "$1" "bench-$ID-$1" "$PAGE" "$2" "${3:-}" "${4:-}"
  marks
  FERRY_CONFIG=$OUT/$1/ferry.toml FERRY_LOG=warn /usr/bin/time -v -o "$OUT/$1.time" \
    ${WRAP:-} "$FERRY" run --once >"$OUT/$1.out" 2>"$OUT/$1.log" || { cat "$OUT/$1.out" "$OUT/$1.log" >&2; exit 1; }
  read -r wall mdb rmq < <(since)
  check ${DB}_$1 "$ROWS"
  row "ferry $1 (run --once)" "$ROWS" "$wall" "$mdb" "$rmq" "$(time_cpu "$OUT/$1.time")" 1 \
    "ferry $(time_rss "$OUT/$1.time")"
}
case_on keyset && once_case keyset "$KEYSET_SQL"
case_on offset && once_case offset "$OFFSET_SQL" "$OFFSET_REQUEST"
# The same statement paged by offset as written (`pagination.mode = "offset"`).
case_on offset_written && once_case offset_written "$OFFSET_SQL" "$OFFSET_REQUEST" offset

if case_on three; then
  echo "ferry extract + transform + load..." >&2
  target ${DB}_three
  ferry_config three ${DB}_three
  scheme three "bench-$ID-three" "$PAGE" "$KEYSET_SQL"
  export FERRY_CONFIG=$OUT/three/ferry.toml FERRY_LOG=warn
  # Declare the queues and the state tables first, so that the consumers find them.
  "$FERRY" lint >/dev/null 2>&1 || true
  marks
  ferry_bg transform transform; tp=$!
  ferry_bg load load; lp=$!
  /usr/bin/time -v -o "$OUT/extract.time" "$FERRY" extract --once >"$OUT/extract.out" 2>"$OUT/extract.log"
  until run_done "bench-$ID-three"; do sleep 0.1; done
  read -r wall mdb rmq < <(since)
  stop_bg $tp $lp
  unset FERRY_CONFIG
  check ${DB}_three "$ROWS"
  row "ferry extract+transform+load" "$ROWS" "$wall" "$mdb" "$rmq" \
    "$(for p in extract transform load; do time_cpu "$OUT/$p.time"; echo; done | sum)" 1 \
    "extract $(time_rss "$OUT/extract.time"), transform $(time_rss "$OUT/transform.time"), load $(time_rss "$OUT/load.time")"
fi

if case_on scale; then
  slow_target() {
    target "$1"
    Q "CREATE TRIGGER $1.slow BEFORE INSERT ON $1.www_contact FOR EACH ROW SET @ferry_bench_sleep = SLEEP(0.002)"
  }
  # The database's own limit: 8 plain clients, each inserting an eighth of the rows.
  echo "8 mariadb clients into the 2 ms/row target..." >&2
  slow_target ${DB}_plain8
  marks
  pids=()
  for k in 0 1 2 3 4 5 6 7; do
    Q "INSERT INTO ${DB}_plain8.www_contact SELECT * FROM ${DB}_src.www_contact WHERE id <= $SCALE_ROWS AND id % 8 = $k" &
    pids+=($!)
  done
  wait "${pids[@]}"
  read -r wall mdb rmq < <(since)
  check ${DB}_plain8 "$SCALE_ROWS"
  row "8 mariadb clients, 2 ms/row" "$SCALE_ROWS" "$wall" "$mdb" "$rmq" 0 0 "-"

  for n in 1 2 4; do
    echo "$n ferry load process(es) into the 2 ms/row target..." >&2
    c=scale$n name=bench-$ID-scale$n
    slow_target ${DB}_$c
    ferry_config $c ${DB}_$c
    scheme $c "$name" "$SCALE_PAGE" "select $COLS from www_contact where id <= $SCALE_ROWS and id > :last_id order by id limit :limit"
    export FERRY_CONFIG=$OUT/$c/ferry.toml FERRY_LOG=warn
    # Fill the load queue: extract and transform with no loader running.
    ferry_bg $c-transform transform; tp=$!
    "$FERRY" extract --once >"$OUT/$c-extract.out" 2>"$OUT/$c-extract.log"
    pages=$(( (SCALE_ROWS + SCALE_PAGE - 1) / SCALE_PAGE ))
    until [ "$(rabbitmqctl list_queues -q name messages_ready 2>/dev/null | awk -v q="ferry.$name.load" '$1 == q { print $2 }')" = "$pages" ]; do
      sleep 0.5
    done
    stop_bg $tp
    marks
    lps=()
    for i in $(seq 1 $n); do ferry_bg $c-load$i load; lps+=($!); done
    until run_done "$name"; do sleep 0.1; done
    read -r wall mdb rmq < <(since)
    stop_bg "${lps[@]}"
    unset FERRY_CONFIG
    check ${DB}_$c "$SCALE_ROWS"
    row "$n x ferry load, 2 ms/row" "$SCALE_ROWS" "$wall" "$mdb" "$rmq" \
      "$(for i in $(seq 1 $n); do time_cpu "$OUT/$c-load$i.time"; echo; done | sum)" 1 \
      "$(for i in $(seq 1 $n); do printf 'load %s ' "$(time_rss "$OUT/$c-load$i.time")"; done)"
  done
fi

# The table.
base_rate=""
for r in "${ROWS_OUT[@]}"; do
  IFS=$'\t' read -r name records wall _ <<<"$r"
  [ "$name" = "dump|restore" ] && base_rate=$(awk "BEGIN { print $records / $wall }")
done
{
  echo "| copy | rows | wall s | records/s | × dump\\|restore | CPU s: MariaDB | RabbitMQ | client or Ferry | Ferry µs/record | peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for r in "${ROWS_OUT[@]}"; do
    IFS=$'\t' read -r name records wall mdb rmq client ferry rss <<<"$r"
    rate=$(awk "BEGIN { printf \"%.0f\", $records / $wall }")
    ratio=$([ -n "$base_rate" ] && awk "BEGIN { printf \"%.2f\", $rate / $base_rate }" || echo -)
    us=$([ "$ferry" = 1 ] && awk "BEGIN { printf \"%.1f\", $client * 1000000 / $records }" || echo -)
    printf '| %s | %s | %.2f | %s | %s | %.2f | %.2f | %.2f | %s | %s |\n' \
      "${name//|/\\|}" "$records" "$wall" "$rate" "$ratio" "$mdb" "$rmq" "$client" "$us" "$rss"
  done
} | tee "$OUT/table.md"
echo "(files in $OUT)" >&2
