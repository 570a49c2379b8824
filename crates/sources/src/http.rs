//! HTTP sources: the client every vendor kind shares, the paginator, and the generic `http` kind.
//!
//! Three layers, from the wire up:
//!
//! 1. [`HttpClient::call`] sends one logical request: it asks the connection's [`Vendor`] to
//!    authorise and sign it (afresh on every attempt, since signatures carry timestamps), waits
//!    for a slot of the connection's rate limit (shared by every replica through the state
//!    database), sends it with the connection's timeout, and lets the vendor judge the answer
//!    ([`Verdict`]): done, retry (throttling, 5xx, timeouts: exponential backoff that honours
//!    `Retry-After` and the vendor's own windows), renew the token once and try again, or fail
//!    at once. A configuration failure (bad credentials or signature) is never retried, so a
//!    wrong secret costs one or two calls, not a retry storm.
//! 2. [`ApiSource`] pages through one scheme's API: it renders the scheme's `request` tree per
//!    page (`{PAGINATION_START_PAGE}`, `{PAGINATION_START_ROW}`, `{PAGINATION_PAGE_SIZE}`,
//!    `{cursor}`), places each field in the query or the body, takes the records at a JSON
//!    pointer, and stops on an empty page, `has_next` false, the total reached or no next
//!    cursor. A short page does not end a run (servers clamp pages below what is asked) unless
//!    the scheme sets `pagination.short_page_ends`; offsets advance by the records received.
//!    A `pagination.max_pages` guard (default [`DEFAULT_MAX_PAGES`]) and a
//!    check for an API that answers the same page twice make a paging mistake fail loudly
//!    instead of looping forever.
//! 3. [`Plain`]: the vendor of the generic `http` kind (fixed headers, HTTP status codes and an
//!    optional `code` field in the body).
//!
//! Lookups (`lookups` in the metadata) enrich each record from a nested array of the record
//! itself or from a second call, fetched once per run. The extractor moves `LAST_SYNC_TIME`
//! back by the overlap (see [`crate::overlap`]) for every source kind.
//! The README's connection reference lists every metadata key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use ferry_core::config::HttpConnection;
use ferry_core::mapping::{record_id, render_tree};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::template::{Context, PageVars, lookup};
use ferry_core::{FerryError, Record};
use ferry_state::State;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{Page, Source};

/// Attempts at one call before a retryable failure is handed to the extractor (which backs off
/// and asks for the page again).
pub const CALL_ATTEMPTS: usize = 5;
/// First pause between attempts; it doubles up to [`RETRY_MAX_DELAY_MS`].
pub const RETRY_MIN_DELAY_MS: u64 = 200;
/// Longest pause between attempts chosen by the backoff itself.
pub const RETRY_MAX_DELAY_MS: u64 = 10_000;
/// Longest `Retry-After` honoured; a larger hint is cut to this (the extractor retries later).
pub const MAX_RETRY_AFTER_SECS: u64 = 120;
/// Pages one run may read when the scheme sets no `pagination.max_pages`.
pub const DEFAULT_MAX_PAGES: u64 = 100_000;
/// Records per page when neither the scheme nor the vendor says.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Characters of an unexpected answer quoted in an error message.
const QUOTED_BODY_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// Requests, replies, verdicts
// ---------------------------------------------------------------------------------------------

/// A request body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    Form(Vec<(String, String)>),
}

/// One request, before the vendor signs it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// Scheme, host and optional prefix, without a trailing `/`.
    pub base: String,
    /// Path under `base`, starting with `/`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header values may be secrets: never log them.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    /// A request to `path` (with or without a leading `/`) under `base`.
    pub fn new(method: Method, base: &str, path: &str) -> Request {
        Request {
            method,
            base: base.trim_end_matches('/').to_string(),
            path: format!("/{}", path.trim_start_matches('/')),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.base, self.path)
    }

    pub fn header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }
}

/// A service's answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when the service sent one.
    pub retry_after: Option<Duration>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body, for error messages.
    pub fn quoted(&self) -> String {
        let text: String = self.text.chars().take(QUOTED_BODY_CHARS).collect();
        if text.len() < self.text.len() {
            format!("{text}...")
        } else {
            text
        }
    }

    /// A text field of a JSON body (`code`, `message`), numbers written as text.
    pub fn field(&self, name: &str) -> Option<String> {
        self.body.get(name).filter(|v| !v.is_null()).map(value_text)
    }

    /// A whole-number field of a JSON body (`code`, `errcode`), sent as a number or as text.
    pub fn int_field(&self, name: &str) -> Option<i64> {
        self.body.get(name).and_then(|c| {
            c.as_i64()
                .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
        })
    }

    /// A reply with a JSON `body` and no Retry-After, as the judges' tests build them.
    #[cfg(test)]
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            retry_after: None,
            text: body.to_string(),
            body,
        }
    }
}

/// What a vendor makes of a reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Ok,
    /// Throttling, 5xx, a timeout: wait (at least `retry_after`) and send again.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token was refused: renew it once and send again; a second refusal is a
    /// configuration error.
    Reauth {
        message: String,
    },
    /// Credentials, signature, permissions or the request itself are wrong: stop the scheme.
    Config(String),
}

/// Retry on throttling and server errors, whatever the vendor: the common part of every judge.
pub fn judge_status(reply: &Reply, vendor: &str) -> Option<Verdict> {
    match reply.status {
        408 | 429 | 500..=599 => Some(Verdict::Retry {
            message: format!(
                "{vendor} answered HTTP {}: {}",
                reply.status,
                reply.quoted()
            ),
            retry_after: reply.retry_after,
        }),
        _ => None,
    }
}

