//! `kind = "http"`: any JSON API as a source or a target; the scheme's `api` is a path under the
//! connection's `base_url`. As a target, records are posted (or put) one at a time or in
//! batches, success decided by the status and a JSON pointer, vendor codes classed by the
//! target's keys, and `idCheck` puts it on the delivery ledger. Also the keys and the typed
//! [`options`] every HTTP API source reads (the vendor kinds are HTTP sources with their own
//! auth and defaults), and the check `ferry lint` runs on them.

pub mod options;

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

/// As a source, every option the generic kind reads parses ([`HttpSourceOptions`]).
fn check(endpoint: &Endpoint, role: Role, out: &mut Vec<(String, String)>) {
    if role == Role::Source
        && let Err(problems) = HttpSourceOptions::parse(&endpoint.metadata)
    {
        report_source_problems(endpoint, problems, out);
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
}

impl HttpConnection {
    pub(crate) fn read(r: &mut TableReader<'_>, report: &mut Report) -> Self {
        HttpConnection {
            base_url: r.string(report, "base_url"),
            headers: r.secret_map(report, "headers"),
            timeout_secs: r.uint(report, "timeout_secs", 1..=86_400, DEFAULT_TIMEOUT_SECS),
            rate_per_sec: opt_rate(r, report),
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
        // The source options are a source's: a target reads its own.
        assert_eq!(
            problems(json!({"api": "/x", "body_format": "xml"}), Role::Target),
            []
        );
    }
}
