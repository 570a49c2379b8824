//! The consume loop shared by `transform` and `load`.
//!
//! For every message: parse it, hand it to the stage's [`Handler`] inside a span that continues
//! the message's trace, then settle it. This is the one place where the error class decides:
//!
//! | outcome                                  | what happens                                          |
//! |------------------------------------------|-------------------------------------------------------|
//! | handled, some records failed (`Record`)  | those records to the DLQ one by one, the rest passed on, ack |
//! | whole batch failed, `Transient`, and the target does not answer a probe | held: no ack, no other message taken, probed every few seconds, handled again once it answers (see [`super::outage`]) |
//! | whole batch failed, `Transient`          | to a retry queue (backoff), DLQ after the last attempt, ack |
//! | whole batch failed, `Record`             | every record to the DLQ, ack                          |
//! | `Config`                                 | message stays queued, this scheme stops, reported once |
//! | body is not an envelope                  | to the DLQ with the parse error, ack                  |
//!
//! The original is acknowledged only after whatever replaces it was confirmed by the broker and,
//! for a message that settles here, after its count is in the state database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_bus::{Bus, BusError, Headers, Incoming, Publisher, Routed, Stage, names};
use ferry_core::{Envelope, ErrorClass, FerryError, Record};
use ferry_state::{Counts, Settled, State};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::outage::{self, Outages, Side};
use crate::alerts::{Alert, Alerts, Kind};
use crate::app::MAX_ATTEMPTS;
use crate::metrics;
use crate::shutdown::Shutdown;

/// Unacknowledged messages a load worker holds, whatever `[broker] prefetch` says. A worker
/// writes one message at a time, so one more in hand is all that hides the broker's round trip;
/// more only keeps messages from the other loaders: with the old 16 per worker, the first two
/// `ferry load` replicas held a queue of 80 batches between them and a third and fourth had
/// nothing to do (`bench/compare.sh`, the scaling rows), and each held batch is memory.
pub const LOAD_PREFETCH: u16 = 2;

/// What a stage did with one message.
#[derive(Debug, Default)]
pub struct Handled {
    /// Records passed on (published to the next stage) or taken by the target.
    pub passed: u64,
    /// The records that reached their final state here, by outcome (the load); none in the
    /// transform, whose records settle later, in the load.
    pub counts: Counts,
    /// Records whose id came earlier in the page with another content (all passed on; the
    /// transform counts them).
    pub shared_id: u64,
    /// Records that failed on their own.
    pub failed: Vec<(Record, FerryError)>,
}

#[async_trait]
pub trait Handler: Send + Sync {
    /// Process one envelope. `Err` means nothing of it was done. `trace` is the context of the
    /// message's span, for whatever the handler publishes.
    async fn handle(
        &self,
        envelope: &Envelope,
        headers: &Headers,
        trace: &opentelemetry::Context,
    ) -> Result<Handled, FerryError>;

