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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::redact;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::error::BusError;
use crate::link::{LostSignal, WATCHDOG_EVERY_MILLIS};
use crate::shape::Topology;

/// How long opening a channel waits for a connection that is reconnecting.
const CHANNEL_OPEN_WAIT_SECS: u64 = 60;

pub use crate::link::RECOVERY_WAIT_SECS;

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
