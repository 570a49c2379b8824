//! Declaring a scheme's queues, and looking at them.
//!
//! Per stage (transform, load) a scheme has: the work queue (durable quorum queue that
//! dead-letters into the DLQ, with a delivery limit so a message that keeps crashing its consumer
//! ends in the DLQ instead of looping), the DLQ (durable quorum queue), and one retry bucket per
//! delay (a classic queue without consumers whose messages expire after the delay and are
//! dead-lettered back to the work queue through the default exchange). Declaring is idempotent;
//! RabbitMQ refuses to change a queue's arguments, and that refusal is turned into an error that
//! tells the operator what to do.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Queue};

use crate::bus::Bus;
use crate::error::BusError;
use crate::link::{close_quietly, short, with_recovery};
use crate::names::{self, Stage};
pub use crate::shape::{DEFAULT_DELIVERY_LIMIT, DEFAULT_RETRY_DELAYS_SECS, Topology};

impl Topology {
    /// Every queue of `scheme` under this topology, stage by stage: work queue, DLQ, retry buckets.
    pub fn queues(&self, scheme: &str) -> Vec<String> {
        let mut out = Vec::new();
        for stage in Stage::ALL {
            out.push(names::work_queue(scheme, stage));
            out.push(names::dlq(scheme, stage));
            for delay in &self.retry_delays_secs {
                out.push(names::retry_queue(scheme, stage, *delay));
            }
        }
        out
    }

