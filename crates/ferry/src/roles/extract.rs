//! `ferry extract`: page through each scheme's source and publish every page to
//! `ferry.<scheme>.transform`.
//!
//! One run of one scheme, in order:
//! 1. take the scheme's extract lease in the state database (replicas never run a scheme twice
//!    at once; a crashed holder's lease expires after [`LEASE_SECS`]);
//! 2. open the source with the run's clock and `LAST_SYNC_TIME` from the checkpoint;
//! 3. for each page: publish it and wait for the broker's confirm, then count it and move the
//!    cursor, in one transaction (a page is never counted before the broker has it);
//! 4. at the end, record the run's start as the next `LAST_SYNC_TIME`.
//!
//! A run that did not get to the end (its extractor was killed, lost the broker, or stopped on a
//! signal) is resumed by the next one: same run id, same clock and window, from the cursor after
//! its last confirmed page, so nothing is extracted twice but the one page that may have been in
//! flight (which counts once: its messages carry the same sequence number and record ids). Resuming
//! needs the same source settings; after a change the next run starts over and idCheck absorbs
//! the repeats.
//!
//! Transient source errors (network, throttling, 5xx) are retried with exponential backoff;
//! a configuration error fails the run at once with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono_tz::Tz;
use croner::Cron;
use ferry_bus::{Bus, Headers, Publisher, Stage, names};
use ferry_core::load::LoadedScheme;
use ferry_core::template::Context;
use ferry_core::{Envelope, ErrorClass, FerryError};
use ferry_state::{ConfirmedPage, Resume, State};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::connections::Connections;
use crate::shutdown::Shutdown;

/// Lifetime of the extract lease; renewed every third of it while a run goes on.
pub const LEASE_SECS: u64 = 60;
/// Seconds between progress lines during a long extraction.
pub const PROGRESS_EVERY_SECS: u64 = 5;
/// Attempts at one page before a transient source error fails the run.
pub const PAGE_ATTEMPTS: usize = 6;

/// What one run extracted.
#[derive(Clone, Debug)]
pub struct Extracted {
    pub scheme: String,
    pub run_id: String,
    pub pages: u64,
    pub records: u64,
    pub seconds: f64,
    /// The page an interrupted run was resumed after.
    pub resumed_after: Option<u64>,
}

pub struct Extractor {
    pub bus: Arc<Bus>,
    pub state: State,
    pub connections: Arc<Connections>,
    pub owner: String,
}

impl Extractor {
    /// `owner` names this process in the extract leases ([`owner_name`]).
    pub fn new(
        bus: Arc<Bus>,
        state: State,
        connections: Arc<Connections>,
        owner: String,
    ) -> Extractor {
        Extractor {
            bus,
            state,
            connections,
            owner,
        }
    }

