//! Failure routing: the one place that decides between retry and dead letter.
//!
//! A worker that failed a message hands the error here and acks the original only after this
//! returned `Ok` (the routed copy is then confirmed by the broker, so nothing is lost in between):
//!
//! ```text
//! Transient and attempt < max_attempts -> retry bucket (delay grows with the attempt,
//!                                          never shorter than the error's retry_after),
//!                                          attempt + 1, first/last failure times
//! Record, or attempts exhausted        -> the stage's DLQ, one message per record, with the
//!                                          error class, message, path, times, record id
//! Config                               -> not routed: the caller stops consuming and leaves
//!                                          the message queued until an operator fixes the scheme
//! ```
//!
//! `x-ferry-attempt` counts the retries made so far (0 on the first delivery), so a message is
//! tried at most `max_attempts + 1` times.

use chrono::Utc;
use ferry_core::{Envelope, ErrorClass, FerryError, Record};

use crate::bus::Bus;
use crate::consumer::Incoming;
use crate::error::BusError;
use crate::headers::Headers;
use crate::names::{self, Stage};
use crate::publisher::{Outgoing, Publisher};

/// Error texts longer than this are cut, since all headers must fit in one AMQP frame and a
/// vendor's HTML error page would not.
const ERROR_HEADER_MAX_BYTES: usize = 4096;

/// Where a failed message went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// To a retry bucket; it comes back to the work queue after `delay_secs`.
    Retried {
        /// The retry queue.
        queue: String,
        /// The bucket's delay.
        delay_secs: u64,
        /// The `x-ferry-attempt` it carries now.
        attempt: u32,
    },
    /// To the stage's DLQ, as `records` single-record dead letters.
    DeadLettered {
        /// The DLQ.
        queue: String,
        /// How many dead letters were published.
        records: usize,
    },
}

/// What to do with a failure, before anything is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Retry { delay_secs: u64 },
    DeadLetter,
}

/// Decide retry or dead letter for `err` on a message that carries `attempt`.
fn decide(
    err: &FerryError,
    attempt: u32,
    max_attempts: u32,
    delays_secs: &[u64],
) -> Result<Decision, BusError> {
    match err {
        FerryError::Config { message } => Err(BusError::NotRoutable(format!(
            "config error ({message}): stop consuming and leave the message queued"
        ))),
        FerryError::Record { .. } => Ok(Decision::DeadLetter),
        FerryError::Transient { retry_after, .. } => {
            if attempt >= max_attempts {
                return Ok(Decision::DeadLetter);
            }
            let retry_after_secs = retry_after.map(|d| d.as_secs_f64().ceil() as u64);
            match pick_delay(delays_secs, attempt, retry_after_secs) {
                Some(delay_secs) => Ok(Decision::Retry { delay_secs }),
                // No retry buckets declared: nothing to wait in.
                None => Ok(Decision::DeadLetter),
            }
        }
    }
}

