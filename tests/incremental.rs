//! Issue 8, no record missed by incremental runs, end to end against the real RabbitMQ and
//! MariaDB with `ferry run --once`: windows on the source's clock (a UTC server, the scheme at
//! its default zone), late commits inside the overlap, a data cursor whose boundary value is
//! shared by rows that come later, and HTTP APIs that serve fewer records than asked.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::World;
use serde_json::{Value, json};

/// `ferry run --once` over every scheme of the world; its output (stdout and stderr). Runs on a
/// blocking thread so a mock API served by this test's runtime keeps answering.
async fn run_once(world: &World) -> String {
    let mut cmd = world.command(&["run", "--once", "--timeout-secs", "300"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run ferry"))
        .await
        .expect("join");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ferry run --once failed:\n{text}");
    text
}

/// Records the last run of `scheme` extracted.
async fn last_run_records(world: &World, state: &str, scheme: &str) -> i64 {
    world
        .scalar_i64(&format!(
            "SELECT records FROM `{state}`.ferry_runs WHERE scheme = '{scheme}'
             ORDER BY started_at DESC, run_id DESC LIMIT 1"
        ))
        .await
}

/// An ordered checksum of `(id, note, stamp)` of a table, and its row count.
async fn contents(world: &World, db: &str, table: &str, stamp: &str) -> (i64, String) {
    let count = world
        .scalar_i64(&format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
        .await;
    let sum = world
        .scalar_string(&format!(
            "SELECT SHA2(GROUP_CONCAT(CONCAT_WS('|', id, note, {stamp}) ORDER BY id SEPARATOR '\\n'), 256)
             FROM `{db}`.`{table}`"
        ))
        .await;
    (count, sum)
}

/// A MySQL -> MySQL scheme: `sql` reads `(id, note, <stamp>)` with keyset paging (5 a page),
/// `extra` is merged into the source metadata; the target upserts into `<table>_copy`.
fn mysql_scheme(name: &str, sql: &str, stamp: &str, table: &str, extra: Value) -> String {
    let mut source = json!({
        "api": "select", "id": "id", "idCheck": true,
        "pagination": {"pageSize": 5, "mode": "keyset"},
        "otherRequest": [{"field": "main_sql", "type": "string", "value": sql}]
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        source[k] = v;
    }
    let scheme = json!({
        "name": name,
        "source": {"connection": "src", "metadata": source},
        "target": {"connection": "dst", "metadata": {
            "api": "batchexecute", "idCheck": true,
            "request": [
                {"field": "id", "type": "int", "value": "{id}"},
                {"field": "note", "type": "string", "value": "{note}"},
                {"field": "stamp", "type": "string", "value": format!("{{{stamp}}}")}
            ],
            "otherRequest": [{"field": "main_sql", "type": "string", "value": format!(
                "INSERT INTO {table}_copy (id, note, {stamp}) VALUES (:id, :note, :stamp) \
                 ON DUPLICATE KEY UPDATE note = VALUES(note), {stamp} = VALUES({stamp})")}]
        }}
    });
    serde_json::to_string_pretty(&scheme).expect("scheme JSON")
}

/// A world with a source and a target database, `ferry.toml` naming them `src` and `dst`.
async fn mysql_world(tag: &str) -> (World, String, String, String) {
    let mut world = World::new(tag).await;
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src) + &common::mysql_connection("dst", &dst)),
    );
    let state_db = state.rsplit('/').next().expect("state db").to_string();
    (world, src, dst, state_db)
}

/// Rows `from..=to` of `events`, stamped by the server's own `NOW()` (this MariaDB runs in UTC).
async fn add_events(world: &World, src: &str, from: i64, to: i64) {
    world
        .exec(&format!(
            "INSERT INTO `{src}`.events (id, note) SELECT seq, CONCAT('订单 ', seq, ' 🚚')
             FROM `{src}`.seq_{from}_to_{to}"
        ))
        .await;
}

/// The issue's first case: a source server in UTC, the scheme at its default zone
/// (Asia/Shanghai), `updated_at >= '{{LAST_SYNC_TIME|datetime}}'`. Before the fix the window was
/// rendered eight hours ahead of the server's timestamps and every run after the first copied
/// nothing; now each of three runs copies every row added before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_utc_source_at_the_default_scheme_zone_loses_no_row_over_three_runs() {
    let (mut world, src, dst, _state) = mysql_world("tz").await;
    assert_eq!(
        world.scalar_string("SELECT @@global.time_zone").await,
        "SYSTEM"
    );
    assert_eq!(
        world
            .scalar_i64("SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())")
            .await,
        0,
        "this test needs a MariaDB running in UTC"
    );
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.events (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP) CHARACTER SET utf8mb4;
             CREATE TABLE `{dst}`.events_copy (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                updated_at DATETIME NOT NULL) CHARACTER SET utf8mb4;"
        ))
        .await;
    let scheme = world.scheme_name("events");
    world.write(
        "schemes/events.json",
        &mysql_scheme(
            &scheme,
            "SELECT id, note, updated_at FROM events \
             WHERE updated_at >= '{{LAST_SYNC_TIME|datetime}}' AND id > :last_id ORDER BY id LIMIT :limit",
            "updated_at",
            "events",
            json!({}),
        ),
    );
    for (run, (from, to)) in [(1, 7), (8, 16), (17, 25)].into_iter().enumerate() {
        add_events(&world, &src, from, to).await;
        run_once(&world).await;
        assert_eq!(
            contents(&world, &dst, "events_copy", "updated_at").await,
            contents(&world, &src, "events", "updated_at").await,
            "run {}: every row so far, exactly",
            run + 1
        );
    }
    world.clean().await;
}

