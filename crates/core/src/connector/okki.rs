//! `kind = "okki"`: OKKI CRM with OAuth client credentials (a bearer token that lives 8 hours),
//! as a source.

use super::http::{API_PAGINATION_KEYS, API_SOURCE_KEYS, DEFAULT_TIMEOUT_SECS, check_api_source};
use super::{Kind, Opens, Sends, Writes, api_path_under, no_connection_lint, no_lint, opt_rate};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};

/// OKKI's OAuth scope when none is set.
pub const OKKI_DEFAULT_SCOPE: &str = "user";

pub static KIND: Kind = Kind {
    name: "okki",
    opens: Opens::Source,
    rate_limited: true,
    single_active_consumer: false,
    writes: Writes::Nothing,
    sends: Sends::Nothing,
    sql: false,
    source_keys: API_SOURCE_KEYS,
    target_keys: &[],
    pagination_keys: API_PAGINATION_KEYS,
    read: |r, report| Connection::Okki(OkkiConnection::read(r, report)),
    api: |_, api| api_path_under(api, &["v1/"], "/v1/user/list"),
    check: check_api_source,
    lint: no_lint,
    lint_connection: no_connection_lint,
};

/// `kind = "okki"`: OKKI CRM with OAuth client credentials (a bearer token that lives 8 hours).
#[derive(Clone, Debug, PartialEq)]
pub struct OkkiConnection {
    /// Required.
    pub base_url: String,
    /// Required.
    pub client_id: String,
    /// Required.
    pub client_secret: Secret,
    /// Space-separated OAuth scopes (default `user`).
    pub scope: String,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl OkkiConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        OkkiConnection {
            base_url: r.string(report, "base_url"),
            client_id: r.string(report, "client_id"),
            client_secret: r.secret(report, "client_secret"),
            scope: r.string_or(report, "scope", OKKI_DEFAULT_SCOPE),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}