    /// Whether the service this stage writes to answers at all, asked after a `Transient`
    /// failure: `Err` (why not) holds the scheme's messages in their queue until it does (see
    /// [`super::outage`]). A stage without such a service answers `Ok`.
    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Why a worker stopped.
#[derive(Debug)]
pub enum Stopped {
    /// Shutdown was requested and everything in flight was settled.
    Drained,
    /// The scheme is misconfigured; its messages stay queued.
    Config(FerryError),
}

pub struct Worker {
    pub bus: Arc<Bus>,
    pub state: State,
    pub scheme: String,
    pub stage: Stage,
    pub prefetch: u16,
    pub handler: Arc<dyn Handler>,
    pub alerts: Alerts,
    /// Set once this worker handled a message: a stop of its stage raised before has cleared.
    pub handled_one: AtomicBool,
    /// The outages this process's workers are holding their messages through.
    pub outages: Outages,
}

impl Worker {
    pub async fn run(self, tag: String, mut shutdown: Shutdown) -> Result<Stopped, BusError> {
        let queue = names::work_queue(&self.scheme, self.stage);
        let publisher = self.bus.publisher().await?;
        let prefetch = match self.stage {
            Stage::Load => self.prefetch.min(LOAD_PREFETCH),
            _ => self.prefetch,
        };
        let mut consumer = self.bus.consume(&queue, prefetch, &tag).await?;
        tracing::debug!(queue = %queue, tag = %tag, "consuming");
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                next = consumer.next() => next?,
            };
            let Some(incoming) = next else { break };
            if let Some(stop) = self.process(&publisher, incoming, &shutdown).await? {
                let _ = consumer.cancel().await;
                return Ok(stop);
            }
        }
        let _ = consumer.cancel().await;
        Ok(Stopped::Drained)
    }

    /// Settle one message; `Some` when the worker must stop.
    async fn process(
        &self,
        publisher: &Publisher,
        incoming: Incoming,
        shutdown: &Shutdown,
    ) -> Result<Option<Stopped>, BusError> {
        let scheme = self.scheme.as_str();
        let stage_name = self.stage.as_str();
        let envelope = match &incoming.envelope {
            Ok(envelope) => envelope,
            Err(reason) => {
                tracing::warn!(scheme, stage = stage_name, %reason, "unreadable message dead-lettered");
                self.bus
                    .route_invalid(publisher, scheme, self.stage, &incoming)
                    .await?;
                metrics::global().add(metrics::DEAD_LETTERS, scheme, stage_name, 1);
                settled(incoming.ack().await)?;
                return Ok(None);
            }
        };
        let span = tracing::info_span!(
            "ferry.stage",
            otel.name = %format!("{stage_name} {scheme}"),
            scheme,
            stage = stage_name,
            run = %envelope.run_id,
            seq = envelope.seq,
            records = envelope.records.len(),
            attempt = incoming.headers.attempt,
            trace_id = tracing::field::Empty,
        );
        let _ = span.set_parent(ferry_bus::trace::extract(&incoming.headers));
        crate::telemetry::record_trace_id(&span);
        let started = Instant::now();
        metrics::global().add(
            metrics::RECORDS_IN,
            scheme,
            stage_name,
            envelope.records.len() as u64,
        );
        let trace = span.context();
        let result = loop {
            let handled = self.handler.handle(envelope, &incoming.headers, &trace);
            let result = guarded(self.stage, envelope, handled)
                .instrument(span.clone())
                .await;
            let Err(err) = &result else { break result };
            if err.class() != ErrorClass::Transient {
                break result;
            }
            let Err(why) = self.handler.probe().await else {
                break result;
            };
            let probe = || self.handler.probe();
            let (outages, state) = (&self.outages, &self.state);
            if !outage::hold(outages, state, scheme, Side::Target, &why, probe, shutdown).await {
                // A shutdown while the target is down: the message goes back to its queue.
                self.give_back(publisher, envelope, &incoming).await?;
                return Ok(None);
            }
        };
        metrics::global().observe_batch(scheme, stage_name, started.elapsed().as_secs_f64());

        // What the message settles as, and the records passed on. The original is acknowledged
        // only after its count is in the state database (see below).
        let (counts, dead_ids, shared_id, passed) = match result {
            Ok(handled) => {
                if !self.handled_one.swap(true, Ordering::Relaxed) {
                    self.alerts.clear(
                        scheme,
                        Kind::Stopped,
                        Some(stage_name),
                        Some(format!("{stage_name} 阶段已恢复处理消息")),
                    );
                }
                let mut dead_ids = Vec::new();
                if !handled.failed.is_empty() {
                    let routed = self
                        .bus
                        .route_record_failures(
                            publisher,
                            scheme,
                            self.stage,
                            envelope,
                            &incoming.headers,
                            &handled.failed,
                            MAX_ATTEMPTS,
                        )
                        .instrument(span.clone())
                        .await?;
                    // When some records went to a retry queue, those were the transient failures
                    // (they travel together); the rest were dead-lettered.
                    let retried = routed.iter().any(|r| matches!(r, Routed::Retried { .. }));
                    dead_ids = handled
                        .failed
                        .iter()
                        .filter(|(_, e)| !retried || e.class() != ErrorClass::Transient)
                        .map(|(r, _)| r.id.clone())
                        .collect();
                    let m = metrics::global();
                    m.add(
                        metrics::RECORDS_FAILED,
                        scheme,
                        stage_name,
                        handled.failed.len() as u64,
                    );
                    if retried {
                        m.add(metrics::RETRIES, scheme, stage_name, 1);
                    }
                }
                let counts = Counts {
                    dead: dead_ids.len() as u64,
                    ..handled.counts
                };
                (counts, dead_ids, handled.shared_id, handled.passed)
            }
            Err(err) if err.class() == ErrorClass::Config => {
                tracing::error!(
                    scheme,
                    stage = stage_name,
                    error = %err,
                    "configuration error: this scheme stops consuming; its messages stay queued. \
                     Fix the scheme or connection and restart"
                );
                self.give_back(publisher, envelope, &incoming).await?;
                if let Err(e) = self
                    .state
                    .stop_run(&envelope.run_id, &err.to_string())
                    .await
                {
                    tracing::warn!(run = %envelope.run_id, error = %e, "could not mark the run stopped");
                }
                self.alerts
                    .raise(stopped_alert(scheme, stage_name, &envelope.run_id, &err));
                return Ok(Some(Stopped::Config(err)));
            }
            Err(err) => {
                let routed = self
                    .bus
                    .route_failure(
                        publisher,
                        scheme,
                        self.stage,
                        envelope,
                        &incoming.headers,
                        &err,
                        MAX_ATTEMPTS,
                    )
                    .instrument(span.clone())
                    .await?;
                match &routed {
                    Routed::Retried {
                        delay_secs,
                        attempt,
                        ..
                    } => {
                        // Counted when the retried copy settles.
                        if !settled(incoming.ack().await)? {
                            return Ok(None);
                        }
                        metrics::global().add(metrics::RETRIES, scheme, stage_name, 1);
                        tracing::warn!(scheme, stage = stage_name, attempt, delay_secs, error = %err, "batch failed; retrying later");
                        return Ok(None);
                    }
                    Routed::DeadLettered { .. } => {
                        let ids: Vec<String> =
                            envelope.records.iter().map(|r| r.id.clone()).collect();
                        let counts = Counts {
                            dead: ids.len() as u64,
                            ..Counts::default()
                        };
                        (counts, ids, 0, 0)
                    }
                }
            }
        };
        // A replayed message's records that did not fail this time may move out of `dead`.
        let replayed_ok: Option<Vec<String>> = (incoming.headers.replays > 0).then(|| {
            envelope
                .records
                .iter()
                .map(|r| r.id.clone())
                .filter(|id| !dead_ids.contains(id))
                .collect()
        });
        let key = batch_key(self.stage, envelope, incoming.headers.replays);
        // A load dead letter sent back through the transform (`ferry replay --rerender`) is
        // counted under the load, where its record was dead-lettered.
        let count_stage = incoming
            .headers
            .rerender_of
            .map_or(stage_name, Stage::as_str);
        let to_settle = Settled {
            run_id: &envelope.run_id,
            key: &key,
            stage: count_stage,
            counts,
            dead_ids: &dead_ids,
            replayed_ok: replayed_ok.as_deref(),
            shared_id,
        };
        let counting = settle(&self.state, &to_settle);
        let mut stopping = shutdown.clone();
        let reconciled = tokio::select! {
            biased;
            reconciled = counting => reconciled,
            _ = async {
                stopping.wait().await;
                tokio::time::sleep(Duration::from_secs(SHUTDOWN_COUNT_WAIT_SECS)).await;
            } => {
                // A shutdown while the state database does not answer: the message stays
                // unacknowledged, so it comes again (to a replica, or this role's next start)
                // and is counted then.
                tracing::warn!(
                    scheme,
                    stage = stage_name,
                    "stopping while the state database does not answer: the message is left \
                     unacknowledged and will be delivered again"
                );
                return Ok(None);
            }
        };
        // Acknowledged only now: a process killed between an ack and the count lost the count for
        // good (the broker never delivers an acknowledged message again), and the run was never
        // `done` (the role-kill rounds, seed 1796159803782092238: 59,900 of 60,000 settled). Killed
        // between the count and the ack, the message comes again, is written again
        // (idempotently) and its key counts nothing.
        if !settled(incoming.ack().await)? {
            return Ok(None);
        }
        metrics::global().add(metrics::RECORDS_OUT, scheme, stage_name, passed);
        metrics::record_outcomes(scheme, stage_name, &counts, reconciled);
        Ok(None)
    }
}

