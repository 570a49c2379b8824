//! Kingdee cloud accounting (seed 004) behind its API gateway:
//! `POST /jdyconnector/app_management/push_app_authorize?outerInstanceId=ID` and
//! `GET /jdyconnector/app_management/kingdee_auth_token?app_key=&app_signature=`.
//!
//! Every call is gateway-signed; the gateway checks, in order, `X-Api-Auth-Version` (4001),
//! `X-Api-ClientID` (4003), `X-Api-TimeStamp` within 10 minutes (4006, window unconfirmed),
//! `X-Api-SignHeaders` naming at least the nonce and the timestamp (4007) and
//! `X-Api-Signature` (4008), recomputed with [`ferry_core::sign::kingdee_string_to_sign`].
//! Gateway errors are HTTP 519 with `{errcode, description, descriptionCn}`; throttling is
//! 519/5007. The appSecret an authorisation hands out rotates after `kingdee.token_ttl_secs`
//! (default 24 h); an `app_signature` made with an old secret answers `1030002006`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use ferry_core::sign::{kingdee_app_signature, kingdee_signature, kingdee_string_to_sign};
use serde_json::json;

use crate::options::FaultKey;
use crate::prng::SplitMix64;
use crate::state::{AppState, Injected, KingdeeApp};
use crate::wire::{self, header, param, query_pairs};

/// The gateway client credentials the sandbox accepts.
pub const KINGDEE_CLIENT_ID: &str = "kd-sandbox-client";
/// Secret belonging to [`KINGDEE_CLIENT_ID`].
pub const KINGDEE_CLIENT_SECRET: &str = "kd-sandbox-secret";
/// The gateway's HTTP status for its own errors.
const GATEWAY_ERROR_STATUS: u16 = 519;
/// Allowed distance between `X-Api-TimeStamp` and the server clock (unconfirmed).
const TIMESTAMP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// app-token lifetime and appSecret rotation period.
const DEFAULT_TOKEN_TTL_SECS: u64 = 86_400;
/// `kingdee_auth_token` may be called this often per app per minute.
const AUTH_TOKEN_CALLS_PER_MINUTE: usize = 2;
/// The business error for a signature made with a stale or wrong appSecret.
const SECRET_CHECK_FAILED: i64 = 1_030_002_006;

fn gateway_error(errcode: i64, description: &str, description_cn: &str) -> Response {
    let status =
        StatusCode::from_u16(GATEWAY_ERROR_STATUS).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    wire::json(
        status,
        json!({"errcode": errcode, "description": description, "descriptionCn": description_cn}),
    )
}

fn business_error(errcode: i64, description: &str) -> Response {
    wire::json(
        StatusCode::OK,
        json!({"errcode": errcode, "description": description, "descriptionCn": description}),
    )
}

fn injected_answer(injected: Injected) -> Response {
    match injected {
        Injected::Throttle => gateway_error(5007, "server overloaded", "服务器过载，请稍后再试"),
        Injected::Unavailable => wire::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errcode": 503, "description": "service unavailable", "descriptionCn": "服务暂不可用"}),
        ),
    }
}

