//! MySQL targets: `execute` and `batchexecute` (seeds 001 and 002).
//!
//! Both take the scheme's `otherRequest.main_sql` and bind its `:name` parameters from each
//! mapped record; values never enter the SQL text.
//!
//! - `execute` runs the statement once per record inside one transaction per batch. A record the
//!   database refuses (a constraint, a value out of range) fails alone: MySQL rolls back only that
//!   statement, and the rest of the batch commits.
//! - `batchexecute` turns `INSERT INTO t (..) VALUES (:a, :b) [ON DUPLICATE KEY UPDATE ..]` into
//!   multi-row statements, chunked under MySQL's 65,535 placeholders. A chunk refused for a data
//!   reason is split in halves until the bad records are found; the good ones are written.
//!
//! What a record meeting a key the table already has does is the target's `write_mode`
//! (`ferry_core::write`): kept (`insert`, and the default for a plain INSERT with `idCheck`),
//! updated (`update`), replaced (`replace`), or refused as a record error (a plain INSERT without
//! either). In a batch, an identical repeat of a record (same id, same content) is skipped;
//! several contents of one id are all written, in batch order.
//!
//! ## Counts
//!
//! sqlx always connects with `CLIENT_FOUND_ROWS`, so the server answers an
//! `INSERT ... ON DUPLICATE KEY UPDATE` with 1 affected row per inserted row, 2 per changed row
//! and 1 (not 0) per row that already held the values; and sqlx does not expose the OK packet's
//! `Records: N  Duplicates: D` text. So Ferry's upserts count their duplicate keys themselves, in
//! the session variable `@ferry_duplicates` (their clause's first assignment increments it and
//! leaves the column as it is), read on the same connection after each statement. For a
//! statement of `n` rows with `a` affected rows and `d` duplicates:
//! `updated = a - n`, `unchanged = d - updated` (`kept` under `insert`), `inserted = n - d`;
//! exact, since a failed statement writes nothing and the variable is read again after it.
//! A REPLACE cannot be counted so: MariaDB answers 1 both for a new row and for a row replaced by
//! identical values (it turns such a REPLACE into an update), so `replace` counts `written`, as
//! does a statement that is not an INSERT or REPLACE.

use async_trait::async_trait;
use ferry_core::scheme::Metadata;
use ferry_core::sql::{NamedSql, bind_refs_for};
use ferry_core::write::{DUPLICATES_VAR, OnDuplicate, WriteSql, write_sql};
use ferry_core::{ErrorClass, FerryError, Record};
use ferry_state::Counts;
use ferry_state::mysql::{bind_all, classify_ref, is_duplicate_key};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnection, MySqlPool};

use ferry_core::identity::distinct_records;

use crate::{Sink, WriteReport};

/// The `otherRequest` field with the statement a delete runs.
pub const DELETE_SQL: &str = "delete_sql";

/// MySQL's limit on placeholders in one prepared statement.
pub const MAX_PLACEHOLDERS: usize = 65_535;

enum Plan {
    /// One statement per record.
    Execute { sql: NamedSql },
    /// Multi-row statements: `head` + n x `row` + `tail`.
    Batch {
        head: String,
        row: NamedSql,
        tail: String,
        rows_per_statement: usize,
    },
}

pub struct MysqlSink {
    pool: MySqlPool,
    plan: Plan,
    on_duplicate: OnDuplicate,
    /// `otherRequest.delete_sql`: what a record whose `_op` is `delete` runs instead of main_sql
    /// (a binlog source's deletes).
    delete: Option<NamedSql>,
}

/// A statement the sink runs to write records: its text (with `?` placeholders) and, per row it
/// writes, the record's id and its binds in the order of `params`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sql: String,
    /// The `:name` of each placeholder of one row, in bind order.
    pub params: Vec<String>,
    pub rows: Vec<(String, Vec<Value>)>,
}

