//! The one error type that crosses crate boundaries in the pipeline.
//!
//! Every failure is classified once, where it happens, into the decision the caller must take:
//! retry later (`Transient`), dead-letter this record (`Record`), or stop the scheme and tell the
//! operator (`Config`). The ack / retry / dead-letter choice is made from this type in one place
//! (the worker loop in the `ferry` binary), never ad hoc.

use std::time::Duration;

/// The port `ferry sandbox` listens on by default (on 127.0.0.1), which the shipped
/// `config/ferry.toml` points every vendor connection at.
pub const SANDBOX_DEFAULT_PORT: u16 = 9180;

/// What to add after "cannot connect to `url`": for the sandbox's default address, that the
/// sandbox is probably not running and how to start it; otherwise nothing.
pub fn refused_hint(url: &str) -> &'static str {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let sandbox = [
        format!("127.0.0.1:{SANDBOX_DEFAULT_PORT}"),
        format!("localhost:{SANDBOX_DEFAULT_PORT}"),
        format!("[::1]:{SANDBOX_DEFAULT_PORT}"),
    ];
    if sandbox.iter().any(|a| a.eq_ignore_ascii_case(host_port)) {
        " (this is the vendor sandbox's default address: start it with `ferry sandbox` in another terminal)"
    } else {
        ""
    }
}

/// `url` without the password of its user info (see [`crate::redact::userinfo`]).
pub use crate::redact::userinfo as redact_userinfo;

/// `e` and its sources, `: `-separated (an HTTP client's own text is often just "error sending
/// request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// At most `max_bytes` of an API's answer, cut on a character boundary, for an error text.
pub fn quote_answer(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How a failure must be handled. The lower-case names are the values of the
/// `x-ferry-error-class` header on dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Network, 5xx, timeouts, vendor throttling, lock waits, a lost database: try again later.
    Transient,
    /// This record is bad (a value that does not convert, a constraint violation): dead-letter it.
    Record,
    /// The scheme or a connection is misconfigured (bad signature, missing table): stop and say why.
    Config,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Record => "record",
            ErrorClass::Config => "config",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified pipeline failure. Messages never contain secrets.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FerryError {
    /// Try again later; `retry_after` is the service's own hint (Retry-After, a throttling window).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// This record cannot be processed. `path` is the field path (`main_params.datetime_new`)
    /// where there is one; `record_id` the record's id where known.
    #[error("{}", record_message(.message, .path, .record_id))]
    Record {
        message: String,
        path: Option<String>,
        record_id: Option<String>,
    },
    /// The scheme or its connection is wrong; nothing will succeed until an operator fixes it.
    #[error("{message}")]
    Config { message: String },
}

fn record_message(message: &str, path: &Option<String>, record_id: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(id) = record_id {
        out.push_str(&format!("record {id}: "));
    }
    if let Some(path) = path {
        out.push_str(&format!("{path}: "));
    }
    out.push_str(message);
    out
}

impl FerryError {
    pub fn transient(message: impl Into<String>) -> Self {
        FerryError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn record(message: impl Into<String>) -> Self {
        FerryError::Record {
            message: message.into(),
            path: None,
            record_id: None,
        }
    }

    pub fn record_at(path: impl Into<String>, message: impl Into<String>) -> Self {
        FerryError::Record {
            message: message.into(),
            path: Some(path.into()),
            record_id: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        FerryError::Config {
            message: message.into(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            FerryError::Transient { .. } => ErrorClass::Transient,
            FerryError::Record { .. } => ErrorClass::Record,
            FerryError::Config { .. } => ErrorClass::Config,
        }
    }

    /// The field path of a record error, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            FerryError::Record { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// The bare message, without the record id and path prefix that `Display` adds.
    pub fn message(&self) -> &str {
        match self {
            FerryError::Transient { message, .. }
            | FerryError::Record { message, .. }
            | FerryError::Config { message } => message,
        }
    }

    /// Attach the record id to a record error (no-op for the other classes).
    pub fn with_record_id(mut self, id: &str) -> Self {
        if let FerryError::Record { record_id, .. } = &mut self
            && record_id.is_none()
        {
            *record_id = Some(id.to_string());
        }
        self
    }

    /// Prefix the path of a record error with `prefix.` (used while descending a field tree).
    pub fn under(mut self, prefix: &str) -> Self {
        if let FerryError::Record { path, .. } = &mut self {
            *path = Some(match path.take() {
                Some(p) if !p.is_empty() => format!("{prefix}.{p}"),
                _ => prefix.to_string(),
            });
        }
        self
    }
}

pub type Result<T, E = FerryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sandboxs_default_address_gets_the_sandbox_hint() {
        for url in [
            "http://127.0.0.1:9180",
            "http://localhost:9180/v1.0/yida",
            "https://u:p@127.0.0.1:9180?x=1",
        ] {
            assert!(refused_hint(url).contains("`ferry sandbox`"), "{url}");
        }
        for url in [
            "http://127.0.0.1:9181",
            "https://oapi.dingtalk.com",
            "http://sandbox:9180",
        ] {
            assert_eq!(refused_hint(url), "", "{url}");
        }
    }

    #[test]
    fn record_errors_read_with_id_and_path() {
        let err = FerryError::record_at("datetime_new", "not a date: \"abc\"").with_record_id("42");
        assert_eq!(
            err.to_string(),
            "record 42: datetime_new: not a date: \"abc\""
        );
        assert_eq!(err.class(), ErrorClass::Record);
        assert_eq!(err.path(), Some("datetime_new"));
    }

    #[test]
    fn under_builds_the_path_outside_in() {
        let err = FerryError::record_at("b", "bad")
            .under("a")
            .under("main_params");
        assert_eq!(err.path(), Some("main_params.a.b"));
    }
}
