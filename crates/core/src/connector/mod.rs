//! Connectors: one module per connection `kind`, and [`supported_kinds`], the one list of them.
//!
//! # Layout
//! A kind (`mysql`, `http`, `dingtalk_robot`, ...) is one module here that owns what Ferry knows
//! about it without touching a service:
//! - its connection config, `[connections.<name>]` in `ferry.toml` ([`MysqlConnection`], ...),
//!   and how that table is read;
//! - the scheme metadata keys it reads beyond the scheme model (`body_format`, `at_mobiles`, ...);
//!   `ferry lint` refuses a key one edit or two away from one of them ("did you mean") and warns
//!   about the rest, which pasted seeds carry and Ferry keeps but ignores;
//! - its `check`: the `api` values it offers and whatever else a scheme can get wrong for it,
//!   as `path: message` problems ([`crate::files`] adds the file);
//! - what it opens (source, target or both) and its traits ([`Kind`]): rate limited, a single
//!   active consumer on the load queue, how a target absorbs a record that comes twice.
//!
//! The code that talks to the service (the factories that open a source or a sink) lives in
//! `ferry-sources` and `ferry-sinks`, next to the clients it needs; the `ferry` binary's
//! `registry` opens the right one for a typed [`Connection`], and the compiler refuses a
//! connection variant without a factory there. Nothing else names a kind: code asks the
//! [`Kind`] for the trait it cares about.
//!
//! Adding a kind: a module here (config, keys, options, check, `KIND`), its line in
//! [`supported_kinds`] and its variant in [`Connection`], its factory in `ferry-sources` or
//! `ferry-sinks` and its arm in the binary's `registry`, its simulator in `ferry-sandbox`, and
//! its README section. The README's "Adding a connector" walks through it.

pub mod dingtalk;
pub mod dingtalk_robot;
pub mod feishu_robot;
pub mod http;
pub mod jushuitan;
pub mod kingdee;
pub mod mysql;
pub mod noop;
pub mod okki;
mod robot;
pub mod sync;
pub mod wecom_robot;

use std::fmt;

use serde_json::{Map, Value};

use crate::config::Connection;
use crate::config::read::{Report, TableReader};
use crate::files::Role;
use crate::scheme::Endpoint;
use crate::template::closest;

pub use dingtalk::DingTalkConnection;
pub use dingtalk_robot::{DingTalkRobotConnection, RobotFormat};
pub use feishu_robot::FeishuRobotConnection;
pub use http::{HttpConnection, TokenMethod, TokenSpec};
pub use jushuitan::JushuitanConnection;
pub use kingdee::KingdeeConnection;
pub use mysql::MysqlConnection;
pub use okki::OkkiConnection;
pub use wecom_robot::WeComRobotConnection;

/// Every kind this build knows, in the order the documentation lists them: the one place that
/// names them all.
pub fn supported_kinds() -> &'static [&'static Kind] {
    static KINDS: [&Kind; 10] = [
        &mysql::KIND,
        &http::KIND,
        &dingtalk::KIND,
        &dingtalk_robot::KIND,
        &wecom_robot::KIND,
        &feishu_robot::KIND,
        &jushuitan::KIND,
        &okki::KIND,
        &kingdee::KIND,
        &noop::KIND,
    ];
    &KINDS
}

/// Metadata keys every chat-group robot target reads (the write flow shared by the DingTalk,
/// WeCom and Feishu robots).
pub const ROBOT_TARGET_KEYS: &[&str] = &[
    "format",
    "message_template",
    "at_mobiles",
    "at_user_ids",
    "at_all",
    "update_mark",
    "repeat_mark",
    "window_secs",
    "throttle_retries",
];

/// The kind written `name` in `kind = "..."`, if there is one.
pub fn kind_named(name: &str) -> Option<&'static Kind> {
    supported_kinds().iter().copied().find(|k| k.name == name)
}

