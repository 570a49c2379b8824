//! The sandbox's DingTalk robot in the test process (on a free port) and a client for its
//! endpoints, shared by the robot and alert tests (`tests/robot.rs`, `tests/alerts.rs`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferry_sandbox::SandboxOptions;
use serde_json::Value;

use super::common::World;

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
        let got: Value = self
            .http
            .get(format!("{}/robot/messages", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        got.as_array().cloned().unwrap_or_default()
    }

    /// Calls of `POST /robot/send` the sandbox answered, by HTTP status.
    pub async fn send_calls(&self) -> (u64, BTreeMap<String, u64>) {
        let stats: Value = self
            .http
            .get(format!("{}/_sandbox/stats", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let route = &stats["routes"]["POST /robot/send"];
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
        self.get_json("/_sandbox/stats").await["routes"][route]["calls"]
            .as_u64()
            .unwrap_or(0)
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
        let got: Value = self
            .http
            .get(format!("{}/robot/messages", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        got.as_array()
            .cloned()
            .unwrap_or_default()
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
