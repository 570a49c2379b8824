//! `ferry extract`: page through each scheme's source and publish every page to
//! `ferry.<scheme>.transform`.
//!
//! One run of one scheme, in order:
//! 1. take the scheme's extract lease in the state database (replicas never run a scheme twice
//!    at once; a crashed holder's lease expires after [`LEASE_SECS`]);
//! 2. open the source with the run's clock and, from the checkpoint, `LAST_SYNC_TIME` and
//!    `LAST_CURSOR`, both moved back by the overlap. A MySQL source's run goes by the
//!    source's own clock (`NOW(6)` on the source, in its session time zone), so its windows
//!    compare with the table's own timestamps; other sources go by Ferry's clock in the
//!    scheme's zone;
//! 3. for each page: publish it and wait for the broker's confirm, then count it and move the
//!    cursor (and the largest `cursor_field` value seen so far), in one transaction (a page is
//!    never counted before the broker has it);
//! 4. at the end, record the run's start as the next `LAST_SYNC_TIME` and the largest
//!    `cursor_field` value as the next `LAST_CURSOR` (a run that saw none keeps the last), in
//!    the transaction that ends the run's extraction.
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
use ferry_core::files::SchemeFile;
use ferry_core::template::{Context, CursorValue};
use ferry_core::{Envelope, ErrorClass, FerryError};
use ferry_state::{ConfirmedPage, Resume, State};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::state_wait::patiently;
use crate::alerts::{Alert, Alerts, Kind};
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
    pub alerts: Alerts,
}

impl Extractor {
    /// `owner` names this process in the extract leases ([`owner_name`]).
    pub fn new(
        bus: Arc<Bus>,
        state: State,
        connections: Arc<Connections>,
        owner: String,
        alerts: Alerts,
    ) -> Extractor {
        Extractor {
            bus,
            state,
            connections,
            owner,
            alerts,
        }
    }