/// What [`MysqlSink::write`] would run for `records` on a table that holds none of their keys:
/// the statements that write them (the duplicate-counting bookkeeping left out) and the records
/// refused before any statement (a bind that cannot be made). The same plan, binds and
/// statement text the sink uses, with no database; `ferry test` compares it with a scheme's
/// expected statements.
pub fn render_statements(
    metadata: &Metadata,
    records: Vec<Record>,
) -> Result<(Vec<Statement>, Vec<(Record, FerryError)>), FerryError> {
    let (plan, _) = Plan::new(metadata)?;
    let records: Vec<Record> = distinct_records(records)
        .kept
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let mut failed = Vec::new();
    let mut statements = Vec::new();
    match &plan {
        Plan::Execute { sql } => {
            for record in records {
                match binds_of(sql, &record) {
                    Ok(binds) => statements.push(Statement {
                        sql: sql.text.clone(),
                        params: sql.params.clone(),
                        rows: vec![(record.id, binds)],
                    }),
                    Err(e) => failed.push((record, e)),
                }
            }
        }
        Plan::Batch {
            head,
            row,
            tail,
            rows_per_statement,
        } => {
            let mut rows = Vec::with_capacity(records.len());
            for record in records {
                match binds_of(row, &record) {
                    Ok(binds) => rows.push((record.id, binds)),
                    Err(e) => failed.push((record, e)),
                }
            }
            for chunk in rows.chunks(*rows_per_statement) {
                statements.push(Statement {
                    sql: chunk_text(head, row, tail, chunk.len()),
                    params: row.params.clone(),
                    rows: chunk.to_vec(),
                });
            }
        }
    }
    Ok((statements, failed))
}

impl Plan {
    /// The plan of a scheme's target. Errors are configuration errors naming the field.
    fn new(metadata: &Metadata) -> Result<(Plan, OnDuplicate), FerryError> {
        let sql = metadata.other("main_sql").ok_or_else(|| {
            FerryError::config("target.metadata.otherRequest: no main_sql statement")
        })?;
        let bad =
            |e: String| FerryError::config(format!("target.metadata.otherRequest.main_sql: {e}"));
        NamedSql::parse(sql).map_err(bad)?;
        let write = write_sql(sql, metadata.write_mode.as_deref(), metadata.id_check)
            .map_err(|e| FerryError::config(format!("target.metadata.write_mode: {e}")))?;
        let plan = match metadata.api.as_str() {
            "execute" => Plan::Execute {
                sql: NamedSql::parse(&write.one_row()).map_err(bad)?,
            },
            "batchexecute" => {
                let WriteSql {
                    head, row, tail, ..
                } = write.clone();
                if write.on_duplicate == OnDuplicate::AsWritten {
                    return Err(bad("batchexecute needs `INSERT INTO t (cols) VALUES (:a, :b, ...) [ON DUPLICATE KEY UPDATE ...]`".into()));
                }
                let row = NamedSql::parse(&row).map_err(bad)?;
                let per_row = row.params.len().max(1);
                let batch = metadata.batch_size.unwrap_or(1000).max(1);
                Plan::Batch {
                    head,
                    row,
                    tail,
                    rows_per_statement: batch.min(MAX_PLACEHOLDERS / per_row).max(1),
                }
            }
            other => {
                return Err(FerryError::config(format!(
                    "target.metadata.api: `{other}` is not a MySQL target api (execute, batchexecute)"
                )));
            }
        };
        Ok((plan, write.on_duplicate))
    }
}

/// The text of a multi-row statement of `rows` rows: `head` + `row`, `row`, ... + `tail`.
fn chunk_text(head: &str, row: &NamedSql, tail: &str, rows: usize) -> String {
    let mut text = String::with_capacity(head.len() + tail.len() + rows * (row.text.len() + 1) + 2);
    text.push_str(head);
    text.push(' ');
    for i in 0..rows {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&row.text);
    }
    if !tail.is_empty() {
        text.push(' ');
        text.push_str(tail);
    }
    text
}

