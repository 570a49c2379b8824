//! Issue 3, end to end against the real RabbitMQ and MariaDB: 100,000 generated rows (Chinese
//! text, emoji, quotes, NULLs, DECIMAL(12,2) amounts, DATETIME edge values, JSON) moved MySQL to
//! MySQL by three separate processes (extract, transform, load).

mod common;

use std::time::Duration;

use common::{World, drain_queue};

const ROWS: i64 = 100_000;
/// Rows whose `qty` is not a number: the transform's int conversion fails (path `qty`).
const BAD_QTY: &[i64] = &[
    7, 1_000, 2_500, 9_999, 15_000, 22_222, 33_333, 47_000, 58_001, 61_234, 88_888, 99_998,
];
/// Rows with a negative amount: the target's CHECK constraint refuses them in the load.
const NEGATIVE: &[i64] = &[
    3, 11, 4_242, 12_345, 20_000, 31_337, 45_678, 50_000, 64_000, 70_707, 80_808, 90_001, 100_000,
];

fn ids(list: &[i64]) -> String {
    list.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn setup(world: &mut World) -> (String, String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.orders (
                id BIGINT NOT NULL PRIMARY KEY,
                customer VARCHAR(100) NOT NULL,
                amount DECIMAL(12,2) NOT NULL,
                qty VARCHAR(16) NULL,
                created_at DATETIME NULL,
                note TEXT NULL,
                payload JSON NULL
            ) CHARACTER SET utf8mb4;
            INSERT INTO `{src}`.orders
            SELECT seq,
                CONCAT(ELT(1 + seq % 5, '张三', '李四🚀', 'Ωmega', '王五 😀 公司', 'O''Brien \"q\" \\\\ x'), '-', seq),
                CASE seq % 13 WHEN 0 THEN 9999999999.99 WHEN 1 THEN 0.00 WHEN 2 THEN 0.01 ELSE ROUND((seq * 7919 % 1000000) / 100, 2) END,
                IF(seq % 17 = 0, NULL, CAST(seq % 100 AS CHAR)),
                CASE seq % 7 WHEN 0 THEN NULL WHEN 1 THEN '1000-01-01 00:00:00' WHEN 2 THEN '9999-12-31 23:59:59'
                    WHEN 3 THEN '2024-02-29 23:59:59' ELSE '2026-11-23 08:00:00' + INTERVAL seq SECOND END,
                IF(seq % 3 = 0, NULL, CONCAT('备注 ', seq, ' ✓ 🎉')),
                IF(seq % 11 = 0, NULL, JSON_OBJECT('k', seq, 'v', '值'))
            FROM `{src}`.seq_1_to_{ROWS};
            UPDATE `{src}`.orders SET qty = 'abc' WHERE id IN ({bad_qty});
            UPDATE `{src}`.orders SET amount = -1.00 WHERE id IN ({negative});
            CREATE TABLE `{dst}`.orders_copy (
                id BIGINT NOT NULL PRIMARY KEY,
                customer VARCHAR(100) NOT NULL,
                amount DECIMAL(12,2) NOT NULL,
                qty INT NULL,
                created_at DATETIME NULL,
                note TEXT NULL,
                payload JSON NULL,
                CONSTRAINT amount_nonneg CHECK (amount >= 0)
            ) CHARACTER SET utf8mb4;",
            bad_qty = ids(BAD_QTY),
            negative = ids(NEGATIVE),
        ))
        .await;
    (src, dst, state)
}

