//! Consuming a work queue with manual acks and a prefetch.
//!
//! [`Consumer::next`] hands out one [`Incoming`] message at a time. Its body is parsed into an
//! [`Envelope`] up front; a body that is not one never crashes the loop: it arrives with
//! `envelope: Err(..)` and the caller dead-letters it (`Bus::route_invalid`) and acks it. After a
//! connection failure lapin recovers the consumer; messages that were in flight are redelivered
//! by the broker, and acking them on the old channel fails harmlessly.

use ferry_core::Envelope;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel};

use crate::bus::Bus;
use crate::error::BusError;
use crate::headers::{Headers, value_count};
use crate::link::{LostSignal, short, with_recovery};
use crate::names;

/// A consumer of one queue, on a channel of its own.
pub struct Consumer {
    channel: Channel,
    inner: lapin::Consumer,
    queue: String,
    tag: String,
    /// The connection's recovery watchdog: a stalled recovery ends `next` with `Lost`.
    lost: LostSignal,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .field("tag", &self.tag)
            .finish()
    }
}

/// One delivered message. Settle it exactly once: `ack`, `nack_requeue` or `reject_to_dlq`,
/// while its [`Consumer`] is still alive (dropping the consumer closes its channel, and the
/// broker then delivers unsettled messages again). A settlement error is
/// [`BusError::SettleFailed`]: nothing is lost, log it and go on.
pub struct Incoming {
    /// The parsed body, or why it is not a Ferry envelope.
    pub envelope: Result<Envelope, String>,
    /// Ferry's headers.
    pub headers: Headers,
    /// The broker delivered this message before (to a consumer that did not ack it).
    pub redelivered: bool,
    /// `x-delivery-count` (quorum queues): earlier deliveries of this message; 0 on the first.
    pub delivery_count: u32,
    /// The queue it came from.
    pub queue: String,
    /// The raw body, as published.
    pub body: Vec<u8>,
    acker: Acker,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("queue", &self.queue)
            .field(
                "envelope",
                &self.envelope.as_ref().map(|e| (&e.run_id, e.seq)),
            )
            .field("headers", &self.headers)
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

impl Incoming {
    /// Build from a lapin delivery (also used for `basic.get` in replay).
    pub(crate) fn from_delivery(delivery: lapin::message::Delivery, queue: &str) -> Incoming {
        let table = delivery.properties.headers().clone().unwrap_or_default();
        let delivery_count = table
            .inner()
            .get(names::DELIVERY_COUNT)
            .and_then(value_count)
            .unwrap_or_default();
        Incoming {
            envelope: parse_envelope(&delivery.data),
            headers: Headers::from_field_table(&table),
            redelivered: delivery.redelivered,
            delivery_count,
            queue: queue.to_string(),
            body: delivery.data,
            acker: delivery.acker,
        }
    }

    /// The message is done with: the broker forgets it.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|err| self.settle_error("basic.ack", err))
    }

    /// Give the message back for another try (counts against the delivery limit).
    pub async fn nack_requeue(&self) -> Result<(), BusError> {
        self.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map(drop)
            .map_err(|err| self.settle_error("basic.nack", err))
    }

    /// Refuse the message: the broker dead-letters it into the stage's DLQ as it is (with an
    /// `x-death` header, without Ferry's error headers). Prefer `Bus::route_failure`, which says
    /// why; this is for when publishing is impossible.
    pub async fn reject_to_dlq(&self) -> Result<(), BusError> {
        self.acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map(drop)
            .map_err(|err| self.settle_error("basic.reject", err))
    }

    fn settle_error(&self, operation: &'static str, err: lapin::Error) -> BusError {
        // A settlement that fails because the channel died is not lost work: the broker
        // redelivers the message to the recovered consumer.
        BusError::SettleFailed {
            operation,
            queue: self.queue.clone(),
            reason: err.to_string(),
        }
    }
}

/// The body as an envelope, or a message saying what is wrong with it.
fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
    Envelope::from_bytes(body).map_err(|err| {
        format!(
            "message body is not a Ferry envelope (JSON {{\"scheme\", \"run_id\", \"seq\", \
             \"records\"}}): {err}"
        )
    })
}

impl Bus {
    /// Start consuming `queue` with manual acks, at most `prefetch` unacked messages at a time.
    /// `tag` names the consumer in the management UI (empty: the broker picks one).
    pub async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
    ) -> Result<Consumer, BusError> {
        let channel = self.channel().await?;
        let name = short("queue name", queue)?;
        let consumer_tag = short("consumer tag", tag)?;
        with_recovery(&channel, "basic.qos", queue, || {
            channel.basic_qos(prefetch, BasicQosOptions::default())
        })
        .await?;
        let inner = with_recovery(&channel, "basic.consume", queue, || {
            channel.basic_consume(
                name.clone(),
                consumer_tag.clone(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
        })
        .await?;
        let tag = inner.tag().to_string();
        Ok(Consumer {
            channel,
            inner,
            queue: queue.to_string(),
            tag,
            lost: self.lost(),
        })
    }
}

impl Consumer {
    /// The next message. `Ok(None)` when the consumer was cancelled (by [`Consumer::cancel`] or
    /// because the queue was deleted). Connection failures are waited out; `Err(Lost)` when the
    /// connection cannot be recovered.
    pub async fn next(&mut self) -> Result<Option<Incoming>, BusError> {
        loop {
            let next = tokio::select! {
                next = self.inner.next() => next,
                // A stalled recovery never ends the stream nor reports an error on it.
                lost = self.lost.wait() => return Err(lost),
            };
            match next {
                None => return Ok(None),
                Some(Ok(delivery)) => {
                    return Ok(Some(Incoming::from_delivery(delivery, &self.queue)));
                }
                Some(Err(err)) => {
                    tracing::warn!(queue = %self.queue, error = %err, "consumer failed; waiting for RabbitMQ recovery");
                    self.lost.recover(&self.channel, err).await?;
                }
            }
        }
    }

    /// Stop receiving new messages; ones already received can still be settled. For graceful
    /// shutdown: cancel, settle what is in flight, then drop.
    pub async fn cancel(&self) -> Result<(), BusError> {
        let tag = short("consumer tag", &self.tag)?;
        with_recovery(&self.channel, "basic.cancel", &self.queue, || {
            self.channel
                .basic_cancel(tag.clone(), BasicCancelOptions::default())
        })
        .await
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bodies_get_a_clear_error() {
        let err = parse_envelope(b"not json").unwrap_err();
        assert!(
            err.starts_with("message body is not a Ferry envelope (JSON {\"scheme\", \"run_id\", \"seq\", \"records\"}): expected ident"),
            "{err}"
        );
        let err = parse_envelope(br#"{"scheme":"s"}"#).unwrap_err();
        assert!(
            err.ends_with("missing field `run_id` at line 1 column 14"),
            "{err}"
        );
    }
}
