//! What a connection kind brings to the shared client: a [`Vendor`] authorises and signs each
//! attempt, judges each answer as a [`Verdict`], renews a refused token, and may shape records.
//! A judge starts from [`judge_status`] (throttling and 5xx are retried, whoever the vendor) or
//! [`judge_http`] (and any other non-2xx stops the scheme); `crate::vendors::okki` is the model.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::FerryError;
use serde_json::Value;

use super::client::{HttpClient, Reply, Request};

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
