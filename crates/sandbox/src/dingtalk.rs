//! DingTalk open API access tokens: the v1.0 `POST /v1.0/oauth2/accessToken` and the old
//! `GET /gettoken`, and the token check every v1.0 call (Yida) makes.
//!
//! Both issue tokens from one pool that expire after `dingtalk_token.token_ttl_secs` (default
//! 7200 s); the v1.0 errors use the `{code, requestid, message}` shape with a non-2xx status,
//! the old API answers HTTP 200 with an `errcode`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::options::FaultKey;
use crate::state::{AppState, Injected};
use crate::wire::{self, header, param, query_pairs};

/// The app credentials the sandbox accepts.
pub const DINGTALK_APP_KEY: &str = "ding-sandbox-key";
/// Secret belonging to [`DINGTALK_APP_KEY`].
pub const DINGTALK_APP_SECRET: &str = "ding-sandbox-secret";
/// DingTalk's token lifetime.
const DEFAULT_TOKEN_TTL_SECS: u64 = 7200;
/// Header carrying the token on v1.0 calls.
pub(crate) const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

/// A v1.0 error: `{code, requestid, message}` with the given status.
pub(crate) fn v1_error(status: StatusCode, code: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({
            "code": code,
            "requestid": format!("SANDBOX-{:X}", wire::now_ms()),
            "message": message,
        }),
    )
}

/// The v1.0 answer to an injected fault.
pub(crate) fn v1_injected(injected: Injected) -> Response {
    match injected {
        Injected::Throttle => v1_error(
            StatusCode::FORBIDDEN,
            "Forbidden.AccessDenied.QpsLimitForApi",
            "调用该接口超过限流阈值",
        ),
        Injected::Unavailable => v1_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "服务暂不可用",
        ),
    }
}

/// Checks the `x-acs-dingtalk-access-token` header of a v1.0 call.
pub(crate) fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    match header(headers, TOKEN_HEADER) {
        None | Some("") => Err(v1_error(
            StatusCode::BAD_REQUEST,
            "MissingxAcsDingtalkAccessToken",
            "x-acs-dingtalk-access-token is mandatory for this action.",
        )),
        Some(token) if token.starts_with("ding-") && state.token_valid(token) => Ok(()),
        Some(_) => Err(v1_error(
            StatusCode::BAD_REQUEST,
            "InvalidAuthentication",
            "不合法的access_token",
        )),
    }
}

fn issue(state: &AppState) -> (String, u64) {
    let ttl = state.token_ttl(FaultKey::DingtalkToken, DEFAULT_TOKEN_TTL_SECS);
    let mut inner = state.lock();
    (
        AppState::issue_token(&mut inner, "ding", ttl),
        ttl.as_secs(),
    )
}

/// `POST /v1.0/oauth2/accessToken {"appKey","appSecret"}` -> `{"accessToken","expireIn"}`.
pub(crate) async fn access_token(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    if let Some(injected) = state.fault_gate(FaultKey::DingtalkToken).await {
        return v1_injected(injected);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "请求体不是合法的 JSON",
        );
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or("");
    for name in ["appKey", "appSecret"] {
        if field(name).is_empty() {
            return v1_error(
                StatusCode::BAD_REQUEST,
                &format!("Missing{name}"),
                &format!("{name} is mandatory for this action."),
            );
        }
    }
    if field("appKey") != DINGTALK_APP_KEY || field("appSecret") != DINGTALK_APP_SECRET {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    let (token, ttl_secs) = issue(&state);
    wire::json(
        StatusCode::OK,
        json!({"accessToken": token, "expireIn": ttl_secs}),
    )
}

/// `GET /gettoken?appkey=&appsecret=` -> `{"errcode":0,"errmsg":"ok","access_token","expires_in"}`.
pub(crate) async fn gettoken(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Response {
    match state.fault_gate(FaultKey::DingtalkToken).await {
        Some(Injected::Throttle) => {
            return wire::json(
                StatusCode::OK,
                json!({"errcode": 90002, "errmsg": "您的服务器调用钉钉开放平台所有接口的请求都被暂时禁用了"}),
            );
        }
        Some(Injected::Unavailable) => {
            return wire::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errcode": -1, "errmsg": "系统繁忙"}),
            );
        }
        None => {}
    }
    let pairs = query_pairs(query.as_deref());
    if param(&pairs, "appkey") != Some(DINGTALK_APP_KEY)
        || param(&pairs, "appsecret") != Some(DINGTALK_APP_SECRET)
    {
        return wire::json(
            StatusCode::OK,
            json!({"errcode": 40089, "errmsg": "不合法的appKey或appSecret"}),
        );
    }
    let (token, ttl_secs) = issue(&state);
    wire::json(
        StatusCode::OK,
        json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl_secs}),
    )
}