impl Worker {
    /// Put a message back in its queue untouched, as a new message rather than a nack-requeue: a
    /// quorum queue counts every requeue against the delivery limit, and a misconfigured scheme
    /// restarted a few times, or a loader stopped during an outage, must not dead-letter good
    /// messages.
    async fn give_back(
        &self,
        publisher: &Publisher,
        envelope: &Envelope,
        incoming: &Incoming,
    ) -> Result<(), BusError> {
        let queue = names::work_queue(&self.scheme, self.stage);
        match publisher.publish(&queue, envelope, &incoming.headers).await {
            Ok(()) => {
                settled(incoming.ack().await)?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not put the message back; requeueing it instead");
                settled(incoming.nack_requeue().await)?;
            }
        }
        Ok(())
    }
}

/// How long a shutdown lets a message's count wait for the state database before leaving the
/// message unacknowledged (see [`super::state_wait`]).
const SHUTDOWN_COUNT_WAIT_SECS: u64 = 10;

/// A handler's future with a panic inside it caught: the message becomes a `Record` failure (its
/// records dead-lettered with the panic's message as the reason) rather than the end of the
/// worker, whose process a supervisor would restart only to get the same message again (a loop
/// that stops the whole queue). The default panic hook has already printed where it happened.
async fn guarded(
    stage: Stage,
    envelope: &Envelope,
    handled: impl std::future::Future<Output = Result<Handled, FerryError>>,
) -> Result<Handled, FerryError> {
    use futures_util::FutureExt as _;
    let handled = async {
        planted_panic(envelope);
        handled.await
    };
    match std::panic::AssertUnwindSafe(handled).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(
                scheme = %envelope.scheme,
                stage = stage.as_str(),
                seq = envelope.seq,
                panic = %what,
                "the stage panicked on a message; its records are dead-lettered and the worker goes on"
            );
            Err(FerryError::record(format!(
                "the {} stage panicked on this message: {what} (dead-lettered so that it is not \
                 delivered again; replay it once the cause is fixed)",
                stage.as_str()
            )))
        }
    }
}

