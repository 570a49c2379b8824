//! The shape of a scheme's queues ([`Topology`]): plain data, with its defaults and its own
//! check. The connection ([`crate::bus`]) remembers the shape it declared per scheme and
//! [`crate::topology`] declares it; both import it from here, so neither imports the other's
//! module for it.

use crate::error::BusError;

/// Default delivery limit of a work queue: deliveries before the broker dead-letters a message.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;
/// Default retry buckets, in seconds.
pub const DEFAULT_RETRY_DELAYS_SECS: [u64; 3] = [1, 10, 60];

/// The shape of a scheme's queues. Changing any of it for existing queues needs the queues to be
/// deleted first (see [`BusError::TopologyChanged`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// `x-delivery-limit` of the work queues: how many times the broker redelivers a message
    /// (after a consumer crash or a requeue) before dead-lettering it. At least 1.
    pub delivery_limit: u32,
    /// The retry buckets, in seconds, strictly ascending. A transient failure on attempt `n`
    /// waits `retry_delays_secs[min(n, len - 1)]`. Empty: transient failures are dead-lettered.
    pub retry_delays_secs: Vec<u64>,
    /// Give the load queue `x-single-active-consumer`, so one loader at a time writes (for
    /// rate-limited targets such as a DingTalk robot), whatever the number of replicas.
    pub single_active_load: bool,
    /// `x-quorum-initial-group-size` of the quorum queues (work queues and DLQs): on how many
    /// cluster nodes each is replicated; `None` leaves it to the broker. RabbitMQ reads it only
    /// when a queue is created.
    pub quorum_group_size: Option<u32>,
    /// Give the transform queue `x-single-active-consumer` too: with the load queue's, pages
    /// are transformed and written one at a time in the order the extractor published them,
    /// whatever the number of workers (a binlog source's changes, whose order matters).
    pub single_active_transform: bool,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
            retry_delays_secs: DEFAULT_RETRY_DELAYS_SECS.to_vec(),
            single_active_load: false,
            quorum_group_size: None,
            single_active_transform: false,
        }
    }
}

impl Topology {
    /// Check the topology before anything is declared.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.delivery_limit == 0 {
            return Err(BusError::InvalidTopology(
                "delivery_limit must be at least 1".into(),
            ));
        }
        if self.retry_delays_secs.contains(&0) {
            return Err(BusError::InvalidTopology(
                "retry delays must be at least 1 second".into(),
            ));
        }
        if self.retry_delays_secs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BusError::InvalidTopology(format!(
                "retry delays must be strictly ascending, got {:?}",
                self.retry_delays_secs
            )));
        }
        Ok(())
    }
}
