//! Spec parsing: what a scheme's source metadata asks of an API (method, path, where fields
//! travel, where the records are, how pages are asked for and when they end), resolved once per
//! run over the connection kind's [`Defaults`] into an [`ApiSpec`] the paginator follows.
//!
//! The metadata is read by the kind's typed options ([`ApiOptions`], in
//! `ferry_core::connector::http`), the same parse `ferry lint` runs, so a key lint accepts is a
//! key the source accepts, with the same message when it is not. What is left here is what
//! depends on the kind: its defaults, its largest page, and the paging mode a request implies.

use std::time::Duration;

use ferry_core::FerryError;
use ferry_core::connector::http::options::{ApiMethod, ApiOptions, CURSOR_AT_MISSING, Problems};
pub use ferry_core::connector::http::options::{
    BodyFormat, DEFAULT_MAX_PAGES, Lookup, PagingMode as Mode, pointer,
};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use reqwest::Method;
use serde_json::{Map, Value};

use super::client::{Body, Request};

/// Records per page when neither the scheme nor the vendor says.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

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
    pub lookups: Option<Vec<Lookup>>,
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

/// Every problem of the options as one configuration error, each with its path.
pub(crate) fn config_problems(problems: Problems) -> FerryError {
    FerryError::config(
        problems
            .iter()
            .map(|(path, message)| format!("source.metadata.{path}: {message}"))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The wire method of a parsed one.
pub(crate) fn method(method: ApiMethod) -> Method {
    match method {
        ApiMethod::Get => Method::GET,
        ApiMethod::Post => Method::POST,
        ApiMethod::Put => Method::PUT,
    }
}

impl ApiSpec {
    /// Parse `metadata`'s options and resolve them over `defaults`; every mistake is a
    /// configuration error with its path.
    pub fn resolve(metadata: &Metadata, defaults: Defaults) -> Result<ApiSpec, FerryError> {
        let options = ApiOptions::parse(metadata).map_err(config_problems)?;
        ApiSpec::from_options(&options, metadata, defaults)
    }

    /// Resolve parsed `options` over `defaults`. `metadata` gives the request tree (a paging
    /// mode can be implied by its templates) and the overlap.
    pub fn from_options(
        options: &ApiOptions,
        metadata: &Metadata,
        defaults: Defaults,
    ) -> Result<ApiSpec, FerryError> {
        let request_text = serde_json::to_string(&metadata.request).unwrap_or_default();
        let cursor_at = options.cursor_at.clone();
        let mode = match options.mode.or(defaults.mode) {
            Some(mode) => mode,
            None if cursor_at.is_some() => Mode::Cursor,
            None if request_text.contains("PAGINATION_START_PAGE") => Mode::Page,
            None if request_text.contains("PAGINATION_START_ROW") => Mode::Offset,
            None => Mode::None,
        };
        if mode == Mode::Cursor && cursor_at.is_none() {
            return Err(config_at("pagination.cursor_at", CURSOR_AT_MISSING));
        }
        let page_size = options.page_size.unwrap_or(defaults.page_size);
        if let Some(max) = defaults.max_page_size
            && page_size > max
        {
            return Err(config_at(
                "pagination.pageSize",
                format!("{page_size} is more than the {max} records a page this API serves"),
            ));
        }
        let pointer_of = |p: Option<String>| p.map(|p| pointer(&p));
        Ok(ApiSpec {
            method: options.method.map_or(defaults.method, method),
            path: options.path.clone(),
            body: options.body_format.unwrap_or(defaults.body),
            query_fields: options
                .query_fields
                .clone()
                .unwrap_or(defaults.query_fields),
            json_text_fields: options
                .json_text_fields
                .clone()
                .unwrap_or(defaults.json_text_fields),
            records_at: options
                .records_at
                .clone()
                .or(pointer_of(defaults.records_at))
                .unwrap_or_default(),
            mode,
            page_size,
            start_page: options.start_page,
            max_pages: options.max_pages,
            has_next_at: options
                .has_next_at
                .clone()
                .or(pointer_of(defaults.has_next_at)),
            total_at: options.total_at.clone().or(pointer_of(defaults.total_at)),
            cursor_at,
            cursor_param: options.cursor_param.clone(),
            short_page_ends: options.short_page_ends,
            overlap: crate::overlap(metadata)?,
            lookups: options
                .lookups
                .clone()
                .or(defaults.lookups)
                .unwrap_or_default(),
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
