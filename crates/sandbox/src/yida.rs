//! DingTalk Yida: `POST /v1.0/yida/processes/instances?pageNumber=&pageSize=` (seed 001).
//!
//! Honoured filters: `formUuid` (required; only seed 001's form has instances), `searchFieldJson`
//! (a JSON string or an object; see [`FieldFilter`]), `instanceStatus`, `approvedResult`,
//! `originatorId`, `createFromTimeGMT`/`createToTimeGMT` and `modifiedFromTimeGMT`/
//! `modifiedToTimeGMT` (each `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or epoch ms, read as UTC,
//! bounds inclusive). Ignored: `appType`, `systemToken`, `userId`, `language`, `orderConfigJson`
//! (the order is always newest first, ties in a fixed order, so paging never skips or repeats).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::{FormValue, YIDA_FORM_UUID, YidaInstance};
use crate::dingtalk::{check_token, v1_error, v1_injected};
use crate::options::FaultKey;
use crate::state::AppState;
use crate::wire::{self, param, query_pairs, value_text};

/// The largest page Yida serves (unconfirmed; the connections assume it).
pub(crate) const MAX_PAGE_SIZE: u64 = 100;
/// Page size when the request names none.
const DEFAULT_PAGE_SIZE: u64 = 10;

/// One condition of `searchFieldJson`, matched against a form value:
/// - text fields: the value contains the given text (any of them, for an array);
/// - select/radio fields: the value equals the given text (any of them, for an array);
/// - number and date fields: `[min]` or `[min, max]` inclusive (`null` leaves a side open),
///   or a single value for equality.
///
/// Fields the form does not have are ignored.
#[derive(Debug)]
struct FieldFilter {
    field: String,
    value: Value,
}

impl FieldFilter {
    fn matches(&self, instance: &YidaInstance) -> bool {
        let Some(actual) = instance.data.field(&self.field) else {
            return true;
        };
        match actual {
            FormValue::Text(text) => {
                texts(&self.value).any(|wanted| text.contains(wanted.as_str()))
            }
            FormValue::Choice(choice) => texts(&self.value).any(|wanted| choice == wanted),
            FormValue::Number(number) => in_range(&self.value, number),
            FormValue::Date(ms) => in_range(&self.value, ms as f64),
        }
    }
}

fn texts(value: &Value) -> Box<dyn Iterator<Item = String> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter().filter_map(value_text)),
        other => Box::new(value_text(other).into_iter()),
    }
}

fn number(value: &Value) -> Option<f64> {
    value_text(value).and_then(|text| text.trim().parse::<f64>().ok())
}

fn in_range(filter: &Value, actual: f64) -> bool {
    match filter {
        Value::Array(bounds) => {
            let low = bounds.first().and_then(number);
            let high = bounds.get(1).and_then(number);
            low.is_none_or(|low| actual >= low) && high.is_none_or(|high| actual <= high)
        }
        other => number(other).is_some_and(|wanted| (wanted - actual).abs() < 1e-9),
    }
}

/// Everything a request filters on.
#[derive(Debug, Default)]
struct Query {
    form_uuid: String,
    fields: Vec<FieldFilter>,
    instance_status: Option<String>,
    approved_result: Option<String>,
    originator_id: Option<String>,
    create_from: Option<i64>,
    create_to: Option<i64>,
    modified_from: Option<i64>,
    modified_to: Option<i64>,
}

impl Query {
    fn is_everything(&self) -> bool {
        self.form_uuid == YIDA_FORM_UUID
            && self.fields.is_empty()
            && self.instance_status.is_none()
            && self.approved_result.is_none()
            && self.originator_id.is_none()
            && self.create_from.is_none()
            && self.create_to.is_none()
            && self.modified_from.is_none()
            && self.modified_to.is_none()
    }

    fn matches(&self, instance: &YidaInstance) -> bool {
        instance.form_uuid == self.form_uuid
            && self
                .instance_status
                .as_deref()
                .is_none_or(|status| instance.instance_status == status)
            && self
                .approved_result
                .as_deref()
                .is_none_or(|result| instance.approved_result == result)
            && self
                .originator_id
                .as_deref()
                .is_none_or(|id| instance.originator.user_id == id)
            && self
                .create_from
                .is_none_or(|from| instance.create_ms >= from)
            && self.create_to.is_none_or(|to| instance.create_ms <= to)
            && self
                .modified_from
                .is_none_or(|from| instance.modified_ms >= from)
            && self.modified_to.is_none_or(|to| instance.modified_ms <= to)
            && self.fields.iter().all(|filter| filter.matches(instance))
    }
}

/// A time bound: `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or epoch milliseconds, as UTC.
fn parse_time(value: &Value) -> Option<i64> {
    if let Some(ms) = value.as_i64() {
        return Some(ms);
    }
    let text = value.as_str()?.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(at.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc().timestamp_millis())
}

