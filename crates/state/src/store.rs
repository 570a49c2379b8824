//! The [`State`] handle over Ferry's tables.
//!
//! Times are stored in UTC and taken from the database server (`UTC_TIMESTAMP(6)`) wherever
//! several processes compare them (locks, rate limits), so replicas on machines with drifting
//! clocks still agree.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use ferry_core::redact;
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

use crate::mysql::connect;
use crate::schema::MIGRATIONS;

/// Errors of the state database. All of them are transient for the pipeline (the database may be
/// back in a moment) except a URL that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("state database: {0}")]
    Query(#[from] sqlx::Error),
    #[error("state database: stored checkpoint for {scheme} is not valid JSON: {message}")]
    Corrupt { scheme: String, message: String },
    #[error("state database: run {run_id} has the unknown status `{status}`")]
    UnknownStatus { run_id: String, status: String },
}

impl From<StateError> for ferry_core::FerryError {
    fn from(err: StateError) -> Self {
        ferry_core::FerryError::transient(err.to_string())
    }
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// Where a scheme's extraction stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Source-specific position (`{"last_id": 123}`), JSON.
    pub cursor: Option<serde_json::Value>,
    /// Start time of the last run that extracted everything: `{{LAST_SYNC_TIME}}`.
    pub last_sync_time: Option<DateTime<Utc>>,
    /// The run the cursor belongs to (an extraction that did not finish).
    pub run_id: Option<String>,
    /// Digest of the source settings the cursor was read with.
    pub source_digest: Option<String>,
    /// The largest `cursor_field` value of the last complete run (`{{LAST_CURSOR}}`).
    pub data_cursor: Option<serde_json::Value>,
    /// The largest `cursor_field` value the unfinished run has seen so far.
    pub run_data_cursor: Option<serde_json::Value>,
    /// When the unfinished run's window started, on its source's clock.
    pub run_window_start: Option<DateTime<Utc>>,
}

/// A running role as it reports itself ([`State::role_seen`]).
#[derive(Clone, Copy, Debug)]
pub struct RoleSeen<'a> {
    /// Names the process (host, pid and a unique suffix).
    pub process: &'a str,
    /// `extract`, `transform`, `load` or `run`.
    pub role: &'a str,
    pub host: &'a str,
    pub pid: i64,
    pub schemes: &'a [String],
    /// The node's address, without credentials (`127.0.0.1:5672`).
    pub broker_node: &'a str,
}

/// A row of `ferry_roles` as read: process, role, host, pid, schemes (JSON), node, connected,
/// seen.
type RoleTuple = (
    String,
    String,
    String,
    i64,
    String,
    String,
    NaiveDateTime,
    NaiveDateTime,
);

/// A role `ferry status` shows ([`State::roles`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RoleRow {
    pub process: String,
    pub role: String,
    pub host: String,
    pub pid: i64,
    pub schemes: Vec<String>,
    pub broker_node: String,
    /// When it connected to that node.
    pub connected_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// A service a role found unreachable ([`State::outages`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// `target` or `source`.
    pub side: String,
    /// When a role first found it unreachable.
    pub since: DateTime<Utc>,
    /// The last probe that found it still unreachable.
    pub seen_at: DateTime<Utc>,
    /// What the last probe said.
    pub error: String,
}

/// A page the broker confirmed, as [`State::page_confirmed`] records it.
#[derive(Clone, Copy, Debug)]
pub struct ConfirmedPage<'a> {
    pub scheme: &'a str,
    pub run_id: &'a str,
    pub records: u64,
    /// The position after this page; `None` for sources that cannot resume.
    pub cursor: Option<&'a serde_json::Value>,
    /// Digest of the source settings (see [`State::resume_run`]).
    pub source_digest: &'a str,
    /// The largest `cursor_field` value of the run so far, this page included.
    pub data_cursor: Option<&'a serde_json::Value>,
    /// When the run's window started, on its source's clock (None: the run's `started_at`).
    pub window_start: Option<DateTime<Utc>>,
}

