//! The audit of operations on dead letters and queues: every `ferry replay`, `ferry discard` and
//! `ferry teardown` (and, later, the console's replays) is one row of `ferry_replay_audit`,
//! written when it starts and completed when it ends, so a pass that died half-way still shows.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::Row;

use crate::store::{Result, State};

/// Who did it: the OS user (or `--by NAME`) and the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub by: String,
    pub host: String,
}

/// An operation about to start, as [`State::audit_start`] records it.
#[derive(Clone, Debug)]
pub struct AuditStart<'a> {
    pub scheme: &'a str,
    /// `transform`, `load`, or `all` (teardown).
    pub stage: &'a str,
    /// `replay`, `rerender`, `discard` or `teardown`.
    pub action: &'a str,
    pub actor: &'a Actor,
    /// The filter, as `DeadLetterFilter::describe` writes it (`all` when none).
    pub filter: &'a str,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
}

/// What an operation came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditOutcome {
    /// Dead letters the filter selected (teardown: messages in the removed queues).
    pub matched: u64,
    /// Moved back to a work queue.
    pub moved: u64,
    /// Removed (discarded dead letters; teardown: messages deleted with their queues).
    pub discarded: u64,
}

/// One audited operation, as `ferry status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub scheme: String,
    pub stage: String,
    pub action: String,
    pub by: String,
    pub host: String,
    pub filter: String,
    pub dry_run: bool,
    pub outcome: AuditOutcome,
    pub started_at: DateTime<Utc>,
    /// `None` while running, or when the process died before the end.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl State {
    /// Record that an operation starts; returns its audit id for [`State::audit_finish`].
    pub async fn audit_start(&self, start: &AuditStart<'_>) -> Result<i64> {
        let done = sqlx::query(
            "INSERT INTO ferry_replay_audit
                 (scheme, stage, action, by_name, host, filter, dry_run, started_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(start.scheme)
        .bind(start.stage)
        .bind(start.action)
        .bind(&start.actor.by)
        .bind(&start.actor.host)
        .bind(start.filter)
        .bind(start.dry_run)
        .bind(start.started_at.naive_utc())
        .execute(self.pool())
        .await?;
        Ok(done.last_insert_id() as i64)
    }

    /// Record what the operation `id` came to, and when it ended (`error`: why it stopped early).
    pub async fn audit_finish(
        &self,
        id: i64,
        outcome: &AuditOutcome,
        finished_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE ferry_replay_audit SET matched = ?, moved = ?, discarded = ?, finished_at = ?,
                 error = ?
             WHERE id = ?",
        )
        .bind(outcome.matched)
        .bind(outcome.moved)
        .bind(outcome.discarded)
        .bind(finished_at.naive_utc())
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The latest audited operations on `scheme`, newest first.
    pub async fn audit_entries(&self, scheme: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, scheme, stage, action, by_name, host, filter, dry_run, matched, moved,
                 discarded, started_at, finished_at, error
             FROM ferry_replay_audit WHERE scheme = ? ORDER BY started_at DESC, id DESC LIMIT ?",
        )
        .bind(scheme)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let count = |i: usize| -> Result<u64> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    scheme: r.try_get(1)?,
                    stage: r.try_get(2)?,
                    action: r.try_get(3)?,
                    by: r.try_get(4)?,
                    host: r.try_get(5)?,
                    filter: r.try_get(6)?,
                    dry_run: r.try_get(7)?,
                    outcome: AuditOutcome {
                        matched: count(8)?,
                        moved: count(9)?,
                        discarded: count(10)?,
                    },
                    started_at: utc(r.try_get(11)?),
                    finished_at: r.try_get::<Option<NaiveDateTime>, _>(12)?.map(utc),
                    error: r.try_get(13)?,
                })
            })
            .collect()
    }
}
