//! The supervisor every role runs inside: connect, run, and when the connection is lost, connect
//! afresh with backoff and run again.
//!
//! A role is a *session* on one [`Pipeline`] (one RabbitMQ connection): an async function that
//! returns [`Session::Done`] when the role finished (drained on shutdown, or `--once` done) or
//! [`Session::Lost`] when it found its connection gone. The supervisor:
//!
//! 1. connects (the first broker node of `[broker] urls` that answers);
//! 2. runs the session, and ends it the moment the connection is given up ([`Bus::wait_lost`]:
//!    lapin's recovery did not bring it back within `[broker] recovery_wait_secs`, or a publish or
//!    consume waited that long for a channel that never recovered). Whatever the session held is
//!    dropped: the broker redelivers every unacknowledged message, a page or batch whose confirm
//!    never came is published again (same message ids, counted once), and an extraction resumes
//!    after its last confirmed page;
//! 3. lets the old connection go ([`Bus::abandon`]) and connects afresh, the next node first when
//!    several are configured, retrying with exponential backoff ([`RECONNECT_MIN_DELAY_MILLIS`]
//!    doubling to [`RECONNECT_MAX_DELAY_SECS`], with jitter) until a node answers or a shutdown
//!    comes; raises the broker-down alert when that takes `[alerts] broker_down_secs`;
//! 4. runs the session again on the new pipeline. A session keeps what it must not redo across
//!    connections in its own captured state (`run --once` the schemes already extracted).
//!
//! [`Bus::wait_lost`]: ferry_bus::Bus::wait_lost
//! [`Bus::abandon`]: ferry_bus::Bus::abandon

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use ferry_core::files::SchemeFile;

use super::pipeline::Pipeline;
use crate::alerts::{Alert, Kind};
use crate::app::App;
use crate::shutdown::Shutdown;

/// The first pause before connecting afresh again after an attempt failed.
pub const RECONNECT_MIN_DELAY_MILLIS: u64 = 500;

/// The longest pause between two attempts to connect afresh.
pub const RECONNECT_MAX_DELAY_SECS: u64 = 30;

/// How often a `--once` role connects afresh before it reports the failure.
pub const ONCE_RECONNECTS: u32 = 3;

/// How one session on a connection ended.
pub enum Session<T> {
    /// The role finished; the supervisor returns `T`.
    Done(T),
    /// The connection was given up (why): connect afresh and run the session again.
    Lost(String),
}

/// What a supervised role ended with: its value and the pipeline it ended on (for the reports
/// written after it), or `None` when a shutdown came while it was connecting afresh.
pub type Supervised<T> = Option<(T, Pipeline)>;

/// Runs one role's sessions, connecting afresh after each lost connection.
pub struct Supervisor {
    app: Arc<App>,
    role: &'static str,
    schemes: Vec<SchemeFile>,
    shutdown: Shutdown,
    /// Connections given up before the role fails; `None`: no limit (long-running roles).
    max_reconnects: Option<u32>,
}

impl Supervisor {
    pub fn new(
        app: Arc<App>,
        role: &'static str,
        schemes: &[SchemeFile],
        shutdown: &Shutdown,
    ) -> Supervisor {
        Supervisor {
            app,
            role,
            schemes: schemes.to_vec(),
            shutdown: shutdown.clone(),
            max_reconnects: None,
        }
    }

    /// Fail once the connection was given up more than `reconnects` times (`--once` roles, which
    /// must end).
    pub fn at_most(mut self, reconnects: u32) -> Supervisor {
        self.max_reconnects = Some(reconnects);
        self
    }

