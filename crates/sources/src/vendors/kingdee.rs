//! `kind = "kingdee"`: Kingdee cloud accounting behind its signed API gateway (seed 004).
//!
//! Every call carries the gateway headers (`X-Api-ClientID`, `X-Api-Auth-Version: 2.0`,
//! `X-Api-TimeStamp`, `X-Api-Nonce`, `X-Api-SignHeaders`, `X-Api-Signature`), signed afresh per
//! attempt with [`ferry_core::sign::kingdee_string_to_sign`] and the connection's
//! `client_secret`. Gateway errors are HTTP 519 `{errcode, description}`: `5007` (overloaded)
//! is retried, the signature family (`4001`, `4003`, `4006`, `4007`, `4008`) and `5001` (no such
//! API) stop the scheme, since retrying cannot fix them.
//!
//! The app token: `push_app_authorize?outerInstanceId=` hands out the app's `appKey`,
//! `appSecret` (rotated every 24 hours) and `domain`; `kingdee_auth_token?app_key=&app_signature=`
//! turns them into an `app-token` (valid 24 hours; 2 calls a minute). The token is cached in the
//! state database with its `domain`, for every scheme and replica on the connection, and refreshed
//! before it expires; `1030002006` (the secret rotated) authorises again once.
//!
//! Seed 004 (`api` = `push_app_authorize`) is such a refresh: each run authorises, and caches a
//! new app token when the cached one is missing, for another app, or due. Its records are the
//! authorisations without their `appSecret` (secrets never travel through the broker).
//! Other `api` paths are business calls with `app-token` and `X-GW-Router-Addr: <domain>`;
//! lists answer `{errcode, data: {count, rows}}`, so records default to `/data/rows` and the
//! total to `/data/count` (not simulated by the sandbox).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::FerryError;
use ferry_core::config::KingdeeConnection;
use ferry_core::scheme::Metadata;
use ferry_core::sign::{kingdee_app_signature, kingdee_signature, kingdee_string_to_sign};
use ferry_core::template::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::{api_ends_with, api_source, code_and_message};
use crate::Source;
use crate::http::{Defaults, HttpClient, Mode, Reply, Request, Vendor, Verdict, judge_http};
use crate::token::{Token, TokenCache, refresh_margin};

/// An app token lives 24 hours.
pub const TOKEN_TTL_SECS: u64 = 86_400;
/// The gateway's HTTP status for its own errors.
pub const GATEWAY_ERROR_STATUS: u16 = 519;
/// The business error for an app signature made with a stale secret.
pub const SECRET_CHECK_FAILED: i64 = 1_030_002_006;
/// Pause after the gateway's "overloaded" (5007) when no Retry-After came with it.
const OVERLOADED_PAUSE_MS: u64 = 2000;
const AUTHORIZE_PATH: &str = "/jdyconnector/app_management/push_app_authorize";
const AUTH_TOKEN_PATH: &str = "/jdyconnector/app_management/kingdee_auth_token";
/// The headers the gateway signature covers, as the official client sends them (sorted).
const SIGN_HEADERS: &str = "X-Api-Nonce,X-Api-TimeStamp";

/// The gateway credentials: sign any request.
#[derive(Clone)]
pub struct Gateway {
    pub client_id: String,
    pub client_secret: String,
}

