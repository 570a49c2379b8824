//! `kind = "dingtalk"`: the DingTalk open API with an app's key and secret, as a source (Yida
//! process instances); the access token is fetched and cached for every replica.

use super::http::{API_PAGINATION_KEYS, API_SOURCE_KEYS, DEFAULT_TIMEOUT_SECS, check_api_source};
use super::{Kind, Opens, Sends, Writes, api_path_under, no_connection_lint, no_lint, opt_rate};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::Role;
use crate::scheme::Endpoint;

/// The DingTalk open API (access tokens, Yida).
pub const DINGTALK_BASE_URL: &str = "https://api.dingtalk.com";
/// Yida serves at most this many instances a page (unconfirmed; the sandbox enforces it).
pub const YIDA_MAX_PAGE_SIZE: u64 = 100;

pub static KIND: Kind = Kind {
    name: "dingtalk",
    opens: Opens::Source,
    rate_limited: true,
    single_active_consumer: false,
    writes: Writes::Nothing,
    sends: Sends::Nothing,
    sql: false,
    source_keys: API_SOURCE_KEYS,
    target_keys: &[],
    pagination_keys: API_PAGINATION_KEYS,
    read: |r, report| Connection::DingTalk(DingTalkConnection::read(r, report)),
    api: |_, api| api_path_under(api, &["v1.0/", "topapi/"], "v1.0/yida/processes/instances"),
    check,
    lint: no_lint,
    lint_connection: no_connection_lint,
};

/// The options of every HTTP API source, and a Yida page holds at most [`YIDA_MAX_PAGE_SIZE`]
/// instances (the source's message when it opens).
fn check(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    check_api_source(endpoint, role, out);
    if role == Role::Source
        && is_yida(&endpoint.metadata.api)
        && let Some(size) = endpoint
            .metadata
            .pagination
            .as_ref()
            .and_then(|p| p.page_size)
        && size > YIDA_MAX_PAGE_SIZE
    {
        out.push((
            "source.metadata.pagination.pageSize".into(),
            format!("{size} is more than the {YIDA_MAX_PAGE_SIZE} records a page this API serves"),
        ));
    }
}

/// Whether `api` is Yida's process instances (with or without surrounding slashes).
pub fn is_yida(api: &str) -> bool {
    api.trim()
        .trim_end_matches('/')
        .ends_with("yida/processes/instances")
}

/// `kind = "dingtalk"`: the DingTalk open API with an app's key and secret (Yida process
/// instances). The access token is fetched and cached until it expires.
#[derive(Clone, Debug, PartialEq)]
pub struct DingTalkConnection {
    /// Default `https://api.dingtalk.com`.
    pub base_url: String,
    /// The app's AppKey. Required.
    pub app_key: String,
    /// The app's AppSecret. Required.
    pub app_secret: Secret,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second over every replica; absent means no limit.
    pub rate_per_sec: Option<u32>,
}

impl DingTalkConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        DingTalkConnection {
            base_url: r.string_or(report, "base_url", DINGTALK_BASE_URL),
            app_key: r.string(report, "app_key"),
            app_secret: r.secret(report, "app_secret"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
        }
    }
}
