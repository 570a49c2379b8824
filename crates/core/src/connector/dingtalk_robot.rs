//! `kind = "dingtalk_robot"`: a DingTalk custom group robot as a target (api
//! `DingTalkRoBotPush`): records batched into signed messages, 20 messages a minute shared by
//! every replica (so its load queue has a single active consumer), and the `idCheck` ledger so a
//! record that comes again is not pushed twice.

use super::Kind;
use super::http::DEFAULT_TIMEOUT_SECS;
use super::robot::{DINGTALK, read_format, read_limit, robot_kind};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};

/// The DingTalk custom robot host.
pub const DINGTALK_ROBOT_BASE_URL: &str = "https://oapi.dingtalk.com";
/// A DingTalk robot accepts 20 messages a minute, then stays throttled for about 10 minutes.
pub const DINGTALK_ROBOT_PER_MINUTE: u32 = 20;

pub static KIND: Kind = robot_kind::<DINGTALK>(|r, report| {
    Connection::DingTalkRobot(DingTalkRobotConnection::read(r, report))
});

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
            per_minute: read_limit(r, report, "per_minute", DINGTALK_ROBOT_PER_MINUTE),
            format: read_format(r, report, ("markdown", RobotFormat::Markdown)),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}
