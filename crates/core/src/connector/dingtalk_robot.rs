//! `kind = "dingtalk_robot"`: a DingTalk custom group robot as a target (api
//! `DingTalkRoBotPush`): records batched into signed messages, 20 messages a minute shared by
//! every replica (so its load queue has a single active consumer), and the `idCheck` ledger so a
//! record that comes again is not pushed twice.

use super::http::{DEFAULT_TIMEOUT_SECS, no_check};
use super::{Kind, Opens, ROBOT_TARGET_KEYS, Writes, api_one_of};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::Role;
use crate::scheme::Endpoint;

/// The DingTalk custom robot host.
pub const DINGTALK_ROBOT_BASE_URL: &str = "https://oapi.dingtalk.com";
/// A DingTalk robot accepts 20 messages a minute, then stays throttled for about 10 minutes.
pub const DINGTALK_ROBOT_PER_MINUTE: u32 = 20;

pub static KIND: Kind = Kind {
    name: "dingtalk_robot",
    opens: Opens::Target,
    rate_limited: true,
    single_active_consumer: true,
    writes: Writes::Ledger,
    sql: false,
    source_keys: &[],
    target_keys: ROBOT_TARGET_KEYS,
    pagination_keys: &[],
    read: |r, report| Connection::DingTalkRobot(DingTalkRobotConnection::read(r, report)),
    api: |role, api| api_one_of(api, role, &["DingTalkRoBotPush"]),
    check: no_check,
    lint,
    lint_connection,
};

/// The robot's token as a request field would be sent as message text.
fn lint(endpoint: &Endpoint, role: Role, warn: &mut dyn FnMut(String, String)) {
    if let Some(i) = endpoint
        .metadata
        .request
        .iter()
        .position(|f| f.key() == Some("access_token"))
    {
        warn(
            format!("{}.metadata.request[{i}]", role.as_str()),
            "the robot's access token belongs in ferry.toml (the connection's \
             `access_token`); as a request field it is sent as message text"
                .into(),
        );
    }
}

/// A robot without a signing secret.
fn lint_connection(connection: &Connection) -> Vec<String> {
    match connection {
        Connection::DingTalkRobot(robot) if robot.secret.is_none() => vec![
            "the robot has no signing `secret`: anyone who learns its access token can \
             post to the group; turn on signing (加签) for the robot and set `secret`"
                .into(),
        ],
        _ => Vec::new(),
    }
}

/// How robot messages are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RobotFormat {
    /// `markdown {title, text}`: a title line and one `label: value` line per field.
    Markdown,
    /// `text {content}`: plain text.
    Text,
    /// Feishu's rich text (`post`): a title and lines of text elements.
    Post,
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
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
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
