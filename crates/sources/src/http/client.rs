//! The HTTP client every API source shares, and the vocabulary a vendor speaks to it.
//!
//! [`HttpClient::call`] sends one logical request: it asks the connection's [`Vendor`] to
//! authorise and sign it (afresh on every attempt, since signatures carry timestamps), waits for
//! a slot of the connection's rate limit (shared by every replica through the state database),
//! sends it with the connection's timeout, and lets the vendor judge the answer ([`Verdict`]):
//! done, retry (throttling, 5xx, timeouts: exponential backoff that honours `Retry-After` and the
//! vendor's own windows), renew the token once and try again, or fail at once. A configuration
//! failure (bad credentials or signature) is never retried, so a wrong secret costs one or two
//! calls, not a retry storm. Every retry is counted per connection ([`call_retries`]).
//!
//! A new HTTP vendor implements [`Vendor`] (in `vendor.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, ExponentialBuilder, Retryable};
use ferry_core::FerryError;
use ferry_core::record::value_text;
use ferry_state::State;
use reqwest::Method;
use serde_json::Value;

use super::vendor::{Vendor, Verdict};

/// Attempts at one call before a retryable failure is handed to the extractor (which backs off
/// and asks for the page again).
pub const CALL_ATTEMPTS: usize = 5;
/// First pause between attempts; it doubles up to [`RETRY_MAX_DELAY_MS`].
pub const RETRY_MIN_DELAY_MS: u64 = 200;
/// Longest pause between attempts chosen by the backoff itself.
pub const RETRY_MAX_DELAY_MS: u64 = 10_000;
/// Longest `Retry-After` honoured; a larger hint is cut to this (the extractor retries later).
pub const MAX_RETRY_AFTER_SECS: u64 = 120;
/// The window of a connection's `rate_per_sec` limit.
const RATE_WINDOW_SECS: u64 = 1;
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
    ///
    /// The schedule is `retry_policy`'s: a retryable failure waits the backoff's delay, or the
    /// service's hint (`Retry-After`, a vendor's window, at most [`MAX_RETRY_AFTER_SECS`]) when
    /// that is longer; after [`CALL_ATTEMPTS`] attempts the failure goes to the extractor as
    /// transient, with the hint. A refused token is renewed and the call sent again at once,
    /// once per call, without spending an attempt.
    pub async fn call(&self, vendor: &dyn Vendor, req: &Request) -> Result<Reply, FerryError> {
        let renewed = AtomicBool::new(false);
        let renewed = &renewed;
        let outcome = (move || self.attempt(vendor, req, renewed))
            .retry(retry_policy(self.attempts))
            .when(|failure| matches!(failure, Failure::Retry { .. }))
            .adjust(|failure, delay| match failure {
                Failure::Retry {
                    retry_after: Some(hint),
                    ..
                } => delay.map(|delay| delay.max(*hint)),
                _ => delay,
            })
            .notify(|failure, delay| {
                if let Failure::Retry { message, .. } = failure {
                    count_retry(&self.connection);
                    tracing::warn!(
                        connection = %self.connection,
                        path = %req.path,
                        error = %message,
                        delay_ms = delay.as_millis() as u64,
                        "call failed; retrying"
                    );
                }
            })
            .await;
        match outcome {
            Ok(reply) => Ok(reply),
            Err(Failure::Stop(err)) => Err(err),
            Err(Failure::Retry {
                message,
                retry_after,
            }) => Err(FerryError::Transient {
                message: self.error_text(&format!(
                    "{message} (gave up after {} attempts)",
                    self.attempts
                )),
                retry_after,
            }),
        }
    }

    /// One attempt of [`HttpClient::call`]: sign, take a rate slot, send, judge. A refused token
    /// is renewed and the request sent again within the attempt, unless `renewed` says this call
    /// renewed it already.
    async fn attempt(
        &self,
        vendor: &dyn Vendor,
        req: &Request,
        renewed: &AtomicBool,
    ) -> Result<Reply, Failure> {
        loop {
            let mut signed = req.clone();
            vendor
                .prepare(self, &mut signed)
                .await
                .map_err(Failure::Stop)?;
            self.wait_for_rate_slot().await.map_err(Failure::Stop)?;
            let reply = match self.send_once(&signed).await {
                Ok(reply) => reply,
                Err(message) => {
                    return Err(Failure::Retry {
                        message,
                        retry_after: None,
                    });
                }
            };
            match vendor.judge(&reply) {
                Verdict::Ok => return Ok(reply),
                Verdict::Config(message) => {
                    return Err(Failure::Stop(FerryError::config(self.error_text(&message))));
                }
                Verdict::Reauth { message } if renewed.swap(true, Ordering::Relaxed) => {
                    return Err(Failure::Stop(FerryError::config(self.error_text(
                        &format!(
                            "{message} (refused again with a new token; check the credentials)"
                        ),
                    ))));
                }
                Verdict::Reauth { message } => {
                    tracing::info!(connection = %self.connection, reason = %message, "token refused; renewing it");
                    vendor.renew_token(self).await.map_err(Failure::Stop)?;
                }
                Verdict::Retry {
                    message,
                    retry_after,
                } => {
                    return Err(Failure::Retry {
                        message,
                        retry_after: retry_after
                            .map(|hint| hint.min(Duration::from_secs(MAX_RETRY_AFTER_SECS))),
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

    /// Wait for a slot of the connection's rate limit: a full limiter says how long until its
    /// next slot; wait that long and ask again, for as long as it takes.
    async fn wait_for_rate_slot(&self) -> Result<(), FerryError> {
        let Some(rate) = self.rate_per_sec else {
            return Ok(());
        };
        let name = format!("conn:{}", self.connection);
        let name = name.as_str();
        let take = move || async move {
            match self
                .state
                .take_rate_slot(name, rate, Duration::from_secs(RATE_WINDOW_SECS))
                .await
            {
                Ok(None) => Ok(()),
                Ok(Some(wait)) => Err(Slot::Busy(wait)),
                Err(err) => Err(Slot::Failed(err.into())),
            }
        };
        take.retry(ConstantBuilder::default().without_max_times())
            .when(|slot| matches!(slot, Slot::Busy(_)))
            .adjust(|slot, _| match slot {
                Slot::Busy(wait) => Some(*wait),
                Slot::Failed(_) => None,
            })
            .await
            .map_err(|slot| match slot {
                Slot::Failed(err) => err,
                // Not reached: a busy limiter is always waited for.
                Slot::Busy(wait) => FerryError::Transient {
                    message: self.error_text("the rate limiter stayed full"),
                    retry_after: Some(wait),
                },
            })
    }
}

/// The retry schedule of one call of `attempts` attempts: exponential from
/// [`RETRY_MIN_DELAY_MS`] up to [`RETRY_MAX_DELAY_MS`], with jitter.
pub(super) fn retry_policy(attempts: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(RETRY_MIN_DELAY_MS))
        .with_max_delay(Duration::from_millis(RETRY_MAX_DELAY_MS))
        .with_max_times(attempts.saturating_sub(1))
        .with_jitter()
}

/// Why one attempt did not end in a reply the vendor accepts.
enum Failure {
    /// Worth sending again, after at least `retry_after` (already capped).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Not worth sending again: the caller gets this error as it is.
    Stop(FerryError),
}

/// A look at the connection's rate limiter that found no slot.
enum Slot {
    /// Full: the next slot frees after this long.
    Busy(Duration),
    /// The state database failed.
    Failed(FerryError),
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