/// TEST ONLY, never set in production: with `FERRY_TEST_PANIC_ON_RECORD=<record id>`, a stage
/// panics on a message holding a record of that id, so that the chaos suite can prove a panicking
/// consumer survives (no record of a real pipeline reached a panic that fuzzing could find).
pub const TEST_PANIC_ENV: &str = "FERRY_TEST_PANIC_ON_RECORD";

fn planted_panic(envelope: &Envelope) {
    static PLANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let planted = PLANTED.get_or_init(|| {
        std::env::var(TEST_PANIC_ENV)
            .ok()
            .filter(|id| !id.is_empty())
    });
    if let Some(id) = planted
        && envelope.records.iter().any(|r| &r.id == id)
    {
        panic!("{TEST_PANIC_ENV}: a planted panic on record {id}");
    }
}

/// The alert for a scheme whose `stage` stopped on the configuration error `err`.
pub fn stopped_alert(scheme: &str, stage: &str, run_id: &str, err: &FerryError) -> Alert {
    let role = if stage == "extract" { "extract" } else { stage };
    let mut alert = Alert::new(scheme, Kind::Stopped)
        .stage(stage)
        .line("错误", err.to_string());
    if !run_id.is_empty() {
        alert = alert.line("运行", run_id);
    }
    alert
        .line("影响", "该方案的消息留在队列中，不会丢失，也不会进入死信")
        .line(
            "处理",
            format!(
                "按错误提示修正方案或连接，执行 `ferry lint --online --scheme {scheme}` 检查，\
                 然后重启 `ferry {role}`"
            ),
        )
}

