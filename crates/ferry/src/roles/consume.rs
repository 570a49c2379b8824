//! Consuming: `ferry transform` and `ferry load`, a stage's workers for every scheme until
//! shutdown, inside the role [`Supervisor`].

use std::sync::Arc;

use ferry_bus::{BusError, Stage};
use ferry_core::files::SchemeFile;
use tokio::task::JoinSet;

use super::pipeline::{Pipeline, until_lost};
use super::report::watch_queue_depths;
use super::supervisor::{Session, Supervisor};
use crate::app::App;
use crate::shutdown::Shutdown;

/// `ferry transform` / `ferry load`: consume until shutdown, inside the [`Supervisor`]. When the
/// connection is given up, the workers stop, the role connects afresh in the same process and
/// starts them again; the broker redelivers what they had not acknowledged.
pub async fn consume(
    app: Arc<App>,
    schemes: Vec<SchemeFile>,
    stage: Stage,
    workers: u16,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let supervisor = Supervisor::new(app, stage.as_str(), &schemes, &shutdown);
    supervisor
        .run(async |pipeline| {
            let ended = consume_on(pipeline, &schemes, stage, workers, &shutdown).await;
            if let Ok(Some(lost)) = ended {
                return Ok(Session::Lost(lost.to_string()));
            }
            pipeline.alerts.flush().await;
            ended.map(|_| Session::Done(()))
        })
        .await?;
    Ok(())
}

/// Consume on one connection until shutdown (`None`) or until it is given up (`Some`).
async fn consume_on(
    pipeline: &Pipeline,
    schemes: &[SchemeFile],
    stage: Stage,
    workers: u16,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<BusError>> {
    let mut tasks = JoinSet::new();
    let refused = pipeline
        .spawn_workers(schemes, stage, workers, shutdown, &mut tasks)
        .await;
    let depths = watch_queue_depths(
        Arc::clone(&pipeline.bus),
        pipeline.alerts.clone(),
        schemes,
        shutdown.clone(),
    );
    crate::metrics::global().set_ready(true);
    tracing::info!(
        stage = stage.as_str(),
        schemes = schemes.len() - refused.len(),
        workers,
        "consuming"
    );
    let mut stopped = Vec::new();
    if let Some(lost) = until_lost(&mut tasks, &mut stopped, shutdown).await? {
        // The other workers on this connection are stuck with it: stop them all.
        tasks.shutdown().await;
        depths.abort();
        return Ok(Some(lost));
    }
    depths.abort();
    crate::metrics::global().set_ready(false);
    let failed = refused.len() + stopped.len();
    if failed > 0 && failed >= schemes.len() {
        anyhow::bail!("every scheme stopped on a configuration error (see above)");
    }
    Ok(None)
}