    /// Run `scheme` once. `Ok(None)` when another extractor holds the scheme's lease.
    pub async fn run_once(
        &self,
        scheme: &LoadedScheme,
        shutdown: &Shutdown,
    ) -> Result<Option<Extracted>, FerryError> {
        let name = scheme.scheme.name.clone();
        let lease = format!("extract:{name}");
        let ttl = Duration::from_secs(LEASE_SECS);
        if !self.state.try_lock(&lease, &self.owner, ttl).await? {
            let holder = self.state.lock_holder(&lease).await?.unwrap_or_default();
            let taken = holder_is_dead(&holder)
                && self
                    .state
                    .take_over_lock(&lease, &holder, &self.owner, ttl)
                    .await?;
            if !taken {
                tracing::info!(scheme = %name, holder = %holder, "another extractor is running this scheme; skipped");
                return Ok(None);
            }
            tracing::warn!(scheme = %name, holder = %holder, "took over the lease of an extractor that died on this host");
        }
        // Renewed until this run ends, or its future is dropped (a connection given up).
        let renew = {
            let (state, lease, owner) = (self.state.clone(), lease.clone(), self.owner.clone());
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if let Err(e) = state.try_lock(&lease, &owner, ttl).await {
                        tracing::warn!(error = %e, "renewing the extract lease failed");
                    }
                }
            }))
        };
        let digest = source_digest(scheme);
        let resume = self.state.resume_run(&name, &digest).await?;
        let run_id = resume.as_ref().map_or_else(
            || uuid::Uuid::now_v7().to_string(),
            |r| r.run.run_id.clone(),
        );
        let span = tracing::info_span!(
            "ferry.extract",
            otel.name = %format!("extract {name}"),
            scheme = %name,
            run = %run_id,
            trace_id = tracing::field::Empty,
        );
        // A resumed run goes on in the trace its first attempt started.
        if let Some(parent) = resume.as_ref().and_then(|r| r.run.traceparent.as_deref()) {
            let _ = span.set_parent(ferry_bus::trace::from_traceparent(parent));
        }
        crate::telemetry::record_trace_id(&span);
        let result = self
            .extract(scheme, &run_id, (resume, &digest), shutdown, &span)
            .instrument(span.clone())
            .await;
        drop(renew);
        if let Err(e) = self.state.unlock(&lease, &self.owner).await {
            tracing::warn!(error = %e, "releasing the extract lease failed; it expires by itself");
        }
        result.map(Some)
    }

    async fn extract(
        &self,
        scheme: &LoadedScheme,
        run_id: &str,
        (resume, digest): (Option<Resume>, &str),
        shutdown: &Shutdown,
        span: &tracing::Span,
    ) -> Result<Extracted, FerryError> {
        let name = scheme.scheme.name.as_str();
        let tz: Tz = scheme.scheme.timezone.parse().map_err(|_| {
            FerryError::config(format!(
                "timezone: `{}` is not an IANA time zone",
                scheme.scheme.timezone
            ))
        })?;
        let started = Instant::now();
        // A resumed run keeps its clock: NOW() and the next LAST_SYNC_TIME are the first start's.
        let started_utc = match &resume {
            Some(resume) => {
                tracing::info!(
                    scheme = name,
                    run = run_id,
                    after_page = resume.run.pages,
                    records = resume.run.records,
                    cursor = %resume.cursor,
                    "resuming an interrupted run after its last confirmed page"
                );
                resume.run.started_at
            }
            None => {
                let now = chrono::Utc::now();
                let traceparent = ferry_bus::trace::traceparent(&span.context());
                self.state
                    .start_run(run_id, name, now, traceparent.as_deref())
                    .await?;
                now
            }
        };
        let checkpoint = self.state.checkpoint(name).await?;
        let mut ctx = Context::new(started_utc.with_timezone(&tz), tz);
        if let Some(last) = checkpoint.last_sync_time {
            ctx = ctx.with_last_sync(Some(last.with_timezone(&tz)));
        }
        let publisher = self.bus.publisher().await.map_err(bus_error)?;
        let outcome = self
            .pages(
                scheme,
                &RunIdentity {
                    run_id,
                    started,
                    trace: &span.context(),
                    digest,
                },
                resume.as_ref(),
                ctx,
                &publisher,
                shutdown,
            )
            .await;
        match outcome {
            Ok((pages, records)) => {
                self.state.end_extraction(run_id, None).await?;
                self.state.complete_sync(name, started_utc).await?;
                self.state.finish_if_settled(run_id).await?;
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    scheme = name,
                    run = run_id,
                    pages,
                    records,
                    seconds = format!("{seconds:.1}"),
                    "extracted"
                );
                Ok(Extracted {
                    scheme: name.to_string(),
                    run_id: run_id.to_string(),
                    pages,
                    records,
                    seconds,
                    resumed_after: resume.map(|r| r.run.pages.max(0) as u64),
                })
            }
            Err(err) => {
                let _ = self
                    .state
                    .end_extraction(run_id, Some(&err.to_string()))
                    .await;
                Err(err)
            }
        }
    }

    async fn pages(
        &self,
        scheme: &LoadedScheme,
        run: &RunIdentity<'_>,
        resume: Option<&Resume>,
        ctx: Context<'static>,
        publisher: &Publisher,
        shutdown: &Shutdown,
    ) -> Result<(u64, u64), FerryError> {
        let RunIdentity {
            run_id,
            started,
            trace,
            digest,
        } = *run;
        let name = scheme.scheme.name.as_str();
        let queue = names::work_queue(name, Stage::Transform);
        let mut source = self
            .connections
            .open_source(scheme, ctx, resume.map(|r| &r.cursor))
            .await?;
        // Counted over the whole run, a resumed one included; records/s over this attempt.
        let (mut pages, mut records) = resume.map_or((0, 0), |r| {
            (r.run.pages.max(0) as u64, r.run.records.max(0) as u64)
        });
        let (first_page, first_records) = (pages, records);
        let mut last_progress = Instant::now();
        loop {
            if shutdown.is_set() {
                return Err(FerryError::transient(format!(
                    "interrupted by shutdown after page {pages}; the next run resumes after it"
                )));
            }
            let mut backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(PAGE_ATTEMPTS - 1)
                .build();
            let page = loop {
                match source.next_page().await {
                    Ok(page) => break page,
                    Err(err) if err.class() == ErrorClass::Transient => {
                        let hint = match &err {
                            FerryError::Transient { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        match backoff.next() {
                            Some(delay) => {
                                let delay = hint.map_or(delay, |h| h.max(delay));
                                crate::metrics::global().add(
                                    crate::metrics::RETRIES,
                                    name,
                                    "extract",
                                    1,
                                );
                                tracing::warn!(scheme = name, page = pages + 1, error = %err, delay_ms = delay.as_millis() as u64, "page failed; retrying");
                                tokio::time::sleep(delay).await;
                            }
                            None => return Err(err),
                        }
                    }
                    Err(err) => return Err(err),
                }
            };
            let Some(page) = page else { break };
            let n = page.records.len() as u64;
            pages += 1;
            records += n;
            let envelope = Envelope {
                scheme: name.to_string(),
                run_id: run_id.to_string(),
                seq: pages,
                records: page.records,
            };
            let mut headers = Headers::new(name, run_id, Stage::Transform);
            ferry_bus::trace::inject(trace, &mut headers);
            tracing::debug!(page = pages, records = n, traceparent = ?headers.traceparent, "publishing page");
            publisher
                .publish(&queue, &envelope, &headers)
                .await
                .map_err(bus_error)?;
            // Only now, with the page safely in the broker, does the run count it.
            self.state
                .page_confirmed(&ConfirmedPage {
                    scheme: name,
                    run_id,
                    records: n,
                    cursor: page.cursor.as_ref(),
                    source_digest: digest,
                })
                .await?;
            crate::metrics::global().add(crate::metrics::PAGES, name, "extract", 1);
            crate::metrics::global().add(crate::metrics::RECORDS_OUT, name, "extract", n);
            if last_progress.elapsed() >= Duration::from_secs(PROGRESS_EVERY_SECS) {
                last_progress = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    scheme = name,
                    pages,
                    records,
                    records_per_sec = ((records - first_records) as f64 / secs) as u64,
                    "extracting"
                );
            }
        }
        if resume.is_some() {
            tracing::info!(
                scheme = name,
                pages = pages - first_page,
                records = records - first_records,
                "extracted the rest of the resumed run"
            );
        }
        Ok((pages, records))
    }

    /// Follow every scheme's cron schedule until shutdown.
    pub async fn follow_schedules(
        self: Arc<Self>,
        schemes: Vec<LoadedScheme>,
        mut shutdown: Shutdown,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for scheme in schemes {
            let Some(expr) = scheme.scheme.schedule.clone() else {
                tracing::info!(scheme = %scheme.scheme.name, "no schedule: runs only with --once");
                continue;
            };
            let (Ok(cron), Ok(tz)) = (expr.parse::<Cron>(), scheme.scheme.timezone.parse::<Tz>())
            else {
                tracing::error!(scheme = %scheme.scheme.name, schedule = %expr, "schedule or timezone does not parse; run `ferry lint`");
                continue;
            };
            let this = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tasks.spawn(async move { this.schedule_loop(scheme, cron, tz, shutdown).await });
        }
        shutdown.wait().await;
        tasks.shutdown().await;
    }

    async fn schedule_loop(
        &self,
        scheme: LoadedScheme,
        cron: Cron,
        tz: Tz,
        mut shutdown: Shutdown,
    ) {
        let name = scheme.scheme.name.clone();
        loop {
            let now = chrono::Utc::now().with_timezone(&tz);
            let Ok(next) = cron.find_next_occurrence(&now, false) else {
                tracing::error!(scheme = %name, "the schedule has no next occurrence");
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::info!(scheme = %name, next = %next.format("%Y-%m-%d %H:%M:%S %Z"), "next run scheduled");
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.run_once(&scheme, &shutdown).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(scheme = %name, class = %e.class(), error = %e, "run failed")
                }
            }
        }
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which run a page belongs to, when it started, and the trace its pages continue.
#[derive(Clone, Copy)]
struct RunIdentity<'a> {
    run_id: &'a str,
    started: Instant,
    trace: &'a opentelemetry::Context,
    /// Digest of the source settings, saved with each cursor.
    digest: &'a str,
}

