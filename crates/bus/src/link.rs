//! What every operation on the broker shares, below the connection ([`crate::bus`]) and the
//! modules that use it (publishing, consuming, declaring, browsing, replaying): the lost-connection
//! signal, the recovery rule each channel operation runs under, how a broker refusal becomes a
//! [`BusError`], AMQP short names, and closing a helper channel.
//!
//! It imports nothing else of this crate but [`crate::error`], so the connection and the modules
//! built on it both depend on it and never on each other in a circle.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::ShortString;
use lapin::{Channel, ErrorKind};

use crate::error::BusError;

/// How many times one operation waits for a connection recovery before giving up as `Lost`.
/// lapin itself retries the TCP connection with backoff inside each recovery.
const RECOVERIES_PER_OPERATION: u32 = 3;

/// How long a connection may stay in recovery before it counts as lost (see [`crate::bus`]). A
/// broker back within this window is picked up in place: lapin retries the TCP connection every
/// few seconds at most.
pub const RECOVERY_WAIT_SECS: u64 = 60;

/// How often the recovery watchdog looks at the connection.
pub(crate) const WATCHDOG_EVERY_MILLIS: u64 = 500;

/// The recovery watchdog's verdict, shared by everything that waits on one connection. Set by
/// the watchdog, or by an operation whose own wait for a recovery ran out ([`LostSignal::give_up`]),
/// so that every user of the connection learns at once that it is gone.
#[derive(Clone, Debug)]
pub(crate) struct LostSignal {
    verdict: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// How long a recovery may take before the connection counts as lost.
    recovery_wait: Duration,
}

impl LostSignal {
    /// Start the watchdog of a connection. It ends on its own once the connection is given up
    /// or every holder of the signal is gone.
    pub(crate) fn watch(status: lapin::ConnectionStatus, recovery_wait: Duration) -> LostSignal {
        let verdict = Arc::new(tokio::sync::watch::channel(None).0);
        let watched = Arc::downgrade(&verdict);
        tokio::spawn(async move {
            let mut reconnecting_since: Option<Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(WATCHDOG_EVERY_MILLIS)).await;
                let Some(verdict) = watched.upgrade() else {
                    return;
                };
                if verdict.borrow().is_some() {
                    return;
                }
                // lapin moves between Reconnecting and Connecting (each attempt) and Error (an
                // attempt failed) while it recovers: all of it counts.
                if !(status.reconnecting() || status.connecting() || status.errored()) {
                    reconnecting_since = None;
                    continue;
                }
                let since = *reconnecting_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= recovery_wait {
                    let reason = format!(
                        "the connection did not recover within {} s",
                        recovery_wait.as_secs()
                    );
                    LostSignal::set(&verdict, reason);
                    return;
                }
            }
        });
        LostSignal {
            verdict,
            recovery_wait,
        }
    }

    fn set(verdict: &tokio::sync::watch::Sender<Option<String>>, reason: String) {
        verdict.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            tracing::error!(%reason, "giving the RabbitMQ connection up");
            *current = Some(reason);
            true
        });
    }

    /// Call the connection lost (once; later reasons are ignored) and return the error for it.
    pub(crate) fn give_up(&self, reason: String) -> BusError {
        LostSignal::set(&self.verdict, reason);
        BusError::Lost(self.verdict.borrow().clone().unwrap_or_default())
    }

    /// True once the connection was given up.
    pub(crate) fn is_set(&self) -> bool {
        self.verdict.borrow().is_some()
    }

    /// Resolves with [`BusError::Lost`] once the connection was given up; pending otherwise.
    pub(crate) async fn wait(&self) -> BusError {
        let mut rx = self.verdict.subscribe();
        // The guard `wait_for` returns must not live across an await (it is not Send).
        let verdict = rx
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match verdict {
            Ok(reason) => BusError::Lost(reason),
            // Cannot happen while `self` holds the sender; never resolve rather than guess.
            Err(_) => std::future::pending().await,
        }
    }

    /// Wait for lapin's recovery after `err`, for the recovery wait at most: a channel whose
    /// recovery stalls (lapin 4.12 can leave it waiting for good while the connection looks
    /// connected, so the watchdog never fires) gives the whole connection up, and the role's
    /// supervisor connects afresh.
    pub(crate) async fn recover(
        &self,
        channel: &Channel,
        err: lapin::Error,
    ) -> Result<(), BusError> {
        let bounded = tokio::time::timeout(self.recovery_wait, channel.wait_for_recovery(err));
        tokio::select! {
            recovered = bounded => match recovered {
                Ok(recovered) => recovered.map_err(|err| self.give_up(err.to_string())),
                Err(_) => Err(self.give_up(format!(
                    "channel {} did not recover within {} s",
                    channel.id(),
                    self.recovery_wait.as_secs()
                ))),
            },
            lost = self.wait() => Err(lost),
        }
    }
}

/// Run one channel operation. A channel-level refusal (a soft AMQP error) is returned as
/// `Broker` (or `TopologyChanged` for a refused declaration); a connection failure waits for
/// lapin's recovery and runs the operation again; when recovery is impossible: `Lost`.
pub(crate) async fn with_recovery<T, F, Fut>(
    channel: &Channel,
    operation: &'static str,
    queue: &str,
    mut op: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = lapin::Result<T>>,
{
    let mut recoveries = 0;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if let Some(refused) = refusal(&err, operation, queue) {
            return Err(refused);
        }
        recoveries += 1;
        if recoveries > RECOVERIES_PER_OPERATION {
            return Err(BusError::Lost(err.to_string()));
        }
        tracing::warn!(operation, queue, error = %err, "RabbitMQ connection failed; waiting for recovery");
        // Bounded: a recovery that stalls must not hang the caller (see the module docs).
        tokio::time::timeout(
            Duration::from_secs(RECOVERY_WAIT_SECS),
            channel.wait_for_recovery(err),
        )
        .await
        .map_err(|_| {
            BusError::Lost(format!(
                "the connection did not recover within {RECOVERY_WAIT_SECS} s"
            ))
        })?
        .map_err(|err| BusError::Lost(err.to_string()))?;
    }
}

/// The `BusError` for a channel-level refusal, or `None` when `err` is about the connection.
pub(crate) fn refusal(
    err: &lapin::Error,
    operation: &'static str,
    queue: &str,
) -> Option<BusError> {
    let ErrorKind::ProtocolError(amqp) = err.kind() else {
        return None;
    };
    let AMQPErrorKind::Soft(soft) = amqp.kind() else {
        return None;
    };
    let reason = amqp.get_message().to_string();
    if *soft == AMQPSoftError::PRECONDITIONFAILED && operation == "queue.declare" {
        return Some(BusError::TopologyChanged {
            queue: queue.to_string(),
            reason,
        });
    }
    if *soft == AMQPSoftError::NOTFOUND {
        return Some(BusError::QueueMissing {
            operation,
            queue: queue.to_string(),
        });
    }
    Some(BusError::Broker {
        operation,
        queue: queue.to_string(),
        reason,
    })
}

/// `name` as an AMQP short string, or an error when it is longer than 255 bytes.
pub(crate) fn short(what: &'static str, name: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(name).map_err(|_| BusError::NameTooLong {
        what,
        name: name.to_string(),
        len: name.len(),
    })
}

/// Close a helper channel; a failure to close changes nothing for the caller.
pub(crate) async fn close_quietly(channel: &Channel) {
    if channel.status().connected() {
        let _ = channel.close(200, "OK".into()).await;
    }
}
