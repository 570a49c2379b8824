//! `kind = "kingdee"`: Kingdee cloud accounting through its signed API gateway, as a source
//! (app authorisation and token refresh, then the accounting APIs).

use super::http::{API_PAGINATION_KEYS, API_SOURCE_KEYS, DEFAULT_TIMEOUT_SECS, check_api_source};
use super::{Kind, Opens, Sends, Writes, api_path_under, no_connection_lint, no_lint, opt_rate};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};

pub static KIND: Kind = Kind {
    name: "kingdee",
    opens: Opens::Source,
    rate_limited: true,
    single_active_consumer: false,
    writes: Writes::Nothing,
    sends: Sends::Nothing,
    sql: false,
    source_keys: API_SOURCE_KEYS,
    target_keys: &[],
    pagination_keys: API_PAGINATION_KEYS,
    read: |r, report| Connection::Kingdee(KingdeeConnection::read(r, report)),
    api: |_, api| {
        api_path_under(
            api,
            &["jdyconnector/", "jdy/"],
            "/jdyconnector/app_management/push_app_authorize",
        )
    },
    check: check_api_source,
    lint: no_lint,
    lint_connection: no_connection_lint,
};

/// `kind = "kingdee"`: Kingdee cloud accounting through its signed API gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct KingdeeConnection {
    /// `https://api.kingdee.com` in production. Required.
    pub base_url: String,
    /// The gateway client id (`X-Api-ClientID`). Required.
    pub client_id: String,
    /// Signs every gateway request. Required.
    pub client_secret: Secret,
    /// The app instance whose authorisation `push_app_authorize` fetches. Required.
    pub outer_instance_id: String,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl KingdeeConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        KingdeeConnection {
            base_url: r.string(report, "base_url"),
            client_id: r.string(report, "client_id"),
            client_secret: r.secret(report, "client_secret"),
            outer_instance_id: r.string(report, "outer_instance_id"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}
