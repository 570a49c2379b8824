//! The typed source options of the HTTP API kinds (`http` and the vendors, which are HTTP
//! sources with their own auth and defaults): what a scheme's source metadata sets, parsed once.
//!
//! [`ApiOptions::parse`] reads every key an HTTP API source reads and returns every problem as
//! `(path, message)`, paths under the endpoint's `metadata` (`pagination.mode`). The kinds'
//! `check` runs it for `ferry lint`; `ferry_sources` runs the same parse when it opens a source
//! and lays the kind's defaults under what the scheme set, so lint and run time say the same
//! thing about the same key. [`HttpSourceOptions`] adds what the generic `http` kind alone reads.

use serde_json::{Map, Value};

use crate::record::value_text;
use crate::scheme::Metadata;

/// Pages one run may read when the scheme sets no `pagination.max_pages`.
pub const DEFAULT_MAX_PAGES: u64 = 100_000;
/// The first page number when the scheme sets no `pagination.start_page`.
pub const DEFAULT_START_PAGE: u64 = 1;

/// `(path, message)` problems, paths under the endpoint's `metadata`.
pub type Problems = Vec<(String, String)>;

/// An HTTP method a source sends (`method`, a lookup's `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMethod {
    Get,
    Post,
    Put,
}

impl ApiMethod {
    /// As sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiMethod::Get => "GET",
            ApiMethod::Post => "POST",
            ApiMethod::Put => "PUT",
        }
    }
}

/// How request fields travel (`body_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    /// Every field goes in the query string.
    None,
}

/// How pages are asked for (`pagination.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// Page numbers (`{PAGINATION_START_PAGE}`, from `pagination.start_page`, default 1).
    Page,
    /// Row offsets (`{PAGINATION_START_ROW}`, from 0).
    Offset,
    /// A next-page token found at `pagination.cursor_at`, sent back as `{cursor}` or as the
    /// `pagination.cursor_param` field.
    Cursor,
    /// One call.
    None,
}

impl PagingMode {
    /// The mode written `text`, if it is an HTTP one.
    pub fn parse(text: &str) -> Option<PagingMode> {
        match text {
            "page" => Some(PagingMode::Page),
            "offset" => Some(PagingMode::Offset),
            "cursor" => Some(PagingMode::Cursor),
            "none" => Some(PagingMode::None),
            _ => None,
        }
    }
}

/// One `lookups` entry: a field added to every record.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// `{"field", "from", "pick", "join"}`: the `pick` value of each element of the record's
    /// array `from`, as an array, or as text joined with `join`.
    Nested {
        field: String,
        from: String,
        pick: String,
        join: Option<String>,
    },
    /// `{"field", "api", "method", "records_at", "key", "value", "match"}`: a second call,
    /// made once per run, whose records form a table `key -> value`; the record's `match`
    /// field picks the row (null when there is none).
    Call {
        field: String,
        api: String,
        method: ApiMethod,
        records_at: String,
        key: String,
        value: String,
        matches: String,
    },
}

impl Lookup {
    /// A `lookups` list; problems at `lookups[i].key`.
    pub fn parse_all(value: &Value) -> Result<Vec<Lookup>, Problems> {
        let mut out = Problems::new();
        let lookups = parse_lookups(value, &mut out);
        if out.is_empty() {
            Ok(lookups)
        } else {
            Err(out)
        }
    }
}

