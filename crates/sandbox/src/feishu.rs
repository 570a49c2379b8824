//! The Feishu (飞书) custom bot: `POST /open-apis/bot/v2/hook/{token}`, plus `GET`/`DELETE
//! /open-apis/bot/v2/messages` to read and clear what it accepted.
//!
//! From Feishu's custom-bot documentation: the body is `{"msg_type", "content"}` plus, with
//! signature verification on, `"timestamp"` (seconds, within an hour of the server's clock) and
//! `"sign"` (base64 of HMAC-SHA256 keyed by `"timestamp\nsecret"` over an empty message); at
//! most 20 KB a request; 100 messages a minute and 5 a second per bot. Every answer is HTTP 200
//! with `{"code","msg","data"}` (injected 5xx bursts aside). A request is checked in this order:
//! token (19001), throttling (11232), size (9499), JSON (9499), signature (19021), message
//! shape (9499: `text` needs `content.text`; `post` needs `content.post.<lang>.content`, lines of
//! `{"tag": "text"|"a"|"at"|"img"|"emotion"}` elements), keyword (19024), and the rate windows
//! (11232). No penalty beyond the windows.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::options::FaultKey;
use crate::robot::{accept_into, clear_inbox, inbox};
use crate::state::{AppState, Injected};
use crate::wire;

/// Largest request body the bot accepts.
const MAX_BODY_BYTES: usize = 20 * 1024;
/// Allowed distance between the request's `timestamp` and the server clock.
const TIMESTAMP_WINDOW_SECS: i64 = 3_600;
/// How long a message whose answer is "lost" holds its request open.
const LOST_ANSWER_HOLD_SECS: u64 = 600;
/// The elements a `post` line may hold.
const POST_TAGS: [&str; 5] = ["text", "a", "at", "img", "emotion"];

fn answer(code: i64, msg: &str) -> Response {
    wire::json(
        StatusCode::OK,
        json!({"code": code, "msg": msg, "data": {}}),
    )
}

fn too_fast() -> Response {
    answer(
        11_232,
        "frequency limited psm[lark.oapi.app_platform_runtime]",
    )
}

/// `POST /open-apis/bot/v2/hook/{token}`.
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let options = &state.options;
    if token != options.feishu_token {
        return answer(
            19_001,
            "param invalid: incoming webhook access token invalid",
        );
    }
    let gate = state.fault_gate(FaultKey::Feishu).await;
    let lose_answer = state.loses_answer(FaultKey::Feishu);
    match gate {
        Some(Injected::Throttle) => return too_fast(),
        Some(Injected::Unavailable) => {
            return wire::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"code": 9999, "msg": "service unavailable"}),
            );
        }
        None => {}
    }
    if body.len() > MAX_BODY_BYTES {
        return answer(9_499, "Bad Request: request body size exceeds 20KB");
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return answer(9_499, "Bad Request");
    };
    if !options.feishu_secret.is_empty() {
        let timestamp = message.get("timestamp").and_then(|t| match t {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            other => other.as_i64(),
        });
        let now_secs = wire::now_ms() / 1_000;
        let signed = timestamp
            .filter(|ts| (now_secs - ts).abs() <= TIMESTAMP_WINDOW_SECS)
            .is_some_and(|ts| {
                let expected = ferry_core::sign::feishu_bot_sign(&options.feishu_secret, ts);
                message.get("sign").and_then(Value::as_str) == Some(expected.as_str())
            });
        if !signed {
            return answer(
                19_021,
                "sign match fail or timestamp is not within one hour from current time",
            );
        }
    }
    let text = match message_text(&message) {
        Ok(text) => text,
        Err(why) => return answer(9_499, &format!("Bad Request: {why}")),
    };
    if let Some(keyword) = options.feishu_keyword.as_deref()
        && !keyword.is_empty()
        && !text.contains(keyword)
    {
        return answer(19_024, "Key Words Not Found");
    }
    let windows = [
        (options.feishu_per_sec, Duration::from_secs(1)),
        (
            options.feishu_limit,
            Duration::from_secs(options.robot_window_secs),
        ),
    ];
    if !accept_into(&mut state.lock().feishu, &windows, Duration::ZERO, message) {
        return too_fast();
    }
    if lose_answer {
        tokio::time::sleep(Duration::from_secs(LOST_ANSWER_HOLD_SECS)).await;
    }
    answer(0, "success")
}

/// The text a keyword check looks at, or what is wrong with the message.
fn message_text(message: &Value) -> Result<String, String> {
    let msg_type = message
        .get("msg_type")
        .and_then(Value::as_str)
        .ok_or("msg_type is missing")?;
    let content = message.get("content").and_then(Value::as_object);
    match msg_type {
        "text" => content
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| "content.text is missing".to_string()),
        "post" => {
            let post = content
                .and_then(|c| c.get("post"))
                .and_then(Value::as_object)
                .filter(|p| !p.is_empty())
                .ok_or("content.post is missing")?;
            let mut text = String::new();
            for (lang, body) in post {
                if let Some(title) = body.get("title").and_then(Value::as_str) {
                    text.push_str(title);
                    text.push('\n');
                }
                let lines = body
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("content.post.{lang}.content is missing"))?;
                for line in lines {
                    let elements = line.as_array().ok_or_else(|| {
                        format!("content.post.{lang}.content: a line is not a list")
                    })?;
                    for element in elements {
                        let tag = element.get("tag").and_then(Value::as_str).unwrap_or("");
                        if !POST_TAGS.contains(&tag) {
                            return Err(format!("content.post.{lang}: unknown tag {tag:?}"));
                        }
                        if let Some(t) = element.get("text").and_then(Value::as_str) {
                            text.push_str(t);
                        }
                    }
                    text.push('\n');
                }
            }
            Ok(text)
        }
        "image" | "share_chat" | "interactive" => Ok(String::new()),
        other => Err(format!("msg_type {other:?} is not supported")),
    }
}

/// `GET /open-apis/bot/v2/messages`: what the bot accepted, oldest first.
pub(crate) async fn messages(State(state): State<Arc<AppState>>) -> Response {
    inbox(&state.lock().feishu)
}

/// `DELETE /open-apis/bot/v2/messages`: clears the inbox and the rate windows.
pub(crate) async fn clear_messages(State(state): State<Arc<AppState>>) -> Response {
    clear_inbox(&mut state.lock().feishu)
}