/// Rows stamped 20 s before the previous run started but committed after it (a long
/// transaction, a replica's lag) arrive with the next run: the window starts the overlap
/// (default 300 s) before the previous run did, for MySQL sources as for HTTP ones. The scheme
/// is in UTC like the server, so only the overlap is tried here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commits_stamped_before_the_previous_run_arrive_with_the_next() {
    let (mut world, src, dst, state) = mysql_world("late").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.events (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP) CHARACTER SET utf8mb4;
             CREATE TABLE `{dst}`.events_copy (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                updated_at DATETIME NOT NULL) CHARACTER SET utf8mb4;"
        ))
        .await;
    let scheme = world.scheme_name("late");
    let mut text = mysql_scheme(
        &scheme,
        "SELECT id, note, updated_at FROM events \
         WHERE updated_at >= '{{LAST_SYNC_TIME|datetime}}' AND id > :last_id ORDER BY id LIMIT :limit",
        "updated_at",
        "events",
        json!({}),
    );
    let mut parsed: Value = serde_json::from_str(&text).expect("scheme");
    parsed["timezone"] = json!("UTC");
    text = parsed.to_string();
    world.write("schemes/late.json", &text);

    add_events(&world, &src, 1, 6).await;
    run_once(&world).await;
    assert_eq!(
        world
            .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.events_copy"))
            .await,
        6
    );
    // Committed now, stamped 20 s before the first run started.
    world
        .exec(&format!(
            "INSERT INTO `{src}`.events (id, note, updated_at)
             SELECT seq, CONCAT('迟到的 ', seq, ' ⏰'),
                 (SELECT started_at FROM `{state}`.ferry_runs WHERE scheme = '{scheme}') - INTERVAL 20 SECOND
             FROM `{src}`.seq_7_to_9"
        ))
        .await;
    run_once(&world).await;
    assert_eq!(
        contents(&world, &dst, "events_copy", "updated_at").await,
        contents(&world, &src, "events", "updated_at").await,
        "the late rows 7, 8, 9 arrived"
    );
    world.clean().await;
}

