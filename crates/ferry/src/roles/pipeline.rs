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

use super::extract::{AbortOnDrop, Extractor};
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
    /// Reports this role and its broker node to the state database while the connection lives.
    presence: Option<AbortOnDrop>,
}

/// Seconds between two heartbeats of a role in the state database.
pub const ROLE_HEARTBEAT_SECS: u64 = 10;

/// `ferry status` shows the roles whose heartbeat came within this many seconds.
pub const ROLE_FRESH_SECS: u64 = 35;

/// This process's name in the state database's roles (host, pid, a unique suffix).
pub fn process_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(super::extract::owner_name)
}

/// The `host:port` of a broker URL (`amqp://user:***@10.0.0.5:5672/%2f` gives `10.0.0.5:5672`);
/// the URL itself when it has no such part.
pub fn node_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
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
        let presence = Some(heartbeat(
            state.clone(),
            role,
            schemes.iter().map(|s| s.scheme.name.clone()).collect(),
            node_address(bus.url()),
        ));
        Ok(Pipeline {
            app,
            bus,
            state,
            connections,
            alerts,
            outages: Outages::default(),
            presence,
        })
    }

    /// The role ended: its heartbeat stops and `ferry status` no longer shows it.
    pub async fn leave(&mut self) {
        if self.presence.take().is_some()
            && let Err(e) = self.state.role_gone(process_name()).await
        {
            tracing::debug!(error = %e, "could not remove this role from the state database");
        }
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

/// Report `role` on the node `node` to the state database now and every [`ROLE_HEARTBEAT_SECS`]
/// until the returned guard is dropped (the connection given up, the role ended). A heartbeat that
/// fails is logged at debug level only: `ferry status` is all it serves.
fn heartbeat(state: State, role: &str, schemes: Vec<String>, node: String) -> AbortOnDrop {
    let role = role.to_string();
    let host = super::extract::host_name().unwrap_or_else(|| "ferry".into());
    let pid = i64::from(std::process::id());
    AbortOnDrop(tokio::spawn(async move {
        loop {
            let seen = ferry_state::RoleSeen {
                process: process_name(),
                role: &role,
                host: &host,
                pid,
                schemes: &schemes,
                broker_node: &node,
            };
            if let Err(e) = state.role_seen(&seen).await {
                tracing::debug!(error = %e, "could not report this role to the state database");
            }
            tokio::time::sleep(std::time::Duration::from_secs(ROLE_HEARTBEAT_SECS)).await;
        }
    }))
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

#[cfg(test)]
mod tests {
    use super::node_address;

    #[test]
    fn a_node_is_shown_by_its_address_without_credentials() {
        assert_eq!(
            node_address("amqp://guest:***@127.0.0.1:5681/%2f"),
            "127.0.0.1:5681"
        );
        assert_eq!(
            node_address("amqps://u:p@ss@mq.example.com:5671?heartbeat=10"),
            "mq.example.com:5671"
        );
        assert_eq!(node_address("amqp://localhost"), "localhost");
    }
}
