//! Issue 4, end to end over real HTTP: the seed schemes 001 to 004 run with `ferry run --once`
//! against an in-process `ferry sandbox`, the real RabbitMQ and MariaDB; the same under
//! throttling, 5xx bursts, slow pages and expiring tokens; wrong credentials fail fast without a
//! retry storm. The generic `http` kind's paginator is driven directly against a small mock API.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeZone};
use common::World;
use ferry_core::config::{Connection, HttpConnection};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::template::Context;
use ferry_sandbox::{Faults, SandboxOptions};
use ferry_sources::Source;
use serde_json::{Value, json};
use sqlx::Row;

const SHANGHAI: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn sandbox(records: usize, faults: Faults) -> SocketAddr {
    install_crypto();
    let opts = SandboxOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        records,
        faults,
        ..SandboxOptions::default()
    };
    let (addr, _task) = ferry_sandbox::spawn(opts).await.expect("sandbox starts");
    addr
}

async fn get_json(url: &str) -> Value {
    install_crypto();
    let client = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        client
            .get(url)
            .send()
            .await
            .expect("GET")
            .json::<Value>()
            .await
            .expect("JSON")
    })
    .await
    .expect("timely answer")
}

async fn dataset(addr: SocketAddr, name: &str) -> Vec<Value> {
    get_json(&format!("http://{addr}/_sandbox/data/{name}"))
        .await
        .as_array()
        .cloned()
        .expect("dataset array")
}

/// Calls and statuses per route so far.
async fn stats(addr: SocketAddr) -> Value {
    get_json(&format!("http://{addr}/_sandbox/stats")).await["routes"].clone()
}

fn calls(stats: &Value, route: &str) -> u64 {
    stats[route]["calls"].as_u64().unwrap_or(0)
}

fn status_count(stats: &Value, route: &str, status: &str) -> u64 {
    stats[route]["statuses"][status].as_u64().unwrap_or(0)
}

/// Connection blocks of `ferry.toml`, each overridable.
struct Conns {
    base: String,
    /// More `[connections.*]` tables, appended as written.
    extra: String,
    yida: String,
    jushuitan: String,
    okki: String,
    kingdee: String,
}

impl Conns {
    fn sandbox(addr: SocketAddr) -> Conns {
        let base = format!("http://{addr}");
        Conns {
            base: base.clone(),
            extra: String::new(),
            yida: format!(
                "kind = \"dingtalk\"\nbase_url = \"{base}\"\napp_key = \"{}\"\napp_secret = \"{}\"\n",
                ferry_sandbox::DINGTALK_APP_KEY,
                ferry_sandbox::DINGTALK_APP_SECRET
            ),
            jushuitan: format!(
                "kind = \"jushuitan\"\nbase_url = \"{base}\"\napp_key = \"{}\"\napp_secret = \"{}\"\naccess_token = \"{}\"\nrefresh_token = \"{}\"\n",
                ferry_sandbox::JUSHUITAN_APP_KEY,
                ferry_sandbox::JUSHUITAN_APP_SECRET,
                ferry_sandbox::JUSHUITAN_ACCESS_TOKEN,
                ferry_sandbox::JUSHUITAN_REFRESH_TOKEN
            ),
            okki: format!(
                "kind = \"okki\"\nbase_url = \"{base}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nscope = \"user\"\n",
                ferry_sandbox::OKKI_CLIENT_ID,
                ferry_sandbox::OKKI_CLIENT_SECRET
            ),
            kingdee: format!(
                "kind = \"kingdee\"\nbase_url = \"{base}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nouter_instance_id = \"219672488890732544\"\n",
                ferry_sandbox::KINGDEE_CLIENT_ID,
                ferry_sandbox::KINGDEE_CLIENT_SECRET
            ),
        }
    }
}

/// Write `ferry.toml` for this world: the vendor connections, `finance` and `bi` databases, noop.
fn write_config(world: &mut World, conns: &Conns, finance: &str, bi: &str) {
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &format!(
            r#"[connections.yida]
{yida}
[connections.jushuitan]
{jushuitan}
[connections.okki]
{okki}
[connections.kingdee]
{kingdee}
{finance_connection}{bi_connection}[connections.noop]
kind = "noop"
{extra}
"#,
            finance_connection = common::mysql_connection("finance", finance),
            bi_connection = common::mysql_connection("bi", bi),
            extra = conns.extra,
            yida = conns.yida,
            jushuitan = conns.jushuitan,
            okki = conns.okki,
            kingdee = conns.kingdee,
        ),
    );
}

/// Copy a seed scheme from config/schemes under this world's name for it, with `edit` applied.
fn seed_scheme(world: &mut World, file: &str, edit: impl FnOnce(&mut Value)) -> String {
    let path = format!(
        "{}/../../config/schemes/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut scheme: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("seed scheme")).expect("JSON");
    let name = world.scheme_name(file);
    scheme["name"] = json!(name);
    scheme["schedule"] = Value::Null;
    edit(&mut scheme);
    world.write(
        &format!("schemes/{file}.json"),
        &serde_json::to_string_pretty(&scheme).unwrap(),
    );
    name
}

async fn create_targets(world: &mut World) -> (String, String) {
    let finance = world.database("fin").await;
    let bi = world.database("bi").await;
    world
        .exec(&format!(
            "CREATE TABLE `{finance}`.hc_dd_fktk (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                extend_processInstanceId VARCHAR(64) NOT NULL,
                order_no_new VARCHAR(100) NULL,
                datetime_new DATE NULL,
                qty_count VARCHAR(16) NULL,
                sales_count VARCHAR(32) NULL,
                status VARCHAR(32) NULL,
                Document_Type VARCHAR(32) NULL,
                UNIQUE KEY uk_instance (extend_processInstanceId)
            ) CHARACTER SET utf8mb4;
            CREATE TABLE `{bi}`.bi_shops (
                shop_id VARCHAR(32) NOT NULL PRIMARY KEY, shop_name VARCHAR(200), co_id VARCHAR(32),
                shop_site VARCHAR(64), shop_url VARCHAR(255), created VARCHAR(32), nick VARCHAR(100),
                session_expired VARCHAR(32), session_uid VARCHAR(64), short_name VARCHAR(100),
                group_id VARCHAR(32), group_name VARCHAR(100)
            ) CHARACTER SET utf8mb4;
            CREATE TABLE `{bi}`.okki_users (
                nickname VARCHAR(100) NOT NULL PRIMARY KEY, user_id VARCHAR(32), department_names VARCHAR(255),
                self_nickname VARCHAR(100)
            ) CHARACTER SET utf8mb4;"
        ))
        .await;
    (finance, bi)
}

