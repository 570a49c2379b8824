//! The paginator: [`ApiSource`] pages through one scheme's API for one run.
//!
//! It renders the scheme's `request` tree per page (`{PAGINATION_START_PAGE}`,
//! `{PAGINATION_START_ROW}`, `{PAGINATION_PAGE_SIZE}`, `{cursor}`), places each field in the
//! query or the body ([`ApiSpec::build`]), takes the records at a JSON pointer, and stops on an
//! empty page, `has_next` false, the total reached or no next cursor. A short page does not end a
//! run (servers clamp pages below what is asked) unless the scheme sets
//! `pagination.short_page_ends`; offsets advance by the records received. A
//! `pagination.max_pages` guard (default [`DEFAULT_MAX_PAGES`](super::DEFAULT_MAX_PAGES)) and a
//! check for an API that answers the same page twice make a paging mistake fail loudly instead
//! of looping forever.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::mapping::{record_id, render_tree};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::template::{Context, PageVars};
use ferry_core::{FerryError, Record};
use serde_json::{Map, Value, json};

use super::client::{HttpClient, Reply, Request};
use super::lookups::{Api, Enricher};
use super::spec::{ApiSpec, Mode, config_at};
use super::vendor::Vendor;
use crate::{Page, Source};

/// Whether a `has_next` value means "more": vendors send it as a bool, a number or a string.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "y" | "t"
        ),
        _ => false,
    }
}

fn as_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Pages through one scheme's API for one run.
pub struct ApiSource {
    http: HttpClient,
    vendor: Arc<dyn Vendor>,
    base: String,
    spec: ApiSpec,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
    /// Record id paths, tried in order (Yida: `processInstanceId`, then `extend.processInstanceId`).
    id_paths: Vec<String>,
    lookups: Enricher,
    pages: u64,
    offset: u64,
    cursor: Option<Value>,
    last_ids: Option<Vec<String>>,
    done: bool,
}

impl ApiSource {
    /// Open a run. `ctx` comes from the extractor with the overlap already applied.
    pub fn new(
        http: HttpClient,
        vendor: Arc<dyn Vendor>,
        base: &str,
        spec: ApiSpec,
        metadata: Arc<Metadata>,
        ctx: Context<'static>,
        id_paths: Vec<String>,
    ) -> ApiSource {
        ApiSource {
            http,
            vendor,
            base: base.to_string(),
            spec,
            metadata,
            ctx,
            id_paths,
            lookups: Enricher::default(),
            pages: 0,
            offset: 0,
            cursor: None,
            last_ids: None,
            done: false,
        }
    }

    /// The spec this source follows.
    pub fn spec(&self) -> &ApiSpec {
        &self.spec
    }

    /// The context the requests render with (`{{LAST_SYNC_TIME}}`, `{{LAST_CURSOR}}`).
    pub fn context(&self) -> &Context<'static> {
        &self.ctx
    }

    fn request(&self) -> Result<Request, FerryError> {
        let page = PageVars {
            page_size: self.spec.page_size,
            start_row: self.offset,
            start_page: page_number(self.spec.start_page, self.pages)?,
        };
        let mut vars = Map::new();
        vars.insert("cursor".into(), self.cursor.clone().unwrap_or(Value::Null));
        let ctx = self.ctx.with_page(page).with_vars(&vars);
        let mut fields = render_tree(&self.metadata.request, &ctx)
            .map_err(|e| config_at("request", e.to_string()))?;
        if let (Some(param), Some(cursor)) = (&self.spec.cursor_param, &self.cursor) {
            fields.insert(param.clone(), cursor.clone());
        }
        Ok(self.spec.build(&self.base, fields))
    }

    fn id_of(&self, data: &Value) -> String {
        self.id_paths
            .iter()
            .find_map(|path| record_id(data, Some(path)).filter(|id| !id.is_empty()))
            .unwrap_or_default()
    }
}

/// The number of the page after `pages` pages from `start_page`; an error, not an overflow, when
/// that is past the largest page number (a huge `pagination.start_page`).
pub(crate) fn page_number(start_page: u64, pages: u64) -> Result<u64, FerryError> {
    start_page.checked_add(pages).ok_or_else(|| {
        config_at(
            "pagination.start_page",
            format!(
                "page {start_page} + {pages} is past the largest page number ({}); start \
                 from a lower page",
                u64::MAX
            ),
        )
    })
}

/// How many pages were read when the last one confirmed was `page` (from a saved cursor).
pub(crate) fn pages_after(page: u64, start_page: u64) -> u64 {
    page.checked_sub(start_page)
        .map_or(0, |read| read.saturating_add(1))
}

