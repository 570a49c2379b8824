//! Issue 9 item 6, end to end against the real RabbitMQ and MariaDB: every MySQL column type a
//! user meets, with its edge values, copied MySQL -> MySQL through the broker by `ferry run
//! --once` (into a `batchexecute` and an `execute` target) and compared value by value; and a
//! value Ferry cannot carry, dead-lettered alone with its column and reason while the other rows
//! arrive.

mod common;

use common::{World, drain_queue};

/// Every column of the source table but `id`, and whether it is compared by its bytes
/// (`HEX(col)`) rather than by its text (`HEX(CAST(col AS CHAR))`). Both sides must also be
/// equal by `<=>`, which compares FLOAT and DOUBLE exactly.
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

const TABLE: &str = "CREATE TABLE `{db}`.`{table}` (
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

/// The edge values, inserted under a lax `sql_mode` (zero dates, zero months and days).
const ROWS: &str = "SET SESSION sql_mode = '';
INSERT INTO `{db}`.everything VALUES
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
  0.1, 0.1, '🚀', 'a', '😀', '中文');
SET SESSION sql_mode = DEFAULT;";

async fn setup(world: &mut World) -> (String, String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    let table = |db: &str, table: &str| TABLE.replace("{db}", db).replace("{table}", table);
    world
        .exec(&format!(
            "{};\n{};\n{};\n{}",
            table(&src, "everything"),
            table(&dst, "copy_batch"),
            table(&dst, "copy_exec"),
            ROWS.replace("{db}", &src)
        ))
        .await;
    (src, dst, state)
}

/// A field per column, `{"field": "c", "type": "string", "value": "{c}"}`, as a pasted scheme
/// writes them.
fn fields() -> String {
    std::iter::once("id")
        .chain(COLUMNS.iter().map(|(c, _)| *c))
        .map(|c| format!(r#"{{ "field": "{c}", "type": "string", "value": "{{{c}}}" }}"#))
        .collect::<Vec<_>>()
        .join(",\n        ")
}

fn insert_sql(table: &str) -> String {
    let names: Vec<&str> = std::iter::once("id")
        .chain(COLUMNS.iter().map(|(c, _)| *c))
        .collect();
    let params: Vec<String> = names.iter().map(|c| format!(":{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        params.join(", ")
    )
}

fn write_schemes(world: &mut World, src: &str, dst: &str, state: &str) -> (String, String) {
    world.write_ferry_toml(
        state,
        &(common::mysql_connection("src", src) + &common::mysql_connection("dst", dst)),
    );
    let source = r#""source": { "connection": "src", "metadata": {
    "api": "select", "id": "id",
    "pagination": { "pageSize": 2, "mode": "keyset", "keyset_field": "id" },
    "otherRequest": [{ "field": "main_sql", "type": "string",
      "value": "SELECT * FROM everything WHERE id > :last_id ORDER BY id LIMIT :limit" }] } }"#;
    let batch = world.scheme_name("types-batch");
    world.write(
        "schemes/batch.json",
        &format!(
            r#"{{ "name": "{batch}", {source},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "batchexecute", "idCheck": true, "batch_size": 100,
    "request": [
        {fields}
    ],
    "otherRequest": [{{ "field": "main_sql", "type": "string", "value": "{sql}" }}] }} }} }}"#,
            fields = fields(),
            sql = insert_sql("copy_batch"),
        ),
    );
    let exec = world.scheme_name("types-exec");
    world.write(
        "schemes/exec.json",
        &format!(
            r#"{{ "name": "{exec}", {source},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "execute", "effect": "EXECUTE", "method": "POST", "idCheck": true,
    "request": [{{ "field": "main_params", "type": "object", "children": [
        {fields}
    ] }}],
    "otherRequest": [{{ "field": "main_sql", "type": "string", "value": "{sql}" }}] }} }} }}"#,
            fields = fields(),
            sql = insert_sql("copy_exec"),
        ),
    );
    (batch, exec)
}

