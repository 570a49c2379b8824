//! The connection to RabbitMQ and the recovery rules every operation follows.
//!
//! One [`Bus`] per process holds one AMQP connection with lapin's auto-recovery on: after a
//! network failure or a broker restart lapin reconnects and replays channels, confirm mode, QoS
//! and consumers. Each operation here runs through `with_recovery`: a channel-level refusal is
//! reported as it is, a connection failure waits for recovery and tries again, and when recovery
//! is impossible the error becomes [`BusError::Lost`], on which the binary exits non-zero.
//!
//! Recovery is also bounded in time. lapin 4.12.3 can stall for good when the connection dies with
//! frames still unsent (its IO loop waits for socket events that never come and never reconnects;
//! seen on a broker restart in the middle of a run). A watchdog per connection therefore calls the
//! connection lost once it has been reconnecting for the recovery wait ([`RECOVERY_WAIT_SECS`] by
//! default): consumers and publishers waiting on it give up with `Lost`, and the role drops the
//! connection and connects afresh (see [`Bus::lost`]); unacknowledged messages are redelivered.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::redact;
use lapin::options::ConfirmSelectOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::ShortString;
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind};

use crate::error::BusError;
use crate::publisher::Publisher;
use crate::topology::Topology;

/// How many times one operation waits for a connection recovery before giving up as `Lost`.
/// lapin itself retries the TCP connection with backoff inside each recovery.
const RECOVERIES_PER_OPERATION: u32 = 3;

/// How long opening a channel waits for a connection that is reconnecting.
const CHANNEL_OPEN_WAIT_SECS: u64 = 60;

/// How long a connection may stay in recovery before it counts as lost (see the module docs). A
/// broker back within this window is picked up in place: lapin retries the TCP connection every
/// [`RECONNECT_MAX_DELAY_SECS`] at most.
pub const RECOVERY_WAIT_SECS: u64 = 60;

/// The longest pause between two of lapin's reconnection attempts. lapin's default grows to 60 s,
/// which would let a recovery outlast [`RECOVERY_WAIT_SECS`] although the broker is back.
const RECONNECT_MAX_DELAY_SECS: u64 = 5;

/// Reconnection attempts per recovery: enough to cover [`RECOVERY_WAIT_SECS`] at the longest pause.
const RECONNECT_ATTEMPTS: usize = 30;

/// lapin's TCP attempts per node when several are configured: a node that refuses is left for the
/// next one after about a second.
const NODE_ATTEMPTS: usize = 2;

/// How long a connection given up is watched for a late recovery (see [`Bus::abandon`]); lapin's
/// own attempts end sooner ([`RECONNECT_ATTEMPTS`] at most [`RECONNECT_MAX_DELAY_SECS`] apart).
const ABANDONED_WATCH_SECS: u64 = 600;

/// How often the recovery watchdog looks at the connection.
const WATCHDOG_EVERY_MILLIS: u64 = 500;