/// The records of a reply at `pointer`: an array; null or missing is an empty page.
pub(crate) fn items_at(reply: &Reply, pointer: &str, key: &str) -> Result<Vec<Value>, FerryError> {
    match reply.body.pointer(pointer) {
        None | Some(Value::Null) => {
            if reply.body.is_null() && !reply.text.trim().is_empty() {
                return Err(config_at(
                    key,
                    format!("the answer is not JSON: {}", reply.quoted()),
                ));
            }
            Ok(Vec::new())
        }
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(config_at(
            key,
            format!(
                "`{pointer}` is not an array of records in the answer; set records_at to the JSON pointer of the records (answer: {})",
                reply.quoted()
            ),
        )),
    }
}

#[async_trait]
impl Source for ApiSource {
    async fn next_page(&mut self) -> Result<Option<Page>, FerryError> {
        if self.done {
            return Ok(None);
        }
        if self.pages >= self.spec.max_pages {
            return Err(config_at(
                "pagination.max_pages",
                format!(
                    "stopped after {} pages and the API still has more; raise max_pages, or check that the paging parameters reach the API",
                    self.spec.max_pages
                ),
            ));
        }
        let req = self.request()?;
        let reply = self.http.call(self.vendor.as_ref(), &req).await?;
        self.vendor.on_page(&self.http, &reply).await?;
        let items = items_at(&reply, &self.spec.records_at, "records_at")?;
        let n = items.len() as u64;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let mut data = self.vendor.shape(item);
            let api = Api {
                http: &self.http,
                vendor: self.vendor.as_ref(),
                base: &self.base,
            };
            self.lookups
                .enrich(&self.spec.lookups, &api, &mut data)
                .await?;
            let id = self.id_of(&data);
            records.push(Record::new(id, data));
        }
        self.pages += 1;
        self.offset = self.offset.saturating_add(n);

        // A paging parameter that never reaches the API gives the same page over and over.
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        if n > 0
            && self.spec.mode != Mode::None
            && ids.iter().all(|id| !id.is_empty())
            && self.last_ids.as_ref() == Some(&ids)
        {
            // Some APIs answer every page past the end with the last one: after a short page,
            // the same page again is the end, not a paging mistake.
            if matches!(self.spec.mode, Mode::Page | Mode::Offset) && n < self.spec.page_size {
                self.pages -= 1;
                self.offset -= n;
                self.done = true;
                return Ok(None);
            }
            return Err(config_at(
                "pagination",
                format!(
                    "page {} repeats the previous page exactly; the paging parameters do not reach the API",
                    self.pages
                ),
            ));
        }
        self.last_ids = Some(ids);

        // Servers may serve fewer records than asked (a page size they clamp): a short page
        // ends the run only when the scheme says the API never does that. Otherwise the
        // configured signal (has_next, total, next cursor) decides, and without one the next
        // page is asked for until one comes back empty.
        let mut done = n == 0 || self.spec.mode == Mode::None;
        if matches!(self.spec.mode, Mode::Page | Mode::Offset)
            && self.spec.short_page_ends
            && n < self.spec.page_size
        {
            done = true;
        }
        if let Some(at) = &self.spec.has_next_at
            && let Some(flag) = reply.body.pointer(at)
            && !truthy(flag)
        {
            done = true;
        }
        if let Some(at) = &self.spec.total_at
            && let Some(total) = reply.body.pointer(at).and_then(as_count)
            && self.offset >= total
        {
            done = true;
        }
        if self.spec.mode == Mode::Cursor {
            let next = self
                .spec
                .cursor_at
                .as_deref()
                .and_then(|at| reply.body.pointer(at))
                .filter(|v| !v.is_null() && !value_text(v).is_empty())
                .cloned();
            match next {
                None => done = true,
                Some(next) if Some(&next) == self.cursor.as_ref() => {
                    return Err(config_at(
                        "pagination.cursor_at",
                        format!(
                            "the API gave the same next cursor twice ({}); stopping instead of looping",
                            value_text(&next)
                        ),
                    ));
                }
                Some(next) => self.cursor = Some(next),
            }
        }
        self.done = done;
        if records.is_empty() {
            return Ok(None);
        }
        let cursor = json!({
            // The page just read, whose number `request` checked.
            "page": self.spec.start_page.saturating_add(self.pages - 1),
            "offset": self.offset,
            "cursor": self.cursor.clone().unwrap_or(Value::Null),
            "done": self.done,
        });
        Ok(Some(Page {
            records,
            cursor: Some(cursor),
            rejected: Vec::new(),
        }))
    }

    /// `{"page", "offset", "cursor", "done"}` as `next_page` writes them: the page number, rows
    /// and next-page token after the last confirmed page, and whether that page was the last.
    fn resume_at(&mut self, cursor: &Value) -> Result<(), FerryError> {
        let (Some(page), Some(offset)) = (
            cursor.get("page").and_then(Value::as_u64),
            cursor.get("offset").and_then(Value::as_u64),
        ) else {
            return Err(crate::foreign_cursor(cursor));
        };
        self.pages = pages_after(page, self.spec.start_page);
        self.offset = offset;
        self.cursor = cursor.get("cursor").filter(|v| !v.is_null()).cloned();
        self.done = cursor.get("done").and_then(Value::as_bool).unwrap_or(false);
        Ok(())
    }
}