/// What the gateway does before any Kingdee endpoint: the injected faults, then the headers and
/// signature. Gives the request's query pairs, or the answer that stops it.
async fn admit(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Vec<(String, String)>, Response> {
    if let Some(injected) = state.fault_gate(FaultKey::Kingdee).await {
        return Err(injected_answer(injected));
    }
    let query = query_pairs(raw_query);
    verify_gateway(method, uri, &query, headers)?;
    Ok(query)
}

/// Checks the gateway headers and signature of a request.
fn verify_gateway(
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(), Response> {
    if header(headers, "x-api-auth-version") != Some("2.0") {
        return Err(gateway_error(4001, "invalid auth version", "认证版本无效"));
    }
    if header(headers, "x-api-clientid") != Some(KINGDEE_CLIENT_ID) {
        return Err(gateway_error(4003, "invalid client id", "无效的 ClientID"));
    }
    let timestamp =
        header(headers, "x-api-timestamp").and_then(|text| text.trim().parse::<i64>().ok());
    if timestamp.is_none_or(|ms| (wire::now_ms() - ms).abs() > TIMESTAMP_WINDOW_MS) {
        return Err(gateway_error(
            4006,
            "invalid timestamp",
            "时间戳无效或已过期",
        ));
    }
    let sign_headers: Vec<&str> = header(headers, "x-api-signheaders")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let names_required = ["x-api-nonce", "x-api-timestamp"].iter().all(|required| {
        sign_headers
            .iter()
            .any(|name| name.eq_ignore_ascii_case(required))
    });
    let mut signed = Vec::with_capacity(sign_headers.len());
    for name in &sign_headers {
        match header(headers, name) {
            Some(value) => signed.push((name.to_string(), value.to_string())),
            None => {
                return Err(gateway_error(4007, "invalid sign headers", "签名头无效"));
            }
        }
    }
    if !names_required {
        return Err(gateway_error(4007, "invalid sign headers", "签名头无效"));
    }
    let expected = kingdee_signature(
        KINGDEE_CLIENT_SECRET,
        &kingdee_string_to_sign(method.as_str(), uri.path(), query, &signed),
    );
    if header(headers, "x-api-signature") != Some(expected.as_str()) {
        return Err(gateway_error(4008, "signature mismatch", "签名验证失败"));
    }
    Ok(())
}

/// A stable number for a text (FNV-1a), to derive per-instance values from the seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn app_key_for(seed: u64, outer_instance_id: &str) -> String {
    let mut rng = SplitMix64::new(seed ^ fnv1a(outer_instance_id), 4);
    format!("kd{:08x}", rng.next_u64() as u32)
}

fn app_secret_for(seed: u64, outer_instance_id: &str, generation: u64) -> String {
    let mut rng = SplitMix64::new(seed ^ fnv1a(outer_instance_id), 5 + generation);
    format!(
        "{:016x}{:016x}{:08x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64() as u32
    )
}

/// `POST /jdyconnector/app_management/push_app_authorize?outerInstanceId=ID`.
pub(crate) async fn push_app_authorize(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = match admit(&state, &method, &uri, raw_query.as_deref(), &headers).await {
        Ok(query) => query,
        Err(answer) => return answer,
    };
    let Some(outer) = param(&query, "outerInstanceId").filter(|id| !id.trim().is_empty()) else {
        return business_error(1_030_000_001, "缺少参数 outerInstanceId");
    };
    let ttl = state.token_ttl(FaultKey::Kingdee, DEFAULT_TOKEN_TTL_SECS);
    let seed = state.options.seed;
    let app_key = app_key_for(seed, outer);
    let now = Instant::now();
    let generation = {
        let mut inner = state.lock();
        let app = inner
            .kingdee_apps
            .entry(app_key.clone())
            .or_insert_with(|| KingdeeApp {
                outer_instance_id: outer.to_string(),
                generation: 0,
                secret_issued: now,
                auth_token_calls: Default::default(),
            });
        // The secret rotates once its period is over (with a zero TTL, on every call: each
        // secret handed out is stale at once).
        if now.duration_since(app.secret_issued) >= ttl {
            app.generation += 1;
            app.secret_issued = now;
        }
        app.generation
    };
    wire::json(
        StatusCode::OK,
        json!({
            "errcode": 0,
            "description": "成功",
            "data": [{
                "appKey": app_key,
                "appSecret": app_secret_for(seed, outer, generation),
                "accountId": format!("{:x}", fnv1a(outer) & 0xFFFF_FFFF_FFFF),
                "accountName": "沙箱演示账套",
                "domain": "tf.jdy.com",
                "outerInstanceId": outer,
                "status": 1,
            }]
        }),
    )
}

/// `GET /jdyconnector/app_management/kingdee_auth_token?app_key=K&app_signature=S`.
pub(crate) async fn kingdee_auth_token(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = match admit(&state, &method, &uri, raw_query.as_deref(), &headers).await {
        Ok(query) => query,
        Err(answer) => return answer,
    };
    let app_key = param(&query, "app_key").unwrap_or("").to_string();
    let signature = param(&query, "app_signature").unwrap_or("").to_string();
    let ttl = state.token_ttl(FaultKey::Kingdee, DEFAULT_TOKEN_TTL_SECS);
    let seed = state.options.seed;
    let now = Instant::now();
    let mut inner = state.lock();
    let Some(app) = inner.kingdee_apps.get_mut(&app_key) else {
        return business_error(SECRET_CHECK_FAILED, "授权密钥校验失败，请获取最新密钥加密");
    };
    while app
        .auth_token_calls
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
    {
        app.auth_token_calls.pop_front();
    }
    if app.auth_token_calls.len() >= AUTH_TOKEN_CALLS_PER_MINUTE {
        return gateway_error(
            5007,
            "too many requests: 2 per minute",
            "调用过于频繁，每分钟最多 2 次",
        );
    }
    app.auth_token_calls.push_back(now);
    let stale = ttl == Duration::ZERO || now.duration_since(app.secret_issued) >= ttl;
    let current = app_secret_for(seed, &app.outer_instance_id, app.generation);
    let outer = app.outer_instance_id.clone();
    if stale || signature != kingdee_app_signature(&app_key, &current) {
        return business_error(SECRET_CHECK_FAILED, "授权密钥校验失败，请获取最新密钥加密");
    }
    let token = AppState::issue_token(&mut inner, "kd-app-token", ttl);
    wire::json(
        StatusCode::OK,
        json!({
            "errcode": 0,
            "description": "成功",
            "data": {"app-token": token, "uid": format!("{:x}", fnv1a(&outer) & 0xFFFF_FFFF)},
        }),
    )
}

/// Any other path under `/jdyconnector/`: the gateway's "API not found".
pub(crate) async fn not_found() -> Response {
    gateway_error(5001, "api not found", "API 不存在")
}
