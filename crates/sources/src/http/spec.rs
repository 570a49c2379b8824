//! Spec parsing: what a scheme's source metadata asks of an API (method, path, where fields
//! travel, where the records are, how pages are asked for and when they end), resolved once per
//! run over the connection kind's [`Defaults`] into an [`ApiSpec`] the paginator follows.

use std::time::Duration;

use ferry_core::FerryError;
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use reqwest::Method;
use serde_json::{Map, Value};

use super::client::{Body, Request};
use super::lookups::Lookup;

/// Pages one run may read when the scheme sets no `pagination.max_pages`.
pub const DEFAULT_MAX_PAGES: u64 = 100_000;
/// Records per page when neither the scheme nor the vendor says.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// How pages are asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
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

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "page" => Some(Mode::Page),
            "offset" => Some(Mode::Offset),
            "cursor" => Some(Mode::Cursor),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

/// How request fields travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    /// Every field goes in the query string.
    None,
}

/// What a connection kind assumes for an API when the scheme does not say.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub method: Method,
    pub body: BodyFormat,
    /// Fields sent in the query string even on a POST (Yida's `pageNumber`, `pageSize`).
    pub query_fields: Vec<String>,
    /// Fields sent as JSON text when they render to an object (Yida's `searchFieldJson`).
    pub json_text_fields: Vec<String>,
    pub records_at: Option<String>,
    pub mode: Option<Mode>,
    pub page_size: u64,
    /// The vendor's largest page; a bigger `pageSize` is a configuration error.
    pub max_page_size: Option<u64>,
    pub has_next_at: Option<String>,
    pub total_at: Option<String>,
    /// Lookups used when the scheme has no `lookups` key (OKKI's department names).
    pub lookups: Option<Value>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            method: Method::GET,
            body: BodyFormat::Json,
            query_fields: Vec::new(),
            json_text_fields: Vec::new(),
            records_at: None,
            mode: None,
            page_size: DEFAULT_PAGE_SIZE,
            max_page_size: None,
            has_next_at: None,
            total_at: None,
            lookups: None,
        }
    }
}

/// The resolved plan for one scheme's API: the vendor's defaults with the scheme's metadata on top.
#[derive(Clone, Debug)]
pub struct ApiSpec {
    pub method: Method,
    pub path: String,
    pub body: BodyFormat,
    pub query_fields: Vec<String>,
    pub json_text_fields: Vec<String>,
    /// JSON pointer to the records array (`""`: the whole body).
    pub records_at: String,
    pub mode: Mode,
    pub page_size: u64,
    pub start_page: u64,
    pub max_pages: u64,
    pub has_next_at: Option<String>,
    pub total_at: Option<String>,
    pub cursor_at: Option<String>,
    pub cursor_param: Option<String>,
    pub short_page_ends: bool,
    pub overlap: Duration,
    pub lookups: Vec<Lookup>,
}

pub(crate) fn config_at(path: &str, message: impl std::fmt::Display) -> FerryError {
    FerryError::config(format!("source.metadata.{path}: {message}"))
}

pub(crate) fn opt_text(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(config_at(path, format!("expected text, found {other}"))),
    }
}

fn opt_uint(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| config_at(path, format!("expected a whole number, found {v}"))),
    }
}

fn text_list(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, FerryError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    config_at(key, format!("expected a list of field names, found {v}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(config_at(
            key,
            format!("expected a list of field names, found {other}"),
        )),
    }
}

/// A JSON pointer as the scheme writes it: `/data/datas`; `/` and `` mean the whole body.
pub(crate) fn pointer(text: &str) -> String {
    let text = text.trim();
    if text == "/" {
        String::new()
    } else {
        text.to_string()
    }
}

