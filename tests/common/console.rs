//! Shared by the console tests (`tests/console.rs`, `tests/console_browser.rs`): a scheme whose
//! run dead-letters two of four customers, a `[console]` login, and starting `ferry console`.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, World};

pub const USER: &str = "运维";
pub const PASSWORD: &str = "口令-console-e2e-7c1";
pub const TOKEN: &str = "console-token-e2e-5f3a9";
pub const ROBOT_SECRET: &str = "robot-secret-不可见-42";
pub const WAIT: Duration = Duration::from_secs(60);

/// `[console]` (secrets through `${VAR:-default}`) and a robot connection holding a secret.
pub fn console_sections() -> String {
    format!(
        "[connections.notify]\nkind = \"dingtalk_robot\"\nbase_url = \"http://127.0.0.1:9\"\n\
         access_token = \"${{E2E_ROBOT_TOKEN:-robot-token-e2e-1234}}\"\n\
         secret = \"${{E2E_ROBOT_SECRET:-{ROBOT_SECRET}}}\"\n\
         [console]\nuser = \"{USER}\"\npassword = \"${{E2E_CONSOLE_PASSWORD:-{PASSWORD}}}\"\n\
         token = \"${{E2E_CONSOLE_TOKEN:-{TOKEN}}}\"\n\
         jaeger_url = \"http://jaeger.example/trace/{{trace_id}}\"\n"
    )
}

/// Customers (Chinese text, emoji, a record holding `<script>`) copied MySQL -> MySQL into a
/// table whose CHECK refuses amounts of 1000 and more: two of the four are dead-lettered.
pub async fn dead_lettering_scheme(world: &mut World) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL,
                city VARCHAR(40) NULL, amount DECIMAL(12,2) NOT NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.customers VALUES
                (1, '张三 😀', '北京', 10.50), (2, 'Zoë «quoted»', 'Berlin', 0.01),
                (3, '李四🚀', '上海市', 9999999999.99),
                (4, '<script>window.__xss=1</script>', NULL, 5000.00);
             CREATE TABLE `{dst}`.customers LIKE `{src}`.customers;
             ALTER TABLE `{dst}`.customers ADD CONSTRAINT amount_small CHECK (amount < 1000);"
        ))
        .await;
    let scheme = world.scheme_name("console");
    let text = json!({
        "name": scheme,
        "description": "客户 customers -> MySQL",
        "source": {"connection": "src", "metadata": {
            "api": "select", "id": "id", "pagination": {"pageSize": 10, "mode": "keyset"},
            "otherRequest": [{"field": "main_sql",
                "value": "SELECT id, name, city, amount FROM customers WHERE id > :last_id ORDER BY id LIMIT :limit"}]
        }},
        "target": {"connection": "dst", "metadata": {
            "api": "batchexecute", "write_mode": "update",
            "request": [
                {"field": "id", "type": "int", "value": "{id}"},
                {"field": "name", "value": "{name}"},
                {"field": "city", "value": "{city}"},
                {"field": "amount", "type": "decimal", "value": "{amount}"}
            ],
            "otherRequest": [{"field": "main_sql", "value":
                "INSERT INTO customers (id, name, city, amount) VALUES (:id, :name, :city, :amount)"}]
        }}
    });
    world.write("schemes/console.json", &text.to_string());
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src)
            + &common::mysql_connection("dst", &dst)
            + &console_sections()),
    );
    (scheme, dst)
}

/// Start `ferry console` on a free port; returns its base URL.
pub async fn start_console(world: &mut World, log: &str) -> String {
    world.spawn(&["console", "--listen", "127.0.0.1:0"], log);
    world
        .wait_for("the console to listen", WAIT, || async {
            world
                .log(log)
                .lines()
                .find_map(|l| l.strip_prefix("ferry console: listening on "))
                .map(|u| u.trim().to_string())
        })
        .await
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Log in with user and password; returns (cookie header, CSRF token).
pub async fn login(url: &str) -> (String, String) {
    let response = client()
        .post(format!("{url}/api/login"))
        .json(&json!({"user": USER, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (cookie, body["csrf"].as_str().unwrap().to_string())
}
