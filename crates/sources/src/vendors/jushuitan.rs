//! `kind = "jushuitan"`: the Jushuitan ERP open API (seed 002, `/open/shops/query`).
//!
//! Every call is an `application/x-www-form-urlencoded` POST of `app_key`, `access_token`,
//! `timestamp` (Unix seconds), `charset=utf-8`, `version=2`, `biz` (the scheme's rendered
//! request tree as JSON text) and `sign` ([`ferry_core::sign::jushuitan_sign`]). Answers are
//! HTTP 200 with `{code, msg, data}`:
//! - `0`: records at `/data/datas`, more while `/data/has_next` is true (a bool, a number or a
//!   string), at most 100 a page;
//! - `199` (5 calls a second) and `200` (100 calls a minute): throttling, retried after a pause;
//!   the connection also keeps to `rate_per_sec` (default 5) across every replica;
//! - `100`: the access token was refused: with a `refresh_token` the connection calls
//!   `/openWeb/auth/refreshToken` once, caches the new token (and the new refresh token) in the
//!   state database for every replica, and sends again; without one the scheme stops;
//! - `10` (signature), `140` (clock off by more than 15 minutes), `190` (no permission) and any
//!   other code stop the scheme with the vendor's message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::FerryError;
use ferry_core::config::JushuitanConnection;
use ferry_core::scheme::Metadata;
use ferry_core::sign::jushuitan_sign;
use ferry_core::template::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::{api_source, code_and_message};
use crate::Source;
use crate::http::{
    Body, Defaults, HttpClient, Mode, Reply, Request, Unsigned, Vendor, Verdict, judge_http,
};
use crate::token::{Token, TokenCache};

/// Jushuitan serves at most 100 records a page.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Pause after code 199 (more than 5 calls in a second).
pub const PER_SECOND_PAUSE_MS: u64 = 1000;
/// Pause after code 200 (more than 100 calls in a minute).
pub const PER_MINUTE_PAUSE_SECS: u64 = 15;
/// Lifetime of a refreshed token when the answer does not say (the vendor's is 30 days).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 30 * 86_400;
const REFRESH_PATH: &str = "/openWeb/auth/refreshToken";

/// The Jushuitan open API as a [`Vendor`].
pub struct Jushuitan {
    base: String,
    app_key: String,
    app_secret: String,
    access_token: String,
    refresh_token: Option<String>,
    tokens: TokenCache,
}

/// The form of a signed call: the system parameters, `extra`, and `sign`.
pub fn signed_form(
    app_key: &str,
    app_secret: &str,
    extra: BTreeMap<String, String>,
    timestamp_secs: i64,
) -> Vec<(String, String)> {
    let mut params = extra;
    params.insert("app_key".into(), app_key.to_string());
    params.insert("timestamp".into(), timestamp_secs.to_string());
    params.insert("charset".into(), "utf-8".into());
    params.insert("version".into(), "2".into());
    let sign = jushuitan_sign(app_secret, &params);
    params.insert("sign".into(), sign);
    params.into_iter().collect()
}

impl Jushuitan {
    fn signed_form(
        &self,
        extra: BTreeMap<String, String>,
        timestamp_secs: i64,
    ) -> Vec<(String, String)> {
        signed_form(&self.app_key, &self.app_secret, extra, timestamp_secs)
    }