/// An extra scheme: OKKI users into MySQL, with both kinds of lookup, to see what they produce.
fn okki_to_mysql_scheme(world: &mut World) -> String {
    let name = world.scheme_name("okki-lookups");
    world.write(
        "schemes/okki-lookups.json",
        &serde_json::to_string_pretty(&json!({
            "name": name,
            "source": {"connection": "okki", "metadata": {
                "api": "/v1/user/list", "method": "GET", "id": "nickname",
                "request": [{"field": "enable_flag", "type": "string", "value": null}],
                "lookups": [
                    {"field": "department_names", "from": "departments", "pick": "department_name", "join": ","},
                    {"field": "self_nickname", "api": "/v1/user/list", "records_at": "/data",
                     "key": "user_id", "value": "nickname", "match": "user_id"}
                ]
            }},
            "target": {"connection": "bi", "metadata": {
                "api": "batchexecute", "idCheck": true,
                "request": [
                    {"field": "nickname", "type": "string", "value": "{nickname}"},
                    {"field": "user_id", "type": "string", "value": "{user_id}"},
                    {"field": "department_names", "type": "string", "value": "{department_names}"},
                    {"field": "self_nickname", "type": "string", "value": "{self_nickname}"}
                ],
                "otherRequest": [{"field": "main_sql", "type": "string", "value":
                    "INSERT INTO okki_users (nickname, user_id, department_names, self_nickname) VALUES (:nickname, :user_id, :department_names, :self_nickname) ON DUPLICATE KEY UPDATE user_id = VALUES(user_id)"}]
            }}
        }))
        .unwrap(),
    );
    name
}

/// The Yida instances seed 001's filters select, as `id|order|date|qty|amount|type` lines.
fn expected_refunds(yida: &[Value], now: chrono::DateTime<chrono_tz::Tz>) -> Vec<String> {
    // createFromTimeGMT: DATE_FORMAT(DATE_ADD(NOW(), INTERVAL -25 DAY), '%Y-%m-%d 00:00:00') in
    // Shanghai wall-clock time, which the API reads as UTC.
    let from = (now.date_naive() - chrono::Days::new(25))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut lines: Vec<String> = yida
        .iter()
        .filter(|item| {
            let data = &item["data"];
            let created = NaiveDateTime::parse_from_str(
                item["createTimeGMT"].as_str().unwrap(),
                "%Y-%m-%dT%H:%MZ",
            )
            .unwrap()
            .and_utc();
            item["instanceStatus"] == "COMPLETED"
                && item["approvedResult"] == "agree"
                && data["selectField_lgkiepju"] == "是"
                && data["radioField_lgk9jn2v"] == "借款核销"
                && data["numberField_lgkiepjv"].as_f64().unwrap() >= 0.0001
                && created >= from
        })
        .map(|item| {
            let data = &item["data"];
            let date = SHANGHAI
                .timestamp_millis_opt(data["dateField_lgkieplu"].as_i64().unwrap())
                .unwrap()
                .date_naive();
            format!(
                "{}|{}(FKTK)|{}|1|{}|付款退款",
                value_text(&item["processInstanceId"]),
                value_text(&data["serialNumberField_lgk9jn2s"]),
                date.format("%Y-%m-%d"),
                value_text(&data["numberField_lgkiepjv"]),
            )
        })
        .collect();
    lines.sort();
    lines
}

async fn strings(world: &World, sql: &str) -> Vec<String> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&world.admin)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("text column"))
        .collect();
    out.sort();
    out
}

async fn refunds_in_mysql(world: &World, finance: &str) -> Vec<String> {
    strings(
        world,
        &format!(
            "SELECT CONCAT_WS('|', extend_processInstanceId, order_no_new, DATE_FORMAT(datetime_new, '%Y-%m-%d'),
                    qty_count, sales_count, Document_Type) FROM `{finance}`.hc_dd_fktk"
        ),
    )
    .await
}

const SHOP_FIELDS: [&str; 12] = [
    "shop_id",
    "shop_name",
    "co_id",
    "shop_site",
    "shop_url",
    "created",
    "nick",
    "session_expired",
    "session_uid",
    "short_name",
    "group_id",
    "group_name",
];

