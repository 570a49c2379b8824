//! # ferry-sinks
//!
//! Where records go. A [`Sink`] writes one batch of mapped records (the rendered target request
//! trees) and reports, per record, what happened: written, skipped as already written, or failed
//! with a classified error. A whole-batch error (the database went away, the table is missing)
//! comes back as `Err`, and nothing of the batch counts as written.
//!
//! - [`mysql`]: `execute` (the scheme's statement per record, one transaction per batch) and
//!   `batchexecute` (multi-row statements), bisecting a failed batch to isolate bad records.
//! - [`noop`]: accepts everything (seeds 003 and 004, `写入空操作`).
//! - [`robot`]: the DingTalk custom group robot (seed 000): records batched into signed messages,
//!   a rate limit shared through the state database, and the idCheck ledger.

pub mod mysql;
pub mod noop;
pub mod robot;

use async_trait::async_trait;
use ferry_core::{FerryError, Record};

/// The outcome of writing one batch. Every record of the batch is counted once, in one field.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Records the target took without saying what it did with them (robot pushes, MySQL
    /// `REPLACE` and statements that are not an INSERT).
    pub written: u64,
    /// MySQL: rows inserted.
    pub inserted: u64,
    /// MySQL: rows that existed and were changed.
    pub updated: u64,
    /// MySQL: rows that existed and already held the record's values.
    pub unchanged: u64,
    /// MySQL: records whose key the table had, kept as they were (`write_mode = "insert"`).
    pub kept: u64,
    /// The no-op target: records accepted and written nowhere.
    pub accepted: u64,
    /// Records that were already there (a plain INSERT meeting its own duplicate under idCheck,
    /// a robot message already in the ledger, or an identical copy earlier in the batch).
    pub skipped: u64,
    /// Records the target refused, each with its error (normally class `Record`).
    pub failed: Vec<(Record, FerryError)>,
}

impl WriteReport {
    /// The counts, without the failures.
    pub fn counts(&self) -> ferry_state::Counts {
        ferry_state::Counts {
            written: self.written,
            inserted: self.inserted,
            updated: self.updated,
            unchanged: self.unchanged,
            kept: self.kept,
            accepted: self.accepted,
            skipped: self.skipped,
            dead: 0,
        }
    }
}

/// A target opened for a scheme; shared by the loader's concurrent batches.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError>;
}
