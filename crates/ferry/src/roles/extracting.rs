//! Extracting: `ferry extract`, every scheme's schedule until shutdown, or each scheme once.
//! The extraction itself is [`super::extract::Extractor`].

use std::sync::Arc;

use ferry_core::load::LoadedScheme;

use super::extract::owner_name;
use super::pipeline::{ONCE_RECONNECTS, Pipeline};
use super::report::resumed_note;
use crate::app::App;
use crate::shutdown::Shutdown;

/// When `ferry extract` runs the schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// On their cron schedules, until shutdown.
    Scheduled,
    /// Each once at start (`--run-now`), then on their schedules.
    NowThenScheduled,
    /// Each once, then exit (`--once`).
    Once,
}

/// `ferry extract [--once | --run-now]`.
pub async fn extract(
    app: Arc<App>,
    schemes: Vec<LoadedScheme>,
    when: When,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut pipeline = Pipeline::connect(Arc::clone(&app), "extract", &schemes).await?;
    // One lease owner for the process, kept across fresh connections.
    let owner = owner_name();
    crate::metrics::global().set_ready(true);
    if when == When::NowThenScheduled {
        // A failure is logged and alerted like a scheduled run's; the schedules go on.
        let extractor = pipeline.extractor(&owner);
        for scheme in &schemes {
            if shutdown.is_set() {
                break;
            }
            let name = scheme.scheme.name.as_str();
            match extractor.run_once(scheme, &shutdown).await {
                Ok(Some(x)) => tracing::info!(
                    scheme = name,
                    run = %x.run_id,
                    pages = x.pages,
                    records = x.records,
                    "--run-now: extracted"
                ),
                Ok(None) => {
                    tracing::info!(scheme = name, "--run-now: another extractor is running it")
                }
                Err(e) => {
                    tracing::error!(scheme = name, class = %e.class(), error = %e, "--run-now: run failed")
                }
            }
        }
    }
    if when != When::Once {
        loop {
            let extractor = Arc::new(pipeline.extractor(&owner));
            let bus = Arc::clone(&pipeline.bus);
            // A run in progress stops when the connection is given up; the next one resumes it.
            let lost = tokio::select! {
                () = extractor.follow_schedules(schemes.clone(), shutdown.clone()) => return Ok(()),
                lost = bus.wait_lost() => lost,
            };
            pipeline = match pipeline
                .replace("extract", &schemes, &shutdown, &lost)
                .await?
            {
                Some(pipeline) => pipeline,
                None => return Ok(()),
            };
        }
    }
    let mut failures = Vec::new();
    for scheme in &schemes {
        let mut reconnects = 0;
        let result = loop {
            let result = pipeline.extractor(&owner).run_once(scheme, &shutdown).await;
            let Err(err) = &result else { break result };
            if !pipeline.bus.is_lost() || shutdown.is_set() || reconnects == ONCE_RECONNECTS {
                break result;
            }
            reconnects += 1;
            pipeline = match pipeline
                .replace("extract", &schemes, &shutdown, err)
                .await?
            {
                Some(pipeline) => pipeline,
                None => break result,
            };
        };
        match result {
            Ok(Some(x)) => println!(
                "{}: extracted {} records in {} pages ({:.1} s), run {}{}",
                x.scheme,
                x.records,
                x.pages,
                x.seconds,
                x.run_id,
                resumed_note(&x)
            ),
            Ok(None) => println!(
                "{}: skipped, another extractor is running it",
                scheme.scheme.name
            ),
            Err(e) => {
                eprintln!(
                    "{}: extraction failed ({}): {e}",
                    scheme.scheme.name,
                    e.class()
                );
                failures.push(format!("{} ({}: {e})", scheme.scheme.name, e.class()));
            }
        }
    }
    pipeline.alerts.flush().await;
    // The last line names every failed scheme and why, so a supervisor's log tail says it all.
    anyhow::ensure!(
        failures.is_empty(),
        "{} scheme(s) failed to extract: {}",
        failures.len(),
        failures.join("; ")
    );
    Ok(())
}
