//! Jushuitan ERP (seed 002): the signed current open API, `POST /open/shops/query` and
//! `POST /openWeb/auth/refreshToken`.
//!
//! Requests are `application/x-www-form-urlencoded`; every one is checked in this order:
//! `app_key` and `sign` (code 10), `timestamp` within 15 minutes (code 140), `access_token`
//! (code 100, shops only), then the vendor's own rate limits (5 requests/s answers 199,
//! 100 requests/min answers 200; on unless `--no-jushuitan-rate-limits`). Answers are HTTP 200
//! with `{"code", "msg", "data"}`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::options::FaultKey;
use crate::state::{AppState, Injected};
use crate::wire::{self, decode_form, value_text};

/// The app credentials the sandbox accepts.
pub const JUSHUITAN_APP_KEY: &str = "jst-sandbox-key";
/// Secret belonging to [`JUSHUITAN_APP_KEY`].
pub const JUSHUITAN_APP_SECRET: &str = "jst-sandbox-secret";
/// An access token that never expires.
pub const JUSHUITAN_ACCESS_TOKEN: &str = "jst-sandbox-token";
/// A refresh token that can be used any number of times (issued ones are single-use).
pub const JUSHUITAN_REFRESH_TOKEN: &str = "jst-sandbox-refresh";

/// Largest page the API serves.
const MAX_PAGE_SIZE: u64 = 100;
/// Allowed distance between the request's `timestamp` and the server clock.
const TIMESTAMP_WINDOW_SECS: i64 = 15 * 60;
/// Lifetime of tokens from refreshToken (the vendor's `expires_in` is 30 days).
const DEFAULT_TOKEN_TTL_SECS: u64 = 30 * 86_400;
/// The vendor's limits.
const MAX_CALLS_PER_SECOND: usize = 5;
const MAX_CALLS_PER_MINUTE: usize = 100;

/// An answer in the vendor's shape (always HTTP 200).
fn answer(code: i64, msg: &str) -> Response {
    wire::json(
        StatusCode::OK,
        json!({"code": code, "msg": msg, "data": null}),
    )
}

fn injected_answer(injected: Injected) -> Response {
    match injected {
        Injected::Throttle => answer(199, "接口调用频率过高,请稍后再试"),
        Injected::Unavailable => wire::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": 503, "msg": "服务暂不可用", "data": null}),
        ),
    }
}

/// Checks signature, timestamp and (when `needs_token`) the access token, then the rate limits.
fn authenticate(
    state: &AppState,
    params: &BTreeMap<String, String>,
    needs_token: bool,
) -> Result<(), Response> {
    let app_key = params.get("app_key").map(String::as_str).unwrap_or("");
    let sign = params.get("sign").map(String::as_str).unwrap_or("");
    if app_key != JUSHUITAN_APP_KEY
        || sign.is_empty()
        || !sign.eq_ignore_ascii_case(&ferry_core::sign::jushuitan_sign(
            JUSHUITAN_APP_SECRET,
            params,
        ))
    {
        return Err(answer(10, "签名无效"));
    }
    let timestamp = params
        .get("timestamp")
        .and_then(|text| text.trim().parse::<i64>().ok());
    let now_secs = wire::now_ms() / 1000;
    if timestamp.is_none_or(|ts| (now_secs - ts).abs() > TIMESTAMP_WINDOW_SECS) {
        return Err(answer(140, "时间戳与服务器时间相差超过15分钟"));
    }
    if needs_token {
        let token = params.get("access_token").map(String::as_str).unwrap_or("");
        if token != JUSHUITAN_ACCESS_TOKEN
            && !(token.starts_with("jst-") && state.token_valid(token))
        {
            return Err(answer(100, "access_token无效或已过期"));
        }
    }
    if !state.options.no_jushuitan_rate_limits {
        let mut inner = state.lock();
        if let Err(code) = admit(&mut inner.jushuitan_calls, Instant::now()) {
            return Err(match code {
                199 => answer(199, "接口调用频率过高,请稍后再试"),
                _ => answer(200, "接口调用次数超过每分钟100次"),
            });
        }
    }
    Ok(())
}

/// Applies the vendor's limits to a call at `now`, given the calls of the last minute: records
/// it, or says which code refuses it (199 over 5/s, 200 over 100/min; refused calls don't count).
fn admit(calls: &mut VecDeque<Instant>, now: Instant) -> Result<(), i64> {
    while calls
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
    {
        calls.pop_front();
    }
    let last_second = calls
        .iter()
        .filter(|at| now.duration_since(**at) < Duration::from_secs(1))
        .count();
    if last_second >= MAX_CALLS_PER_SECOND {
        return Err(199);
    }
    if calls.len() >= MAX_CALLS_PER_MINUTE {
        return Err(200);
    }
    calls.push_back(now);
    Ok(())
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    decode_form(body).into_iter().collect()
}