/// Rows of `dst.table` that differ from the source in `column`, shown as `id: source -> target`;
/// empty when every value arrived unchanged.
async fn differences(
    world: &World,
    src: &str,
    dst: &str,
    table: &str,
    column: &str,
    by_bytes: bool,
) -> String {
    let print = |side: &str| {
        if by_bytes {
            format!("HEX({side}.`{column}`)")
        } else {
            format!("HEX(CAST({side}.`{column}` AS CHAR))")
        }
    };
    let (s, d) = (print("s"), print("d"));
    world
        .scalar_string(&format!(
            "SELECT IFNULL(GROUP_CONCAT(CONCAT(s.id, ': ', IFNULL(CAST(s.`{column}` AS CHAR), 'NULL'), ' [', IFNULL({s}, 'NULL'),
                 '] -> ', IFNULL(CAST(d.`{column}` AS CHAR), 'NULL'), ' [', IFNULL({d}, 'NULL'), ']') ORDER BY s.id SEPARATOR '; '), '')
             FROM `{src}`.everything s LEFT JOIN `{dst}`.`{table}` d USING (id)
             WHERE d.id IS NULL OR NOT ({s} <=> {d}) OR NOT (s.`{column}` <=> d.`{column}`)"
        ))
        .await
}

/// Every type of the list, with its edge values (max and min, zero dates under a lax sql_mode,
/// negative and over-24-hour TIME with fractions, 65-digit decimals, bytes with 00 and FF, BIT(1)
/// and BIT(64), BIGINT UNSIGNED max, DOUBLE max and min positive, JSON with Chinese, emoji text,
/// NULLs) arrives unchanged, through `batchexecute` and through `execute`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mysql_column_type_round_trips_exactly() {
    let mut world = World::new("ty").await;
    let (src, dst, state) = setup(&mut world).await;
    let (batch, exec) = write_schemes(&mut world, &src, &dst, &state);
    let out = world.ferry(&["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("5 records: 5 inserted").count(),
        2,
        "both schemes insert every row\n{stdout}"
    );
    for table in ["copy_batch", "copy_exec"] {
        assert_eq!(
            world
                .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.`{table}`"))
                .await,
            5,
            "{table}: every row arrives\n{stdout}\n{stderr}"
        );
        let mut wrong = Vec::new();
        for (column, by_bytes) in COLUMNS {
            let diff = differences(&world, &src, &dst, table, column, *by_bytes).await;
            if !diff.is_empty() {
                wrong.push(format!("{column}: {diff}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{table}: values changed on the way:\n{}",
            wrong.join("\n")
        );
    }
    // Spot checks of what a reader of the target sees.
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT CONCAT_WS('|', HEX(vbin), CAST(dt3 AS CHAR), CAST(t6 AS CHAR), HEX(b64), CAST(u AS CHAR), CAST(dbl AS CHAR), CAST(y AS CHAR))
                 FROM `{dst}`.copy_batch WHERE id = 1"
            ))
            .await,
        "00FF10|9999-12-31 23:59:59.999|838:59:59.999999|FFFFFFFFFFFFFFFF|18446744073709551615|1.7976931348623157e308|2155"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT CONCAT_WS('|', CAST(ts AS CHAR), CAST(dt3 AS CHAR), CAST(d AS CHAR), CAST(t AS CHAR), CAST(y AS CHAR))
                 FROM `{dst}`.copy_exec WHERE id = 3"
            ))
            .await,
        "0000-00-00 00:00:00|2024-00-00 00:00:00.000|2024-00-15|-00:00:01|0000"
    );
    for scheme in [&batch, &exec] {
        for stage in ["transform", "load"] {
            let dead = drain_queue(&format!("ferry.{scheme}.{stage}.dlq")).await;
            assert!(
                dead.is_empty(),
                "{scheme} {stage}: nothing dead-lettered: {dead:?}"
            );
        }
    }
    world.clean().await;
}

/// A source table of six places, rows 3 and 4 with a `POINT`, and a scheme copying their id and
/// name in pages of two; returns the scheme's name and the target database.
async fn places(world: &mut World) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.places (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, spot POINT NULL)
                 CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.places VALUES (1, '北京', NULL), (2, 'Zürich 🏔', NULL),
                 (3, '上海 🚀', ST_GeomFromText('POINT(121.47 31.23)')), (4, '深圳', ST_GeomFromText('POINT(114.06 22.54)')),
                 (5, '杭州', NULL), (6, 'São Paulo', NULL);
             CREATE TABLE `{dst}`.places_copy (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL) CHARACTER SET utf8mb4;"
        ))
        .await;
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src) + &common::mysql_connection("dst", &dst)),
    );
    let scheme = world.scheme_name("places");
    world.write(
        "schemes/places.json",
        &format!(
            r#"{{ "name": "{scheme}",
  "source": {{ "connection": "src", "metadata": {{
    "api": "select", "id": "id", "pagination": {{ "pageSize": 2, "mode": "keyset" }},
    "otherRequest": [{{ "field": "main_sql", "type": "string",
      "value": "SELECT id, name, spot FROM places WHERE id > :last_id ORDER BY id LIMIT :limit" }}] }} }},
  "target": {{ "connection": "dst", "metadata": {{
    "api": "batchexecute", "idCheck": true,
    "request": [{{ "field": "id", "type": "int", "value": "{{id}}" }}, {{ "field": "name", "type": "string", "value": "{{name}}" }}],
    "otherRequest": [{{ "field": "main_sql", "type": "string",
      "value": "INSERT INTO places_copy (id, name) VALUES (:id, :name)" }}] }} }} }}"#
        ),
    );
    (scheme, dst)
}