/// What a scheme sets for an HTTP API source. Absent keys stay `None`: the connection kind's
/// defaults apply (`ferry_sources::http::Defaults`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiOptions {
    /// `api`: the path under the connection's `base_url`, trimmed.
    pub path: String,
    /// `method`: `GET`, `POST` or `PUT`.
    pub method: Option<ApiMethod>,
    /// `body_format`: `json`, `form` or `none` (every field in the query).
    pub body_format: Option<BodyFormat>,
    /// `query_fields`: fields sent in the query string even on a POST.
    pub query_fields: Option<Vec<String>>,
    /// `json_text_fields`: fields sent as JSON text when they render to an object or array.
    pub json_text_fields: Option<Vec<String>>,
    /// `records_at`: JSON pointer to the records (`""`: the whole body).
    pub records_at: Option<String>,
    /// `pagination.mode`.
    pub mode: Option<PagingMode>,
    /// `pagination.pageSize`.
    pub page_size: Option<u64>,
    /// `pagination.start_page`: the first page number (default [`DEFAULT_START_PAGE`]).
    pub start_page: u64,
    /// `pagination.max_pages`: the guard against a run that never ends (default
    /// [`DEFAULT_MAX_PAGES`]).
    pub max_pages: u64,
    /// `pagination.has_next_at`: JSON pointer to a "more pages" flag.
    pub has_next_at: Option<String>,
    /// `pagination.total_at`: JSON pointer to the total record count.
    pub total_at: Option<String>,
    /// `pagination.cursor_at`: JSON pointer to the next-page token.
    pub cursor_at: Option<String>,
    /// `pagination.cursor_param`: the request field that carries the token back.
    pub cursor_param: Option<String>,
    /// `pagination.short_page_ends`: a page shorter than asked is the last.
    pub short_page_ends: bool,
    /// `lookups`: fields added to every record (`null` or `[]`: none, not even the kind's).
    pub lookups: Option<Vec<Lookup>>,
}

impl ApiOptions {
    /// Read the source options of `metadata`, with every problem.
    pub fn parse(metadata: &Metadata) -> Result<ApiOptions, Problems> {
        let mut out = Problems::new();
        let options = ApiOptions::read(metadata, &mut out);
        if out.is_empty() {
            Ok(options)
        } else {
            Err(out)
        }
    }

    fn read(metadata: &Metadata, out: &mut Problems) -> ApiOptions {
        let extra = &metadata.extra;
        let empty = Map::new();
        let pagination = metadata.pagination.as_ref();
        let pextra = pagination.map_or(&empty, |p| &p.extra);

        let method = match metadata.method.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => Some(ApiMethod::Get),
                "POST" => Some(ApiMethod::Post),
                "PUT" => Some(ApiMethod::Put),
                other => {
                    out.push(problem(
                        "method",
                        format!("`{other}` is not GET, POST or PUT"),
                    ));
                    None
                }
            },
        };
        let body_format = match opt_text(extra, "body_format", "body_format", out).as_deref() {
            None => None,
            Some("json") => Some(BodyFormat::Json),
            Some("form") => Some(BodyFormat::Form),
            Some("none") => Some(BodyFormat::None),
            Some(other) => {
                out.push(problem(
                    "body_format",
                    format!("`{other}` is not json, form or none"),
                ));
                None
            }
        };
        let path = metadata.api.trim().to_string();
        if path.is_empty() {
            out.push(problem("api", "the API path is empty"));
        } else if path.contains("://") {
            out.push(problem(
                "api",
                "give a path under the connection's base_url, not a full URL",
            ));
        }
        let records_at = metadata.records_at.as_deref().map(pointer);
        if let Some(at) = &records_at
            && !at.is_empty()
            && !at.starts_with('/')
        {
            out.push(problem(
                "records_at",
                format!("`{at}` is not a JSON pointer (write `/data/items`)"),
            ));
        }
        let cursor_at =
            opt_text(pextra, "cursor_at", "pagination.cursor_at", out).map(|p| pointer(&p));
        let mode = match pagination.and_then(|p| p.mode.as_deref()) {
            None => None,
            Some(text) => {
                let mode = PagingMode::parse(text);
                if mode.is_none() {
                    out.push(problem(
                        "pagination.mode",
                        format!("`{text}` is not an HTTP paging mode (page, offset, cursor, none)"),
                    ));
                }
                mode
            }
        };
        if mode == Some(PagingMode::Cursor) && cursor_at.is_none() {
            out.push(problem("pagination.cursor_at", CURSOR_AT_MISSING));
        }
        let page_size = pagination.and_then(|p| p.page_size);
        if page_size == Some(0) {
            out.push(problem("pagination.pageSize", "must be at least 1"));
        }
        let max_pages = pagination
            .and_then(|p| p.max_pages)
            .unwrap_or(DEFAULT_MAX_PAGES);
        if max_pages == 0 {
            out.push(problem("pagination.max_pages", "must be at least 1"));
        }
        let short_page_ends = match pextra.get("short_page_ends") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                out.push(problem(
                    "pagination.short_page_ends",
                    format!("expected true or false, found {other}"),
                ));
                false
            }
        };
        let lookups = match extra.get("lookups") {
            None => None,
            // Written out as null: none, not even the kind's.
            Some(Value::Null) => Some(Vec::new()),
            Some(value) => Some(parse_lookups(value, out)),
        };
        ApiOptions {
            path,
            method,
            body_format,
            query_fields: text_list(extra, "query_fields", out),
            json_text_fields: text_list(extra, "json_text_fields", out),
            records_at,
            mode,
            page_size,
            start_page: opt_uint(pextra, "start_page", "pagination.start_page", out)
                .unwrap_or(DEFAULT_START_PAGE),
            max_pages,
            has_next_at: opt_text(pextra, "has_next_at", "pagination.has_next_at", out)
                .map(|p| pointer(&p)),
            total_at: opt_text(pextra, "total_at", "pagination.total_at", out).map(|p| pointer(&p)),
            cursor_at,
            cursor_param: opt_text(pextra, "cursor_param", "pagination.cursor_param", out),
            short_page_ends,
            lookups,
        }
    }
}