/// What comes before any Jushuitan endpoint: the injected faults, then [`authenticate`]. Gives
/// the request's form, or the answer that stops it.
async fn admit_request(
    state: &AppState,
    body: &[u8],
    needs_token: bool,
) -> Result<BTreeMap<String, String>, Response> {
    if let Some(injected) = state.fault_gate(FaultKey::Jushuitan).await {
        return Err(injected_answer(injected));
    }
    let params = form(body);
    authenticate(state, &params, needs_token)?;
    Ok(params)
}

/// `POST /open/shops/query`: `biz = {"page_index","page_size"}`.
pub(crate) async fn shops_query(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let params = match admit_request(&state, &body, true).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let biz = match params.get("biz").map(|text| text.trim()) {
        None | Some("") => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return answer(30, "参数错误: biz 必须是 JSON 对象"),
        },
    };
    let number = |name: &str, default: u64| -> Result<u64, Response> {
        match biz.get(name).and_then(value_text) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(value) if value >= 1 => Ok(value),
                _ => Err(answer(30, &format!("参数错误: {name} 必须是正整数"))),
            },
        }
    };
    let page_index = match number("page_index", 1) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    let page_size = match number("page_size", MAX_PAGE_SIZE) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    if page_size > MAX_PAGE_SIZE {
        return answer(30, "参数错误: page_size 最大为 100");
    }
    let total = state.shops.len() as u64;
    let start = (page_index - 1).saturating_mul(page_size);
    let datas: Vec<_> = state
        .shops
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(page_size as usize)
        .collect();
    let page_count = total.div_ceil(page_size);
    wire::json(
        StatusCode::OK,
        json!({
            "code": 0,
            "msg": null,
            "data": {
                "page_index": page_index,
                "page_size": page_size,
                "data_count": total,
                "page_count": page_count,
                "has_next": page_index.saturating_mul(page_size) < total,
                "datas": datas,
            }
        }),
    )
}

/// `POST /openWeb/auth/refreshToken` (`grant_type=refresh_token`, `refresh_token`, `scope=all`).
pub(crate) async fn refresh_token(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let params = match admit_request(&state, &body, false).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    if params.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return answer(30, "参数错误: grant_type 必须是 refresh_token");
    }
    let presented = params.get("refresh_token").cloned().unwrap_or_default();
    let ttl = state.token_ttl(FaultKey::Jushuitan, DEFAULT_TOKEN_TTL_SECS);
    let mut inner = state.lock();
    let now = Instant::now();
    let usable = presented == JUSHUITAN_REFRESH_TOKEN
        || inner
            .jushuitan_refresh_tokens
            .remove(&presented)
            .is_some_and(|expiry| now < expiry);
    if !usable {
        return answer(100, "refresh_token无效或已过期");
    }
    let access_token = AppState::issue_token(&mut inner, "jst-access", ttl);
    inner.next_token += 1;
    let refresh = format!("jst-refresh-{:x}-{}", inner.next_token, wire::now_ms());
    // Refresh tokens outlive access tokens so that a client can always renew.
    inner.jushuitan_refresh_tokens.insert(
        refresh.clone(),
        now + ttl.saturating_mul(2) + Duration::from_secs(1),
    );
    wire::json(
        StatusCode::OK,
        json!({
            "code": 0,
            "msg": "ok",
            "data": {
                "access_token": access_token,
                "refresh_token": refresh,
                "expires_in": ttl.as_secs(),
                "scope": params.get("scope").cloned().unwrap_or_else(|| "all".to_string()),
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_answer_199_per_second_and_200_per_minute() {
        let start = Instant::now();
        let mut calls = VecDeque::new();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for n in 0..5 {
            assert_eq!(admit(&mut calls, at(n)), Ok(()));
        }
        assert_eq!(admit(&mut calls, at(10)), Err(199));
        // 100 calls spread over 40 s (5 per 2 s) stay under 5/s but fill the minute.
        let mut calls = VecDeque::new();
        for n in 0..100 {
            assert_eq!(admit(&mut calls, at(n * 400)), Ok(()), "call {n}");
        }
        assert_eq!(admit(&mut calls, at(40_000)), Err(200));
        // A minute after the first call, room again.
        assert_eq!(admit(&mut calls, at(60_001)), Ok(()));
    }
}
