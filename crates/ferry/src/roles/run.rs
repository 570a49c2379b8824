//! `ferry run`: all three roles in one process, inside the role [`Supervisor`].
//!
//! `ferry run --once` starts transform and load workers, runs every selected scheme's extraction
//! once, then waits until each run has settled (every extracted record inserted, updated,
//! unchanged, kept, accepted, written, skipped, or dead-lettered), prints a summary and stops its
//! workers. Its exit code: 0 done; 1 fatal (a scheme failed or stopped on a configuration error);
//! [`EXIT_DEAD_LETTERS`] when the run finished but records were dead-lettered.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_bus::{BusError, Stage};
use ferry_core::FerryError;
use ferry_core::files::SchemeFile;
use ferry_state::{RunStatus, RunSummary};
use tokio::task::JoinSet;

use super::extract::{Extracted, owner_name};
use super::outage::{Down, Side};
use super::pipeline::{Pipeline, WorkerEnd, gave_up, join_workers, record_end, until_lost};
use super::report::{
    absent_lines, dead_letter_alert, once_per_scheme, summary_line, watch_queue_depths,
};
use super::supervisor::{ONCE_RECONNECTS, Session, Supervisor};
use crate::app::App;
use crate::shutdown::{self, Shutdown};

/// `ferry run` without `--once`: both stages' workers and every scheme's schedule in one process
/// until shutdown, inside the role [`Supervisor`]. After a lost connection everything starts
/// again on a fresh one; an extraction in progress then stops and its next run resumes it.
async fn run_forever(
    app: Arc<App>,
    schemes: Vec<SchemeFile>,
    workers: u16,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    enum Ended {
        Workers(anyhow::Result<Option<BusError>>),
        Schedules,
    }
    let owner = owner_name();
    let supervisor = Supervisor::new(app, "run", &schemes, &shutdown);
    supervisor
        .run(async |pipeline| {
            let mut tasks = JoinSet::new();
            for stage in [Stage::Transform, Stage::Load] {
                pipeline
                    .spawn_workers(&schemes, stage, workers, &shutdown, &mut tasks)
                    .await;
            }
            let depths = watch_queue_depths(
                Arc::clone(&pipeline.bus),
                pipeline.alerts.clone(),
                &schemes,
                shutdown.clone(),
            );
            crate::metrics::global().set_ready(true);
            let extractor = Arc::new(pipeline.extractor(&owner));
            let schedules = extractor.follow_schedules(schemes.clone(), shutdown.clone());
            tokio::pin!(schedules);
            let mut stopped = Vec::new();
            let ended = tokio::select! {
                ended = until_lost(&mut tasks, &mut stopped, &shutdown) => Ended::Workers(ended),
                () = &mut schedules => Ended::Schedules,
            };
            let lost = match ended {
                Ended::Workers(ended) => match ended? {
                    Some(lost) => Some(lost),
                    // Every worker stopped on a configuration error: the schedules go on.
                    None => {
                        schedules.await;
                        None
                    }
                },
                // A shutdown: the workers finish what they hold.
                Ended::Schedules => until_lost(&mut tasks, &mut stopped, &shutdown).await?,
            };
            depths.abort();
            if let Some(lost) = lost {
                tasks.shutdown().await;
                return Ok(Session::Lost(lost.to_string()));
            }
            for (scheme, e) in once_per_scheme(stopped) {
                eprintln!("{scheme}: stopped: {e}");
            }
            Ok(Session::Done(()))
        })
        .await?;
    Ok(())
}

/// The exit code of `ferry run --once` when the run finished but records were dead-lettered.
pub const EXIT_DEAD_LETTERS: u8 = 3;

/// The exit code of `ferry run --once` when a scheme's target stayed down longer than
/// `--outage-limit-secs`: its messages are still queued, and the next run (or `ferry load`)
/// takes them once it answers.
pub const EXIT_SERVICE_DOWN: u8 = 4;

/// How `ferry run` runs.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Run each scheme once and exit (`--once`).
    pub once: bool,
    /// Consumers per scheme and stage.
    pub workers: u16,
    /// With `once`: how long to wait for the runs to settle.
    pub timeout: Duration,
    /// With `once`: exit 0 even when records were dead-lettered.
    pub allow_dead_letters: bool,
    /// With `once`: how long to wait for a target that does not answer before exiting with
    /// [`EXIT_SERVICE_DOWN`].
    pub outage_limit: Duration,
}

