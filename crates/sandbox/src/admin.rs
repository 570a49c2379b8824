//! The sandbox's own endpoints under `/_sandbox/`, for tests and demos:
//! `GET /_sandbox/data/{yida|jushuitan|okki}` (the complete seeded dataset, in API order),
//! `GET`/`POST /_sandbox/faults` (read or change the fault knobs at run time) and
//! `GET /_sandbox/stats` (calls per route and answer status).
//!
//! `POST /_sandbox/faults` takes the `--faults` JSON shape; each endpoint named in it gets
//! exactly the knobs given (unnamed knobs off) and its fault counters restart, endpoints not
//! named keep theirs. It answers with all knobs now in force.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::options::{EndpointFaults, FaultKey};
use crate::state::AppState;
use crate::wire;

fn error(status: StatusCode, message: &str) -> Response {
    wire::json(status, json!({"error": message}))
}

fn to_json(value: Result<Value, serde_json::Error>) -> Response {
    match value {
        Ok(value) => wire::json(StatusCode::OK, value),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    }
}

/// `GET /_sandbox/data/{dataset}`.
pub(crate) async fn dataset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    match name.as_str() {
        "yida" => to_json(serde_json::to_value(&state.yida)),
        "jushuitan" => to_json(serde_json::to_value(&state.shops)),
        "okki" => to_json(serde_json::to_value(&state.users)),
        other => error(
            StatusCode::NOT_FOUND,
            &format!("unknown dataset {other:?}: use yida, jushuitan or okki"),
        ),
    }
}

/// `GET /_sandbox/faults`.
pub(crate) async fn get_faults(State(state): State<Arc<AppState>>) -> Response {
    to_json(serde_json::to_value(state.faults()))
}

/// `POST /_sandbox/faults`.
pub(crate) async fn set_faults(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    // Validate everything first, so that a bad request changes nothing.
    let mut updates = Vec::with_capacity(map.len());
    for (name, knobs) in map {
        let Some(key) = FaultKey::from_name(&name) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unknown endpoint {name:?}: use yida, jushuitan, okki, kingdee, dingtalk_token, robot, wecom_robot, feishu_robot or collect"
                ),
            );
        };
        match serde_json::from_value::<EndpointFaults>(knobs) {
            Ok(knobs) => updates.push((key, knobs)),
            Err(err) => return error(StatusCode::BAD_REQUEST, &format!("{name}: {err}")),
        }
    }
    for (key, knobs) in updates {
        state.set_faults(key, knobs);
    }
    to_json(serde_json::to_value(state.faults()))
}

/// `GET /_sandbox/stats`: `{"routes": {"POST /robot/send": {"calls", "statuses": {"200": n}}}}`.
pub(crate) async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let inner = state.lock();
    to_json(serde_json::to_value(&inner.stats).map(|routes| json!({"routes": routes})))
}

/// Any path no simulator serves.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint in the sandbox")
}
