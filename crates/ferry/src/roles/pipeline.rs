//! Composition: the shared handles every role uses ([`Pipeline`]), how a role connects to
//! RabbitMQ and the state database, connects afresh after a lost connection, and starts the
//! consuming stages' workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_bus::{Bus, BusError, Stage};
use ferry_core::FerryError;
use ferry_core::load::LoadedScheme;
use ferry_state::State;
use tokio::task::JoinSet;

use super::extract::Extractor;
use super::load::LoadHandler;
use super::outage::Outages;
use super::transform::{DEFAULT_LOAD_BATCH, TransformHandler, Transformer};
use super::worker::{Handler, Stopped, Worker};
use crate::alerts::{Alert, Alerts, Kind};
use crate::app::App;
use crate::connections::Connections;
use crate::shutdown::Shutdown;

/// The shared handles every role uses.
pub struct Pipeline {
    pub app: Arc<App>,
    pub bus: Arc<Bus>,
    pub state: State,
    pub connections: Arc<Connections>,
    pub alerts: Alerts,
    /// The outages the workers are holding their messages through, kept across fresh connections.
    pub outages: Outages,
}

/// A worker's end: which scheme, and how it stopped.
pub type WorkerEnd = (String, Stage, Result<Stopped, BusError>);

impl Pipeline {
    pub async fn connect(
        app: Arc<App>,
        role: &str,
        schemes: &[LoadedScheme],
    ) -> anyhow::Result<Pipeline> {
        let state = app.state().await?;
        let bus = Arc::new(app.bus(role).await?);
        app.declare(&bus, schemes).await?;
        let connections = Arc::new(Connections::new(Arc::clone(&app), state.clone()));
        let alerts = Alerts::new(&app.loaded.config, state.clone());
        Ok(Pipeline {
            app,
            bus,
            state,
            connections,
            alerts,
            outages: Outages::default(),
        })
    }

    /// An extractor on this pipeline's connection, taking leases as `owner`.
    pub(super) fn extractor(&self, owner: &str) -> Extractor {
        Extractor::new(
            Arc::clone(&self.bus),
            self.state.clone(),
            Arc::clone(&self.connections),
            owner.to_string(),
            self.alerts.clone(),
        )
    }

    /// After this pipeline's connection was given up (`why`): let it go for good (see
    /// `Bus::abandon`) and connect afresh, retrying with backoff (1 s doubling to 30 s) while the
    /// broker is still away. `None` when a shutdown came first.
    pub(super) async fn replace(
        &self,
        role: &str,
        schemes: &[LoadedScheme],
        shutdown: &Shutdown,
        why: &dyn std::fmt::Display,
    ) -> anyhow::Result<Option<Pipeline>> {
        tracing::warn!(role, error = %why, "gave the RabbitMQ connection up; connecting afresh");
        Arc::clone(&self.bus).abandon();
        crate::metrics::global().set_ready(false);
        // lapin's recovery had `recovery_wait_secs` before the connection was given up.
        let down_since = Instant::now()
            .checked_sub(Duration::from_secs(
                self.app.loaded.config.broker.recovery_wait_secs,
            ))
            .unwrap_or_else(Instant::now);
        let mut alerted = false;
        let mut delay = Duration::from_secs(1);
        for attempt in 1u32.. {
            let mut waiting = shutdown.clone();
            tokio::select! {
                _ = waiting.wait() => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
            match Pipeline::connect(Arc::clone(&self.app), role, schemes).await {
                Ok(mut pipeline) => {
                    tracing::info!(role, attempt, "connected to RabbitMQ afresh");
                    crate::metrics::global().set_ready(true);
                    // The same alerts (and their deliveries under way) and outages go on.
                    pipeline.alerts = self.alerts.clone();
                    pipeline.outages = self.outages.clone();
                    pipeline.alerts.clear(
                        "",
                        Kind::BrokerDown,
                        None,
                        Some(format!(
                            "`ferry {role}` 已重新连接 RabbitMQ（中断约 {} 秒）",
                            down_since.elapsed().as_secs()
                        )),
                    );
                    return Ok(Some(pipeline));
                }
                Err(e) => {
                    tracing::warn!(role, attempt, error = %format!("{e:#}"), "RabbitMQ is still unreachable; trying again");
                    if !alerted
                        && let Some(after) = self.alerts.broker_down_after()
                        && down_since.elapsed() >= after
                    {
                        alerted = true;
                        self.alerts.raise(
                            Alert::new("", Kind::BrokerDown)
                                .line("持续", format!("约 {} 秒", down_since.elapsed().as_secs()))
                                .line("错误", format!("{e:#}"))
                                .line(
                                    "处理",
                                    "检查 RabbitMQ 是否在运行、地址（FERRY_AMQP_URL / [broker] url）与网络；\
                                     Ferry 会自动重连，恢复后无需重启",
                                ),
                        );
                    }
                    delay = (delay * 2).min(Duration::from_secs(RECONNECT_MAX_DELAY_SECS));
                }
            }
        }
        unreachable!("the attempts never run out")
    }

    async fn handler(
        &self,
        scheme: &LoadedScheme,
        stage: Stage,
    ) -> Result<Arc<dyn Handler>, FerryError> {
        Ok(match stage {
            Stage::Transform => {
                let publisher = self
                    .bus
                    .publisher()
                    .await
                    .map_err(|e| FerryError::transient(format!("RabbitMQ: {e}")))?;
                Arc::new(TransformHandler {
                    transformer: Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH)?,
                    publisher,
                    state: self.state.clone(),
                })
            }
            Stage::Load => Arc::new(LoadHandler {
                sink: self.connections.open_sink(scheme).await?,
            }),
        })
    }

