//! `kind = "wecom_robot"`: a WeCom (企业微信) group robot as a target (api `WeComRobotPush`):
//! records batched into `markdown` or `text` messages posted to the robot's webhook, 20 messages
//! a minute shared by every replica (so its load queue has a single active consumer), and the
//! `idCheck` ledger so a record that comes again is not pushed twice. The webhook's `key` is
//! the only credential.

use super::http::{DEFAULT_TIMEOUT_SECS, no_check};
use super::{Kind, Opens, ROBOT_TARGET_KEYS, RobotFormat, Writes, api_one_of};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::Role;
use crate::scheme::Endpoint;

/// The WeCom API host.
pub const WECOM_ROBOT_BASE_URL: &str = "https://qyapi.weixin.qq.com";
/// A WeCom group robot accepts 20 messages a minute.
pub const WECOM_ROBOT_PER_MINUTE: u32 = 20;

pub static KIND: Kind = Kind {
    name: "wecom_robot",
    opens: Opens::Target,
    rate_limited: true,
    single_active_consumer: true,
    writes: Writes::Ledger,
    sql: false,
    source_keys: &[],
    target_keys: ROBOT_TARGET_KEYS,
    pagination_keys: &[],
    read: |r, report| Connection::WeComRobot(WeComRobotConnection::read(r, report)),
    api: |role, api| api_one_of(api, role, &["WeComRobotPush"]),
    check: no_check,
    lint,
    lint_connection: super::no_connection_lint,
};

/// The robot's key as a request field would be sent as message text.
fn lint(endpoint: &Endpoint, role: Role, warn: &mut dyn FnMut(String, String)) {
    if let Some(i) = endpoint
        .metadata
        .request
        .iter()
        .position(|f| f.key() == Some("key"))
    {
        warn(
            format!("{}.metadata.request[{i}]", role.as_str()),
            "the robot's webhook key belongs in ferry.toml (the connection's `key`); as a \
             request field it is sent as message text"
                .into(),
        );
    }
}

/// `kind = "wecom_robot"`: a WeCom group robot (target `WeComRobotPush`).
#[derive(Clone, Debug, PartialEq)]
pub struct WeComRobotConnection {
    /// Default `https://qyapi.weixin.qq.com`.
    pub base_url: String,
    /// The `key=` of the robot's webhook URL. Required.
    pub key: Secret,
    /// Messages per minute (default 20, the robot's limit).
    pub per_minute: u32,
    /// The messages' default format, `markdown` (default) or `text`; a target's `format` overrides it.
    pub format: RobotFormat,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
}

impl WeComRobotConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        WeComRobotConnection {
            base_url: r.string_or(report, "base_url", WECOM_ROBOT_BASE_URL),
            key: r.secret(report, "key"),
            per_minute: r.uint(
                report,
                "per_minute",
                1..=WECOM_ROBOT_PER_MINUTE.into(),
                WECOM_ROBOT_PER_MINUTE,
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