/// [`judge_status`], and any other answer that is not 2xx stops the scheme: the start of a judge
/// for vendors whose own error codes come in 2xx bodies.
pub fn judge_http(reply: &Reply, vendor: &str) -> Option<Verdict> {
    if let Some(verdict) = judge_status(reply, vendor) {
        return Some(verdict);
    }
    if !reply.is_success() {
        return Some(Verdict::Config(format!(
            "{vendor} answered HTTP {}: {}",
            reply.status,
            reply.quoted()
        )));
    }
    None
}

/// How a connection kind authorises, signs and judges its calls.
#[async_trait]
pub trait Vendor: Send + Sync {
    /// The vendor's name in messages (`DingTalk`, `Jushuitan`).
    fn label(&self) -> &'static str;

    /// Authorise and sign `req` (fetching a token if none is cached). Called before every attempt.
    async fn prepare(&self, http: &HttpClient, req: &mut Request) -> Result<(), FerryError>;

    /// Judge a reply to a call prepared by [`Vendor::prepare`].
    fn judge(&self, reply: &Reply) -> Verdict;

    /// The token was refused: drop or renew it so that the next [`Vendor::prepare`] uses a new one.
    async fn renew_token(&self, _http: &HttpClient) -> Result<(), FerryError> {
        Ok(())
    }

    /// Seen after each page of records, before they are shaped (Kingdee caches the app token of
    /// an authorisation here).
    async fn on_page(&self, _http: &HttpClient, _reply: &Reply) -> Result<(), FerryError> {
        Ok(())
    }

    /// The record a response item becomes (Yida: form values plus `extend`).
    fn shape(&self, item: Value) -> Value {
        item
    }
}

/// A vendor for calls that need no authorisation, with a fixed judge (token endpoints).
pub struct Unsigned<F: Fn(&Reply) -> Verdict + Send + Sync> {
    pub label: &'static str,
    pub judge: F,
}

#[async_trait]
impl<F: Fn(&Reply) -> Verdict + Send + Sync> Vendor for Unsigned<F> {
    fn label(&self) -> &'static str {
        self.label
    }
    async fn prepare(&self, _http: &HttpClient, _req: &mut Request) -> Result<(), FerryError> {
        Ok(())
    }
    fn judge(&self, reply: &Reply) -> Verdict {
        (self.judge)(reply)
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// The HTTP client of one connection: timeout, shared rate limit, retries.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    connection: Arc<str>,
    state: State,
    timeout: Duration,
    rate_per_sec: Option<u32>,
    attempts: usize,
}

impl HttpClient {
    /// `rate_per_sec`: most calls a second over every replica (`None`: no limit).
    pub fn new(
        connection: &str,
        client: reqwest::Client,
        state: State,
        timeout: Duration,
        rate_per_sec: Option<u32>,
    ) -> HttpClient {
        HttpClient {
            client,
            connection: Arc::from(connection),
            state,
            timeout,
            rate_per_sec,
            attempts: CALL_ATTEMPTS,
        }
    }

    /// The connection's name in `ferry.toml`.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// `connection `name`: message`: how every error of this connection reads.
    pub fn error_text(&self, message: &str) -> String {
        format!("connection `{}`: {message}", self.connection)
    }