impl MysqlSink {
    /// Prepare the target of a scheme. Errors are configuration errors naming the field.
    pub fn new(pool: MySqlPool, metadata: &Metadata) -> Result<MysqlSink, FerryError> {
        let (plan, on_duplicate) = Plan::new(metadata)?;
        let delete = metadata
            .other(DELETE_SQL)
            .map(|sql| {
                NamedSql::parse(sql).map_err(|e| {
                    FerryError::config(format!("target.metadata.otherRequest.{DELETE_SQL}: {e}"))
                })
            })
            .transpose()?;
        Ok(MysqlSink {
            pool,
            plan,
            on_duplicate,
            delete,
        })
    }

    async fn execute(
        &self,
        sql: &NamedSql,
        records: Vec<Record>,
        report: &mut WriteReport,
    ) -> Result<(), FerryError> {
        let mut tx = self.pool.begin().await.map_err(|e| classify_ref(&e))?;
        let mut duplicates = Duplicates::start(self.on_duplicate, &mut tx).await?;
        for record in records {
            let binds = match bind_refs_of(sql, &record) {
                Ok(b) => b,
                Err(e) => {
                    report.failed.push((record, e));
                    continue;
                }
            };
            let q = bind_all(sqlx::query(AssertSqlSafe(sql.text.as_str())), binds);
            match q.execute(&mut *tx).await {
                Ok(done) => {
                    let affected = done.rows_affected();
                    // Only an ambiguous answer (1: inserted, or found unchanged) needs the count.
                    let dups = if self.on_duplicate.counts_duplicates() && affected != 2 {
                        duplicates.since_last(&mut tx).await?
                    } else {
                        u64::from(affected == 2)
                    };
                    if affected == 2 {
                        duplicates.seen += 1;
                    }
                    self.count(1, affected, dups, report);
                }
                Err(e) => {
                    if self.on_duplicate.counts_duplicates() {
                        // A failed statement may have counted a duplicate before it failed.
                        duplicates.since_last(&mut tx).await?;
                    }
                    match classify_ref(&e) {
                        err @ FerryError::Record { .. } => {
                            let err = self.refused(err, &e).with_record_id(&record.id);
                            report.failed.push((record, err));
                        }
                        err => return Err(err),
                    }
                }
            }
        }
        tx.commit().await.map_err(|e| classify_ref(&e))?;
        Ok(())
    }

    /// A record error; a duplicate key refused by a plain INSERT (no `write_mode`, no `idCheck`)
    /// says how to choose otherwise.
    fn refused(&self, err: FerryError, cause: &sqlx::Error) -> FerryError {
        if self.on_duplicate == OnDuplicate::Refuse && is_duplicate_key(cause) {
            FerryError::record(format!(
                "{err} (main_sql is a plain INSERT: set the target's write_mode to `insert` to \
                 keep the row the target has, or `update` to update it)"
            ))
        } else {
            err
        }
    }

    /// Add a statement of `rows` rows, `affected` affected rows and `dups` duplicate keys to the
    /// report (see the module docs).
    fn count(&self, rows: u64, affected: u64, dups: u64, report: &mut WriteReport) {
        match self.on_duplicate {
            OnDuplicate::Keep | OnDuplicate::Update => {
                let dups = dups.min(rows);
                let updated = affected.saturating_sub(rows).min(dups);
                report.counts.inserted += rows - dups;
                report.counts.updated += updated;
                if self.on_duplicate == OnDuplicate::Keep {
                    report.counts.kept += dups - updated;
                } else {
                    report.counts.unchanged += dups - updated;
                }
            }
            OnDuplicate::Replace | OnDuplicate::AsWritten => report.counts.written += rows,
            OnDuplicate::Refuse => report.counts.inserted += rows,
        }
    }

