//! `ferry.toml`: the broker, the state database, telemetry and the named connections.
//!
//! [`FerryConfig::parse`] turns the file's text into the typed config in three steps, reporting
//! every problem with its key path rather than stopping at the first:
//! 1. parse the TOML into a `toml::Table` (a syntax error is the only thing that stops here);
//! 2. substitute `${VAR}` / `${VAR:-default}` in every string value ([`env`]);
//! 3. read each section through a [`read::TableReader`], which reports missing, mistyped and
//!    unknown keys (`connections.notify.secrt: unknown field ...`).
//!
//! Scheme files are found through [`FerryConfig::schemes`] and read by [`crate::files`].

mod connection;
mod console;
/// `${VAR}` substitution.
pub mod env;
pub(crate) mod read;
mod secret;

use std::collections::{BTreeMap, HashMap};

use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

pub use connection::Connection;
// Each kind's config lives in its connector module; re-exported here, where configs are read.
pub use crate::connector::dingtalk::DINGTALK_BASE_URL;
pub use crate::connector::dingtalk_robot::{DINGTALK_ROBOT_BASE_URL, DINGTALK_ROBOT_PER_MINUTE};
pub use crate::connector::http::DEFAULT_TIMEOUT_SECS;
pub use crate::connector::jushuitan::JUSHUITAN_RATE_PER_SEC;
pub use crate::connector::mysql::DEFAULT_MAX_CONNECTIONS;
pub use crate::connector::okki::OKKI_DEFAULT_SCOPE;
pub use crate::connector::{
    DingTalkConnection, DingTalkRobotConnection, FeishuRobotConnection, HttpConnection,
    JushuitanConnection, KingdeeConnection, MysqlConnection, OkkiConnection, RobotFormat,
    TokenMethod, TokenSpec, WeComRobotConnection,
};
pub use console::{
    ConsoleConfig, DEFAULT_CONSOLE_LISTEN, DEFAULT_JAEGER_URL, MIN_CONSOLE_SECRET_LEN,
};
pub use secret::Secret;

use crate::problem::Problem;
use read::{Report, TableReader, join};

/// Where scheme files are looked for when `schemes` is not set, relative to `ferry.toml`.
pub const DEFAULT_SCHEMES_GLOB: &str = "schemes/*.json";
/// Unacknowledged messages a consumer may hold.
pub const DEFAULT_PREFETCH: u16 = 16;
/// Deliveries of one message before the broker dead-letters it (a consumer that keeps crashing).
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;
/// Waits before the first, second and third retry of a transient failure.
pub const DEFAULT_RETRY_DELAYS_SECS: [u64; 3] = [1, 10, 60];
/// Default `[broker] recovery_wait_secs`.
pub const DEFAULT_RECOVERY_WAIT_SECS: u64 = 60;
/// `service.name` on traces and metrics.
pub const DEFAULT_SERVICE_NAME: &str = "ferry";
/// Default `[alerts] dead_letters`: dead letters of one scheme that raise an alert.
pub const DEFAULT_ALERT_DEAD_LETTERS: u64 = 100;
/// Default `[alerts] broker_down_secs`: how long RabbitMQ may be unreachable before an alert.
pub const DEFAULT_ALERT_BROKER_DOWN_SECS: u64 = 300;

/// The whole of `ferry.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct FerryConfig {
    /// Glob of scheme files, relative to `ferry.toml` (default `schemes/*.json`).
    pub schemes: String,
    /// `[broker]`: RabbitMQ. Required.
    pub broker: BrokerConfig,
    /// `[state]`: the MySQL database for Ferry's own tables. Required.
    pub state: StateConfig,
    /// `[telemetry]`: tracing and metrics export. Optional.
    pub telemetry: TelemetryConfig,
    /// `[connections.<name>]`: the services schemes read from and write to, by name.
    pub connections: BTreeMap<String, Connection>,
    /// `[alerts]`: who is told when something breaks. Absent: nobody (failures are only logged).
    pub alerts: Option<AlertsConfig>,
    /// `[console]`: the operator console's login and links. Absent: `ferry console` refuses to
    /// start (it never runs without a login).
    pub console: Option<ConsoleConfig>,
}

