//! What the chat-group robot kinds (`dingtalk_robot`, `wecom_robot`, `feishu_robot`) share: one
//! [`Kind`] shape (a rate-limited target on the delivery ledger, with a single active consumer
//! on its load queue and the robot target keys), the lint that keeps the webhook's credential out
//! of the message and the one that asks for signing, and how their connection tables read the
//! format and the per-minute limit. What differs between their descriptors is one line each in
//! [`ROBOTS`]; each robot module keeps its connection fields and how they are read.

use super::http::no_check;
use super::{Kind, Opens, ROBOT_TARGET_KEYS, RobotFormat, Sends, Writes, api_one_of};
use crate::config::Connection;
use crate::config::read::{Report, TableReader};
use crate::files::Role;
use crate::scheme::Endpoint;

/// What tells one robot kind's descriptor from another's.
pub(crate) struct RobotSpec {
    /// As written in `kind = "..."`.
    name: &'static str,
    /// The one `api` its target offers.
    api: &'static str,
    /// The connection key holding the webhook's credential, and what the lint calls it.
    credential: (&'static str, &'static str),
    /// For robots that sign: how the warning about a connection without a `secret` calls the
    /// robot and its credential, and how to turn signing on.
    signing: Option<(&'static str, &'static str, &'static str)>,
}

/// Index of the DingTalk robot in [`ROBOTS`].
pub(crate) const DINGTALK: usize = 0;
/// Index of the WeCom robot in [`ROBOTS`].
pub(crate) const WECOM: usize = 1;
/// Index of the Feishu bot in [`ROBOTS`].
pub(crate) const FEISHU: usize = 2;

/// The robot kinds, one line each.
#[rustfmt::skip]
static ROBOTS: [RobotSpec; 3] = [
    RobotSpec { name: "dingtalk_robot", api: "DingTalkRoBotPush", credential: ("access_token", "the robot's access token"),
                signing: Some(("the robot", "access token", "turn on signing (加签) for the robot")) },
    RobotSpec { name: "wecom_robot", api: "WeComRobotPush", credential: ("key", "the robot's webhook key"),
                signing: None },
    RobotSpec { name: "feishu_robot", api: "FeishuRobotPush", credential: ("token", "the bot's webhook token"),
                signing: Some(("the bot", "webhook token", "turn on signature verification (签名校验) for the bot")) },
];

/// The kind of robot `ROBOT` (an index in [`ROBOTS`]) whose connection table `read` reads: a
/// rate-limited target (the robot's messages a minute, shared by every replica through a single
/// active consumer) that writes through the ledger and reads [`ROBOT_TARGET_KEYS`].
pub(crate) const fn robot_kind<const ROBOT: usize>(
    read: fn(&mut TableReader<'_>, &mut Report) -> Connection,
) -> Kind {
    Kind {
        name: ROBOTS[ROBOT].name,
        opens: Opens::Target,
        rate_limited: true,
        single_active_consumer: true,
        writes: Writes::Ledger,
        sends: Sends::Messages,
        sql: false,
        source_keys: &[],
        target_keys: ROBOT_TARGET_KEYS,
        pagination_keys: &[],
        read,
        api: robot_api::<ROBOT>,
        check: no_check,
        lint: warn_credential_field::<ROBOT>,
        lint_connection: warn_unsigned::<ROBOT>,
    }
}

/// `api` must be the robot's one api.
fn robot_api<const ROBOT: usize>(role: Role, api: &str) -> Result<(), String> {
    api_one_of(api, role, &[ROBOTS[ROBOT].api])
}

/// Warn when a request field is named after the robot's credential: as a request field it
/// would be sent as message text.
fn warn_credential_field<const ROBOT: usize>(
    endpoint: &Endpoint,
    role: Role,
    warn: &mut dyn FnMut(String, String),
) {
    let (field, what) = ROBOTS[ROBOT].credential;
    if let Some(i) = endpoint
        .metadata
        .request
        .iter()
        .position(|f| f.key() == Some(field))
    {
        warn(
            format!("{}.metadata.request[{i}]", role.as_str()),
            format!(
                "{what} belongs in ferry.toml (the connection's `{field}`); as a request field it \
                 is sent as message text"
            ),
        );
    }
}

/// Warn about a connection of a robot that signs but has no signing `secret`.
fn warn_unsigned<const ROBOT: usize>(connection: &Connection) -> Vec<String> {
    let unsigned = match connection {
        Connection::DingTalkRobot(robot) => robot.secret.is_none(),
        Connection::FeishuRobot(bot) => bot.secret.is_none(),
        _ => false,
    };
    match ROBOTS[ROBOT].signing {
        Some((robot, credential, how)) if unsigned => vec![format!(
            "{robot} has no signing `secret`: anyone who learns its {credential} can post to the \
             group; {how} and set `secret`"
        )],
        _ => Vec::new(),
    }
}

/// The connection's `format`: `text` or the robot's rich format `rich` (its default).
pub(crate) fn read_format(
    r: &mut TableReader<'_>,
    report: &mut Report,
    rich: (&'static str, RobotFormat),
) -> RobotFormat {
    match r
        .choice(report, "format", &[rich.0, "text"], rich.0)
        .as_str()
    {
        "text" => RobotFormat::Text,
        _ => rich.1,
    }
}

/// A per-time-unit limit `key` (`per_minute`, `per_second`) from 1 to the vendor's `max`,
/// which is also its default.
pub(crate) fn read_limit(
    r: &mut TableReader<'_>,
    report: &mut Report,
    key: &'static str,
    max: u32,
) -> u32 {
    r.uint(report, key, 1..=max.into(), max)
}