/// Digest of what decides which records a source yields and in which order (its connection,
/// metadata and time zone): a saved cursor is resumed only under the same digest.
fn source_digest(scheme: &LoadedScheme) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(serde_json::to_vec(&scheme.scheme.source).unwrap_or_default());
    hash.update([0u8]);
    hash.update(scheme.scheme.timezone.as_bytes());
    ferry_core::sign::to_hex(&hash.finalize())
}

/// The lease owner of this process: `<host>-<pid>-<uuid>`.
pub fn owner_name() -> String {
    let host = host_name().unwrap_or_else(|| "ferry".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

/// This machine's (or container's) name, if it has one.
fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// True only when the holder ran on this host and its process is gone (a crashed extractor), so
/// its lease need not run out before a new run starts. Any doubt keeps the lease: no host name,
/// another host, a live pid.
fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, '-');
    let (Some(_uuid), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Some(ours)) = (pid.parse::<u32>(), host_name()) else {
        return false;
    };
    host == ours
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn bus_error(e: ferry_bus::BusError) -> FerryError {
    FerryError::transient(format!("RabbitMQ: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_on_this_host_loses_its_lease_early() {
        let host = host_name().expect("this machine has a host name (HOSTNAME or /etc/hostname)");
        let dead = {
            let mut child = std::process::Command::new("true")
                .spawn()
                .expect("spawn true");
            let pid = child.id();
            child.wait().expect("reap");
            pid
        };
        assert!(holder_is_dead(&format!("{host}-{dead}-0190abcd")));
        assert!(
            !holder_is_dead(&format!("{host}-1-0190abcd")),
            "pid 1 is alive"
        );
        assert!(
            !holder_is_dead(&format!("{host}-{}-0190abcd", std::process::id())),
            "ourselves"
        );
        assert!(
            !holder_is_dead(&format!("other-host-{dead}-0190abcd")),
            "another machine"
        );
        assert!(!holder_is_dead("garbage"));
        assert!(!holder_is_dead(""));
    }
}
