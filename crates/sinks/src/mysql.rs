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
//! With `idCheck`, a plain INSERT that meets its own duplicate key (a redelivery after a crash)
//! counts as already written: `execute` skips it, `batchexecute` appends a no-op
//! `ON DUPLICATE KEY UPDATE`. Several records with the same id in one batch collapse to the last.

use async_trait::async_trait;
use ferry_core::scheme::Metadata;
use ferry_core::sql::{InsertParts, NamedSql, binds_for, split_insert};
use ferry_core::{ErrorClass, FerryError, Record};
use ferry_state::mysql::{bind_values, classify_ref, is_duplicate_key};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlPool;

use crate::{Sink, WriteReport, collapse_by_id};

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
    id_check: bool,
}

impl MysqlSink {
    /// Prepare the target of a scheme. Errors are configuration errors naming the field.
    pub fn new(pool: MySqlPool, metadata: &Metadata) -> Result<MysqlSink, FerryError> {
        let sql = metadata.other("main_sql").ok_or_else(|| {
            FerryError::config("target.metadata.otherRequest: no main_sql statement")
        })?;
        let bad =
            |e: String| FerryError::config(format!("target.metadata.otherRequest.main_sql: {e}"));
        let plan = match metadata.api.as_str() {
            "execute" => Plan::Execute {
                sql: NamedSql::parse(sql).map_err(bad)?,
            },
            "batchexecute" => {
                let InsertParts { head, row, tail } = split_insert(sql).ok_or_else(|| {
                    bad("batchexecute needs `INSERT INTO t (cols) VALUES (:a, :b, ...) [ON DUPLICATE KEY UPDATE ...]`".into())
                })?;
                let row = NamedSql::parse(&row).map_err(bad)?;
                let mut tail = tail.trim().to_string();
                if tail.is_empty() && metadata.id_check {
                    let first = first_column(&head)
                        .ok_or_else(|| bad("cannot read the column list".into()))?;
                    tail = format!("ON DUPLICATE KEY UPDATE {first} = {first}");
                }
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
        Ok(MysqlSink {
            pool,
            plan,
            id_check: metadata.id_check,
        })
    }

    async fn execute(
        &self,
        sql: &NamedSql,
        records: Vec<Record>,
        report: &mut WriteReport,
    ) -> Result<(), FerryError> {
        let mut tx = self.pool.begin().await.map_err(|e| classify_ref(&e))?;
        for record in records {
            let binds = match binds_of(sql, &record) {
                Ok(b) => b,
                Err(e) => {
                    report.failed.push((record, e));
                    continue;
                }
            };
            let q = bind_values(sqlx::query(AssertSqlSafe(sql.text.clone())), &binds);
            match q.execute(&mut *tx).await {
                Ok(_) => report.written += 1,
                Err(e) if self.id_check && is_duplicate_key(&e) => report.skipped += 1,
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

    /// Write `rows` as one statement; on a data error, bisect.
    fn write_chunk<'a>(
        &'a self,
        head: &'a str,
        row: &'a NamedSql,
        tail: &'a str,
        rows: Vec<(Record, Vec<Value>)>,
        report: &'a mut WriteReport,
    ) -> futures_util::future::BoxFuture<'a, Result<(), FerryError>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut text =
                String::with_capacity(head.len() + tail.len() + rows.len() * (row.text.len() + 1));
            text.push_str(head);
            text.push(' ');
            for i in 0..rows.len() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&row.text);
            }
            if !tail.is_empty() {
                text.push(' ');
                text.push_str(tail);
            }
            let binds: Vec<Value> = rows.iter().flat_map(|(_, b)| b.iter().cloned()).collect();
            let q = bind_values(
                sqlx::query(AssertSqlSafe(text)).persistent(rows.len() > 1),
                &binds,
            );
            match q.execute(&self.pool).await {
                Ok(_) => {
                    report.written += rows.len() as u64;
                    Ok(())
                }
                Err(e) => {
                    let err = classify_ref(&e);
                    if err.class() != ErrorClass::Record {
                        return Err(err);
                    }
                    if rows.len() == 1 {
                        let (record, _) = rows.into_iter().next().expect("one row");
                        if self.id_check && is_duplicate_key(&e) {
                            report.skipped += 1;
                        } else {
                            let err = err.with_record_id(&record.id);
                            report.failed.push((record, err));
                        }
                        return Ok(());
                    }
                    let mut left = rows;
                    let right = left.split_off(left.len() / 2);
                    self.write_chunk(head, row, tail, left, report).await?;
                    self.write_chunk(head, row, tail, right, report).await
                }
            }
        })
    }
}

fn binds_of(sql: &NamedSql, record: &Record) -> Result<Vec<Value>, FerryError> {
    let empty = serde_json::Map::new();
    let data = record.data.as_object().unwrap_or(&empty);
    binds_for(sql, data).map_err(|e| e.with_record_id(&record.id))
}

/// The first column of `INSERT INTO t (a, b) VALUES`, backquoted as written.
fn first_column(head: &str) -> Option<String> {
    let open = head.find('(')?;
    let close = head[open..].find(')')? + open;
    let first = head[open + 1..close].split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_string())
}

#[async_trait]
impl Sink for MysqlSink {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        let (records, collapsed) = collapse_by_id(records);
        let mut report = WriteReport {
            skipped: collapsed,
            ..WriteReport::default()
        };
        match &self.plan {
            Plan::Execute { sql } => self.execute(sql, records, &mut report).await?,
            Plan::Batch {
                head,
                row,
                tail,
                rows_per_statement,
            } => {
                let mut rows = Vec::with_capacity(records.len());
                for record in records {
                    match binds_of(row, &record) {
                        Ok(b) => rows.push((record, b)),
                        Err(e) => report.failed.push((record, e)),
                    }
                }
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(*rows_per_statement));
                    let chunk = std::mem::replace(&mut rows, rest);
                    self.write_chunk(head, row, tail, chunk, &mut report)
                        .await?;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_column_keeps_its_quotes() {
        assert_eq!(
            first_column("INSERT INTO `t` (\n `a`,\n `b`) VALUES").as_deref(),
            Some("`a`")
        );
        assert_eq!(first_column("INSERT INTO t VALUES"), None);
    }
}