    /// Send `req` through `vendor` until it succeeds, fails for good, or runs out of attempts.
    /// Every retry is counted per connection ([`call_retries`]).
    pub async fn call(&self, vendor: &dyn Vendor, req: &Request) -> Result<Reply, FerryError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(RETRY_MIN_DELAY_MS))
            .with_max_delay(Duration::from_millis(RETRY_MAX_DELAY_MS))
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut renewed = false;
        loop {
            let mut signed = req.clone();
            vendor.prepare(self, &mut signed).await?;
            self.wait_for_rate_slot().await?;
            let (message, hint) = match self.send_once(&signed).await {
                Err(message) => (message, None),
                Ok(reply) => match vendor.judge(&reply) {
                    Verdict::Ok => return Ok(reply),
                    Verdict::Config(message) => {
                        return Err(FerryError::config(self.error_text(&message)));
                    }
                    Verdict::Reauth { message } if renewed => {
                        return Err(FerryError::config(self.error_text(&format!(
                            "{message} (refused again with a new token; check the credentials)"
                        ))));
                    }
                    Verdict::Reauth { message } => {
                        tracing::info!(connection = %self.connection, reason = %message, "token refused; renewing it");
                        renewed = true;
                        vendor.renew_token(self).await?;
                        continue;
                    }
                    Verdict::Retry {
                        message,
                        retry_after,
                    } => (message, retry_after),
                },
            };
            let hint = hint.map(|h| h.min(Duration::from_secs(MAX_RETRY_AFTER_SECS)));
            match backoff.next() {
                Some(delay) => {
                    let delay = hint.map_or(delay, |h| h.max(delay));
                    count_retry(&self.connection);
                    tracing::warn!(
                        connection = %self.connection,
                        path = %req.path,
                        error = %message,
                        delay_ms = delay.as_millis() as u64,
                        "call failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(FerryError::Transient {
                        message: self.error_text(&format!(
                            "{message} (gave up after {} attempts)",
                            self.attempts
                        )),
                        retry_after: hint,
                    });
                }
            }
        }
    }

    /// One attempt. `Err` is a network failure (refused, reset, timed out), always retryable.
    async fn send_once(&self, req: &Request) -> Result<Reply, String> {
        let started = Instant::now();
        let mut builder = self
            .client
            .request(req.method.clone(), req.url())
            .timeout(self.timeout);
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match &req.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(pairs) => builder.form(pairs),
        };
        let response = builder
            .send()
            .await
            .map_err(|e| network_text(&e, &req.base))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response
            .text()
            .await
            .map_err(|e| network_text(&e, &req.base))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Path only: query strings and bodies can carry tokens and signatures.
        tracing::debug!(
            connection = %self.connection,
            method = %req.method,
            path = %req.path,
            status,
            ms = started.elapsed().as_millis() as u64,
            "call"
        );
        Ok(Reply {
            status,
            retry_after,
            body,
            text,
        })
    }

    async fn wait_for_rate_slot(&self) -> Result<(), FerryError> {
        let Some(rate) = self.rate_per_sec else {
            return Ok(());
        };
        let name = format!("conn:{}", self.connection);
        while let Some(wait) = self
            .state
            .take_rate_slot(&name, rate, Duration::from_secs(1))
            .await?
        {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// What went wrong on the way to `base` (the connection's base URL, its password hidden; never
/// the path or query, which can carry tokens). A refused connection to the sandbox's default
/// address says how to start it.
fn network_text(err: &reqwest::Error, base: &str) -> String {
    let base = ferry_core::error::redact_userinfo(base);
    let (what, hint) = if err.is_timeout() {
        (format!("timed out calling {base}"), "")
    } else if err.is_connect() {
        (
            format!("cannot connect to {base}"),
            ferry_core::error::refused_hint(&base),
        )
    } else {
        (format!("request to {base} failed"), "")
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        format!("{what}{hint}")
    } else {
        format!("{what}: {detail}{hint}")
    }
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/// How pages are asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Page numbers (`{PAGINATION_START_PAGE}`, from `pagination.start_page`, default 1).
    Page,
    /// Row offsets (`{PAGINATION_START_ROW}`, from 0).
    Offset,
    /// A next-page token found at `pagination.cursor_at`, sent back as `{cursor}` or as the
    /// `pagination.cursor_param` field.
    Cursor,
    /// One call.
    None,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "page" => Some(Mode::Page),
            "offset" => Some(Mode::Offset),
            "cursor" => Some(Mode::Cursor),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

/// How request fields travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    /// Every field goes in the query string.
    None,
}

/// What a connection kind assumes for an API when the scheme does not say.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub method: Method,
    pub body: BodyFormat,
    /// Fields sent in the query string even on a POST (Yida's `pageNumber`, `pageSize`).
    pub query_fields: Vec<String>,
    /// Fields sent as JSON text when they render to an object (Yida's `searchFieldJson`).
    pub json_text_fields: Vec<String>,
    pub records_at: Option<String>,
    pub mode: Option<Mode>,
    pub page_size: u64,
    /// The vendor's largest page; a bigger `pageSize` is a configuration error.
    pub max_page_size: Option<u64>,
    pub has_next_at: Option<String>,
    pub total_at: Option<String>,
    /// Lookups used when the scheme has no `lookups` key (OKKI's department names).
    pub lookups: Option<Value>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            method: Method::GET,
            body: BodyFormat::Json,
            query_fields: Vec::new(),
            json_text_fields: Vec::new(),
            records_at: None,
            mode: None,
            page_size: DEFAULT_PAGE_SIZE,
            max_page_size: None,
            has_next_at: None,
            total_at: None,
            lookups: None,
        }
    }
}

/// The resolved plan for one scheme's API: the vendor's defaults with the scheme's metadata on top.
#[derive(Clone, Debug)]
pub struct ApiSpec {
    pub method: Method,
    pub path: String,
    pub body: BodyFormat,
    pub query_fields: Vec<String>,
    pub json_text_fields: Vec<String>,
    /// JSON pointer to the records array (`""`: the whole body).
    pub records_at: String,
    pub mode: Mode,
    pub page_size: u64,
    pub start_page: u64,
    pub max_pages: u64,
    pub has_next_at: Option<String>,
    pub total_at: Option<String>,
    pub cursor_at: Option<String>,
    pub cursor_param: Option<String>,
    pub short_page_ends: bool,
    pub overlap: Duration,
    pub lookups: Vec<Lookup>,
}

fn config_at(path: &str, message: impl std::fmt::Display) -> FerryError {
    FerryError::config(format!("source.metadata.{path}: {message}"))
}

fn opt_text(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(config_at(path, format!("expected text, found {other}"))),
    }
}

fn opt_uint(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| config_at(path, format!("expected a whole number, found {v}"))),
    }
}

fn text_list(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    config_at(key, format!("expected a list of field names, found {v}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(config_at(
            key,
            format!("expected a list of field names, found {other}"),
        )),
    }
}

/// A JSON pointer as the scheme writes it: `/data/datas`; `/` and `` mean the whole body.
fn pointer(text: &str) -> String {
    let text = text.trim();
    if text == "/" {
        String::new()
    } else {
        text.to_string()
    }
}