fn write_config(world: &mut World, src: &str, dst: &str, state: &str) -> String {
    let scheme = world.scheme_name("orders");
    world.write_ferry_toml(
        state,
        &(common::mysql_connection("src", src) + &common::mysql_connection("dst", dst)),
    );
    world.write(
        "schemes/orders.json",
        &format!(
            r#"{{
  "name": "{scheme}",
  "source": {{
    "connection": "src",
    "metadata": {{
      "api": "select", "id": "id", "idCheck": true,
      "pagination": {{ "pageSize": 1000, "mode": "keyset", "keyset_field": "id" }},
      "otherRequest": [{{ "field": "main_sql", "type": "string",
        "value": "SELECT id, customer, amount, qty, created_at, note, payload FROM orders WHERE id > :last_id ORDER BY id LIMIT :limit" }}]
    }}
  }},
  "target": {{
    "connection": "dst",
    "metadata": {{
      "api": "batchexecute", "idCheck": true, "batch_size": 500,
      "request": [
        {{ "field": "id", "type": "int", "value": "{{id}}" }},
        {{ "field": "customer", "type": "string", "value": "{{customer}}" }},
        {{ "field": "amount", "type": "decimal", "value": "{{amount}}" }},
        {{ "field": "qty", "type": "int", "value": "{{qty}}" }},
        {{ "field": "created_at", "type": "string", "value": "{{created_at}}" }},
        {{ "field": "note", "type": "string", "value": "{{note}}" }},
        {{ "field": "payload", "type": "string", "value": "{{payload}}" }}
      ],
      "otherRequest": [{{ "field": "main_sql", "type": "string",
        "value": "INSERT INTO orders_copy (id, customer, amount, qty, created_at, note, payload) VALUES (:id, :customer, :amount, :qty, :created_at, :note, :payload) ON DUPLICATE KEY UPDATE customer = VALUES(customer), amount = VALUES(amount), qty = VALUES(qty), created_at = VALUES(created_at), note = VALUES(note), payload = VALUES(payload)" }}]
    }}
  }}
}}"#
        ),
    );
    scheme
}

