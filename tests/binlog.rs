//! The binlog source end to end (issue 16): a private MariaDB with its binary log on
//! (`--log-bin --binlog-format=ROW --server-id=1`, on a free port, as the resilience tests start
//! theirs), changed by inserts, updates and deletes (Chinese text, emoji, decimals, every column
//! type of tests/types.rs) while `ferry extract`, `ferry transform` and two `ferry load`
//! processes run; the target ends equal to the source row by row, also after the extractor was
//! killed with SIGKILL mid-stream. A purged position and a server without a binary log give the
//! documented errors.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use common::{World, all_output, drain_queue};
use servers::{PrivateServer, private_mariadb_with};
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

/// The columns of tests/types.rs, and whether each is compared by its bytes.
const COLUMNS: &[(&str, bool)] = &[
    ("ts", false),
    ("ts6", false),
    ("updated_at", false),
    ("dt", false),
    ("dt3", false),
    ("d", false),
    ("t", false),
    ("t6", false),
    ("y", false),
    ("b1", true),
    ("b64", true),
    ("dec65", false),
    ("dec40", false),
    ("money", false),
    ("bin", true),
    ("vbin", true),
    ("blb", true),
    ("j", false),
    ("u", false),
    ("i", false),
    ("ti", false),
    ("dbl", false),
    ("flt", false),
    ("e", false),
    ("s", false),
    ("txt", false),
    ("vc", false),
];

const TABLE: &str = "CREATE TABLE `{table}` (
    id INT NOT NULL PRIMARY KEY,
    ts TIMESTAMP NULL DEFAULT NULL,
    ts6 TIMESTAMP(6) NULL DEFAULT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    dt DATETIME NULL,
    dt3 DATETIME(3) NULL,
    d DATE NULL,
    t TIME NULL,
    t6 TIME(6) NULL,
    y YEAR NULL,
    b1 BIT(1) NULL,
    b64 BIT(64) NULL,
    dec65 DECIMAL(65,30) NULL,
    dec40 DECIMAL(40,10) NULL,
    money DECIMAL(12,2) NULL,
    bin BINARY(4) NULL,
    vbin VARBINARY(16) NULL,
    blb BLOB NULL,
    j JSON NULL,
    u BIGINT UNSIGNED NULL,
    i BIGINT NULL,
    ti TINYINT NULL,
    dbl DOUBLE NULL,
    flt FLOAT NULL,
    e ENUM('新', '旧', '🚀') NULL,
    s SET('a', 'b', '中') NULL,
    txt TEXT NULL,
    vc VARCHAR(50) COLLATE utf8mb4_bin NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci";

/// The edge values of tests/types.rs (ids 1 to 5), under a lax `sql_mode`.
const EDGE_ROWS: &str = "SET SESSION sql_mode = '';
INSERT INTO everything VALUES
 (1, '2038-01-18 00:00:00', '2038-01-18 00:00:00.999999', '2038-01-18 00:00:00',
  '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31', '838:59:59', '838:59:59.999999',
  2155, b'1', 0xFFFFFFFFFFFFFFFF,
  99999999999999999999999999999999999.999999999999999999999999999999,
  999999999999999999999999999999.9999999999, 9999999999.99,
  X'00FF1000', X'00FF10', X'FF00FE7F80',
  '{\"名字\": \"张三\", \"emoji\": \"🚀\", \"n\": 1.50, \"big\": 123456789012345678901234567890}',
  18446744073709551615, -9223372036854775808, -128,
  1.7976931348623157e308, 3.402823466e38, '🚀', 'a,b,中', '张三 😀 某某公司 \\'引号\\' \\\\ 反斜杠', 'Case Kept  '),
 (2, '1970-01-02 00:00:01', '1970-01-02 00:00:01.000001', '1970-01-02 00:00:01',
  '1000-01-01 00:00:00', '2024-02-29 12:34:56.780', '1000-01-01', '-838:59:59', '-838:59:59.999999',
  1901, b'0', b'1',
  -99999999999999999999999999999999999.999999999999999999999999999999,
  -0.0000000001, 12.30,
  X'00000000', X'', X'00',
  '[]',
  0, 9223372036854775807, 127,
  2.2250738585072014e-308, 1.175494351e-38, '新', '', '', ''),
 (3, '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00',
  '0000-00-00 00:00:00', '2024-00-00 00:00:00.000', '2024-00-15', '-00:00:01', '25:00:00.000001',
  0, b'1', b'1000000000000000000000000000000000000000000000000000000000000000',
  0.000000000000000000000000000001, 0, -0.01,
  'abcd', 'Ω 文本', '张三🚀',
  '{\"a\": null}',
  9223372036854775808, -1, 0,
  -1.7976931348623157e308, -3.402823466e38, '旧', 'b', '第一行\\n第二行\\t🎉', 'x'),
 (4, NULL, NULL, '2026-12-01 08:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '2026-03-08 02:30:00', '2026-11-01 01:30:00.5', '2026-12-01 08:00:00',
  '2026-12-01 08:00:00', '2026-12-01 08:00:00.001', '0000-00-00', '00:00:00', '00:00:00.000000',
  2026, b'0', b'0', 0.5, 1.5, 0.00,
  X'0A0B0C0D', X'7F', X'C328',
  '{\"订单\": [1, 2.5, \"三\"]}',
  1, 1, 1,
  0.1, 0.1, '🚀', 'a', '😀', '中文');";

