//! The sandbox in the test process (on a free port) and a client for its robots' and the
//! collect API's endpoints, shared by the robot, robot-vendor and alert tests
//! (`tests/robot.rs`, `tests/robot_vendors.rs`, `tests/alerts.rs`); and what their end-to-end
//! tests share: the contact table they read (Chinese names, emoji), its source endpoint, `ferry`
//! run without blocking the sandbox's runtime, and queue depths.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use ferry_bus::Bus;
use ferry_sandbox::SandboxOptions;
use serde_json::{Value, json};

use super::common::{self, World};

/// The in-process sandbox and a client for its robot endpoints.
pub struct Robot {
    addr: SocketAddr,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), ferry_sandbox::SandboxError>>,
}

impl Robot {
    pub async fn start(token: &str, secret: &str, window_secs: u64, limit: u32) -> Robot {
        Robot::start_with(SandboxOptions {
            robot_access_token: token.into(),
            robot_secret: secret.into(),
            robot_window_secs: window_secs,
            robot_limit: limit,
            ..SandboxOptions::default()
        })
        .await
    }

    /// The sandbox with `opts` (its `listen` replaced by a free port), for the other simulators.
    pub async fn start_with(opts: SandboxOptions) -> Robot {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = SandboxOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..opts
        };
        let (addr, task) = ferry_sandbox::spawn(opts).await.expect("sandbox starts");
        Robot {
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the robot accepted, oldest first.
    pub async fn messages(&self) -> Vec<Value> {
        self.inbox("/robot/messages").await
    }

    /// What a simulator accepted, oldest first, from its inbox at `path`
    /// (`/cgi-bin/webhook/messages`, `/_sandbox/collect`).
    pub async fn inbox(&self, path: &str) -> Vec<Value> {
        self.get_json(path)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Calls of `POST /robot/send` the sandbox answered, by HTTP status.
    pub async fn send_calls(&self) -> (u64, BTreeMap<String, u64>) {
        self.route_statuses("POST /robot/send").await
    }

    /// Calls of `route` (`"POST /cgi-bin/webhook/send"`) the sandbox answered, by HTTP status.
    pub async fn route_statuses(&self, route: &str) -> (u64, BTreeMap<String, u64>) {
        let stats = self.get_json("/_sandbox/stats").await;
        let route = &stats["routes"][route];
        let statuses = route["statuses"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        (route["calls"].as_u64().unwrap_or(0), statuses)
    }

    /// `GET path` as JSON (a simulator's inbox, `/_sandbox/collect`).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Calls of `route` (`"POST /cgi-bin/webhook/send"`) the sandbox answered.
    pub async fn route_calls(&self, route: &str) -> u64 {
        self.route_statuses(route).await.0
    }

    pub async fn set_faults(&self, faults: Value) {
        let status = self
            .http
            .post(format!("{}/_sandbox/faults", self.url()))
            .json(&faults)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }

    pub async fn wait_for_messages(&self, world: &World, count: usize) {
        world
            .wait_for(
                &format!("{count} robot messages"),
                Duration::from_secs(120),
                || async { (self.messages().await.len() >= count).then_some(()) },
            )
            .await;
    }

    /// The markdown texts the robot accepted, oldest first.
    pub async fn texts(&self) -> Vec<String> {
        self.messages()
            .await
            .iter()
            .map(|m| {
                m["body"]["markdown"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    pub async fn wait_for_texts(&self, world: &World, count: usize) -> Vec<String> {
        world
            .wait_for(
                &format!("{count} robot messages"),
                Duration::from_secs(120),
                || async {
                    let texts = self.texts().await;
                    (texts.len() >= count).then_some(texts)
                },
            )
            .await
    }
}

impl Drop for Robot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const NAMES: [&str; 4] = ["张三", "李四", "王五", "赵六"];
pub const COMPANIES: [&str; 3] = ["某某公司 😀", "深圳🚀科技", "北京「引号」有限公司"];

/// The name of contact row `seq`, as [`add_contacts`] builds it.
pub fn contact_name(seq: u64) -> String {
    format!("{}{seq}号 🎉", NAMES[(seq % 4) as usize])
}

/// Source database `www` with a contact table holding rows 1 to `rows`, and the state
/// database URL.
pub async fn setup(world: &mut World, rows: u64) -> (String, String) {
    let www = world.database("www").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{www}`.www_contact (
                id BIGINT NOT NULL PRIMARY KEY,
                company VARCHAR(100) NOT NULL,
                name VARCHAR(100) NOT NULL,
                phone VARCHAR(20) NOT NULL,
                created_at DATETIME NOT NULL
            ) CHARACTER SET utf8mb4"
        ))
        .await;
    add_contacts(world, &www, 1, rows).await;
    (www, state)
}

/// Contact rows `from` to `to` (names from [`contact_name`], companies with emoji).
pub async fn add_contacts(world: &World, www: &str, from: u64, to: u64) {
    world
        .exec(&format!(
            "INSERT INTO `{www}`.www_contact (id, company, name, phone, created_at)
            SELECT seq, CONCAT(ELT(1 + seq % 3, '{c0}', '{c1}', '{c2}'), ' ', seq),
                CONCAT(ELT(1 + seq % 4, '{n0}', '{n1}', '{n2}', '{n3}'), seq, '号 🎉'),
                CONCAT('138', LPAD(seq, 8, '0')), NOW()
            FROM `{www}`.seq_{from}_to_{to};",
            c0 = COMPANIES[0],
            c1 = COMPANIES[1],
            c2 = COMPANIES[2],
            n0 = NAMES[0],
            n1 = NAMES[1],
            n2 = NAMES[2],
            n3 = NAMES[3],
        ))
        .await;
}

/// Seed 000's source over the contact table of connection `www` (keyset paging, 100 a page,
/// the record id is the name).
pub fn contact_source() -> Value {
    json!({
        "connection": "www",
        "metadata": {
            "api": "select",
            "number": "phone",
            "id": "name",
            "idCheck": true,
            "pagination": {"pageSize": 100, "mode": "keyset", "keyset_field": "id"},
            "request": [{"field": "main_params", "type": "object", "children": [
                {"field": "limit", "type": "string", "value": "{PAGINATION_PAGE_SIZE}"}
            ]}],
            "otherRequest": [{"field": "main_sql", "type": "string",
                "value": "select id,company,name,phone,created_at from www_contact where created_at >= '{{DAYS_AGO_1|datetime}}' and id > :last_id order by id limit :limit"}]
        }
    })
}

/// `ferry <args>` without blocking the runtime the sandbox runs on.
pub async fn ferry(world: &World, args: &[&str]) -> Output {
    let cmd = tokio::process::Command::from(world.command(args)).output();
    tokio::time::timeout(Duration::from_secs(600), cmd)
        .await
        .expect("ferry finished within 10 minutes")
        .expect("ferry runs")
}

/// Ready messages in `scheme`'s queue `queue` (a work queue or its DLQ).
pub async fn depth(scheme: &str, queue: &str) -> u32 {
    let bus = Bus::connect(common::AMQP, "ferry-test-robot-depth")
        .await
        .unwrap();
    let depths = bus.queue_depths(scheme).await.unwrap();
    let _ = bus.close().await;
    depths
        .iter()
        .find(|d| d.queue == queue)
        .map(|d| d.messages)
        .unwrap_or_else(|| panic!("no queue {queue}"))
}

/// The database name in a state URL.
pub fn state_db(state: &str) -> String {
    state.rsplit('/').next().unwrap().to_string()
}