impl ApiSpec {
    /// Resolve `metadata` over `defaults`; every mistake is a configuration error with its path.
    pub fn resolve(metadata: &Metadata, defaults: Defaults) -> Result<ApiSpec, FerryError> {
        let extra = &metadata.extra;
        let pagination = metadata.pagination.clone().unwrap_or_default();
        let pextra = &pagination.extra;
        let method = match metadata.method.as_deref().map(str::trim) {
            None | Some("") => defaults.method.clone(),
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                other => {
                    return Err(config_at(
                        "method",
                        format!("`{other}` is not GET, POST or PUT"),
                    ));
                }
            },
        };
        let body = match opt_text(extra, "body_format", "body_format")?.as_deref() {
            None => defaults.body,
            Some("json") => BodyFormat::Json,
            Some("form") => BodyFormat::Form,
            Some("none") => BodyFormat::None,
            Some(other) => {
                return Err(config_at(
                    "body_format",
                    format!("`{other}` is not json, form or none"),
                ));
            }
        };
        let path = metadata.api.trim().to_string();
        if path.is_empty() {
            return Err(config_at("api", "the API path is empty"));
        }
        if path.contains("://") {
            return Err(config_at(
                "api",
                "give a path under the connection's base_url, not a full URL",
            ));
        }
        let records_at = metadata
            .records_at
            .clone()
            .or(defaults.records_at)
            .map(|p| pointer(&p))
            .unwrap_or_default();
        if !records_at.is_empty() && !records_at.starts_with('/') {
            return Err(config_at(
                "records_at",
                format!("`{records_at}` is not a JSON pointer (write `/data/items`)"),
            ));
        }
        let cursor_at = opt_text(pextra, "cursor_at", "pagination.cursor_at")?.map(|p| pointer(&p));
        let request_text = serde_json::to_string(&metadata.request).unwrap_or_default();
        let mode = match pagination.mode.as_deref() {
            Some(text) => Mode::parse(text).ok_or_else(|| {
                config_at(
                    "pagination.mode",
                    format!("`{text}` is not an HTTP paging mode (page, offset, cursor, none)"),
                )
            })?,
            None => match defaults.mode {
                Some(mode) => mode,
                None if cursor_at.is_some() => Mode::Cursor,
                None if request_text.contains("PAGINATION_START_PAGE") => Mode::Page,
                None if request_text.contains("PAGINATION_START_ROW") => Mode::Offset,
                None => Mode::None,
            },
        };
        if mode == Mode::Cursor && cursor_at.is_none() {
            return Err(config_at(
                "pagination.cursor_at",
                "cursor paging needs the JSON pointer of the next-page token",
            ));
        }
        let page_size = pagination.page_size.unwrap_or(defaults.page_size);
        if page_size == 0 {
            return Err(config_at("pagination.pageSize", "must be at least 1"));
        }
        if let Some(max) = defaults.max_page_size
            && page_size > max
        {
            return Err(config_at(
                "pagination.pageSize",
                format!("{page_size} is more than the {max} records a page this API serves"),
            ));
        }
        let max_pages = pagination.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        if max_pages == 0 {
            return Err(config_at("pagination.max_pages", "must be at least 1"));
        }
        let short_page_ends = match pextra.get("short_page_ends") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(config_at(
                    "pagination.short_page_ends",
                    format!("expected true or false, found {other}"),
                ));
            }
        };
        let lookups = match extra.get("lookups").or(defaults.lookups.as_ref()) {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => Lookup::parse_all(value)?,
        };
        Ok(ApiSpec {
            method,
            path,
            body,
            query_fields: text_list(extra, "query_fields")?.unwrap_or(defaults.query_fields),
            json_text_fields: text_list(extra, "json_text_fields")?
                .unwrap_or(defaults.json_text_fields),
            records_at,
            mode,
            page_size,
            start_page: opt_uint(pextra, "start_page", "pagination.start_page")?.unwrap_or(1),
            max_pages,
            has_next_at: opt_text(pextra, "has_next_at", "pagination.has_next_at")?
                .or(defaults.has_next_at)
                .map(|p| pointer(&p)),
            total_at: opt_text(pextra, "total_at", "pagination.total_at")?
                .or(defaults.total_at)
                .map(|p| pointer(&p)),
            cursor_at,
            cursor_param: opt_text(pextra, "cursor_param", "pagination.cursor_param")?,
            short_page_ends,
            overlap: crate::overlap(metadata)?,
            lookups,
        })
    }

    /// Place the rendered request fields: query string or body. Unset (null) fields are not sent.
    pub fn build(&self, base: &str, fields: Map<String, Value>) -> Request {
        let mut req = Request::new(self.method.clone(), base, &self.path);
        let mut body = Map::new();
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            let value = if self.json_text_fields.contains(&key)
                && (value.is_object() || value.is_array())
            {
                Value::String(value.to_string())
            } else {
                value
            };
            let in_query = self.method == Method::GET
                || self.body == BodyFormat::None
                || self.query_fields.contains(&key);
            if in_query {
                req.query.push((key, value_text(&value)));
            } else {
                body.insert(key, value);
            }
        }
        req.body = match self.body {
            _ if self.method == Method::GET => Body::Empty,
            BodyFormat::None => Body::Empty,
            BodyFormat::Json => Body::Json(Value::Object(body)),
            BodyFormat::Form => Body::Form(
                body.iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect(),
            ),
        };
        req
    }
}

/// Whether a `has_next` value means "more": vendors send it as a bool, a number or a string.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "y" | "t"
        ),
        _ => false,
    }
}

fn as_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

/// One `lookups` entry: a field added to every record.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// `{"field", "from", "pick", "join"}`: the `pick` value of each element of the record's
    /// array `from`, as an array, or as text joined with `join`.
    Nested {
        field: String,
        from: String,
        pick: String,
        join: Option<String>,
    },
    /// `{"field", "api", "method", "records_at", "key", "value", "match"}`: a second call,
    /// made once per run, whose records form a table `key -> value`; the record's `match`
    /// field picks the row (null when there is none).
    Call {
        field: String,
        api: String,
        method: Method,
        records_at: String,
        key: String,
        value: String,
        matches: String,
    },
}