/// A row holding a value Ferry does not carry (a spatial value) is dead-lettered alone, to the
/// scheme's transform DLQ with its column and the reason; the other rows arrive and the run
/// finishes. Rows 3 and 4 fill the second page entirely, so keyset paging must move past rows it
/// could not decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_ferry_cannot_carry_is_dead_lettered_alone() {
    let mut world = World::new("tz").await;
    let (scheme, dst) = places(&mut world).await;
    let out = world.ferry(&["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // 3: the run finished, but dead-lettered records.
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("6 records: 4 inserted, 0 kept, 2 dead-lettered")
            && stdout.contains(&format!("ferry replay --scheme {scheme} --stage transform")),
        "{stdout}"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT GROUP_CONCAT(CONCAT(id, '=', name) ORDER BY id) FROM `{dst}`.places_copy"
            ))
            .await,
        "1=北京,2=Zürich 🏔,5=杭州,6=São Paulo",
        "{stdout}\n{stderr}"
    );
    let dead = drain_queue(&format!("ferry.{scheme}.transform.dlq")).await;
    assert_eq!(dead.len(), 2, "one dead letter per row: {dead:?}");
    for ((body, headers), (id, name)) in dead.iter().zip([("3", "上海 🚀"), ("4", "深圳")]) {
        let records = body["records"].as_array().expect("records");
        assert_eq!(records.len(), 1, "a dead letter holds one record: {body}");
        assert_eq!(records[0]["id"], id, "{body}");
        assert_eq!(
            records[0]["data"]["name"], name,
            "the rest of the row is kept: {body}"
        );
        assert!(
            records[0]["data"]["spot"]["$bytes"].is_string(),
            "the value that could not be carried is kept as bytes: {body}"
        );
        assert_eq!(
            headers.get("x-ferry-error-class").map(String::as_str),
            Some("record")
        );
        assert_eq!(
            headers.get("x-ferry-error-path").map(String::as_str),
            Some("spot")
        );
        assert_eq!(
            headers.get("x-ferry-record-id").map(String::as_str),
            Some(id)
        );
        let error = headers.get("x-ferry-error").cloned().unwrap_or_default();
        assert!(
            error.contains("column `spot`: spatial values are not carried")
                && error.contains("ST_AsText(col)"),
            "{error}"
        );
    }
    assert!(
        drain_queue(&format!("ferry.{scheme}.load.dlq"))
            .await
            .is_empty()
    );
    world.clean().await;
}

/// The dead letters of rows Ferry could not carry hold the rest of the row: replayed with
/// `ferry replay --stage transform`, they are written, and their run's counts move them from
/// dead-lettered to inserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_dead_lettered_at_extraction_replay_into_their_run() {
    let mut world = World::new("tr").await;
    let (scheme, dst) = places(&mut world).await;
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = world.ferry(&["status", "--json", "--scheme", &scheme]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let run_id = json[0]["runs"][0]["run_id"]
        .as_str()
        .expect("a run")
        .to_string();
    let roles = world.spawn(&["run"], "run.log");
    let replay = world.ferry(&["replay", "--scheme", &scheme, "--stage", "transform"]);
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("moved 2 dead letter(s)"),
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
    let w = &world;
    let run = world
        .wait_for(
            "the replayed rows counted",
            std::time::Duration::from_secs(60),
            || async {
                let run = w.run_status(&scheme, &run_id)?;
                (run["dead_lettered"] == 0 && run["inserted"] == 6).then_some(run)
            },
        )
        .await;
    assert_eq!(
        (&run["records"], &run["inserted"], &run["dead_lettered"]),
        (
            &serde_json::json!(6),
            &serde_json::json!(6),
            &serde_json::json!(0)
        ),
        "{run}"
    );
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT GROUP_CONCAT(CONCAT(id, '=', name) ORDER BY id) FROM `{dst}`.places_copy"
            ))
            .await,
        "1=北京,2=Zürich 🏔,3=上海 🚀,4=深圳,5=杭州,6=São Paulo"
    );
    world.kill(roles);
    world.clean().await;
}