/// A data cursor (`cursor_field`): the next window starts at the largest value the last complete
/// run saw, minus the overlap for a datetime, as it is for a number. Rows that share the
/// boundary value and come after the run that saw the first of them are read (with the
/// boundary rows again, absorbed by the upsert), never skipped; rows older than the window are
/// not read again. Datetimes and numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_cursor_skips_none_of_the_rows_that_share_its_boundary_value() {
    let (mut world, src, dst, state) = mysql_world("cur").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.orders (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                changed_at DATETIME NOT NULL) CHARACTER SET utf8mb4;
             CREATE TABLE `{dst}`.orders_copy (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                changed_at DATETIME NOT NULL) CHARACTER SET utf8mb4;
             CREATE TABLE `{src}`.stock (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                version BIGINT NOT NULL) CHARACTER SET utf8mb4;
             CREATE TABLE `{dst}`.stock_copy (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL,
                version BIGINT NOT NULL) CHARACTER SET utf8mb4;
             -- Ten old rows, three at the boundary 10:00:00.
             INSERT INTO `{src}`.orders SELECT seq, CONCAT('张三 ', seq, ' 😀'),
                 '2024-03-01 08:00:00' + INTERVAL seq MINUTE FROM `{src}`.seq_1_to_10;
             INSERT INTO `{src}`.orders SELECT seq, CONCAT('李四 ', seq), '2024-03-01 10:00:00'
                 FROM `{src}`.seq_11_to_13;
             -- Versions 1 to 5, three rows at the boundary 5.
             INSERT INTO `{src}`.stock SELECT seq, CONCAT('库存 ', seq, ' 📦'), LEAST(seq, 5)
                 FROM `{src}`.seq_1_to_7;"
        ))
        .await;
    let orders = world.scheme_name("orders");
    world.write(
        "schemes/orders.json",
        &mysql_scheme(
            &orders,
            "SELECT id, note, changed_at FROM orders \
             WHERE changed_at >= '{{LAST_CURSOR|datetime}}' AND id > :last_id ORDER BY id LIMIT :limit",
            "changed_at",
            "orders",
            json!({"cursor_field": "changed_at"}),
        ),
    );
    let stock = world.scheme_name("stock");
    world.write(
        "schemes/stock.json",
        &mysql_scheme(
            &stock,
            "SELECT id, note, version FROM stock \
             WHERE version >= {{LAST_CURSOR}} AND id > :last_id ORDER BY id LIMIT :limit",
            "version",
            "stock",
            json!({"cursor_field": "version", "cursor_start": 0}),
        ),
    );

    run_once(&world).await;
    assert_eq!(last_run_records(&world, &state, &orders).await, 13);
    assert_eq!(last_run_records(&world, &state, &stock).await, 7);

    // Later: more rows at the boundary values, one just after, one committed late inside the
    // overlap (09:56, after the run that saw 10:00).
    world
        .exec(&format!(
            "INSERT INTO `{src}`.orders SELECT seq, CONCAT('王五 ', seq, ' 🎉'), '2024-03-01 10:00:00'
                 FROM `{src}`.seq_14_to_16;
             INSERT INTO `{src}`.orders VALUES (17, '赵六', '2024-03-01 10:00:01'),
                 (18, '迟到 ⏰', '2024-03-01 09:56:00');
             INSERT INTO `{src}`.stock SELECT seq, CONCAT('库存 ', seq), 5 FROM `{src}`.seq_8_to_9;
             INSERT INTO `{src}`.stock VALUES (10, '库存 10', 6);"
        ))
        .await;
    run_once(&world).await;
    // From 09:55:00 (10:00:00 minus 300 s): 11-13 again, 14-18 new; from version 5: 5-7 again,
    // 8-10 new.
    assert_eq!(last_run_records(&world, &state, &orders).await, 8);
    assert_eq!(last_run_records(&world, &state, &stock).await, 6);
    assert_eq!(
        contents(&world, &dst, "orders_copy", "changed_at").await,
        contents(&world, &src, "orders", "changed_at").await,
        "every order once"
    );
    assert_eq!(
        contents(&world, &dst, "stock_copy", "version").await,
        contents(&world, &src, "stock", "version").await,
        "every stock row once"
    );
    // `ferry status` shows where the next windows start.
    let status = world.ferry(&["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let cursor_of = |scheme: &str| {
        status
            .as_array()
            .or_else(|| status["schemes"].as_array())
            .into_iter()
            .flatten()
            .find(|s| s["scheme"] == scheme)
            .map(|s| s["checkpoint"]["data_cursor"].clone())
            .unwrap_or_else(|| panic!("{scheme} in {status}"))
    };
    assert_eq!(cursor_of(&orders), json!("2024-03-01 10:00:01"));
    assert_eq!(cursor_of(&stock), json!(6));
    world.clean().await;
}

