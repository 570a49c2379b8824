//! Reading dead letters without moving them, for the console's dead-letter page.
//!
//! The dead letters are taken one at a time (`basic.get`) without acking, and all given back at
//! the end (a quorum queue returns them to its head, in order), the way a dry-run replay does.
//! Nothing is removed, republished or changed; a dead-letter queue has no delivery limit, so
//! looking does not count against anything. Moving them is the replay's job
//! ([`crate::replay`]).

use chrono::{DateTime, Utc};
use ferry_core::ErrorClass;
use lapin::Acker;
use lapin::options::BasicGetOptions;
use serde_json::Value;

use crate::bus::Bus;
use crate::consumer::Incoming;
use crate::error::BusError;
use crate::link::{close_quietly, short, with_recovery};
use crate::names::{self, Stage};
use crate::topology::passive_declare;

/// One dead letter as an operator reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterView {
    /// The stage whose DLQ holds it.
    pub stage: Stage,
    /// Its place in the queue, from 0 (the next to be replayed).
    pub position: usize,
    /// The record ids it holds (from the body, or the record-id header when the body is invalid).
    pub record_ids: Vec<String>,
    /// The class of the error that dead-lettered it (none when the broker did, after the
    /// delivery limit).
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    /// The field path of the error, where there is one.
    pub error_path: Option<String>,
    /// Retries made before it was dead-lettered.
    pub attempts: u32,
    pub replays: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// The run it was extracted in.
    pub run: Option<String>,
    /// The records' data (the envelope's `records`), or the body as text when it is not an
    /// envelope.
    pub payload: Value,
}

/// What [`Bus::browse_dead_letters`] saw.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterPage {
    /// Dead letters in the queue when it looked.
    pub total: u64,
    /// The first `limit` of them, in queue order.
    pub letters: Vec<DeadLetterView>,
}

impl Bus {
    /// The first `limit` dead letters of `scheme`'s `stage`, left where they are. A queue that
    /// does not exist yet has none.
    pub async fn browse_dead_letters(
        &self,
        scheme: &str,
        stage: Stage,
        limit: usize,
    ) -> Result<DeadLetterPage, BusError> {
        let queue = names::dlq(scheme, stage);
        let channel = self.channel().await?;
        let result = browse_on(&channel, &queue, stage, limit).await;
        close_quietly(&channel).await;
        match result {
            Err(BusError::QueueMissing { .. }) => Ok(DeadLetterPage {
                total: 0,
                letters: Vec::new(),
            }),
            other => other,
        }
    }
}

async fn browse_on(
    channel: &lapin::Channel,
    queue: &str,
    stage: Stage,
    limit: usize,
) -> Result<DeadLetterPage, BusError> {
    let total = u64::from(passive_declare(channel, queue).await?.message_count());
    let wanted = limit.min(usize::try_from(total).unwrap_or(usize::MAX));
    let name = short("queue name", queue)?;
    let mut letters = Vec::new();
    let mut held: Vec<Acker> = Vec::new();
    while letters.len() < wanted {
        let got = with_recovery(channel, "basic.get", queue, || {
            channel.basic_get(name.clone(), BasicGetOptions { no_ack: false })
        })
        .await?;
        let Some(message) = got else { break };
        held.push(message.delivery.acker.clone());
        let incoming = Incoming::from_delivery(message.delivery, queue);
        letters.push(view(&incoming, stage, letters.len()));
    }
    crate::replay::give_back(held, queue).await?;
    Ok(DeadLetterPage { total, letters })
}

fn view(incoming: &Incoming, stage: Stage, position: usize) -> DeadLetterView {
    let headers = &incoming.headers;
    let (record_ids, payload) = match &incoming.envelope {
        Ok(envelope) => (
            envelope.records.iter().map(|r| r.id.clone()).collect(),
            Value::Array(envelope.records.iter().map(|r| r.data.clone()).collect()),
        ),
        Err(_) => (
            headers.record_id.iter().cloned().collect(),
            Value::String(String::from_utf8_lossy(&incoming.body).into_owned()),
        ),
    };
    DeadLetterView {
        stage,
        position,
        record_ids,
        error_class: headers.error_class,
        error: headers.error.clone(),
        error_path: headers.error_path.clone(),
        attempts: headers.attempt,
        replays: headers.replays,
        first_failed_at: headers.first_failed_at,
        failed_at: headers.failed_at,
        run: headers.run.clone(),
        payload,
    }
}