/// The RabbitMQ connection of one Ferry process, and the topology it declared.
pub struct Bus {
    connection: Connection,
    /// Set by the recovery watchdog when the connection is given up.
    lost: LostSignal,
    /// The broker URL without its password, for messages.
    redacted_url: String,
    /// Which of the node URLs it was given this connection is to (see [`Bus::connect_nodes`]).
    node: usize,
    /// The topology declared per scheme, which failure routing needs (retry delays).
    topologies: Mutex<HashMap<String, Topology>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.redacted_url)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connect to the broker at `url` (`amqp://user:pass@host:5672/%2f`) with auto-recovery on.
    /// `name` is the connection name shown in the management UI (e.g. `ferry load`). The password
    /// never appears in the error.
    pub async fn connect(url: &str, name: &str) -> Result<Bus, BusError> {
        Bus::connect_with_recovery_wait(url, name, Duration::from_secs(RECOVERY_WAIT_SECS)).await
    }

    /// [`Bus::connect`], giving lapin's recovery `recovery_wait` before the connection counts as
    /// lost.
    pub async fn connect_with_recovery_wait(
        url: &str,
        name: &str,
        recovery_wait: Duration,
    ) -> Result<Bus, BusError> {
        Bus::connect_url(url, name, recovery_wait, RECONNECT_ATTEMPTS).await
    }

    /// Connect to one node; lapin makes `attempts` TCP attempts (the first connection and each
    /// recovery), at most [`RECONNECT_MAX_DELAY_SECS`] apart.
    async fn connect_url(
        url: &str,
        name: &str,
        recovery_wait: Duration,
        attempts: usize,
    ) -> Result<Bus, BusError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(name.into())
            .enable_auto_recover()
            .with_backoff(
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_delay(Duration::from_secs(RECONNECT_MAX_DELAY_SECS))
                    .with_max_times(attempts),
            );
        let redacted_url = redact::url(url);
        let connection =
            Connection::connect(url, properties)
                .await
                .map_err(|err| BusError::Connect {
                    url: redacted_url.clone(),
                    reason: redact::scrub(&err.to_string(), &redact::passwords(url)),
                })?;
        tracing::info!(url = %redacted_url, connection = name, "connected to RabbitMQ");
        let lost = LostSignal::watch(connection.status().clone(), recovery_wait);
        Ok(Bus {
            connection,
            lost,
            redacted_url,
            node: 0,
            topologies: Mutex::new(HashMap::new()),
        })
    }

    /// Connect to the first of a cluster's nodes that answers, trying `urls` from `first`
    /// (wrapping around), so that a role that lost its node starts with the next one. No URL's
    /// password appears in the error, which names every node tried and why it failed.
    pub async fn connect_nodes(
        urls: &[String],
        first: usize,
        name: &str,
        recovery_wait: Duration,
    ) -> Result<Bus, BusError> {
        let count = urls.len();
        let mut failures = Vec::new();
        for node in (0..count).map(|i| (first + i) % count) {
            // With several nodes a dead one is left after a few attempts, not lapin's minutes.
            let attempts = if count == 1 {
                RECONNECT_ATTEMPTS
            } else {
                NODE_ATTEMPTS
            };
            match Bus::connect_url(&urls[node], name, recovery_wait, attempts).await {
                Ok(mut bus) => {
                    bus.node = node;
                    return Ok(bus);
                }
                Err(err) if count == 1 => return Err(err),
                Err(err) => {
                    tracing::warn!(node = %redact::url(&urls[node]), error = %err, "a RabbitMQ node did not answer; trying the next");
                    failures.push(match err {
                        BusError::Connect { url, reason } => format!("{url}: {reason}"),
                        other => format!("{}: {other}", redact::url(&urls[node])),
                    });
                }
            }
        }
        if count == 0 {
            return Err(BusError::NoNode {
                count,
                tried: "no broker URL is configured".into(),
            });
        }
        Err(BusError::NoNode {
            count,
            tried: failures.join("; "),
        })
    }

    /// Which of the node URLs given to [`Bus::connect_nodes`] this connection is to (0 for
    /// [`Bus::connect`]).
    pub fn node(&self) -> usize {
        self.node
    }

    /// True while the connection is up (not reconnecting, closed or failed): for `/readyz`.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// The broker URL without its password.
    pub fn url(&self) -> &str {
        &self.redacted_url
    }

    /// A publisher on a channel of its own, in confirm mode.
    pub async fn publisher(&self) -> Result<Publisher, BusError> {
        let channel = self.channel().await?;
        with_recovery(&channel, "confirm.select", "-", || {
            channel.confirm_select(ConfirmSelectOptions::default())
        })
        .await?;
        Ok(Publisher::new(channel, self.lost.clone()))
    }

    /// Resolves with `Lost` once the watchdog gave the connection up; never otherwise.
    pub(crate) fn lost(&self) -> LostSignal {
        self.lost.clone()
    }

    /// Resolves with [`BusError::Lost`] once this connection was given up (lapin's recovery did
    /// not get it back within the recovery wait); pending while it is usable. A role waits on it to
    /// drop the connection and connect afresh.
    pub async fn wait_lost(&self) -> BusError {
        self.lost.wait().await
    }

    /// Give this connection up for good, after [`Bus::wait_lost`]. Should lapin's recovery bring it
    /// back after all, it is closed at once: its consumers would otherwise hold messages that
    /// nobody processes (closing makes the broker deliver them again, to the fresh connection).
    pub fn abandon(self: Arc<Self>) {
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(ABANDONED_WATCH_SECS);
            while Instant::now() < deadline {
                let status = self.connection.status();
                if status.connected() {
                    tracing::info!(
                        "closing a RabbitMQ connection that recovered after it was given up"
                    );
                    let _ = self.close().await;
                    return;
                }
                if status.closed() || status.errored() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(WATCHDOG_EVERY_MILLIS)).await;
            }
        });
    }

    /// True once this connection was given up.
    pub fn is_lost(&self) -> bool {
        self.lost.is_set()
    }

    /// Close the connection politely (consumers should be cancelled and drained first).
    pub async fn close(&self) -> Result<(), BusError> {
        self.connection
            .close(200, "OK".into())
            .await
            .map_err(|err| BusError::Lost(err.to_string()))
    }

    /// A new channel. While the connection is reconnecting, waits for it (up to a minute).
    pub(crate) async fn channel(&self) -> Result<Channel, BusError> {
        match self.connection.create_channel().await {
            Ok(channel) => Ok(channel),
            Err(first) => {
                let deadline =
                    tokio::time::Instant::now() + Duration::from_secs(CHANNEL_OPEN_WAIT_SECS);
                while self.connection.status().reconnecting()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !self.connection.status().connected() {
                    return Err(BusError::Lost(first.to_string()));
                }
                self.connection
                    .create_channel()
                    .await
                    .map_err(|err| BusError::Lost(err.to_string()))
            }
        }
    }

    /// Remember the topology declared for `scheme` (failure routing reads its retry delays).
    pub(crate) fn remember(&self, scheme: &str, topology: &Topology) {
        self.topologies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(scheme.to_string(), topology.clone());
    }

    /// The topology this process declared for `scheme`, if any.
    pub fn declared(&self, scheme: &str) -> Option<Topology> {
        self.topologies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(scheme)
            .cloned()
    }
}

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
    fn watch(status: lapin::ConnectionStatus, recovery_wait: Duration) -> LostSignal {
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
