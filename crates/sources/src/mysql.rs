//! The MySQL `select` source (seed 000).
//!
//! The scheme's `otherRequest.main_sql` runs once per page. Its `:name` parameters are bound from
//! the rendered `request` tree (seed 000's `main_params.limit` / `.offset`) and from the paginator
//! (`:limit`, `:offset`, `:last_id`); they are never spliced into the SQL text. Only Ferry's own
//! time and paging variables (`'{{DAYS_AGO_1|datetime}}'`, `{PAGINATION_PAGE_SIZE}`) are written
//! into the text, as seed 000 does.
//!
//! Paging modes (`pagination.mode`):
//! - `offset` (default when the SQL uses `:offset`): `LIMIT :limit OFFSET :offset`, as the seeds
//!   write it. It can skip or repeat rows when the table changes during a run; `ferry lint` warns.
//! - `keyset`: `WHERE id > :last_id ORDER BY id LIMIT :limit`; `:last_id` is the page's last value
//!   of `pagination.keyset_field` (default: the metadata `id`, else `id`), starting from
//!   `pagination.keyset_start` (default 0). It cannot skip rows.
//! - `none`: the statement runs once.
//!
//! A page shorter than the page size ends the run.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::mapping::{record_id, render_tree};
use ferry_core::scheme::Metadata;
use ferry_core::sql::{NamedSql, binds_for};
use ferry_core::template::{Context, PageVars, Template};
use ferry_core::{FerryError, Record};
use ferry_state::mysql::{bind_values, classify};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use crate::row::RowDecoder;
use crate::{Page, Source};

/// Rows per page when the scheme gives no `pagination.pageSize`.
pub const DEFAULT_PAGE_SIZE: u64 = 1000;

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Offset,
    Keyset { field: String },
    Once,
}

/// A MySQL source opened for one run.
pub struct MysqlSource {
    pool: MySqlPool,
    metadata: Arc<Metadata>,
    sql_template: String,
    mode: Mode,
    page_size: u64,
    max_pages: Option<u64>,
    id_field: Option<String>,
    ctx: Context<'static>,
    // Paging state.
    pages: u64,
    offset: u64,
    last_key: Value,
    done: bool,
}

impl MysqlSource {
    /// Open the source; `ctx` carries the run's clock and `LAST_SYNC_TIME`.
    pub fn new(
        pool: MySqlPool,
        metadata: Arc<Metadata>,
        ctx: Context<'static>,
    ) -> Result<MysqlSource, FerryError> {
        let sql_template = metadata
            .other("main_sql")
            .ok_or_else(|| {
                FerryError::config("source.metadata.otherRequest: no main_sql statement")
            })?
            .to_string();
        let pagination = metadata.pagination.clone().unwrap_or_default();
        let page_size = pagination.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
        let uses = |name: &str| sql_template.contains(&format!(":{name}"));
        // Keyset paging goes by `keyset_field`, else the record id, else `id`.
        let keyset = || Mode::Keyset {
            field: pagination
                .keyset_field
                .clone()
                .or_else(|| metadata.id.clone())
                .unwrap_or_else(|| "id".to_string()),
        };
        let mode = match pagination.mode.as_deref() {
            Some("keyset") => keyset(),
            Some("offset") => Mode::Offset,
            Some("none") => Mode::Once,
            Some(other) => {
                return Err(FerryError::config(format!(
                    "source.metadata.pagination.mode: `{other}` is not a MySQL paging mode (offset, keyset, none)"
                )));
            }
            None if uses("last_id") => keyset(),
            None if uses("offset") || sql_template.contains("PAGINATION_START_ROW") => Mode::Offset,
            None => Mode::Once,
        };
        let last_key = pagination
            .extra
            .get("keyset_start")
            .cloned()
            .unwrap_or(Value::from(0));
        Ok(MysqlSource {
            pool,
            id_field: metadata.id.clone(),
            metadata,
            sql_template,
            mode,
            page_size,
            max_pages: pagination.max_pages,
            ctx,
            pages: 0,
            offset: 0,
            last_key,
            done: false,
        })
    }

    fn page_vars(&self) -> PageVars {
        PageVars {
            page_size: self.page_size,
            start_row: self.offset,
            start_page: self.pages + 1,
        }
    }

    /// The statement for this page: Ferry's own variables written in, `:name` binds resolved.
    fn statement(&self) -> Result<(NamedSql, Vec<Value>), FerryError> {
        let ctx = self.ctx.with_page(self.page_vars());
        let text = render_system_vars(&self.sql_template, &ctx)?;
        let named = NamedSql::parse(&text).map_err(|e| {
            FerryError::config(format!("source.metadata.otherRequest.main_sql: {e}"))
        })?;
        let mut params: Map<String, Value> = render_tree(&self.metadata.request, &ctx)?;
        params.insert("limit".into(), Value::from(self.page_size));
        params.insert("offset".into(), Value::from(self.offset));
        params.insert("last_id".into(), self.last_key.clone());
        let mut binds = binds_for(&named, &params).map_err(|e| {
            FerryError::config(format!("source.metadata.otherRequest.main_sql: {e}"))
        })?;
        // LIMIT and OFFSET only take integers in a prepared statement; the seeds type them as strings.
        for (name, value) in named.params.iter().zip(binds.iter_mut()) {
            if matches!(name.as_str(), "limit" | "offset")
                && let Some(n) = value.as_str().and_then(|s| s.trim().parse::<u64>().ok())
            {
                *value = Value::from(n);
            }
        }
        Ok((named, binds))
    }
}