/// Records the mock API serves: `{"id", "name"}` with Chinese text and emoji.
const API_TOTAL: u64 = 237;

/// A mock API that serves at most half the page size asked for: `/pages` by page number and
/// `/offset` by row offset, each with (`?total=1`) or without the total in its answer, and
/// `/stubborn`, which answers every page number past the end with the last page.
async fn clamping_api() -> SocketAddr {
    use axum::extract::Query;
    use axum::routing::get;

    fn answer(from: u64, size: u64, total: bool) -> axum::Json<Value> {
        let items: Vec<Value> = (from + 1..=(from + size).min(API_TOTAL))
            .map(|n| json!({"id": n, "name": format!("客户{n} 🚀 \"引号\"")}))
            .collect();
        let mut body = json!({"items": items});
        if total {
            body["total"] = json!(API_TOTAL);
        }
        axum::Json(body)
    }
    let number = |q: &HashMap<String, String>, key: &str| -> u64 {
        q.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let app = axum::Router::new()
        .route(
            "/pages",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let size = number(&q, "size") / 2;
                let page = number(&q, "page").max(1);
                answer((page - 1) * size, size, q.contains_key("total"))
            }),
        )
        // Past the end, every page number gets the last page again.
        .route(
            "/stubborn",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let size = number(&q, "size") / 2;
                let last = API_TOTAL.div_ceil(size);
                let page = number(&q, "page").clamp(1, last);
                answer((page - 1) * size, size, false)
            }),
        )
        .route(
            "/offset",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                answer(
                    number(&q, "offset"),
                    number(&q, "limit") / 2,
                    q.contains_key("total"),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// An API that serves half the page asked for ends no run early: with a total in its answer the
/// total decides, without one the run asks again after a short page and only an empty page ends
/// it (or the last page served again after a short one); offsets advance by what was received.
/// Every record arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_clamps_pages_to_half_the_asked_size_loses_no_record() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = clamping_api().await;
    let mut world = World::new("clamp").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    let state_db = state.rsplit('/').next().expect("state db").to_string();
    world.write_ferry_toml(
        &state,
        &(format!("[connections.api]\nkind = \"http\"\nbase_url = \"http://{addr}\"\n")
            + &common::mysql_connection("dst", &dst)),
    );
    let cases = [
        ("pages", true, "page", "{PAGINATION_START_PAGE}", "size"),
        ("pages", false, "page", "{PAGINATION_START_PAGE}", "size"),
        ("stubborn", false, "page", "{PAGINATION_START_PAGE}", "size"),
        ("offset", true, "offset", "{PAGINATION_START_ROW}", "limit"),
        ("offset", false, "offset", "{PAGINATION_START_ROW}", "limit"),
    ];
    let mut schemes = Vec::new();
    for (i, (route, total, position, value, size)) in cases.into_iter().enumerate() {
        let table = format!("customers_{i}");
        world
            .exec(&format!(
                "CREATE TABLE `{dst}`.{table} (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL)
                 CHARACTER SET utf8mb4"
            ))
            .await;
        let name = world.scheme_name(&format!("clamp{i}"));
        let mut request = vec![
            json!({"field": position, "type": "int", "value": value}),
            json!({"field": size, "type": "int", "value": "{PAGINATION_PAGE_SIZE}"}),
        ];
        let mut pagination = json!({"pageSize": 100});
        if total {
            request.push(json!({"field": "total", "value": "1"}));
            pagination["total_at"] = json!("/total");
        }
        let scheme = json!({
            "name": name,
            "source": {"connection": "api", "metadata": {
                "api": format!("/{route}"), "method": "GET", "id": "id", "records_at": "/items",
                "pagination": pagination, "request": request
            }},
            "target": {"connection": "dst", "metadata": {
                "api": "batchexecute", "idCheck": true,
                "request": [
                    {"field": "id", "type": "int", "value": "{id}"},
                    {"field": "name", "type": "string", "value": "{name}"}
                ],
                "otherRequest": [{"field": "main_sql", "type": "string", "value": format!(
                    "INSERT INTO {table} (id, name) VALUES (:id, :name) \
                     ON DUPLICATE KEY UPDATE name = VALUES(name)")}]
            }}
        });
        world.write(&format!("schemes/clamp{i}.json"), &scheme.to_string());
        schemes.push((name, table, route, total));
    }
    run_once(&world).await;
    let expected: String = (1..=API_TOTAL)
        .map(|n| format!("{n}|客户{n} 🚀 \"引号\""))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, table, route, total) in schemes {
        let case = format!("{route}, total in the answer: {total}");
        assert_eq!(
            last_run_records(&world, &state_db, &name).await,
            API_TOTAL as i64,
            "{case}: every record extracted once"
        );
        assert_eq!(
            world
                .scalar_string(&format!(
                    "SELECT GROUP_CONCAT(CONCAT_WS('|', id, name) ORDER BY id SEPARATOR '\\n')
                     FROM `{dst}`.{table}"
                ))
                .await,
            expected,
            "{case}: every record arrived"
        );
    }
    world.clean().await;
}

