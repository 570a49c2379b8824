//! `kind = "wecom_robot"`: a WeCom (企业微信) group robot as a target (api `WeComRobotPush`):
//! records batched into `markdown` or `text` messages posted to the robot's webhook, 20 messages
//! a minute shared by every replica (so its load queue has a single active consumer), and the
//! `idCheck` ledger so a record that comes again is not pushed twice. The webhook's `key` is
//! the only credential.

use super::http::DEFAULT_TIMEOUT_SECS;
use super::robot::{WECOM, read_format, read_limit, robot_kind};
use super::{Kind, RobotFormat};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};

/// The WeCom API host.
pub const WECOM_ROBOT_BASE_URL: &str = "https://qyapi.weixin.qq.com";
/// A WeCom group robot accepts 20 messages a minute.
pub const WECOM_ROBOT_PER_MINUTE: u32 = 20;

pub static KIND: Kind =
    robot_kind::<WECOM>(|r, report| Connection::WeComRobot(WeComRobotConnection::read(r, report)));

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
            per_minute: read_limit(r, report, "per_minute", WECOM_ROBOT_PER_MINUTE),
            format: read_format(r, report, ("markdown", RobotFormat::Markdown)),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}
