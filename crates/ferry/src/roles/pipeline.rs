//! Composition: the shared handles every role uses ([`Pipeline`]), how a role connects to
//! RabbitMQ and the state database, and how it starts the consuming stages' workers. Connecting
//! afresh after a lost connection is the [`super::supervisor`]'s.

use std::sync::Arc;

use anyhow::Context as _;
use ferry_bus::{Bus, BusError, Stage};
use ferry_core::FerryError;
use ferry_core::files::SchemeFile;
use ferry_state::State;
use tokio::task::JoinSet;

use super::extract::Extractor;
use super::load::LoadHandler;
use super::outage::Outages;
use super::transform::{DEFAULT_LOAD_BATCH, TransformHandler, Transformer};
use super::worker::{Handler, Stopped, Worker};
use crate::alerts::Alerts;
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
    /// Connect to the state database and to RabbitMQ (trying the broker nodes from
    /// `first_node` on, see [`App::bus_from`]) and declare the schemes' queues.
    pub async fn connect(
        app: Arc<App>,
        role: &str,
        schemes: &[SchemeFile],
        first_node: usize,
    ) -> anyhow::Result<Pipeline> {
        let state = app.state().await?;
        let bus = Arc::new(app.bus_from(role, first_node).await?);
        app.declare(&bus, schemes).await?;
        let connections = Arc::new(Connections::new(Arc::clone(&app), state.clone()));
        let alerts = Alerts::new(&app.files.config, state.clone());
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

    async fn handler(
        &self,
        scheme: &SchemeFile,
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
                    transformer: Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH),
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
        schemes: &[SchemeFile],
        stage: Stage,
        workers: u16,
        shutdown: &Shutdown,
        tasks: &mut JoinSet<WorkerEnd>,
    ) -> Vec<(String, FerryError)> {
        let prefetch = self.app.files.config.broker.prefetch;
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
