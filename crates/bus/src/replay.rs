//! `ferry replay` and `ferry discard`: one pass over a stage's dead-letter queue that moves the
//! dead letters a [`DeadLetterFilter`] selects back to a work queue (or removes them), and leaves
//! the others where they are, in their order.
//!
//! The pass takes the dead letters present when it starts, one at a time (`basic.get`), and
//! settles each before taking the next:
//!
//! ```text
//! selected, replay  -> publish to the work queue (confirmed), then ack     (--rerender: to the
//!                      transform queue, as the source record it was rendered from)
//! selected, discard -> ack
//! not selected      -> publish to the tail of the same DLQ as it is (confirmed), then ack
//! ```
//!
//! A process killed in the middle of a pass therefore loses nothing: a dead letter it held
//! unacked goes back to the DLQ, and one published but not yet acked exists twice (twice in the
//! DLQ, or once there and once in the work queue; the idempotent writers absorb a repeat). The
//! messages that stay keep their relative order: once the pass put one of them at the tail, it
//! goes on through every message present at the start, so the queue has turned around once
//! (dead letters that arrived during the pass end up ahead of them). A pass that selects
//! everything, or stops at `limit` before it put anything back, leaves the rest untouched.
//!
//! A replayed message keeps its body (the record), its trace context and record id; it loses the
//! error headers, starts again at attempt 0 and counts the replay in `x-ferry-replays`. A dry run
//! takes the same messages without acking them, reports them, and gives them all back (a quorum
//! queue returns them to its head, in order).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_core::{Envelope, ErrorClass, Record};
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::{FieldTable, ShortString};

use crate::bus::Bus;
use crate::consumer::Incoming;
use crate::error::BusError;
use crate::link::{close_quietly, short, with_recovery};
use crate::names::{self, Stage};
use crate::publisher::{Outgoing, Publisher};
use crate::topology::passive_declare;

/// Which dead letters a replay or discard takes. Every criterion given must hold; an empty
/// filter takes every dead letter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// The class of the error that dead-lettered it (letters the broker dead-lettered, after
    /// the delivery limit, have none and never match).
    pub error_class: Option<ErrorClass>,
    /// Text found, ignoring case, in the error message or the payload (record ids and data).
    pub text: Option<String>,
    /// Record ids: a dead letter holding any of them matches. Empty: any record.
    pub record_ids: Vec<String>,
    /// Last failure at or after this time (`x-ferry-failed-at`).
    pub since: Option<DateTime<Utc>>,
    /// Last failure before this time.
    pub until: Option<DateTime<Utc>>,
}

impl DeadLetterFilter {
    /// True when it takes every dead letter.
    pub fn is_empty(&self) -> bool {
        *self == DeadLetterFilter::default()
    }

    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        if self
            .error_class
            .is_some_and(|class| letter.error_class != Some(class))
        {
            return false;
        }
        if !self.record_ids.is_empty()
            && !letter
                .record_ids
                .iter()
                .any(|id| self.record_ids.contains(id))
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(at) = letter.failed_at else {
                return false;
            };
            if self.since.is_some_and(|since| at < since) || self.until.is_some_and(|u| at >= u) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let wanted = text.to_lowercase();
            let in_error = letter
                .error
                .as_deref()
                .is_some_and(|e| e.to_lowercase().contains(&wanted));
            let in_payload = letter.payload.to_lowercase().contains(&wanted)
                || letter
                    .values
                    .iter()
                    .any(|v| v.to_lowercase().contains(&wanted));
            if !in_error && !in_payload {
                return false;
            }
        }
        true
    }

    /// The filter as one line, for the audit and the console: `class=record match="张三"`;
    /// `all` when empty.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(class) = self.error_class {
            parts.push(format!("class={class}"));
        }
        if let Some(text) = &self.text {
            parts.push(format!("match={text:?}"));
        }
        if !self.record_ids.is_empty() {
            parts.push(format!("record={}", self.record_ids.join(",")));
        }
        if let Some(since) = self.since {
            parts.push(format!("since={}", since.to_rfc3339()));
        }
        if let Some(until) = self.until {
            parts.push(format!("until={}", until.to_rfc3339()));
        }
        if parts.is_empty() {
            "all".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// One dead letter as filters see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record ids it holds (from the body, or the record-id header when the body is invalid).
    pub record_ids: Vec<String>,
    /// The class of the error that dead-lettered it (none when the broker dead-lettered it).
    pub error_class: Option<ErrorClass>,
    /// The error message.
    pub error: Option<String>,
    /// When it failed last.
    pub failed_at: Option<DateTime<Utc>>,
    /// The body as text (JSON with Chinese text as it is).
    pub payload: String,
    /// The text values of its records' data, unescaped (a `"` in a value reads as `"`).
    pub values: Vec<String>,
}

