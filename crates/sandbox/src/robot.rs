//! The DingTalk custom group robot: `POST /robot/send?access_token=T&timestamp=MS&sign=S`, plus
//! `GET`/`DELETE /robot/messages` to read and clear what it accepted.
//!
//! Every answer is HTTP 200 with `{"errcode","errmsg"}` (injected 5xx bursts aside). A request is
//! checked in this order: method (43002), `access_token` (40035 missing, 300005 unknown),
//! throttling penalty (130101), `timestamp` within one hour and `sign` (310000), body size
//! (460101 over 20,000 bytes), JSON and `msgtype` shape (40035), keyword (310000), and the
//! rate window: the message over the limit answers 130101 and starts the penalty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::data::utc;
use crate::options::FaultKey;
use crate::state::{AppState, Injected, RobotMessage, RobotState};
use crate::wire::{self, param, query_pairs};

/// Largest body the robot accepts.
const MAX_BODY_BYTES: usize = 20_000;
/// Allowed distance between the request's `timestamp` and the server clock.
const TIMESTAMP_WINDOW_MS: i64 = 3_600_000;

fn answer(errcode: i64, errmsg: &str) -> Response {
    wire::json(
        StatusCode::OK,
        json!({"errcode": errcode, "errmsg": errmsg}),
    )
}

fn too_fast() -> Response {
    answer(130_101, "send too fast, exceed 20 times per minute")
}

/// How long a message whose answer is "lost" holds its request open (far past any client timeout).
const LOST_ANSWER_HOLD_SECS: u64 = 600;

/// `GET /robot/send`: the robot only takes POST.
pub(crate) async fn send_wrong_method() -> Response {
    answer(43_002, "需要POST请求")
}

/// `POST /robot/send`.
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    RawQuery(raw_query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query_pairs(raw_query.as_deref());
    let options = &state.options;
    match param(&query, "access_token") {
        None | Some("") => return answer(40_035, "缺少参数 access_token"),
        Some(token) if token != options.robot_access_token => {
            return answer(300_005, "token is not exist");
        }
        Some(_) => {}
    }
    let gate = state.fault_gate(FaultKey::Robot).await;
    let lose_answer = state.loses_answer(FaultKey::Robot);
    match gate {
        Some(Injected::Throttle) => return too_fast(),
        Some(Injected::Unavailable) => {
            return wire::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errcode": -1, "errmsg": "系统繁忙"}),
            );
        }
        None => {}
    }
    if throttled(&state.lock().robot) {
        return too_fast();
    }
    if !options.robot_secret.is_empty() {
        let timestamp = param(&query, "timestamp").and_then(|text| text.trim().parse::<i64>().ok());
        let Some(timestamp) =
            timestamp.filter(|ms| (wire::now_ms() - ms).abs() <= TIMESTAMP_WINDOW_MS)
        else {
            return answer(310_000, "invalid timestamp");
        };
        let expected = ferry_core::sign::robot_sign(&options.robot_secret, timestamp);
        if param(&query, "sign") != Some(expected.as_str()) {
            return answer(310_000, "sign not match");
        }
    }
    if body.len() > MAX_BODY_BYTES {
        return answer(460_101, "message too long, exceed 20000 bytes");
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return answer(40_035, "缺少参数 json");
    };
    let text = match message_text(&message) {
        Ok(text) => text,
        Err(missing) => return answer(40_035, &format!("缺少参数 {missing}")),
    };
    let keyword_missing = options
        .robot_keyword
        .as_deref()
        .is_some_and(|keyword| !keyword.is_empty() && !text.contains(keyword));
    if keyword_missing {
        return answer(310_000, "keywords not in content");
    }

    if !accept(&state, message) {
        return too_fast();
    }
    if lose_answer {
        // Taken, but the sender never hears so: it times out.
        tokio::time::sleep(Duration::from_secs(LOST_ANSWER_HOLD_SECS)).await;
    }
    answer(0, "ok")
}

/// Take `message` into the DingTalk robot's inbox if its own window allows; false when it is
/// over the limit (the robot then stays throttled for the penalty).
fn accept(state: &AppState, message: Value) -> bool {
    let options = &state.options;
    let window = Duration::from_secs(options.robot_window_secs);
    let penalty = Duration::from_secs(options.robot_penalty_secs);
    let mut inner = state.lock();
    accept_into(
        &mut inner.robot,
        &[(options.robot_limit, window)],
        penalty,
        message,
    )
}