/// The message for cursor paging without `pagination.cursor_at`.
pub const CURSOR_AT_MISSING: &str = "cursor paging needs the JSON pointer of the next-page token";

/// The source options of `kind = "http"`: those of every HTTP API source, and how the generic
/// kind reads a code in the answer's body.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSourceOptions {
    pub api: ApiOptions,
    /// `code_at`: JSON pointer to a status code in the body; absent, only HTTP statuses decide.
    pub code_at: Option<String>,
    /// `ok_codes`: the body codes that mean success, as text (default `0` and `200`).
    pub ok_codes: Vec<String>,
    /// `message_at`: JSON pointer to the message shown with a bad code (default: the body).
    pub message_at: Option<String>,
}

impl HttpSourceOptions {
    /// Read the source options of `metadata`, with every problem.
    pub fn parse(metadata: &Metadata) -> Result<HttpSourceOptions, Problems> {
        let mut out = Problems::new();
        let api = ApiOptions::read(metadata, &mut out);
        let extra = &metadata.extra;
        let ok_codes = match extra.get("ok_codes") {
            None | Some(Value::Null) => vec!["0".to_string(), "200".to_string()],
            Some(Value::Array(items)) => items.iter().map(value_text).collect(),
            Some(other) => vec![value_text(other)],
        };
        let options = HttpSourceOptions {
            api,
            code_at: opt_text(extra, "code_at", "code_at", &mut out).map(|p| pointer(&p)),
            ok_codes,
            message_at: opt_text(extra, "message_at", "message_at", &mut out).map(|p| pointer(&p)),
        };
        if out.is_empty() {
            Ok(options)
        } else {
            Err(out)
        }
    }
}

/// A JSON pointer as the scheme writes it: `/data/datas`; `/` and `` mean the whole body.
pub fn pointer(text: &str) -> String {
    let text = text.trim();
    if text == "/" {
        String::new()
    } else {
        text.to_string()
    }
}

fn problem(path: &str, message: impl Into<String>) -> (String, String) {
    (path.to_string(), message.into())
}

fn opt_text(map: &Map<String, Value>, key: &str, path: &str, out: &mut Problems) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            out.push(problem(path, format!("expected text, found {other}")));
            None
        }
    }
}

fn opt_uint(map: &Map<String, Value>, key: &str, path: &str, out: &mut Problems) -> Option<u64> {
    let value = map.get(key).filter(|v| !v.is_null())?;
    let number = value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
    if number.is_none() {
        out.push(problem(
            path,
            format!("expected a whole number, found {value}"),
        ));
    }
    number
}

fn text_list(map: &Map<String, Value>, key: &str, out: &mut Problems) -> Option<Vec<String>> {
    let value = map.get(key).filter(|v| !v.is_null())?;
    let expected = |found: &Value| format!("expected a list of field names, found {found}");
    let Value::Array(items) = value else {
        out.push(problem(key, expected(value)));
        return None;
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(name) => names.push(name.to_string()),
            None => {
                out.push(problem(key, expected(item)));
                return None;
            }
        }
    }
    Some(names)
}