impl Gateway {
    /// Add the gateway headers for `req`, signed with `timestamp_ms` and `nonce`.
    pub fn sign(&self, req: &mut Request, timestamp_ms: i64, nonce: &str) {
        let path = reqwest::Url::parse(&req.url())
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| req.path.clone());
        let signed = vec![
            ("X-Api-Nonce".to_string(), nonce.to_string()),
            ("X-Api-TimeStamp".to_string(), timestamp_ms.to_string()),
        ];
        let string_to_sign =
            kingdee_string_to_sign(req.method.as_str(), &path, &req.query, &signed);
        let signature = kingdee_signature(&self.client_secret, &string_to_sign);
        req.header("X-Api-ClientID", self.client_id.clone());
        req.header("X-Api-Auth-Version", "2.0");
        req.header("X-Api-TimeStamp", timestamp_ms.to_string());
        req.header("X-Api-Nonce", nonce.to_string());
        req.header("X-Api-SignHeaders", SIGN_HEADERS);
        req.header("X-Api-Signature", signature);
    }

    fn sign_now(&self, req: &mut Request) {
        let nonce = uuid::Uuid::now_v7().simple().to_string();
        self.sign(req, chrono::Utc::now().timestamp_millis(), &nonce);
    }
}

fn error_text(reply: &Reply) -> String {
    let description = match (reply.field("description"), reply.field("descriptionCn")) {
        (Some(en), Some(cn)) if en != cn => Some(format!("{en} / {cn}")),
        (en, cn) => en.or(cn),
    };
    code_and_message(reply.field("errcode"), description)
}

/// Any Kingdee answer: gateway errors, then the business `errcode`.
pub fn judge_answer(reply: &Reply) -> Verdict {
    if reply.status == GATEWAY_ERROR_STATUS {
        let code = reply.body.get("errcode").and_then(Value::as_i64);
        return match code {
            Some(5007) => Verdict::Retry {
                message: format!("the Kingdee gateway is overloaded ({})", error_text(reply)),
                retry_after: Some(
                    reply
                        .retry_after
                        .unwrap_or(Duration::from_millis(OVERLOADED_PAUSE_MS)),
                ),
            },
            Some(5001) => Verdict::Config(format!(
                "the Kingdee gateway does not know this API ({})",
                error_text(reply)
            )),
            Some(4006) => Verdict::Config(format!(
                "the Kingdee gateway refused the timestamp ({}); check this machine's clock",
                error_text(reply)
            )),
            _ => Verdict::Config(format!(
                "the Kingdee gateway refused the request signature ({}); check client_id and client_secret",
                error_text(reply)
            )),
        };
    }
    if let Some(verdict) = judge_http(reply, "Kingdee") {
        return verdict;
    }
    match reply.int_field("errcode") {
        Some(0) | None => Verdict::Ok,
        Some(SECRET_CHECK_FAILED) => Verdict::Reauth {
            message: format!(
                "Kingdee refused the app credentials ({})",
                error_text(reply)
            ),
        },
        Some(_) => Verdict::Config(format!("Kingdee answered errcode {}", error_text(reply))),
    }
}

/// Kingdee as a [`Vendor`]: gateway-signed calls, with the app token on business calls.
pub struct Kingdee {
    base: String,
    gateway: Gateway,
    outer_instance_id: String,
    tokens: TokenCache,
    /// Seed 004's shape: the source *is* `push_app_authorize`.
    authorize_api: bool,
}

/// Gateway signing only (the authorisation endpoints).
struct Signed<'a>(&'a Gateway);

#[async_trait]
impl Vendor for Signed<'_> {
    fn label(&self) -> &'static str {
        "Kingdee"
    }
    async fn prepare(&self, _http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        self.0.sign_now(req);
        Ok(())
    }
    fn judge(&self, reply: &Reply) -> Verdict {
        match judge_answer(reply) {
            // The signature of kingdee_auth_token was made with a rotated secret: the caller
            // authorises again; the client must not re-send the same signature.
            Verdict::Reauth { message } => Verdict::Config(message),
            other => other,
        }
    }
}

impl Kingdee {
    /// `push_app_authorize` for the connection's instance: the first app's details.
    async fn authorize(&self, http: &HttpClient) -> Result<Value, FerryError> {
        let mut req = Request::new(Method::POST, &self.base, AUTHORIZE_PATH);
        req.query
            .push(("outerInstanceId".into(), self.outer_instance_id.clone()));
        let reply = http.call(&Signed(&self.gateway), &req).await?;
        reply.body.pointer("/data/0").cloned().ok_or_else(|| {
            FerryError::config(http.error_text(&format!(
                "Kingdee's push_app_authorize answer holds no app: {}",
                reply.quoted()
            )))
        })
    }

