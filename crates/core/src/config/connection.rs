//! Named connections (`[connections.<name>]` in `ferry.toml`): one struct per `kind`.
//!
//! A connection carries what a scheme must not: hosts, credentials, rate limits. Schemes name a
//! connection; its kind decides which `api` values the scheme may use (see [`ConnectionKind`])
//! and how sources and sinks talk to the service (signing, paging, error codes). Secrets are
//! [`Secret`]s so that printing a connection never leaks one.

use std::collections::BTreeMap;
use std::fmt;

use super::Secret;
use super::read::{Report, TableReader};

/// HTTP request timeout when a connection does not set `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// MySQL pool size when a connection does not set `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// The DingTalk open API (access tokens, Yida).
pub const DINGTALK_BASE_URL: &str = "https://api.dingtalk.com";
/// The DingTalk custom robot host.
pub const DINGTALK_ROBOT_BASE_URL: &str = "https://oapi.dingtalk.com";
/// A DingTalk robot accepts 20 messages a minute, then stays throttled for about 10 minutes.
pub const DINGTALK_ROBOT_PER_MINUTE: u32 = 20;
/// Jushuitan refuses more than 5 requests a second (error 199).
pub const JUSHUITAN_RATE_PER_SEC: u32 = 5;
/// URL schemes of the HTTP kinds' `base_url`.
const HTTP_SCHEMES: [&str; 2] = ["http", "https"];
/// URL schemes sqlx accepts for MySQL.
const MYSQL_SCHEMES: [&str; 2] = ["mysql", "mariadb"];

/// OKKI's OAuth scope when none is set.
pub const OKKI_DEFAULT_SCOPE: &str = "user";

/// The kinds of connection, as written in `kind = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionKind {
    /// `mysql`
    Mysql,
    /// `http`
    Http,
    /// `dingtalk`
    DingTalk,
    /// `dingtalk_robot`
    DingTalkRobot,
    /// `jushuitan`
    Jushuitan,
    /// `okki`
    Okki,
    /// `kingdee`
    Kingdee,
    /// `noop`
    Noop,
}

impl ConnectionKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [ConnectionKind; 8] = [
        ConnectionKind::Mysql,
        ConnectionKind::Http,
        ConnectionKind::DingTalk,
        ConnectionKind::DingTalkRobot,
        ConnectionKind::Jushuitan,
        ConnectionKind::Okki,
        ConnectionKind::Kingdee,
        ConnectionKind::Noop,
    ];

    /// The name written in `kind = "..."`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Mysql => "mysql",
            ConnectionKind::Http => "http",
            ConnectionKind::DingTalk => "dingtalk",
            ConnectionKind::DingTalkRobot => "dingtalk_robot",
            ConnectionKind::Jushuitan => "jushuitan",
            ConnectionKind::Okki => "okki",
            ConnectionKind::Kingdee => "kingdee",
            ConnectionKind::Noop => "noop",
        }
    }

    /// The kind written `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[connections.<name>]` table, by `kind`.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    /// `kind = "mysql"`
    Mysql(MysqlConnection),
    /// `kind = "http"`
    Http(HttpConnection),
    /// `kind = "dingtalk"`
    DingTalk(DingTalkConnection),
    /// `kind = "dingtalk_robot"`
    DingTalkRobot(DingTalkRobotConnection),
    /// `kind = "jushuitan"`
    Jushuitan(JushuitanConnection),
    /// `kind = "okki"`
    Okki(OkkiConnection),
    /// `kind = "kingdee"`
    Kingdee(KingdeeConnection),
    /// Accepts every record and writes nothing: the seeds' `写入空操作`, for schemes whose point
    /// is the source call itself (token refresh) or for dry runs.
    Noop,
}

impl Connection {
    /// The `kind` this connection was written with.
    pub fn kind(&self) -> ConnectionKind {
        match self {
            Connection::Mysql(_) => ConnectionKind::Mysql,
            Connection::Http(_) => ConnectionKind::Http,
            Connection::DingTalk(_) => ConnectionKind::DingTalk,
            Connection::DingTalkRobot(_) => ConnectionKind::DingTalkRobot,
            Connection::Jushuitan(_) => ConnectionKind::Jushuitan,
            Connection::Okki(_) => ConnectionKind::Okki,
            Connection::Kingdee(_) => ConnectionKind::Kingdee,
            Connection::Noop => ConnectionKind::Noop,
        }
    }

