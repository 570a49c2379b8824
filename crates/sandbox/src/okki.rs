//! OKKI CRM (seed 003): the client-credentials token and `GET /v1/user/list`.
//!
//! The token endpoint takes JSON or a form and answers `{"token_type":"Bearer","access_token"}`
//! (no `expires_in`, as the vendor documents for this grant); a client asking again while its
//! token lives gets the same token, which is not extended. OAuth errors are HTTP 400 with
//! `{"error","error_description"}`. The user list answers 401 for a missing, unknown or expired
//! token, and throttling (a fault knob only: OKKI publishes no limit) is HTTP 429 with
//! `Retry-After: 1`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::Response;
use serde_json::json;

use crate::data::format_datetime;
use crate::options::FaultKey;
use crate::state::{AppState, Injected};
use crate::wire::{self, body_params, header, param, query_pairs};

/// The client credentials the sandbox accepts.
pub const OKKI_CLIENT_ID: &str = "okki-sandbox-client";
/// Secret belonging to [`OKKI_CLIENT_ID`].
pub const OKKI_CLIENT_SECRET: &str = "okki-sandbox-secret";
/// A token lives 8 hours.
const DEFAULT_TOKEN_TTL_SECS: u64 = 8 * 3600;
/// Scopes a client may ask for (unconfirmed list; `user` is the one seed 003 needs).
const KNOWN_SCOPES: &[&str] = &[
    "user",
    "customer",
    "company",
    "lead",
    "opportunity",
    "order",
    "product",
];

fn oauth_error(error: &str, description: &str) -> Response {
    wire::json(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}

fn injected_answer(injected: Injected) -> Response {
    match injected {
        Injected::Throttle => {
            let mut response = wire::json(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"code": 429, "message": "Too Many Requests"}),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Injected::Unavailable => wire::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": 503, "message": "Service Unavailable"}),
        ),
    }
}

/// `POST /v1/oauth2/access_token` (`grant_type=client_credentials`, JSON or form).
pub(crate) async fn access_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(injected) = state.fault_gate(FaultKey::Okki).await {
        return injected_answer(injected);
    }
    let Some(params) = body_params(&headers, &body) else {
        return oauth_error("invalid_request", "The request body is not a JSON object.");
    };
    match param(&params, "grant_type") {
        Some("client_credentials") => {}
        None | Some("") => {
            return oauth_error("invalid_request", "The grant type was not specified.");
        }
        Some(_) => {
            return oauth_error(
                "unsupported_grant_type",
                "The authorization grant type is not supported.",
            );
        }
    }
    if param(&params, "client_id") != Some(OKKI_CLIENT_ID)
        || param(&params, "client_secret") != Some(OKKI_CLIENT_SECRET)
    {
        return oauth_error("invalid_client", "Client authentication failed.");
    }
    let unknown_scope = param(&params, "scope").is_some_and(|scope| {
        scope
            .split_whitespace()
            .any(|word| !KNOWN_SCOPES.contains(&word))
    });
    if unknown_scope {
        return oauth_error(
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        );
    }
    let ttl = state.token_ttl(FaultKey::Okki, DEFAULT_TOKEN_TTL_SECS);
    let mut inner = state.lock();
    let now = Instant::now();
    let live = inner
        .okki_client_tokens
        .get(OKKI_CLIENT_ID)
        .filter(|token| inner.tokens.get(*token).is_some_and(|expiry| now < *expiry))
        .cloned();
    let token = match live {
        Some(token) => token,
        None => {
            let token = AppState::issue_token(&mut inner, "okki", ttl);
            inner
                .okki_client_tokens
                .insert(OKKI_CLIENT_ID.to_string(), token.clone());
            token
        }
    };
    wire::json(
        StatusCode::OK,
        json!({"token_type": "Bearer", "access_token": token}),
    )
}

/// `GET /v1/user/list[?enable_flag=0|1]` with `Authorization: Bearer T` (or the bare token).
pub(crate) async fn user_list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(injected) = state.fault_gate(FaultKey::Okki).await {
        return injected_answer(injected);
    }
    let presented = header(&headers, "authorization")
        .map(|value| value.trim())
        .map(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim()
        })
        .unwrap_or("");
    if !(presented.starts_with("okki-") && state.token_valid(presented)) {
        return wire::json(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "access_token is invalid or expired"}),
        );
    }
    let pairs = query_pairs(query.as_deref());
    let enable_flag = param(&pairs, "enable_flag").and_then(|text| text.trim().parse::<u8>().ok());
    let users: Vec<_> = state
        .users
        .iter()
        .filter(|user| enable_flag.is_none_or(|flag| user.enable_flag == flag))
        .collect();
    wire::json(
        StatusCode::OK,
        json!({
            "code": 200,
            "message": "success",
            "now": format_datetime(wire::now_ms()),
            "data": users,
        }),
    )
}