    /// Run `scheme` once. `Ok(None)` when another extractor holds the scheme's lease.
    pub async fn run_once(
        &self,
        scheme: &SchemeFile,
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
        scheme: &SchemeFile,
        run_id: &str,
        (resume, digest): (Option<Resume>, &str),
        shutdown: &Shutdown,
        span: &tracing::Span,
    ) -> Result<Extracted, FerryError> {
        let name = scheme.scheme.name.as_str();
        let tz = scheme.timezone;
        let started = Instant::now();
        let clock = self.connections.source_clock(scheme).await?;
        // A resumed run keeps its clock: NOW() and the next LAST_SYNC_TIME are the first start's.
        // The run's `started_at` is on Ferry's clock; its window starts on the source's.
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
                resume.window_start.unwrap_or(resume.run.started_at)
            }
            None => {
                let now = chrono::Utc::now();
                let traceparent = ferry_bus::trace::traceparent(&span.context());
                self.state
                    .start_run(run_id, name, now, traceparent.as_deref())
                    .await?;
                clock.map_or(now, |c| c.utc)
            }
        };
        let checkpoint = self.state.checkpoint(name).await?;
        let window = Window::new(scheme, tz, clock.as_ref());
        let ctx = window.context(started_utc, &checkpoint)?;
        let mut data_cursor = DataCursor::new(window.cursor_field.clone(), window.tz);
        if let Some(seen) = resume.as_ref().and_then(|r| r.data_cursor.as_ref()) {
            data_cursor.observe(seen, || "the resumed run's saved cursor".into())?;
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
                    window_start: started_utc,
                    resume: resume.as_ref(),
                },
                ctx,
                &mut data_cursor,
                &publisher,
                shutdown,
            )
            .await;
        match outcome {
            Ok((pages, records)) => {
                if let Some(field) = &data_cursor.field
                    && data_cursor.seen == 0
                    && data_cursor.max().is_none()
                    && records > 0
                {
                    tracing::warn!(
                        scheme = name,
                        cursor_field = %field,
                        records,
                        "no record had a value of the cursor_field; LAST_CURSOR stays where it was, \
                         so the next run reads the same window again"
                    );
                }
                for kind in [Kind::RunFailed, Kind::SourceFailing] {
                    self.alerts.clear(
                        name,
                        kind,
                        None,
                        Some(format!(
                            "运行 {run_id} 已完成抽取：{pages} 页，{records} 条"
                        )),
                    );
                }
                self.alerts.clear(
                    name,
                    Kind::Stopped,
                    Some("extract"),
                    Some(format!("运行 {run_id} 已完成抽取")),
                );
                patiently("recording the complete extraction", || {
                    self.state
                        .extraction_complete(run_id, name, started_utc, data_cursor.max())
                })
                .await?;
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
                self.alert_failure(name, run_id, &err, shutdown);
                Err(err)
            }
        }
    }

    /// Raise the alert for an extraction of `name` that failed with `err`: a configuration error
    /// stops the scheme, a source that failed past its retries keeps failing, anything else failed
    /// the run. A shutdown or a lost broker (the broker alert covers it) raises nothing.
    fn alert_failure(&self, name: &str, run_id: &str, err: &FerryError, shutdown: &Shutdown) {
        if shutdown.is_set() || self.bus.is_lost() {
            return;
        }
        let alert = match err.class() {
            ErrorClass::Config => {
                super::worker::stopped_alert(name, "extract", run_id, err)
            }
            ErrorClass::Transient => Alert::new(name, Kind::SourceFailing)
                .line("运行", run_id)
                .line("错误", err.to_string())
                .line("重试", format!("每页 {PAGE_ATTEMPTS} 次均失败"))
                .line(
                    "处理",
                    format!(
                        "检查数据源是否可用；下次运行会从最后确认的页继续，也可立即执行 \
                         `ferry extract --once --scheme {name}`"
                    ),
                ),
            ErrorClass::Record => Alert::new(name, Kind::RunFailed)
                .line("运行", run_id)
                .line("错误", err.to_string())
                .line(
                    "处理",
                    format!(
                        "修正数据或方案后执行 `ferry extract --once --scheme {name}`（从最后确认的页继续）"
                    ),
                ),
        };
        self.alerts.raise(alert);
    }

    async fn pages(
        &self,
        scheme: &SchemeFile,
        run: &RunIdentity<'_>,
        ctx: Context<'static>,
        data_cursor: &mut DataCursor,
        publisher: &Publisher,
        shutdown: &Shutdown,
    ) -> Result<(u64, u64), FerryError> {
        let RunIdentity {
            run_id,
            started,
            trace,
            digest,
            window_start,
            resume,
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
            let rejected = page.rejected.len() as u64;
            let n = page.records.len() as u64 + rejected;
            // A dead-lettered row was handled too: the window moves past it.
            for record in page
                .records
                .iter()
                .chain(page.rejected.iter().map(|(r, _)| r))
            {
                data_cursor.observe_record(record)?;
            }
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
            if !envelope.records.is_empty() {
                publisher
                    .publish(&queue, &envelope, &headers)
                    .await
                    .map_err(bus_error)?;
            }
            let rejected_ids = if rejected > 0 {
                self.dead_letter_rejected(&envelope, &headers, page.rejected, publisher)
                    .await?
            } else {
                Vec::new()
            };
            // Only now, with the page safely in the broker, does the run count it.
            // A state database restarted meanwhile is waited for (see `state_wait`).
            let confirmed = ConfirmedPage {
                scheme: name,
                run_id,
                records: n,
                cursor: page.cursor.as_ref(),
                source_digest: digest,
                data_cursor: data_cursor.max(),
                window_start: Some(window_start),
            };
            patiently("counting a confirmed page", || {
                self.state.page_confirmed(&confirmed)
            })
            .await?;
            if rejected > 0 {
                // Counted as the transform stage's dead letters, where they wait for a replay.
                let key = format!("extract-rejected-{pages}");
                let counts = ferry_state::Counts {
                    dead: rejected,
                    ..Default::default()
                };
                let stage = Stage::Transform.as_str();
                let reconciled = crate::roles::worker::settle(
                    &self.state,
                    &ferry_state::Settled {
                        run_id,
                        key: &key,
                        stage,
                        counts,
                        dead_ids: &rejected_ids,
                        replayed_ok: None,
                        shared_id: 0,
                    },
                )
                .await;
                crate::metrics::record_outcomes(name, stage, &counts, reconciled);
            }
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

    /// Dead-letter the records of a page that the source could not decode, to the scheme's
    /// transform-stage DLQ with the standard dead-letter headers (the column in
    /// `x-ferry-error-path`, the reason in `x-ferry-error`); `ferry replay` takes them from there.
    /// Returns their record ids.
    async fn dead_letter_rejected(
        &self,
        page: &Envelope,
        headers: &Headers,
        rejected: Vec<(ferry_core::Record, FerryError)>,
        publisher: &Publisher,
    ) -> Result<Vec<String>, FerryError> {
        let envelope = Envelope {
            records: Vec::new(),
            ..page.clone()
        };
        let failures: Vec<(ferry_core::Record, FerryError)> = rejected
            .into_iter()
            .map(|(record, err)| {
                let err = err.with_record_id(&record.id);
                (record, err)
            })
            .collect();
        // Record errors are never retried, so the attempt limit does not matter here.
        self.bus
            .route_record_failures(
                publisher,
                &page.scheme,
                Stage::Transform,
                &envelope,
                headers,
                &failures,
                0,
            )
            .await
            .map_err(bus_error)?;
        Ok(failures.into_iter().map(|(record, _)| record.id).collect())
    }

    /// Follow every scheme's cron schedule until shutdown.
    pub async fn follow_schedules(
        self: Arc<Self>,
        schemes: Vec<SchemeFile>,
        mut shutdown: Shutdown,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for scheme in schemes {
            let Some(cron) = scheme.schedule.clone() else {
                tracing::info!(scheme = %scheme.scheme.name, "no schedule: runs only with --once");
                continue;
            };
            let tz = scheme.timezone;
            let this = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tasks.spawn(async move { this.schedule_loop(scheme, cron, tz, shutdown).await });
        }
        shutdown.wait().await;
        tasks.shutdown().await;
    }

    async fn schedule_loop(&self, scheme: SchemeFile, cron: Cron, tz: Tz, mut shutdown: Shutdown) {
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

/// How a run's window is drawn: the zone its times are shown in (the source's for MySQL),
/// the overlap, and the data cursor field.
struct Window {
    tz: Tz,
    /// Seconds added to instants so they read as the source's wall time in `tz` (see
    /// [`crate::connections::SourceClock::zone`]); 0 but for unusual offsets.
    shift: i64,
    overlap_secs: i64,
    cursor_field: Option<String>,
    cursor_start: Option<serde_json::Value>,
}

impl Window {
    fn new(
        scheme: &SchemeFile,
        scheme_tz: Tz,
        clock: Option<&crate::connections::SourceClock>,
    ) -> Window {
        let (tz, shift) = clock.map_or((scheme_tz, 0), |c| c.zone(scheme_tz));
        let sync = &scheme.sync;
        let overlap_secs = i64::try_from(sync.overlap.as_secs()).unwrap_or(i64::MAX);
        let cursor_field = sync.cursor_field.clone();
        let cursor_start = sync.cursor_start.clone();
        Window {
            tz,
            shift,
            overlap_secs,
            cursor_field,
            cursor_start,
        }
    }

    /// The run's template context: now is the run's start, `LAST_SYNC_TIME` the last complete
    /// run's start and `LAST_CURSOR` its largest cursor value (else `cursor_start`), both
    /// moved back by the overlap.
    fn context(
        &self,
        started_utc: chrono::DateTime<chrono::Utc>,
        checkpoint: &ferry_state::Checkpoint,
    ) -> Result<Context<'static>, FerryError> {
        let shift = chrono::TimeDelta::seconds(self.shift);
        let overlap = chrono::TimeDelta::seconds(self.overlap_secs);
        let out_of_range = || FerryError::config("the run's clock is out of range");
        let now = started_utc
            .checked_add_signed(shift)
            .ok_or_else(out_of_range)?
            .with_timezone(&self.tz);
        let last_sync = checkpoint
            .last_sync_time
            .map(|t| {
                t.checked_add_signed(shift - overlap)
                    .map(|t| t.with_timezone(&self.tz))
                    .ok_or_else(out_of_range)
            })
            .transpose()?;
        let last_cursor = match checkpoint
            .data_cursor
            .as_ref()
            .or(self.cursor_start.as_ref())
        {
            Some(value) => Some(CursorValue::of(value, self.tz).ok_or_else(|| {
                FerryError::config(format!(
                    "source.metadata.cursor_field: the saved cursor {value} is neither a number \
                     nor a datetime"
                ))
            })?),
            None => None,
        };
        Ok(Context::new(now, self.tz)
            .with_last_sync(last_sync)
            .with_last_cursor(last_cursor, self.overlap_secs))
    }
}

/// The largest value of the source's `cursor_field` a run has seen (none without a field).
struct DataCursor {
    field: Option<String>,
    tz: Tz,
    max: Option<(serde_json::Value, CursorValue)>,
    /// Records of this attempt that had a value.
    seen: u64,
}

impl DataCursor {
    fn new(field: Option<String>, tz: Tz) -> DataCursor {
        DataCursor {
            field,
            tz,
            max: None,
            seen: 0,
        }
    }

    /// The largest value so far, as the source gave it.
    fn max(&self) -> Option<&serde_json::Value> {
        self.max.as_ref().map(|(v, _)| v)
    }

    fn observe_record(&mut self, record: &ferry_core::Record) -> Result<(), FerryError> {
        let Some(field) = &self.field else {
            return Ok(());
        };
        match ferry_core::template::lookup(&record.data, field) {
            None | Some(serde_json::Value::Null) => Ok(()),
            Some(value) => {
                self.seen += 1;
                self.observe(value, || format!("record `{}`", record.id))
            }
        }
    }

    /// Keep `value` if it is the largest so far; `whose` names it in errors (built only for one,
    /// since this runs for every record).
    fn observe(
        &mut self,
        value: &serde_json::Value,
        whose: impl FnOnce() -> String,
    ) -> Result<(), FerryError> {
        let field = self.field.as_deref().unwrap_or_default();
        let Some(read) = CursorValue::of(value, self.tz) else {
            return Err(FerryError::config(format!(
                "source.metadata.cursor_field: `{field}` of {} is {value}, neither a number nor \
                 a datetime; name a field that is one",
                whose()
            )));
        };
        let later = match &self.max {
            None => true,
            Some((_, max)) => read.is_after(max).ok_or_else(|| {
                FerryError::config(format!(
                    "source.metadata.cursor_field: `{field}` of {} is {value}, but earlier \
                     records had {}; a cursor is all numbers or all datetimes",
                    whose(),
                    self.max().cloned().unwrap_or_default()
                ))
            })?,
        };
        if later {
            self.max = Some((value.clone(), read));
        }
        Ok(())
    }
}

/// A task that ends when its handle is dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

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
    /// When the run's window started, on the source's clock (saved with each cursor).
    window_start: chrono::DateTime<chrono::Utc>,
    /// Where an unfinished run resumes (its position, pages and records so far).
    resume: Option<&'a Resume>,
}

/// Digest of what decides which records a source yields and in which order (its connection,
/// metadata and time zone): a saved cursor is resumed only under the same digest.
fn source_digest(scheme: &SchemeFile) -> String {
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
pub(crate) fn host_name() -> Option<String> {
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
    use serde_json::json;

    #[test]
    fn a_cursor_value_that_is_no_number_or_datetime_is_named_in_one_readable_sentence() {
        let mut cursor = DataCursor::new(Some("updated_at".into()), chrono_tz::Asia::Shanghai);
        let bad = ferry_core::Record::new("张三", json!({ "updated_at": "昨天 😀" }));
        let err = cursor.observe_record(&bad).expect_err("text is no cursor");
        assert_eq!(
            err.to_string(),
            FerryError::config(
                "source.metadata.cursor_field: `updated_at` of record `张三` is \"昨天 😀\", \
                 neither a number nor a datetime; name a field that is one"
            )
            .to_string()
        );

        let mut cursor = DataCursor::new(Some("updated_at".into()), chrono_tz::Asia::Shanghai);
        let number = ferry_core::Record::new("1", json!({ "updated_at": 42 }));
        cursor
            .observe_record(&number)
            .expect("a number is a cursor");
        let date = ferry_core::Record::new("2", json!({ "updated_at": "2026-03-01 08:00:00" }));
        let err = cursor
            .observe_record(&date)
            .expect_err("a cursor does not mix kinds");
        assert_eq!(
            err.to_string(),
            FerryError::config(
                "source.metadata.cursor_field: `updated_at` of record `2` is \
                 \"2026-03-01 08:00:00\", but earlier records had 42; a cursor is all numbers or \
                 all datetimes"
            )
            .to_string()
        );
        assert_eq!(cursor.max(), Some(&json!(42)));
    }

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