impl ApiSpec {
    /// Resolve `metadata` over `defaults`; every mistake is a configuration error with its path.
    pub fn resolve(metadata: &Metadata, defaults: Defaults) -> Result<ApiSpec, FerryError> {
        let extra = &metadata.extra;
        let pagination = metadata.pagination.clone().unwrap_or_default();
        let pextra = &pagination.extra;
        let method = match metadata.method.as_deref().map(str::trim) {
            None | Some("") => defaults.method.clone(),
            Some(m) => match m.to_ascii_uppercase().as_str() {
                "GET" => Method::GET,
                "POST" => Method::POST,
                "PUT" => Method::PUT,
                other => {
                    return Err(config_at(
                        "method",
                        format!("`{other}` is not GET, POST or PUT"),
                    ));
                }
            },
        };
        let body = match opt_text(extra, "body_format", "body_format")?.as_deref() {
            None => defaults.body,
            Some("json") => BodyFormat::Json,
            Some("form") => BodyFormat::Form,
            Some("none") => BodyFormat::None,
            Some(other) => {
                return Err(config_at(
                    "body_format",
                    format!("`{other}` is not json, form or none"),
                ));
            }
        };
        let path = metadata.api.trim().to_string();
        if path.is_empty() {
            return Err(config_at("api", "the API path is empty"));
        }
        if path.contains("://") {
            return Err(config_at(
                "api",
                "give a path under the connection's base_url, not a full URL",
            ));
        }
        let records_at = metadata
            .records_at
            .clone()
            .or(defaults.records_at)
            .map(|p| pointer(&p))
            .unwrap_or_default();
        if !records_at.is_empty() && !records_at.starts_with('/') {
            return Err(config_at(
                "records_at",
                format!("`{records_at}` is not a JSON pointer (write `/data/items`)"),
            ));
        }
        let cursor_at = opt_text(pextra, "cursor_at", "pagination.cursor_at")?.map(|p| pointer(&p));
        let request_text = serde_json::to_string(&metadata.request).unwrap_or_default();
        let mode = match pagination.mode.as_deref() {
            Some(text) => Mode::parse(text).ok_or_else(|| {
                config_at(
                    "pagination.mode",
                    format!("`{text}` is not an HTTP paging mode (page, offset, cursor, none)"),
                )
            })?,
            None => match defaults.mode {
                Some(mode) => mode,
                None if cursor_at.is_some() => Mode::Cursor,
                None if request_text.contains("PAGINATION_START_PAGE") => Mode::Page,
                None if request_text.contains("PAGINATION_START_ROW") => Mode::Offset,
                None => Mode::None,
            },
        };
        if mode == Mode::Cursor && cursor_at.is_none() {
            return Err(config_at(
                "pagination.cursor_at",
                "cursor paging needs the JSON pointer of the next-page token",
            ));
        }
        let page_size = pagination.page_size.unwrap_or(defaults.page_size);
        if page_size == 0 {
            return Err(config_at("pagination.pageSize", "must be at least 1"));
        }
        if let Some(max) = defaults.max_page_size
            && page_size > max
        {
            return Err(config_at(
                "pagination.pageSize",
                format!("{page_size} is more than the {max} records a page this API serves"),
            ));
        }
        let max_pages = pagination.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        if max_pages == 0 {
            return Err(config_at("pagination.max_pages", "must be at least 1"));
        }
        let short_page_ends = match pextra.get("short_page_ends") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(config_at(
                    "pagination.short_page_ends",
                    format!("expected true or false, found {other}"),
                ));
            }
        };
        let lookups = match extra.get("lookups").or(defaults.lookups.as_ref()) {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => Lookup::parse_all(value)?,
        };
        Ok(ApiSpec {
            method,
            path,
            body,
            query_fields: text_list(extra, "query_fields")?.unwrap_or(defaults.query_fields),
            json_text_fields: text_list(extra, "json_text_fields")?
                .unwrap_or(defaults.json_text_fields),
            records_at,
            mode,
            page_size,
            start_page: opt_uint(pextra, "start_page", "pagination.start_page")?.unwrap_or(1),
            max_pages,
            has_next_at: opt_text(pextra, "has_next_at", "pagination.has_next_at")?
                .or(defaults.has_next_at)
                .map(|p| pointer(&p)),
            total_at: opt_text(pextra, "total_at", "pagination.total_at")?
                .or(defaults.total_at)
                .map(|p| pointer(&p)),
            cursor_at,
            cursor_param: opt_text(pextra, "cursor_param", "pagination.cursor_param")?,
            short_page_ends,
            overlap: crate::overlap(metadata)?,
            lookups,
        })
    }

    /// Place the rendered request fields: query string or body. Unset (null) fields are not sent.
    pub fn build(&self, base: &str, fields: Map<String, Value>) -> Request {
        let mut req = Request::new(self.method.clone(), base, &self.path);
        let mut body = Map::new();
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            let value = if self.json_text_fields.contains(&key)
                && (value.is_object() || value.is_array())
            {
                Value::String(value.to_string())
            } else {
                value
            };
            let in_query = self.method == Method::GET
                || self.body == BodyFormat::None
                || self.query_fields.contains(&key);
            if in_query {
                req.query.push((key, value_text(&value)));
            } else {
                body.insert(key, value);
            }
        }
        req.body = match self.body {
            _ if self.method == Method::GET => Body::Empty,
            BodyFormat::None => Body::Empty,
            BodyFormat::Json => Body::Json(Value::Object(body)),
            BodyFormat::Form => Body::Form(
                body.iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect(),
            ),
        };
        req
    }
}