fn bad_parameter(message: &str) -> Response {
    v1_error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

/// Reads the filters of a request body; errors are complete answers.
fn parse_query(body: &Map<String, Value>) -> Result<Query, Response> {
    let text = |name: &str| {
        body.get(name)
            .and_then(value_text)
            .filter(|text| !text.trim().is_empty())
    };
    let Some(form_uuid) = text("formUuid") else {
        return Err(v1_error(
            StatusCode::BAD_REQUEST,
            "MissingformUuid",
            "formUuid is mandatory for this action.",
        ));
    };
    let mut query = Query {
        form_uuid,
        instance_status: text("instanceStatus"),
        approved_result: text("approvedResult"),
        originator_id: text("originatorId"),
        ..Query::default()
    };
    for (name, slot) in [
        ("createFromTimeGMT", &mut query.create_from),
        ("createToTimeGMT", &mut query.create_to),
        ("modifiedFromTimeGMT", &mut query.modified_from),
        ("modifiedToTimeGMT", &mut query.modified_to),
    ] {
        match body.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.trim().is_empty() => {}
            Some(value) => match parse_time(value) {
                Some(ms) => *slot = Some(ms),
                None => {
                    return Err(bad_parameter(&format!(
                        "{name} must be 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD' or epoch milliseconds"
                    )));
                }
            },
        }
    }
    let search = match body.get("searchFieldJson") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => {
                return Err(bad_parameter(
                    "searchFieldJson must be a JSON object (as a string)",
                ));
            }
        },
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            return Err(bad_parameter(
                "searchFieldJson must be a JSON object (as a string)",
            ));
        }
    };
    query.fields = search
        .into_iter()
        .flatten()
        .map(|(field, value)| FieldFilter { field, value })
        .collect();
    Ok(query)
}

/// A page number or size from the query string, else the body, else the default.
fn paging_value(
    pairs: &[(String, String)],
    body: &Map<String, Value>,
    name: &str,
    default: u64,
) -> Result<u64, Response> {
    let raw = param(pairs, name)
        .map(str::to_string)
        .or_else(|| body.get(name).and_then(value_text));
    match raw {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(value) if value >= 1 => Ok(value),
            _ => Err(bad_parameter(&format!("{name} must be a positive integer"))),
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<'a> {
    total_count: usize,
    page_number: u64,
    data: Vec<&'a YidaInstance>,
}

/// `POST /v1.0/yida/processes/instances`.
pub(crate) async fn instances(
    State(state): State<Arc<AppState>>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(injected) = state.fault_gate(FaultKey::Yida).await {
        return v1_injected(injected);
    }
    if let Err(answer) = check_token(&state, &headers) {
        return answer;
    }
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        _ => return bad_parameter("the request body must be a JSON object"),
    };
    let pairs = query_pairs(raw_query.as_deref());
    let page_number = match paging_value(&pairs, &body, "pageNumber", 1) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    let page_size = match paging_value(&pairs, &body, "pageSize", DEFAULT_PAGE_SIZE) {
        Ok(value) => value,
        Err(answer) => return answer,
    };
    if page_size > MAX_PAGE_SIZE {
        return bad_parameter("pageSize must not exceed 100");
    }
    let query = match parse_query(&body) {
        Ok(query) => query,
        Err(answer) => return answer,
    };

    let start = usize::try_from((page_number - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let size = page_size as usize;
    let page = if query.is_everything() {
        Page {
            total_count: state.yida.len(),
            page_number,
            data: state.yida.iter().skip(start).take(size).collect(),
        }
    } else {
        let mut total_count = 0;
        let mut data = Vec::with_capacity(size);
        for instance in state.yida.iter().filter(|instance| query.matches(instance)) {
            if total_count >= start && data.len() < size {
                data.push(instance);
            }
            total_count += 1;
        }
        Page {
            total_count,
            page_number,
            data,
        }
    };
    match serde_json::to_value(&page) {
        Ok(value) => wire::json(StatusCode::OK, value),
        Err(_) => v1_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "serialisation failed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_bounds_accept_the_three_forms() {
        assert_eq!(
            parse_time(&json!("2024-01-02 03:04:05")),
            Some(1_704_164_645_000)
        );
        assert_eq!(parse_time(&json!("2024-01-02")), Some(1_704_153_600_000));
        assert_eq!(
            parse_time(&json!(1_704_153_600_000i64)),
            Some(1_704_153_600_000)
        );
        assert_eq!(parse_time(&json!("1704153600000")), Some(1_704_153_600_000));
        assert_eq!(parse_time(&json!("yesterday")), None);
    }

    #[test]
    fn number_ranges_follow_seed_001() {
        assert!(in_range(&json!([0.0001]), 12.5));
        assert!(!in_range(&json!([0.0001]), 0.0));
        assert!(in_range(&json!([null, 10]), 10.0));
        assert!(!in_range(&json!(["1", "2"]), 2.5));
        assert!(in_range(&json!(2.5), 2.5));
    }
}