/// An ordered checksum over every column.
fn checksum_sql(db: &str, table: &str, filter: &str) -> String {
    format!(
        "SELECT SHA2(GROUP_CONCAT(CONCAT_WS('|', id, customer, amount, IFNULL(qty, '∅'), IFNULL(created_at, '∅'),
             IFNULL(note, '∅'), IFNULL(payload, '∅')) ORDER BY id SEPARATOR '\\n'), 256)
         FROM `{db}`.`{table}` {filter}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_move_100k_rows_exactly_once_and_dead_letter_only_the_poison() {
    let mut world = World::new("p").await;
    let (src, dst, state) = setup(&mut world).await;
    let scheme = write_config(&mut world, &src, &dst, &state);
    let poison: Vec<i64> = BAD_QTY.iter().chain(NEGATIVE).copied().collect();
    let good_filter = format!("WHERE id NOT IN ({})", ids(&poison));

    // Three separate processes, as in production.
    world.spawn(&["transform", "--workers", "2"], "transform.log");
    world.spawn(&["load", "--workers", "2"], "load.log");
    let extract = world.ferry(&["extract", "--once"]);
    let out = String::from_utf8_lossy(&extract.stdout).to_string();
    assert!(
        extract.status.success(),
        "extract failed: {out}\n{}",
        String::from_utf8_lossy(&extract.stderr)
    );
    assert!(
        out.contains(&format!("{scheme}: extracted {ROWS} records in 100 pages")),
        "{out}"
    );

    let state_db = state.rsplit('/').next().unwrap().to_string();
    let status_sql = format!("SELECT COUNT(*) FROM `{state_db}`.ferry_runs WHERE status = 'done'");
    world
        .wait_for_count(
            "the run to settle",
            &status_sql,
            Duration::from_secs(600),
            |n| n == 1,
        )
        .await;
    let codes = world.stop_all();
    assert_eq!(
        codes,
        vec![Some(0), Some(0)],
        "graceful exits\n{}\n{}",
        world.log("transform.log"),
        world.log("load.log")
    );

    // Every good row, exactly once, unchanged.
    let target_count = world
        .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.orders_copy"))
        .await;
    assert_eq!(target_count, ROWS - 25);
    let sum = |db: &str, table: &str, filter: &str| {
        format!("SELECT CAST(SUM(amount) AS CHAR) FROM `{db}`.`{table}` {filter}")
    };
    assert_eq!(
        world.scalar_string(&sum(&dst, "orders_copy", "")).await,
        world
            .scalar_string(&sum(&src, "orders", &good_filter))
            .await
    );
    assert_eq!(
        world
            .scalar_string(&checksum_sql(&dst, "orders_copy", ""))
            .await,
        world
            .scalar_string(&checksum_sql(&src, "orders", &good_filter))
            .await,
        "ordered checksum of every column"
    );

    // Exactly the 25 poison rows are dead letters, each with its error in the headers.
    let transform_dead = drain_queue(&format!("ferry.{scheme}.transform.dlq")).await;
    let load_dead = drain_queue(&format!("ferry.{scheme}.load.dlq")).await;
    let mut bad_qty: Vec<i64> = transform_dead
        .iter()
        .map(|(b, _)| b["records"][0]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    bad_qty.sort();
    assert_eq!(bad_qty, BAD_QTY);
    for (body, headers) in &transform_dead {
        assert_eq!(
            body["records"].as_array().unwrap().len(),
            1,
            "one record per dead letter"
        );
        assert_eq!(headers["x-ferry-error-class"], "record");
        assert_eq!(headers["x-ferry-error-path"], "qty");
        assert!(headers["x-ferry-error"].contains("abc"), "{headers:?}");
        assert_eq!(headers["x-ferry-stage"], "transform");
    }
    let mut negative: Vec<i64> = load_dead
        .iter()
        .map(|(b, _)| b["records"][0]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    negative.sort();
    assert_eq!(negative, NEGATIVE);
    for (_, headers) in &load_dead {
        assert_eq!(headers["x-ferry-error-class"], "record");
        assert!(
            headers["x-ferry-error"].contains("amount_nonneg"),
            "{headers:?}"
        );
        assert!(
            headers.contains_key("x-ferry-first-failed-at")
                && headers.contains_key("x-ferry-failed-at")
        );
    }

    // One run reads as one trace: extract page -> transform -> load, across the three processes.
    let trace_ids: std::collections::BTreeSet<String> = transform_dead
        .iter()
        .chain(&load_dead)
        .map(|(_, h)| {
            let parts: Vec<&str> = h
                .get("traceparent")
                .unwrap_or_else(|| panic!("no traceparent: {h:?}"))
                .split('-')
                .collect();
            assert_eq!(
                (parts.len(), parts[0], parts[1].len(), parts[2].len()),
                (4, "00", 32, 16),
                "{h:?}"
            );
            parts[1].to_string()
        })
        .collect();
    assert_eq!(
        trace_ids.len(),
        1,
        "every dead letter of the run carries the run's trace id: {trace_ids:?}"
    );

    // Second run: changed rows are updated, new rows arrive, nothing is duplicated.
    world
        .exec(&format!(
            "UPDATE `{src}`.orders SET amount = amount + 1, customer = CONCAT(customer, ' 改') WHERE id IN (5, 50, 500, 5000, 50001);
             INSERT INTO `{src}`.orders (id, customer, amount, qty, created_at, note, payload)
             SELECT {ROWS} + seq, CONCAT('新客户 🆕 ', seq), seq * 1.5, '1', '2026-11-24 00:00:00', NULL, NULL FROM `{src}`.seq_1_to_10;"
        ))
        .await;
    let rerun = world.ferry(&["run", "--once"]);
    let out = String::from_utf8_lossy(&rerun.stdout).to_string();
    assert_eq!(
        rerun.status.code(),
        Some(3),
        "finished, with dead letters: {out}\n{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(
        out.contains(&format!(
            "{} records: 10 inserted, 5 updated, {} unchanged, 25 dead-lettered",
            ROWS + 10,
            ROWS - 25 - 5
        )),
        "{out}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.orders_copy"))
            .await,
        ROWS - 25 + 10
    );
    assert_eq!(
        world
            .scalar_string(&checksum_sql(&dst, "orders_copy", ""))
            .await,
        world
            .scalar_string(&checksum_sql(&src, "orders", &good_filter))
            .await,
        "updated and new rows arrived, nothing else changed"
    );
    world.clean().await;
}

/// A loader killed with SIGKILL in the middle of a run loses nothing and duplicates nothing:
/// its unacknowledged batches are redelivered to the next loader and upserted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_killed_mid_run_loses_and_duplicates_nothing() {
    const N: i64 = 30_000;
    let mut world = World::new("k").await;
    let (src, dst, state) = setup_small(&mut world, N).await;
    let scheme = write_config(&mut world, &src, &dst, &state);

    world.spawn(&["transform"], "transform.log");
    let extract = world.ferry(&["extract", "--once"]);
    assert!(
        extract.status.success(),
        "{}",
        String::from_utf8_lossy(&extract.stderr)
    );
    let first = world.spawn(&["load", "--workers", "2"], "load1.log");
    let count_sql = format!("SELECT COUNT(*) FROM `{dst}`.orders_copy");
    world
        .wait_for_count(
            "some rows to be written",
            &count_sql,
            Duration::from_secs(120),
            |n| n > 0,
        )
        .await;
    world.kill(first);
    let written_before = world.scalar_i64(&count_sql).await;
    world.spawn(&["load", "--workers", "2"], "load2.log");
    world
        .wait_for_count(
            "every row after the restart",
            &count_sql,
            Duration::from_secs(300),
            |n| n == N,
        )
        .await;
    assert!(
        written_before < N,
        "the loader was killed before the end ({written_before} of {N})"
    );
    assert_copied_exactly(&world, &src, &dst, &scheme).await;
    world.clean().await;
}