/// The bucket for a retry after `attempt` earlier retries: `delays[min(attempt, len - 1)]`, or,
/// when the service asked to wait longer (`retry_after`), the first bucket at least that long
/// (the longest bucket if none is). `None` when there are no buckets.
fn pick_delay(delays_secs: &[u64], attempt: u32, retry_after_secs: Option<u64>) -> Option<u64> {
    let last = delays_secs.len().checked_sub(1)?;
    let index = usize::try_from(attempt).unwrap_or(usize::MAX).min(last);
    let backoff = delays_secs[index];
    let hinted = retry_after_secs.map(|wanted| {
        delays_secs
            .iter()
            .copied()
            .find(|d| *d >= wanted)
            .unwrap_or(delays_secs[last])
    });
    Some(hinted.map_or(backoff, |h| h.max(backoff)))
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Headers of a failed copy: identity and trace from `headers`, the error, the failure times.
fn failed_headers(
    headers: &Headers,
    scheme: &str,
    run: &str,
    stage: Stage,
    class: ErrorClass,
    message: &str,
    path: Option<&str>,
) -> Headers {
    let now = Utc::now();
    Headers {
        scheme: Some(scheme.to_string()),
        run: headers.run.clone().or_else(|| Some(run.to_string())),
        stage: Some(stage),
        error_class: Some(class),
        error: Some(truncate(message, ERROR_HEADER_MAX_BYTES)),
        error_path: path.map(str::to_string),
        first_failed_at: headers.first_failed_at.or(Some(now)),
        failed_at: Some(now),
        ..headers.clone()
    }
}

/// [`failed_headers`] for a classified error on an envelope.
fn error_headers(
    headers: &Headers,
    scheme: &str,
    stage: Stage,
    envelope: &Envelope,
    err: &FerryError,
) -> Headers {
    failed_headers(
        headers,
        scheme,
        &envelope.run_id,
        stage,
        err.class(),
        err.message(),
        err.path(),
    )
}

fn dead_letter(
    envelope: &Envelope,
    headers: &Headers,
    scheme: &str,
    stage: Stage,
    record: &Record,
    err: &FerryError,
) -> (Envelope, Headers) {
    let mut out = error_headers(headers, scheme, stage, envelope, err);
    out.record_id = Some(record.id.clone());
    (envelope.single(record.clone()), out)
}

impl Bus {
    /// Route a failure of the whole `envelope` (see the module docs). Errors: `NotRoutable` for
    /// config errors, `NotDeclared` when this process did not declare `scheme`, and publishing
    /// errors. Ack the original only after `Ok`.
    #[allow(clippy::too_many_arguments)]
    pub async fn route_failure(
        &self,
        publisher: &Publisher,
        scheme: &str,
        stage: Stage,
        envelope: &Envelope,
        headers: &Headers,
        err: &FerryError,
        max_attempts: u32,
    ) -> Result<Routed, BusError> {
        let delays = self.retry_delays(scheme)?;
        match decide(err, headers.attempt, max_attempts, &delays)? {
            Decision::Retry { delay_secs } => {
                self.retry(publisher, scheme, stage, envelope, headers, err, delay_secs)
                    .await
            }
            Decision::DeadLetter => {
                let letters: Vec<(Envelope, Headers)> = envelope
                    .records
                    .iter()
                    .map(|record| dead_letter(envelope, headers, scheme, stage, record, err))
                    .collect();
                let queue = names::dlq(scheme, stage);
                publisher.publish_many(&queue, &letters).await?;
                tracing::warn!(scheme, stage = %stage, class = %err.class(), records = letters.len(), error = %err, "dead-lettered");
                Ok(Routed::DeadLettered {
                    queue,
                    records: letters.len(),
                })
            }
        }
    }

    /// Route the failures of some records of `envelope`, each with its own error (the rest of
    /// the batch succeeded). Record errors, and transient ones out of attempts, become one dead
    /// letter each; transient ones still within `max_attempts` travel together, as one envelope,
    /// to the retry bucket fitting the longest `retry_after`. A config error among them routes
    /// nothing and returns `NotRoutable`. Ack the original only after `Ok`.
    #[allow(clippy::too_many_arguments)]
    pub async fn route_record_failures(
        &self,
        publisher: &Publisher,
        scheme: &str,
        stage: Stage,
        envelope: &Envelope,
        headers: &Headers,
        failures: &[(Record, FerryError)],
        max_attempts: u32,
    ) -> Result<Vec<Routed>, BusError> {
        let delays = self.retry_delays(scheme)?;
        let mut letters = Vec::new();
        let mut retry_records = Vec::new();
        let mut retry_delay_secs = 0;
        let mut retry_error: Option<&FerryError> = None;
        for (record, err) in failures {
            match decide(err, headers.attempt, max_attempts, &delays)? {
                Decision::DeadLetter => {
                    letters.push(dead_letter(envelope, headers, scheme, stage, record, err));
                }
                Decision::Retry { delay_secs } => {
                    retry_records.push(record.clone());
                    retry_delay_secs = retry_delay_secs.max(delay_secs);
                    retry_error.get_or_insert(err);
                }
            }
        }
        let mut routed = Vec::new();
        if let Some(err) = retry_error {
            let retry_envelope = Envelope {
                records: retry_records,
                ..envelope.clone()
            };
            routed.push(
                self.retry(
                    publisher,
                    scheme,
                    stage,
                    &retry_envelope,
                    headers,
                    err,
                    retry_delay_secs,
                )
                .await?,
            );
        }
        if !letters.is_empty() {
            let queue = names::dlq(scheme, stage);
            publisher.publish_many(&queue, &letters).await?;
            tracing::warn!(scheme, stage = %stage, records = letters.len(), "dead-lettered failing records");
            routed.push(Routed::DeadLettered {
                queue,
                records: letters.len(),
            });
        }
        Ok(routed)
    }

    /// Dead-letter a message whose body is not a Ferry envelope, as it is, with the parse error
    /// in `x-ferry-error` (class `record`). Ack the original only after `Ok`.
    pub async fn route_invalid(
        &self,
        publisher: &Publisher,
        scheme: &str,
        stage: Stage,
        incoming: &Incoming,
    ) -> Result<Routed, BusError> {
        let reason = match &incoming.envelope {
            Err(reason) => reason.clone(),
            Ok(_) => "message rejected as invalid".to_string(),
        };
        let headers = failed_headers(
            &incoming.headers,
            scheme,
            "",
            stage,
            ErrorClass::Record,
            &reason,
            None,
        );
        let queue = names::dlq(scheme, stage);
        let message = Outgoing {
            body: incoming.body.clone(),
            headers: headers.to_field_table(),
            message_id: None,
        };
        publisher.publish_raw(&queue, &[message]).await?;
        tracing::warn!(scheme, stage = %stage, error = %reason, "dead-lettered an invalid message");
        Ok(Routed::DeadLettered { queue, records: 1 })
    }

    #[allow(clippy::too_many_arguments)]
    async fn retry(
        &self,
        publisher: &Publisher,
        scheme: &str,
        stage: Stage,
        envelope: &Envelope,
        headers: &Headers,
        err: &FerryError,
        delay_secs: u64,
    ) -> Result<Routed, BusError> {
        let mut out = error_headers(headers, scheme, stage, envelope, err);
        out.attempt = headers.attempt.saturating_add(1);
        let queue = names::retry_queue(scheme, stage, delay_secs);
        publisher.publish(&queue, envelope, &out).await?;
        tracing::info!(scheme, stage = %stage, attempt = out.attempt, delay_secs, error = %err, "retrying later");
        Ok(Routed::Retried {
            queue,
            delay_secs,
            attempt: out.attempt,
        })
    }

    fn retry_delays(&self, scheme: &str) -> Result<Vec<u64>, BusError> {
        self.declared(scheme)
            .map(|topology| topology.retry_delays_secs)
            .ok_or_else(|| BusError::NotDeclared(scheme.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DELAYS: [u64; 3] = [1, 10, 60];

    #[test]
    fn backoff_grows_with_the_attempt_and_stays_at_the_last_bucket() {
        assert_eq!(pick_delay(&DELAYS, 0, None), Some(1));
        assert_eq!(pick_delay(&DELAYS, 1, None), Some(10));
        assert_eq!(pick_delay(&DELAYS, 2, None), Some(60));
        assert_eq!(pick_delay(&DELAYS, 9, None), Some(60));
        assert_eq!(pick_delay(&[], 0, None), None);
    }

    #[test]
    fn retry_after_picks_the_first_bucket_long_enough() {
        assert_eq!(pick_delay(&DELAYS, 0, Some(5)), Some(10));
        assert_eq!(pick_delay(&DELAYS, 0, Some(10)), Some(10));
        assert_eq!(pick_delay(&DELAYS, 0, Some(600)), Some(60));
        // The hint never shortens the backoff.
        assert_eq!(pick_delay(&DELAYS, 2, Some(1)), Some(60));
    }

    #[test]
    fn decisions_follow_the_error_class() {
        let transient = FerryError::Transient {
            message: "timeout".into(),
            retry_after: Some(Duration::from_millis(2500)),
        };
        assert_eq!(
            decide(&transient, 0, 3, &DELAYS),
            Ok(Decision::Retry { delay_secs: 10 })
        );
        assert_eq!(decide(&transient, 3, 3, &DELAYS), Ok(Decision::DeadLetter));
        assert_eq!(decide(&transient, 0, 3, &[]), Ok(Decision::DeadLetter));
        assert_eq!(
            decide(&FerryError::record("bad"), 0, 3, &DELAYS),
            Ok(Decision::DeadLetter)
        );
        assert_eq!(
            decide(&FerryError::config("no table t"), 0, 3, &DELAYS),
            Err(BusError::NotRoutable(
                "config error (no table t): stop consuming and leave the message queued".into()
            ))
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("短文本", 100), "短文本");
        assert_eq!(truncate("日本語", 4), "日…");
    }
}
