//! The delivery ledger (`idCheck`) of targets that cannot take the same record twice: a chat
//! robot, an API without upsert.
//!
//! A record is its (id, content digest). The state database keeps every pair the target
//! accepted, per scheme, and the pairs being sent right now (pending). The protocol, for each
//! request a target sends:
//!
//! 1. [`Ledger::sort`] the batch: identical repeats of an id in the batch and contents the ledger
//!    has are skipped; every other content is sent, marked as an update when another content of
//!    its id was sent before or comes earlier in the batch, and as a possible repeat when an
//!    earlier send of the same content is still pending (its answer never came).
//! 2. [`Ledger::mark_pending`] the request's pairs just before sending it.
//! 3. On an answer: accepted, [`Ledger::record`] them (before the next request, so a batch that
//!    fails half way and comes back sends only what is left); refused,
//!    [`Ledger::clear_pending`]. No answer (a timeout): they stay pending.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use ferry_core::FerryError;
use ferry_core::identity::distinct;
use ferry_state::State;

/// Writing the ledger after an accepted request is retried this often before the batch fails.
const LEDGER_ATTEMPTS: usize = 5;
/// First pause between ledger attempts (doubling).
const LEDGER_BACKOFF_MS: u64 = 200;

/// One item the ledger sorts: a record's id, the digest of what the target receives of it, and
/// the marks the sort sets.
pub(crate) trait Tracked {
    fn id(&self) -> &str;
    fn digest(&self) -> &str;
    fn set_marks(&mut self, marks: Marks);
}

/// How a record to send relates to what was sent before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// Another content of its id was sent before, or comes earlier in the batch.
    pub update: bool,
    /// In a send whose answer never came: the target may have it already.
    pub maybe_repeat: bool,
}

/// The ledger of one scheme's target.
#[derive(Clone)]
pub(crate) struct Ledger {
    state: State,
    scheme: String,
    /// The connection's name, for error texts.
    connection: String,
    /// `idCheck`: consult and write the ledger. Without it, only repeats inside a batch are
    /// skipped.
    enabled: bool,
}

impl Ledger {
    pub(crate) fn new(state: State, scheme: &str, connection: &str, enabled: bool) -> Ledger {
        Ledger {
            state,
            scheme: scheme.to_string(),
            connection: connection.to_string(),
            enabled,
        }
    }

    /// Sort the batch by identity (step 1 above): the items to send, marked, and how many were
    /// skipped.
    pub(crate) async fn sort<T: Tracked>(&self, all: Vec<T>) -> Result<(Vec<T>, u64), FerryError> {
        let batch = distinct(all, |e| e.id(), |a, b| a.digest() == b.digest());
        let (ledger, pending) = if self.enabled {
            let mut ids: Vec<String> = batch
                .kept
                .iter()
                .filter(|(e, _)| !e.id().is_empty())
                .map(|(e, _)| e.id().to_string())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            (
                self.state.ledger(&self.scheme, &ids).await?,
                self.state.pending(&self.scheme, &ids).await?,
            )
        } else {
            Default::default()
        };
        let mut skipped = batch.repeats;
        let mut items = Vec::with_capacity(batch.kept.len());
        for (mut item, later_content) in batch.kept {
            let delivered = ledger.get(item.id()).map(Vec::as_slice);
            let delivered = delivered.unwrap_or_default();
            if delivered.iter().any(|d| d.digest == item.digest()) {
                skipped += 1;
                continue;
            }
            let maybe_repeat =
                pending.contains(&(item.id().to_string(), item.digest().to_string()));
            item.set_marks(Marks {
                update: later_content || !delivered.is_empty(),
                maybe_repeat,
            });
            items.push(item);
        }
        Ok((items, skipped))
    }

    /// `(id, digest)` of the items the ledger tracks (those with an id).
    fn pairs<T: Tracked>(&self, items: &[&T]) -> Vec<(String, String)> {
        if !self.enabled {
            return Vec::new();
        }
        items
            .iter()
            .filter(|e| !e.id().is_empty())
            .map(|e| (e.id().to_string(), e.digest().to_string()))
            .collect()
    }

    /// Note a request's records as being sent, before it leaves.
    pub(crate) async fn mark_pending<T: Tracked>(&self, items: &[&T]) -> Result<(), FerryError> {
        let pairs = self.pairs(items);
        if pairs.is_empty() {
            return Ok(());
        }
        Ok(self.state.mark_pending(&self.scheme, &pairs).await?)
    }

    /// The target refused the request: its records were not delivered. A failure here only
    /// costs a needless "possible repeat" mark later, so it is logged, not raised.
    pub(crate) async fn clear_pending<T: Tracked>(&self, items: &[&T]) {
        let pairs = self.pairs(items);
        if pairs.is_empty() {
            return;
        }
        if let Err(e) = self.state.clear_pending(&self.scheme, &pairs).await {
            tracing::warn!(connection = %self.connection, error = %e, "could not clear pending records");
        }
    }

    /// Record delivered records, retrying briefly: a send that is not recorded would be sent
    /// again after a redelivery.
    pub(crate) async fn record<T: Tracked>(
        &self,
        items: &[&T],
        verb: &str,
    ) -> Result<(), FerryError> {
        let pairs = self.pairs(items);
        if pairs.is_empty() {
            return Ok(());
        }
        (|| self.state.record_delivered(&self.scheme, &pairs))
            .retry(
                ExponentialBuilder::new()
                    .with_min_delay(Duration::from_millis(LEDGER_BACKOFF_MS))
                    .with_max_times(LEDGER_ATTEMPTS),
            )
            .await
            .map_err(|e| {
                FerryError::transient(format!(
                    "connection `{}`: {verb} {} records but could not record them in the ledger \
                     (they may be {verb} again): {e}",
                    self.connection,
                    pairs.len()
                ))
            })
    }
}