/// Every source row is in the target exactly once with every column unchanged (ordered
/// checksum), and nothing was dead-lettered.
async fn assert_copied_exactly(world: &World, src: &str, dst: &str, scheme: &str) {
    assert_eq!(
        world
            .scalar_string(&checksum_sql(dst, "orders_copy", ""))
            .await,
        world.scalar_string(&checksum_sql(src, "orders", "")).await,
        "every row exactly once, every column unchanged"
    );
    assert!(
        drain_queue(&format!("ferry.{scheme}.load.dlq"))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}

/// A smaller, poison-free source for the crash test.
async fn setup_small(world: &mut World, rows: i64) -> (String, String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.orders (id BIGINT NOT NULL PRIMARY KEY, customer VARCHAR(100) NOT NULL,
                amount DECIMAL(12,2) NOT NULL, qty VARCHAR(16) NULL, created_at DATETIME NULL, note TEXT NULL,
                payload JSON NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.orders SELECT seq, CONCAT('客户 🚚 ', seq), seq / 100, '1', '2026-01-01 00:00:00',
                NULL, NULL FROM `{src}`.seq_1_to_{rows};
             CREATE TABLE `{dst}`.orders_copy LIKE `{src}`.orders;
             ALTER TABLE `{dst}`.orders_copy MODIFY qty INT NULL;"
        ))
        .await;
    (src, dst, state)
}

