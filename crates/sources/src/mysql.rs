//! The MySQL `select` source (seed 000).
//!
//! The scheme's `otherRequest.main_sql` runs once per page. Its `:name` parameters are bound from
//! the rendered `request` tree (seed 000's `main_params.limit` / `.offset`) and from the paginator
//! (`:limit`, `:offset`, `:last_id`); they are never spliced into the SQL text. Only Ferry's own
//! time and paging variables (`'{{DAYS_AGO_1|datetime}}'`, `{PAGINATION_PAGE_SIZE}`) are written
//! into the text, as seed 000 does.
//!
//! Paging modes (`pagination.mode`):
//! - offset (the default when the SQL uses `:offset`): `LIMIT :limit OFFSET :offset`, as the seeds
//!   write it. Over one table, Ferry pages it by the table's primary or unique key instead
//!   (`ferry_core::paging`: the same columns, filter and rows, found from `information_schema` at
//!   the first page), which cannot skip or repeat rows and does not walk past every earlier row
//!   for each page. Where that cannot be proved the same (a join, GROUP BY, no usable key) it
//!   pages by offset as written, which can skip or repeat rows when the table changes during a
//!   run; [`Source::paging_note`] (printed by `ferry lint --online`) says which and why.
//!   `pagination.mode = "offset"` keeps offset paging as written.
//! - `keyset`: `WHERE id > :last_id ORDER BY id LIMIT :limit`; `:last_id` is the page's last value
//!   of `pagination.keyset_field` (default: the metadata `id`, else `id`), starting from
//!   `pagination.keyset_start` (default 0). It cannot skip rows.
//! - `none`: the statement runs once.
//!
//! A page shorter than the page size ends the run.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::connector::mysql::SelectOptions;
use ferry_core::mapping::{record_id, render_tree};
use ferry_core::paging::{KEY_AFTER_PARAM, KeyColumn, OffsetQuery, choose_key};
use ferry_core::scheme::Metadata;
use ferry_core::sql::{NamedSql, binds_for};
use ferry_core::template::{Context, PageVars, Template};
use ferry_core::{FerryError, Record};
use ferry_state::mysql::{bind_values, classify};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

use crate::row::RowDecoder;
use crate::{Page, Source};

/// Rows per page when the scheme gives no `pagination.pageSize`.
pub const DEFAULT_PAGE_SIZE: u64 = 1000;

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Offset,
    Keyset {
        field: String,
    },
    /// Offset SQL paged by the table's key `column`, read from the record's `field`.
    Key {
        query: OffsetQuery,
        column: String,
        field: String,
    },
    Once,
}