    /// `kingdee_auth_token` for an authorised app.
    async fn app_token(&self, http: &HttpClient, app: &Value) -> Result<Token, FerryError> {
        let text = |name: &str| app.get(name).and_then(Value::as_str).unwrap_or_default();
        let (app_key, app_secret) = (text("appKey"), text("appSecret"));
        if app_key.is_empty() || app_secret.is_empty() {
            return Err(FerryError::config(http.error_text(
                "Kingdee's authorisation holds no appKey and appSecret",
            )));
        }
        let mut req = Request::new(Method::GET, &self.base, AUTH_TOKEN_PATH);
        req.query.push(("app_key".into(), app_key.to_string()));
        req.query.push((
            "app_signature".into(),
            kingdee_app_signature(app_key, app_secret),
        ));
        let reply = http.call(&Signed(&self.gateway), &req).await?;
        let value = reply
            .body
            .pointer("/data/app-token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if value.is_empty() {
            return Err(FerryError::config(http.error_text(&format!(
                "Kingdee's kingdee_auth_token answer has no app-token: {}",
                reply.quoted()
            ))));
        }
        tracing::info!(connection = %http.connection(), app_key, "Kingdee app token fetched");
        Ok(Token {
            value,
            extra: Some(json!({
                "appKey": app_key,
                "domain": text("domain"),
                "uid": reply.body.pointer("/data/uid").cloned().unwrap_or(Value::Null),
            })),
            ttl: Duration::from_secs(TOKEN_TTL_SECS),
        })
    }