/// Seed 000's source exactly as written (`limit :limit offset :offset` bound from string-typed
/// `main_params`, `'{{DAYS_AGO_1|datetime}}'` in the SQL) into seed 001's kind of target (`execute`
/// with a plain INSERT and idCheck): the first run inserts every recent row once, a re-run meets
/// its own duplicate keys and counts them as kept, not as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_offset_paging_into_a_plain_insert_is_idempotent() {
    const N: i64 = 2_345;
    let mut world = World::new("o").await;
    let src = world.database("www").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.www_contact (id BIGINT PRIMARY KEY, company VARCHAR(100), name VARCHAR(50),
                phone VARCHAR(20), created_at DATETIME) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.www_contact SELECT seq, CONCAT('某某公司 ', seq), CONCAT('张三', seq, ' 😀'),
                CONCAT('138', LPAD(seq, 8, '0')), NOW() - INTERVAL seq SECOND FROM `{src}`.seq_1_to_{N};
             -- Old rows the DAYS_AGO_1 window leaves out.
             INSERT INTO `{src}`.www_contact SELECT 100000 + seq, 'old', 'old', '0', NOW() - INTERVAL 3 DAY
                FROM `{src}`.seq_1_to_50;
             CREATE TABLE `{dst}`.contacts (contact_id BIGINT PRIMARY KEY, company VARCHAR(100), name VARCHAR(50),
                phone VARCHAR(20), created_at DATETIME, source VARCHAR(20)) CHARACTER SET utf8mb4;"
        ))
        .await;
    let scheme = world.scheme_name("contacts");
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("www", &src) + &common::mysql_connection("dst", &dst)),
    );
    world.write(
        "schemes/contacts.json",
        &format!(
            r#"{{ "name": "{scheme}",
  "source": {{ "connection": "www", "metadata": {{
    "api": "select", "method": "POST", "number": "phone", "id": "id", "pagination": {{ "pageSize": 100 }}, "idCheck": true,
    "request": [{{ "field": "main_params", "label": "主参数", "type": "object", "children": [
      {{ "field": "limit", "label": "limit", "type": "string", "value": "{{PAGINATION_PAGE_SIZE}}", "parent": "main_params" }},
      {{ "field": "offset", "label": "offset", "type": "string", "value": "{{PAGINATION_START_ROW}}", "parent": "main_params" }} ] }}],
    "otherRequest": [{{ "field": "main_sql", "label": "主查询语句", "type": "string",
      "value": "select id,company,name,phone,created_at from www_contact where created_at >= '{{{{DAYS_AGO_1|datetime}}}}' limit :limit offset :offset" }}]
  }} }},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "execute", "effect": "EXECUTE", "method": "POST", "idCheck": true,
    "request": [{{ "field": "main_params", "type": "object", "children": [
      {{ "field": "contact_id", "type": "int", "value": "{{id}}" }},
      {{ "field": "company", "type": "string", "value": "{{company}}" }},
      {{ "field": "name", "type": "string", "value": "{{name}}" }},
      {{ "field": "phone", "type": "string", "value": "{{phone}}" }},
      {{ "field": "created_at", "type": "datetime", "value": "{{created_at}}" }},
      {{ "field": "source", "type": "string", "value": "官网留言" }} ] }}],
    "otherRequest": [{{ "field": "main_sql", "type": "string",
      "value": "INSERT INTO `contacts` (`contact_id`, `company`, `name`, `phone`, `created_at`, `source`) VALUES (:contact_id, :company, :name, :phone, :created_at, :source)" }}]
  }} }} }}"#
        ),
    );
    // DAYS_AGO_1 is computed on the source's clock, like the rows' NOW(): the recent rows are
    // minutes old and the old ones three days, so the window is clear.
    let first = world.ferry(&["run", "--once"]);
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.contains(&format!(
            "{N} records: {N} inserted, 0 kept, 0 dead-lettered"
        )),
        "{out}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM `{dst}`.contacts WHERE source = '官网留言'"
            ))
            .await,
        N
    );
    assert_eq!(
        world.scalar_string(&format!("SELECT SHA2(GROUP_CONCAT(CONCAT_WS('|', contact_id, company, name, phone, created_at) ORDER BY contact_id), 256) FROM `{dst}`.contacts")).await,
        world.scalar_string(&format!("SELECT SHA2(GROUP_CONCAT(CONCAT_WS('|', id, company, name, phone, created_at) ORDER BY id), 256) FROM `{src}`.www_contact WHERE id <= {N}")).await
    );

    let again = world.ferry(&["run", "--once"]);
    let out = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(
        again.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        out.contains(&format!(
            "{N} records: 0 inserted, {N} kept, 0 dead-lettered"
        )),
        "{out}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.contacts"))
            .await,
        N
    );
    world.clean().await;
}