/// An interrupted run to continue: its counts so far and the position after its last confirmed
/// page.
#[derive(Clone, Debug, PartialEq)]
pub struct Resume {
    pub run: RunSummary,
    pub cursor: serde_json::Value,
    /// The largest `cursor_field` value the run had seen by then.
    pub data_cursor: Option<serde_json::Value>,
    /// When its window started on its source's clock (None for runs saved before this was
    /// kept: their `started_at`).
    pub window_start: Option<DateTime<Utc>>,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Its extraction is publishing pages.
    Extracting,
    /// Everything was published; records are still being transformed and loaded.
    Loading,
    /// Every extracted record reached a final state.
    Done,
    /// Its extraction failed (the error says why); it may be resumed.
    Failed,
    /// A stage stopped on a configuration error (the error says which); its messages wait in
    /// their queue until the scheme is fixed and a worker runs again.
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Extracting => "extracting",
            RunStatus::Loading => "loading",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }

    fn parse(run_id: &str, status: &str) -> Result<RunStatus> {
        Ok(match status {
            "extracting" => RunStatus::Extracting,
            "loading" => RunStatus::Loading,
            "done" => RunStatus::Done,
            "failed" => RunStatus::Failed,
            "stopped" => RunStatus::Stopped,
            other => {
                return Err(StateError::UnknownStatus {
                    run_id: run_id.to_string(),
                    status: other.to_string(),
                });
            }
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run's records came to. Each settled record is counted once, in one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Taken by a target that cannot say more (robot pushes, MySQL `REPLACE` and statements that
    /// are not an INSERT).
    pub written: u64,
    /// MySQL rows inserted.
    pub inserted: u64,
    /// MySQL rows that existed and were changed.
    pub updated: u64,
    /// MySQL rows that already held the record's values.
    pub unchanged: u64,
    /// Duplicate keys kept as the target had them (`write_mode = "insert"`).
    pub kept: u64,
    /// Records the no-op target accepted.
    pub accepted: u64,
    /// Identical repeats skipped (ledger hits, identical copies in a batch).
    pub skipped: u64,
    /// Records dead-lettered (less those written after a replay).
    pub dead: u64,
}

impl Counts {
    /// Records that reached a final state.
    pub fn settled(&self) -> u64 {
        self.written
            + self.inserted
            + self.updated
            + self.unchanged
            + self.kept
            + self.accepted
            + self.skipped
            + self.dead
    }

    /// The counts as `name value` pairs, in the order summaries print them.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("inserted", self.inserted),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("kept", self.kept),
            ("accepted", self.accepted),
            ("written", self.written),
            ("skipped", self.skipped),
            ("dead-lettered", self.dead),
        ]
    }
}

/// A message whose records reached a final state (or, in the transform, were passed on), as
/// [`State::settle`] counts it.
#[derive(Clone, Copy, Debug)]
pub struct Settled<'a> {
    pub run_id: &'a str,
    /// Identifies the message (stage, page, record ids, replays): a redelivery counts once.
    pub key: &'a str,
    /// `transform` or `load`.
    pub stage: &'a str,
    /// Its records' outcomes; `dead` are the records it dead-lettered.
    pub counts: Counts,
    /// The ids of the records it dead-lettered.
    pub dead_ids: &'a [String],
    /// For a message moved back from a dead-letter queue by `ferry replay`: the ids of its records
    /// that did not fail this time.
    pub replayed_ok: Option<&'a [String]>,
    /// Its records whose id came earlier in the page with another content (all delivered).
    pub shared_id: u64,
}

/// What [`State::settle`] did with a message's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// False when the message had been counted already (a redelivery).
    pub counted: bool,
    /// Records dead-lettered earlier in the run that did not fail after a replay: moved out of
    /// `dead`.
    pub recovered: u64,
    /// Records of a replayed message dead-lettered again: already in `dead`, not added twice.
    pub dead_again: u64,
}

/// A run as `ferry status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub scheme: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i64,
    pub records: i64,
    pub counts: Counts,
    pub error: Option<String>,
    /// W3C `traceparent` of the run's extraction span (resumed runs continue that trace).
    pub traceparent: Option<String>,
    /// Records whose id came earlier in the same page with another content (each content is
    /// delivered; a high count says the scheme's `id` does not identify a record).
    pub shared_id: i64,
}

impl RunSummary {
    /// Records that reached a final state.
    pub fn settled(&self) -> i64 {
        self.counts.settled() as i64
    }
}

/// One content the ledger knows was delivered for a record id.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub digest: String,
    pub delivered_at: DateTime<Utc>,
}

