//! `kind = "dingtalk"`: the DingTalk open API with an app's key and secret, and Yida process
//! instances (seed 001).
//!
//! The access token comes from `POST {base}/v1.0/oauth2/accessToken {"appKey","appSecret"}`
//! and is cached in the state database for every scheme and replica on the connection, until
//! shortly before its `expireIn`. Every v1.0 call carries it in `x-acs-dingtalk-access-token`.
//! Errors are non-2xx answers with `{code, message}`: `InvalidAuthentication` renews the token
//! once; `Forbidden.AccessDenied.QpsLimitForApi` and 5xx are retried; a wrong key or secret
//! (`invalidClientIdOrSecret`) and anything else stop the scheme.
//!
//! Yida (`api` ending in `yida/processes/instances`): `pageNumber` and `pageSize` travel in the
//! query string, the rest as a JSON body with `searchFieldJson` sent as JSON text; records are
//! at `/data`, the total at `/totalCount`, pages hold at most 100. A Yida record is the item's
//! form values (`data`) with the item's other fields under `extend`, so the seed's
//! `{numberField_x}` and `{{extend.processInstanceId}}` both work, and an `id` of
//! `processInstanceId` is found under `extend` too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::FerryError;
use ferry_core::config::DingTalkConnection;
use ferry_core::connector::dingtalk::is_yida;
use ferry_core::scheme::Metadata;
use ferry_core::template::Context;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{TokenAnswer, api_source_with_ids, code_and_message, id_paths};
use crate::Source;
use crate::http::{
    Body, Defaults, HttpClient, Mode, Reply, Request, Vendor, Verdict, judge_status,
};
use crate::token::{Token, TokenCache};

/// Header carrying the token on v1.0 calls.
pub const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";
/// Token lifetime when the answer does not say (DingTalk's is 7200 s).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 7200;
pub use ferry_core::connector::dingtalk::YIDA_MAX_PAGE_SIZE;
/// Pause after a QPS refusal that carries no Retry-After.
const THROTTLE_PAUSE_MS: u64 = 1000;
const TOKEN_PATH: &str = "/v1.0/oauth2/accessToken";
const QPS_LIMIT: &str = "Forbidden.AccessDenied.QpsLimitForApi";
const TOKEN_ANSWER: TokenAnswer = TokenAnswer {
    label: "DingTalk",
    token_field: "accessToken",
    ttl_field: "expireIn",
    default_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
};

/// The DingTalk open API as a [`Vendor`].
pub struct DingTalk {
    base: String,
    app_key: String,
    app_secret: String,
    tokens: TokenCache,
    yida: bool,
}

impl DingTalk {
    async fn token(&self, http: &HttpClient) -> Result<String, FerryError> {
        let (token, _) = self.tokens.get(|| self.fetch(http)).await?;
        Ok(token)
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Token, FerryError> {
        let mut req = Request::new(Method::POST, &self.base, TOKEN_PATH);
        req.body = Body::Json(json!({"appKey": self.app_key, "appSecret": self.app_secret}));
        TOKEN_ANSWER.fetch(http, &req, judge_token).await
    }
}

fn error_text(reply: &Reply) -> String {
    code_and_message(reply.field("code"), reply.field("message"))
}

fn is_throttled(reply: &Reply) -> bool {
    reply.status == 429 || reply.field("code").as_deref() == Some(QPS_LIMIT)
}

fn throttled(reply: &Reply) -> Verdict {
    Verdict::Retry {
        message: format!("DingTalk throttled the call ({})", error_text(reply)),
        retry_after: Some(
            reply
                .retry_after
                .unwrap_or(Duration::from_millis(THROTTLE_PAUSE_MS)),
        ),
    }
}

/// The token endpoint: a token, throttling, or refused credentials.
pub fn judge_token(reply: &Reply) -> Verdict {
    if is_throttled(reply) {
        return throttled(reply);
    }
    if let Some(verdict) = judge_status(reply, "DingTalk") {
        return verdict;
    }
    if reply.is_success() {
        return TOKEN_ANSWER.judge_success(reply);
    }
    Verdict::Config(format!(
        "DingTalk refused the app key and secret (HTTP {}, {})",
        reply.status,
        error_text(reply)
    ))
}

/// A v1.0 business call.
pub fn judge_v1(reply: &Reply) -> Verdict {
    if reply.is_success() {
        return Verdict::Ok;
    }
    if is_throttled(reply) {
        return throttled(reply);
    }
    if let Some(verdict) = judge_status(reply, "DingTalk") {
        return verdict;
    }
    if reply.field("code").as_deref() == Some("InvalidAuthentication") {
        return Verdict::Reauth {
            message: format!("DingTalk refused the access token ({})", error_text(reply)),
        };
    }
    Verdict::Config(format!(
        "DingTalk answered HTTP {} ({})",
        reply.status,
        error_text(reply)
    ))
}

#[async_trait]
impl Vendor for DingTalk {
    fn label(&self) -> &'static str {
        "DingTalk"
    }