/// An extractor killed with SIGKILL in the middle of a run is restarted and resumes the same run
/// after its last confirmed page: every row arrives exactly once, the run is counted exactly
/// (30 pages, 30,000 records, each settled once), and nothing before the cursor is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extractor_killed_mid_run_resumes_after_its_last_confirmed_page() {
    const N: i64 = 30_000;
    let mut world = World::new("x").await;
    let (src, dst, state) = setup_small(&mut world, N).await;
    let scheme = write_config(&mut world, &src, &dst, &state);
    // Each page query waits 0.2 s, so the run takes long enough to be killed in the middle.
    let path = world.config_path().with_file_name("schemes/orders.json");
    let slow = std::fs::read_to_string(&path).expect("scheme").replace(
        "FROM orders WHERE",
        "FROM orders JOIN (SELECT SLEEP(0.2) AS pause) AS slow WHERE",
    );
    world.write("schemes/orders.json", &slow);
    let state_db = state.rsplit('/').next().unwrap().to_string();
    let runs = format!("SELECT COUNT(*) FROM `{state_db}`.ferry_runs");
    let extracting = format!(
        "SELECT IFNULL(MAX(pages), 0) FROM `{state_db}`.ferry_runs WHERE status = 'extracting'"
    );

    let counted = kill_extractor_mid_run(&mut world, "extract1.log", &extracting).await;
    let status = world.ferry(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let run_id = world
        .scalar_string(&format!("SELECT run_id FROM `{state_db}`.ferry_runs"))
        .await;
    assert_eq!(
        status[0]["checkpoint"]["resumes_run"], run_id,
        "`ferry status` names the run the next extraction continues: {status}"
    );

    // The run's trace, started by the killed extractor: the resumed one goes on in it.
    let traceparent = world
        .scalar_string(&format!("SELECT traceparent FROM `{state_db}`.ferry_runs"))
        .await;
    let trace_id = traceparent
        .split('-')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(trace_id.len(), 32, "a W3C traceparent: {traceparent:?}");

    let again = world.ferry(&["extract", "--once"]);
    let out = String::from_utf8_lossy(&again.stdout);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains(&trace_id),
        "the resumed run continues trace {trace_id}:\n{log}"
    );
    assert!(
        again.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        out.contains(&format!("{scheme}: extracted {N} records in 30 pages"))
            && out.contains(&format!("resumed after page {counted}")),
        "the same run continued after page {counted}: {out}"
    );
    assert_eq!(world.scalar_i64(&runs).await, 1, "one run, resumed");

    world.spawn(&["transform"], "transform.log");
    world.spawn(&["load", "--workers", "2"], "load.log");
    let done = format!(
        "SELECT COUNT(*) FROM `{state_db}`.ferry_runs
         WHERE status = 'done' AND pages = 30 AND records = {N} AND written + inserted + updated + unchanged + kept + accepted + skipped + dead = {N}"
    );
    world
        .wait_for_count(
            "the resumed run to settle, each record counted once",
            &done,
            Duration::from_secs(300),
            |n| n == 1,
        )
        .await;
    assert_copied_exactly(&world, &src, &dst, &scheme).await;

    // Killed again in the next run, then started with --restart: the unfinished run is discarded
    // (and says so), a new one extracts all 30 pages from the beginning.
    kill_extractor_mid_run(&mut world, "extract2.log", &extracting).await;
    let fresh = world.ferry(&["extract", "--once", "--restart"]);
    let out = String::from_utf8_lossy(&fresh.stdout);
    assert!(fresh.status.success(), "{out}");
    assert!(
        out.contains("discarded the unfinished run")
            && out.contains(&format!("{scheme}: extracted {N} records in 30 pages"))
            && !out.contains("resumed"),
        "{out}"
    );
    assert_eq!(
        world
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM `{state_db}`.ferry_runs
                 WHERE status = 'failed' AND error = 'discarded by --restart'"
            ))
            .await,
        1
    );
    assert_eq!(world.scalar_i64(&runs).await, 3);
    world.clean().await;
}

/// Start `ferry extract --once`, SIGKILL it once `pages_sql` (pages of the run in progress) says
/// 5 or more, and return how many pages that run had counted.
async fn kill_extractor_mid_run(world: &mut World, log: &str, pages_sql: &str) -> i64 {
    let extractor = world.spawn(&["extract", "--once"], log);
    let admin = world.admin.clone();
    let killed_after = world
        .wait_for(
            "a few pages to be extracted",
            Duration::from_secs(120),
            || {
                // The state tables appear once the extractor has started.
                let (admin, pages) = (admin.clone(), pages_sql.to_string());
                async move {
                    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(pages))
                        .fetch_one(&admin)
                        .await
                        .ok()
                        .filter(|n| *n >= 5)
                }
            },
        )
        .await;
    world.kill(extractor);
    let counted = world.scalar_i64(pages_sql).await;
    assert!(
        (killed_after..30).contains(&counted),
        "killed in the middle: {counted} of 30 pages\n{}",
        world.log(log)
    );
    counted
}