/// Issue 13: seed 000's `limit :limit offset :offset` over one table is paged by the table's
/// primary key (found in `information_schema`), keeping the statement's columns and filter. Rows
/// deleted behind the reading position and rows inserted during the run neither make it skip a
/// row nor read one twice; the same statement paged by offset as written
/// (`pagination.mode = "offset"`) skips rows. `ferry lint --online` and `ferry preview` say how
/// the source pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_offset_paging_over_one_table_goes_by_its_key_and_misses_nothing_while_the_table_changes()
 {
    use ferry_sources::Source;
    use ferry_sources::mysql::MysqlSource;

    let mut world = World::new("k").await;
    let db = world.database("www").await;
    let state = world.state_url();
    // Ids 10, 20, .. 1000, so rows can be inserted between them; ids > 990 outside the filter.
    world
        .exec(&format!(
            "CREATE TABLE `{db}`.www_contact (id BIGINT PRIMARY KEY, company VARCHAR(100), name VARCHAR(50),
                phone VARCHAR(20) NULL, created_at DATETIME) CHARACTER SET utf8mb4;
             INSERT INTO `{db}`.www_contact SELECT seq * 10, CONCAT('某某公司 😀 ', seq), CONCAT('张三', seq),
                IF(seq % 7 = 0, NULL, CONCAT('138', LPAD(seq, 8, '0'))), '2026-01-01' + INTERVAL seq MINUTE
                FROM `{db}`.seq_1_to_100;"
        ))
        .await;
    let sql = "select id,company,name,phone,created_at from www_contact where id < 995 limit :limit offset :offset";
    let source_json = |mode: Option<&str>| -> Value {
        let mut pagination = json!({ "pageSize": 10 });
        if let Some(mode) = mode {
            pagination["mode"] = json!(mode);
        }
        json!({
            "api": "select", "id": "id", "pagination": pagination,
            "request": [{ "field": "main_params", "type": "object", "children": [
                { "field": "limit", "type": "string", "value": "{PAGINATION_PAGE_SIZE}" },
                { "field": "offset", "type": "string", "value": "{PAGINATION_START_ROW}" } ] }],
            "otherRequest": [{ "field": "main_sql", "type": "string", "value": sql }]
        })
    };
    let metadata =
        |mode| -> ferry_core::Metadata { serde_json::from_value(source_json(mode)).unwrap() };
    let pool = ferry_state::mysql::connect(&format!("{}/{db}", common::MYSQL), 2, false)
        .await
        .unwrap();
    let tz = chrono_tz::Asia::Shanghai;
    // Read the table to its end; after the first page, delete five rows behind the position, one
    // ahead, and insert one behind, one ahead and one past the filter.
    let read = |mode: Option<&'static str>| {
        let (world, pool, db) = (&world, pool.clone(), db.clone());
        let metadata = metadata(mode);
        async move {
            world.exec(&format!("DELETE FROM `{db}`.www_contact WHERE id NOT IN (SELECT seq * 10 FROM `{db}`.seq_1_to_100);
                 INSERT IGNORE INTO `{db}`.www_contact SELECT seq * 10, CONCAT('某某公司 😀 ', seq), CONCAT('张三', seq), NULL, '2026-01-01'
                 FROM `{db}`.seq_1_to_100")).await;
            let ctx = ferry_core::template::Context::new(chrono::Utc::now().with_timezone(&tz), tz);
            let mut source = MysqlSource::new(pool, std::sync::Arc::new(metadata), ctx).unwrap();
            let note = source.paging_note().await.unwrap().unwrap_or_default();
            let mut ids: Vec<i64> = Vec::new();
            let mut pages = 0;
            while let Some(page) = source.next_page().await.unwrap() {
                ids.extend(page.records.iter().map(|r| r.data["id"].as_i64().unwrap()));
                pages += 1;
                if pages == 1 {
                    world.exec(&format!(
                        "DELETE FROM `{db}`.www_contact WHERE id IN (10, 20, 30, 40, 50, 700);
                         INSERT INTO `{db}`.www_contact (id, company, name, created_at) VALUES
                           (15, '新客户 🚀', '李四', NOW()), (555, '新客户 🚀', '王五', NOW()), (1005, '过滤外', '赵六', NOW())"
                    ))
                    .await;
                }
            }
            (note, ids)
        }
    };

    let (note, ids) = read(None).await;
    assert_eq!(note, "offset paging over `www_contact`: paged by key `id`");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "no row read twice: {ids:?}");
    // Every row there from start to end was read; so was the row inserted ahead.
    for id in (60..=990).step_by(10).filter(|id| *id != 700).chain([555]) {
        assert!(ids.contains(&id), "row {id} was skipped: {ids:?}");
    }
    assert!(!ids.contains(&1005), "the filter is kept: {ids:?}");
    assert!(
        !ids.contains(&700),
        "a row deleted ahead is not read: {ids:?}"
    );

    // The same statement paged by offset as written skips the rows the deletions shifted.
    let (note, ids) = read(Some("offset")).await;
    assert!(
        note.starts_with("offset paging over the table is kept (pagination.mode is \"offset\")"),
        "{note}"
    );
    let skipped: Vec<i64> = (60..=990)
        .step_by(10)
        .filter(|id| *id != 700 && !ids.contains(id))
        .collect();
    assert!(
        !skipped.is_empty(),
        "offset paging skipped nothing: {ids:?}"
    );

    // lint --online and preview say how the scheme pages.
    let scheme = world.scheme_name("offset");
    world.write_ferry_toml(&state, &common::mysql_connection("www", &db));
    let source = source_json(None);
    world.write(
        &format!("schemes/{scheme}.json"),
        &json!({ "name": scheme, "source": { "connection": "www", "metadata": source },
                 "target": { "connection": "www", "metadata": { "api": "execute", "otherRequest": [
                    { "field": "main_sql", "value": "UPDATE www_contact SET name = :name WHERE id = :id" }],
                    "request": [{ "field": "id", "value": "{id}" }, { "field": "name", "value": "{name}" }] } } })
        .to_string(),
    );
    let lint = world.ferry(&["lint", "--online"]);
    assert!(
        common::stdout(&lint).contains(&format!(
            "schemes/{scheme}.json: warning: source.metadata.otherRequest[0].value: offset paging over `www_contact`: paged by key `id`"
        )),
        "{}",
        common::all_output(&lint)
    );
    world.write("sample.json", r#"[{"id": 10, "name": "张三"}]"#);
    let input = world.dir.join("sample.json");
    let preview = world.ferry(&[
        "preview",
        "--scheme",
        &scheme,
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&preview.stderr).contains(
            "offset paging over `www_contact`: paged by the table's primary or unique key"
        ),
        "{}",
        common::all_output(&preview)
    );
    world.clean().await;
}