/// `[alerts]`: where alerts go and what raises them. At least one of `robot` and `webhook`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The name of a robot connection (`dingtalk_robot`, `wecom_robot` or `feishu_robot`) the
    /// alerts are posted to (signed and rate-limited like the robot target, sharing its limiter).
    pub robot: Option<String>,
    /// A URL every alert and recovery is POSTed to as JSON (a second kind, for any chat or pager
    /// that takes a webhook). It may carry a token, so it is kept as a secret.
    pub webhook: Option<Secret>,
    /// Dead letters of one scheme (its transform and load DLQs together) at which an alert is
    /// raised (default 100); it clears once they are fewer again.
    pub dead_letters: u64,
    /// Seconds RabbitMQ may stay unreachable before an alert (default 300).
    pub broker_down_secs: u64,
    /// Seconds an HTTP delivery of an alert may take (default 10).
    pub timeout_secs: u64,
}

/// `[broker]`: the RabbitMQ that carries pages and batches between stages.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerConfig {
    /// `amqp://user:password@host:5672/vhost` (`%2f` is the default vhost). Required: as `url`, or
    /// as `urls = [...]` with one URL per node of a RabbitMQ cluster, which is kept here
    /// comma-separated (the shape `FERRY_AMQP_URL` takes too; see [`node_urls`]). A role connects
    /// to the first node that answers and, when that node is lost, to the next.
    pub url: Secret,
    /// Unacknowledged messages per consumer (default 16).
    pub prefetch: u16,
    /// Deliveries before a message that keeps crashing its consumer is dead-lettered (default 5).
    pub delivery_limit: u32,
    /// Backoff before each retry of a transient failure, in seconds (default `[1, 10, 60]`); after
    /// the last one the message is dead-lettered. Each value is one retry queue.
    pub retry_delays_secs: Vec<u64>,
    /// How long a role waits for lapin to recover a broken connection before it drops it and
    /// connects afresh (default 60). With several nodes it is at most
    /// [`FAILOVER_WAIT_SECS`]: another node is there to take over.
    pub recovery_wait_secs: u64,
    /// `x-quorum-initial-group-size` of the queues Ferry declares: on how many cluster nodes each
    /// queue is replicated (unset: the broker's default). Only read when a queue is first
    /// declared: changing it later leaves existing queues as they are.
    pub quorum_group_size: Option<u32>,
}

/// The longest `recovery_wait_secs` when several broker nodes are configured: a node that died
/// is left for the next one within seconds.
pub const FAILOVER_WAIT_SECS: u64 = 5;

/// The node URLs of a broker setting (`[broker] url`/`urls`, `FERRY_AMQP_URL`): comma-separated,
/// blanks around them ignored.
pub fn node_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

/// `[state]`: Ferry's own database (checkpoints, the idCheck ledger, runs, tokens, locks).
#[derive(Clone, Debug, PartialEq)]
pub struct StateConfig {
    /// `mysql://user:password@host:3306/ferry`. Required.
    pub url: Secret,
}

/// `[telemetry]`: where traces and metrics go.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP endpoint for traces (`http://127.0.0.1:4318`); absent means no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on every span (default `ferry`).
    pub service_name: String,
    /// Address of the `/metrics`, `/healthz` and `/readyz` server (`0.0.0.0:9464`); absent
    /// means the role does not serve them.
    pub metrics_addr: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: DEFAULT_SERVICE_NAME.to_string(),
            metrics_addr: None,
        }
    }
}

impl FerryConfig {
    /// Parse the text of `ferry.toml`. `file` names it in problems (`ferry.toml`); `env` looks up
    /// environment variables for `${VAR}`. Returns every problem found, or the config.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FerryConfig, Vec<Problem>> {
        let mut report = Report::new(file);
        let mut table: Table = match toml::from_str(text) {
            Ok(table) => table,
            Err(err) => {
                let position = err
                    .span()
                    .map(|span| {
                        let (line, column) = line_column(text, span.start);
                        format!(" at line {line}, column {column}")
                    })
                    .unwrap_or_default();
                report.error(
                    "",
                    format!("invalid TOML{position}: {}", err.message().trim()),
                );
                return Err(report.problems);
            }
        };
        substitute_table(&mut table, "", env, &mut report);