fn expected_shops(shops: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = shops
        .iter()
        .map(|shop| {
            SHOP_FIELDS
                .iter()
                .map(|f| value_text(&shop[*f]))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    lines.sort();
    lines
}

async fn shops_in_mysql(world: &World, bi: &str) -> Vec<String> {
    let columns = SHOP_FIELDS.join(", ");
    strings(
        world,
        &format!("SELECT CONCAT_WS('|', {columns}) FROM `{bi}`.bi_shops"),
    )
    .await
}

/// `ferry run --once` (with a deadline), returning (success, stdout + stderr, seconds).
fn run_once(world: &World, extra: &[&str]) -> (bool, String, f64) {
    let mut args = vec!["run", "--once", "--timeout-secs", "300"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = world.ferry(&args);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, started.elapsed().as_secs_f64())
}

/// The summary line of `scheme`: `(pages, records, written)`.
fn summary(out: &str, scheme: &str) -> (u64, u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{scheme}: ")) && l.contains(" pages, "))
        .unwrap_or_else(|| panic!("no summary for {scheme} in:\n{out}"));
    let numbers: Vec<u64> = line[scheme.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_001_to_004_move_the_sandbox_data_exactly() {
    let addr = sandbox(600, Faults::default()).await;
    let mut world = World::new("v").await;
    let (finance, bi) = create_targets(&mut world).await;
    let mut conns = Conns::sandbox(addr);
    // The generic kind, reading the sandbox's own dataset endpoint (a bare JSON array).
    conns.extra = format!(
        "[connections.api]\nkind = \"http\"\nbase_url = \"{}\"\nheaders = {{ X-Demo = \"1\" }}\n",
        conns.base
    );
    write_config(&mut world, &conns, &finance, &bi);
    let over_http = world.scheme_name("http-users");
    world.write(
        "schemes/http-users.json",
        &json!({
            "name": over_http,
            "source": {"connection": "api", "metadata": {"api": "/_sandbox/data/okki", "method": "GET", "id": "nickname"}},
            "target": {"connection": "noop", "metadata": {"api": "写入空操作", "idCheck": true}}
        })
        .to_string(),
    );
    let yida = seed_scheme(&mut world, "yida-refunds-to-mysql", |_| {});
    let shops = seed_scheme(&mut world, "jushuitan-shops-to-bi", |_| {});
    let users = seed_scheme(&mut world, "okki-users", |_| {});
    let kingdee = seed_scheme(&mut world, "kingdee-token-refresh", |_| {});
    let lookups = okki_to_mysql_scheme(&mut world);

    let now = chrono::Utc::now().with_timezone(&SHANGHAI);
    let (ok, out, _) = run_once(&world, &[]);
    assert!(ok, "{out}");

    // Seed 001: exactly the instances its filters select, every column as mapped.
    let expected = expected_refunds(&dataset(addr, "yida").await, now);
    assert!(expected.len() > 10, "the filters select a real sample");
    assert_eq!(refunds_in_mysql(&world, &finance).await, expected);
    let (pages, records, written) = summary(&out, &yida);
    assert_eq!(
        (records, written),
        (expected.len() as u64, expected.len() as u64)
    );
    assert_eq!(pages, (expected.len() as u64).div_ceil(100));

    // Seed 002: every shop, every column, 3 pages of at most 100.
    let all_shops = dataset(addr, "jushuitan").await;
    assert_eq!(
        shops_in_mysql(&world, &bi).await,
        expected_shops(&all_shops)
    );
    assert_eq!(
        summary(&out, &shops),
        (3, all_shops.len() as u64, all_shops.len() as u64)
    );

    // Seed 003: every user through the noop target; the lookups in MySQL.
    let all_users = dataset(addr, "okki").await;
    assert_eq!(
        summary(&out, &users),
        (1, all_users.len() as u64, all_users.len() as u64)
    );
    let mut expected_users: Vec<String> = all_users
        .iter()
        .map(|u| {
            let departments: Vec<String> = u["departments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| value_text(&d["department_name"]))
                .collect();
            format!(
                "{}|{}|{}|{}",
                value_text(&u["nickname"]),
                u["user_id"],
                departments.join(","),
                value_text(&u["nickname"])
            )
        })
        .collect();
    expected_users.sort();
    assert_eq!(
        strings(
            &world,
            &format!(
                "SELECT CONCAT_WS('|', nickname, user_id, department_names, self_nickname) FROM `{bi}`.okki_users"
            )
        )
        .await,
        expected_users
    );
    assert_eq!(summary(&out, &lookups).1, all_users.len() as u64);
    let n = all_users.len() as u64;
    assert_eq!(summary(&out, &over_http), (1, n, n));

    // Seed 004: one authorisation, and its app token cached for the connection.
    assert_eq!(summary(&out, &kingdee), (1, 1, 1));
    let state_db = world.state_url().rsplit('/').next().unwrap().to_string();
    let cached = world
        .scalar_string(&format!(
            "SELECT CONCAT(LEFT(token, 13), ' ', extra_json) FROM `{state_db}`.ferry_tokens WHERE connection = 'kingdee'"
        ))
        .await;
    assert!(cached.starts_with("kd-app-token-"), "{cached}");
    assert!(cached.contains("\"domain\":\"tf.jdy.com\""), "{cached}");

    // Tokens are shared: the second run fetches none, and moves nothing twice.
    let before = stats(addr).await;
    let (ok, out, _) = run_once(&world, &[]);
    assert!(ok, "{out}");
    let after = stats(addr).await;
    for route in [
        "POST /v1.0/oauth2/accessToken",
        "POST /v1/oauth2/access_token",
        "GET /jdyconnector/app_management/kingdee_auth_token",
    ] {
        assert_eq!(calls(&after, route), calls(&before, route), "{route}");
    }
    assert_eq!(refunds_in_mysql(&world, &finance).await, expected);
    assert_eq!(
        shops_in_mysql(&world, &bi).await,
        expected_shops(&all_shops)
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_5xx_bursts_slow_pages_and_expiring_tokens_lose_and_repeat_nothing() {
    let faults: Faults = serde_json::from_value(json!({
        "yida": {"throttle_every": 3, "burst_5xx": 5, "slow_ms": 1500, "slow_every": 7},
        "dingtalk_token": {"token_ttl_secs": 4},
        "jushuitan": {"throttle_every": 3, "burst_5xx": 5},
        "okki": {"throttle_every": 3, "burst_5xx": 5},
        "kingdee": {"throttle_every": 3, "burst_5xx": 5}
    }))
    .unwrap();
    let addr = sandbox(2000, faults).await;
    let mut world = World::new("f").await;
    let (finance, bi) = create_targets(&mut world).await;
    let mut conns = Conns::sandbox(addr);
    // A slow page (1.5 s) outlasts this timeout: it is abandoned and asked for again.
    conns.yida.push_str("timeout_secs = 1\n");
    // A stale access token: refused (code 100), refreshed once with the refresh token, cached.
    conns.jushuitan = conns
        .jushuitan
        .replace(ferry_sandbox::JUSHUITAN_ACCESS_TOKEN, "jst-stale-token");
    write_config(&mut world, &conns, &finance, &bi);
    let yida = seed_scheme(&mut world, "yida-refunds-to-mysql", |s| {
        s["source"]["metadata"]["pagination"]["pageSize"] = json!(10);
    });
    let shops = seed_scheme(&mut world, "jushuitan-shops-to-bi", |s| {
        s["source"]["metadata"]["pagination"]["pageSize"] = json!(20);
    });
    let users = seed_scheme(&mut world, "okki-users", |_| {});
    let kingdee = seed_scheme(&mut world, "kingdee-token-refresh", |_| {});

    let now = chrono::Utc::now().with_timezone(&SHANGHAI);
    let (ok, out, _) = run_once(&world, &[]);
    assert!(ok, "{out}");

    let expected = expected_refunds(&dataset(addr, "yida").await, now);
    assert!(expected.len() > 50, "enough pages to meet every fault");
    assert_eq!(refunds_in_mysql(&world, &finance).await, expected);
    let (pages, records, _) = summary(&out, &yida);
    assert_eq!(
        records,
        expected.len() as u64,
        "every record extracted exactly once"
    );
    assert_eq!(pages, (expected.len() as u64).div_ceil(10));

    let all_shops = dataset(addr, "jushuitan").await;
    assert_eq!(
        shops_in_mysql(&world, &bi).await,
        expected_shops(&all_shops)
    );
    assert_eq!(summary(&out, &shops).1, all_shops.len() as u64);
    assert_eq!(
        summary(&out, &users).1,
        dataset(addr, "okki").await.len() as u64
    );
    assert_eq!(summary(&out, &kingdee).1, 1);

    // The faults really happened.
    let s = stats(addr).await;
    let yida_route = "POST /v1.0/yida/processes/instances";
    // Calls 1-5 are the burst; every 3rd call is throttled; every 7th is slow: abandoned after
    // the 1 s timeout (the sandbox records no status for it) and asked again.
    assert_eq!(status_count(&s, yida_route, "503"), 5, "{s}");
    assert!(status_count(&s, yida_route, "403") >= 3, "{s}");
    assert_eq!(
        status_count(&s, yida_route, "200"),
        pages,
        "each page answered once: {s}"
    );
    assert!(
        out.contains("timed out"),
        "a slow page timed out and was retried: {out}"
    );
    assert!(
        status_count(&s, "POST /open/shops/query", "503") >= 5,
        "{s}"
    );
    assert!(
        status_count(&s, "GET /v1/user/list", "429")
            + status_count(&s, "POST /v1/oauth2/access_token", "429")
            >= 1,
        "{s}"
    );
    assert!(
        calls(&s, "POST /v1.0/oauth2/accessToken") >= 2,
        "the 4-second token was renewed: {s}"
    );
    assert!(
        status_count(&s, "POST /openWeb/auth/refreshToken", "200") >= 1,
        "{s}"
    );
    let state_db = world.state_url().rsplit('/').next().unwrap().to_string();
    assert_eq!(
        world
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM `{state_db}`.ferry_tokens WHERE connection = 'jushuitan' AND token LIKE 'jst-access-%'"
            ))
            .await,
        1,
        "the refreshed Jushuitan token is cached for every replica"
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_fast_naming_the_connection_and_the_vendor_error() {
    let addr = sandbox(50, Faults::default()).await;
    let mut world = World::new("w").await;
    let (finance, bi) = create_targets(&mut world).await;
    let good = Conns::sandbox(addr);
    let mut bad = Conns::sandbox(addr);
    bad.yida = bad
        .yida
        .replace(ferry_sandbox::DINGTALK_APP_SECRET, "wrong-secret");
    bad.jushuitan = bad
        .jushuitan
        .replace(ferry_sandbox::JUSHUITAN_APP_SECRET, "wrong-secret");
    bad.okki = bad
        .okki
        .replace(ferry_sandbox::OKKI_CLIENT_SECRET, "wrong-secret");
    bad.kingdee = bad
        .kingdee
        .replace(ferry_sandbox::KINGDEE_CLIENT_SECRET, "wrong-secret");
    // A refused access token and no refresh token to renew it with.
    bad.extra = Conns::sandbox(addr)
        .jushuitan
        .replace(ferry_sandbox::JUSHUITAN_ACCESS_TOKEN, "jst-stale-token")
        .lines()
        .filter(|l| !l.starts_with("refresh_token"))
        .fold("[connections.jst_stale]\n".to_string(), |acc, l| {
            acc + l + "\n"
        });
    write_config(&mut world, &bad, &finance, &bi);
    let stale = world.scheme_name("stale");
    let mut stale_scheme: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../config/schemes/jushuitan-shops-to-bi.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    stale_scheme["name"] = json!(stale);
    stale_scheme["source"]["connection"] = json!("jst_stale");
    world.write("schemes/stale.json", &stale_scheme.to_string());
    let cases = [
        (
            stale,
            "connection `jst_stale`: Jushuitan refused the access token (code 100) and no refresh_token is configured",
            "POST /open/shops/query",
        ),
        (
            seed_scheme(&mut world, "yida-refunds-to-mysql", |_| {}),
            "connection `yida`: DingTalk refused the app key and secret (HTTP 400, invalidClientIdOrSecret: 无效的clientId或者clientSecret)",
            "POST /v1.0/oauth2/accessToken",
        ),
        (
            seed_scheme(&mut world, "jushuitan-shops-to-bi", |_| {}),
            "connection `jushuitan`: Jushuitan refused the signature (10: 签名无效); check app_key and app_secret",
            "POST /open/shops/query",
        ),
        (
            seed_scheme(&mut world, "okki-users", |_| {}),
            "connection `okki`: OKKI refused the client credentials (HTTP 400, invalid_client: Client authentication failed.)",
            "POST /v1/oauth2/access_token",
        ),
        (
            seed_scheme(&mut world, "kingdee-token-refresh", |_| {}),
            "connection `kingdee`: the Kingdee gateway refused the request signature (4008: signature mismatch / 签名验证失败); check client_id and client_secret",
            "POST /jdyconnector/app_management/push_app_authorize",
        ),
    ];
    for (scheme, message, route) in &cases {
        let before = stats(addr).await;
        let (ok, out, seconds) = run_once(&world, &["--scheme", scheme]);
        let after = stats(addr).await;
        assert!(!ok, "{scheme} must fail: {out}");
        assert!(
            seconds < 20.0,
            "{scheme} failed fast, not after {seconds:.1} s"
        );
        assert!(
            out.contains(&format!("{scheme}: failed (config): {message}")),
            "{scheme}: {out}"
        );
        assert_eq!(
            calls(&after, route) - calls(&before, route),
            1,
            "{route}: one call, no retry storm"
        );
        assert!(!out.contains("wrong-secret"), "no secret in the output");
    }
    // With the right credentials the same schemes work.
    std::fs::remove_file(world.dir.join("schemes/stale.json")).unwrap();
    write_config(&mut world, &good, &finance, &bi);
    let (ok, out, _) = run_once(&world, &[]);
    assert!(ok, "{out}");
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_fetched_once_for_every_concurrent_reader_and_refreshed_before_expiry() {
    use ferry_sources::token::{Token, TokenCache};
    let mut world = World::new("t").await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .expect("state db");
    let fetches = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        // Each reader is its own cache handle, as on separate replicas.
        let cache = TokenCache::new(state.clone(), "shared");
        let fetches = Arc::clone(&fetches);
        readers.spawn(async move {
            cache
                .get(|| async move {
                    let n = fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    Ok(Token {
                        value: format!("token-{n}"),
                        extra: Some(json!({"domain": "d"})),
                        ttl: Duration::from_secs(2),
                    })
                })
                .await
        });
    }
    let got = tokio::time::timeout(Duration::from_secs(30), readers.join_all())
        .await
        .expect("readers finish");
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    for result in got {
        assert_eq!(
            result.unwrap(),
            ("token-1".to_string(), Some(json!({"domain": "d"})))
        );
    }
    // A 2-second token is due 0.4 s early (a fifth of its life): gone from the cache by 1.7 s.
    let cache = TokenCache::new(state.clone(), "shared");
    assert!(cache.cached().await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(cache.cached().await.unwrap(), None);
    world.clean().await;
}

// ---------------------------------------------------------------------------------------------
// The generic `http` kind against a mock API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Mock {
    calls: HashMap<String, u64>,
    seen: Vec<String>,
}

type Shared = Arc<Mutex<Mock>>;

fn item(n: u64) -> Value {
    json!({"id": n, "name": format!("条目{n} 🚀")})
}

async fn mock_api() -> (SocketAddr, Shared) {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    const TOTAL: u64 = 23;
    let shared: Shared = Arc::default();
    fn count(s: &Shared, route: &str) -> u64 {
        let mut m = s.lock().unwrap();
        let n = m.calls.entry(route.to_string()).or_default();
        *n += 1;
        *n
    }
    let app = axum::Router::new()
        // Page numbers, records at /result/items, has_more as a string.
        .route(
            "/pages",
            get(|State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                count(&s, "pages");
                let page: u64 = q["page"].parse().unwrap();
                let size: u64 = q["size"].parse().unwrap();
                let items: Vec<Value> = ((page - 1) * size + 1..=(page * size).min(TOTAL)).map(item).collect();
                let more = page * size < TOTAL;
                axum::Json(json!({"result": {"items": items, "has_more": if more { "true" } else { "false" }}}))
            }),
        )
        // Offsets in a JSON body; the total at /total; pages may come back short.
        .route(
            "/offset",
            post(|State(s): State<Shared>, axum::Json(body): axum::Json<Value>| async move {
                count(&s, "offset");
                let offset = body["offset"].as_u64().unwrap();
                // The API caps pages at 4 whatever is asked.
                let items: Vec<Value> = (offset + 1..=(offset + 4).min(TOTAL)).map(item).collect();
                axum::Json(json!({"total": TOTAL, "rows": items}))
            }),
        )
        // A next-page token at /paging/next, sent back as a form field.
        .route(
            "/cursor",
            post(|State(s): State<Shared>, axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                count(&s, "cursor");
                let (items, next) = match form.get("after").map(String::as_str) {
                    None => (vec![item(1), item(2)], json!("c2")),
                    Some("c2") => (vec![item(3), item(4)], json!("c3")),
                    Some("c3") => (vec![item(5)], Value::Null),
                    Some(other) => panic!("unknown cursor {other}"),
                };
                axum::Json(json!({"data": items, "paging": {"next": next}}))
            }),
        )
        // Ignores paging: the same full page for ever.
        .route(
            "/stuck",
            get(|State(s): State<Shared>| async move {
                count(&s, "stuck");
                axum::Json(json!({"data": (1..=5).map(item).collect::<Vec<_>>(), "has_next": true}))
            }),
        )
        // Never ends.
        .route(
            "/endless",
            get(|State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                count(&s, "endless");
                let page: u64 = q["page"].parse().unwrap();
                axum::Json(json!({"data": (page * 10..page * 10 + 5).map(item).collect::<Vec<_>>()}))
            }),
        )
        // Echoes the time window it was asked for.
        .route(
            "/since",
            get(|State(s): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                count(&s, "since");
                s.lock().unwrap().seen.push(q["since"].clone());
                axum::Json(json!([{"id": 1}]))
            }),
        )
        // Throttles the first call with Retry-After: 1.
        .route(
            "/throttled",
            get(|State(s): State<Shared>| async move {
                if count(&s, "throttled") == 1 {
                    let mut headers = HeaderMap::new();
                    headers.insert("retry-after", "1".parse().unwrap());
                    return (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response();
                }
                axum::Json(json!([{"id": 1}])).into_response()
            }),
        )
        .route(
            "/denied",
            get(|State(s): State<Shared>| async move {
                count(&s, "denied");
                (StatusCode::UNAUTHORIZED, "{\"error\":\"bad key\"}")
            }),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, shared)
}

struct Harness {
    addr: SocketAddr,
    state: ferry_state::State,
}

impl Harness {
    async fn open(
        &self,
        metadata: Value,
        last_sync: Option<&str>,
    ) -> Result<Box<dyn Source>, ferry_core::FerryError> {
        let conn = Connection::Http(HttpConnection {
            base_url: format!("http://{}", self.addr),
            headers: Default::default(),
            timeout_secs: 5,
            token: None,
            rate_per_sec: None,
        });
        let metadata: Metadata = serde_json::from_value(metadata).unwrap();
        let now = chrono::Utc::now().with_timezone(&SHANGHAI);
        // The extractor moves LAST_SYNC_TIME back by the source's overlap.
        let overlap = chrono::TimeDelta::from_std(ferry_sources::overlap(&metadata)?).unwrap();
        let last = last_sync.map(|t| {
            SHANGHAI
                .from_local_datetime(
                    &NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap(),
                )
                .unwrap()
                - overlap
        });
        let ctx = Context::new(now, SHANGHAI).with_last_sync(last);
        open_api_source("api", &conn, Arc::new(metadata), ctx, self.state.clone()).await
    }

    /// Every page until the end (bounded), as (ids per page).
    async fn drain(&self, metadata: Value) -> Result<Vec<Vec<String>>, ferry_core::FerryError> {
        let pages = self.drain_from(metadata, None).await?;
        Ok(pages.into_iter().map(|(ids, _)| ids).collect())
    }

    /// Every page after `cursor` (from the start without one), with the cursor each page saved.
    async fn drain_from(
        &self,
        metadata: Value,
        cursor: Option<&Value>,
    ) -> Result<Vec<(Vec<String>, Value)>, ferry_core::FerryError> {
        let mut source = self.open(metadata, None).await?;
        if let Some(cursor) = cursor {
            source.resume_at(cursor)?;
        }
        let mut pages = Vec::new();
        for _ in 0..50 {
            let page = tokio::time::timeout(Duration::from_secs(30), source.next_page())
                .await
                .expect("page in time")?;
            match page {
                Some(page) => pages.push((
                    page.records.iter().map(|r| r.id.clone()).collect(),
                    page.cursor.unwrap_or_default(),
                )),
                None => return Ok(pages),
            }
        }
        panic!("the source did not end");
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_http_kind_pages_stops_and_fails_loudly() {
    let (h, mock, world) = mock_harness("h").await;

    // Page numbers until has_more says "false": 10 + 10 + 3.
    let pages = h.drain(paged_metadata()).await.unwrap();
    assert_eq!(pages, vec![ids(1..=10), ids(11..=20), ids(21..=23)]);

    // Offsets in a JSON body; the API serves 4 at a time although 10 are asked: the total, not
    // the short page, ends the run.
    let pages = h.drain(offset_metadata()).await.unwrap();
    assert_eq!(pages.concat(), ids(1..=23));
    assert_eq!(pages.len(), 6);

    // A cursor at a JSON pointer, sent back in a form body until there is none.
    let pages = h.drain(cursor_metadata()).await.unwrap();
    assert_eq!(pages, vec![ids(1..=2), ids(3..=4), ids(5..=5)]);

    // An API that ignores the paging parameters: stopped at the second page, loudly.
    let err = h
        .drain(json!({"api": "/stuck", "id": "id", "records_at": "/data",
            "pagination": {"mode": "page", "pageSize": 5, "has_next_at": "/has_next"}}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source.metadata.pagination: page 2 repeats the previous page exactly; the paging parameters do not reach the API"
    );
    assert_eq!(err.class(), ferry_core::ErrorClass::Config);

    // An API that never ends: the max_pages guard.
    let err = h
        .drain(json!({"api": "/endless", "id": "id", "records_at": "/data",
            "pagination": {"pageSize": 5, "max_pages": 3},
            "request": [{"field": "page", "type": "int", "value": "{PAGINATION_START_PAGE}"}]}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source.metadata.pagination.max_pages: stopped after 3 pages and the API still has more; raise max_pages, or check that the paging parameters reach the API"
    );
    assert_eq!(mock.lock().unwrap().calls["endless"], 3);

    // LAST_SYNC_TIME moves back by the overlap (default 300 s, or sync_overlap_secs).
    let window = |overlap: Option<u64>| {
        let mut md = json!({"api": "/since", "id": "id",
            "request": [{"field": "since", "type": "string", "value": "{{LAST_SYNC_TIME|datetime}}"}]});
        if let Some(secs) = overlap {
            md["sync_overlap_secs"] = json!(secs);
        }
        md
    };
    for overlap in [None, Some(0), Some(3600)] {
        let mut source = h
            .open(window(overlap), Some("2026-11-23 12:00:00"))
            .await
            .unwrap();
        assert_eq!(source.next_page().await.unwrap().unwrap().records.len(), 1);
        assert!(source.next_page().await.unwrap().is_none());
    }
    assert_eq!(
        mock.lock().unwrap().seen,
        vec![
            "2026-11-23 11:55:00",
            "2026-11-23 12:00:00",
            "2026-11-23 11:00:00"
        ]
    );

    // Retry-After is honoured, and the retry counted for /metrics; a refused key fails at once
    // with one call.
    let retried = || {
        ferry_sources::http::call_retries()
            .into_iter()
            .find(|(connection, _)| connection == "api")
            .map_or(0, |(_, n)| n)
    };
    let retries_before = retried();
    let started = Instant::now();
    let pages = h
        .drain(json!({"api": "/throttled", "id": "id"}))
        .await
        .unwrap();
    assert_eq!(pages, vec![ids(1..=1)]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(mock.lock().unwrap().calls["throttled"], 2);
    assert_eq!(retried(), retries_before + 1, "one retry counted");
    let err = h
        .drain(json!({"api": "/denied", "id": "id"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection `api`: the API refused the credentials (HTTP 401): {\"error\":\"bad key\"}"
    );
    assert_eq!(mock.lock().unwrap().calls["denied"], 1);

    world.clean().await;
}

/// An interrupted run of an HTTP source resumes after its last confirmed page: from the cursor
/// saved with page k, the pages that follow are exactly pages k+1.. of an uninterrupted run, in
/// every paging mode, and none before them is asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_source_resumes_after_the_page_whose_cursor_it_saved() {
    let (h, mock, world) = mock_harness("hr").await;
    let modes = [
        ("pages", paged_metadata()),
        ("offset", offset_metadata()),
        ("cursor", cursor_metadata()),
    ];
    for (route, metadata) in modes {
        let whole = h.drain_from(metadata.clone(), None).await.unwrap();
        assert!(whole.len() >= 3, "{route}: {whole:?}");
        for k in 0..whole.len() {
            let before = mock.lock().unwrap().calls[route];
            let rest = h
                .drain_from(metadata.clone(), Some(&whole[k].1))
                .await
                .unwrap();
            assert_eq!(
                rest.iter().map(|(ids, _)| ids).collect::<Vec<_>>(),
                whole[k + 1..]
                    .iter()
                    .map(|(ids, _)| ids)
                    .collect::<Vec<_>>(),
                "{route}: resumed after page {}",
                k + 1
            );
            let calls = mock.lock().unwrap().calls[route] - before;
            assert!(
                calls <= (whole.len() - k) as u64,
                "{route}: {calls} calls to resume after page {} of {}",
                k + 1,
                whole.len()
            );
        }
    }
    let err = h
        .drain_from(paged_metadata(), Some(&json!({"last_id": 5})))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ferry_core::ErrorClass::Config);
    assert!(
        err.to_string()
            .starts_with("the saved cursor {\"last_id\":5} was not written by this source"),
        "{err}"
    );
    world.clean().await;
}

/// The API source on `conn` (named `name`), opened as the `ferry` binary's registry opens it.
async fn open_api_source(
    name: &str,
    conn: &Connection,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
    state: ferry_state::State,
) -> Result<Box<dyn Source>, ferry_core::FerryError> {
    use ferry_sources::http::HttpClient;
    use ferry_sources::vendors;
    let http = |timeout_secs: u64, rate: Option<u32>| {
        HttpClient::new(
            name,
            vendors::shared_client().unwrap(),
            state.clone(),
            Duration::from_secs(timeout_secs),
            rate,
        )
    };
    match conn {
        Connection::Http(c) => {
            ferry_sources::http::open(c, http(c.timeout_secs, c.rate_per_sec), metadata, ctx)
        }
        Connection::DingTalk(c) => {
            vendors::dingtalk::open(name, c, http(c.timeout_secs, c.rate_per_sec), metadata, ctx)
        }
        Connection::Jushuitan(c) => vendors::jushuitan::open(
            name,
            c,
            http(c.timeout_secs, Some(c.rate_per_sec)),
            metadata,
            ctx,
        ),
        Connection::Okki(c) => {
            vendors::okki::open(name, c, http(c.timeout_secs, c.rate_per_sec), metadata, ctx)
        }
        Connection::Kingdee(c) => {
            vendors::kingdee::open(name, c, http(c.timeout_secs, c.rate_per_sec), metadata, ctx)
        }
        other => panic!("a {} connection is not an API source", other.kind()),
    }
}

/// Every page a source on `conn` (named `name`) yields for `metadata`, as ids per page.
async fn drain_source(
    name: &str,
    conn: &Connection,
    metadata: &Arc<Metadata>,
    state: &ferry_state::State,
) -> Vec<Vec<String>> {
    let ctx = Context::new(chrono::Utc::now().with_timezone(&SHANGHAI), SHANGHAI);
    let mut source = open_api_source(name, conn, Arc::clone(metadata), ctx, state.clone())
        .await
        .unwrap();
    let mut pages = Vec::new();
    while let Some(page) = tokio::time::timeout(Duration::from_secs(30), source.next_page())
        .await
        .expect("page in time")
        .unwrap()
    {
        pages.push(page.records.iter().map(|r| r.id.clone()).collect());
    }
    pages
}

/// The mock API, and a harness on it with a state database of its own world.
async fn mock_harness(tag: &str) -> (Harness, Shared, World) {
    install_crypto();
    let (addr, mock) = mock_api().await;
    let mut world = World::new(tag).await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .expect("state db");
    (Harness { addr, state }, mock, world)
}

/// `/offset` of the mock: offsets in a JSON body, the total at /total; the API serves 4 at a
/// time although 10 are asked, so the total, not a short page, ends the run.
fn offset_metadata() -> Value {
    json!({"api": "/offset", "method": "POST", "id": "id", "records_at": "/rows",
        "pagination": {"pageSize": 10, "total_at": "/total", "short_page_ends": false},
        "request": [{"field": "offset", "type": "int", "value": "{PAGINATION_START_ROW}"},
                    {"field": "limit", "type": "int", "value": "{PAGINATION_PAGE_SIZE}"}]})
}

/// `/cursor` of the mock: a next-page token at /paging/next, sent back as a form field.
fn cursor_metadata() -> Value {
    json!({"api": "/cursor", "method": "POST", "id": "id", "body_format": "form",
        "records_at": "/data",
        "pagination": {"mode": "cursor", "cursor_at": "/paging/next", "cursor_param": "after"}})
}

/// `/pages` of the mock: page numbers, records at /result/items, has_more as a string.
fn paged_metadata() -> Value {
    json!({"api": "/pages", "method": "GET", "id": "id", "records_at": "/result/items",
        "pagination": {"pageSize": 10, "has_next_at": "/result/has_more"},
        "request": [{"field": "page", "type": "int", "value": "{PAGINATION_START_PAGE}"},
                    {"field": "size", "type": "int", "value": "{PAGINATION_PAGE_SIZE}"}]})
}

// ---------------------------------------------------------------------------------------------
// Kingdee business calls (the sandbox serves only the authorisation endpoints)
// ---------------------------------------------------------------------------------------------

const KD_SECRET: &str = "kd-mock-secret";

/// The gateway check of the mock: the same string to sign as the official client.
fn gateway_ok(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    query: &[(String, String)],
    headers: &axum::http::HeaderMap,
) -> bool {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let signed = vec![
        ("X-Api-Nonce".to_string(), h("x-api-nonce")),
        ("X-Api-TimeStamp".to_string(), h("x-api-timestamp")),
    ];
    let expected = ferry_core::sign::kingdee_signature(
        KD_SECRET,
        &ferry_core::sign::kingdee_string_to_sign(method.as_str(), uri.path(), query, &signed),
    );
    h("x-api-signature") == expected
        && h("x-api-clientid") == "kd-mock"
        && h("x-api-signheaders") == "X-Api-Nonce,X-Api-TimeStamp"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kingdee_business_calls_carry_the_cached_app_token_and_page_by_count() {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, Method, Uri};
    use axum::routing::{get, post};

    install_crypto();
    const ROWS: u64 = 7;
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route(
            "/jdyconnector/app_management/push_app_authorize",
            post(
                |State(s): State<Shared>, method: Method, uri: Uri, Query(q): Query<Vec<(String, String)>>, headers: HeaderMap| async move {
                    *s.lock().unwrap().calls.entry("authorize".into()).or_default() += 1;
                    if !gateway_ok(&method, &uri, &q, &headers) {
                        return axum::Json(json!({"errcode": 4008}));
                    }
                    axum::Json(json!({"errcode": 0, "data": [{"appKey": "k1", "appSecret": "s1", "domain": "tf.jdy.com"}]}))
                },
            ),
        )
        .route(
            "/jdyconnector/app_management/kingdee_auth_token",
            get(
                |State(s): State<Shared>, method: Method, uri: Uri, Query(q): Query<Vec<(String, String)>>, headers: HeaderMap| async move {
                    *s.lock().unwrap().calls.entry("auth_token".into()).or_default() += 1;
                    let signature = ferry_core::sign::kingdee_app_signature("k1", "s1");
                    let ok = gateway_ok(&method, &uri, &q, &headers)
                        && q.contains(&("app_signature".to_string(), signature));
                    if !ok {
                        return axum::Json(json!({"errcode": 1030002006, "description": "授权密钥校验失败"}));
                    }
                    axum::Json(json!({"errcode": 0, "data": {"app-token": "app-token-1", "uid": "u"}}))
                },
            ),
        )
        .route(
            "/jdy/v2/bd/customer",
            get(
                |State(s): State<Shared>, method: Method, uri: Uri, Query(q): Query<Vec<(String, String)>>, headers: HeaderMap| async move {
                    *s.lock().unwrap().calls.entry("customer".into()).or_default() += 1;
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    assert!(gateway_ok(&method, &uri, &q, &headers), "signed business call");
                    assert_eq!(h("app-token"), "app-token-1");
                    assert_eq!(h("x-gw-router-addr"), "tf.jdy.com");
                    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.parse::<u64>().unwrap()).unwrap();
                    let (page, size) = (get("page"), get("page_size"));
                    let rows: Vec<Value> = ((page - 1) * size + 1..=(page * size).min(ROWS))
                        .map(|n| json!({"id": n, "name": format!("客户{n}")}))
                        .collect();
                    axum::Json(json!({"errcode": 0, "data": {"count": ROWS, "rows": rows}}))
                },
            ),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut world = World::new("k").await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .expect("state db");
    let conn = Connection::Kingdee(ferry_core::config::KingdeeConnection {
        base_url: format!("http://{addr}"),
        client_id: "kd-mock".into(),
        client_secret: KD_SECRET.into(),
        outer_instance_id: "219672488890732544".into(),
        timeout_secs: 5,
        rate_per_sec: None,
    });
    let metadata: Metadata = serde_json::from_value(json!({
        "api": "/jdy/v2/bd/customer", "method": "GET", "id": "id",
        "pagination": {"pageSize": 3},
        "request": [{"field": "page", "type": "int", "value": "{PAGINATION_START_PAGE}"},
                    {"field": "page_size", "type": "int", "value": "{PAGINATION_PAGE_SIZE}"}]
    }))
    .unwrap();
    let metadata = Arc::new(metadata);
    for run in 0..2 {
        let pages = drain_source("kd", &conn, &metadata, &state).await;
        assert_eq!(pages, vec![ids(1..=3), ids(4..=6), ids(7..=7)], "run {run}");
    }
    let calls = shared.lock().unwrap().calls.clone();
    // One authorisation and one token for both runs: the token is cached.
    assert_eq!(
        (calls["authorize"], calls["auth_token"], calls["customer"]),
        (1, 1, 6)
    );

    // The same API through a connection limited to one call a second: its three pages take at
    // least two seconds.
    let Connection::Kingdee(mut limited) = conn else {
        unreachable!()
    };
    limited.rate_per_sec = Some(1);
    let started = Instant::now();
    let pages = drain_source(
        "kd-limited",
        &Connection::Kingdee(limited),
        &metadata,
        &state,
    )
    .await;
    assert_eq!(pages, vec![ids(1..=3), ids(4..=6), ids(7..=7)]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "rate_per_sec = 1 spaces the calls: {:?}",
        started.elapsed()
    );
    world.clean().await;
}
