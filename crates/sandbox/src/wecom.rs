//! The WeCom (企业微信) group robot: `POST /cgi-bin/webhook/send?key=K`, plus `GET`/`DELETE
//! /cgi-bin/webhook/messages` to read and clear what it accepted.
//!
//! From WeCom's group-robot documentation: every answer is HTTP 200 with `{"errcode","errmsg"}`
//! (injected 5xx bursts aside); a robot takes `text` (`content` at most 2,048 bytes, optional
//! `mentioned_list` of user ids and `mentioned_mobile_list` of mobiles, `"@all"` for everyone)
//! and `markdown` (`content` at most 4,096 bytes) among other types, and at most 20 messages a
//! minute. A request is checked in this order: `key` (93000 invalid webhook url), throttling
//! (45009), JSON (40058), `msgtype` (40008), content present (44004) and within its length
//! (40058), mention lists (40058), and the rate window (45009 over the limit). WeCom documents
//! no penalty beyond the window, so the robot takes messages again as soon as it has room.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::options::FaultKey;
use crate::robot::{accept_into, clear_inbox, inbox};
use crate::state::{AppState, Injected};
use crate::wire::{self, param, query_pairs};

/// Most bytes of a `text` message's content.
const MAX_TEXT_BYTES: usize = 2_048;
/// Most bytes of a `markdown` message's content.
const MAX_MARKDOWN_BYTES: usize = 4_096;
/// How long a message whose answer is "lost" holds its request open.
const LOST_ANSWER_HOLD_SECS: u64 = 600;

fn answer(errcode: i64, errmsg: &str) -> Response {
    wire::json(
        StatusCode::OK,
        json!({"errcode": errcode, "errmsg": errmsg}),
    )
}

fn too_fast() -> Response {
    answer(
        45_009,
        "api freq out of limit, more info at https://open.work.weixin.qq.com/devtool/query?e=45009",
    )
}

/// `POST /cgi-bin/webhook/send`.
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    RawQuery(raw_query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query_pairs(raw_query.as_deref());
    let options = &state.options;
    if param(&query, "key") != Some(options.wecom_key.as_str()) {
        return answer(
            93_000,
            "invalid webhook url, more info at https://open.work.weixin.qq.com/devtool/query?e=93000",
        );
    }
    let gate = state.fault_gate(FaultKey::Wecom).await;
    let lose_answer = state.loses_answer(FaultKey::Wecom);
    match gate {
        Some(Injected::Throttle) => return too_fast(),
        Some(Injected::Unavailable) => {
            return wire::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errcode": -1, "errmsg": "system busy"}),
            );
        }
        None => {}
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return answer(40_058, "invalid json");
    };
    if let Err((code, errmsg)) = check(&message) {
        return answer(code, &errmsg);
    }
    let window = Duration::from_secs(options.robot_window_secs);
    let accepted = accept_into(
        &mut state.lock().wecom,
        &[(options.wecom_limit, window)],
        Duration::ZERO,
        message,
    );
    if !accepted {
        return too_fast();
    }
    if lose_answer {
        tokio::time::sleep(Duration::from_secs(LOST_ANSWER_HOLD_SECS)).await;
    }
    answer(0, "ok")
}

/// The message's shape, as WeCom checks it: `Err((errcode, errmsg))` when refused.
fn check(message: &Value) -> Result<(), (i64, String)> {
    let msgtype = message.get("msgtype").and_then(Value::as_str).unwrap_or("");
    let (max, lists): (usize, &[&str]) = match msgtype {
        "text" => (MAX_TEXT_BYTES, &["mentioned_list", "mentioned_mobile_list"]),
        "markdown" => (MAX_MARKDOWN_BYTES, &[]),
        other => return Err((40_008, format!("invalid message type: {other:?}"))),
    };
    let part = message.get(msgtype).and_then(Value::as_object);
    let content = part
        .and_then(|p| p.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if content.is_empty() {
        return Err((44_004, "empty content".to_string()));
    }
    if content.len() > max {
        return Err((40_058, format!("{msgtype}.content exceed max length {max}")));
    }
    for list in lists {
        let valid = part.and_then(|p| p.get(*list)).is_none_or(|v| {
            v.as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        });
        if !valid {
            return Err((40_058, format!("invalid {msgtype}.{list}")));
        }
    }
    Ok(())
}

/// `GET /cgi-bin/webhook/messages`: what the robot accepted, oldest first.
pub(crate) async fn messages(State(state): State<Arc<AppState>>) -> Response {
    inbox(&state.lock().wecom)
}

/// `DELETE /cgi-bin/webhook/messages`: clears the inbox and the rate window.
pub(crate) async fn clear_messages(State(state): State<Arc<AppState>>) -> Response {
    clear_inbox(&mut state.lock().wecom)
}