    /// Write `rows` as one statement; on a data error, bisect.
    #[allow(clippy::too_many_arguments)]
    fn write_chunk<'a>(
        &'a self,
        conn: &'a mut MySqlConnection,
        duplicates: &'a mut Duplicates,
        head: &'a str,
        row: &'a NamedSql,
        tail: &'a str,
        rows: Vec<Record>,
        report: &'a mut WriteReport,
    ) -> futures_util::future::BoxFuture<'a, Result<(), FerryError>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut binds = Vec::with_capacity(rows.len() * row.params.len());
            let mut lacking = Vec::new();
            for (i, record) in rows.iter().enumerate() {
                match bind_refs_of(row, record) {
                    Ok(refs) => binds.extend(refs),
                    Err(e) => lacking.push((i, e)),
                }
            }
            if !lacking.is_empty() {
                // Rare: set the records without a value for a parameter aside, write the rest.
                drop(binds);
                let mut rest = Vec::with_capacity(rows.len() - lacking.len());
                let mut lacking = lacking.into_iter().peekable();
                for (i, record) in rows.into_iter().enumerate() {
                    match lacking.next_if(|(at, _)| *at == i) {
                        Some((_, err)) => report.failed.push((record, err)),
                        None => rest.push(record),
                    }
                }
                return self
                    .write_chunk(conn, duplicates, head, row, tail, rest, report)
                    .await;
            }
            let text = chunk_text(head, row, tail, rows.len());
            let q = bind_all(
                sqlx::query(AssertSqlSafe(text)).persistent(rows.len() > 1),
                binds,
            );
            let result = q.execute(&mut *conn).await;
            let dups = if self.on_duplicate.counts_duplicates() {
                duplicates.since_last(conn).await?
            } else {
                0
            };
            match result {
                Ok(done) => {
                    self.count(rows.len() as u64, done.rows_affected(), dups, report);
                    Ok(())
                }
                Err(e) => {
                    let err = classify_ref(&e);
                    if err.class() != ErrorClass::Record {
                        return Err(err);
                    }
                    if rows.len() == 1 {
                        let record = rows.into_iter().next().expect("one row");
                        let err = self.refused(err, &e).with_record_id(&record.id);
                        report.failed.push((record, err));
                        return Ok(());
                    }
                    let mut left = rows;
                    let right = left.split_off(left.len() / 2);
                    self.write_chunk(conn, duplicates, head, row, tail, left, report)
                        .await?;
                    self.write_chunk(conn, duplicates, head, row, tail, right, report)
                        .await
                }
            }
        })
    }
}

/// The duplicate keys counted in `@ferry_duplicates` on one connection: `seen` is the value at the
/// last read (or as known since).
struct Duplicates {
    seen: u64,
}

impl Duplicates {
    async fn start(
        on_duplicate: OnDuplicate,
        conn: &mut MySqlConnection,
    ) -> Result<Duplicates, FerryError> {
        if on_duplicate.counts_duplicates() {
            sqlx::query(AssertSqlSafe(format!("SET {DUPLICATES_VAR} = 0")))
                .execute(&mut *conn)
                .await
                .map_err(|e| classify_ref(&e))?;
        }
        Ok(Duplicates { seen: 0 })
    }

    /// Duplicates counted since the last read.
    async fn since_last(&mut self, conn: &mut MySqlConnection) -> Result<u64, FerryError> {
        let now: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT {DUPLICATES_VAR}")))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| classify_ref(&e))?;
        let now = now.unwrap_or(0).max(0) as u64;
        let delta = now.saturating_sub(self.seen);
        self.seen = now;
        Ok(delta)
    }
}

/// [`bind_refs_of`], copied (for the statements `ferry test` and `ferry preview` show).
fn binds_of(sql: &NamedSql, record: &Record) -> Result<Vec<Value>, FerryError> {
    bind_refs_of(sql, record).map(|refs| refs.into_iter().cloned().collect())
}

/// Each of `sql`'s parameters' value where it is in the record (no copy); a record error names
/// a parameter it has no value for.
fn bind_refs_of<'r>(sql: &NamedSql, record: &'r Record) -> Result<Vec<&'r Value>, FerryError> {
    static EMPTY: std::sync::LazyLock<serde_json::Map<String, Value>> =
        std::sync::LazyLock::new(serde_json::Map::new);
    let data = record.data.as_object().unwrap_or(&EMPTY);
    bind_refs_for(sql, data).map_err(|e| e.with_record_id(&record.id))
}

