//! Vendor connection kinds as sources: one module per vendor, each a [`Vendor`] (auth, signing,
//! error codes) plus the paging defaults of its APIs, all running on the shared
//! [`ApiSource`] paginator (`crate::http`).
//!
//! - [`dingtalk`]: DingTalk open API (cached access token) and Yida process instances.
//! - [`jushuitan`]: Jushuitan ERP (MD5-signed form posts, `has_next` paging, refresh token).
//! - [`okki`]: OKKI CRM (client-credentials bearer token, department lookups).
//! - [`kingdee`]: Kingdee cloud accounting (gateway signatures, app authorisation and token).
//!
//! Each vendor module's `open` turns its connection from `ferry.toml` and a scheme's source
//! metadata into a [`Source`]; the `ferry` binary's registry calls it for the vendor's kind.

pub mod dingtalk;
pub mod jushuitan;
pub mod kingdee;
pub mod okki;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferry_core::FerryError;
use ferry_core::scheme::Metadata;
use ferry_core::template::Context;

use serde_json::Value;

use crate::Source;
use crate::http::{
    ApiSource, ApiSpec, Defaults, HttpClient, Reply, Request, Unsigned, Vendor, Verdict,
};
use crate::token::Token;

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// The process's HTTP client (connection pools are shared by every connection; timeouts are set
/// per request). Needs a rustls crypto provider installed first, as `ferry`'s `main` does.
pub fn shared_client() -> Result<reqwest::Client, FerryError> {
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FerryError::config(format!("cannot build the HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// The shared paginator over `vendor`, with the record id taken from the metadata's `id`.
pub(crate) fn api_source(
    http: HttpClient,
    vendor: Arc<dyn Vendor>,
    base_url: &str,
    metadata: &Arc<Metadata>,
    defaults: Defaults,
    ctx: Context<'static>,
) -> Result<Box<dyn Source>, FerryError> {
    api_source_with_ids(
        http,
        vendor,
        base_url,
        metadata,
        defaults,
        ctx,
        id_paths(metadata),
    )
}

pub(crate) fn api_source_with_ids(
    http: HttpClient,
    vendor: Arc<dyn Vendor>,
    base_url: &str,
    metadata: &Arc<Metadata>,
    defaults: Defaults,
    ctx: Context<'static>,
    ids: Vec<String>,
) -> Result<Box<dyn Source>, FerryError> {
    check_base_url(&http, base_url)?;
    let spec = ApiSpec::resolve(metadata, defaults)?;
    open_spec(http, vendor, base_url, spec, metadata, ctx, ids)
}

/// A connection without a base URL cannot open a source.
pub(crate) fn check_base_url(http: &HttpClient, base_url: &str) -> Result<(), FerryError> {
    if base_url.trim().is_empty() {
        return Err(FerryError::config(format!(
            "connection `{}`: base_url is empty",
            http.connection()
        )));
    }
    Ok(())
}

/// The shared paginator over `vendor`, following a resolved `spec` (the base URL checked).
pub(crate) fn open_spec(
    http: HttpClient,
    vendor: Arc<dyn Vendor>,
    base_url: &str,
    spec: ApiSpec,
    metadata: &Arc<Metadata>,
    ctx: Context<'static>,
    ids: Vec<String>,
) -> Result<Box<dyn Source>, FerryError> {
    Ok(Box::new(ApiSource::new(
        http,
        vendor,
        base_url,
        spec,
        Arc::clone(metadata),
        ctx,
        ids,
    )))
}

/// Where a record's id is: the metadata's `id` (a dotted path is fine).
pub(crate) fn id_paths(metadata: &Metadata) -> Vec<String> {
    metadata
        .id
        .iter()
        .filter(|id| !id.trim().is_empty())
        .cloned()
        .collect()
}

/// `code (message)` from whatever the vendor put in its error body, for messages.
pub(crate) fn code_and_message(code: Option<String>, message: Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (None, None) => "no error text".to_string(),
    }
}

/// Whether the scheme's `api` path ends with `suffix` (with or without a trailing slash): how a
/// vendor tells its special endpoints (Yida, OKKI's user list, Kingdee's authorisation) apart.
pub(crate) fn api_ends_with(api: &str, suffix: &str) -> bool {
    api.trim().trim_end_matches('/').ends_with(suffix)
}

/// Where a vendor's token endpoint puts the token and its lifetime in a JSON answer (DingTalk's
/// `accessToken`/`expireIn`, OKKI's `access_token`/`expires_in`).
pub(crate) struct TokenAnswer {
    /// The vendor's name in logs and messages.
    pub label: &'static str,
    /// The top-level field holding the token.
    pub token_field: &'static str,
    /// The top-level field holding the token's lifetime in seconds.
    pub ttl_field: &'static str,
    /// The lifetime when the answer does not name one.
    pub default_ttl_secs: u64,
}

impl TokenAnswer {
    /// A 2xx answer of the token endpoint: fine when it holds a non-empty token.
    pub(crate) fn judge_success(&self, reply: &Reply) -> Verdict {
        match reply.body.get(self.token_field).and_then(Value::as_str) {
            Some(token) if !token.is_empty() => Verdict::Ok,
            _ => Verdict::Config(format!(
                "{}'s token answer has no {}: {}",
                self.label,
                self.token_field,
                reply.quoted()
            )),
        }
    }

    /// Send `req` to the token endpoint (unsigned, judged by `judge`) and read the token and its
    /// lifetime from the answer.
    pub(crate) async fn fetch(
        &self,
        http: &HttpClient,
        req: &Request,
        judge: fn(&Reply) -> Verdict,
    ) -> Result<Token, FerryError> {
        let vendor = Unsigned {
            label: self.label,
            judge,
        };
        let reply = http.call(&vendor, req).await?;
        let value = reply
            .body
            .get(self.token_field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ttl = reply
            .body
            .get(self.ttl_field)
            .and_then(Value::as_u64)
            .unwrap_or(self.default_ttl_secs);
        tracing::info!(connection = %http.connection(), ttl_secs = ttl, "{} access token fetched", self.label);
        Ok(Token {
            value,
            extra: None,
            ttl: Duration::from_secs(ttl),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ANSWER: TokenAnswer = TokenAnswer {
        label: "OKKI",
        token_field: "access_token",
        ttl_field: "expires_in",
        default_ttl_secs: 60,
    };

    #[test]
    fn a_token_answer_needs_a_non_empty_token() {
        assert_eq!(
            ANSWER.judge_success(&Reply::json(200, json!({"access_token": "t"}))),
            Verdict::Ok
        );
        assert_eq!(
            ANSWER.judge_success(&Reply::json(200, json!({"access_token": ""}))),
            Verdict::Config(
                "OKKI's token answer has no access_token: {\"access_token\":\"\"}".into()
            )
        );
        assert_eq!(
            ANSWER.judge_success(&Reply::json(200, json!({"token": "t"}))),
            Verdict::Config("OKKI's token answer has no access_token: {\"token\":\"t\"}".into())
        );
    }

    #[test]
    fn api_suffixes_ignore_surrounding_blanks_and_a_trailing_slash() {
        assert!(api_ends_with(" /v1/user/list/ ", "user/list"));
        assert!(api_ends_with("v1/user/list", "user/list"));
        assert!(!api_ends_with("/v1/user/list/extra", "user/list"));
    }
}
