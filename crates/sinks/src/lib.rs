//! # ferry-sinks
//!
//! Where records go. A [`Sink`] writes one batch of mapped records (the rendered target request
//! trees) and reports, per record, what happened: written, skipped as already written, or failed
//! with a classified error. A whole-batch error (the database went away, the table is missing)
//! comes back as `Err`, and nothing of the batch counts as written.
//!
//! - [`mysql`]: `execute` (the scheme's statement per record, one transaction per batch) and
//!   `batchexecute` (multi-row statements), bisecting a failed batch to isolate bad records.
//! - [`http`]: any business API as a target: records posted as JSON or a form, success decided
//!   by the status and a JSON pointer, vendor codes classed by configuration.
//! - [`noop`]: accepts everything (seeds 003 and 004, `写入空操作`).
//! - [`robot`]: chat-group robots (the DingTalk custom robot of seed 000, WeCom, Feishu): records
//!   batched into signed messages, a rate limit shared through the state database, and the idCheck ledger.
//! - `ledger`: the (id, content digest) delivery ledger of targets that cannot take a record
//!   twice; `rate`: the rate-limit slot shared by every replica of a target.

pub mod http;
mod ledger;
pub mod mysql;
mod net;
pub mod noop;
mod rate;
pub mod robot;

use async_trait::async_trait;
use ferry_core::{FerryError, Record};

/// The outcome of writing one batch. Every record of the batch is counted once, in one field of
/// `counts` (whose `dead` stays 0: the loader dead-letters `failed`).
#[derive(Debug, Default)]
pub struct WriteReport {
    /// What the target did with the records it took.
    pub counts: ferry_state::Counts,
    /// Records the target refused, each with its error (normally class `Record`).
    pub failed: Vec<(Record, FerryError)>,
}

/// A target opened for a scheme; shared by the loader's concurrent batches.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError>;

    /// Whether the target answers at all, asked after a batch failed with a `Transient` error:
    /// `Err` (why not) means the service is down, and the loader holds the scheme's messages in
    /// their queue and asks again every few seconds instead of sending batches through the retry
    /// queues. A target that cannot tell answers `Ok`, and its transient failures are retried.
    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}
