//! What every role starts from: the configuration as read and checked, the selected schemes, and handles on
//! the broker and the state database, opened on demand.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferry_bus::{Bus, Topology};
use ferry_core::config::{Connection, FAILOVER_WAIT_SECS, node_urls};
use ferry_core::files::{Files, SchemeFile};
use ferry_state::State;

use crate::cli::SchemeFilter;

/// Attempts before a transiently failing batch is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 6;

pub struct App {
    pub files: Arc<Files>,
    /// The broker node URL(s), comma-separated when several (`FERRY_AMQP_URL` or `[broker]`).
    pub amqp_url: String,
    pub state_url: String,
}

impl App {
    /// Read and check the configuration files; problems are printed one per line.
    pub fn read(path: &std::path::Path) -> anyhow::Result<App> {
        let env = |name: &str| std::env::var(name).ok();
        let files = match ferry_core::files::read(path, &env) {
            Ok(files) => files,
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                let errors = problems.iter().filter(|p| p.is_error()).count();
                bail!(
                    "{}: {errors} configuration error(s); run `ferry lint` for the full list",
                    path.display()
                );
            }
        };
        // Explicit environment beats the file, so one image serves every deployment.
        let amqp_url =
            env("FERRY_AMQP_URL").unwrap_or_else(|| files.config.broker.url.expose().to_string());
        let state_url =
            env("FERRY_STATE_URL").unwrap_or_else(|| files.config.state.url.expose().to_string());
        Ok(App {
            files: Arc::new(files),
            amqp_url,
            state_url,
        })
    }

    /// The schemes a command applies to: the named ones, or all.
    pub fn schemes(&self, filter: &SchemeFilter) -> anyhow::Result<Vec<SchemeFile>> {
        if filter.schemes.is_empty() {
            return Ok(self.files.schemes.clone());
        }
        filter
            .schemes
            .iter()
            .map(|name| {
                self.files.scheme(name).cloned().with_context(|| {
                    let known: Vec<&str> = self
                        .files
                        .schemes
                        .iter()
                        .map(|s| s.scheme.name.as_str())
                        .collect();
                    format!("no scheme named `{name}` (known: {})", known.join(", "))
                })
            })
            .collect()
    }

    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.files.config.connections.get(name)
    }

    pub async fn state(&self) -> anyhow::Result<State> {
        State::connect(&self.state_url)
            .await
            .context("cannot open the state database (FERRY_STATE_URL / [state] url)")
    }

    /// A connection to the broker: the first node of `FERRY_AMQP_URL` / `[broker] urls` that
    /// answers.
    pub async fn bus(&self, role: &str) -> anyhow::Result<Bus> {
        self.bus_from(role, 0).await
    }

    /// [`App::bus`], trying the nodes from the one at `first_node` on (wrapping around). With
    /// several nodes, a connection is given up after [`FAILOVER_WAIT_SECS`] of recovery at most,
    /// so that a role whose node died moves to another one within seconds.
    pub async fn bus_from(&self, role: &str, first_node: usize) -> anyhow::Result<Bus> {
        let nodes = node_urls(&self.amqp_url);
        let mut recovery_wait = self.files.config.broker.recovery_wait_secs;
        if nodes.len() > 1 {
            recovery_wait = recovery_wait.min(FAILOVER_WAIT_SECS);
        }
        Bus::connect_nodes(
            &nodes,
            first_node,
            &format!("ferry-{role}-{}", std::process::id()),
            Duration::from_secs(recovery_wait),
        )
        .await
        .context("cannot connect to RabbitMQ (FERRY_AMQP_URL / [broker] url or urls)")
    }

    /// The queues of a scheme: single active consumer on the load queue when the target's kind
    /// asks for one (a robot's per-minute limit), so the limit holds whatever the number of
    /// loader replicas.
    pub fn topology(&self, scheme: &SchemeFile) -> Topology {
        let broker = &self.files.config.broker;
        let single_active_load = self
            .connection(&scheme.scheme.target.connection)
            .is_some_and(|c| c.kind().single_active_consumer);
        // A binlog source's changes keep their order through both stages: one consumer at a
        // time on each queue, whatever the number of workers and replicas.
        let ordered = matches!(
            self.connection(&scheme.scheme.source.connection),
            Some(Connection::Mysql(_))
        ) && scheme.scheme.source.metadata.api == ferry_sources::binlog::API;
        Topology {
            delivery_limit: broker.delivery_limit,
            retry_delays_secs: broker.retry_delays_secs.clone(),
            quorum_group_size: broker.quorum_group_size,
            single_active_load: single_active_load || ordered,
            single_active_transform: ordered,
        }
    }

    /// Declare the queues of every given scheme (idempotent).
    pub async fn declare(&self, bus: &Bus, schemes: &[SchemeFile]) -> anyhow::Result<()> {
        for s in schemes {
            bus.declare(&s.scheme.name, &self.topology(s)).await?;
        }
        Ok(())
    }
}
