//! A generic business API, for the `http` target: `POST` or `PUT /collect/{path}` takes a JSON
//! object, a JSON array (a batch) or a form, and answers as most Chinese SaaS APIs do: HTTP 200
//! with `{"code": 0, "msg": "ok", "data": {"received": n}}` on success and a non-zero `code`
//! otherwise. `GET`/`DELETE /_sandbox/collect` read and clear what it took, so tests can assert
//! exactly what was posted.
//!
//! `POST /auth/token` hands out bearer tokens for it, as most of these APIs do: a JSON or form
//! body with `client_id` and `client_secret` answers `{"code": 0, "msg": "ok", "data":
//! {"access_token", "expires_in": 7200}}`; wrong credentials answer HTTP 401 with code 40001.
//! A token lives `collect.token_ttl_secs` (default 7200) whatever the answer says, so a shorter
//! knob plays a token revoked early. It shares the `collect` fault knobs.
//!
//! Checks, in order: `Authorization: Bearer <collect_token>` or a live issued token (HTTP 401,
//! code 401), the fault
//! knobs of `collect` (throttling answers HTTP 200 with code 4290; bursts answer HTTP 503), the
//! body (code 400 when it is neither JSON nor a form), and the records: a request holding a
//! string value equal to `collect_reject_value` anywhere is refused whole with code 1001 (a
//! per-record error: nothing of it is kept). A lost answer keeps what it took.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::options::FaultKey;
use crate::state::{AppState, Collected, Injected};
use crate::wire::{self, body_params, decode_form, header, param};

/// How long a request whose answer is "lost" holds its connection open.
const LOST_ANSWER_HOLD_SECS: u64 = 600;
/// The throttling answer's code.
pub const COLLECT_THROTTLE_CODE: i64 = 4_290;
/// The code of a refused record.
pub const COLLECT_REJECT_CODE: i64 = 1_001;
/// The code of refused client credentials at the token endpoint.
pub const COLLECT_BAD_CLIENT_CODE: i64 = 40_001;
/// What the token endpoint says a token lives, in seconds.
const TOKEN_EXPIRES_IN_SECS: u64 = 7_200;
/// Prefix of the tokens the endpoint issues.
const TOKEN_PREFIX: &str = "collect";

fn answer(status: StatusCode, code: i64, msg: &str) -> Response {
    wire::json(status, json!({"code": code, "msg": msg, "data": {}}))
}

/// `POST`/`PUT /collect/{path}`.
pub(crate) async fn collect(
    State(state): State<Arc<AppState>>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = &state.options;
    let bearer = header(&headers, "authorization").and_then(|h| h.strip_prefix("Bearer "));
    let authorised = bearer.is_some_and(|token| {
        token == options.collect_token
            || (token.starts_with(TOKEN_PREFIX) && state.token_valid(token))
    });
    if !authorised {
        return answer(
            StatusCode::UNAUTHORIZED,
            401,
            "unauthorized: bad or missing token",
        );
    }
    let gate = state.fault_gate(FaultKey::Collect).await;
    let lose_answer = state.loses_answer(FaultKey::Collect);
    match gate {
        Some(Injected::Throttle) => {
            return answer(StatusCode::OK, COLLECT_THROTTLE_CODE, "too many requests");
        }
        Some(Injected::Unavailable) => {
            return answer(StatusCode::SERVICE_UNAVAILABLE, 503, "service unavailable");
        }
        None => {}
    }
    let content_type = header(&headers, "content-type").unwrap_or("").to_string();
    let parsed = if content_type.contains("x-www-form-urlencoded") {
        let fields: Map<String, Value> = decode_form(&body)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Some(Value::Object(fields))
    } else {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
    };
    let Some(parsed) = parsed else {
        return answer(
            StatusCode::OK,
            400,
            "the body is neither a JSON object or array nor a form",
        );
    };
    if let Some(at) = find_value(&parsed, &options.collect_reject_value, String::new()) {
        return answer(
            StatusCode::OK,
            COLLECT_REJECT_CODE,
            &format!("invalid value at {at}"),
        );
    }
    let received = parsed.as_array().map_or(1, Vec::len);
    state.lock().collected.push(Collected {
        method: method.to_string(),
        path: format!("/{path}"),
        content_type,
        body: parsed,
    });
    if lose_answer {
        tokio::time::sleep(Duration::from_secs(LOST_ANSWER_HOLD_SECS)).await;
    }
    wire::json(
        StatusCode::OK,
        json!({"code": 0, "msg": "ok", "data": {"received": received}}),
    )
}

/// `POST /auth/token`: a token for the collect API.
pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.fault_gate(FaultKey::Collect).await {
        Some(Injected::Throttle) => {
            return answer(StatusCode::OK, COLLECT_THROTTLE_CODE, "too many requests");
        }
        Some(Injected::Unavailable) => {
            return answer(StatusCode::SERVICE_UNAVAILABLE, 503, "service unavailable");
        }
        None => {}
    }
    let Some(params) = body_params(&headers, &body) else {
        return answer(StatusCode::OK, 400, "the body is not a JSON object");
    };
    let options = &state.options;
    if param(&params, "client_id") != Some(options.collect_client_id.as_str())
        || param(&params, "client_secret") != Some(options.collect_client_secret.as_str())
    {
        return answer(
            StatusCode::UNAUTHORIZED,
            COLLECT_BAD_CLIENT_CODE,
            "invalid client_id or client_secret",
        );
    }
    let ttl = state.token_ttl(FaultKey::Collect, TOKEN_EXPIRES_IN_SECS);
    let token = AppState::issue_token(&mut state.lock(), TOKEN_PREFIX, ttl);
    wire::json(
        StatusCode::OK,
        json!({"code": 0, "msg": "ok", "data": {"access_token": token, "expires_in": TOKEN_EXPIRES_IN_SECS}}),
    )
}

/// The JSON pointer of the first string equal to `needle` in `value`.
fn find_value(value: &Value, needle: &str, at: String) -> Option<String> {
    match value {
        Value::String(s) if s == needle => Some(if at.is_empty() { "/".into() } else { at }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_value(v, needle, format!("{at}/{i}"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| find_value(v, needle, format!("{at}/{k}"))),
        _ => None,
    }
}

/// `GET /_sandbox/collect`: what the collect API took, oldest first.
pub(crate) async fn requests(State(state): State<Arc<AppState>>) -> Response {
    let inner = state.lock();
    match serde_json::to_value(&inner.collected) {
        Ok(list) => wire::json(StatusCode::OK, list),
        Err(_) => wire::json(StatusCode::INTERNAL_SERVER_ERROR, json!([])),
    }
}

/// `DELETE /_sandbox/collect`.
pub(crate) async fn clear(State(state): State<Arc<AppState>>) -> Response {
    let mut inner = state.lock();
    let cleared = inner.collected.len();
    inner.collected.clear();
    wire::json(StatusCode::OK, json!({"cleared": cleared}))
}
