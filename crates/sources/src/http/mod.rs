//! HTTP sources: the client every vendor kind shares, the paginator, and the generic `http` kind.
//!
//! # Layout
//! From the wire up; a new HTTP vendor (`crate::vendors`) reuses all of it and brings only its
//! [`Vendor`] and its [`Defaults`]:
//!
//! - `client`: [`HttpClient::call`] sends one logical request through a [`Vendor`] (sign,
//!   rate-limit slot, send, judge the answer as a [`Verdict`], retry with backoff, renew the
//!   token once).
//! - `vendor`: what a kind brings to the client: [`Vendor`], [`Verdict`] and the shared starts
//!   of a judge ([`judge_status`], [`judge_http`]).
//! - `spec`: the scheme's source metadata resolved over the kind's [`Defaults`] into an
//!   [`ApiSpec`] (method, path, where fields travel, where records are, how pages are asked for).
//! - `paginator`: [`ApiSource`] pages through one scheme's API for one run (page, offset,
//!   cursor, `has_next`, totals, and the guards against a paging mistake looping forever).
//! - `lookups`: fields added to every record from a nested array or a second call.
//! - here: [`Plain`], the vendor of the generic `http` kind (fixed headers, HTTP status codes
//!   and an optional `code` field in the body), and its [`open`].
//!
//! The extractor moves `LAST_SYNC_TIME` back by the overlap (see [`crate::overlap`]) for every
//! source kind. The README's connection reference lists every metadata key.

mod client;
mod lookups;
mod paginator;
mod spec;
#[cfg(test)]
mod tests;
mod vendor;

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::FerryError;
use ferry_core::config::HttpConnection;
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::template::Context;

pub use client::{
    Body, CALL_ATTEMPTS, HttpClient, MAX_RETRY_AFTER_SECS, RETRY_MAX_DELAY_MS, RETRY_MIN_DELAY_MS,
    Reply, Request, call_retries,
};
pub use paginator::{ApiSource, truthy};
pub use spec::{ApiSpec, BodyFormat, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, Defaults, Lookup, Mode};
pub use vendor::{Unsigned, Vendor, Verdict, judge_http, judge_status};

use ferry_core::connector::http::HttpSourceOptions;
use spec::config_problems;

/// The vendor of `kind = "http"`: the connection's headers on every call; HTTP status codes
/// decide, plus, when the scheme sets `code_at`, a code in the body (`ok_codes`, default 0 and
/// 200; `message_at` points at the message shown with a bad code).
pub struct Plain {
    headers: Vec<(String, String)>,
    code_at: Option<String>,
    ok_codes: Vec<String>,
    message_at: Option<String>,
    /// The connection's token, when it has a `[token]` table.
    token: Option<crate::token::SpecToken>,
}

/// Open a source of `kind = "http"` for one run: its options are parsed once, here, with the
/// parse `ferry lint` runs, and carried typed from then on.
pub fn open(
    conn: &HttpConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn crate::Source>, FerryError> {
    crate::vendors::check_base_url(&http, &conn.base_url)?;
    let options = HttpSourceOptions::parse(&metadata).map_err(config_problems)?;
    let token = match &conn.token {
        Some(spec) => Some(crate::token::SpecToken::new(
            http.connection(),
            &conn.base_url,
            spec,
            http.state().clone(),
            crate::vendors::shared_client()?,
            std::time::Duration::from_secs(conn.timeout_secs),
        )),
        None => None,
    };
    let vendor = Arc::new(Plain::from_options(conn, &options).with_token(token));
    let spec = ApiSpec::from_options(&options.api, &metadata, Defaults::default())?;
    let ids = crate::vendors::id_paths(&metadata);
    crate::vendors::open_spec(http, vendor, &conn.base_url, spec, &metadata, ctx, ids)
}

impl Plain {
    /// The vendor for `metadata`'s options; a configuration error names each bad one.
    pub fn new(conn: &HttpConnection, metadata: &Metadata) -> Result<Plain, FerryError> {
        let options = HttpSourceOptions::parse(metadata).map_err(config_problems)?;
        Ok(Plain::from_options(conn, &options))
    }

    /// The vendor for options parsed already.
    pub fn from_options(conn: &HttpConnection, options: &HttpSourceOptions) -> Plain {
        Plain {
            headers: conn
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            code_at: options.code_at.clone(),
            ok_codes: options.ok_codes.clone(),
            message_at: options.message_at.clone(),
            token: None,
        }
    }

    /// Send `token`'s header with every call; a 401 then renews it once.
    pub fn with_token(self, token: Option<crate::token::SpecToken>) -> Plain {
        Plain { token, ..self }
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
        if let Some(token) = &self.token {
            let (name, value) = token.header().await?;
            req.header(&name, value);
        }
        Ok(())
    }

    async fn renew_token(&self, _http: &HttpClient) -> Result<(), FerryError> {
        match &self.token {
            Some(token) => token.forget().await,
            None => Ok(()),
        }
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        if let Some(verdict) = judge_status(reply, self.label()) {
            return verdict;
        }
        if reply.status == 401 && self.token.is_some() {
            return Verdict::Reauth {
                message: format!("the API refused the token (HTTP 401): {}", reply.quoted()),
            };
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