    /// Arguments of a stage's work queue.
    fn work_queue_arguments(&self, scheme: &str, stage: Stage) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        args.insert("x-dead-letter-exchange".into(), text(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            text(&names::dlq(scheme, stage)),
        );
        // at-least-once dead-lettering keeps a dead letter until the DLQ confirmed it; RabbitMQ
        // requires reject-publish overflow for it.
        args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        args.insert("x-overflow".into(), text("reject-publish"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        let single = match stage {
            Stage::Load => self.single_active_load,
            Stage::Transform => self.single_active_transform,
        };
        if single {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        self.replicate(&mut args);
        args
    }

    /// Arguments of a stage's DLQ.
    fn dlq_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        self.replicate(&mut args);
        args
    }

    /// The replication factor of a quorum queue, when one is configured.
    fn replicate(&self, args: &mut FieldTable) {
        if let Some(size) = self.quorum_group_size {
            args.insert(
                "x-quorum-initial-group-size".into(),
                AMQPValue::LongLongInt(i64::from(size)),
            );
        }
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn retry_queue_arguments(work_queue: &str, delay_secs: u64) -> FieldTable {
    let mut args = FieldTable::default();
    let ttl_ms = i64::try_from(delay_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
    args.insert("x-dead-letter-exchange".into(), text(""));
    args.insert("x-dead-letter-routing-key".into(), text(work_queue));
    args
}

/// The depth of one queue, as `ferry status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// The queue name.
    pub queue: String,
    /// False when the queue does not exist (then both counts are 0).
    pub exists: bool,
    /// Messages ready for delivery (not counting unacknowledged ones).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

impl Bus {
    /// Declare `scheme`'s queues (idempotent). A queue that exists with other arguments gives
    /// [`BusError::TopologyChanged`] naming it. Remembers the topology for failure routing.
    pub async fn declare(&self, scheme: &str, topology: &Topology) -> Result<(), BusError> {
        topology.validate()?;
        let channel = self.channel().await?;
        let result = declare_all(&channel, scheme, topology).await;
        close_quietly(&channel).await;
        result?;
        self.remember(scheme, topology);
        tracing::info!(scheme, "declared RabbitMQ topology");
        Ok(())
    }

    /// Messages and consumers of every queue of `scheme` (work queues, DLQs and the retry
    /// buckets of the topology declared by this process, or the default buckets). A queue that
    /// does not exist is reported with `exists: false`.
    pub async fn queue_depths(&self, scheme: &str) -> Result<Vec<QueueDepth>, BusError> {
        let topology = self.declared(scheme).unwrap_or_default();
        self.queue_depths_of(scheme, &topology).await
    }

    /// [`Bus::queue_depths`] for the queues `topology` gives `scheme`.
    pub async fn queue_depths_of(
        &self,
        scheme: &str,
        topology: &Topology,
    ) -> Result<Vec<QueueDepth>, BusError> {
        let mut out = Vec::new();
        // A passive declare of a missing queue closes its channel: open a new one after that.
        let mut channel: Option<Channel> = None;
        for queue in topology.queues(scheme) {
            let ch = match &channel {
                Some(ch) => ch.clone(),
                None => {
                    let ch = self.channel().await?;
                    channel = Some(ch.clone());
                    ch
                }
            };
            match passive_declare(&ch, &queue).await {
                Ok(found) => out.push(QueueDepth {
                    queue,
                    exists: true,
                    messages: found.message_count(),
                    consumers: found.consumer_count(),
                }),
                Err(BusError::QueueMissing { .. }) => {
                    channel = None;
                    out.push(QueueDepth {
                        queue,
                        exists: false,
                        messages: 0,
                        consumers: 0,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        if let Some(ch) = channel {
            close_quietly(&ch).await;
        }
        Ok(out)
    }

    /// Drop every message in `scheme`'s queues (missing queues are skipped). For tests.
    pub async fn purge_scheme(&self, scheme: &str) -> Result<u32, BusError> {
        let topology = self.declared(scheme).unwrap_or_default();
        let mut purged = 0;
        for queue in topology.queues(scheme) {
            let channel = self.channel().await?;
            let name = short("queue name", &queue)?;
            let result = with_recovery(&channel, "queue.purge", &queue, || {
                channel.queue_purge(name.clone(), QueuePurgeOptions::default())
            })
            .await;
            close_quietly(&channel).await;
            match result {
                Ok(count) => purged += count,
                Err(BusError::QueueMissing { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(purged)
    }

    /// Delete every queue of `scheme`, messages included (missing queues are skipped). For tests
    /// and for operators who changed a topology on purpose.
    pub async fn delete_scheme(&self, scheme: &str) -> Result<(), BusError> {
        let topology = self.declared(scheme).unwrap_or_default();
        self.delete_queues(scheme, &topology).await
    }

    /// Delete every queue `topology` gives `scheme`, messages included (missing queues are
    /// skipped): per stage the retry buckets, then the work queue, then the DLQ, so that nothing
    /// dead-letters into a queue already gone. `ferry teardown` checks they are empty first.
    pub async fn delete_queues(&self, scheme: &str, topology: &Topology) -> Result<(), BusError> {
        let mut queues = Vec::new();
        for stage in Stage::ALL {
            for delay in &topology.retry_delays_secs {
                queues.push(names::retry_queue(scheme, stage, *delay));
            }
            queues.push(names::work_queue(scheme, stage));
            queues.push(names::dlq(scheme, stage));
        }
        for queue in queues {
            let channel = self.channel().await?;
            let name = short("queue name", &queue)?;
            let result = with_recovery(&channel, "queue.delete", &queue, || {
                channel.queue_delete(name.clone(), QueueDeleteOptions::default())
            })
            .await;
            close_quietly(&channel).await;
            match result {
                Ok(_) | Err(BusError::QueueMissing { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

async fn declare_all(channel: &Channel, scheme: &str, topology: &Topology) -> Result<(), BusError> {
    for stage in Stage::ALL {
        let work = names::work_queue(scheme, stage);
        // The DLQ first, so that nothing the work queue dead-letters is ever dropped.
        declare(
            channel,
            &names::dlq(scheme, stage),
            topology.dlq_arguments(),
        )
        .await?;
        declare(channel, &work, topology.work_queue_arguments(scheme, stage)).await?;
        for delay in &topology.retry_delays_secs {
            declare(
                channel,
                &names::retry_queue(scheme, stage, *delay),
                retry_queue_arguments(&work, *delay),
            )
            .await?;
        }
    }
    Ok(())
}

async fn declare(channel: &Channel, queue: &str, arguments: FieldTable) -> Result<Queue, BusError> {
    let name: ShortString = short("queue name", queue)?;
    with_recovery(channel, "queue.declare", queue, || {
        channel.queue_declare(
            name.clone(),
            QueueDeclareOptions::durable(),
            arguments.clone(),
        )
    })
    .await
}

pub(crate) async fn passive_declare(channel: &Channel, queue: &str) -> Result<Queue, BusError> {
    let name = short("queue name", queue)?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    with_recovery(channel, "queue.declare (passive)", queue, || {
        channel.queue_declare(name.clone(), options, FieldTable::default())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_validation_names_the_problem() {
        assert_eq!(Topology::default().validate(), Ok(()));
        let zero = Topology {
            delivery_limit: 0,
            ..Topology::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "invalid topology: delivery_limit must be at least 1"
        );
        let unsorted = Topology {
            retry_delays_secs: vec![10, 1],
            ..Topology::default()
        };
        assert_eq!(
            unsorted.validate().unwrap_err().to_string(),
            "invalid topology: retry delays must be strictly ascending, got [10, 1]"
        );
    }

    #[test]
    fn work_queue_arguments_follow_the_design() {
        let topology = Topology {
            delivery_limit: 7,
            retry_delays_secs: vec![1],
            single_active_load: true,
            quorum_group_size: Some(3),
            single_active_transform: false,
        };
        let args = topology.work_queue_arguments("s", Stage::Load);
        let get = |k: &str| args.inner().get(k).cloned();
        assert_eq!(get("x-queue-type"), Some(text("quorum")));
        assert_eq!(
            get("x-dead-letter-routing-key"),
            Some(text("ferry.s.load.dlq"))
        );
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(7)));
        assert_eq!(
            get("x-single-active-consumer"),
            Some(AMQPValue::Boolean(true))
        );
        let transform = topology.work_queue_arguments("s", Stage::Transform);
        assert!(!transform.contains_key("x-single-active-consumer"));
        // Replicated on 3 nodes, work queues and DLQs alike; left to the broker when unset.
        for args in [&args, &transform, &topology.dlq_arguments()] {
            assert_eq!(
                args.inner().get("x-quorum-initial-group-size"),
                Some(&AMQPValue::LongLongInt(3))
            );
        }
        let unset = Topology::default();
        assert!(
            !unset
                .work_queue_arguments("s", Stage::Load)
                .contains_key("x-quorum-initial-group-size")
        );
        assert!(
            !unset
                .dlq_arguments()
                .contains_key("x-quorum-initial-group-size")
        );
    }

    #[test]
    fn queues_lists_every_queue_of_a_scheme() {
        let topology = Topology {
            retry_delays_secs: vec![1, 5],
            ..Topology::default()
        };
        assert_eq!(
            topology.queues("s"),
            vec![
                "ferry.s.transform",
                "ferry.s.transform.dlq",
                "ferry.s.transform.retry.1s",
                "ferry.s.transform.retry.5s",
                "ferry.s.load",
                "ferry.s.load.dlq",
                "ferry.s.load.retry.1s",
                "ferry.s.load.retry.5s",
            ]
        );
    }
}
