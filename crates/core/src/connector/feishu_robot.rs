//! `kind = "feishu_robot"`: a Feishu (飞书) custom bot as a target (api `FeishuRobotPush`):
//! records batched into `post` (rich text) or `text` messages, signed when the bot verifies
//! signatures, 5 messages a second and 100 a minute shared by every replica (so its load queue
//! has a single active consumer), and the `idCheck` ledger so a record that comes again is not
//! pushed twice.

use super::http::DEFAULT_TIMEOUT_SECS;
use super::robot::{FEISHU, read_format, read_limit, robot_kind};
use super::{Kind, RobotFormat};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};

/// The Feishu open platform host.
pub const FEISHU_ROBOT_BASE_URL: &str = "https://open.feishu.cn";
/// A Feishu custom bot accepts 100 messages a minute...
pub const FEISHU_ROBOT_PER_MINUTE: u32 = 100;
/// ... and 5 a second.
pub const FEISHU_ROBOT_PER_SECOND: u32 = 5;

pub static KIND: Kind = robot_kind::<FEISHU>(|r, report| {
    Connection::FeishuRobot(FeishuRobotConnection::read(r, report))
});

/// `kind = "feishu_robot"`: a Feishu custom bot (target `FeishuRobotPush`).
#[derive(Clone, Debug, PartialEq)]
pub struct FeishuRobotConnection {
    /// Default `https://open.feishu.cn`.
    pub base_url: String,
    /// The last part of the bot's webhook URL (`/open-apis/bot/v2/hook/{token}`). Required.
    pub token: Secret,
    /// The bot's signing secret (签名校验). Without one, anyone who learns the token can post;
    /// `ferry lint` warns.
    pub secret: Option<Secret>,
    /// The bot's custom keyword, if its security setting requires one: added to messages that
    /// lack it.
    pub keyword: Option<String>,
    /// Messages per minute (default 100, the bot's limit).
    pub per_minute: u32,
    /// Messages per second (default 5, the bot's limit).
    pub per_second: u32,
    /// The messages' default format, `post` (default) or `text`; a target's `format` overrides it.
    pub format: RobotFormat,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
}

impl FeishuRobotConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        FeishuRobotConnection {
            base_url: r.string_or(report, "base_url", FEISHU_ROBOT_BASE_URL),
            token: r.secret(report, "token"),
            secret: r.opt_secret(report, "secret").filter(|s| !s.is_empty()),
            keyword: r.opt_string(report, "keyword").filter(|k| !k.is_empty()),
            per_minute: read_limit(r, report, "per_minute", FEISHU_ROBOT_PER_MINUTE),
            per_second: read_limit(r, report, "per_second", FEISHU_ROBOT_PER_SECOND),
            format: read_format(r, report, ("post", RobotFormat::Post)),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}