/// Whether a settlement went through. One that failed because the channel died (a broker restart,
/// a network cut) is not fatal: the broker delivers the message again to the recovered consumer,
/// and the stages downstream are idempotent. Ending the worker on it, as `?` did, made every
/// broker restart take the whole process down.
fn settled(result: Result<(), BusError>) -> Result<bool, BusError> {
    match result {
        Ok(()) => Ok(true),
        Err(err @ BusError::SettleFailed { .. }) => {
            tracing::warn!(error = %err, "settling a message failed; the broker will deliver it again");
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// What identifies a message for counting: its stage, page, records (each by id and content: the
/// load batches of one page may carry the same ids with other contents) and how many times it was
/// replayed. A redelivered message has the same key; a retried subset of a batch has its own, and
/// so has each replay of a dead letter.
pub fn batch_key(stage: Stage, envelope: &Envelope, replays: u32) -> String {
    use sha2::{Digest, Sha256};
    /// Feeds serialised JSON straight into the hash, without a buffer per record.
    struct Feed<'a>(&'a mut Sha256);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hash = Sha256::new();
    hash.update(stage.as_str().as_bytes());
    hash.update(envelope.seq.to_le_bytes());
    if replays > 0 {
        hash.update(b"replay");
        hash.update(replays.to_le_bytes());
    }
    for record in &envelope.records {
        hash.update([0u8]);
        hash.update(record.id.as_bytes());
        hash.update([1u8]);
        // Writing a JSON value into a sink that never fails cannot fail.
        let _ = serde_json::to_writer(Feed(&mut hash), &record.data);
    }
    ferry_core::sign::to_hex(&hash.finalize()[..16])
}

/// Count a message's settled records on its run, once per key (see [`State::settle`]). The count
/// decides when the run is `done` (and `ferry run --once` ends), so while the state database does
/// not answer (restarted, unreachable) it is tried again for up to
/// [`super::state_wait::STATE_WAIT_SECS`], this worker taking no other message meanwhile (see
/// [`super::state_wait`]); the key makes a retry of a settle that did commit count nothing. `None`
/// when it could not be counted (logged).
pub async fn settle(state: &State, settled: &Settled<'_>) -> Option<ferry_state::Reconciled> {
    let counted =
        super::state_wait::patiently("counting settled records", || state.settle(settled)).await;
    match counted {
        Ok(reconciled) => Some(reconciled),
        Err(e) => {
            tracing::warn!(run = settled.run_id, error = %e, "could not count settled records");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(seq: u64, ids: &[&str]) -> Envelope {
        Envelope {
            scheme: "s".into(),
            run_id: "r".into(),
            seq,
            records: ids
                .iter()
                .map(|id| Record {
                    id: id.to_string(),
                    data: json!({}),
                    source: None,
                })
                .collect(),
        }
    }

    #[test]
    fn batches_of_one_page_with_the_same_ids_and_other_contents_have_their_own_keys() {
        let with = |phone: &str| {
            let mut e = envelope(3, &["张三", "李四"]);
            e.records[0].data = json!({ "name": "张三", "phone": phone });
            e
        };
        assert_eq!(
            batch_key(Stage::Load, &with("13800000001"), 0),
            batch_key(Stage::Load, &with("13800000001"), 0)
        );
        assert_ne!(
            batch_key(Stage::Load, &with("13800000001"), 0),
            batch_key(Stage::Load, &with("13800000002"), 0)
        );
    }

    #[test]
    fn a_redelivered_batch_has_the_same_key_and_a_retried_subset_its_own() {
        let key = batch_key(Stage::Load, &envelope(3, &["a", "b", "c"]), 0);
        assert_eq!(key.len(), 32);
        assert_eq!(
            key,
            batch_key(Stage::Load, &envelope(3, &["a", "b", "c"]), 0)
        );
        assert_ne!(
            key,
            batch_key(Stage::Load, &envelope(3, &["a", "b"]), 0),
            "a retried subset"
        );
        assert_ne!(
            key,
            batch_key(Stage::Transform, &envelope(3, &["a", "b", "c"]), 0),
            "another stage"
        );
        assert_ne!(
            key,
            batch_key(Stage::Load, &envelope(4, &["a", "b", "c"]), 0),
            "another page"
        );
        assert_ne!(
            batch_key(Stage::Load, &envelope(1, &["ab", "c"]), 0),
            batch_key(Stage::Load, &envelope(1, &["a", "bc"]), 0),
            "ids are separated"
        );
        assert_ne!(
            key,
            batch_key(Stage::Load, &envelope(3, &["a", "b", "c"]), 1),
            "a replay"
        );
    }
}