        let mut root = TableReader::new(Some(&table), "");
        let schemes = root.string_or(&mut report, "schemes", DEFAULT_SCHEMES_GLOB);
        let broker = BrokerConfig::read(root.table(&mut report, "broker"), &mut report);
        let state = StateConfig::read(root.table(&mut report, "state"), &mut report);
        let telemetry = TelemetryConfig::read(root.table(&mut report, "telemetry"), &mut report);
        let mut connections = BTreeMap::new();
        for (name, entry) in root.entries(&mut report, "connections") {
            let path = join("connections", &name);
            let Value::Table(entry) = entry else {
                report.error(
                    &path,
                    format!("expected a table, found {}", read::type_name(entry)),
                );
                continue;
            };
            if let Some(connection) =
                Connection::read(TableReader::new(Some(entry), path), &mut report)
            {
                connections.insert(name, connection);
            }
        }
        let alerts = table.contains_key("alerts").then(|| {
            AlertsConfig::read(root.table(&mut report, "alerts"), &connections, &mut report)
        });
        let console = table
            .contains_key("console")
            .then(|| ConsoleConfig::read(root.table(&mut report, "console"), &mut report));
        root.finish(&mut report);

        if report.problems.is_empty() {
            return Ok(FerryConfig {
                schemes,
                broker,
                state,
                telemetry,
                connections,
                alerts,
                console,
            });
        }
        // Problems were found pass by pass (substitution, then each section); show them in the
        // order of the file, as an operator reads it.
        let offsets = key_offsets(text);
        let mut problems = report.problems;
        problems.sort_by_key(|p| offset_of(&offsets, &p.path));
        Err(problems)
    }
}

