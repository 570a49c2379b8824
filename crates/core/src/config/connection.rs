//! Named connections (`[connections.<name>]` in `ferry.toml`): one typed config per `kind`.
//!
//! A connection carries what a scheme must not: hosts, credentials, rate limits. Schemes name a
//! connection; its kind ([`crate::connector`]) decides which `api` values the scheme may use, the
//! metadata keys it reads, and how sources and sinks talk to the service (signing, paging, error
//! codes). Each kind's config struct lives in its connector module; this enum carries one of
//! them. Secrets are [`Secret`](super::Secret)s so that printing a connection never leaks one.

use super::read::{Report, TableReader};
use crate::connector::{
    DingTalkConnection, DingTalkRobotConnection, FeishuRobotConnection, HTTP_SCHEMES,
    HttpConnection, JushuitanConnection, Kind, KingdeeConnection, MysqlConnection, OkkiConnection,
    WeComRobotConnection, kind_named, supported_kinds,
};

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
    /// `kind = "wecom_robot"`
    WeComRobot(WeComRobotConnection),
    /// `kind = "feishu_robot"`
    FeishuRobot(FeishuRobotConnection),
    /// `kind = "jushuitan"`
    Jushuitan(JushuitanConnection),
    /// `kind = "okki"`
    Okki(OkkiConnection),
    /// `kind = "kingdee"`
    Kingdee(KingdeeConnection),
    /// `kind = "noop"`: accepts every record and writes nothing.
    Noop,
}

impl Connection {
    /// The kind this connection was written with: what it opens, its traits, its checks.
    pub fn kind(&self) -> &'static Kind {
        use crate::connector as c;
        match self {
            Connection::Mysql(_) => &c::mysql::KIND,
            Connection::Http(_) => &c::http::KIND,
            Connection::DingTalk(_) => &c::dingtalk::KIND,
            Connection::DingTalkRobot(_) => &c::dingtalk_robot::KIND,
            Connection::WeComRobot(_) => &c::wecom_robot::KIND,
            Connection::FeishuRobot(_) => &c::feishu_robot::KIND,
            Connection::Jushuitan(_) => &c::jushuitan::KIND,
            Connection::Okki(_) => &c::okki::KIND,
            Connection::Kingdee(_) => &c::kingdee::KIND,
            Connection::Noop => &c::noop::KIND,
        }
    }

    /// The `base_url` of an HTTP kind; `None` for MySQL and noop.
    pub fn base_url(&self) -> Option<&str> {
        match self {
            Connection::Http(c) => Some(&c.base_url),
            Connection::DingTalk(c) => Some(&c.base_url),
            Connection::DingTalkRobot(c) => Some(&c.base_url),
            Connection::WeComRobot(c) => Some(&c.base_url),
            Connection::FeishuRobot(c) => Some(&c.base_url),
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
        let Some(kind) = kind_named(&kind_name) else {
            let list = supported_kinds()
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
        let connection = (kind.read)(&mut r, report);
        if let Some(url) = connection.base_url() {
            r.require_url(report, "base_url", url, &HTTP_SCHEMES);
        }
        r.finish(report);
        Some(connection)
    }
}