/// The operation a record carries in `_op` (a binlog source's change), as far as the target
/// needs it: whether it deletes its row.
fn is_delete(record: &Record, look_in_source: bool) -> bool {
    if let Some(op) = record.data.get(OP_FIELD) {
        return op.as_str() == Some(DELETE_OP);
    }
    if !look_in_source {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Op {
        #[serde(rename = "_op")]
        op: Option<String>,
    }
    record
        .source
        .as_ref()
        .and_then(|raw| serde_json::from_str::<Op>(raw.get()).ok())
        .and_then(|o| o.op)
        .is_some_and(|op| op == DELETE_OP)
}

/// The record field that carries a change's operation.
pub const OP_FIELD: &str = "_op";
/// The operation of a deleted row.
pub const DELETE_OP: &str = "delete";

impl MysqlSink {
    /// Write inserts and updates through main_sql.
    async fn upsert(
        &self,
        records: Vec<Record>,
        report: &mut WriteReport,
    ) -> Result<(), FerryError> {
        match &self.plan {
            Plan::Execute { sql } => self.execute(sql, records, report).await?,
            Plan::Batch {
                head,
                row,
                tail,
                rows_per_statement,
            } => {
                // Bound from where their values are as each statement is built (no copy); a
                // record lacking a parameter fails alone there.
                let mut rows = records;
                if rows.is_empty() {
                    return Ok(());
                }
                // One connection: the duplicate count is a session variable.
                let mut conn = self.pool.acquire().await.map_err(|e| classify_ref(&e))?;
                let mut duplicates = Duplicates::start(self.on_duplicate, &mut conn).await?;
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(*rows_per_statement));
                    let chunk = std::mem::replace(&mut rows, rest);
                    self.write_chunk(&mut conn, &mut duplicates, head, row, tail, chunk, report)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Run delete_sql once per record, in one transaction; each deleted record counts as
    /// `written`. Without delete_sql, a delete is a record error saying what to add.
    async fn delete_rows(
        &self,
        records: Vec<Record>,
        report: &mut WriteReport,
    ) -> Result<(), FerryError> {
        let Some(sql) = &self.delete else {
            for record in records {
                let err = FerryError::record(format!(
                    "the record deletes its row (`_op` is `delete`) but the target has no \
                     otherRequest `{DELETE_SQL}`; add one such as `DELETE FROM t WHERE id = :id`"
                ))
                .with_record_id(&record.id);
                report.failed.push((record, err));
            }
            return Ok(());
        };
        let mut tx = self.pool.begin().await.map_err(|e| classify_ref(&e))?;
        for record in records {
            let binds = match bind_refs_of(sql, &record) {
                Ok(b) => b,
                Err(e) => {
                    report.failed.push((record, e));
                    continue;
                }
            };
            let q = bind_all(sqlx::query(AssertSqlSafe(sql.text.as_str())), binds);
            match q.execute(&mut *tx).await {
                Ok(_) => report.counts.written += 1,
                Err(e) => match classify_ref(&e) {
                    err @ FerryError::Record { .. } => {
                        let err = err.with_record_id(&record.id);
                        report.failed.push((record, err));
                    }
                    err => return Err(err),
                },
            }
        }
        tx.commit().await.map_err(|e| classify_ref(&e))?;
        Ok(())
    }
}

#[async_trait]
impl Sink for MysqlSink {
    async fn probe(&self) -> Result<(), String> {
        ferry_state::mysql::probe(&self.pool).await
    }

    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        // Identical repeats count as already written; every content of an id is written, in
        // order, so an upsert ends on the last one (MySQL applies a multi-row statement's rows in
        // order) and a table keyed otherwise keeps them all.
        let batch = distinct_records(records);
        let records: Vec<Record> = batch.kept.into_iter().map(|(r, _)| r).collect();
        let mut report = WriteReport {
            counts: Counts {
                skipped: batch.repeats,
                ..Counts::default()
            },
            failed: Vec::new(),
        };
        // Changes from a binlog: runs of upserts and of deletes, each in the batch's order.
        let look_in_source = self.delete.is_some();
        if !records.iter().any(|r| is_delete(r, look_in_source)) {
            self.upsert(records, &mut report).await?;
            return Ok(report);
        }
        let mut run: Vec<Record> = Vec::new();
        let mut deleting = false;
        for record in records {
            let delete = is_delete(&record, look_in_source);
            if delete != deleting && !run.is_empty() {
                let done = std::mem::take(&mut run);
                if deleting {
                    self.delete_rows(done, &mut report).await?;
                } else {
                    self.upsert(done, &mut report).await?;
                }
            }
            deleting = delete;
            run.push(record);
        }
        if deleting {
            self.delete_rows(run, &mut report).await?;
        } else {
            self.upsert(run, &mut report).await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::scheme::Field;
    use serde_json::json;

    fn shops(batch_size: usize) -> Metadata {
        Metadata {
            api: "batchexecute".into(),
            id_check: true,
            batch_size: Some(batch_size),
            other_request: vec![Field {
                field: Some("main_sql".into()),
                value: Some(json!(
                    "INSERT INTO bi_shops (shop_id, shop_name) VALUES (:shop_id, :shop_name) \
                     ON DUPLICATE KEY UPDATE shop_name = VALUES(shop_name)"
                )),
                ..Field::default()
            }],
            ..Metadata::default()
        }
    }

    fn shop(id: i64, name: &str) -> Record {
        Record::new(id.to_string(), json!({"shop_id": id, "shop_name": name}))
    }

    /// `ferry test` shows the statements `write` runs: rows cut at `batch_size`, an identical
    /// repeat dropped, binds in parameter order.
    #[test]
    fn rendered_statements_are_the_multi_row_statements_write_runs() {
        let records = vec![
            shop(1, "斯莱蒙旗舰店"),
            shop(1, "斯莱蒙旗舰店"),
            shop(2, "云朵专营店 ☁️"),
            shop(3, "森屿小店"),
        ];
        let (statements, failed) = render_statements(&shops(2), records).unwrap();
        assert!(failed.is_empty());
        assert_eq!(statements.len(), 2);
        assert!(
            statements[0]
                .sql
                .starts_with("INSERT INTO bi_shops (shop_id, shop_name) VALUES (?, ?),(?, ?) ON DUPLICATE KEY UPDATE "),
            "{}",
            statements[0].sql
        );
        assert_eq!(statements[0].params, ["shop_id", "shop_name"]);
        assert_eq!(
            statements[0].rows,
            [
                ("1".to_string(), vec![json!(1), json!("斯莱蒙旗舰店")]),
                ("2".to_string(), vec![json!(2), json!("云朵专营店 ☁️")]),
            ]
        );
        assert_eq!(statements[1].rows.len(), 1);
        assert!(statements[1].sql.contains("VALUES (?, ?) ON DUPLICATE"));
    }

    #[test]
    fn a_target_that_is_not_mysql_is_a_configuration_error() {
        let metadata = Metadata {
            api: "DingTalkRoBotPush".into(),
            ..shops(10)
        };
        let err = render_statements(&metadata, Vec::new()).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Config);
        assert!(
            err.to_string().contains("is not a MySQL target api"),
            "{err}"
        );
    }

    #[test]
    fn a_delete_is_read_from_the_mapped_record_else_from_its_source() {
        let mapped = Record::new("1", json!({"id": 1, "_op": "delete"}));
        assert!(is_delete(&mapped, false));
        let from_source = Record::new("2", json!({"id": 2}))
            .rendered_from(&json!({"id": 2, "_op": "delete", "txt": "张三 😀"}));
        assert!(is_delete(&from_source, true));
        assert!(
            !is_delete(&from_source, false),
            "without delete_sql the source is not read"
        );
        let update =
            Record::new("3", json!({"id": 3})).rendered_from(&json!({"id": 3, "_op": "update"}));
        assert!(!is_delete(&update, true));
        assert!(!is_delete(&Record::new("4", json!({"id": 4})), true));
    }
}