impl DeadLetter {
    fn from_incoming(incoming: &Incoming) -> DeadLetter {
        DeadLetter {
            record_ids: match &incoming.envelope {
                Ok(envelope) => envelope.records.iter().map(|r| r.id.clone()).collect(),
                Err(_) => incoming.headers.record_id.iter().cloned().collect(),
            },
            error_class: incoming.headers.error_class,
            error: incoming.headers.error.clone(),
            failed_at: incoming.headers.failed_at,
            payload: String::from_utf8_lossy(&incoming.body).into_owned(),
            values: match &incoming.envelope {
                Ok(envelope) => {
                    let mut values = Vec::new();
                    for record in &envelope.records {
                        text_values(&record.data, &mut values);
                    }
                    values
                }
                Err(_) => Vec::new(),
            },
        }
    }
}

/// Every string in `value`, depth first.
fn text_values(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| text_values(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| text_values(v, out)),
        _ => {}
    }
}

/// What to do with the selected dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterAction {
    /// Back to the stage's work queue.
    Replay,
    /// Load dead letters: back to the transform queue as the source records they were rendered
    /// from, so a fixed mapping renders them again. Letters without their source record stay.
    Rerender,
    /// Removed.
    Discard,
}

/// One pass over a DLQ (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct DeadLetterPass {
    pub filter: DeadLetterFilter,
    /// Take at most this many selected dead letters; default all.
    pub limit: Option<usize>,
    /// Report what would be taken, take nothing.
    pub dry_run: bool,
    /// Move at most this many dead letters a second (spread evenly, no burst).
    pub rate_per_sec: Option<f64>,
}

/// What a pass did (or, in a dry run, would do).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// The DLQ read.
    pub from: String,
    /// The work queue written (none for a discard).
    pub to: Option<String>,
    /// True when nothing was moved or removed.
    pub dry_run: bool,
    /// Dead letters looked at.
    pub examined: usize,
    /// Dead letters the filter selected (within the limit).
    pub matched: usize,
    /// Dead letters moved to the work queue (0 in a dry run).
    pub moved: usize,
    /// Dead letters removed (0 in a dry run).
    pub discarded: usize,
    /// Selected for `--rerender` but without the source record (left in the DLQ).
    pub without_source: usize,
    /// One entry per selected dead letter, in queue order.
    pub items: Vec<ReplayItem>,
    /// When the pass started and ended (its rate shows in the difference).
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// One selected dead letter, as the report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayItem {
    /// The record ids it holds (from the body, or the record-id header when the body is invalid).
    pub record_ids: Vec<String>,
    /// The class of the error that dead-lettered it (none when the broker dead-lettered it).
    pub error_class: Option<ErrorClass>,
    /// The error message.
    pub error: Option<String>,
    /// The field path of the error, where there is one.
    pub error_path: Option<String>,
    /// When it failed first, and last.
    pub first_failed_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// Retries made before it was dead-lettered.
    pub attempt: u32,
    /// How many times it was replayed before this replay.
    pub replays: u32,
    /// The message body as text (for a console listing dead letters; a dry run lists them all).
    pub payload: String,
}

/// Even pacing for `rate_per_sec`: the first move at once, then one per period.
struct Pace(Option<tokio::time::Interval>);

impl Pace {
    fn new(rate_per_sec: Option<f64>) -> Pace {
        Pace(
            rate_per_sec
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|rate| {
                    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    interval
                }),
        )
    }

    async fn wait(&mut self) {
        if let Some(interval) = &mut self.0 {
            interval.tick().await;
        }
    }
}

impl Bus {
    /// Run one pass of `action` over `scheme`'s `stage` DLQ (see the module docs).
    pub async fn dead_letters(
        &self,
        scheme: &str,
        stage: Stage,
        action: DeadLetterAction,
        pass: &DeadLetterPass,
    ) -> Result<ReplayReport, BusError> {
        let from = names::dlq(scheme, stage);
        let to = match action {
            DeadLetterAction::Replay => Some(names::work_queue(scheme, stage)),
            DeadLetterAction::Rerender => Some(names::work_queue(scheme, Stage::Transform)),
            DeadLetterAction::Discard => None,
        };
        let channel = self.channel().await?;
        let result = self
            .pass_on(&channel, stage, &from, to.as_deref(), action, pass)
            .await;
        close_quietly(&channel).await;
        result
    }