/// Where offset paging over one table stands before the first page.
#[derive(Clone, Debug)]
enum KeyPaging {
    /// Not offset paging, or decided.
    Settled,
    /// The statement reads one table; the catalog decides at the first page.
    Undecided(OffsetQuery),
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
    key_paging: KeyPaging,
    /// What paging does, for `ferry lint --online` (offset SQL only).
    note: Option<String>,
    // Paging state.
    pages: u64,
    offset: u64,
    last_key: Value,
    /// Key paging: the last key read, none before the first page.
    key_after: Option<Value>,
    /// Resumed at a saved offset (a run begun by offset paging goes on so).
    resumed_offset: bool,
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
        let last_key = SelectOptions::read(&metadata)
            .map_err(crate::config_error)?
            .keyset_start;
        // Offset paging the scheme did not ask for by name may be paged by key.
        let (key_paging, note) = match offset_plan(&sql_template, pagination.mode.as_deref()) {
            Some(Ok(query)) => (KeyPaging::Undecided(query), None),
            Some(Err(why)) => (KeyPaging::Settled, Some(offset_kept("the table", &why))),
            None => (KeyPaging::Settled, None),
        };
        Ok(MysqlSource {
            pool,
            id_field: metadata.id.clone(),
            metadata,
            sql_template,
            mode,
            page_size,
            max_pages: pagination.max_pages,
            ctx,
            key_paging,
            note,
            pages: 0,
            offset: 0,
            last_key,
            key_after: None,
            resumed_offset: false,
            done: false,
        })
    }

    /// Before the first page: page offset SQL over one table by its key when the catalog gives
    /// one the statement selects.
    async fn decide_paging(&mut self) -> Result<(), FerryError> {
        let KeyPaging::Undecided(query) =
            std::mem::replace(&mut self.key_paging, KeyPaging::Settled)
        else {
            return Ok(());
        };
        let table = format!("`{}`", query.table);
        if self.resumed_offset {
            self.note = Some(offset_kept(
                &table,
                "this run began by offset paging and resumes so",
            ));
            return Ok(());
        }
        let columns = unique_keys(&self.pool, &query).await?;
        let chosen = choose_key(&columns).and_then(|column| {
            let field = query.field_of(&column).ok_or_else(|| {
                format!("its key `{column}` is not selected (select it to page by it)")
            })?;
            match query.order_differs(&column) {
                Some(why) => Err(why),
                None => Ok((column, field)),
            }
        });
        match chosen {
            Ok((column, field)) => {
                self.note = Some(format!(
                    "offset paging over {table}: paged by key `{column}`"
                ));
                tracing::info!(table = %query.table, key = %column, "offset paging over one table: paged by its key");
                self.mode = Mode::Key {
                    query,
                    column,
                    field,
                };
            }
            Err(why) => {
                tracing::info!(table = %query.table, reason = %why, "offset paging kept as written");
                self.note = Some(offset_kept(&table, &why));
            }
        }
        Ok(())
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
        let text = match &self.mode {
            Mode::Key { query, column, .. } => {
                render_system_vars(&query.keyed(column, self.key_after.is_some()), &ctx)?
            }
            _ => render_system_vars(&self.sql_template, &ctx)?,
        };
        let named = NamedSql::parse(&text).map_err(|e| {
            FerryError::config(format!("source.metadata.otherRequest.main_sql: {e}"))
        })?;
        let mut params: Map<String, Value> = render_tree(&self.metadata.request, &ctx)?;
        params.insert("limit".into(), Value::from(self.page_size));
        params.insert("offset".into(), Value::from(self.offset));
        params.insert("last_id".into(), self.last_key.clone());
        if let Some(after) = &self.key_after {
            params.insert(KEY_AFTER_PARAM.into(), after.clone());
        }
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

/// For a source paging by offset: the statement to page by key instead, or why it stays offset
/// paging. `None` for a source paging otherwise.
fn offset_plan(sql: &str, mode: Option<&str>) -> Option<Result<OffsetQuery, String>> {
    match mode {
        Some("offset") => Some(Err("pagination.mode is \"offset\"".into())),
        Some(_) => None,
        None if sql.contains(":last_id") => None,
        None if sql.contains(":offset") || sql.contains("PAGINATION_START_ROW") => {
            Some(OffsetQuery::parse(sql))
        }
        None => None,
    }
}

/// How a MySQL source will page, as far as the scheme tells without the database (for
/// `ferry preview`); `None` unless it pages by offset. The key itself comes from the catalog at
/// the first page (`ferry lint --online` names it).
pub fn planned_paging(metadata: &Metadata) -> Option<String> {
    let sql = metadata.other("main_sql")?;
    let mode = metadata.pagination.as_ref().and_then(|p| p.mode.as_deref());
    Some(match offset_plan(sql, mode)? {
        Ok(query) => format!(
            "offset paging over `{}`: paged by the table's primary or unique key when it has one \
             that the statement selects (`ferry lint --online` names it)",
            query.table
        ),
        Err(why) => offset_kept("the table", &why),
    })
}

/// The note for offset paging kept as written, and why.
fn offset_kept(table: &str, why: &str) -> String {
    format!(
        "offset paging over {table} is kept ({why}): it can skip or repeat rows when the table \
         changes during a run, and reads slower the further it goes; use keyset pagination \
         (`WHERE id > :last_id ORDER BY id LIMIT :limit`)"
    )
}

/// The columns of every unique index of the table `query` reads, from `information_schema`.
async fn unique_keys(pool: &MySqlPool, query: &OffsetQuery) -> Result<Vec<KeyColumn>, FerryError> {
    let rows = sqlx::query(
        "SELECT CAST(s.INDEX_NAME AS CHAR), CAST(s.SEQ_IN_INDEX AS SIGNED), CAST(s.COLUMN_NAME AS CHAR),
                CAST(c.DATA_TYPE AS CHAR), CAST(c.IS_NULLABLE AS CHAR)
         FROM information_schema.STATISTICS s
         JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA
           AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
         WHERE s.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0
         ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX",
    )
    .bind(query.table.database.as_deref())
    .bind(&query.table.table)
    .fetch_all(pool)
    .await
    .map_err(classify)?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in &rows {
        let read = |e: sqlx::Error| {
            FerryError::transient(format!("reading the keys of table `{}`: {e}", query.table))
        };
        columns.push(KeyColumn {
            index: row.try_get::<String, _>(0).map_err(read)?,
            seq: row.try_get::<i64, _>(1).map_err(read)?.max(0) as u32,
            column: row.try_get::<String, _>(2).map_err(read)?,
            data_type: row.try_get::<String, _>(3).map_err(read)?,
            nullable: row.try_get::<String, _>(4).map_err(read)? == "YES",
        });
    }
    Ok(columns)
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
        self.decide_paging().await?;
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
            Mode::Key { field, column, .. } => {
                if let Some(last) = last_row {
                    self.key_after = Some(last.get(field).cloned().ok_or_else(|| {
                        FerryError::config(format!(
                            "source.metadata.otherRequest.main_sql: the query returns no column `{field}` (the key `{column}`)"
                        ))
                    })?);
                }
                self.offset += n;
                self.done = n < self.page_size;
                Some(serde_json::json!({ "key_after": self.key_after, "offset": self.offset }))
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
            Mode::Offset | Mode::Key { .. } => {
                self.offset = cursor
                    .get("offset")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| crate::foreign_cursor(cursor))?;
                // A run that began paging by key goes on after its last key; one that began by
                // offset goes on by offset.
                match cursor.get("key_after") {
                    Some(after) if !after.is_null() => self.key_after = Some(after.clone()),
                    Some(_) => {}
                    None => self.resumed_offset = true,
                }
            }
            Mode::Once => return Err(crate::foreign_cursor(cursor)),
        }
        Ok(())
    }

    async fn paging_note(&mut self) -> Result<Option<String>, FerryError> {
        self.decide_paging().await?;
        Ok(self.note.clone())
    }
}