/// The record error for a row with values that cannot be carried: each column and its reason,
/// the first column as the error's path. `None` when every value was carried.
pub(crate) fn unreadable_error(unreadable: &[(String, String)]) -> Option<FerryError> {
    let (first, _) = unreadable.first()?;
    let reasons: Vec<String> = unreadable
        .iter()
        .map(|(column, reason)| format!("column `{column}`: {reason}"))
        .collect();
    Some(FerryError::record_at(
        first.clone(),
        format!("cannot carry the row: {}", reasons.join("; ")),
    ))
}

/// Write Ferry's time and paging variables (`{{DAYS_AGO_1|datetime}}`, `{PAGINATION_PAGE_SIZE}`)
/// into SQL text. Record placeholders stay as written: record values never reach SQL text.
pub fn render_system_vars(sql: &str, ctx: &Context<'_>) -> Result<String, FerryError> {
    Template::parse(sql)
        .map_err(|e| FerryError::config(format!("main_sql: {e}")))?
        .render_reserved(ctx)
}

#[async_trait]
impl Source for MysqlSource {
    async fn next_page(&mut self) -> Result<Option<Page>, FerryError> {
        if self.done {
            return Ok(None);
        }
        if let Some(max) = self.max_pages
            && self.pages >= max
        {
            return Err(FerryError::config(format!(
                "source.metadata.pagination.max_pages: stopped after {max} pages; the source has more. \
                 Raise max_pages or check that the paging parameters change from page to page"
            )));
        }
        let (named, binds) = self.statement()?;
        let query = bind_values(
            sqlx::query(AssertSqlSafe(named.text.clone())).persistent(true),
            &binds,
        );
        let mut stream = query.fetch(&self.pool);
        let mut decoder: Option<RowDecoder> = None;
        let mut records = Vec::with_capacity(self.page_size as usize);
        let mut rejected = Vec::new();
        // Whether the page's last row was rejected: keyset paging moves past it either way.
        let mut last_rejected = false;
        while let Some(row) = stream.try_next().await.map_err(classify)? {
            let decoder = decoder.get_or_insert_with(|| RowDecoder::new(&row));
            let decoded = decoder.decode(&row);
            let data = Value::Object(decoded.data);
            let id = record_id(&data, self.id_field.as_deref()).unwrap_or_default();
            let record = Record::new(id, data);
            last_rejected = !decoded.unreadable.is_empty();
            match unreadable_error(&decoded.unreadable) {
                None => records.push(record),
                Some(err) => {
                    tracing::warn!(record = %record.id, error = %err, "a row cannot be carried; it is dead-lettered");
                    rejected.push((record, err));
                }
            }
        }
        drop(stream);
        let last_row = if last_rejected {
            rejected.last().map(|(record, _)| &record.data)
        } else {
            records.last().map(|record| &record.data)
        };
        self.pages += 1;
        let n = (records.len() + rejected.len()) as u64;
        let cursor = match &self.mode {
            Mode::Once => {
                self.done = true;
                None
            }
            Mode::Offset => {
                self.offset += n;
                self.done = n < self.page_size;
                Some(serde_json::json!({ "offset": self.offset }))
            }
            Mode::Keyset { field } => {
                if let Some(last) = last_row {
                    self.last_key = last.get(field).cloned().ok_or_else(|| {
                        FerryError::config(format!(
                            "source.metadata.pagination.keyset_field: the query returns no column `{field}`"
                        ))
                    })?;
                }
                self.done = n < self.page_size;
                Some(serde_json::json!({ "last_id": self.last_key }))
            }
        };
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        Ok(Some(Page {
            records,
            cursor,
            rejected,
        }))
    }

    /// `{"last_id": ..}` (keyset) or `{"offset": ..}` (offset), as `next_page` writes them.
    fn resume_at(&mut self, cursor: &Value) -> Result<(), FerryError> {
        match &self.mode {
            Mode::Keyset { .. } => {
                self.last_key = cursor
                    .get("last_id")
                    .cloned()
                    .ok_or_else(|| crate::foreign_cursor(cursor))?;
            }
            Mode::Offset => {
                self.offset = cursor
                    .get("offset")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| crate::foreign_cursor(cursor))?;
            }
            Mode::Once => return Err(crate::foreign_cursor(cursor)),
        }
        Ok(())
    }
}
