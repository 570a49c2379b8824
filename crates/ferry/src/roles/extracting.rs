//! Extracting: `ferry extract`, every scheme's schedule until shutdown, or each scheme once,
//! inside the role [`Supervisor`].
//! The extraction itself is [`super::extract::Extractor`].

use std::sync::Arc;

use ferry_core::FerryError;
use ferry_core::files::SchemeFile;

use super::extract::{Extracted, owner_name};
use super::report::resumed_note;
use super::supervisor::{ONCE_RECONNECTS, Session, Supervisor};
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

/// `ferry extract [--once | --run-now]`, inside the role [`Supervisor`]. A run that a lost
/// connection interrupted resumes on the new one, after its last confirmed page.
pub async fn extract(
    app: Arc<App>,
    schemes: Vec<SchemeFile>,
    when: When,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // One lease owner for the process, kept across fresh connections.
    let owner = owner_name();
    let supervisor = Supervisor::new(app, "extract", &schemes, &shutdown);
    if when != When::Once {
        // The schemes still to run at start (`--run-now`).
        let mut run_now = match when {
            When::NowThenScheduled => schemes.clone(),
            _ => Vec::new(),
        };
        supervisor
            .run(async |pipeline| {
                crate::metrics::global().set_ready(true);
                let extractor = Arc::new(pipeline.extractor(&owner));
                // A failure is logged and alerted like a scheduled run's; the schedules go on.
                while let Some(scheme) = run_now.first() {
                    if shutdown.is_set() {
                        break;
                    }
                    let result = extractor.run_once(scheme, &shutdown).await;
                    if let Err(e) = &result
                        && pipeline.bus.is_lost()
                        && !shutdown.is_set()
                    {
                        return Ok(Session::Lost(e.to_string()));
                    }
                    log_run_now(&scheme.scheme.name, result);
                    run_now.remove(0);
                }
                // A run in progress stops when the connection is given up; the next one resumes it.
                Arc::clone(&extractor)
                    .follow_schedules(schemes.clone(), shutdown.clone())
                    .await;
                Ok(Session::Done(()))
            })
            .await?;
        return Ok(());
    }
    let mut failures = Vec::new();
    // How many schemes are done with (extracted, skipped or failed), kept across connections.
    let mut done = 0;
    let ended = supervisor
        .at_most(ONCE_RECONNECTS)
        .run(async |pipeline| {
            crate::metrics::global().set_ready(true);
            let extractor = pipeline.extractor(&owner);
            for scheme in &schemes[done..] {
                let result = extractor.run_once(scheme, &shutdown).await;
                if let Err(e) = &result
                    && pipeline.bus.is_lost()
                    && !shutdown.is_set()
                {
                    return Ok(Session::Lost(e.to_string()));
                }
                done += 1;
                if let Some(failed) = print_once(&scheme.scheme.name, result) {
                    failures.push(failed);
                }
            }
            Ok(Session::Done(()))
        })
        .await?;
    match ended {
        Some(((), pipeline)) => pipeline.alerts.flush().await,
        // A shutdown while connecting afresh: the schemes not extracted yet failed.
        None => {
            for scheme in &schemes[done..] {
                let e = FerryError::transient(
                    "interrupted by shutdown while connecting to RabbitMQ afresh; the next run \
                     resumes it",
                );
                if let Some(failed) = print_once(&scheme.scheme.name, Err(e)) {
                    failures.push(failed);
                }
            }
        }
    }
    // The last line names every failed scheme and why, so a supervisor's log tail says it all.
    anyhow::ensure!(
        failures.is_empty(),
        "{} scheme(s) failed to extract: {}",
        failures.len(),
        failures.join("; ")
    );
    Ok(())
}

/// Log how a `--run-now` run at start ended.
fn log_run_now(name: &str, result: Result<Option<Extracted>, FerryError>) {
    match result {
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

/// Print how a `--once` extraction ended; the failure's summary for the last line, if it failed.
fn print_once(name: &str, result: Result<Option<Extracted>, FerryError>) -> Option<String> {
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
        Ok(None) => println!("{name}: skipped, another extractor is running it"),
        Err(e) => {
            eprintln!("{name}: extraction failed ({}): {e}", e.class());
            return Some(format!("{name} ({}: {e})", e.class()));
        }
    }
    None
}
