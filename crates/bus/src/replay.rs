//! `ferry replay`: moving dead letters back to their work queue.
//!
//! Dead letters are taken one at a time (`basic.get`), published to the work queue with a confirm,
//! and only then acked, so a crash in between duplicates a message rather than losing it. A
//! replayed message keeps its body (the record), its trace context and record id; it loses the
//! error headers, starts again at attempt 0 and counts the replay in `x-ferry-replays`. Only the
//! dead letters present when the replay starts are moved, so messages that fail again during the
//! replay are not picked up a second time. A dry run takes the same messages without acking them,
//! reports them, and gives them all back.

use ferry_core::ErrorClass;
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};

use crate::bus::{Bus, close_quietly, short, with_recovery};
use crate::consumer::Incoming;
use crate::error::BusError;
use crate::names::{self, Stage};
use crate::publisher::Outgoing;
use crate::topology::passive_declare;

/// What a replay moved (or, in a dry run, would move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// The DLQ read.
    pub from: String,
    /// The work queue written.
    pub to: String,
    /// True when nothing was moved.
    pub dry_run: bool,
    /// Dead letters moved (0 in a dry run).
    pub moved: usize,
    /// One entry per dead letter taken, in queue order.
    pub items: Vec<ReplayItem>,
}

/// One dead letter, as the replay report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayItem {
    /// The record ids it holds (from the body, or the record-id header when the body is invalid).
    pub record_ids: Vec<String>,
    /// The class of the error that dead-lettered it (none when the broker dead-lettered it).
    pub error_class: Option<ErrorClass>,
    /// The error message.
    pub error: Option<String>,
    /// How many times it was replayed before this replay.
    pub replays: u32,
}

impl Bus {
    /// Move up to `limit` (default: all) dead letters of `scheme`'s `stage` back to its work
    /// queue; with `dry_run`, only report what would move.
    pub async fn replay(
        &self,
        scheme: &str,
        stage: Stage,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<ReplayReport, BusError> {
        let from = names::dlq(scheme, stage);
        let to = names::work_queue(scheme, stage);
        let channel = self.channel().await?;
        let result = self
            .replay_on(&channel, &from, &to, stage, limit, dry_run)
            .await;
        close_quietly(&channel).await;
        result
    }

    async fn replay_on(
        &self,
        channel: &lapin::Channel,
        from: &str,
        to: &str,
        stage: Stage,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<ReplayReport, BusError> {
        // The work queue must exist, or the moved messages would have nowhere to go.
        passive_declare(channel, to).await?;
        let present = passive_declare(channel, from).await?.message_count();
        let wanted = limit.map_or(present as usize, |l| l.min(present as usize));
        let publisher = if dry_run {
            None
        } else {
            Some(self.publisher().await?)
        };
        let queue = short("queue name", from)?;
        let mut report = ReplayReport {
            from: from.to_string(),
            to: to.to_string(),
            dry_run,
            moved: 0,
            items: Vec::new(),
        };
        let mut held: Vec<Acker> = Vec::new();
        while report.items.len() < wanted {
            let got = with_recovery(channel, "basic.get", from, || {
                channel.basic_get(queue.clone(), BasicGetOptions { no_ack: false })
            })
            .await?;
            let Some(message) = got else { break };
            let acker = message.delivery.acker.clone();
            let message_id = message.delivery.properties.message_id().clone();
            let incoming = Incoming::from_delivery(message.delivery, from);
            report.items.push(ReplayItem {
                record_ids: match &incoming.envelope {
                    Ok(envelope) => envelope.records.iter().map(|r| r.id.clone()).collect(),
                    Err(_) => incoming.headers.record_id.iter().cloned().collect(),
                },
                error_class: incoming.headers.error_class,
                error: incoming.headers.error.clone(),
                replays: incoming.headers.replays,
            });
            let Some(publisher) = &publisher else {
                // Keep it unacked, so the next basic.get returns the next dead letter.
                held.push(acker);
                continue;
            };
            let mut headers = incoming.headers.without_error();
            headers.attempt = 0;
            headers.replays = headers.replays.saturating_add(1);
            headers.stage = Some(stage);
            let outgoing = Outgoing {
                body: incoming.body,
                headers: headers.to_field_table(),
                message_id,
            };
            publisher.publish_raw(to, &[outgoing]).await?;
            acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(|err| BusError::Broker {
                    operation: "basic.ack",
                    queue: from.to_string(),
                    reason: format!("{err} (the dead letter stays and may be replayed twice)"),
                })?;
            report.moved += 1;
        }
        for acker in held {
            acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
                .map_err(|err| BusError::Broker {
                    operation: "basic.nack",
                    queue: from.to_string(),
                    reason: format!("{err} (closing the channel gives the message back)"),
                })?;
        }
        if !dry_run {
            tracing::info!(from, to, moved = report.moved, "replayed dead letters");
        }
        Ok(report)
    }
}