impl Lookup {
    fn parse_all(value: &Value) -> Result<Vec<Lookup>, FerryError> {
        let Value::Array(items) = value else {
            return Err(config_at("lookups", "expected a list of lookups"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Lookup::parse(item, &format!("lookups[{i}]")))
            .collect()
    }

    fn parse(item: &Value, path: &str) -> Result<Lookup, FerryError> {
        let Value::Object(map) = item else {
            return Err(config_at(path, "expected an object"));
        };
        let need = |key: &str| -> Result<String, FerryError> {
            opt_text(map, key, &format!("{path}.{key}"))?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| config_at(&format!("{path}.{key}"), "missing"))
        };
        let field = need("field")?;
        if map.contains_key("api") {
            let method = match opt_text(map, "method", &format!("{path}.method"))?
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase()
                .as_str()
            {
                "GET" => Method::GET,
                "POST" => Method::POST,
                other => {
                    return Err(config_at(
                        &format!("{path}.method"),
                        format!("`{other}` is not GET or POST"),
                    ));
                }
            };
            Ok(Lookup::Call {
                field,
                api: need("api")?,
                method,
                records_at: pointer(
                    &opt_text(map, "records_at", &format!("{path}.records_at"))?
                        .unwrap_or_default(),
                ),
                key: need("key")?,
                value: need("value")?,
                matches: need("match")?,
            })
        } else {
            Ok(Lookup::Nested {
                field,
                from: need("from")?,
                pick: need("pick")?,
                join: opt_text(map, "join", &format!("{path}.join"))?,
            })
        }
    }
}

/// Tables fetched by `Call` lookups, once per run.
type LookupTable = HashMap<String, Value>;

// ---------------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------------

/// Pages through one scheme's API for one run.
pub struct ApiSource {
    http: HttpClient,
    vendor: Arc<dyn Vendor>,
    base: String,
    spec: ApiSpec,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
    /// Record id paths, tried in order (Yida: `processInstanceId`, then `extend.processInstanceId`).
    id_paths: Vec<String>,
    tables: HashMap<usize, LookupTable>,
    pages: u64,
    offset: u64,
    cursor: Option<Value>,
    last_ids: Option<Vec<String>>,
    done: bool,
}

impl ApiSource {
    /// Open a run. `ctx` comes from the extractor with the overlap already applied.
    pub fn new(
        http: HttpClient,
        vendor: Arc<dyn Vendor>,
        base: &str,
        spec: ApiSpec,
        metadata: Arc<Metadata>,
        ctx: Context<'static>,
        id_paths: Vec<String>,
    ) -> ApiSource {
        ApiSource {
            http,
            vendor,
            base: base.to_string(),
            spec,
            metadata,
            ctx,
            id_paths,
            tables: HashMap::new(),
            pages: 0,
            offset: 0,
            cursor: None,
            last_ids: None,
            done: false,
        }
    }

    /// The spec this source follows.
    pub fn spec(&self) -> &ApiSpec {
        &self.spec
    }

    /// The context the requests render with (`{{LAST_SYNC_TIME}}`, `{{LAST_CURSOR}}`).
    pub fn context(&self) -> &Context<'static> {
        &self.ctx
    }

    fn request(&self) -> Result<Request, FerryError> {
        let page = PageVars {
            page_size: self.spec.page_size,
            start_row: self.offset,
            start_page: self.spec.start_page + self.pages,
        };
        let mut vars = Map::new();
        vars.insert("cursor".into(), self.cursor.clone().unwrap_or(Value::Null));
        let ctx = self.ctx.with_page(page).with_vars(&vars);
        let mut fields = render_tree(&self.metadata.request, &ctx)
            .map_err(|e| config_at("request", e.to_string()))?;
        if let (Some(param), Some(cursor)) = (&self.spec.cursor_param, &self.cursor) {
            fields.insert(param.clone(), cursor.clone());
        }
        Ok(self.spec.build(&self.base, fields))
    }

    fn id_of(&self, data: &Value) -> String {
        self.id_paths
            .iter()
            .find_map(|path| record_id(data, Some(path)).filter(|id| !id.is_empty()))
            .unwrap_or_default()
    }

    async fn enrich(&mut self, record: &mut Value) -> Result<(), FerryError> {
        for index in 0..self.spec.lookups.len() {
            let lookup = self.spec.lookups[index].clone();
            let (field, value) = match &lookup {
                Lookup::Nested {
                    field,
                    from,
                    pick,
                    join,
                } => {
                    let picked: Vec<Value> = lookup_path(record, from)
                        .and_then(Value::as_array)
                        .map(|items| {
                            items
                                .iter()
                                .filter_map(|item| lookup_path(item, pick).cloned())
                                .filter(|v| !v.is_null())
                                .collect()
                        })
                        .unwrap_or_default();
                    let value = match join {
                        Some(sep) => Value::String(
                            picked.iter().map(value_text).collect::<Vec<_>>().join(sep),
                        ),
                        None => Value::Array(picked),
                    };
                    (field.clone(), value)
                }
                Lookup::Call { field, matches, .. } => {
                    if !self.tables.contains_key(&index) {
                        let table = self.fetch_table(&lookup).await?;
                        self.tables.insert(index, table);
                    }
                    let key = lookup_path(record, matches).map(value_text);
                    let value = key
                        .and_then(|k| self.tables.get(&index).and_then(|t| t.get(&k)).cloned())
                        .unwrap_or(Value::Null);
                    (field.clone(), value)
                }
            };
            if let Some(map) = record.as_object_mut() {
                map.insert(field, value);
            }
        }
        Ok(())
    }

    async fn fetch_table(&self, lookup: &Lookup) -> Result<LookupTable, FerryError> {
        let Lookup::Call {
            api,
            method,
            records_at,
            key,
            value,
            ..
        } = lookup
        else {
            return Ok(LookupTable::new());
        };
        let req = Request::new(method.clone(), &self.base, api);
        let reply = self.http.call(self.vendor.as_ref(), &req).await?;
        let items = items_at(&reply, records_at, "lookups.records_at")?;
        let mut table = LookupTable::new();
        for item in items {
            let item = self.vendor.shape(item);
            if let Some(k) = lookup_path(&item, key) {
                table.insert(
                    value_text(k),
                    lookup_path(&item, value).cloned().unwrap_or(Value::Null),
                );
            }
        }
        tracing::debug!(connection = %self.http.connection(), api = %api, rows = table.len(), "lookup table fetched");
        Ok(table)
    }
}