    /// Authorise and fetch a token; once more if the secret rotated in between.
    async fn fetch(&self, http: &HttpClient) -> Result<Token, FerryError> {
        let app = self.authorize(http).await?;
        match self.app_token(http, &app).await {
            Err(err) if err.message().contains(&SECRET_CHECK_FAILED.to_string()) => {
                let app = self.authorize(http).await?;
                self.app_token(http, &app).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl Vendor for Kingdee {
    fn label(&self) -> &'static str {
        "Kingdee"
    }

    async fn prepare(&self, http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        if self.authorize_api {
            if !req.query.iter().any(|(k, _)| k == "outerInstanceId") {
                req.query
                    .push(("outerInstanceId".into(), self.outer_instance_id.clone()));
            }
        } else {
            let (token, extra) = self.tokens.get(|| self.fetch(http)).await?;
            let domain = extra
                .as_ref()
                .and_then(|e| e.get("domain"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            req.header("app-token", token);
            if !domain.is_empty() {
                req.header("X-GW-Router-Addr", domain);
            }
        }
        self.gateway.sign_now(req);
        Ok(())
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        judge_answer(reply)
    }

    async fn renew_token(&self, _http: &HttpClient) -> Result<(), FerryError> {
        self.tokens.forget().await
    }

    async fn on_page(&self, http: &HttpClient, reply: &Reply) -> Result<(), FerryError> {
        if !self.authorize_api {
            return Ok(());
        }
        let Some(app) = reply.body.pointer("/data/0") else {
            return Ok(());
        };
        let app_key = app
            .get("appKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fresh = match self.tokens.cached().await? {
            Some((_, Some(extra))) => extra.get("appKey").and_then(Value::as_str) == Some(app_key),
            _ => false,
        };
        if fresh {
            tracing::info!(connection = %http.connection(), "Kingdee app token still valid; kept");
            return Ok(());
        }
        let token = match self.app_token(http, app).await {
            Err(err) if err.message().contains(&SECRET_CHECK_FAILED.to_string()) => {
                let app = self.authorize(http).await?;
                self.app_token(http, &app).await?
            }
            other => other?,
        };
        self.tokens.save(&token).await?;
        tracing::info!(
            connection = %http.connection(),
            refresh_in_secs = (token.ttl - refresh_margin(token.ttl)).as_secs(),
            "Kingdee app token cached"
        );
        Ok(())
    }

    fn shape(&self, mut item: Value) -> Value {
        if let Some(map) = item.as_object_mut() {
            map.remove("appSecret");
        }
        item
    }
}

/// Open a Kingdee source.
pub fn open(
    conn_name: &str,
    conn: &KingdeeConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn Source>, FerryError> {
    let authorize_api = api_ends_with(&metadata.api, "push_app_authorize");
    let vendor = Arc::new(Kingdee {
        base: conn.base_url.clone(),
        gateway: Gateway {
            client_id: conn.client_id.clone(),
            client_secret: conn.client_secret.expose().to_string(),
        },
        outer_instance_id: conn.outer_instance_id.clone(),
        tokens: TokenCache::new(http.state().clone(), conn_name),
        authorize_api,
    });
    let defaults = if authorize_api {
        Defaults {
            method: Method::POST,
            body: crate::http::BodyFormat::None,
            records_at: Some("/data".into()),
            mode: Some(Mode::None),
            ..Defaults::default()
        }
    } else {
        Defaults {
            method: Method::GET,
            records_at: Some("/data/rows".into()),
            total_at: Some("/data/count".into()),
            ..Defaults::default()
        }
    };
    api_source(http, vendor, &conn.base_url, &metadata, defaults, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }

    #[test]
    fn gateway_headers_follow_the_official_client() {
        let gateway = Gateway {
            client_id: "cid".into(),
            client_secret: "kd-secret".into(),
        };
        let mut req = Request::new(Method::POST, "http://h:1/", AUTHORIZE_PATH);
        req.query
            .push(("outerInstanceId".into(), "219672488890732544".into()));
        gateway.sign(&mut req, 1_700_000_000_000, "abc123");
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("X-Api-SignHeaders"), "X-Api-Nonce,X-Api-TimeStamp");
        assert_eq!(header("X-Api-Auth-Version"), "2.0");
        // The same request as core's signature vector (computed with Python's hmac).
        assert_eq!(
            header("X-Api-Signature"),
            "N2M5ZmQyZWM0NWY1NmE0ZjliZDJkYzkwNjYwYWVkNjE4NjczYTA5MTc3NzM0ZTU5YzIwMDg1NTBlYzQ3NGY0Zg=="
        );
    }

    #[test]
    fn gateway_and_business_errors_are_classified() {
        let sig = reply(
            519,
            json!({"errcode": 4008, "description": "signature mismatch", "descriptionCn": "签名验证失败"}),
        );
        assert_eq!(
            judge_answer(&sig),
            Verdict::Config(
                "the Kingdee gateway refused the request signature (4008: signature mismatch / 签名验证失败); check client_id and client_secret".into()
            )
        );
        let busy = reply(
            519,
            json!({"errcode": 5007, "description": "server overloaded"}),
        );
        assert!(matches!(judge_answer(&busy), Verdict::Retry { .. }));
        let stale = reply(
            200,
            json!({"errcode": SECRET_CHECK_FAILED, "description": "授权密钥校验失败"}),
        );
        assert!(matches!(judge_answer(&stale), Verdict::Reauth { .. }));
        assert!(matches!(
            Signed(&Gateway {
                client_id: String::new(),
                client_secret: String::new()
            })
            .judge(&stale),
            Verdict::Config(_)
        ));
        assert_eq!(
            judge_answer(&reply(200, json!({"errcode": 0, "data": []}))),
            Verdict::Ok
        );
        assert!(matches!(
            judge_answer(&reply(503, json!({}))),
            Verdict::Retry { .. }
        ));
    }
}
