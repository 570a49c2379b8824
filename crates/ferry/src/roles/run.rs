//! Starting the consuming stages, and `ferry run`: all three roles in one process.
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

use anyhow::Context as _;
use ferry_bus::{Bus, BusError, Stage};
use ferry_core::FerryError;
use ferry_core::load::LoadedScheme;
use ferry_state::{RunStatus, RunSummary, State};
use tokio::task::JoinSet;

use super::extract::{Extracted, Extractor, owner_name};
use super::load::LoadHandler;
use super::transform::{DEFAULT_LOAD_BATCH, TransformHandler, Transformer, absent_note};
use super::worker::{Handler, Stopped, Worker};
use crate::alerts::{Alert, Alerts, Kind};
use crate::app::App;
use crate::connections::Connections;
use crate::shutdown::{self, Shutdown};

/// The shared handles every role uses.
pub struct Pipeline {
    pub app: Arc<App>,
    pub bus: Arc<Bus>,
    pub state: State,
    pub connections: Arc<Connections>,
    pub alerts: Alerts,
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
        })
    }

    /// An extractor on this pipeline's connection, taking leases as `owner`.
    fn extractor(&self, owner: &str) -> Extractor {
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
    async fn replace(
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
                    // The same alerts (and their deliveries under way) go on.
                    pipeline.alerts = self.alerts.clone();
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
fn record_end(
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

/// `ferry transform` / `ferry load`: consume until shutdown. When the connection is given up
/// (lapin's recovery did not get it back within `[broker] recovery_wait_secs`), the workers stop,
/// the role connects afresh in the same process and starts them again; the broker redelivers what
/// they had not acknowledged.
pub async fn consume(
    app: Arc<App>,
    schemes: Vec<LoadedScheme>,
    stage: Stage,
    workers: u16,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let role = stage.as_str();
    let mut pipeline = Pipeline::connect(Arc::clone(&app), role, &schemes).await?;
    loop {
        let ended = consume_on(&pipeline, &schemes, stage, workers, &shutdown).await;
        let lost = match ended {
            Ok(Some(lost)) => lost,
            Ok(None) | Err(_) => {
                pipeline.alerts.flush().await;
                return ended.map(|_| ());
            }
        };
        pipeline = match pipeline.replace(role, &schemes, &shutdown, &lost).await? {
            Some(pipeline) => pipeline,
            None => return Ok(()),
        };
    }
}

/// Consume on one connection until shutdown (`None`) or until it is given up (`Some`).
async fn consume_on(
    pipeline: &Pipeline,
    schemes: &[LoadedScheme],
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

/// Wait for the workers: `Some` as soon as one gives its connection up (outside a shutdown),
/// `None` once every one has ended. Configuration stops are collected in `stopped`.
async fn until_lost(
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
fn gave_up(
    joined: &Result<WorkerEnd, tokio::task::JoinError>,
    shutdown: &Shutdown,
) -> Option<BusError> {
    match joined {
        Ok((_, _, Err(e))) if e.is_lost() && !shutdown.is_set() => Some(e.clone()),
        _ => None,
    }
}

/// Seconds between queue-depth samples for the `ferry_queue_messages` gauge.
pub const QUEUE_DEPTH_EVERY_SECS: u64 = 5;

/// Sample the schemes' queue depths into the metrics until shutdown, and raise or clear the
/// dead-letter alert of each scheme against `[alerts] dead_letters`.
fn watch_queue_depths(
    bus: Arc<Bus>,
    alerts: Alerts,
    schemes: &[LoadedScheme],
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let names: Vec<String> = schemes.iter().map(|s| s.scheme.name.clone()).collect();
    tokio::spawn(async move {
        loop {
            for scheme in &names {
                if let Ok(depths) = bus.queue_depths(scheme).await {
                    for q in depths.iter().filter(|q| q.exists) {
                        crate::metrics::global().set_queue_depth(
                            scheme,
                            &q.queue,
                            u64::from(q.messages),
                        );
                    }
                    dead_letter_alert(&alerts, scheme, &depths);
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_secs(QUEUE_DEPTH_EVERY_SECS)) => {}
            }
        }
    })
}

/// Raise the dead-letter alert of `scheme` when its DLQs hold `[alerts] dead_letters` messages or
/// more, clear it when they hold fewer.
fn dead_letter_alert(alerts: &Alerts, scheme: &str, depths: &[ferry_bus::QueueDepth]) {
    let Some(threshold) = alerts.dead_letter_threshold() else {
        return;
    };
    let by_stage: Vec<(Stage, u64)> = [Stage::Transform, Stage::Load]
        .into_iter()
        .map(|stage| {
            let dlq = ferry_bus::names::dlq(scheme, stage);
            let n = depths
                .iter()
                .filter(|q| q.exists && q.queue == dlq)
                .map(|q| u64::from(q.messages))
                .sum();
            (stage, n)
        })
        .collect();
    let total: u64 = by_stage.iter().map(|(_, n)| n).sum();
    if total < threshold {
        alerts.clear(
            scheme,
            Kind::DeadLetters,
            None,
            Some(format!("死信 {total} 条，低于阈值 {threshold}")),
        );
        return;
    }
    let counts: Vec<String> = by_stage
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(stage, n)| format!("{} 阶段 {n} 条", stage.as_str()))
        .collect();
    let mut alert = Alert::new(scheme, Kind::DeadLetters).line(
        "死信",
        format!("共 {total} 条（阈值 {threshold}）：{}", counts.join("，")),
    );
    for (stage, _) in by_stage.iter().filter(|(_, n)| *n > 0) {
        let stage = stage.as_str();
        alert = alert.line(
            "处理",
            format!(
                "`ferry replay --scheme {scheme} --stage {stage} --dry-run` 查看错误，修正原因后执行 \
                 `ferry replay --scheme {scheme} --stage {stage}`"
            ),
        );
    }
    alerts.raise(alert);
}

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

/// `ferry run` without `--once`: both stages' workers and every scheme's schedule in one process
/// until shutdown. A connection given up is replaced as in [`consume`]; an extraction in progress
/// then stops and its next run resumes it.
async fn run_forever(
    app: Arc<App>,
    schemes: Vec<LoadedScheme>,
    workers: u16,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    enum Ended {
        Workers(anyhow::Result<Option<BusError>>),
        Lost(BusError),
        Schedules,
    }
    let owner = owner_name();
    let mut pipeline = Pipeline::connect(Arc::clone(&app), "run", &schemes).await?;
    loop {
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
            lost = pipeline.bus.wait_lost() => Ended::Lost(lost),
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
            Ended::Lost(lost) => Some(lost),
            // A shutdown: the workers finish what they hold.
            Ended::Schedules => until_lost(&mut tasks, &mut stopped, &shutdown).await?,
        };
        depths.abort();
        let Some(lost) = lost else {
            for (scheme, e) in once_per_scheme(stopped) {
                eprintln!("{scheme}: stopped: {e}");
            }
            return Ok(());
        };
        tasks.shutdown().await;
        pipeline = match pipeline.replace("run", &schemes, &shutdown, &lost).await? {
            Some(pipeline) => pipeline,
            None => return Ok(()),
        };
    }
}

/// The exit code of `ferry run --once` when the run finished but records were dead-lettered.
pub const EXIT_DEAD_LETTERS: u8 = 3;

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
}

/// `ferry run`: all roles in one process.
pub async fn run(
    app: Arc<App>,
    schemes: Vec<LoadedScheme>,
    options: RunOptions,
    shutdown: Shutdown,
) -> anyhow::Result<ExitCode> {
    let RunOptions {
        once,
        workers,
        timeout,
        allow_dead_letters,
    } = options;
    if !once {
        run_forever(app, schemes, workers, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut pipeline = Pipeline::connect(Arc::clone(&app), "run", &schemes).await?;
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
    let mut extracted: Vec<(LoadedScheme, Result<Option<Extracted>, FerryError>)> = Vec::new();
    let mut reconnects = 0;
    let (settled, stopped) = loop {
        let mut tasks = JoinSet::new();
        let mut refused = Vec::new();
        for stage in [Stage::Transform, Stage::Load] {
            refused.extend(
                pipeline
                    .spawn_workers(&schemes, stage, workers, &worker_shutdown, &mut tasks)
                    .await,
            );
        }
        let depths = watch_queue_depths(
            Arc::clone(&pipeline.bus),
            pipeline.alerts.clone(),
            &schemes,
            worker_shutdown.clone(),
        );
        crate::metrics::global().set_ready(true);
        let extractor = pipeline.extractor(&owner);
        let mut lost = None;
        for scheme in &schemes {
            let name = &scheme.scheme.name;
            if extracted.iter().any(|(s, _)| &s.scheme.name == name) {
                continue;
            }
            if let Some((_, reason)) = refused.iter().find(|(s, _)| s == name) {
                let reason = FerryError::config(reason.to_string());
                extracted.push((scheme.clone(), Err(reason)));
                continue;
            }
            let result = extractor.run_once(scheme, &shutdown).await;
            if let Err(e) = &result
                && pipeline.bus.is_lost()
                && !shutdown.is_set()
            {
                lost = Some(e.to_string());
                break;
            }
            extracted.push((scheme.clone(), result));
        }
        if lost.is_none() {
            match wait_until_settled(&pipeline, &extracted, &mut tasks, deadline, &shutdown).await {
                Ok(Settle::Done(settled, mut stopped)) => {
                    stop_workers.fire();
                    stopped.extend(join_workers(&mut tasks).await?);
                    depths.abort();
                    break (settled, stopped);
                }
                Ok(Settle::Lost(e)) => lost = Some(e.to_string()),
                Err(e) => {
                    stop_workers.fire();
                    let _ = join_workers(&mut tasks).await;
                    return Err(e);
                }
            }
        }
        let lost = lost.unwrap_or_default();
        tasks.shutdown().await;
        depths.abort();
        reconnects += 1;
        anyhow::ensure!(
            reconnects <= ONCE_RECONNECTS,
            "gave the RabbitMQ connection up {reconnects} times: {lost}"
        );
        pipeline = match pipeline.replace("run", &schemes, &shutdown, &lost).await? {
            Some(pipeline) => pipeline,
            None => anyhow::bail!("stopped while connecting to RabbitMQ afresh"),
        };
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

/// One line per placeholder that named a field absent from records of the run:
/// `contacts: {nmae}: absent in all 5 records (rendered as null)`.
async fn absent_lines(state: &State, name: &str, run: &RunSummary) -> Vec<String> {
    let absent = match state.absent_fields(&run.run_id).await {
        Ok(absent) => absent,
        Err(e) => {
            tracing::warn!(scheme = name, error = %e, "could not read the run's absent fields");
            return Vec::new();
        }
    };
    absent
        .into_iter()
        .map(|(placeholder, records)| {
            format!(
                "{name}: {}",
                absent_note(&placeholder, records, run.records)
            )
        })
        .collect()
}

/// The first configuration stop of each scheme (its transform and load workers may each report
/// the same error), in order.
fn once_per_scheme(stopped: Vec<(String, FerryError)>) -> Vec<(String, FerryError)> {
    let mut out: Vec<(String, FerryError)> = Vec::new();
    for (scheme, e) in stopped {
        if !out.iter().any(|(s, _)| *s == scheme) {
            out.push((scheme, e));
        }
    }
    out
}

fn summary_line(name: &str, x: &Extracted, run: &RunSummary, always: &[&str]) -> String {
    let secs = run
        .finished_at
        .map(|f| (f - run.started_at).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(x.seconds)
        .max(0.001);
    format!(
        "{name}: {} pages, {} records: {} in {:.1} s ({:.0} records/s){}{}",
        run.pages,
        run.records,
        crate::counts::text(&run.counts, always),
        secs,
        run.records as f64 / secs,
        resumed_note(x),
        crate::counts::shared_id_note(run.shared_id)
    )
}

/// `, resumed after page N` for a run that continued an interrupted one.
fn resumed_note(x: &Extracted) -> String {
    x.resumed_after
        .map(|page| format!(", resumed after page {page}"))
        .unwrap_or_default()
}

/// How waiting for the runs ended: every run settled (with the schemes stopped on a
/// configuration error), or the connection was given up.
enum Settle {
    Done(HashMap<String, RunSummary>, Vec<(String, FerryError)>),
    Lost(BusError),
}

/// Poll the runs until each is `done`. A scheme whose worker stopped on a configuration error
/// cannot settle, so it stops the wait for that scheme; a lost broker ends the wait.
async fn wait_until_settled(
    pipeline: &Pipeline,
    extracted: &[(LoadedScheme, Result<Option<Extracted>, FerryError>)],
    tasks: &mut JoinSet<WorkerEnd>,
    deadline: Instant,
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
        let mut waiting = 0;
        for x in &runs {
            if done.contains_key(&x.run_id) || stopped.iter().any(|(s, _)| s == &x.scheme) {
                continue;
            }
            match state.run(&x.run_id).await? {
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
        if Instant::now() >= deadline {
            anyhow::bail!("runs did not settle before --timeout-secs; see `ferry status`");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