/// Issue 8 item 3 on a MySQL target: a page whose records share an id (`order_no`) with
/// different contents, and identical repeats. Every content reaches the upsert in source order
/// (a trigger logs each insert and update), the table ends on the last content of each id, the
/// identical repeats count as skipped, and the summary counts the records that shared an id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_contents_of_one_id_both_reach_a_mysql_upsert_in_order_and_repeats_are_skipped() {
    let mut world = World::new("oi").await;
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.order_events (id BIGINT PRIMARY KEY, order_no VARCHAR(32) NOT NULL,
                customer VARCHAR(100) NOT NULL, amount DECIMAL(12,2) NOT NULL, status VARCHAR(32) NOT NULL)
                CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.order_events VALUES
                (1, 'A-001', '张三', 10.00, '待付款'),
                (2, 'B-002', '李四🚀', 20.00, '已付款'),
                (3, 'A-001', '张三', 10.00, '待付款'),
                (4, 'A-001', '张三', 12.50, '已付款 ✓'),
                (5, 'B-002', '李四🚀', 20.00, '已付款'),
                (6, 'C-003', 'O''Brien \"q\"', 5.00, '已退款'),
                (7, 'B-002', '李四🚀', 21.00, '已付款（改价）'),
                (8, 'A-001', '张三', 12.50, '已付款 ✓');
             CREATE TABLE `{dst}`.orders (order_no VARCHAR(32) PRIMARY KEY, customer VARCHAR(100),
                amount DECIMAL(12,2), status VARCHAR(32)) CHARACTER SET utf8mb4;
             CREATE TABLE `{dst}`.orders_log (seq BIGINT AUTO_INCREMENT PRIMARY KEY, action VARCHAR(8),
                order_no VARCHAR(32), amount DECIMAL(12,2), status VARCHAR(32)) CHARACTER SET utf8mb4;
             CREATE TRIGGER `{dst}`.orders_ins AFTER INSERT ON `{dst}`.orders FOR EACH ROW
                INSERT INTO `{dst}`.orders_log (action, order_no, amount, status)
                VALUES ('insert', NEW.order_no, NEW.amount, NEW.status);
             CREATE TRIGGER `{dst}`.orders_upd AFTER UPDATE ON `{dst}`.orders FOR EACH ROW
                INSERT INTO `{dst}`.orders_log (action, order_no, amount, status)
                VALUES ('update', NEW.order_no, NEW.amount, NEW.status);"
        ))
        .await;
    let scheme = world.scheme_name("order-events");
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src) + &common::mysql_connection("dst", &dst)),
    );
    world.write(
        "schemes/order-events.json",
        &format!(
            r#"{{ "name": "{scheme}",
  "source": {{ "connection": "src", "metadata": {{
    "api": "select", "id": "order_no", "idCheck": true,
    "pagination": {{ "pageSize": 100, "mode": "keyset", "keyset_field": "id" }},
    "otherRequest": [{{ "field": "main_sql", "type": "string",
      "value": "SELECT id, order_no, customer, amount, status FROM order_events WHERE id > :last_id ORDER BY id LIMIT :limit" }}]
  }} }},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "batchexecute", "idCheck": true,
    "request": [
      {{ "field": "order_no", "type": "string", "value": "{{order_no}}" }},
      {{ "field": "customer", "type": "string", "value": "{{customer}}" }},
      {{ "field": "amount", "type": "decimal", "value": "{{amount}}" }},
      {{ "field": "status", "type": "string", "value": "{{status}}" }}
    ],
    "otherRequest": [{{ "field": "main_sql", "type": "string",
      "value": "INSERT INTO orders (order_no, customer, amount, status) VALUES (:order_no, :customer, :amount, :status) ON DUPLICATE KEY UPDATE customer = VALUES(customer), amount = VALUES(amount), status = VALUES(status)" }}]
  }} }} }}"#
        ),
    );
    let run = world.ferry(&["run", "--once"]);
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains(&format!(
            "{scheme}: 1 pages, 8 records: 3 inserted, 2 updated, 0 unchanged, 3 skipped, 0 dead-lettered"
        )) && out.contains("; 2 shared an id with different content"),
        "{out}"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT GROUP_CONCAT(CONCAT_WS('|', action, order_no, amount, status) ORDER BY seq SEPARATOR '\\n')
                 FROM `{dst}`.orders_log"
            ))
            .await,
        "insert|A-001|10.00|待付款\n\
         insert|B-002|20.00|已付款\n\
         update|A-001|12.50|已付款 ✓\n\
         insert|C-003|5.00|已退款\n\
         update|B-002|21.00|已付款（改价）",
        "every content once, in source order"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT GROUP_CONCAT(CONCAT_WS('|', order_no, customer, amount, status) ORDER BY order_no SEPARATOR '\\n')
                 FROM `{dst}`.orders"
            ))
            .await,
        "A-001|张三|12.50|已付款 ✓\nB-002|李四🚀|21.00|已付款（改价）\nC-003|O'Brien \"q\"|5.00|已退款",
        "each id ends on its last content"
    );
    assert!(
        drain_queue(&format!("ferry.{scheme}.load.dlq"))
            .await
            .is_empty()
    );
    world.clean().await;
}