    /// Start `workers` consumers per scheme for `stage`. A scheme whose handler cannot be built
    /// (a configuration error) is reported and left out; its messages stay queued.
    pub async fn spawn_workers(
        &self,
        schemes: &[LoadedScheme],
        stage: Stage,
        workers: u16,
        shutdown: &Shutdown,
        tasks: &mut JoinSet<WorkerEnd>,
    ) -> Vec<(String, FerryError)> {
        let prefetch = self.app.loaded.config.broker.prefetch;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ferry".into());
        let mut refused = Vec::new();
        for scheme in schemes {
            let name = scheme.scheme.name.clone();
            let handler = match self.handler(scheme, stage).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(scheme = %name, stage = stage.as_str(), error = %e, "cannot start this stage for the scheme");
                    if e.class() == ferry_core::ErrorClass::Config {
                        self.alerts.raise(super::worker::stopped_alert(
                            &name,
                            stage.as_str(),
                            "",
                            &e,
                        ));
                    }
                    refused.push((name, e));
                    continue;
                }
            };
            for i in 0..workers {
                let worker = Worker {
                    bus: Arc::clone(&self.bus),
                    state: self.state.clone(),
                    scheme: name.clone(),
                    stage,
                    prefetch,
                    handler: Arc::clone(&handler),
                    alerts: self.alerts.clone(),
                    handled_one: Default::default(),
                    outages: self.outages.clone(),
                };
                let tag = format!("ferry-{}-{host}-{}-{i}", stage.as_str(), std::process::id());
                let shutdown = shutdown.clone();
                let name = name.clone();
                tasks.spawn(async move { (name, stage, worker.run(tag, shutdown).await) });
            }
        }
        refused
    }
}

/// Wait for workers to end; a lost broker connection is fatal (the supervisor restarts us).
pub async fn join_workers(
    tasks: &mut JoinSet<WorkerEnd>,
) -> anyhow::Result<Vec<(String, FerryError)>> {
    let mut stopped = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        record_end(joined, &mut stopped)?;
    }
    Ok(stopped)
}

/// Note how a worker ended: a configuration stop joins `stopped`; a lost broker is an error.
pub(super) fn record_end(
    joined: Result<WorkerEnd, tokio::task::JoinError>,
    stopped: &mut Vec<(String, FerryError)>,
) -> anyhow::Result<()> {
    let (scheme, stage, result) = joined.context("a worker task panicked")?;
    match result {
        Ok(Stopped::Drained) => Ok(()),
        Ok(Stopped::Config(e)) => {
            stopped.push((scheme, e));
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(e))
            .with_context(|| format!("{scheme} {} worker: RabbitMQ failed", stage.as_str())),
    }
}

/// How often `ferry extract --once` connects afresh for one scheme before it reports the failure.
pub const ONCE_RECONNECTS: u32 = 3;

/// The longest pause between two attempts to connect afresh.
pub const RECONNECT_MAX_DELAY_SECS: u64 = 30;

/// Wait for the workers: `Some` as soon as one gives its connection up (outside a shutdown),
/// `None` once every one has ended. Configuration stops are collected in `stopped`.
pub(super) async fn until_lost(
    tasks: &mut JoinSet<WorkerEnd>,
    stopped: &mut Vec<(String, FerryError)>,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<BusError>> {
    while let Some(joined) = tasks.join_next().await {
        if let Some(lost) = gave_up(&joined, shutdown) {
            return Ok(Some(lost));
        }
        record_end(joined, stopped)?;
    }
    Ok(None)
}

/// The error of a worker that ended because its connection was given up, outside a shutdown
/// (during one, that is an error like any other).
pub(super) fn gave_up(
    joined: &Result<WorkerEnd, tokio::task::JoinError>,
    shutdown: &Shutdown,
) -> Option<BusError> {
    match joined {
        Ok((_, _, Err(e))) if e.is_lost() && !shutdown.is_set() => Some(e.clone()),
        _ => None,
    }
}
