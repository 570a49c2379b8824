//! `kind = "feishu_robot"`: a Feishu (飞书) custom bot as a target (api `FeishuRobotPush`):
//! records batched into `post` (rich text) or `text` messages, signed when the bot verifies
//! signatures, 5 messages a second and 100 a minute shared by every replica (so its load queue
//! has a single active consumer), and the `idCheck` ledger so a record that comes again is not
//! pushed twice.

use super::http::{DEFAULT_TIMEOUT_SECS, no_check};
use super::{Kind, Opens, ROBOT_TARGET_KEYS, RobotFormat, Writes, api_one_of};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::Role;
use crate::scheme::Endpoint;

/// The Feishu open platform host.
pub const FEISHU_ROBOT_BASE_URL: &str = "https://open.feishu.cn";
/// A Feishu custom bot accepts 100 messages a minute...
pub const FEISHU_ROBOT_PER_MINUTE: u32 = 100;
/// ... and 5 a second.
pub const FEISHU_ROBOT_PER_SECOND: u32 = 5;

pub static KIND: Kind = Kind {
    name: "feishu_robot",
    opens: Opens::Target,
    rate_limited: true,
    single_active_consumer: true,
    writes: Writes::Ledger,
    sql: false,
    source_keys: &[],
    target_keys: ROBOT_TARGET_KEYS,
    pagination_keys: &[],
    read: |r, report| Connection::FeishuRobot(FeishuRobotConnection::read(r, report)),
    api: |role, api| api_one_of(api, role, &["FeishuRobotPush"]),
    check: no_check,
    lint,
    lint_connection,
};

/// The bot's token as a request field would be sent as message text.
fn lint(endpoint: &Endpoint, role: Role, warn: &mut dyn FnMut(String, String)) {
    if let Some(i) = endpoint
        .metadata
        .request
        .iter()
        .position(|f| f.key() == Some("token"))
    {
        warn(
            format!("{}.metadata.request[{i}]", role.as_str()),
            "the bot's webhook token belongs in ferry.toml (the connection's `token`); as a \
             request field it is sent as message text"
                .into(),
        );
    }
}

/// A bot without a signing secret.
fn lint_connection(connection: &Connection) -> Vec<String> {
    match connection {
        Connection::FeishuRobot(bot) if bot.secret.is_none() => vec![
            "the bot has no signing `secret`: anyone who learns its webhook token can post to \
             the group; turn on signature verification (签名校验) for the bot and set `secret`"
                .into(),
        ],
        _ => Vec::new(),
    }
}

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
            per_minute: r.uint(
                report,
                "per_minute",
                1..=FEISHU_ROBOT_PER_MINUTE.into(),
                FEISHU_ROBOT_PER_MINUTE,
            ),
            per_second: r.uint(
                report,
                "per_second",
                1..=FEISHU_ROBOT_PER_SECOND.into(),
                FEISHU_ROBOT_PER_SECOND,
            ),
            format: match r
                .choice(report, "format", &["post", "text"], "post")
                .as_str()
            {
                "text" => RobotFormat::Text,
                _ => RobotFormat::Post,
            },
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}