/// One connection kind: what it opens, its traits, and the functions that read and check it.
pub struct Kind {
    /// As written in `kind = "..."`.
    pub name: &'static str,
    /// Whether a scheme may read from it, write to it, or both.
    pub opens: Opens,
    /// Its calls share a rate limit over every replica (a slot in the state database).
    pub rate_limited: bool,
    /// Its schemes' load queue has a single active consumer, so a per-target limit (a robot's
    /// 20 messages a minute) holds whatever the number of loader replicas.
    pub single_active_consumer: bool,
    /// How a target of this kind absorbs a record that comes again.
    pub writes: Writes,
    /// What a target of this kind is sent: what `ferry test` shows of a case.
    pub sends: Sends,
    /// The endpoint runs the scheme's `main_sql` (`otherRequest`): SQL parameters, keyset and
    /// offset advice, `write_mode` and the online column checks apply.
    pub sql: bool,
    /// Metadata keys beyond the scheme model that its source reads.
    pub source_keys: &'static [&'static str],
    /// Metadata keys beyond the scheme model that its target reads.
    pub target_keys: &'static [&'static str],
    /// `pagination` keys beyond the scheme model that its source reads.
    pub pagination_keys: &'static [&'static str],
    /// Read a `[connections.<name>]` table of this kind (`kind` itself is read already).
    pub(crate) read: fn(&mut TableReader<'_>, &mut Report) -> Connection,
    /// Whether `api` is one this kind offers in `role` (which [`Kind::opens`] allows).
    pub(crate) api: fn(Role, &str) -> Result<(), String>,
    /// The kind's own checks of an endpoint that names one of its connections; problems are
    /// `(path, message)` with paths from the scheme's root.
    pub(crate) check: fn(&Endpoint, Role, &mut Vec<(String, String)>),
    /// The kind's warnings about an endpoint (risky but legal), `(path, message)`.
    pub(crate) lint: fn(&Endpoint, Role, &mut dyn FnMut(String, String)),
    /// The kind's warnings about one of its connections.
    pub(crate) lint_connection: fn(&Connection) -> Vec<String>,
}

impl Kind {
    /// The name written in `kind = "..."`.
    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// The metadata keys beyond the scheme model that this kind reads in `role`.
    pub fn keys(&self, role: Role) -> &'static [&'static str] {
        match role {
            Role::Source => self.source_keys,
            Role::Target => self.target_keys,
        }
    }

    /// The `pagination` keys beyond the scheme model that this kind reads in `role`.
    pub fn pagination_keys(&self, role: Role) -> &'static [&'static str] {
        match role {
            Role::Source => self.pagination_keys,
            Role::Target => &[],
        }
    }

    /// Whether this kind offers `api` in `role`; the error says what it offers.
    pub fn api_supported(&self, role: Role, api: &str) -> Result<(), String> {
        if !self.opens.allows(role) {
            let other = match role {
                Role::Source => Role::Target,
                Role::Target => Role::Source,
            };
            return Err(format!(
                "can only be a {}, not a {}",
                other.as_str(),
                role.as_str()
            ));
        }
        (self.api)(role, api)
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.name == other.name
    }
}

impl Eq for Kind {}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What a kind can be in a scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opens {
    Source,
    Target,
    Both,
}

impl Opens {
    /// Whether an endpoint in `role` may name a connection of this kind.
    pub fn allows(self, role: Role) -> bool {
        matches!(
            (self, role),
            (Opens::Both, _) | (Opens::Source, Role::Source) | (Opens::Target, Role::Target)
        )
    }
}

/// How a target absorbs a record that comes again (a retry, a replay, the next run's overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Not a target.
    Nothing,
    /// The scheme's SQL statement decides: with `idCheck` (or an upsert statement) a record
    /// that comes again updates its row; its outcomes follow the write mode.
    Statement,
    /// Each record is pushed (a message, a call); with `idCheck` a ledger of what was pushed
    /// skips what comes again. Outcomes: written, skipped.
    Ledger,
    /// Every record is accepted and nothing is written. Outcome: accepted.
    Discards,
}

/// What a target of a kind is sent, per batch of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    /// Not a target (or one that sends nothing).
    Nothing,
    /// SQL statements with their binds.
    Statements,
    /// Chat-group messages.
    Messages,
    /// HTTP requests.
    Requests,
}

/// `unknown key `feild`, did you mean `field`?`: the message for a key close to a known one.
pub fn did_you_mean(key: &str, near: &str) -> String {
    format!("unknown key `{key}`, did you mean `{near}`?")
}

/// The keys of `map` (an open part of the scheme: metadata, pagination) that are close to one of
/// `known` without being one: each a problem at `at.<key>` naming the closest. Keys far from
/// every known one are kept (pasted seeds carry platform keys); `ferry lint` mentions them.
pub(crate) fn misspelt_keys(
    map: &Map<String, Value>,
    known: &[&str],
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some(near) = closest(key, known) {
            out.push((format!("{at}.{key}"), did_you_mean(key, near)));
        }
    }
}

/// The `api` check of a kind that offers a fixed list in a role.
pub(crate) fn api_one_of(api: &str, role: Role, offered: &[&str]) -> Result<(), String> {
    if offered.contains(&api) {
        return Ok(());
    }
    let list = offered
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    Err(format!(
        "does not offer api `{api}` as a {}; expected {list}",
        role.as_str()
    ))
}