/// The byte offset of every key path in `text` (`connections.www.url`, `broker.retry_delays_secs[1]`).
fn key_offsets(text: &str) -> HashMap<String, usize> {
    fn walk(table: &DeTable<'_>, path: &str, out: &mut HashMap<String, usize>) {
        for (key, value) in table {
            let key_path = join(path, key.get_ref());
            out.entry(key_path.clone()).or_insert(key.span().start);
            walk_value(value.get_ref(), &key_path, out);
        }
    }
    fn walk_value(value: &DeValue<'_>, path: &str, out: &mut HashMap<String, usize>) {
        match value {
            DeValue::Table(table) => walk(table, path, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    out.entry(item_path.clone()).or_insert(item.span().start);
                    walk_value(item.get_ref(), &item_path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    if let Ok(root) = DeTable::parse(text) {
        walk(root.get_ref(), "", &mut out);
    }
    out
}

/// Where the problem at `path` sits: its key, else its nearest enclosing key that is written,
/// else the end (a missing section).
fn offset_of(offsets: &HashMap<String, usize>, path: &str) -> usize {
    let mut path = path;
    loop {
        if let Some(offset) = offsets.get(path) {
            return *offset;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path = &path[..cut],
            None => return usize::MAX,
        }
    }
}

impl BrokerConfig {
    fn read(mut r: TableReader<'_>, report: &mut Report) -> Self {
        let single = r.opt_string(report, "url");
        let several = r.opt_string_list(report, "urls");
        let url = match (single, several) {
            (Some(url), None) => {
                for node in node_urls(&url) {
                    r.require_url(report, "url", &node, &["amqp", "amqps"]);
                }
                Secret::new(url)
            }
            (single, Some(urls)) => {
                if single.is_some() {
                    report.error(
                        &r.path_of("urls"),
                        "set `url` (one node) or `urls` (several nodes), not both",
                    );
                }
                if urls.is_empty() {
                    report.error(&r.path_of("urls"), "expected at least one node URL");
                }
                for (i, node) in urls.iter().enumerate() {
                    let path = format!("{}[{i}]", r.path_of("urls"));
                    let amqp = ["amqp://", "amqps://"].iter().any(|s| node.starts_with(s));
                    if !amqp && !report.failed.contains(&path) {
                        report.error(
                            &path,
                            "expected a URL starting with `amqp://` or `amqps://`",
                        );
                    }
                }
                Secret::new(urls.join(","))
            }
            (None, None) => {
                let path = r.path_of("url");
                if !report.failed.contains(&path) {
                    report.error(&path, "missing required key");
                }
                Secret::default()
            }
        };
        let config = BrokerConfig {
            url,
            prefetch: r.uint(report, "prefetch", 1..=u16::MAX.into(), DEFAULT_PREFETCH),
            delivery_limit: r.uint(
                report,
                "delivery_limit",
                1..=u32::MAX.into(),
                DEFAULT_DELIVERY_LIMIT,
            ),
            retry_delays_secs: r.uint_list(report, "retry_delays_secs", &DEFAULT_RETRY_DELAYS_SECS),
            recovery_wait_secs: r.uint(
                report,
                "recovery_wait_secs",
                1..=3600,
                DEFAULT_RECOVERY_WAIT_SECS,
            ),
            quorum_group_size: Some(r.uint(report, "quorum_group_size", 1..=255, 0u32))
                .filter(|n| *n > 0),
        };
        r.finish(report);
        config
    }
}

impl StateConfig {
    fn read(mut r: TableReader<'_>, report: &mut Report) -> Self {
        let url = r.secret(report, "url");
        r.require_url(report, "url", url.expose(), &["mysql", "mariadb"]);
        let config = StateConfig { url };
        r.finish(report);
        config
    }
}

impl TelemetryConfig {
    fn read(mut r: TableReader<'_>, report: &mut Report) -> Self {
        let config = TelemetryConfig {
            otlp_endpoint: r
                .opt_string(report, "otlp_endpoint")
                .filter(|s| !s.is_empty()),
            service_name: r.string_or(report, "service_name", DEFAULT_SERVICE_NAME),
            metrics_addr: r
                .opt_string(report, "metrics_addr")
                .filter(|s| !s.is_empty()),
        };
        r.finish(report);
        config
    }
}

impl AlertsConfig {
    fn read(
        mut r: TableReader<'_>,
        connections: &BTreeMap<String, Connection>,
        report: &mut Report,
    ) -> Self {
        let robot = r.opt_string(report, "robot").filter(|s| !s.is_empty());
        if let Some(name) = &robot {
            let is_robot = |c: &Connection| c.kind().sends == crate::connector::Sends::Messages;
            match connections.get(name) {
                Some(robot) if is_robot(robot) => {}
                Some(other) => report.error(
                    &r.path_of("robot"),
                    format!(
                        "connection `{name}` is of kind `{}`; alerts need a robot connection \
                         (`dingtalk_robot`, `wecom_robot` or `feishu_robot`)",
                        other.kind()
                    ),
                ),
                None => {
                    let robots: Vec<&str> = connections
                        .iter()
                        .filter(|(_, c)| is_robot(c))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    report.error(
                        &r.path_of("robot"),
                        format!(
                            "no connection named `{name}` (robot connections: {})",
                            if robots.is_empty() {
                                "none".to_string()
                            } else {
                                robots.join(", ")
                            }
                        ),
                    );
                }
            }
        }
        let webhook = r
            .opt_secret(report, "webhook")
            .filter(|s| !s.expose().is_empty());
        if let Some(url) = &webhook {
            r.require_url(report, "webhook", url.expose(), &["http", "https"]);
        }
        if robot.is_none() && webhook.is_none() {
            report.error(
                r.path(),
                "set `robot` (a dingtalk_robot, wecom_robot or feishu_robot connection) or \
                 `webhook` (a URL), or remove [alerts]",
            );
        }
        let config = AlertsConfig {
            robot,
            webhook,
            dead_letters: r.uint(
                report,
                "dead_letters",
                1..=u64::from(u32::MAX),
                DEFAULT_ALERT_DEAD_LETTERS,
            ),
            broker_down_secs: r.uint(
                report,
                "broker_down_secs",
                1..=86_400,
                DEFAULT_ALERT_BROKER_DOWN_SECS,
            ),
            timeout_secs: r.uint(report, "timeout_secs", 1..=300, 10),
        };
        r.finish(report);
        config
    }
}

/// Substitute `${...}` in every string under `table`, in place; failures are reported at their
/// key path and the value is left as written.
fn substitute_table(
    table: &mut Table,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    for (key, value) in table.iter_mut() {
        substitute_value(value, &join(path, key), env, report);
    }
}

fn substitute_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    match value {
        Value::String(text) => match env::substitute(text, env) {
            Ok(done) => *text = done,
            Err(err) => report.error(path, err.to_string()),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, report);
            }
        }
        Value::Table(table) => substitute_table(table, path, env, report),
        _ => {}
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests;
