//! Small request and response helpers shared by the simulated vendors.
//!
//! Handlers take raw bytes, raw query strings and header maps and parse them here, rather than
//! through axum's typed extractors, because an extractor's rejection answers in axum's own plain
//! text, and every answer of the sandbox must be in the vendor's documented shape, whatever the
//! client sent (malformed JSON, missing parameters, bytes that are not UTF-8).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Decodes `application/x-www-form-urlencoded` text (also a URL query): `+` is a space, `%XX` a
/// byte, a malformed escape stays literal, invalid UTF-8 becomes U+FFFD. Never fails.
pub(crate) fn decode_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&byte| byte == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = match part.iter().position(|&byte| byte == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < input.len() => {
                match (hex_value(input[index + 1]), hex_value(input[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        index += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The query parameters of a request, decoded.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|query| decode_form(query.as_bytes()))
        .unwrap_or_default()
}

/// The first value of `key`, if present.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A header's value as text; a value that is not visible ASCII counts as absent.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// True when the request body is JSON by its content type or, lacking one, by its first byte.
pub(crate) fn looks_like_json(headers: &HeaderMap, body: &[u8]) -> bool {
    match header(headers, "content-type") {
        Some(content_type) => content_type.to_ascii_lowercase().contains("json"),
        None => body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{'),
    }
}

/// The fields of a JSON-object or form body, as text (`None`: JSON that is not an object).
pub(crate) fn body_params(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    if !looks_like_json(headers, body) {
        return Some(decode_form(body));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(
            map.iter()
                .filter_map(|(key, value)| value_text(value).map(|text| (key.clone(), text)))
                .collect(),
        ),
        _ => None,
    }
}

/// Text of a JSON value that may come as a string or a number (`"2"` or `2`).
pub(crate) fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A JSON answer with the given status.
pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_escapes_and_garbage() {
        let pairs = decode_form(b"a=1+2&b=%E4%B8%AD%2B&c&d=%zz%4&=x&e=%ff");
        assert_eq!(
            pairs,
            vec![
                ("a".to_string(), "1 2".to_string()),
                ("b".to_string(), "中+".to_string()),
                ("c".to_string(), String::new()),
                ("d".to_string(), "%zz%4".to_string()),
                (String::new(), "x".to_string()),
                ("e".to_string(), "\u{FFFD}".to_string()),
            ]
        );
    }
}