    /// Connect, then run `session` until it is done, connecting afresh after every lost
    /// connection. A first connection that fails is an error (the broker address is likely
    /// wrong); later ones are retried until a shutdown.
    pub async fn run<T>(
        &self,
        mut session: impl AsyncFnMut(&Pipeline) -> anyhow::Result<Session<T>>,
    ) -> anyhow::Result<Supervised<T>> {
        let mut pipeline =
            Pipeline::connect(Arc::clone(&self.app), self.role, &self.schemes, 0).await?;
        let mut reconnects = 0;
        loop {
            let bus = Arc::clone(&pipeline.bus);
            let ended = tokio::select! {
                ended = session(&pipeline) => ended?,
                lost = bus.wait_lost() => Session::Lost(lost.to_string()),
            };
            let why = match ended {
                Session::Done(value) => {
                    pipeline.leave().await;
                    return Ok(Some((value, pipeline)));
                }
                Session::Lost(why) => why,
            };
            if self.shutdown.is_set() {
                anyhow::bail!("lost the RabbitMQ connection while stopping: {why}");
            }
            reconnects += 1;
            if let Some(max) = self.max_reconnects {
                anyhow::ensure!(
                    reconnects <= max,
                    "gave the RabbitMQ connection up {reconnects} times: {why}"
                );
            }
            pipeline = match self.reconnect(pipeline, &why).await? {
                Some(pipeline) => pipeline,
                None => return Ok(None),
            };
        }
    }

    /// Give `old`'s connection up for good and connect afresh, starting with the node after the
    /// one it was on. `None` when a shutdown came first.
    async fn reconnect(&self, old: Pipeline, why: &str) -> anyhow::Result<Option<Pipeline>> {
        let role = self.role;
        tracing::warn!(role, node = old.bus.url(), error = %why, "gave the RabbitMQ connection up; connecting afresh");
        let next_node = old.bus.node() + 1;
        let alerts = old.alerts.clone();
        let outages = old.outages.clone();
        Arc::clone(&old.bus).abandon();
        drop(old);
        crate::metrics::global().set_ready(false);
        // lapin's recovery had `recovery_wait_secs` before the connection was given up.
        let down_since = Instant::now()
            .checked_sub(Duration::from_secs(
                self.app.files.config.broker.recovery_wait_secs,
            ))
            .unwrap_or_else(Instant::now);
        let mut alerted = false;
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(RECONNECT_MIN_DELAY_MILLIS))
            .with_max_delay(Duration::from_secs(RECONNECT_MAX_DELAY_SECS))
            .with_jitter()
            .without_max_times();
        let connect = || Pipeline::connect(Arc::clone(&self.app), role, &self.schemes, next_node);
        let connecting = connect.retry(policy).notify(|e: &anyhow::Error, next| {
            tracing::warn!(role, error = %format!("{e:#}"), retry_in_ms = next.as_millis() as u64, "RabbitMQ is still unreachable; trying again");
            if !alerted
                && let Some(after) = alerts.broker_down_after()
                && down_since.elapsed() >= after
            {
                alerted = true;
                alerts.raise(
                    Alert::new("", Kind::BrokerDown)
                        .line("持续", format!("约 {} 秒", down_since.elapsed().as_secs()))
                        .line("错误", format!("{e:#}"))
                        .line(
                            "处理",
                            "检查 RabbitMQ 是否在运行、地址（FERRY_AMQP_URL / [broker] urls）与网络；\
                             Ferry 会自动重连，恢复后无需重启",
                        ),
                );
            }
        });
        let mut waiting = self.shutdown.clone();
        let mut pipeline = tokio::select! {
            _ = waiting.wait() => return Ok(None),
            connected = connecting => connected?,
        };
        tracing::info!(
            role,
            node = pipeline.bus.url(),
            "connected to RabbitMQ afresh"
        );
        crate::metrics::global().set_ready(true);
        // The same alerts (and their deliveries under way) and outages go on.
        pipeline.alerts = alerts;
        pipeline.outages = outages;
        pipeline.alerts.clear(
            "",
            Kind::BrokerDown,
            None,
            Some(format!(
                "`ferry {role}` 已重新连接 RabbitMQ（中断约 {} 秒）",
                down_since.elapsed().as_secs()
            )),
        );
        Ok(Some(pipeline))
    }
}