/// Take `message` into `robot`'s inbox if each of its `(limit, window)` rate windows allows;
/// false when one is full, and the robot then stays throttled for `penalty`. Shared by the
/// simulated robots (DingTalk, WeCom, Feishu).
pub(crate) fn accept_into(
    robot: &mut RobotState,
    windows: &[(u32, Duration)],
    penalty: Duration,
    message: Value,
) -> bool {
    let now = Instant::now();
    let longest = windows.iter().map(|(_, w)| *w).max().unwrap_or_default();
    while robot
        .accepted_at
        .front()
        .is_some_and(|at| now.duration_since(*at) >= longest)
    {
        robot.accepted_at.pop_front();
    }
    let full = windows.iter().any(|(limit, window)| {
        let within = robot
            .accepted_at
            .iter()
            .filter(|at| now.duration_since(**at) < *window)
            .count();
        within >= *limit as usize
    });
    if full {
        if !penalty.is_zero() {
            robot.throttled_until = Some(now + penalty);
        }
        return false;
    }
    robot.accepted_at.push_back(now);
    let received_at_ms = wire::now_ms();
    robot.messages.push(RobotMessage {
        received_at: utc(received_at_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        received_at_ms,
        body: message,
    });
    true
}

/// True while `robot` serves a throttling penalty.
pub(crate) fn throttled(robot: &RobotState) -> bool {
    robot
        .throttled_until
        .is_some_and(|until| Instant::now() < until)
}

/// What a robot accepted, oldest first, as JSON.
pub(crate) fn inbox(robot: &RobotState) -> Response {
    match serde_json::to_value(&robot.messages) {
        Ok(list) => wire::json(StatusCode::OK, list),
        Err(_) => wire::json(StatusCode::INTERNAL_SERVER_ERROR, json!([])),
    }
}

/// Clear a robot's inbox, rate window and penalty.
pub(crate) fn clear_inbox(robot: &mut RobotState) -> Response {
    let cleared = robot.messages.len();
    *robot = Default::default();
    wire::json(StatusCode::OK, json!({"cleared": cleared}))
}

/// The text a keyword check looks at, or the name of the first missing parameter.
fn message_text(message: &Value) -> Result<String, String> {
    let object = message.as_object().ok_or("json")?;
    let msgtype = object
        .get("msgtype")
        .and_then(Value::as_str)
        .ok_or("msgtype")?;
    let body = object
        .get(msgtype)
        .and_then(Value::as_object)
        .ok_or_else(|| msgtype.to_string())?;
    let field = |name: &str| -> Result<&str, String> {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| format!("{msgtype}.{name}"))
    };
    let text = match msgtype {
        "text" => field("content")?.to_string(),
        "markdown" => format!("{}\n{}", field("title")?, field("text")?),
        "link" => {
            field("messageUrl")?;
            format!("{}\n{}", field("title")?, field("text")?)
        }
        "actionCard" => {
            let single = field("singleTitle").and_then(|_| field("singleURL"));
            let buttons = body.get("btns").and_then(Value::as_array).filter(|btns| {
                !btns.is_empty()
                    && btns.iter().all(|btn| {
                        ["title", "actionURL"]
                            .iter()
                            .all(|key| btn.get(key).and_then(Value::as_str).is_some())
                    })
            });
            if single.is_err() && buttons.is_none() {
                return Err(format!("{msgtype}.singleURL"));
            }
            format!("{}\n{}", field("title")?, field("text")?)
        }
        "feedCard" => {
            let links = body
                .get("links")
                .and_then(Value::as_array)
                .filter(|links| !links.is_empty())
                .ok_or("feedCard.links")?;
            let mut titles = Vec::with_capacity(links.len());
            for link in links {
                for key in ["title", "messageURL", "picURL"] {
                    if link.get(key).and_then(Value::as_str).is_none() {
                        return Err(format!("feedCard.links.{key}"));
                    }
                }
                titles.push(link.get("title").and_then(Value::as_str).unwrap_or(""));
            }
            titles.join("\n")
        }
        other => return Err(format!("msgtype({other})")),
    };
    if let Some(at) = object.get("at") {
        let valid = at.as_object().is_some_and(|at| {
            ["atMobiles", "atUserIds"].iter().all(|key| {
                at.get(*key).is_none_or(|list| {
                    list.as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
                })
            }) && at.get("isAtAll").is_none_or(Value::is_boolean)
        });
        if !valid {
            return Err("at".to_string());
        }
    }
    Ok(text)
}

/// `GET /robot/messages`: what the robot accepted, oldest first.
pub(crate) async fn messages(State(state): State<Arc<AppState>>) -> Response {
    inbox(&state.lock().robot)
}

/// `DELETE /robot/messages`: clears the inbox, the rate window and any throttling penalty.
pub(crate) async fn clear_messages(State(state): State<Arc<AppState>>) -> Response {
    clear_inbox(&mut state.lock().robot)
}
