//! `kind = "jushuitan"`: the Jushuitan ERP open API (MD5-signed form posts, pages of at most
//! 100, 5 requests a second), as a source.

use super::http::{API_PAGINATION_KEYS, API_SOURCE_KEYS, DEFAULT_TIMEOUT_SECS, check_api_source};
use super::{Kind, Opens, Sends, Writes, api_path_under, no_connection_lint, no_lint};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::Role;
use crate::scheme::Endpoint;

/// Jushuitan refuses more than 5 requests a second (error 199).
pub const JUSHUITAN_RATE_PER_SEC: u32 = 5;
/// Jushuitan returns at most this many records a page.
pub const JUSHUITAN_MAX_PAGE_SIZE: u64 = 100;

pub static KIND: Kind = Kind {
    name: "jushuitan",
    opens: Opens::Source,
    rate_limited: true,
    single_active_consumer: false,
    writes: Writes::Nothing,
    sends: Sends::Nothing,
    sql: false,
    source_keys: API_SOURCE_KEYS,
    target_keys: &[],
    pagination_keys: API_PAGINATION_KEYS,
    read: |r, report| Connection::Jushuitan(JushuitanConnection::read(r, report)),
    api: |_, api| api_path_under(api, &["open/"], "/open/shops/query"),
    check,
    lint: no_lint,
    lint_connection: no_connection_lint,
};

/// The options of every HTTP API source, and a page holds at most [`JUSHUITAN_MAX_PAGE_SIZE`]
/// records.
fn check(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    check_api_source(endpoint, role, out);
    if let Some(size) = endpoint
        .metadata
        .pagination
        .as_ref()
        .and_then(|p| p.page_size)
        && size > JUSHUITAN_MAX_PAGE_SIZE
    {
        out.push((
            format!("{}.metadata.pagination.pageSize", role.as_str()),
            format!(
                "Jushuitan returns at most {JUSHUITAN_MAX_PAGE_SIZE} records a page, found {size}"
            ),
        ));
    }
}

/// `kind = "jushuitan"`: the Jushuitan ERP open API (MD5-signed form posts, pages of at most 100).
#[derive(Clone, Debug, PartialEq)]
pub struct JushuitanConnection {
    /// `https://openapi.jushuitan.com` in production. Required.
    pub base_url: String,
    /// Required.
    pub app_key: String,
    /// Signs every request. Required.
    pub app_secret: Secret,
    /// Required.
    pub access_token: Secret,
    /// Used to get a new access token when the current one is refused (error 100).
    pub refresh_token: Option<Secret>,
    /// Most requests per second (default 5, the vendor's limit).
    pub rate_per_sec: u32,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
}

impl JushuitanConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        JushuitanConnection {
            base_url: r.string(report, "base_url"),
            app_key: r.string(report, "app_key"),
            app_secret: r.secret(report, "app_secret"),
            access_token: r.secret(report, "access_token"),
            refresh_token: r
                .opt_secret(report, "refresh_token")
                .filter(|s| !s.is_empty()),
            rate_per_sec: r.uint(
                report,
                "rate_per_sec",
                1..=JUSHUITAN_RATE_PER_SEC.into(),
                JUSHUITAN_RATE_PER_SEC,
            ),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
        }
    }
}
