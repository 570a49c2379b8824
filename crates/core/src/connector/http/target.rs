//! The metadata keys of an `http` target, read and checked in one pass that reports every
//! problem with its key.

use crate::ErrorClass;
use crate::FerryError;
use crate::connector::whole_option;
use crate::record::value_text;
use crate::scheme::Metadata;
use serde_json::Value;

/// Records per request when `batch_size` is not set: one request per record.
pub const DEFAULT_RECORDS_PER_REQUEST: usize = 1;
/// Most records a batched request may carry.
pub const MAX_RECORDS_PER_REQUEST: usize = 1_000;
/// How often a throttled request is retried before the batch goes back to the queue.
pub const DEFAULT_HTTP_THROTTLE_RETRIES: usize = 5;
/// Seconds waited before a throttled request is tried again.
pub const DEFAULT_THROTTLE_WAIT_SECS: u64 = 5;

/// How a request's body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: the record's object, or an array of them for a batch.
    Json,
    /// `application/x-www-form-urlencoded`: the record's top-level fields (one record a request).
    Form,
}

/// The HTTP method a target uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

/// The typed options of an `http` target.
#[derive(Clone, Debug)]
pub struct HttpTargetOptions {
    /// The path under the connection's `base_url` (the scheme's `api`).
    pub path: String,
    pub method: Method,
    pub body_format: BodyFormat,
    pub records_per_request: usize,
    /// JSON pointer into the answer whose value says success (`/code`); absent: the HTTP status
    /// alone decides.
    pub success_pointer: Option<String>,
    /// The value at `success_pointer` that means success (default `0`).
    pub success_value: Value,
    /// JSON pointer to the answer's message, shown in errors (default `/msg`, then `/message`).
    pub message_pointer: Option<String>,
    /// Vendor codes (at `success_pointer`) by what they mean.
    pub throttle_codes: Vec<Value>,
    pub transient_codes: Vec<Value>,
    pub record_codes: Vec<Value>,
    pub config_codes: Vec<Value>,
    /// What an unlisted failure code means (default: the record is bad).
    pub other_codes: ErrorClass,
    pub throttle_retries: usize,
    pub throttle_wait_secs: u64,
}

impl HttpTargetOptions {
    /// Read the options of a target whose metadata is `metadata`; a configuration error lists
    /// every problem.
    pub fn read(metadata: &Metadata) -> Result<HttpTargetOptions, FerryError> {
        HttpTargetOptions::parse(metadata).map_err(|problems| {
            let list: Vec<String> = problems
                .into_iter()
                .map(|(path, message)| format!("{path}: {message}"))
                .collect();
            FerryError::config(list.join("; "))
        })
    }