fn parse_lookups(value: &Value, out: &mut Problems) -> Vec<Lookup> {
    let Value::Array(items) = value else {
        out.push(problem("lookups", "expected a list of lookups"));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_lookup(item, &format!("lookups[{i}]"), out))
        .collect()
}

fn parse_lookup(item: &Value, path: &str, out: &mut Problems) -> Option<Lookup> {
    let Value::Object(map) = item else {
        out.push(problem(path, "expected an object"));
        return None;
    };
    let before = out.len();
    let need = |key: &str, out: &mut Problems| -> String {
        let at = format!("{path}.{key}");
        let found = opt_text(map, key, &at, out).filter(|s| !s.trim().is_empty());
        if found.is_none() && out.last().is_none_or(|(p, _)| *p != at) {
            out.push(problem(&at, "missing"));
        }
        found.unwrap_or_default()
    };
    let field = need("field", out);
    let lookup = if map.contains_key("api") {
        let at = format!("{path}.method");
        let method = match opt_text(map, "method", &at, out)
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase()
            .as_str()
        {
            "GET" => ApiMethod::Get,
            "POST" => ApiMethod::Post,
            other => {
                out.push(problem(&at, format!("`{other}` is not GET or POST")));
                ApiMethod::Get
            }
        };
        Lookup::Call {
            field,
            api: need("api", out),
            method,
            records_at: pointer(
                &opt_text(map, "records_at", &format!("{path}.records_at"), out)
                    .unwrap_or_default(),
            ),
            key: need("key", out),
            value: need("value", out),
            matches: need("match", out),
        }
    } else {
        Lookup::Nested {
            field,
            from: need("from", out),
            pick: need("pick", out),
            join: opt_text(map, "join", &format!("{path}.join"), out),
        }
    };
    (out.len() == before).then_some(lookup)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let bad = metadata(json!({
            "api": "/x",
            "method": "patch",
            "body_format": "xml",
            "query_fields": "page",
            "lookups": [{"field": "a", "from": "b"}, 3],
            "code_at": 5,
            "pagination": {
                "mode": "keyset", "start_page": "first", "short_page_ends": "yes",
                "cursor_at": ["x"]
            }
        }));
        let problems = HttpSourceOptions::parse(&bad).unwrap_err();
        let expected = [
            ("method", "`PATCH` is not GET, POST or PUT"),
            ("body_format", "`xml` is not json, form or none"),
            ("pagination.cursor_at", "expected text, found [\"x\"]"),
            (
                "pagination.mode",
                "`keyset` is not an HTTP paging mode (page, offset, cursor, none)",
            ),
            (
                "pagination.short_page_ends",
                "expected true or false, found \"yes\"",
            ),
            ("lookups[0].pick", "missing"),
            ("lookups[1]", "expected an object"),
            (
                "query_fields",
                "expected a list of field names, found \"page\"",
            ),
            (
                "pagination.start_page",
                "expected a whole number, found \"first\"",
            ),
            ("code_at", "expected text, found 5"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
        assert_eq!(problems, expected);
    }

    #[test]
    fn a_clean_scheme_parses_with_the_defaults() {
        let options = HttpSourceOptions::parse(&metadata(json!({
            "api": " /v1/items ",
            "records_at": "/",
            "pagination": {"cursor_at": "/next", "mode": "cursor"},
            "ok_codes": [0, "OK"]
        })))
        .unwrap();
        assert_eq!(options.api.path, "/v1/items");
        assert_eq!(options.api.records_at.as_deref(), Some(""));
        assert_eq!(options.api.mode, Some(PagingMode::Cursor));
        assert_eq!(options.api.start_page, DEFAULT_START_PAGE);
        assert_eq!(options.api.max_pages, DEFAULT_MAX_PAGES);
        assert_eq!(options.ok_codes, ["0", "OK"]);
        assert_eq!(
            HttpSourceOptions::parse(&metadata(json!({"api": "/x"})))
                .unwrap()
                .ok_codes,
            ["0", "200"]
        );
    }
}
