//! A robot connection of any kind (`dingtalk_robot`, `wecom_robot`, `feishu_robot`) as the
//! binary holds it, a [`Connection`]: its vendor and settings, for `ferry test`'s rendering and
//! the alerts' poster, so neither matches on the robot kinds itself.

use std::sync::Arc;

use serde_json::Value;

use ferry_core::config::Connection;
use ferry_core::scheme::Metadata;
use ferry_core::{FerryError, Record};
use ferry_state::State;

use super::dingtalk::DingTalk;
use super::feishu::Feishu;
use super::sink::{RobotSettings, RobotSink, render};
use super::vendor::Vendor;
use super::wecom::WeCom;

/// The vendor and settings of robot connection `name`; `None` for a connection that is not a
/// robot.
fn parts<'a>(
    name: &'a str,
    connection: &Connection,
) -> Option<(Arc<dyn Vendor>, RobotSettings<'a>)> {
    // (vendor, keyword); the rest every robot connection has.
    let (vendor, keyword): (Arc<dyn Vendor>, Option<String>) = match connection {
        Connection::DingTalkRobot(c) => (Arc::new(DingTalk::new(c)), c.keyword.clone()),
        Connection::WeComRobot(c) => (Arc::new(WeCom::new(&c.base_url, c.key.clone())), None),
        Connection::FeishuRobot(c) => {
            let bot = Feishu::new(&c.base_url, c.token.clone(), c.secret.clone(), c.per_second);
            (Arc::new(bot), c.keyword.clone())
        }
        _ => return None,
    };
    let (format, per_minute, timeout_secs) = match connection {
        Connection::DingTalkRobot(c) => (c.format, c.per_minute, c.timeout_secs),
        Connection::WeComRobot(c) => (c.format, c.per_minute, c.timeout_secs),
        Connection::FeishuRobot(c) => (c.format, c.per_minute, c.timeout_secs),
        _ => return None,
    };
    let robot = RobotSettings {
        connection: name,
        format: format.into(),
        keyword,
        per_minute,
        timeout_secs,
    };
    Some((vendor, robot))
}

/// The message bodies a robot target on `connection` would push for `records` (its ledger
/// taken as empty), and the records too long to send even alone: what `ferry test` compares
/// with a scheme's expected messages, for any robot kind.
pub fn render_robot_messages(
    connection: &Connection,
    metadata: &Metadata,
    scheme_name: &str,
    records: Vec<Record>,
) -> Result<(Vec<Value>, Vec<(Record, FerryError)>), FerryError> {
    let Some((vendor, robot)) = parts("", connection) else {
        return Err(FerryError::config(format!(
            "a {} connection is not a robot",
            connection.kind()
        )));
    };
    render(vendor, robot, metadata, scheme_name, records)
}

/// Robot connection `name` of any kind as a plain poster of messages (the alerts): its signing,
/// codes and shared rate limit, no ledger; `None` for a connection that is not a robot.
pub fn robot_poster(
    name: &str,
    connection: &Connection,
    state: State,
    client: reqwest::Client,
    throttle_retries: usize,
) -> Option<RobotSink> {
    let (vendor, robot) = parts(name, connection)?;
    Some(RobotSink::open_poster(
        vendor,
        robot,
        state,
        client,
        throttle_retries,
    ))
}