/// The world, a private binlog server with database `shop` and `everything` holding the edge
/// rows, and a pool on it. `None` (skipped, saying why) where no server can start.
async fn binlog_world(tag: &str) -> Option<(World, PrivateServer, MySqlPool)> {
    let world = World::new(tag).await;
    let binlog = ["--log-bin=binlog", "--binlog-format=ROW", "--server-id=1"];
    let server = match private_mariadb_with(&world.id, &binlog) {
        Ok(server) => server,
        Err(why) => {
            eprintln!("SKIPPED: cannot start a private MariaDB: {why}");
            world.clean().await;
            return None;
        }
    };
    let pool = ferry_state::mysql::connect(&source_url(&server), 2, true)
        .await
        .expect("the private MariaDB");
    source_exec(&pool, &TABLE.replace("{table}", "everything")).await;
    source_exec(&pool, EDGE_ROWS).await;
    Some((world, server, pool))
}

/// The url of database `shop` on the private server.
fn source_url(server: &PrivateServer) -> String {
    format!("mysql://root@127.0.0.1:{}/shop", server.port)
}

async fn source_exec(pool: &MySqlPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `ferry.toml` and the scheme copying `shop.everything` to `dst.copy` by its binlog, with
/// deletes applied by `delete_sql`; returns the scheme's name.
fn write_scheme(world: &mut World, source_url: &str, dst: &str, page_size: u32) -> String {
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &format!(
            "[connections.src]\nkind = \"mysql\"\nurl = \"{source_url}\"\n{}",
            common::mysql_connection("dst", dst)
        ),
    );
    let names: Vec<&str> = std::iter::once("id")
        .chain(COLUMNS.iter().map(|(c, _)| *c))
        .collect();
    let fields = names
        .iter()
        .map(|c| format!(r#"{{ "field": "{c}", "type": "string", "value": "{{{c}}}" }}"#))
        .collect::<Vec<_>>()
        .join(",\n        ");
    let insert = format!(
        "INSERT INTO copy ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
        names.join(", "),
        names
            .iter()
            .map(|c| format!(":{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        names[1..]
            .iter()
            .map(|c| format!("{c} = VALUES({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let scheme = world.scheme_name("binlog");
    world.write(
        "schemes/binlog.json",
        &format!(
            r#"{{ "name": "{scheme}",
  "source": {{ "connection": "src", "metadata": {{
    "api": "binlog", "tables": ["everything"], "pagination": {{ "pageSize": {page_size} }} }} }},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "batchexecute", "idCheck": true, "batch_size": 100,
    "request": [
        {fields}
    ],
    "otherRequest": [
      {{ "field": "main_sql", "type": "string", "value": "{insert}" }},
      {{ "field": "delete_sql", "type": "string", "value": "DELETE FROM copy WHERE id = :id" }}
    ] }} }} }}"#
        ),
    );
    scheme
}

/// Every row of a table as text, each column hex-encoded (bytes, or the value's text), in id
/// order: two tables on two servers compare equal when these do.
async fn rows(pool: &MySqlPool, table: &str) -> Vec<String> {
    let columns = COLUMNS
        .iter()
        .map(|(c, by_bytes)| {
            if *by_bytes {
                format!("IFNULL(HEX(`{c}`), 'NULL')")
            } else {
                format!("IFNULL(HEX(CAST(`{c}` AS CHAR)), 'NULL')")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(AssertSqlSafe(format!(
        "SELECT CONCAT_WS('|', id, {columns}) FROM {table} ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
            .collect()
    })
    .unwrap_or_default()
}

/// The changes made while the pipeline runs, in order: copies of the edge rows (so every type
/// travels through the binlog too), inserts, updates and deletes with Chinese text and decimals,
/// one transaction larger than a page, and one row updated 60 times in a row (a later update
/// landing before an earlier one would leave it wrong).
fn workload() -> Vec<String> {
    let mut out = vec![
        "SET SESSION sql_mode = ''; INSERT INTO everything SELECT id + 100, ts, ts6, updated_at, dt, dt3, d, t, t6, y, b1, b64, dec65, dec40, money, bin, vbin, blb, j, u, i, ti, dbl, flt, e, s, txt, vc FROM everything WHERE id <= 5".to_string(),
    ];
    for k in 1..=120 {
        let id = 1000 + k;
        out.push(format!(
            "INSERT INTO everything (id, money, dec40, txt, vc, e, s, dt, u) VALUES ({id}, {k}.{:02}, -{k}.0000000001, '订单 {k} 张三 😀', 'v{k}', '旧', 'a,中', '2026-12-01 08:00:{:02}', {})",
            k % 100,
            k % 60,
            u64::MAX - k
        ));
        if k % 3 == 0 {
            out.push(format!(
                "UPDATE everything SET txt = CONCAT(txt, ' ✓ 已更新'), money = money + 0.01, e = '🚀' WHERE id = {}",
                id - 1
            ));
        }
        if k % 5 == 0 {
            out.push(format!("DELETE FROM everything WHERE id = {}", id - 2));
        }
    }
    // A transaction of 75 rows: pages split it.
    let values = (1..=75)
        .map(|k| format!("({}, '大事务 {k} 🎉', {k}.50)", 5000 + k))
        .collect::<Vec<_>>()
        .join(", ");
    out.push(format!(
        "START TRANSACTION; INSERT INTO everything (id, txt, money) VALUES {values}; \
         UPDATE everything SET money = money * 2 WHERE id BETWEEN 5001 AND 5030; \
         DELETE FROM everything WHERE id BETWEEN 5070 AND 5075; COMMIT"
    ));
    out.push("INSERT INTO everything (id, i, txt) VALUES (7777, 0, '计数')".into());
    for n in 1..=60 {
        out.push(format!(
            "UPDATE everything SET i = {n}, txt = '计数 {n}' WHERE id = 7777"
        ));
    }
    out.push(
        "UPDATE everything SET dec65 = -dec65, txt = '更新 🚀', vbin = X'00FF00' WHERE id = 2"
            .into(),
    );
    out.push("DELETE FROM everything WHERE id IN (4, 104)".into());
    out
}

/// Snapshot, then inserts, updates and deletes while the pipeline runs (two loaders), the
/// extractor killed with SIGKILL mid-stream and started again: the target ends equal to the
/// source row by row, every column, with nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_in_order_and_a_killed_extractor_resumes_where_it_stood() {
    let Some((mut world, server, source)) = binlog_world("bl").await else {
        return;
    };
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "USE `{dst}`; {}",
            TABLE.replace("{table}", "copy")
        ))
        .await;
    let scheme = write_scheme(&mut world, &source_url(&server), &dst, 20);
    let target = ferry_state::mysql::connect(&format!("{}/{dst}", common::MYSQL), 2, false)
        .await
        .expect("target");

    world.spawn(&["transform", "--workers", "2"], "transform.log");
    world.spawn(&["load"], "load-1.log");
    world.spawn(&["load"], "load-2.log");
    let extractor = world.spawn(&["extract", "--once", "--scheme", &scheme], "extract.log");

    // The snapshot: the five edge rows.
    world
        .wait_for(
            "the snapshot in the target",
            Duration::from_secs(120),
            || {
                let target = target.clone();
                async move { (rows(&target, "copy").await.len() == 5).then_some(()) }
            },
        )
        .await;
    let work = workload();
    let half = work.len() / 2;
    for (n, sql) in work.iter().enumerate() {
        source_exec(&source, sql).await;
        if n == half {
            // Let some of the changes reach the broker, then crash the extractor.
            tokio::time::sleep(Duration::from_millis(300)).await;
            world.kill(extractor);
            tokio::time::sleep(Duration::from_millis(500)).await;
            world.respawn(
                extractor,
                &["extract", "--once", "--scheme", &scheme],
                "extract.log",
            );
        }
    }
    let expected = rows(&source, "everything").await;
    assert!(
        expected.len() > 150,
        "the workload left rows: {}",
        expected.len()
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got = rows(&target, "copy").await;
        if got == expected {
            break;
        }
        if Instant::now() > deadline {
            let dead = drain_queue(&format!("ferry.{scheme}.load.dlq")).await;
            let reasons: Vec<String> = dead
                .iter()
                .take(3)
                .map(|(body, headers)| {
                    format!(
                        "{headers:?} {}",
                        body.to_string().chars().take(800).collect::<String>()
                    )
                })
                .collect();
            eprintln!("load dead letters ({}): {reasons:#?}", dead.len());
            let missing: Vec<&String> = expected
                .iter()
                .filter(|r| !got.contains(r))
                .take(5)
                .collect();
            let extra: Vec<&String> = got
                .iter()
                .filter(|r| !expected.contains(r))
                .take(5)
                .collect();
            panic!(
                "the target differs from the source ({} rows vs {}): missing or different {missing:?}, \
                 extra or stale {extra:?}\nwarnings:\n{}",
                got.len(),
                expected.len(),
                ["extract.log", "transform.log", "load-1.log", "load-2.log"]
                    .iter()
                    .flat_map(|log| {
                        world
                            .log(log)
                            .lines()
                            .filter(|l| !l.contains(" INFO "))
                            .map(|l| format!("{log}: {}", l.chars().take(600).collect::<String>()))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = world.log("extract.log");
    assert!(
        log.contains("resuming an interrupted run after its last confirmed page"),
        "the second extractor resumed the run:\n{log}"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT CONCAT(i, '|', txt) FROM `{dst}`.copy WHERE id = 7777"
            ))
            .await,
        "60|计数 60",
        "the last of 60 updates of one row is the one that stays"
    );
    for stage in ["transform", "load"] {
        let dead = drain_queue(&format!("ferry.{scheme}.{stage}.dlq")).await;
        assert!(dead.is_empty(), "{stage}: nothing dead-lettered: {dead:?}");
    }
    world.clean().await;
    drop(server);
}

/// A position whose binlog file was purged while the scheme stood still stops the run with the
/// documented error (start a new snapshot with `--restart`), and `--restart` does so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_position_says_to_start_a_new_snapshot() {
    let Some((mut world, server, source)) = binlog_world("bp").await else {
        return;
    };
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "USE `{dst}`; {}",
            TABLE.replace("{table}", "copy")
        ))
        .await;
    let scheme = write_scheme(&mut world, &source_url(&server), &dst, 100);
    let state = world.state_url();
    let state_db = state.rsplit('/').next().expect("state db").to_string();
    world.spawn(&["extract", "--once", "--scheme", &scheme], "extract.log");
    // The snapshot's page saved a position in the first binlog file.
    world
        .wait_for("a saved binlog position", Duration::from_secs(120), || {
            let sql = format!(
                "SELECT COUNT(*) FROM `{state_db}`.ferry_checkpoints WHERE cursor_json LIKE '%binlog%'"
            );
            let admin = world.admin.clone();
            async move {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&admin)
                    .await
                    .ok()?;
                (n > 0).then_some(())
            }
        })
        .await;
    world.stop_all();
    source_exec(&source, "FLUSH BINARY LOGS").await;
    let current: String = sqlx::query("SHOW MASTER STATUS")
        .fetch_one(&source)
        .await
        .expect("master status")
        .try_get(0)
        .expect("file");
    // The server keeps a file its dump thread still reads (the stopped extractor's, for a moment
    // after it left): purge until the first file left is the current one.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        source_exec(&source, &format!("PURGE BINARY LOGS TO '{current}'")).await;
        let first: String = sqlx::query("SHOW BINARY LOGS")
            .fetch_one(&source)
            .await
            .expect("binary logs")
            .try_get(0)
            .expect("log name");
        if first == current {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{first}` was not purged in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let out = world.ferry(&["extract", "--once", "--scheme", &scheme]);
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("is no longer on the source: its binlog file was purged")
            && text.contains("Start a new snapshot with `ferry extract --once --restart --scheme"),
        "the purged position is named with what to do:\n{text}"
    );
    world.clean().await;
    drop(server);
}

/// A source whose binary log is off (the shared test server) is refused with what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_binary_log_is_refused_with_what_to_change() {
    let mut world = World::new("bo").await;
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "USE `{src}`; {}; USE `{dst}`; {}",
            TABLE.replace("{table}", "everything"),
            TABLE.replace("{table}", "copy")
        ))
        .await;
    let log_bin = world.scalar_i64("SELECT @@GLOBAL.log_bin").await;
    if log_bin != 0 {
        eprintln!("SKIPPED: the shared MariaDB has its binary log on");
        world.clean().await;
        return;
    }
    let scheme = write_scheme(&mut world, &format!("{}/{src}", common::MYSQL), &dst, 100);
    let out = world.ferry(&["extract", "--once", "--scheme", &scheme]);
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "the source's binary log is off: the binlog source needs it on, in ROW format. \
             Start the server with --log-bin --binlog-format=ROW --server-id=1"
        ),
        "{text}"
    );
    world.clean().await;
}
