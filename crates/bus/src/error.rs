//! The errors of the RabbitMQ layer, each saying what the caller (or the operator) must do.
//!
//! `Lost` is the one the worker loops act on: the connection is gone and lapin's auto-recovery
//! did not bring it back in time, so the role drops it and connects afresh (`ferry run` exits
//! non-zero instead). Every other variant is
//! about one operation. No variant ever carries the broker password: URLs are redacted and lapin's
//! texts are scrubbed before they are stored.

/// A failure of the RabbitMQ layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BusError {
    /// The first connection could not be made (broker down, wrong credentials, bad URL).
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect {
        /// The broker URL with its password replaced by `***`.
        url: String,
        /// Why, as lapin reported it (scrubbed of the password).
        reason: String,
    },
    /// None of several broker nodes could be connected to. Each is named (redacted) with why.
    #[error("cannot connect to RabbitMQ: none of its {count} nodes answered ({tried})")]
    NoNode {
        /// How many node URLs were tried.
        count: usize,
        /// `url: reason` per node, `; `-separated, passwords replaced by `***`.
        tried: String,
    },
    /// A queue exists with other arguments than the ones Ferry declares now (PRECONDITION_FAILED).
    #[error(
        "queue {queue} already exists with different arguments ({reason}); RabbitMQ cannot change \
         queue arguments in place: drain the queue, delete it with `rabbitmqctl delete_queue {queue}` \
         and start Ferry again, or restore the previous setting (delivery limit, retry delays, \
         single active consumer)"
    )]
    TopologyChanged {
        /// The queue whose declaration was refused.
        queue: String,
        /// The broker's own explanation.
        reason: String,
    },
    /// The connection is gone and could not be recovered in place: connect afresh (or exit
    /// non-zero and let a supervisor restart the process).
    #[error("lost the RabbitMQ connection and could not recover it: {0}")]
    Lost(String),
    /// The broker refused one operation on one queue (a channel-level error).
    #[error("RabbitMQ refused {operation} on {queue}: {reason}")]
    Broker {
        /// The AMQP operation, e.g. `queue.declare`.
        operation: &'static str,
        /// The queue it was about.
        queue: String,
        /// The broker's explanation.
        reason: String,
    },
    /// The queue does not exist (NOT_FOUND).
    #[error(
        "queue {queue} does not exist ({operation} refused): declare the scheme's topology first"
    )]
    QueueMissing {
        /// The AMQP operation, e.g. `queue.declare` (passive).
        operation: &'static str,
        /// The missing queue.
        queue: String,
    },
    /// The broker answered a publish with a nack: the message is not stored, publish it again.
    #[error("RabbitMQ did not accept a message for {queue} (publisher nack); it was not stored")]
    Nacked {
        /// The queue the message was for.
        queue: String,
    },
    /// A publish found no queue of that name: the scheme's topology was not declared.
    #[error("no queue {queue} to publish to: declare the scheme's topology first")]
    NoRoute {
        /// The missing queue.
        queue: String,
    },
    /// An ack, nack or reject could not be sent because the channel failed. Nothing is lost: the
    /// broker delivers the message again (to this consumer once it recovered, or another one).
    /// Log it and go on.
    #[error(
        "could not {operation} a message from {queue} ({reason}); the broker will deliver it again"
    )]
    SettleFailed {
        /// `basic.ack`, `basic.nack` or `basic.reject`.
        operation: &'static str,
        /// The queue the message came from.
        queue: String,
        /// What lapin reported.
        reason: String,
    },
    /// The broker did not confirm a publish in time (a memory or disk alarm blocks publishers,
    /// or the connection hangs). The message may or may not be stored: publish it again later.
    #[error("RabbitMQ did not confirm {count} message(s) for {queue} within {secs} s")]
    ConfirmTimeout {
        /// The queue published to.
        queue: String,
        /// How many messages the batch had.
        count: usize,
        /// The timeout.
        secs: u64,
    },
    /// A name is too long for AMQP (queue names, consumer tags: at most 255 bytes).
    #[error("{what} is {len} bytes long, AMQP allows at most 255: {name:.60}...")]
    NameTooLong {
        /// What the name is for (`queue name`, `consumer tag`).
        what: &'static str,
        /// The name (shortened in the message).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// `route_failure` was asked to route something it must not (a config error): the caller
    /// stops consuming and leaves the message queued.
    #[error("not routed: {0}")]
    NotRoutable(String),
    /// Failure routing needs the scheme's retry delays, which `Bus::declare` records.
    #[error("the topology of scheme {0} was not declared by this process: call Bus::declare first")]
    NotDeclared(String),
    /// The topology asked for is not one Ferry can declare.
    #[error("invalid topology: {0}")]
    InvalidTopology(String),
}

impl BusError {
    /// True when the process should exit non-zero (the connection cannot be used any more).
    pub fn is_lost(&self) -> bool {
        matches!(self, BusError::Lost(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_error_names_the_queue_and_the_fix() {
        let err = BusError::TopologyChanged {
            queue: "ferry.s.load".into(),
            reason: "inequivalent arg 'x-delivery-limit'".into(),
        };
        let text = err.to_string();
        assert!(text.starts_with("queue ferry.s.load already exists with different arguments"));
        assert!(text.contains("`rabbitmqctl delete_queue ferry.s.load`"));
    }
}