    /// Move up to `limit` (default: all) dead letters of `scheme`'s `stage` back to its work
    /// queue; with `dry_run`, only report what would move.
    pub async fn replay(
        &self,
        scheme: &str,
        stage: Stage,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<ReplayReport, BusError> {
        let pass = DeadLetterPass {
            limit,
            dry_run,
            ..DeadLetterPass::default()
        };
        self.dead_letters(scheme, stage, DeadLetterAction::Replay, &pass)
            .await
    }

    async fn pass_on(
        &self,
        channel: &lapin::Channel,
        stage: Stage,
        from: &str,
        to: Option<&str>,
        action: DeadLetterAction,
        pass: &DeadLetterPass,
    ) -> Result<ReplayReport, BusError> {
        // The work queue must exist, or the moved messages would have nowhere to go.
        if let Some(to) = to {
            passive_declare(channel, to).await?;
        }
        let present = passive_declare(channel, from).await?.message_count() as usize;
        let publisher = if pass.dry_run {
            None
        } else {
            Some(self.publisher().await?)
        };
        let queue = short("queue name", from)?;
        let mut report = ReplayReport {
            from: from.to_string(),
            to: to.map(str::to_string),
            dry_run: pass.dry_run,
            examined: 0,
            matched: 0,
            moved: 0,
            discarded: 0,
            without_source: 0,
            items: Vec::new(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
        };
        let limit = pass.limit.unwrap_or(usize::MAX);
        let mut pace = Pace::new(pass.rate_per_sec);
        let mut held: Vec<Acker> = Vec::new();
        // Once a dead letter went back to the tail, the pass must go round the whole queue.
        let mut turning = false;
        while report.examined < present {
            if report.matched >= limit && !turning {
                break;
            }
            let got = with_recovery(channel, "basic.get", from, || {
                channel.basic_get(queue.clone(), BasicGetOptions { no_ack: false })
            })
            .await?;
            let Some(message) = got else { break };
            report.examined += 1;
            let acker = message.delivery.acker.clone();
            let message_id = message.delivery.properties.message_id().clone();
            let raw_headers = message
                .delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default();
            let incoming = Incoming::from_delivery(message.delivery, from);
            let letter = DeadLetter::from_incoming(&incoming);
            let mut selected = report.matched < limit && pass.filter.matches(&letter);
            let rerendered = match (action, selected) {
                (DeadLetterAction::Rerender, true) => {
                    let body = rerender_body(&incoming);
                    if body.is_none() {
                        report.without_source += 1;
                        selected = false;
                    }
                    body
                }
                _ => None,
            };
            if selected {
                report.matched += 1;
                report.items.push(ReplayItem {
                    record_ids: letter.record_ids.clone(),
                    error_class: letter.error_class,
                    error: letter.error.clone(),
                    error_path: incoming.headers.error_path.clone(),
                    first_failed_at: incoming.headers.first_failed_at,
                    failed_at: letter.failed_at,
                    attempt: incoming.headers.attempt,
                    replays: incoming.headers.replays,
                    payload: letter.payload.clone(),
                });
            }
            let Some(publisher) = &publisher else {
                // Keep it unacked, so the next basic.get returns the next dead letter.
                held.push(acker);
                continue;
            };
            match (selected, to) {
                (true, Some(to)) => {
                    pace.wait().await;
                    let mut headers = incoming.headers.without_error();
                    headers.attempt = 0;
                    headers.replays = headers.replays.saturating_add(1);
                    if rerendered.is_some() {
                        headers.stage = Some(Stage::Transform);
                        headers.rerender_of = Some(stage);
                    } else {
                        headers.stage = Some(stage);
                    }
                    let outgoing = Outgoing {
                        body: rerendered.unwrap_or(incoming.body),
                        headers: headers.to_field_table(),
                        message_id,
                    };
                    publisher.publish_raw(to, &[outgoing]).await?;
                    ack(&acker, from).await?;
                    report.moved += 1;
                }
                (true, None) => {
                    pace.wait().await;
                    ack(&acker, from).await?;
                    report.discarded += 1;
                }
                (false, _) => {
                    put_back(publisher, from, incoming.body, raw_headers, message_id).await?;
                    ack(&acker, from).await?;
                    turning = true;
                }
            }
        }
        give_back(held, from).await?;
        report.finished_at = Utc::now();
        if !pass.dry_run {
            tracing::info!(
                from,
                to = to.unwrap_or("-"),
                moved = report.moved,
                discarded = report.discarded,
                "dead letters taken"
            );
        }
        Ok(report)
    }
}

/// The body that sends a load dead letter back through the transform: its records as the source
/// records they were rendered from. `None` when it is not an envelope or a record lacks its source.
fn rerender_body(incoming: &Incoming) -> Option<Vec<u8>> {
    let envelope = incoming.envelope.as_ref().ok()?;
    let records = envelope
        .records
        .iter()
        .map(|r| Some(Record::new(r.id.clone(), r.source_value()?)))
        .collect::<Option<Vec<Record>>>()?;
    Some(
        Envelope {
            records,
            ..envelope.clone()
        }
        .to_bytes(),
    )
}

/// Give back messages held unacknowledged (a dry run's, a browse's) to the head of `queue`.
pub(crate) async fn give_back(held: Vec<Acker>, queue: &str) -> Result<(), BusError> {
    for acker in held {
        acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map_err(|err| BusError::Broker {
                operation: "basic.nack",
                queue: queue.to_string(),
                reason: format!("{err} (closing the channel gives the message back)"),
            })?;
    }
    Ok(())
}

async fn ack(acker: &Acker, from: &str) -> Result<(), BusError> {
    acker
        .ack(BasicAckOptions::default())
        .await
        .map(drop)
        .map_err(|err| BusError::Broker {
            operation: "basic.ack",
            queue: from.to_string(),
            reason: format!("{err} (the dead letter stays and may be taken twice)"),
        })
}

/// A dead letter the filter did not select, to the tail of its DLQ as it was (every header kept
/// but the broker's delivery count).
async fn put_back(
    publisher: &Publisher,
    dlq: &str,
    body: Vec<u8>,
    headers: FieldTable,
    message_id: Option<ShortString>,
) -> Result<(), BusError> {
    let mut kept = FieldTable::default();
    for (key, value) in headers.inner() {
        if key.as_str() != names::DELIVERY_COUNT {
            kept.insert(key.clone(), value.clone());
        }
    }
    let outgoing = Outgoing {
        body,
        headers: kept,
        message_id,
    };
    publisher.publish_raw(dlq, &[outgoing]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn letter() -> DeadLetter {
        DeadLetter {
            record_ids: vec!["张三🚀".into()],
            error_class: Some(ErrorClass::Record),
            error: Some("Duplicate entry 'x' for key 'PRIMARY'".into()),
            failed_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()),
            payload:
                r#"{"records":[{"id":"张三🚀","data":{"公司":"某某公司 😀","备注":"say \"hi\""}}]}"#
                    .into(),
            values: vec!["某某公司 😀".into(), "say \"hi\"".into()],
        }
    }

    #[test]
    fn an_empty_filter_takes_everything() {
        let filter = DeadLetterFilter::default();
        assert!(filter.is_empty());
        assert!(filter.matches(&letter()));
        assert_eq!(filter.describe(), "all");
    }

    #[test]
    fn each_criterion_selects() {
        let at = |h| Some(Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap());
        let cases = [
            (
                DeadLetterFilter {
                    error_class: Some(ErrorClass::Record),
                    ..Default::default()
                },
                true,
            ),
            (
                DeadLetterFilter {
                    error_class: Some(ErrorClass::Transient),
                    ..Default::default()
                },
                false,
            ),
            (
                DeadLetterFilter {
                    text: Some("duplicate ENTRY".into()),
                    ..Default::default()
                },
                true,
            ),
            (
                DeadLetterFilter {
                    text: Some("某某公司".into()),
                    ..Default::default()
                },
                true,
            ),
            (
                DeadLetterFilter {
                    text: Some("李四".into()),
                    ..Default::default()
                },
                false,
            ),
            (
                DeadLetterFilter {
                    record_ids: vec!["x".into(), "张三🚀".into()],
                    ..Default::default()
                },
                true,
            ),
            (
                DeadLetterFilter {
                    record_ids: vec!["张三".into()],
                    ..Default::default()
                },
                false,
            ),
            (
                DeadLetterFilter {
                    since: at(8),
                    until: at(9),
                    ..Default::default()
                },
                true,
            ),
            (
                DeadLetterFilter {
                    since: at(9),
                    ..Default::default()
                },
                false,
            ),
            (
                DeadLetterFilter {
                    until: at(8),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(filter.matches(&letter()), expected, "{}", filter.describe());
        }
        let no_time = DeadLetter {
            failed_at: None,
            ..letter()
        };
        assert!(
            !DeadLetterFilter {
                since: at(0),
                ..Default::default()
            }
            .matches(&no_time)
        );
    }

    #[test]
    fn text_is_found_in_values_as_they_read() {
        let quoted = DeadLetterFilter {
            text: Some("say \"HI\"".into()),
            ..Default::default()
        };
        assert!(quoted.matches(&letter()));
    }

    #[test]
    fn the_description_names_every_criterion() {
        let filter = DeadLetterFilter {
            error_class: Some(ErrorClass::Record),
            text: Some("张三".into()),
            record_ids: vec!["1".into(), "2".into()],
            since: Some(Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()),
            until: None,
        };
        assert_eq!(
            filter.describe(),
            "class=record match=\"张三\" record=1,2 since=2026-03-01T08:00:00+00:00"
        );
    }
}