    /// The `base_url` of an HTTP kind; `None` for MySQL and noop.
    pub fn base_url(&self) -> Option<&str> {
        match self {
            Connection::Http(c) => Some(&c.base_url),
            Connection::DingTalk(c) => Some(&c.base_url),
            Connection::DingTalkRobot(c) => Some(&c.base_url),
            Connection::Jushuitan(c) => Some(&c.base_url),
            Connection::Okki(c) => Some(&c.base_url),
            Connection::Kingdee(c) => Some(&c.base_url),
            Connection::Mysql(_) | Connection::Noop => None,
        }
    }

    /// Read one connection table; `None` when its kind is missing or unknown (reported).
    pub(crate) fn read(mut r: TableReader<'_>, report: &mut Report) -> Option<Connection> {
        let kind_path = r.path_of("kind");
        let kind_name = r.string(report, "kind");
        if kind_name.is_empty() && report.failed.contains(&kind_path) {
            return None;
        }
        let Some(kind) = ConnectionKind::parse(&kind_name) else {
            let list = ConnectionKind::ALL
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            report.error(
                &kind_path,
                format!("unknown connection kind `{kind_name}`, expected one of {list}"),
            );
            // The fields of an unknown kind are unknown too: reporting each would only add noise.
            return None;
        };
        let connection = match kind {
            ConnectionKind::Mysql => Connection::Mysql(MysqlConnection::read(&mut r, report)),
            ConnectionKind::Http => Connection::Http(HttpConnection::read(&mut r, report)),
            ConnectionKind::DingTalk => {
                Connection::DingTalk(DingTalkConnection::read(&mut r, report))
            }
            ConnectionKind::DingTalkRobot => {
                Connection::DingTalkRobot(DingTalkRobotConnection::read(&mut r, report))
            }
            ConnectionKind::Jushuitan => {
                Connection::Jushuitan(JushuitanConnection::read(&mut r, report))
            }
            ConnectionKind::Okki => Connection::Okki(OkkiConnection::read(&mut r, report)),
            ConnectionKind::Kingdee => Connection::Kingdee(KingdeeConnection::read(&mut r, report)),
            ConnectionKind::Noop => Connection::Noop,
        };
        if let Some(url) = connection.base_url() {
            r.require_url(report, "base_url", url, &HTTP_SCHEMES);
        }
        r.finish(report);
        Some(connection)
    }
}

/// `kind = "mysql"`: a MySQL or MariaDB database, as a source (`select`) or a target
/// (`execute`, `batchexecute`).
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlConnection {
    /// `mysql://user:password@host:3306/database`. Required.
    pub url: Secret,
    /// Largest number of pooled connections (default 10).
    pub max_connections: u32,
}

impl MysqlConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        let url = r.secret(report, "url");
        r.require_url(report, "url", url.expose(), &MYSQL_SCHEMES);
        MysqlConnection {
            url,
            max_connections: r.uint(
                report,
                "max_connections",
                1..=u32::MAX.into(),
                DEFAULT_MAX_CONNECTIONS,
            ),
        }
    }
}