    /// The access token to use: a refreshed one from the cache, else the configured one.
    async fn access_token(&self) -> Result<(String, Option<String>), FerryError> {
        Ok(match self.tokens.cached().await? {
            Some((token, extra)) => {
                let refresh = extra
                    .as_ref()
                    .and_then(|e| e.get("refresh_token"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (token, refresh)
            }
            None => (self.access_token.clone(), None),
        })
    }
}

fn error_text(reply: &Reply) -> String {
    code_and_message(reply.field("code"), reply.field("msg"))
}

/// A business call's answer.
pub fn judge_answer(reply: &Reply) -> Verdict {
    if let Some(verdict) = judge_http(reply, "Jushuitan") {
        return verdict;
    }
    match reply.int_field("code") {
        Some(0) => Verdict::Ok,
        Some(199) => Verdict::Retry {
            message: format!("Jushuitan throttled the call ({})", error_text(reply)),
            retry_after: Some(Duration::from_millis(PER_SECOND_PAUSE_MS)),
        },
        Some(200) => Verdict::Retry {
            message: format!("Jushuitan throttled the call ({})", error_text(reply)),
            retry_after: Some(Duration::from_secs(PER_MINUTE_PAUSE_SECS)),
        },
        Some(100) => Verdict::Reauth {
            message: format!("Jushuitan refused the access token ({})", error_text(reply)),
        },
        Some(10) => Verdict::Config(format!(
            "Jushuitan refused the signature ({}); check app_key and app_secret",
            error_text(reply)
        )),
        Some(140) => Verdict::Config(format!(
            "Jushuitan refused the timestamp ({}); check this machine's clock",
            error_text(reply)
        )),
        Some(_) => Verdict::Config(format!("Jushuitan answered code {}", error_text(reply))),
        None => Verdict::Config(format!(
            "Jushuitan's answer has no code: {}",
            reply.quoted()
        )),
    }
}

#[async_trait]
impl Vendor for Jushuitan {
    fn label(&self) -> &'static str {
        "Jushuitan"
    }

    async fn prepare(&self, _http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        let biz = match std::mem::replace(&mut req.body, Body::Empty) {
            Body::Json(value) => value.to_string(),
            Body::Form(pairs) => {
                let map: serde_json::Map<String, Value> = pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                Value::Object(map).to_string()
            }
            Body::Empty => "{}".to_string(),
        };
        let (token, _) = self.access_token().await?;
        let mut params = BTreeMap::new();
        params.insert("access_token".to_string(), token);
        params.insert("biz".to_string(), biz);
        // The scheme may add system parameters of its own in the query (rare); they are signed too.
        for (key, value) in std::mem::take(&mut req.query) {
            params.insert(key, value);
        }
        req.body = Body::Form(self.signed_form(params, chrono::Utc::now().timestamp()));
        Ok(())
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        judge_answer(reply)
    }

    async fn renew_token(&self, http: &HttpClient) -> Result<(), FerryError> {
        let (_, cached_refresh) = self.access_token().await?;
        let Some(refresh) = cached_refresh.or_else(|| self.refresh_token.clone()) else {
            return Err(FerryError::config(http.error_text(
                "Jushuitan refused the access token (code 100) and no refresh_token is configured",
            )));
        };
        let mut params = BTreeMap::new();
        params.insert("grant_type".to_string(), "refresh_token".to_string());
        params.insert("refresh_token".to_string(), refresh);
        params.insert("scope".to_string(), "all".to_string());
        let form = self.signed_form(params, chrono::Utc::now().timestamp());
        let mut req = Request::new(Method::POST, &self.base, REFRESH_PATH);
        req.body = Body::Form(form);
        // The refresh call has its own answer for code 100: the refresh token itself is bad.
        let vendor = Unsigned {
            label: "Jushuitan",
            judge: |reply: &Reply| match judge_answer(reply) {
                Verdict::Reauth { message } => {
                    Verdict::Config(format!("{message}; the refresh_token was refused too"))
                }
                other => other,
            },
        };
        let reply = http.call(&vendor, &req).await?;
        let data = reply.body.get("data").cloned().unwrap_or(Value::Null);
        let value = data
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if value.is_empty() {
            return Err(FerryError::config(http.error_text(&format!(
                "Jushuitan's refreshToken answer has no access_token: {}",
                reply.quoted()
            ))));
        }
        let ttl = data
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        let extra = data
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|r| json!({"refresh_token": r}));
        self.tokens
            .save(&Token {
                value,
                extra,
                ttl: Duration::from_secs(ttl),
            })
            .await?;
        tracing::info!(connection = %http.connection(), ttl_secs = ttl, "Jushuitan access token refreshed");
        Ok(())
    }
}

/// Open a Jushuitan source.
pub fn open(
    conn_name: &str,
    conn: &JushuitanConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn Source>, FerryError> {
    let vendor = Arc::new(Jushuitan {
        base: conn.base_url.clone(),
        app_key: conn.app_key.clone(),
        app_secret: conn.app_secret.expose().to_string(),
        access_token: conn.access_token.expose().to_string(),
        refresh_token: conn.refresh_token.as_ref().map(|s| s.expose().to_string()),
        tokens: TokenCache::new(http.state().clone(), conn_name),
    });
    let defaults = Defaults {
        method: Method::POST,
        records_at: Some("/data/datas".into()),
        mode: Some(Mode::Page),
        page_size: MAX_PAGE_SIZE,
        max_page_size: Some(MAX_PAGE_SIZE),
        has_next_at: Some("/data/has_next".into()),
        total_at: Some("/data/data_count".into()),
        ..Defaults::default()
    };
    api_source(http, vendor, &conn.base_url, &metadata, defaults, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: Value) -> Reply {
        Reply::json(200, body)
    }

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            judge_answer(&reply(json!({"code": 0, "data": {}}))),
            Verdict::Ok
        );
        assert_eq!(
            judge_answer(&reply(json!({"code": 199, "msg": "接口调用频率过高"}))),
            Verdict::Retry {
                message: "Jushuitan throttled the call (199: 接口调用频率过高)".into(),
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert!(matches!(
            judge_answer(&reply(json!({"code": 200, "msg": "x"}))),
            Verdict::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(PER_MINUTE_PAUSE_SECS)
        ));
        assert!(matches!(
            judge_answer(&reply(json!({"code": 100, "msg": "x"}))),
            Verdict::Reauth { .. }
        ));
        assert_eq!(
            judge_answer(&reply(json!({"code": 10, "msg": "签名无效"}))),
            Verdict::Config(
                "Jushuitan refused the signature (10: 签名无效); check app_key and app_secret"
                    .into()
            )
        );
        assert_eq!(
            judge_answer(&reply(json!({"code": "190", "msg": "无权限"}))),
            Verdict::Config("Jushuitan answered code 190: 无权限".into())
        );
    }

    #[test]
    fn signed_form_matches_the_published_vector_shape() {
        // The vector of VENDOR_APIS.md: app_key=app, charset=utf-8, timestamp=100 with secret
        // `secret` signs to 706427ca...; signed_form adds version=2, so recompute the same way.
        let form: BTreeMap<String, String> = signed_form("app", "secret", BTreeMap::new(), 100)
            .into_iter()
            .collect();
        assert_eq!(form["version"], "2");
        let mut unsigned = form.clone();
        unsigned.remove("sign");
        assert_eq!(form["sign"], jushuitan_sign("secret", &unsigned));
        unsigned.remove("version");
        assert_eq!(
            jushuitan_sign("secret", &unsigned),
            "706427ca94e342781ac36d501151cb10"
        );
    }
}