    /// [`HttpTargetOptions::read`], with every problem as `(path, message)`, the path from the
    /// scheme's root: what `ferry lint` reports for an http target.
    pub fn parse(metadata: &Metadata) -> Result<HttpTargetOptions, Vec<(String, String)>> {
        let mut problems: Vec<String> = Vec::new();
        let extra = &metadata.extra;
        let at = |key: &str| format!("target.metadata.{key}");

        let path = metadata.api.trim().to_string();
        if path.is_empty() || path.contains("://") || path.starts_with("//") {
            problems.push(format!(
                "{}: `{path}` is not a path under the connection's base_url (such as `/v1/orders`)",
                at("api")
            ));
        }
        let method = match metadata
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some(other) => {
                problems.push(format!(
                    "{}: `{other}` is not a method an http target sends (POST, PUT)",
                    at("method")
                ));
                Method::Post
            }
        };
        let body_format = match extra.get("body_format") {
            None => BodyFormat::Json,
            Some(Value::String(s)) if s == "json" => BodyFormat::Json,
            Some(Value::String(s)) if s == "form" => BodyFormat::Form,
            Some(other) => {
                problems.push(format!(
                    "{}: `{}` is not a body format (json, form)",
                    at("body_format"),
                    value_text(other)
                ));
                BodyFormat::Json
            }
        };
        let records_per_request = match metadata.batch_size {
            None => DEFAULT_RECORDS_PER_REQUEST,
            Some(n) if (1..=MAX_RECORDS_PER_REQUEST).contains(&n) => n,
            Some(n) => {
                problems.push(format!(
                    "{}: `{n}` is not a whole number from 1 to {MAX_RECORDS_PER_REQUEST}",
                    at("batch_size")
                ));
                1
            }
        };
        if body_format == BodyFormat::Form && records_per_request > 1 {
            problems.push(format!(
                "{}: a form carries one record; use `body_format` = \"json\" to send batches",
                at("batch_size")
            ));
        }
        let mut pointer = |key: &str| match extra.get(key) {
            None => None,
            Some(Value::String(p)) if p.is_empty() || p.starts_with('/') => Some(p.clone()),
            Some(other) => {
                problems.push(format!(
                    "{}: `{}` is not a JSON pointer (such as `/code`)",
                    at(key),
                    value_text(other)
                ));
                None
            }
        };
        let success_pointer = pointer("success_pointer");
        let message_pointer = pointer("message_pointer");
        let success_value = extra
            .get("success_value")
            .cloned()
            .unwrap_or(Value::from(0));
        if extra.contains_key("success_value") && success_pointer.is_none() {
            problems.push(format!(
                "{}: needs `success_pointer`, the place in the answer to compare it with",
                at("success_value")
            ));
        }
        let mut codes = |key: &str| match extra.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(|v| v.is_number() || v.is_string()) => {
                items.clone()
            }
            Some(_) => {
                problems.push(format!("{}: must be a list of codes", at(key)));
                Vec::new()
            }
        };
        let throttle_codes = codes("throttle_codes");
        let transient_codes = codes("transient_codes");
        let record_codes = codes("record_codes");
        let config_codes = codes("config_codes");
        let other_codes = match extra.get("other_codes") {
            None => ErrorClass::Record,
            Some(Value::String(s)) if s == "record" => ErrorClass::Record,
            Some(Value::String(s)) if s == "transient" => ErrorClass::Transient,
            Some(Value::String(s)) if s == "config" => ErrorClass::Config,
            Some(other) => {
                problems.push(format!(
                    "{}: `{}` is not a class (record, transient, config)",
                    at("other_codes"),
                    value_text(other)
                ));
                ErrorClass::Record
            }
        };
        let mut whole = |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| {
            whole_option(extra, key, &at(key), range, default, &mut problems)
        };
        let throttle_retries = whole(
            "throttle_retries",
            0..=60,
            DEFAULT_HTTP_THROTTLE_RETRIES as u64,
        ) as usize;
        let throttle_wait_secs = whole("throttle_wait_secs", 1..=3_600, DEFAULT_THROTTLE_WAIT_SECS);
        if !problems.is_empty() {
            // Each problem was written `path: message`.
            return Err(problems
                .into_iter()
                .map(|p| match p.split_once(": ") {
                    Some((path, message)) => (path.to_string(), message.to_string()),
                    None => (String::new(), p),
                })
                .collect());
        }
        Ok(HttpTargetOptions {
            path,
            method,
            body_format,
            records_per_request,
            success_pointer,
            success_value,
            message_pointer,
            throttle_codes,
            transient_codes,
            record_codes,
            config_codes,
            other_codes,
            throttle_retries,
            throttle_wait_secs,
        })
    }

    /// What the vendor's `code` means; `None` when it means success.
    pub fn class_of(&self, code: &Value) -> Option<Class> {
        let same = |list: &[Value]| list.iter().any(|c| same_code(c, code));
        if same_code(&self.success_value, code) {
            None
        } else if same(&self.throttle_codes) {
            Some(Class::Throttled)
        } else if same(&self.transient_codes) {
            Some(Class::Of(ErrorClass::Transient))
        } else if same(&self.record_codes) {
            Some(Class::Of(ErrorClass::Record))
        } else if same(&self.config_codes) {
            Some(Class::Of(ErrorClass::Config))
        } else {
            Some(Class::Of(self.other_codes))
        }
    }
}

/// What a failure code means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Throttled,
    Of(ErrorClass),
}

/// Codes compare by their text, so `0` matches `"0"` (APIs answer either).
fn same_code(a: &Value, b: &Value) -> bool {
    a == b || value_text(a) == value_text(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(extra: Value) -> Metadata {
        let mut m: Metadata = serde_json::from_value(json!({"api": "/collect/orders"})).unwrap();
        if let Value::Object(map) = extra {
            m.extra.extend(map);
        }
        m
    }

    #[test]
    fn codes_are_classed_by_configuration_and_compare_as_text() {
        let o = HttpTargetOptions::read(&metadata(json!({
            "success_pointer": "/code",
            "throttle_codes": [4290],
            "transient_codes": ["503"],
            "config_codes": [401],
        })))
        .unwrap();
        assert_eq!(o.class_of(&json!(0)), None);
        assert_eq!(o.class_of(&json!("0")), None);
        assert_eq!(o.class_of(&json!(4290)), Some(Class::Throttled));
        assert_eq!(
            o.class_of(&json!(503)),
            Some(Class::Of(ErrorClass::Transient))
        );
        assert_eq!(o.class_of(&json!(401)), Some(Class::Of(ErrorClass::Config)));
        assert_eq!(
            o.class_of(&json!(1001)),
            Some(Class::Of(ErrorClass::Record))
        );
    }

    #[test]
    fn every_bad_key_is_reported() {
        let mut m = metadata(json!({
            "body_format": "xml",
            "success_pointer": "code",
            "throttle_codes": 4290,
            "other_codes": "maybe",
        }));
        m.method = Some("DELETE".into());
        m.batch_size = Some(0);
        assert_eq!(
            HttpTargetOptions::read(&m).unwrap_err(),
            FerryError::config(
                "target.metadata.method: `DELETE` is not a method an http target sends (POST, PUT); \
                 target.metadata.body_format: `xml` is not a body format (json, form); \
                 target.metadata.batch_size: `0` is not a whole number from 1 to 1000; \
                 target.metadata.success_pointer: `code` is not a JSON pointer (such as `/code`); \
                 target.metadata.throttle_codes: must be a list of codes; \
                 target.metadata.other_codes: `maybe` is not a class (record, transient, config)"
            )
        );
    }
}