fn lookup_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    lookup(value, path)
}

/// The records of a reply at `pointer`: an array; null or missing is an empty page.
fn items_at(reply: &Reply, pointer: &str, key: &str) -> Result<Vec<Value>, FerryError> {
    match reply.body.pointer(pointer) {
        None | Some(Value::Null) => {
            if reply.body.is_null() && !reply.text.trim().is_empty() {
                return Err(config_at(
                    key,
                    format!("the answer is not JSON: {}", reply.quoted()),
                ));
            }
            Ok(Vec::new())
        }
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(config_at(
            key,
            format!(
                "`{pointer}` is not an array of records in the answer; set records_at to the JSON pointer of the records (answer: {})",
                reply.quoted()
            ),
        )),
    }
}

#[async_trait]
impl Source for ApiSource {
    async fn next_page(&mut self) -> Result<Option<Page>, FerryError> {
        if self.done {
            return Ok(None);
        }
        if self.pages >= self.spec.max_pages {
            return Err(config_at(
                "pagination.max_pages",
                format!(
                    "stopped after {} pages and the API still has more; raise max_pages, or check that the paging parameters reach the API",
                    self.spec.max_pages
                ),
            ));
        }
        let req = self.request()?;
        let reply = self.http.call(self.vendor.as_ref(), &req).await?;
        self.vendor.on_page(&self.http, &reply).await?;
        let items = items_at(&reply, &self.spec.records_at, "records_at")?;
        let n = items.len() as u64;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let mut data = self.vendor.shape(item);
            self.enrich(&mut data).await?;
            let id = self.id_of(&data);
            records.push(Record::new(id, data));
        }
        self.pages += 1;
        self.offset += n;

        // A paging parameter that never reaches the API gives the same page over and over.
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        if n > 0
            && self.spec.mode != Mode::None
            && ids.iter().all(|id| !id.is_empty())
            && self.last_ids.as_ref() == Some(&ids)
        {
            // Some APIs answer every page past the end with the last one: after a short page,
            // the same page again is the end, not a paging mistake.
            if matches!(self.spec.mode, Mode::Page | Mode::Offset) && n < self.spec.page_size {
                self.pages -= 1;
                self.offset -= n;
                self.done = true;
                return Ok(None);
            }
            return Err(config_at(
                "pagination",
                format!(
                    "page {} repeats the previous page exactly; the paging parameters do not reach the API",
                    self.pages
                ),
            ));
        }
        self.last_ids = Some(ids);