/// `ferry run`: all roles in one process.
pub async fn run(
    app: Arc<App>,
    schemes: Vec<SchemeFile>,
    options: RunOptions,
    shutdown: Shutdown,
) -> anyhow::Result<ExitCode> {
    let RunOptions {
        once,
        workers,
        timeout,
        allow_dead_letters,
        outage_limit,
    } = options;
    if !once {
        run_forever(app, schemes, workers, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    }
    // The workers stop on our own trigger (after --once settles) or on a signal.
    let (stop_workers, worker_shutdown) = shutdown::channel();
    {
        let (stop, mut outer) = (stop_workers.clone(), shutdown.clone());
        tokio::spawn(async move {
            outer.wait().await;
            stop.fire();
        });
    }
    let owner = owner_name();
    let deadline = Instant::now() + timeout;
    // Each scheme's extraction, kept across fresh connections: a scheme whose extraction the lost
    // connection interrupted is extracted again (which resumes its run), the others are not.
    let mut extracted: Vec<(SchemeFile, Result<Option<Extracted>, FerryError>)> = Vec::new();
    let supervisor =
        Supervisor::new(Arc::clone(&app), "run", &schemes, &shutdown).at_most(ONCE_RECONNECTS);
    let ended = supervisor
        .run(async |pipeline| {
            let mut tasks = JoinSet::new();
            let mut refused = Vec::new();
            for stage in [Stage::Transform, Stage::Load] {
                refused.extend(
                    pipeline
                        .spawn_workers(&schemes, stage, workers, &worker_shutdown, &mut tasks)
                        .await,
                );
            }
            let _depths = watch_queue_depths(
                Arc::clone(&pipeline.bus),
                pipeline.alerts.clone(),
                &schemes,
                worker_shutdown.clone(),
            );
            crate::metrics::global().set_ready(true);
            let extractor = pipeline.extractor(&owner);
            for scheme in &schemes {
                let name = &scheme.scheme.name;
                if extracted.iter().any(|(s, _)| &s.scheme.name == name) {
                    continue;
                }
                if let Some((_, reason)) = refused.iter().find(|(s, _)| s == name) {
                    extracted.push((scheme.clone(), Err(reason.clone())));
                    continue;
                }
                let result = extractor.run_once(scheme, &shutdown).await;
                if let Err(e) = &result
                    && pipeline.bus.is_lost()
                    && !shutdown.is_set()
                {
                    tasks.shutdown().await;
                    return Ok(Session::Lost(e.to_string()));
                }
                extracted.push((scheme.clone(), result));
            }
            let limits = Limits {
                deadline,
                outage: outage_limit,
            };
            match wait_until_settled(pipeline, &extracted, &mut tasks, limits, &shutdown).await {
                Ok(Settle::Done(settled, mut stopped)) => {
                    stop_workers.fire();
                    stopped.extend(join_workers(&mut tasks).await?);
                    Ok(Session::Done(Once::Settled(settled, stopped)))
                }
                Ok(Settle::Lost(e)) => {
                    tasks.shutdown().await;
                    Ok(Session::Lost(e.to_string()))
                }
                Ok(Settle::Down(downs)) => {
                    // The workers put the messages they hold back in their queues.
                    stop_workers.fire();
                    let _ = join_workers(&mut tasks).await;
                    for (scheme, side, down) in &downs {
                        println!(
                            "{scheme}: {} down since {} ({} s, longer than --outage-limit-secs \
                             {}): {}; its messages stay queued for the next run",
                            side.as_str(),
                            down.since.format("%Y-%m-%d %H:%M:%S UTC"),
                            down.started.elapsed().as_secs(),
                            outage_limit.as_secs(),
                            down.error
                        );
                    }
                    pipeline.alerts.flush().await;
                    Ok(Session::Done(Once::Down))
                }
                Err(e) => {
                    stop_workers.fire();
                    let _ = join_workers(&mut tasks).await;
                    Err(e)
                }
            }
        })
        .await?;
    let (settled, stopped, pipeline) = match ended {
        Some((Once::Settled(settled, stopped), pipeline)) => (settled, stopped, pipeline),
        Some((Once::Down, _)) => {
            eprintln!(
                "ferry: gave up waiting for a service that does not answer (exit \
                 {EXIT_SERVICE_DOWN}); nothing was dead-lettered"
            );
            return Ok(ExitCode::from(EXIT_SERVICE_DOWN));
        }
        None => anyhow::bail!("stopped while connecting to RabbitMQ afresh"),
    };

    let stopped = once_per_scheme(stopped);
    let mut fatal = 0;
    // (scheme, run) of the runs that dead-lettered records.
    let mut dead = Vec::new();
    for (scheme, result) in &extracted {
        let name = &scheme.scheme.name;
        if let Some((_, e)) = stopped.iter().find(|(s, _)| s == name) {
            fatal += 1;
            println!("{name}: stopped: {e}");
            continue;
        }
        match result {
            Ok(Some(x)) => match settled.get(&x.run_id) {
                Some(run) => {
                    let always = crate::counts::always_shown(&app, scheme);
                    println!("{}", summary_line(name, x, run, &always));
                    for line in absent_lines(&pipeline.state, name, run).await {
                        println!("{line}");
                    }
                    if run.counts.dead > 0 {
                        dead.push((name.clone(), run.run_id.clone(), run.counts.dead));
                    }
                }
                None => {
                    fatal += 1;
                    println!("{name}: did not settle");
                }
            },
            Ok(None) => println!("{name}: skipped, another extractor is running it"),
            Err(e) => {
                fatal += 1;
                println!("{name}: failed ({}): {e}", e.class());
            }
        }
    }
    for (scheme, e) in &stopped {
        if !extracted.iter().any(|(s, _)| &s.scheme.name == scheme) {
            fatal += 1;
            println!("{scheme}: stopped: {e}");
        }
    }
    // The dead letters as they stand now (the sampler may not have looked since the run ended),
    // then whatever alerts are still being sent, before the process exits.
    for scheme in &schemes {
        if let Ok(depths) = pipeline.bus.queue_depths(&scheme.scheme.name).await {
            dead_letter_alert(&pipeline.alerts, &scheme.scheme.name, &depths);
        }
    }
    pipeline.alerts.flush().await;
    anyhow::ensure!(fatal == 0, "{fatal} scheme(s) failed");
    if dead.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut total = 0;
    for (name, run_id, count) in &dead {
        total += count;
        // By stage, from the state database; should that fail, the load, where most fail.
        let stages = match pipeline.state.dead_by_stage(run_id).await {
            Ok(stages) if !stages.is_empty() => stages,
            _ => vec![("load".to_string(), *count)],
        };
        for (stage, count) in stages {
            println!(
                "{name}: {count} record(s) dead-lettered; fix the cause, then replay them: \
                 ferry replay --scheme {name} --stage {stage}"
            );
        }
    }
    if allow_dead_letters {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "ferry: the run finished, but {total} record(s) were dead-lettered (exit \
         {EXIT_DEAD_LETTERS}; --allow-dead-letters exits 0)"
    );
    Ok(ExitCode::from(EXIT_DEAD_LETTERS))
}

/// How waiting for the runs ended: every run settled (with the schemes stopped on a
/// configuration error), or the connection was given up.
enum Settle {
    Done(HashMap<String, RunSummary>, Vec<(String, FerryError)>),
    Lost(BusError),
    Down(Vec<(String, Side, Down)>),
}

/// How `ferry run --once`'s wait ended: every run settled (with the schemes stopped on a
/// configuration error), or a service stayed down longer than `--outage-limit-secs` (reported).
enum Once {
    Settled(HashMap<String, RunSummary>, Vec<(String, FerryError)>),
    Down,
}

/// How long `run --once` waits: for everything, and for a service that does not answer.
#[derive(Clone, Copy)]
struct Limits {
    deadline: Instant,
    outage: Duration,
}

/// Poll the runs until each is `done`. A scheme whose worker stopped on a configuration error
/// cannot settle, so it stops the wait for that scheme; a lost broker ends the wait.
async fn wait_until_settled(
    pipeline: &Pipeline,
    extracted: &[(SchemeFile, Result<Option<Extracted>, FerryError>)],
    tasks: &mut JoinSet<WorkerEnd>,
    limits: Limits,
    shutdown: &Shutdown,
) -> anyhow::Result<Settle> {
    let state = &pipeline.state;
    let runs: Vec<&Extracted> = extracted
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().and_then(|x| x.as_ref()))
        .collect();
    let mut done = HashMap::new();
    let mut stopped: Vec<(String, FerryError)> = Vec::new();
    let mut last_progress = Instant::now();
    loop {
        while let Some(joined) = tasks.try_join_next() {
            if let Some(lost) = gave_up(&joined, shutdown) {
                return Ok(Settle::Lost(lost));
            }
            record_end(joined, &mut stopped)?;
        }
        if pipeline.bus.is_lost() && !shutdown.is_set() {
            return Ok(Settle::Lost(pipeline.bus.wait_lost().await));
        }
        let report = last_progress.elapsed() >= Duration::from_secs(5);
        if report {
            last_progress = Instant::now();
        }
        let downs = pipeline.outages.current();
        if report {
            for (scheme, side, down) in &downs {
                tracing::warn!(
                    scheme = %scheme,
                    since = %down.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    down_secs = down.started.elapsed().as_secs(),
                    limit_secs = limits.outage.as_secs(),
                    error = %down.error,
                    "waiting for the {} to answer; its messages stay queued",
                    side.as_str()
                );
            }
        }
        if downs
            .iter()
            .any(|(_, _, d)| d.started.elapsed() >= limits.outage)
        {
            return Ok(Settle::Down(downs));
        }
        let mut waiting = 0;
        for x in &runs {
            if done.contains_key(&x.run_id) || stopped.iter().any(|(s, _)| s == &x.scheme) {
                continue;
            }
            // A state database restarted meanwhile is waited for, not the end of the run.
            let run =
                super::state_wait::patiently("reading a run's progress", || state.run(&x.run_id))
                    .await?;
            match run {
                Some(run) if run.status == RunStatus::Done => {
                    done.insert(x.run_id.clone(), run);
                }
                Some(run) => {
                    waiting += 1;
                    if report {
                        tracing::info!(scheme = %x.scheme, settled = run.settled(), records = run.records, "loading");
                    }
                }
                None => waiting += 1,
            }
        }
        if waiting == 0 || shutdown.is_set() {
            return Ok(Settle::Done(done, stopped));
        }
        if Instant::now() >= limits.deadline {
            anyhow::bail!("runs did not settle before --timeout-secs; see `ferry status`");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