/// The `api` check of a vendor kind whose paths start with one of `prefixes`.
pub(crate) fn api_path_under(api: &str, prefixes: &[&str], example: &str) -> Result<(), String> {
    let trimmed = api.trim_start_matches('/');
    if prefixes.iter().any(|p| trimmed.starts_with(p)) {
        Ok(())
    } else {
        Err(format!(
            "does not offer api `{api}`; expected an API path such as `{example}`"
        ))
    }
}

/// A kind with nothing to warn about.
/// The whole number a target's option `key` holds within `range`; `default` when `extra` does
/// not have it. Anything else adds the problem `<at>: `v` is not a whole number from a to b` and
/// gives `default`, so that every problem is still found (the http and robot targets read their
/// limits this way).
pub fn whole_option(
    extra: &Map<String, Value>,
    key: &str,
    at: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
    problems: &mut Vec<String>,
) -> u64 {
    let Some(v) = extra.get(key) else {
        return default;
    };
    match v.as_u64().filter(|n| range.contains(n)) {
        Some(n) => n,
        None => {
            problems.push(format!(
                "{at}: `{}` is not a whole number from {} to {}",
                crate::record::value_text(v),
                range.start(),
                range.end()
            ));
            default
        }
    }
}

pub(crate) fn no_lint(_: &Endpoint, _: Role, _: &mut dyn FnMut(String, String)) {}

/// A kind whose connections have nothing to warn about.
pub(crate) fn no_connection_lint(_: &Connection) -> Vec<String> {
    Vec::new()
}

/// `rate_per_sec`, where 0 or absent means no limit.
pub(crate) fn opt_rate(r: &mut TableReader<'_>, report: &mut Report) -> Option<u32> {
    let rate = r.uint(report, "rate_per_sec", 0..=u32::MAX.into(), 0u32);
    (rate > 0).then_some(rate)
}

/// URL schemes of the HTTP kinds' `base_url`.
pub(crate) const HTTP_SCHEMES: [&str; 2] = ["http", "https"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_by_its_name() {
        let names: Vec<&str> = supported_kinds().iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            [
                "mysql",
                "http",
                "dingtalk",
                "dingtalk_robot",
                "wecom_robot",
                "feishu_robot",
                "jushuitan",
                "okki",
                "kingdee",
                "noop"
            ]
        );
        for kind in supported_kinds() {
            assert_eq!(kind_named(kind.name), Some(*kind));
        }
        assert_eq!(kind_named("mysql_binlog"), None);
    }

    #[test]
    fn apis_are_checked_per_kind_and_role() {
        let kind = |name: &str| kind_named(name).unwrap();
        assert!(kind("mysql").api_supported(Role::Source, "select").is_ok());
        assert!(
            kind("mysql")
                .api_supported(Role::Target, "batchexecute")
                .is_ok()
        );
        assert_eq!(
            kind("mysql").api_supported(Role::Target, "select"),
            Err(
                "does not offer api `select` as a target; expected `execute` or `batchexecute`"
                    .into()
            )
        );
        assert!(
            kind("noop")
                .api_supported(Role::Target, "写入空操作")
                .is_ok()
        );
        assert_eq!(
            kind("noop").api_supported(Role::Source, "x"),
            Err("can only be a target, not a source".into())
        );
        assert!(
            kind("dingtalk")
                .api_supported(Role::Source, "v1.0/yida/processes/instances")
                .is_ok()
        );
        assert!(
            kind("jushuitan")
                .api_supported(Role::Source, "/open/shops/query")
                .is_ok()
        );
        assert_eq!(
            kind("okki").api_supported(Role::Source, "/user/list"),
            Err(
                "does not offer api `/user/list`; expected an API path such as `/v1/user/list`"
                    .into()
            )
        );
        assert_eq!(
            kind("kingdee").api_supported(Role::Target, "/jdyconnector/x"),
            Err("can only be a source, not a target".into())
        );
    }

    #[test]
    fn a_key_near_a_known_one_is_named_with_it() {
        let map: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "body_fromat": "json", "describe": "x", "query_fields": []
        }))
        .unwrap();
        let mut out = Vec::new();
        misspelt_keys(
            &map,
            &["body_format", "query_fields"],
            "source.metadata",
            &mut out,
        );
        assert_eq!(
            out,
            [(
                "source.metadata.body_fromat".to_string(),
                "unknown key `body_fromat`, did you mean `body_format`?".to_string()
            )]
        );
    }
}
