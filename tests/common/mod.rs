//! Shared by the end-to-end tests: a private world per test (its own databases, scheme names
//! and therefore queues, its own config directory), the `ferry` binary, and clean-up.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct World {
    /// Unique, short, lower-case: part of every database and scheme name.
    pub id: String,
    pub dir: PathBuf,
    pub admin: MySqlPool,
    databases: Vec<String>,
    schemes: Vec<String>,
    children: Vec<Child>,
    /// Environment variables every `ferry` this world starts gets (a test-only hook's, say).
    pub env: Vec<(String, String)>,
}

impl World {
    pub async fn new(tag: &str) -> World {
        let id = format!("{tag}{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let dir = std::env::temp_dir().join(format!("ferry-test-{id}"));
        std::fs::create_dir_all(dir.join("schemes")).expect("temp dir");
        let admin = ferry_state::mysql::connect(&format!("{MYSQL}/"), 4, false)
            .await
            .expect("MariaDB at 127.0.0.1:3306");
        World {
            id,
            dir,
            admin,
            databases: Vec::new(),
            schemes: Vec::new(),
            children: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Create a database owned by this world; returns its name.
    pub async fn database(&mut self, suffix: &str) -> String {
        let name = format!("ferry_t_{}_{suffix}", self.id);
        self.exec(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .await;
        self.databases.push(name.clone());
        name
    }

    /// The state database URL (created by ferry itself).
    pub fn state_url(&mut self) -> String {
        let name = format!("ferry_t_{}_state", self.id);
        if !self.databases.contains(&name) {
            self.databases.push(name.clone());
        }
        format!("{MYSQL}/{name}")
    }

    pub fn scheme_name(&mut self, base: &str) -> String {
        let name = format!("{base}-{}", self.id);
        self.schemes.push(name.clone());
        name
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let row = sqlx::query(AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<Option<i64>, _>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or(0)
    }

    pub async fn scalar_string(&self, sql: &str) -> String {
        let mut conn = self.admin.acquire().await.expect("connection");
        sqlx::query("SET SESSION group_concat_max_len = 1073741824")
            .execute(&mut *conn)
            .await
            .expect("set");
        let row = sqlx::query(AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<Option<String>, _>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_default()
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write fixture");
        path
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("ferry.toml")
    }

    /// `ferry <args>` with this world's config, waiting for it to end.
    pub fn ferry(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ferry")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .env("FERRY_CONFIG", self.config_path())
            .env_remove("FERRY_AMQP_URL")
            .env_remove("FERRY_STATE_URL")
            // FERRY_TEST_LOG (e.g. `info,lapin=debug`) to see more of a failing test.
            .env(
                "FERRY_LOG",
                std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// The process id of a spawned role.
    pub fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    /// Start a long-running `ferry` role; it is stopped (SIGTERM) by [`World::stop_all`] or on drop.
    pub fn spawn(&mut self, args: &[&str], log: &str) -> usize {
        let out = std::fs::File::create(self.dir.join(log)).expect("log file");
        let child = self
            .command(args)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn ferry");
        self.children.push(child);
        self.children.len() - 1
    }

    /// SIGKILL one spawned role (as a crash would) and reap it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM every spawned role and wait for each; returns their exit codes.
    pub fn stop_all(&mut self) -> Vec<Option<i32>> {
        for child in &mut self.children {
            // One that already ended (`--once`) has no process left to signal.
            if matches!(child.try_wait(), Ok(None)) {
                unsafe_kill(child.id(), 15);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut codes = Vec::new();
        for mut child in self.children.drain(..) {
            if let Ok(Some(status)) = child.try_wait() {
                codes.push(status.code());
                continue;
            }
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        codes.push(status.code());
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        codes.push(None);
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        codes
    }

    /// The exit code of a spawned role that has ended (`Some(None)`: killed by a signal), or
    /// `None` while it runs.
    pub fn exited(&mut self, index: usize) -> Option<Option<i32>> {
        match self.children[index].try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
        }
    }

    /// Start a role again in the slot of one that ended (as a supervisor would).
    pub fn respawn(&mut self, index: usize, args: &[&str], log: &str) {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .expect("log file");
        let child = self
            .command(args)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn ferry");
        let mut old = std::mem::replace(&mut self.children[index], child);
        let _ = old.kill();
        let _ = old.wait();
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Poll a one-number query (a `COUNT(*)`) until `ok` accepts its value; returns the value.
    pub async fn wait_for_count(
        &self,
        what: &str,
        sql: &str,
        timeout: Duration,
        ok: impl Fn(i64) -> bool,
    ) -> i64 {
        self.wait_for(what, timeout, || async {
            let n = self.scalar_i64(sql).await;
            ok(n).then_some(n)
        })
        .await
    }

    /// Poll `check` until it returns Some or the timeout passes.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Drop the databases and queues this world made. A test that panics before calling this
    /// is cleaned up by `Drop` instead.
    pub async fn clean(mut self) {
        self.stop_all();
        remove_everything(
            std::mem::take(&mut self.databases),
            std::mem::take(&mut self.schemes),
        )
        .await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn remove_everything(databases: Vec<String>, schemes: Vec<String>) {
    if let Ok(admin) = ferry_state::mysql::connect(&format!("{MYSQL}/"), 1, false).await {
        for db in &databases {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{db}`")))
                .execute(&admin)
                .await;
        }
    }
    if let Ok(bus) = ferry_bus::Bus::connect(AMQP, "ferry-test-cleanup").await {
        let leftover = retry_delays_on_the_broker();
        for scheme in &schemes {
            let _ = bus.delete_scheme(scheme).await;
            // A scheme with its own retry schedule (`retry_delays_secs = [2, 3]`) has retry queues
            // the default topology does not name: delete the ones the broker still lists.
            let prefix = format!("ferry.{scheme}.");
            let delays: Vec<u64> = leftover
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(_, delay)| *delay)
                .collect();
            if !delays.is_empty() {
                let mut topology = ferry_bus::Topology::default();
                topology.retry_delays_secs = delays;
                let _ = bus.delete_queues(scheme, &topology).await;
            }
        }
        let _ = bus.close().await;
    }
}

/// Every retry queue on the broker (`ferry.<scheme>.<stage>.retry.<N>s`) with its delay, from
/// `rabbitmqctl`; empty when it is not at hand.
fn retry_delays_on_the_broker() -> Vec<(String, u64)> {
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name"])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|name| {
            let name = name.trim();
            let (_, tail) = name.rsplit_once(".retry.")?;
            let delay = tail.strip_suffix('s')?.parse().ok()?;
            Some((name.to_string(), delay))
        })
        .collect()
}

impl Drop for World {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.databases.is_empty() && self.schemes.is_empty() {
            return;
        }
        // A panicking test: clean up on a thread of our own, since Drop cannot await.
        let databases = std::mem::take(&mut self.databases);
        let schemes = std::mem::take(&mut self.schemes);
        let dir = self.dir.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(remove_everything(databases, schemes));
            }
            let _ = std::fs::remove_dir_all(dir);
        })
        .join();
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Read every message of a queue (basic.get then ack), for assertions on dead letters.
pub async fn drain_queue(
    queue: &str,
) -> Vec<(
    serde_json::Value,
    std::collections::BTreeMap<String, String>,
)> {
    drain_queue_at(AMQP, queue).await
}

/// [`drain_queue`] on the broker at `url`.
pub async fn drain_queue_at(
    url: &str,
    queue: &str,
) -> Vec<(
    serde_json::Value,
    std::collections::BTreeMap<String, String>,
)> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let channel = conn.create_channel().await.expect("channel");
    let mut out = Vec::new();
    while let Ok(Some(msg)) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
    {
        let body: serde_json::Value =
            serde_json::from_slice(&msg.delivery.data).unwrap_or(serde_json::Value::Null);
        let mut headers = std::collections::BTreeMap::new();
        if let Some(table) = msg.delivery.properties.headers() {
            for (k, v) in table.inner() {
                let text = match v {
                    lapin::types::AMQPValue::LongString(s) => {
                        String::from_utf8_lossy(s.as_bytes()).to_string()
                    }
                    lapin::types::AMQPValue::ShortString(s) => s.as_str().to_string(),
                    other => format!("{other:?}"),
                };
                headers.insert(k.to_string(), text);
            }
        }
        msg.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        out.push((body, headers));
    }
    let _ = conn.close(0, "done".into()).await;
    out
}

/// `[connections.<name>]` of kind `mysql` for `database` on the test server, for `ferry.toml`.
pub fn mysql_connection(name: &str, database: &str) -> String {
    format!("[connections.{name}]\nkind = \"mysql\"\nurl = \"{MYSQL}/{database}\"\n")
}

impl World {
    /// Write `ferry.toml`: schemes under `schemes/`, the test broker, the state database at
    /// `state`, then `sections` (connections, telemetry) as given.
    pub fn write_ferry_toml(&self, state: &str, sections: &str) {
        self.write(
            "ferry.toml",
            &format!(
                "schemes = \"schemes/*.json\"\n[broker]\nurl = \"{AMQP}\"\n[state]\nurl = \"{state}\"\n{sections}"
            ),
        );
    }
}

/// A command's standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A command's exit code, standard output and standard error, for an assertion's message.
pub fn all_output(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl World {
    /// The run `run_id` of `scheme` as `ferry status --json` shows it.
    pub fn run_status(&self, scheme: &str, run_id: &str) -> Option<serde_json::Value> {
        let out = self.ferry(&["status", "--json", "--scheme", scheme]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        json[0]["runs"]
            .as_array()?
            .iter()
            .find(|r| r["run_id"] == run_id)
            .cloned()
    }
}
