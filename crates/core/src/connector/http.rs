//! `kind = "http"`: any JSON API as a source or a target; the scheme's `api` is a path under the
//! connection's `base_url`. As a target, records are posted (or put) one at a time or in
//! batches, success decided by the status and a JSON pointer, vendor codes classed by the
//! target's keys, and `idCheck` puts it on the delivery ledger. Also the keys and the typed
//! [`options`] every HTTP API source reads (the vendor kinds are HTTP sources with their own
//! auth and defaults), and the check `ferry lint` runs on them.

pub mod options;
pub mod target;

use super::{Kind, Opens, Sends, Writes, no_connection_lint, no_lint, opt_rate};
use crate::config::read::{Report, TableReader};
use crate::config::{Connection, Secret};
use crate::files::{PAGINATION_MODES, Role};
use crate::scheme::Endpoint;
use std::collections::BTreeMap;

pub use options::{ApiOptions, HttpSourceOptions};

/// HTTP request timeout when a connection does not set `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Metadata keys every HTTP API source reads (`http` and the vendor kinds): how the request is
/// sent, the run's window and cursor, and lookups.
pub const API_SOURCE_KEYS: &[&str] = &[
    "body_format",
    "query_fields",
    "json_text_fields",
    "sync_overlap_secs",
    "cursor_field",
    "cursor_start",
    "lookups",
];

/// `pagination` keys every HTTP API source reads.
pub const API_PAGINATION_KEYS: &[&str] = &[
    "start_page",
    "cursor_at",
    "cursor_param",
    "has_next_at",
    "total_at",
    "short_page_ends",
    "overlap_secs",
];

pub static KIND: Kind = Kind {
    name: "http",
    opens: Opens::Both,
    rate_limited: true,
    single_active_consumer: false,
    writes: Writes::Ledger,
    sends: Sends::Requests,
    sql: false,
    // The generic API also says where its answer's code is and which codes are fine.
    source_keys: &[
        "body_format",
        "query_fields",
        "json_text_fields",
        "sync_overlap_secs",
        "cursor_field",
        "cursor_start",
        "lookups",
        "ok_codes",
        "code_at",
        "message_at",
    ],
    // What the target reads beyond `api`, `method`, `batch_size` and `idCheck`.
    target_keys: &[
        "body_format",
        "success_pointer",
        "success_value",
        "message_pointer",
        "throttle_codes",
        "transient_codes",
        "record_codes",
        "config_codes",
        "other_codes",
        "throttle_retries",
        "throttle_wait_secs",
    ],
    pagination_keys: API_PAGINATION_KEYS,
    read: |r, report| Connection::Http(HttpConnection::read(r, report)),
    api,
    check,
    lint: no_lint,
    lint_connection: no_connection_lint,
};

/// A source may call any path; a target's `api` must be a path under the connection's
/// `base_url` (and a method it sends).
fn api(role: Role, api: &str) -> Result<(), String> {
    let path = api.trim();
    if role == Role::Target && (path.is_empty() || path.contains("://") || path.starts_with("//")) {
        return Err(format!(
            "does not take api `{api}` as a target: it must be a path under the connection's \
             base_url (such as `/v1/orders`)"
        ));
    }
    Ok(())
}

/// A kind with no checks of its own beyond the api and the keys.
pub(crate) fn no_check(_: &Endpoint, _: Role, _: &mut Vec<(String, String)>) {}

/// As a source, every option the generic kind reads parses ([`HttpSourceOptions`]); as a
/// target, every option the http target reads ([`target::HttpTargetOptions`]), with the words
/// the target gives when it opens.
fn check(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    match role {
        Role::Source => {
            if let Err(problems) = HttpSourceOptions::parse(&endpoint.metadata) {
                report_source_problems(endpoint, problems, out);
            }
        }
        Role::Target => {
            if let Err(problems) = target::HttpTargetOptions::parse(&endpoint.metadata) {
                // An empty `api` and a zero `batch_size` are reported by the checks of every
                // kind already.
                let metadata = &endpoint.metadata;
                let empty_api = metadata.api.trim().is_empty();
                let zero_batch = metadata.batch_size == Some(0);
                out.extend(problems.into_iter().filter(|(path, _)| {
                    !(empty_api && path == "target.metadata.api"
                        || zero_batch && path == "target.metadata.batch_size")
                }));
            }
        }
    }
}

/// The check of a vendor kind's source: every option an HTTP API source reads parses
/// ([`ApiOptions`]), with the messages the source gives when it opens.
pub(crate) fn check_api_source(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    if role == Role::Source
        && let Err(problems) = ApiOptions::parse(&endpoint.metadata)
    {
        report_source_problems(endpoint, problems, out);
    }
}

/// `problems` of the source's options, under `source.metadata`, less those the checks of every
/// kind report already with their own words (`crate::files`: an empty `api`, a zero `pageSize`
/// or `max_pages`, a `records_at` that is not a pointer, a paging mode no kind knows).
fn report_source_problems(
    endpoint: &Endpoint,
    problems: options::Problems,
    out: &mut Vec<(String, String)>,
) {
    let meta = &endpoint.metadata;
    let mode = meta.pagination.as_ref().and_then(|p| p.mode.as_deref());
    let reported_for_every_kind = |path: &str| match path {
        "api" => meta.api.is_empty(),
        "pagination.pageSize" | "pagination.max_pages" | "records_at" => true,
        "pagination.mode" => mode.is_some_and(|m| !PAGINATION_MODES.contains(&m)),
        _ => false,
    };
    out.extend(
        problems
            .into_iter()
            .filter(|(path, _)| !reported_for_every_kind(path))
            .map(|(path, message)| (format!("source.metadata.{path}"), message)),
    );
}