/// A handle on the state database; cheap to clone.
#[derive(Clone, Debug)]
pub struct State {
    pool: MySqlPool,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl State {
    /// Connect (creating the database if needed) and run the migrations.
    pub async fn connect(url: &str) -> Result<State> {
        let pool = connect(url, 8, true)
            .await
            .map_err(|source| StateError::Connect {
                url: redact::url(url),
                source,
            })?;
        for ddl in MIGRATIONS {
            sqlx::query(AssertSqlSafe(*ddl)).execute(&pool).await?;
        }
        Ok(State { pool })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    // ---- checkpoints -------------------------------------------------------------------------

    pub async fn checkpoint(&self, scheme: &str) -> Result<Checkpoint> {
        let row = sqlx::query(
            "SELECT cursor_json, last_sync_time, run_id, source_digest, data_cursor, run_data_cursor,
                 run_window_start
             FROM ferry_checkpoints WHERE scheme = ?",
        )
        .bind(scheme)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Checkpoint::default());
        };
        let json = |i: usize| -> Result<Option<serde_json::Value>> {
            let text: Option<String> = row.try_get(i)?;
            text.map(|text| {
                serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                    scheme: scheme.to_string(),
                    message: e.to_string(),
                })
            })
            .transpose()
        };
        let last: Option<NaiveDateTime> = row.try_get(1)?;
        Ok(Checkpoint {
            cursor: json(0)?,
            last_sync_time: last.map(utc),
            run_id: row.try_get(2)?,
            source_digest: row.try_get(3)?,
            data_cursor: json(4)?,
            run_data_cursor: json(5)?,
            run_window_start: row.try_get::<Option<NaiveDateTime>, _>(6)?.map(utc),
        })
    }

    /// Count a page the broker confirmed and, in the same transaction, move the scheme's cursor
    /// past it: the run's counts and the position it would resume from never disagree.
    pub async fn page_confirmed(&self, page: &ConfirmedPage<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE ferry_runs SET pages = pages + 1, records = records + ? WHERE run_id = ?",
        )
        .bind(page.records)
        .bind(page.run_id)
        .execute(&mut *tx)
        .await?;
        if let Some(cursor) = page.cursor {
            sqlx::query(
                "INSERT INTO ferry_checkpoints
                     (scheme, cursor_json, run_id, source_digest, run_data_cursor,
                      run_window_start, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))
                 ON DUPLICATE KEY UPDATE cursor_json = VALUES(cursor_json), run_id = VALUES(run_id),
                     source_digest = VALUES(source_digest),
                     run_data_cursor = VALUES(run_data_cursor),
                     run_window_start = VALUES(run_window_start), updated_at = VALUES(updated_at)",
            )
            .bind(page.scheme)
            .bind(cursor.to_string())
            .bind(page.run_id)
            .bind(page.source_digest)
            .bind(page.data_cursor.map(|v| v.to_string()))
            .bind(page.window_start.map(|t| t.naive_utc()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The interrupted run a scheme's extraction can resume: the run its saved cursor belongs to,
    /// when that cursor was read with `source_digest` and the run ended without extracting
    /// everything (it failed, or its extractor died). The run is marked `extracting` again.
    pub async fn resume_run(&self, scheme: &str, source_digest: &str) -> Result<Option<Resume>> {
        let checkpoint = self.checkpoint(scheme).await?;
        let data_cursor = checkpoint.run_data_cursor;
        let window_start = checkpoint.run_window_start;
        let (Some(cursor), Some(run_id)) = (checkpoint.cursor, checkpoint.run_id) else {
            return Ok(None);
        };
        if checkpoint.source_digest.as_deref() != Some(source_digest) {
            return Ok(None);
        }
        let reopened = sqlx::query(
            "UPDATE ferry_runs SET status = 'extracting', error = NULL, extracted_at = NULL
             WHERE run_id = ? AND scheme = ? AND status IN ('extracting', 'failed')",
        )
        .bind(&run_id)
        .bind(scheme)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if reopened != 1 {
            return Ok(None);
        }
        let Some(run) = self.run(&run_id).await? else {
            return Ok(None);
        };
        Ok(Some(Resume {
            run,
            cursor,
            data_cursor,
            window_start,
        }))
    }

    /// Forget the position of `scheme`'s unfinished run so the next extraction starts from the
    /// beginning (`--restart`); that run is marked failed, saying so. Returns its id, if any.
    pub async fn discard_unfinished(&self, scheme: &str) -> Result<Option<String>> {
        let checkpoint = self.checkpoint(scheme).await?;
        let Some(run_id) = checkpoint.cursor.and(checkpoint.run_id) else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE ferry_checkpoints SET cursor_json = NULL, run_id = NULL, source_digest = NULL,
                 run_data_cursor = NULL, run_window_start = NULL, updated_at = UTC_TIMESTAMP(6)
             WHERE scheme = ?",
        )
        .bind(scheme)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE ferry_runs SET status = 'failed', error = 'discarded by --restart'
             WHERE run_id = ? AND status IN ('extracting', 'failed')",
        )
        .bind(&run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(run_id))
    }

    /// Record that a run extracted everything from `since`: the next run's `LAST_SYNC_TIME`;
    /// and, when the run saw any `cursor_field` value, the largest: the next `LAST_CURSOR` (a
    /// run that saw none keeps the previous one). The position is cleared: the next run starts
    /// from the beginning of its window.
    pub async fn complete_sync(
        &self,
        scheme: &str,
        since: DateTime<Utc>,
        data_cursor: Option<&serde_json::Value>,
    ) -> Result<()> {
        sqlx::query(COMPLETE_SYNC_SQL)
            .bind(scheme)
            .bind(since.naive_utc())
            .bind(data_cursor.map(|v| v.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The extraction of `run_id` published everything: in one transaction, the run becomes
    /// `loading` (as [`State::end_extraction`]; `done` at once when every record is settled
    /// already), and the scheme's sync is recorded (as [`State::complete_sync`]). Apart, an
    /// extractor killed between the two left a `loading` run with its position still saved, which
    /// the next extraction could not resume and started over from the beginning.
    pub async fn extraction_complete(
        &self,
        run_id: &str,
        scheme: &str,
        since: DateTime<Utc>,
        data_cursor: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(END_EXTRACTION_SQL)
            .bind(None::<&str>)
            .bind(RunStatus::Loading.as_str())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(COMPLETE_SYNC_SQL)
            .bind(scheme)
            .bind(since.naive_utc())
            .bind(data_cursor.map(|v| v.to_string()))
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(FINISH_IF_SETTLED_SQL))
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- runs --------------------------------------------------------------------------------

    /// Record a new run of `scheme` that started at `started_at` (the run's `NOW()`), traced
    /// under `traceparent`.
    pub async fn start_run(
        &self,
        run_id: &str,
        scheme: &str,
        started_at: DateTime<Utc>,
        traceparent: Option<&str>,
    ) -> Result<()> {
        // Settled-message keys only matter while a run's messages may still be redelivered.
        sqlx::query(
            "DELETE FROM ferry_settled WHERE settled_at < UTC_TIMESTAMP(6) - INTERVAL 7 DAY",
        )
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO ferry_runs (run_id, scheme, status, started_at, traceparent)
             VALUES (?, ?, 'extracting', ?, ?)",
        )
        .bind(run_id)
        .bind(scheme)
        .bind(started_at.naive_utc())
        .bind(traceparent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extraction ended: `loading` (everything published) or `failed` with the error. A run a
    /// stage `stopped` meanwhile stays stopped, with that error.
    pub async fn end_extraction(&self, run_id: &str, error: Option<&str>) -> Result<()> {
        let status = if error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Loading
        };
        sqlx::query(END_EXTRACTION_SQL)
            .bind(error)
            .bind(status.as_str())
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A stage of `run_id` stopped on a configuration error: the run is `stopped` with `error`
    /// (unless it already finished).
    pub async fn stop_run(&self, run_id: &str, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE ferry_runs SET status = 'stopped', error = ?
             WHERE run_id = ? AND status IN ('extracting', 'loading', 'stopped')",
        )
        .bind(error)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Count a message's records that reached a final state in the transform or load stage,
    /// once per message: `key` identifies the message (see `ferry`'s worker), and a key already
    /// counted for this run is ignored, so a redelivered batch is not counted twice.
    ///
    /// Dead-lettered records are noted by (run, stage, record id). When a replayed message's
    /// record does not fail this time, it moves out of the run's `dead` count (into the outcome
    /// the load reports; a transform passes it on, and the load counts it); a replayed record
    /// dead-lettered again stays counted once. So a run's counts add up after replays too.
    ///
    /// When the run has extracted everything and every record is settled, it is marked `done`.
    pub async fn settle(&self, settled: &Settled<'_>) -> Result<Reconciled> {
        let c = &settled.counts;
        if c.settled() == 0
            && settled.shared_id == 0
            && settled.replayed_ok.is_none_or(|ok| ok.is_empty())
        {
            return Ok(Reconciled::default());
        }
        let (run_id, stage) = (settled.run_id, settled.stage);
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(
            "INSERT IGNORE INTO ferry_settled (run_id, batch_key, settled_at) VALUES (?, ?, UTC_TIMESTAMP(6))",
        )
        .bind(run_id)
        .bind(settled.key)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first {
            tx.rollback().await?;
            return Ok(Reconciled::default());
        }
        let mut reconciled = Reconciled {
            counted: true,
            ..Reconciled::default()
        };
        if let Some(ok) = settled.replayed_ok {
            for id in ok {
                reconciled.recovered += sqlx::query(
                    "UPDATE ferry_run_dead SET letters = letters - 1
                     WHERE run_id = ? AND stage = ? AND record_id = ? AND letters > 0",
                )
                .bind(run_id)
                .bind(stage)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        for id in settled.dead_ids {
            let known: Option<i64> = match settled.replayed_ok {
                Some(_) => {
                    sqlx::query_scalar(
                        "SELECT letters FROM ferry_run_dead
                         WHERE run_id = ? AND stage = ? AND record_id = ? AND letters > 0",
                    )
                    .bind(run_id)
                    .bind(stage)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => None,
            };
            if known.is_some() {
                reconciled.dead_again += 1;
                continue;
            }
            sqlx::query(
                "INSERT INTO ferry_run_dead (run_id, stage, record_id, letters) VALUES (?, ?, ?, 1)
                 ON DUPLICATE KEY UPDATE letters = letters + 1",
            )
            .bind(run_id)
            .bind(stage)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let dead = c.dead as i64 - reconciled.dead_again as i64 - reconciled.recovered as i64;
        sqlx::query(
            "UPDATE ferry_runs SET written = written + ?, inserted = inserted + ?,
                 updated = updated + ?, unchanged = unchanged + ?, kept = kept + ?,
                 accepted = accepted + ?, skipped = skipped + ?, dead = dead + ?,
                 shared_id = shared_id + ?
             WHERE run_id = ?",
        )
        .bind(c.written)
        .bind(c.inserted)
        .bind(c.updated)
        .bind(c.unchanged)
        .bind(c.kept)
        .bind(c.accepted)
        .bind(c.skipped)
        .bind(dead)
        .bind(settled.shared_id)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // In the same transaction: a settle whose count committed but whose `done` did not (its
        // loader killed between the two, or the second statement failed and the retry found the
        // key counted already) left a run `loading` for ever with every record settled.
        sqlx::query(AssertSqlSafe(FINISH_IF_SETTLED_SQL))
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(reconciled)
    }

    /// Count, for the transform message `batch_key` of a run, how many of its records lacked the
    /// field each placeholder names. A message counted already (a redelivery) is ignored.
    pub async fn count_absent(
        &self,
        run_id: &str,
        batch_key: &str,
        absent: &[(String, u64)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (placeholder, records) in absent {
            sqlx::query(
                "INSERT IGNORE INTO ferry_run_absent (run_id, batch_key, placeholder, records)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(run_id)
            .bind(batch_key)
            .bind(placeholder)
            .bind(records)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The placeholders that named a field absent from records of a run, with how many records
    /// lacked each, by placeholder.
    pub async fn absent_fields(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT placeholder, CAST(SUM(records) AS SIGNED) FROM ferry_run_absent
             WHERE run_id = ? GROUP BY placeholder ORDER BY placeholder",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Mark a run `done` once it extracted everything and every record is settled (a stopped
    /// run too, once its scheme was fixed and its messages loaded).
    pub async fn finish_if_settled(&self, run_id: &str) -> Result<()> {
        sqlx::query(AssertSqlSafe(FINISH_IF_SETTLED_SQL))
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The records of `run_id` still dead-lettered, by stage (`transform`, `load`).
    pub async fn dead_by_stage(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT stage, CAST(SUM(letters) AS SIGNED) FROM ferry_run_dead
             WHERE run_id = ? AND letters > 0 GROUP BY stage ORDER BY stage DESC",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get(1)?;
                Ok((r.try_get(0)?, n.max(0) as u64))
            })
            .collect()
    }

    pub async fn run(&self, run_id: &str) -> Result<Option<RunSummary>> {
        let row = sqlx::query(RUN_COLUMNS_BY_ID)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// The latest runs of a scheme, newest first.
    pub async fn recent_runs(&self, scheme: &str, limit: u32) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(RUN_COLUMNS_BY_SCHEME)
            .bind(scheme)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    // ---- the extract lock --------------------------------------------------------------------

    /// Take or renew the lease `name` for `owner`. Returns false if another owner holds a live lease.
    pub async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let ttl_us = ttl.as_micros() as i64;
        // Insert, or take over an expired lease, or renew our own; a live lease of another owner
        // leaves the row untouched (0 rows affected).
        sqlx::query(
            "INSERT INTO ferry_locks (name, owner, expires_at)
             VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
             ON DUPLICATE KEY UPDATE
                 owner = IF(owner = VALUES(owner) OR expires_at < UTC_TIMESTAMP(6), VALUES(owner), owner),
                 expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)",
        )
        .bind(name)
        .bind(owner)
        .bind(ttl_us)
        .execute(&self.pool)
        .await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM ferry_locks WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(holder.as_deref() == Some(owner))
    }

    /// Take the lease from `previous` (a holder known to be dead) for `owner`. Compare-and-swap:
    /// returns false if someone else renewed or took it meanwhile.
    pub async fn take_over_lock(
        &self,
        name: &str,
        previous: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE ferry_locks SET owner = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
             WHERE name = ? AND owner = ?",
        )
        .bind(owner)
        .bind(ttl.as_micros() as i64)
        .bind(name)
        .bind(previous)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_locks WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The current holder of a live lease, if any.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT owner FROM ferry_locks WHERE name = ? AND expires_at >= UTC_TIMESTAMP(6)",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- the idCheck ledger ------------------------------------------------------------------

    /// What the ledger knows of `ids` in `scheme`: every content digest delivered for each, so
    /// that a content is a repeat only if that exact content was delivered for that id. Reads
    /// `ferry_ledger` too: the last digest per id that versions before the content ledger kept.
    pub async fn ledger(
        &self,
        scheme: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<LedgerEntry>>> {
        let mut out: HashMap<String, Vec<LedgerEntry>> = HashMap::new();
        for table in LEDGER_TABLES {
            let select = format!("SELECT record_id, digest, delivered_at FROM {table}");
            for row in self.rows_by_id(&select, scheme, ids).await? {
                let at: NaiveDateTime = row.try_get(2)?;
                let entry = LedgerEntry {
                    digest: row.try_get(1)?,
                    delivered_at: utc(at),
                };
                let known = out.entry(row.try_get(0)?).or_default();
                if !known.iter().any(|k| k.digest == entry.digest) {
                    known.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// Of `ids`, the `(id, digest)` contents in a push whose outcome is unknown.
    pub async fn pending(&self, scheme: &str, ids: &[String]) -> Result<HashSet<(String, String)>> {
        let mut out = HashSet::new();
        for table in PENDING_TABLES {
            let select = format!("SELECT record_id, digest FROM {table}");
            for row in self.rows_by_id(&select, scheme, ids).await? {
                out.insert((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// `select` (naming a table with `scheme` and `record_id` columns) for `ids`, in chunks.
    async fn rows_by_id(
        &self,
        select: &str,
        scheme: &str,
        ids: &[String],
    ) -> Result<Vec<sqlx::mysql::MySqlRow>> {
        let mut rows = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("{select} WHERE scheme = ? AND record_id IN ({marks})");
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(scheme);
            for id in chunk {
                q = q.bind(id);
            }
            rows.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(rows)
    }

    /// Note `(id, digest)` entries as about to be pushed (their outcome unknown until the answer).
    pub async fn mark_pending(&self, scheme: &str, entries: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_digests(
            &mut tx,
            "ferry_ledger_pending_contents",
            "since",
            scheme,
            entries,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The push of `(id, digest)` entries was answered with a refusal: they were not delivered.
    pub async fn clear_pending(&self, scheme: &str, entries: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        delete_pending(&mut tx, scheme, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `(id, digest)` entries were delivered: into the ledger, out of the pending ones.
    pub async fn record_delivered(&self, scheme: &str, entries: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_digests(
            &mut tx,
            "ferry_ledger_contents",
            "delivered_at",
            scheme,
            entries,
        )
        .await?;
        delete_pending(&mut tx, scheme, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- cached access tokens ----------------------------------------------------------------

    /// A cached token for `connection` that stays valid for at least `margin`.
    pub async fn token(
        &self,
        connection: &str,
        margin: Duration,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT token, extra_json FROM ferry_tokens
             WHERE connection = ? AND expires_at > UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND",
        )
        .bind(connection)
        .bind(margin.as_micros() as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn save_token(
        &self,
        connection: &str,
        token: &str,
        extra: Option<&str>,
        ttl: Duration,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ferry_tokens (connection, token, extra_json, expires_at, updated_at)
             VALUES (?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, UTC_TIMESTAMP(6))
             ON DUPLICATE KEY UPDATE token = VALUES(token), extra_json = VALUES(extra_json),
                 expires_at = VALUES(expires_at), updated_at = VALUES(updated_at)",
        )
        .bind(connection)
        .bind(token)
        .bind(extra)
        .bind(ttl.as_micros() as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn forget_token(&self, connection: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_tokens WHERE connection = ?")
            .bind(connection)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- outages -----------------------------------------------------------------------------

    /// `side` (`target` or `source`) of `scheme` is unreachable since `since`, still so now:
    /// record it, or renew `seen_at` (and the error) of the outage already recorded.
    pub async fn outage_seen(
        &self,
        scheme: &str,
        side: &str,
        since: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ferry_outages (scheme, side, since, seen_at, error)
             VALUES (?, ?, ?, UTC_TIMESTAMP(6), ?)
             ON DUPLICATE KEY UPDATE seen_at = UTC_TIMESTAMP(6), error = VALUES(error)",
        )
        .bind(scheme)
        .bind(side)
        .bind(since.naive_utc())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `side` of `scheme` answers again.
    pub async fn outage_over(&self, scheme: &str, side: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_outages WHERE scheme = ? AND side = ?")
            .bind(scheme)
            .bind(side)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The outages of `scheme` a role saw within the last `fresh` (older rows are of a role that
    /// stopped meanwhile): (side, since, last seen, error).
    pub async fn outages(&self, scheme: &str, fresh: Duration) -> Result<Vec<Outage>> {
        let rows: Vec<(String, NaiveDateTime, NaiveDateTime, String)> = sqlx::query_as(
            "SELECT side, since, seen_at, error FROM ferry_outages
             WHERE scheme = ? AND seen_at >= UTC_TIMESTAMP(6) - INTERVAL ? SECOND ORDER BY side",
        )
        .bind(scheme)
        .bind(fresh.as_secs())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(side, since, seen_at, error)| Outage {
                side,
                since: utc(since),
                seen_at: utc(seen_at),
                error,
            })
            .collect())
    }

    // ---- roles -------------------------------------------------------------------------------

    /// `role` (process `process`) runs `schemes` on the RabbitMQ node `broker_node`: record it, or
    /// renew `seen_at`. `connected_at` moves when the node changes (a fresh connection).
    pub async fn role_seen(&self, role: &RoleSeen<'_>) -> Result<()> {
        sqlx::query("DELETE FROM ferry_roles WHERE seen_at < UTC_TIMESTAMP(6) - INTERVAL 1 DAY")
            .execute(&self.pool)
            .await?;
        // MySQL assigns left to right: `connected_at` reads the old node.
        sqlx::query(
            "INSERT INTO ferry_roles
                 (process, role, host, pid, schemes, broker_node, connected_at, seen_at)
             VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
             ON DUPLICATE KEY UPDATE
                 connected_at = IF(broker_node = VALUES(broker_node), connected_at, VALUES(connected_at)),
                 broker_node = VALUES(broker_node), schemes = VALUES(schemes),
                 seen_at = VALUES(seen_at)",
        )
        .bind(role.process)
        .bind(role.role)
        .bind(role.host)
        .bind(role.pid)
        .bind(serde_json::to_string(role.schemes).unwrap_or_else(|_| "[]".into()))
        .bind(role.broker_node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The process `process` ended cleanly.
    pub async fn role_gone(&self, process: &str) -> Result<()> {
        sqlx::query("DELETE FROM ferry_roles WHERE process = ?")
            .bind(process)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The roles seen within the last `fresh`, by role and host.
    pub async fn roles(&self, fresh: Duration) -> Result<Vec<RoleRow>> {
        let rows: Vec<RoleTuple> = sqlx::query_as(
            "SELECT process, role, host, pid, schemes, broker_node, connected_at, seen_at
                 FROM ferry_roles WHERE seen_at >= UTC_TIMESTAMP(6) - INTERVAL ? SECOND
                 ORDER BY role, host, pid",
        )
        .bind(fresh.as_secs())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(process, role, host, pid, schemes, broker_node, connected_at, seen_at)| RoleRow {
                    process,
                    role,
                    host,
                    pid,
                    schemes: serde_json::from_str(&schemes).unwrap_or_default(),
                    broker_node,
                    connected_at: utc(connected_at),
                    seen_at: utc(seen_at),
                },
            )
            .collect())
    }

    // ---- alerts ------------------------------------------------------------------------------

    /// Open the alert (`scheme`, `kind`) unless it is open already. True when this call opened
    /// it: the caller, and only it, sends the alert, whatever the number of replicas.
    pub async fn open_alert(
        &self,
        scheme: &str,
        kind: &str,
        stage: &str,
        message: &str,
    ) -> Result<bool> {
        let opened = sqlx::query(
            "INSERT IGNORE INTO ferry_alerts (scheme, kind, stage, raised_at, message)
             VALUES (?, ?, ?, UTC_TIMESTAMP(6), ?)",
        )
        .bind(scheme)
        .bind(kind)
        .bind(stage)
        .bind(message)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(opened == 1)
    }

    /// Close the alert (`scheme`, `kind`) if it is open (and, with `stage`, was raised in that
    /// stage). Returns when it was raised if this call closed it: the caller, and only it, sends
    /// the recovery.
    pub async fn close_alert(
        &self,
        scheme: &str,
        kind: &str,
        stage: Option<&str>,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.pool.begin().await?;
        let raised: Option<(NaiveDateTime, String)> = sqlx::query_as(
            "SELECT raised_at, stage FROM ferry_alerts WHERE scheme = ? AND kind = ? FOR UPDATE",
        )
        .bind(scheme)
        .bind(kind)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((raised_at, raised_stage)) = raised else {
            tx.rollback().await?;
            return Ok(None);
        };
        if stage.is_some_and(|s| s != raised_stage) {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("DELETE FROM ferry_alerts WHERE scheme = ? AND kind = ?")
            .bind(scheme)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(utc(raised_at)))
    }

    /// The open alerts, oldest first: (scheme, kind, raised at, message).
    pub async fn open_alerts(&self) -> Result<Vec<(String, String, DateTime<Utc>, String)>> {
        let rows: Vec<(String, String, NaiveDateTime, String)> = sqlx::query_as(
            "SELECT scheme, kind, raised_at, message FROM ferry_alerts ORDER BY raised_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, k, t, m)| (s, k, utc(t), m))
            .collect())
    }

    // ---- shared rate limits ------------------------------------------------------------------

    /// Take one slot of the sliding-window limit `name` (`limit` per `window`), shared by every
    /// process on this state database. `Ok(None)` means granted; `Ok(Some(wait))` means the window
    /// is full and a slot frees up after `wait`.
    pub async fn take_rate_slot(
        &self,
        name: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>> {
        let window_us = window.as_micros() as i64;
        sqlx::query("INSERT IGNORE INTO ferry_rate (name) VALUES (?)")
            .bind(name)
            .execute(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        // The row lock serialises every replica's decision for this limiter.
        sqlx::query("SELECT name FROM ferry_rate WHERE name = ? FOR UPDATE")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM ferry_rate_log
             WHERE name = ? AND granted_at <= UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND",
        )
        .bind(name)
        .bind(window_us)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MIN(granted_at) + INTERVAL ? MICROSECOND)
             FROM ferry_rate_log WHERE name = ?",
        )
        .bind(window_us)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let used: i64 = row.try_get(0)?;
        if used < i64::from(limit) {
            sqlx::query(
                "INSERT INTO ferry_rate_log (name, granted_at) VALUES (?, UTC_TIMESTAMP(6))",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let wait_us: Option<i64> = row.try_get(1)?;
        tx.commit().await?;
        Ok(Some(Duration::from_micros(
            wait_us.unwrap_or(0).max(1_000) as u64
        )))
    }
}

/// The ledger's tables, newest first: contents by (id, digest), and the last digest per id that
/// older versions kept (still valid "delivered" facts).
const LEDGER_TABLES: [&str; 2] = ["ferry_ledger_contents", "ferry_ledger"];
/// The pending pushes' tables, likewise.
const PENDING_TABLES: [&str; 2] = ["ferry_ledger_pending_contents", "ferry_ledger_pending"];

/// The sum of a run's settled counts, in SQL.
/// Ends a run's extraction (error, status, run id). MySQL assigns left to right: `error` reads
/// the old status.
const END_EXTRACTION_SQL: &str = "UPDATE ferry_runs SET error = IF(status = 'stopped', error, ?),
         status = IF(status = 'stopped', status, ?), extracted_at = UTC_TIMESTAMP(6)
     WHERE run_id = ?";

/// Records a complete sync of a scheme (scheme, since, data cursor) and clears its position.
const COMPLETE_SYNC_SQL: &str = "INSERT INTO ferry_checkpoints
         (scheme, cursor_json, last_sync_time, data_cursor, updated_at)
     VALUES (?, NULL, ?, ?, UTC_TIMESTAMP(6))
     ON DUPLICATE KEY UPDATE cursor_json = NULL, run_id = NULL, source_digest = NULL,
         run_data_cursor = NULL, run_window_start = NULL,
         last_sync_time = VALUES(last_sync_time),
         data_cursor = COALESCE(VALUES(data_cursor), data_cursor),
         updated_at = VALUES(updated_at)";

/// Marks a run (`?`) `done` once it extracted everything and every record is settled (the sum
/// of its settled counts, written out as in the status).
const FINISH_IF_SETTLED_SQL: &str = "UPDATE ferry_runs SET status = 'done', error = NULL,
         finished_at = UTC_TIMESTAMP(6)
     WHERE run_id = ? AND status IN ('loading', 'stopped') AND extracted_at IS NOT NULL
         AND (written + inserted + updated + unchanged + kept + accepted + skipped + dead) >= records";
const RUN_COLUMNS_BY_ID: &str = "SELECT run_id, scheme, status, started_at, finished_at, pages, records, written, skipped, dead, error, traceparent, inserted, updated, unchanged, kept, accepted, shared_id FROM ferry_runs WHERE run_id = ?";
const RUN_COLUMNS_BY_SCHEME: &str = "SELECT run_id, scheme, status, started_at, finished_at, pages, records, written, skipped, dead, error, traceparent, inserted, updated, unchanged, kept, accepted, shared_id FROM ferry_runs WHERE scheme = ? ORDER BY started_at DESC LIMIT ?";

fn run_from_row(row: &sqlx::mysql::MySqlRow) -> Result<RunSummary> {
    let started: NaiveDateTime = row.try_get(3)?;
    let finished: Option<NaiveDateTime> = row.try_get(4)?;
    let run_id: String = row.try_get(0)?;
    let status: String = row.try_get(2)?;
    let count = |i: usize| -> Result<u64> { Ok(row.try_get::<i64, _>(i)?.max(0) as u64) };
    Ok(RunSummary {
        status: RunStatus::parse(&run_id, &status)?,
        run_id,
        scheme: row.try_get(1)?,
        started_at: utc(started),
        finished_at: finished.map(utc),
        pages: row.try_get(5)?,
        records: row.try_get(6)?,
        counts: Counts {
            written: count(7)?,
            inserted: count(12)?,
            updated: count(13)?,
            unchanged: count(14)?,
            kept: count(15)?,
            accepted: count(16)?,
            skipped: count(8)?,
            dead: count(9)?,
        },
        error: row.try_get(10)?,
        traceparent: row.try_get(11)?,
        shared_id: row.try_get(17)?,
    })
}

/// Upsert `(scheme, record_id, digest, now)` rows into `table` (the ledger, or its pending
/// twin), whose time column is `at_column`, in chunks.
async fn upsert_digests(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    table: &str,
    at_column: &str,
    scheme: &str,
    entries: &[(String, String)],
) -> Result<()> {
    for chunk in entries.chunks(500) {
        let rows = vec!["(?, ?, ?, UTC_TIMESTAMP(6))"; chunk.len()].join(",");
        let sql = format!(
            "INSERT INTO {table} (scheme, record_id, digest, {at_column}) VALUES {rows}
             ON DUPLICATE KEY UPDATE digest = VALUES(digest), {at_column} = VALUES({at_column})"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (id, digest) in chunk {
            q = q.bind(scheme).bind(id).bind(digest);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Remove `(id, digest)` entries from the pending tables.
async fn delete_pending(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    scheme: &str,
    entries: &[(String, String)],
) -> Result<()> {
    for table in PENDING_TABLES {
        for chunk in entries.chunks(500) {
            let pairs = vec!["(?, ?)"; chunk.len()].join(",");
            let sql = format!(
                "DELETE FROM {table} WHERE scheme = ? AND (record_id, digest) IN ({pairs})"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(scheme);
            for (id, digest) in chunk {
                q = q.bind(id).bind(digest);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}
