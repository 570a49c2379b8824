//! Confirmed publishing: a message counts as sent only once the broker confirmed it.
//!
//! Every publish goes to the default exchange with the queue name as routing key and
//! `mandatory` set, so a missing queue is an error ([`BusError::NoRoute`]) instead of a silently
//! dropped message. Messages are persistent JSON. After a connection failure the whole batch is
//! published again once lapin recovered: a message may then arrive twice, which the idempotent
//! writers downstream absorb (at-least-once).

use std::time::Duration;

use chrono::Utc;
use ferry_core::Envelope;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

use crate::bus::Bus;
use crate::error::BusError;
use crate::headers::Headers;
use crate::link::{LostSignal, refusal, short, with_recovery};

/// AMQP delivery mode of a message written to disk by the broker.
const PERSISTENT_DELIVERY_MODE: u8 = 2;
/// How long one publishing pass (publish everything, await every confirm) may take.
const CONFIRM_TIMEOUT_SECS: u64 = 60;
/// How many times a batch is published again after a connection recovery.
const REPUBLISHES_AFTER_RECOVERY: u32 = 3;

/// A channel in confirm mode. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    /// The connection's recovery watchdog: a stalled recovery ends a publish with `Lost`.
    lost: LostSignal,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("channel", &self.channel.id())
            .finish()
    }
}

/// One message ready to publish: its body and AMQP properties.
pub(crate) struct Outgoing {
    pub(crate) body: Vec<u8>,
    pub(crate) headers: FieldTable,
    pub(crate) message_id: Option<ShortString>,
}

impl Outgoing {
    /// An envelope with its headers; the message id names the run, page and (on a dead letter)
    /// the record, so duplicates are easy to spot in the management UI.
    pub(crate) fn envelope(envelope: &Envelope, headers: &Headers) -> Outgoing {
        let mut id = format!("{}/{}/{}", envelope.scheme, envelope.run_id, envelope.seq);
        if let Some(record) = &headers.record_id {
            id.push('/');
            id.push_str(record);
        }
        Outgoing {
            body: envelope.to_bytes(),
            headers: headers.to_field_table(),
            // An id longer than AMQP allows is left out rather than failing the publish.
            message_id: ShortString::try_new(id).ok(),
        }
    }
}

/// Why one publishing pass failed.
enum PassFailure {
    /// Final: report it.
    Bus(BusError),
    /// The channel or connection failed: wait for recovery and publish again.
    Connection(lapin::Error),
}

impl Bus {
    /// A publisher on a channel of its own, in confirm mode.
    pub async fn publisher(&self) -> Result<Publisher, BusError> {
        let channel = self.channel().await?;
        with_recovery(&channel, "confirm.select", "-", || {
            channel.confirm_select(ConfirmSelectOptions::default())
        })
        .await?;
        Ok(Publisher::new(channel, self.lost()))
    }
}

impl Publisher {
    pub(crate) fn new(channel: Channel, lost: LostSignal) -> Publisher {
        Publisher { channel, lost }
    }

    /// Publish `envelope` to `queue` and wait for the broker's confirm. A nack is an error.
    pub async fn publish(
        &self,
        queue: &str,
        envelope: &Envelope,
        headers: &Headers,
    ) -> Result<(), BusError> {
        self.publish_raw(queue, &[Outgoing::envelope(envelope, headers)])
            .await
    }

    /// Publish a batch to `queue` and wait until the broker confirmed every message. On error,
    /// some of them may have been stored: publish the batch again (duplicates are harmless).
    pub async fn publish_many(
        &self,
        queue: &str,
        batch: &[(Envelope, Headers)],
    ) -> Result<(), BusError> {
        let messages: Vec<Outgoing> = batch
            .iter()
            .map(|(envelope, headers)| Outgoing::envelope(envelope, headers))
            .collect();
        self.publish_raw(queue, &messages).await
    }

    /// Publish ready-made messages to `queue`, waiting for every confirm.
    pub(crate) async fn publish_raw(
        &self,
        queue: &str,
        messages: &[Outgoing],
    ) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let routing_key = short("queue name", queue)?;
        let mut recoveries = 0;
        loop {
            let pass = tokio::select! {
                pass = tokio::time::timeout(
                    Duration::from_secs(CONFIRM_TIMEOUT_SECS),
                    self.publish_pass(queue, &routing_key, messages),
                ) => pass.map_err(|_| self.timed_out(queue, messages.len()))?,
                // Confirms that a stalled recovery will never deliver.
                lost = self.lost.wait() => return Err(lost),
            };
            let err = match pass {
                Ok(()) => return Ok(()),
                Err(PassFailure::Bus(err)) => return Err(err),
                Err(PassFailure::Connection(err)) => err,
            };
            recoveries += 1;
            if recoveries > REPUBLISHES_AFTER_RECOVERY {
                return Err(self.lost.give_up(err.to_string()));
            }
            tracing::warn!(queue, error = %err, "publish failed; waiting for RabbitMQ recovery");
            // Bounded by `[broker] recovery_wait_secs`; past it the connection is given up and
            // the caller's supervisor connects afresh. The confirms of this pass never came, so
            // the batch counts as unknown and is published again there (same message ids).
            self.lost.recover(&self.channel, err).await?;
        }
    }

    /// The error for a pass that outlasted [`CONFIRM_TIMEOUT_SECS`]. Confirms pending while the
    /// connection was reconnecting all that time will never come (lapin only fails them once a
    /// reconnection starts): that is a lost connection, not a slow broker.
    fn timed_out(&self, queue: &str, count: usize) -> BusError {
        if self.channel.status().connected() {
            BusError::ConfirmTimeout {
                queue: queue.to_string(),
                count,
                secs: CONFIRM_TIMEOUT_SECS,
            }
        } else {
            self.lost.give_up(format!(
                "{count} message(s) for {queue} were still unconfirmed after {CONFIRM_TIMEOUT_SECS} s \
                 of reconnecting"
            ))
        }
    }

    /// Publish every message, then await every confirm (pipelined, not one round trip each).
    async fn publish_pass(
        &self,
        queue: &str,
        routing_key: &ShortString,
        messages: &[Outgoing],
    ) -> Result<(), PassFailure> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let timestamp_secs = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
        let fail = |err: lapin::Error| match refusal(&err, "basic.publish", queue) {
            Some(refused) => PassFailure::Bus(refused),
            None => PassFailure::Connection(err),
        };
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let mut properties = BasicProperties::default()
                .with_delivery_mode(PERSISTENT_DELIVERY_MODE)
                .with_content_type("application/json".into())
                .with_timestamp(timestamp_secs)
                .with_headers(message.headers.clone());
            if let Some(id) = &message.message_id {
                properties = properties.with_message_id(id.clone());
            }
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    routing_key.clone(),
                    options,
                    &message.body,
                    properties,
                )
                .await
                .map_err(fail)?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            match confirm.await.map_err(fail)? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_returned)) => {
                    return Err(PassFailure::Bus(BusError::NoRoute {
                        queue: queue.to_string(),
                    }));
                }
                Confirmation::Nack(_) => {
                    return Err(PassFailure::Bus(BusError::Nacked {
                        queue: queue.to_string(),
                    }));
                }
                // confirm_select is sent when the publisher is created, so this means the
                // channel lost confirm mode: treat it as a broken channel.
                Confirmation::NotRequested => {
                    return Err(PassFailure::Bus(BusError::Broker {
                        operation: "basic.publish",
                        queue: queue.to_string(),
                        reason: "the channel is not in confirm mode".into(),
                    }));
                }
            }
        }
        Ok(())
    }
}