        // Servers may serve fewer records than asked (a page size they clamp): a short page
        // ends the run only when the scheme says the API never does that. Otherwise the
        // configured signal (has_next, total, next cursor) decides, and without one the next
        // page is asked for until one comes back empty.
        let mut done = n == 0 || self.spec.mode == Mode::None;
        if matches!(self.spec.mode, Mode::Page | Mode::Offset)
            && self.spec.short_page_ends
            && n < self.spec.page_size
        {
            done = true;
        }
        if let Some(at) = &self.spec.has_next_at
            && let Some(flag) = reply.body.pointer(at)
            && !truthy(flag)
        {
            done = true;
        }
        if let Some(at) = &self.spec.total_at
            && let Some(total) = reply.body.pointer(at).and_then(as_count)
            && self.offset >= total
        {
            done = true;
        }
        if self.spec.mode == Mode::Cursor {
            let next = self
                .spec
                .cursor_at
                .as_deref()
                .and_then(|at| reply.body.pointer(at))
                .filter(|v| !v.is_null() && !value_text(v).is_empty())
                .cloned();
            match next {
                None => done = true,
                Some(next) if Some(&next) == self.cursor.as_ref() => {
                    return Err(config_at(
                        "pagination.cursor_at",
                        format!(
                            "the API gave the same next cursor twice ({}); stopping instead of looping",
                            value_text(&next)
                        ),
                    ));
                }
                Some(next) => self.cursor = Some(next),
            }
        }
        self.done = done;
        if records.is_empty() {
            return Ok(None);
        }
        let cursor = json!({
            "page": self.spec.start_page + self.pages - 1,
            "offset": self.offset,
            "cursor": self.cursor.clone().unwrap_or(Value::Null),
            "done": self.done,
        });
        Ok(Some(Page {
            records,
            cursor: Some(cursor),
            rejected: Vec::new(),
        }))
    }

    /// `{"page", "offset", "cursor", "done"}` as `next_page` writes them: the page number, rows
    /// and next-page token after the last confirmed page, and whether that page was the last.
    fn resume_at(&mut self, cursor: &Value) -> Result<(), FerryError> {
        let (Some(page), Some(offset)) = (
            cursor.get("page").and_then(Value::as_u64),
            cursor.get("offset").and_then(Value::as_u64),
        ) else {
            return Err(crate::foreign_cursor(cursor));
        };
        self.pages = (page + 1).saturating_sub(self.spec.start_page);
        self.offset = offset;
        self.cursor = cursor.get("cursor").filter(|v| !v.is_null()).cloned();
        self.done = cursor.get("done").and_then(Value::as_bool).unwrap_or(false);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The generic `http` kind
// ---------------------------------------------------------------------------------------------

/// The vendor of `kind = "http"`: the connection's headers on every call; HTTP status codes
/// decide, plus, when the scheme sets `code_at`, a code in the body (`ok_codes`, default 0 and
/// 200; `message_at` points at the message shown with a bad code).
pub struct Plain {
    headers: Vec<(String, String)>,
    code_at: Option<String>,
    ok_codes: Vec<String>,
    message_at: Option<String>,
}

/// Open a source of `kind = "http"` for one run.
pub fn open(
    conn: &HttpConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn crate::Source>, FerryError> {
    let vendor = Arc::new(Plain::new(conn, &metadata)?);
    crate::vendors::api_source(
        http,
        vendor,
        &conn.base_url,
        &metadata,
        Defaults::default(),
        ctx,
    )
}

impl Plain {
    pub fn new(conn: &HttpConnection, metadata: &Metadata) -> Result<Plain, FerryError> {
        let extra = &metadata.extra;
        let ok_codes = match extra.get("ok_codes") {
            None | Some(Value::Null) => vec!["0".to_string(), "200".to_string()],
            Some(Value::Array(items)) => items.iter().map(value_text).collect(),
            Some(other) => vec![value_text(other)],
        };
        Ok(Plain {
            headers: conn
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            code_at: opt_text(extra, "code_at", "code_at")?.map(|p| pointer(&p)),
            ok_codes,
            message_at: opt_text(extra, "message_at", "message_at")?.map(|p| pointer(&p)),
        })
    }
}

#[async_trait]
impl Vendor for Plain {
    fn label(&self) -> &'static str {
        "the API"
    }

    async fn prepare(&self, _http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        for (name, value) in &self.headers {
            req.header(name, value.clone());
        }
        Ok(())
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        if let Some(verdict) = judge_status(reply, self.label()) {
            return verdict;
        }
        if matches!(reply.status, 401 | 403) {
            return Verdict::Config(format!(
                "the API refused the credentials (HTTP {}): {}",
                reply.status,
                reply.quoted()
            ));
        }
        if !reply.is_success() {
            return Verdict::Config(format!(
                "the API answered HTTP {}: {}",
                reply.status,
                reply.quoted()
            ));
        }
        if let Some(at) = &self.code_at {
            let code = reply.body.pointer(at).map(value_text).unwrap_or_default();
            if !self.ok_codes.contains(&code) {
                let message = self
                    .message_at
                    .as_deref()
                    .and_then(|p| reply.body.pointer(p))
                    .map(value_text)
                    .unwrap_or_else(|| reply.quoted());
                return Verdict::Config(format!("the API answered code {code}: {message}"));
            }
        }
        Verdict::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: Value) -> Metadata {
        serde_json::from_value(json).unwrap()
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }

    #[test]
    fn truthy_accepts_bool_number_and_string() {
        for yes in [
            json!(true),
            json!(1),
            json!("true"),
            json!("1"),
            json!("True"),
        ] {
            assert!(truthy(&yes), "{yes}");
        }
        for no in [
            json!(false),
            json!(0),
            json!("false"),
            json!("0"),
            json!(""),
            json!(null),
        ] {
            assert!(!truthy(&no), "{no}");
        }
    }

    #[test]
    fn mode_is_inferred_from_the_request_templates() {
        let page = metadata(json!({"api": "/x", "request": [
            {"field": "p", "value": "{PAGINATION_START_PAGE}"}]}));
        assert_eq!(
            ApiSpec::resolve(&page, Defaults::default()).unwrap().mode,
            Mode::Page
        );
        let offset = metadata(json!({"api": "/x", "request": [
            {"field": "o", "value": "{PAGINATION_START_ROW}"}]}));
        assert_eq!(
            ApiSpec::resolve(&offset, Defaults::default()).unwrap().mode,
            Mode::Offset
        );
        let cursor = metadata(json!({"api": "/x", "pagination": {"cursor_at": "/next"}}));
        assert_eq!(
            ApiSpec::resolve(&cursor, Defaults::default()).unwrap().mode,
            Mode::Cursor
        );
        let none = metadata(json!({"api": "/x"}));
        assert_eq!(
            ApiSpec::resolve(&none, Defaults::default()).unwrap().mode,
            Mode::None
        );
    }

    #[test]
    fn spec_errors_name_the_key() {
        let bad = metadata(json!({"api": "/x", "pagination": {"mode": "pages"}}));
        assert_eq!(
            ApiSpec::resolve(&bad, Defaults::default())
                .unwrap_err()
                .to_string(),
            "source.metadata.pagination.mode: `pages` is not an HTTP paging mode (page, offset, cursor, none)"
        );
        let big = metadata(json!({"api": "/x", "pagination": {"pageSize": 200}}));
        let defaults = Defaults {
            max_page_size: Some(100),
            ..Defaults::default()
        };
        assert_eq!(
            ApiSpec::resolve(&big, defaults).unwrap_err().to_string(),
            "source.metadata.pagination.pageSize: 200 is more than the 100 records a page this API serves"
        );
        let cursor = metadata(json!({"api": "/x", "pagination": {"mode": "cursor"}}));
        assert_eq!(
            ApiSpec::resolve(&cursor, Defaults::default())
                .unwrap_err()
                .to_string(),
            "source.metadata.pagination.cursor_at: cursor paging needs the JSON pointer of the next-page token"
        );
        let url = metadata(json!({"api": "https://evil.example/x"}));
        assert!(
            ApiSpec::resolve(&url, Defaults::default())
                .unwrap_err()
                .to_string()
                .starts_with("source.metadata.api: give a path")
        );
        let lookups = metadata(json!({"api": "/x", "lookups": [{"field": "a", "from": "b"}]}));
        assert_eq!(
            ApiSpec::resolve(&lookups, Defaults::default())
                .unwrap_err()
                .to_string(),
            "source.metadata.lookups[0].pick: missing"
        );
    }

    #[test]
    fn overlap_defaults_and_both_keys_work() {
        let plain = metadata(json!({"api": "/x"}));
        assert_eq!(
            ApiSpec::resolve(&plain, Defaults::default())
                .unwrap()
                .overlap,
            Duration::from_secs(crate::DEFAULT_SYNC_OVERLAP_SECS)
        );
        let top = metadata(json!({"api": "/x", "sync_overlap_secs": 60}));
        assert_eq!(
            ApiSpec::resolve(&top, Defaults::default()).unwrap().overlap,
            Duration::from_secs(60)
        );
        let paged = metadata(json!({"api": "/x", "pagination": {"overlap_secs": "0"}}));
        assert_eq!(
            ApiSpec::resolve(&paged, Defaults::default())
                .unwrap()
                .overlap,
            Duration::ZERO
        );
    }

    #[test]
    fn build_places_fields_in_query_and_body() {
        let md = metadata(json!({"api": "v1/items", "method": "POST"}));
        let spec = ApiSpec::resolve(
            &md,
            Defaults {
                query_fields: vec!["pageNumber".into()],
                json_text_fields: vec!["search".into()],
                ..Defaults::default()
            },
        )
        .unwrap();
        let fields: Map<String, Value> = serde_json::from_value(json!({
            "pageNumber": 2, "search": {"a": "是"}, "skip": null, "name": "张三"
        }))
        .unwrap();
        let req = spec.build("http://h/base/", fields);
        assert_eq!(req.url(), "http://h/base/v1/items");
        assert_eq!(req.query, vec![("pageNumber".to_string(), "2".to_string())]);
        assert_eq!(
            req.body,
            Body::Json(json!({"search": "{\"a\":\"是\"}", "name": "张三"}))
        );

        let get = metadata(json!({"api": "/list", "method": "get"}));
        let spec = ApiSpec::resolve(&get, Defaults::default()).unwrap();
        let fields: Map<String, Value> =
            serde_json::from_value(json!({"now": "2024-01-01 00:00:00", "code": null})).unwrap();
        let req = spec.build("http://h", fields);
        assert_eq!(
            req.query,
            vec![("now".to_string(), "2024-01-01 00:00:00".to_string())]
        );
        assert_eq!(req.body, Body::Empty);

        let form = metadata(json!({"api": "/f", "method": "POST", "body_format": "form"}));
        let spec = ApiSpec::resolve(&form, Defaults::default()).unwrap();
        let fields: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": "x"})).unwrap();
        assert_eq!(
            spec.build("http://h", fields).body,
            Body::Form(vec![("a".into(), "1".into()), ("b".into(), "x".into())])
        );
    }

    #[test]
    fn plain_judges_status_and_body_codes() {
        let conn = HttpConnection {
            base_url: "http://h".into(),
            headers: Default::default(),
            timeout_secs: 30,
            rate_per_sec: None,
        };
        let md = metadata(json!({"api": "/x", "code_at": "/code", "message_at": "/msg"}));
        let plain = Plain::new(&conn, &md).unwrap();
        assert_eq!(plain.judge(&reply(200, json!({"code": 0}))), Verdict::Ok);
        assert_eq!(
            plain.judge(&reply(200, json!({"code": 7, "msg": "参数错误"}))),
            Verdict::Config("the API answered code 7: 参数错误".into())
        );
        assert!(matches!(
            plain.judge(&reply(503, json!({}))),
            Verdict::Retry { .. }
        ));
        let mut throttled = reply(429, json!({}));
        throttled.retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            plain.judge(&throttled),
            Verdict::Retry {
                message: "the API answered HTTP 429: {}".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            plain.judge(&reply(401, json!({"error": "bad"}))),
            Verdict::Config(
                "the API refused the credentials (HTTP 401): {\"error\":\"bad\"}".into()
            )
        );
    }

    #[test]
    fn items_at_reads_pointer_and_refuses_non_arrays() {
        let r = reply(200, json!({"data": {"datas": [{"a": 1}]}}));
        assert_eq!(
            items_at(&r, "/data/datas", "records_at").unwrap(),
            vec![json!({"a": 1})]
        );
        assert_eq!(
            items_at(&r, "/data/none", "records_at").unwrap(),
            Vec::<Value>::new()
        );
        let err = items_at(&r, "/data", "records_at").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("source.metadata.records_at: `/data` is not an array"),
            "{err}"
        );
    }

    #[test]
    fn lookups_parse_both_forms() {
        let list = json!([
            {"field": "department_names", "from": "departments", "pick": "department_name", "join": ","},
            {"field": "boss", "api": "/v1/user/list", "records_at": "/data", "key": "user_id", "value": "nickname", "match": "user_id"}
        ]);
        let parsed = Lookup::parse_all(&list).unwrap();
        assert_eq!(
            parsed[0],
            Lookup::Nested {
                field: "department_names".into(),
                from: "departments".into(),
                pick: "department_name".into(),
                join: Some(",".into())
            }
        );
        assert!(
            matches!(&parsed[1], Lookup::Call { method, records_at, .. } if *method == Method::GET && records_at == "/data")
        );
    }
}

/// Calls sent again after a transient failure (throttling, 5xx, network), per connection, since
/// the process started: the binary's `/metrics` shows them as `ferry_source_retries_total`.
static CALL_RETRIES: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count_retry(connection: &str) {
    if let Ok(mut retries) = CALL_RETRIES.lock() {
        *retries.entry(connection.to_string()).or_default() += 1;
    }
}

/// How many calls each connection has sent again, by connection name.
pub fn call_retries() -> Vec<(String, u64)> {
    CALL_RETRIES
        .lock()
        .map(|retries| retries.iter().map(|(c, n)| (c.clone(), *n)).collect())
        .unwrap_or_default()
}