/// `kind = "http"`: any JSON API; the scheme's `api` is a path under `base_url`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConnection {
    /// Scheme, host and optional path prefix (`https://api.example.com/v2`). Required.
    pub base_url: String,
    /// Headers sent with every request (`Authorization = "Bearer ${TOKEN}"`); values are secret.
    pub headers: BTreeMap<String, Secret>,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl HttpConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        HttpConnection {
            base_url: r.string(report, "base_url"),
            headers: r.secret_map(report, "headers"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}

fn opt_rate(r: &mut TableReader<'_>, report: &mut Report) -> Option<u32> {
    let rate = r.uint(report, "rate_per_sec", 0..=u32::MAX.into(), 0u32);
    (rate > 0).then_some(rate)
}

/// `kind = "dingtalk"`: the DingTalk open API with an app's key and secret (Yida process
/// instances). The access token is fetched and cached until it expires.
#[derive(Clone, Debug, PartialEq)]
pub struct DingTalkConnection {
    /// Default `https://api.dingtalk.com`.
    pub base_url: String,
    /// The app's AppKey. Required.
    pub app_key: String,
    /// The app's AppSecret. Required.
    pub app_secret: Secret,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl DingTalkConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        DingTalkConnection {
            base_url: r.string_or(report, "base_url", DINGTALK_BASE_URL),
            app_key: r.string(report, "app_key"),
            app_secret: r.secret(report, "app_secret"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}

/// How robot messages are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RobotFormat {
    /// `markdown {title, text}`: a title line and one `label: value` line per field.
    Markdown,
    /// `text {content}`: plain text.
    Text,
}

/// `kind = "dingtalk_robot"`: a DingTalk custom group robot (target `DingTalkRoBotPush`).
#[derive(Clone, Debug, PartialEq)]
pub struct DingTalkRobotConnection {
    /// Default `https://oapi.dingtalk.com`.
    pub base_url: String,
    /// The robot's access token (from its webhook URL). Required.
    pub access_token: Secret,
    /// The robot's signing secret (`SEC...`, the "加签" option). Without one, anyone who learns
    /// the token can post; `ferry lint` warns.
    pub secret: Option<Secret>,
    /// The robot's keyword, if its security setting requires one: added to messages that lack it.
    pub keyword: Option<String>,
    /// Messages per minute (default 20, the robot's limit).
    pub per_minute: u32,
    /// `markdown` (default) or `text`.
    pub format: RobotFormat,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
}

impl DingTalkRobotConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        DingTalkRobotConnection {
            base_url: r.string_or(report, "base_url", DINGTALK_ROBOT_BASE_URL),
            access_token: r.secret(report, "access_token"),
            secret: r.opt_secret(report, "secret").filter(|s| !s.is_empty()),
            keyword: r.opt_string(report, "keyword").filter(|k| !k.is_empty()),
            per_minute: r.uint(
                report,
                "per_minute",
                1..=DINGTALK_ROBOT_PER_MINUTE.into(),
                DINGTALK_ROBOT_PER_MINUTE,
            ),
            format: match r
                .choice(report, "format", &["markdown", "text"], "markdown")
                .as_str()
            {
                "text" => RobotFormat::Text,
                _ => RobotFormat::Markdown,
            },
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// `kind = "jushuitan"`: the Jushuitan ERP open API (MD5-signed form posts, pages of at most 100).
#[derive(Clone, Debug, PartialEq)]
pub struct JushuitanConnection {
    /// `https://openapi.jushuitan.com` in production. Required.
    pub base_url: String,
    /// Required.
    pub app_key: String,
    /// Signs every request. Required.
    pub app_secret: Secret,
    /// Required.
    pub access_token: Secret,
    /// Used to get a new access token when the current one is refused (error 100).
    pub refresh_token: Option<Secret>,
    /// Most requests per second (default 5, the vendor's limit).
    pub rate_per_sec: u32,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
}

impl JushuitanConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        JushuitanConnection {
            base_url: r.string(report, "base_url"),
            app_key: r.string(report, "app_key"),
            app_secret: r.secret(report, "app_secret"),
            access_token: r.secret(report, "access_token"),
            refresh_token: r
                .opt_secret(report, "refresh_token")
                .filter(|s| !s.is_empty()),
            rate_per_sec: r.uint(
                report,
                "rate_per_sec",
                1..=JUSHUITAN_RATE_PER_SEC.into(),
                JUSHUITAN_RATE_PER_SEC,
            ),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// `kind = "okki"`: OKKI CRM with OAuth client credentials (a bearer token that lives 8 hours).
#[derive(Clone, Debug, PartialEq)]
pub struct OkkiConnection {
    /// Required.
    pub base_url: String,
    /// Required.
    pub client_id: String,
    /// Required.
    pub client_secret: Secret,
    /// Space-separated OAuth scopes (default `user`).
    pub scope: String,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl OkkiConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        OkkiConnection {
            base_url: r.string(report, "base_url"),
            client_id: r.string(report, "client_id"),
            client_secret: r.secret(report, "client_secret"),
            scope: r.string_or(report, "scope", OKKI_DEFAULT_SCOPE),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}

/// `kind = "kingdee"`: Kingdee cloud accounting through its signed API gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct KingdeeConnection {
    /// `https://api.kingdee.com` in production. Required.
    pub base_url: String,
    /// The gateway client id (`X-Api-ClientID`). Required.
    pub client_id: String,
    /// Signs every gateway request. Required.
    pub client_secret: Secret,
    /// The app instance whose authorisation `push_app_authorize` fetches. Required.
    pub outer_instance_id: String,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl KingdeeConnection {
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        KingdeeConnection {
            base_url: r.string(report, "base_url"),
            client_id: r.string(report, "client_id"),
            client_secret: r.secret(report, "client_secret"),
            outer_instance_id: r.string(report, "outer_instance_id"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}