/// `kind = "http"`: any JSON API; the scheme's `api` is a path under `base_url`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConnection {
    /// Scheme, host and optional path prefix (`https://api.example.com/v2`). Required.
    pub base_url: String,
    /// Headers sent with every request (`Authorization = "Bearer ${TOKEN}"`); values are secret.
    pub headers: BTreeMap<String, Secret>,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: u64,
    /// Most requests per second; absent means no limit.
    pub rate_per_sec: Option<u32>,
    /// Where a bearer token comes from, for APIs that hand one out (`[connections.<name>.token]`);
    /// absent: the `headers` carry the auth.
    pub token: Option<TokenSpec>,
}

/// Token lifetime assumed when the token endpoint's answer does not say (two hours, as most
/// Chinese SaaS token endpoints hand out).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 7_200;

/// `[connections.<name>.token]`: how an `http` connection (source or target) gets the bearer
/// token its API wants. The token is fetched once, cached in the state database for every
/// replica until shortly before it expires, sent in `header` as `prefix` + token, and fetched
/// again once when the API answers HTTP 401.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    /// The token endpoint: a path under the connection's `base_url` (`/oauth/token`) or a full
    /// URL. Required.
    pub url: String,
    /// `POST` (default) or `GET`.
    pub method: TokenMethod,
    /// The fields sent to it (client id, secret, grant type): a JSON body, a form
    /// (`body_format = "form"`), or the query of a `GET`. Values are secret.
    pub params: BTreeMap<String, Secret>,
    /// `json` (default) or `form`, for a `POST`.
    pub form: bool,
    /// JSON pointer to the token in the answer (default `/access_token`).
    pub token_at: String,
    /// JSON pointer to its lifetime in seconds (default `/expires_in`).
    pub expires_at: String,
    /// Lifetime when the answer has none there (default 7200).
    pub ttl_secs: u64,
    /// Header the token is sent in (default `Authorization`).
    pub header: String,
    /// What precedes the token in that header (default `Bearer `; `""` for a bare token).
    pub prefix: String,
}

/// How a token endpoint is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMethod {
    Post,
    Get,
}

impl TokenSpec {
    /// `[connections.<name>.token]`, if the connection has one.
    fn read(r: &mut TableReader<'_>, report: &mut Report) -> Option<TokenSpec> {
        let mut t = r.table(report, "token");
        if !t.is_present() {
            return None;
        }
        let spec = TokenSpec {
            url: t.string(report, "url"),
            method: match t
                .choice(report, "method", &["POST", "GET"], "POST")
                .as_str()
            {
                "GET" => TokenMethod::Get,
                _ => TokenMethod::Post,
            },
            params: t.secret_map(report, "params"),
            form: t.choice(report, "body_format", &["json", "form"], "json") == "form",
            token_at: t.string_or(report, "token_at", "/access_token"),
            expires_at: t.string_or(report, "expires_at", "/expires_in"),
            ttl_secs: t.uint(report, "ttl_secs", 1..=31_536_000, DEFAULT_TOKEN_TTL_SECS),
            header: t.string_or(report, "header", "Authorization"),
            prefix: t
                .opt_string(report, "prefix")
                .unwrap_or_else(|| "Bearer ".into()),
        };
        let pointers = [
            ("token_at", &spec.token_at, "/data/access_token"),
            ("expires_at", &spec.expires_at, "/data/expires_in"),
        ];
        for (key, pointer, example) in pointers {
            if !pointer.starts_with('/') {
                report.error(
                    &t.path_of(key),
                    format!(
                        "`{pointer}` is not a JSON pointer (it starts with `/`, as `{example}`)"
                    ),
                );
            }
        }
        t.finish(report);
        Some(spec)
    }
}

impl HttpConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        HttpConnection {
            base_url: r.string(report, "base_url"),
            headers: r.secret_map(report, "headers"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
            token: TokenSpec::read(r, report),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(metadata: serde_json::Value, role: Role) -> Vec<(String, String)> {
        let endpoint: Endpoint =
            serde_json::from_value(json!({"connection": "api", "metadata": metadata})).unwrap();
        let mut out = Vec::new();
        check(&endpoint, role, &mut out);
        out
    }

    #[test]
    fn what_every_kind_reports_is_not_reported_twice() {
        // The checks of every kind name these already, in their own words.
        let generic = json!({
            "api": "", "records_at": "x",
            "pagination": {"pageSize": 0, "max_pages": 0, "mode": "pages"}
        });
        assert_eq!(problems(generic, Role::Source), []);
        // A mode every kind knows but an HTTP source does not is this kind's to report.
        assert_eq!(
            problems(
                json!({"api": "/x", "pagination": {"mode": "keyset"}}),
                Role::Source
            ),
            [(
                "source.metadata.pagination.mode".to_string(),
                "`keyset` is not an HTTP paging mode (page, offset, cursor, none)".to_string()
            )]
        );
        // The source options are a source's: a target reads its own, in the target's words.
        assert_eq!(
            problems(json!({"api": "/x", "body_format": "xml"}), Role::Target),
            [(
                "target.metadata.body_format".to_string(),
                "`xml` is not a body format (json, form)".to_string()
            )]
        );
        assert_eq!(
            problems(json!({"api": "", "batch_size": 0}), Role::Target),
            []
        );
    }
}