    async fn prepare(&self, http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        let token = self.token(http).await?;
        req.header(TOKEN_HEADER, token);
        Ok(())
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        judge_v1(reply)
    }

    async fn renew_token(&self, _http: &HttpClient) -> Result<(), FerryError> {
        self.tokens.forget().await
    }

    fn shape(&self, item: Value) -> Value {
        if self.yida { yida_record(item) } else { item }
    }
}

/// A Yida item as a record: its form values, with every other field of the item under `extend`.
pub fn yida_record(item: Value) -> Value {
    let Value::Object(mut fields) = item else {
        return item;
    };
    let mut record = match fields.remove("data") {
        Some(Value::Object(form)) => form,
        Some(other) => {
            let mut form = Map::new();
            form.insert("data".into(), other);
            form
        }
        None => Map::new(),
    };
    record.insert("extend".into(), Value::Object(fields));
    Value::Object(record)
}

/// Open a DingTalk source.
pub fn open(
    conn_name: &str,
    conn: &DingTalkConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn Source>, FerryError> {
    let yida = is_yida(&metadata.api);
    let vendor = Arc::new(DingTalk {
        base: conn.base_url.clone(),
        app_key: conn.app_key.clone(),
        app_secret: conn.app_secret.expose().to_string(),
        tokens: TokenCache::new(http.state().clone(), conn_name),
        yida,
    });
    let mut ids = id_paths(&metadata);
    let defaults = if yida {
        ids.extend(
            id_paths(&metadata)
                .into_iter()
                .map(|id| format!("extend.{id}")),
        );
        Defaults {
            method: Method::POST,
            query_fields: vec!["pageNumber".into(), "pageSize".into()],
            json_text_fields: vec!["searchFieldJson".into(), "orderConfigJson".into()],
            records_at: Some("/data".into()),
            mode: Some(Mode::Page),
            page_size: YIDA_MAX_PAGE_SIZE,
            max_page_size: Some(YIDA_MAX_PAGE_SIZE),
            total_at: Some("/totalCount".into()),
            ..Defaults::default()
        }
    } else {
        Defaults {
            method: Method::POST,
            ..Defaults::default()
        }
    };
    api_source_with_ids(http, vendor, &conn.base_url, &metadata, defaults, ctx, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }

    #[test]
    fn yida_record_puts_form_values_on_top_and_the_rest_under_extend() {
        let item = json!({
            "processInstanceId": "abc-123",
            "title": "报销",
            "data": {"numberField_lgkiepjv": 12.5, "textField_x": "张三"},
            "originator": {"userId": "u1"}
        });
        assert_eq!(
            yida_record(item),
            json!({
                "numberField_lgkiepjv": 12.5,
                "textField_x": "张三",
                "extend": {"processInstanceId": "abc-123", "title": "报销", "originator": {"userId": "u1"}}
            })
        );
    }

    #[test]
    fn token_errors_are_classified() {
        let wrong = reply(
            400,
            json!({"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"}),
        );
        assert_eq!(
            judge_token(&wrong),
            Verdict::Config(
                "DingTalk refused the app key and secret (HTTP 400, invalidClientIdOrSecret: 无效的clientId或者clientSecret)".into()
            )
        );
        let qps = reply(
            403,
            json!({"code": QPS_LIMIT, "message": "调用该接口超过限流阈值"}),
        );
        assert!(
            matches!(judge_token(&qps), Verdict::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(1))
        );
        assert_eq!(
            judge_token(&reply(200, json!({"accessToken": "t", "expireIn": 7200}))),
            Verdict::Ok
        );
    }

    #[test]
    fn v1_errors_are_classified() {
        let invalid = reply(
            400,
            json!({"code": "InvalidAuthentication", "message": "不合法的access_token"}),
        );
        assert!(matches!(judge_v1(&invalid), Verdict::Reauth { .. }));
        assert!(matches!(
            judge_v1(&reply(503, json!({}))),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            judge_v1(&reply(400, json!({"code": "MissingformUuid", "message": "formUuid is mandatory for this action."}))),
            Verdict::Config("DingTalk answered HTTP 400 (MissingformUuid: formUuid is mandatory for this action.)".into())
        );
        assert_eq!(judge_v1(&reply(200, json!({"data": []}))), Verdict::Ok);
    }

    #[test]
    fn yida_api_is_recognised_with_or_without_slashes() {
        assert!(is_yida("v1.0/yida/processes/instances"));
        assert!(is_yida("/v1.0/yida/processes/instances/"));
        assert!(!is_yida("/v1.0/contact/users"));
    }
}
