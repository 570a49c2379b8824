//! What the console's pages show, read from the broker and the state database.
//!
//! Both are reached through [`Links`], which remembers when each stopped answering and the last
//! thing each said about every scheme: when one is down, the pages say which and since when, and
//! keep showing what it last knew (marked as such) instead of failing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ferry_bus::{Bus, DeadLetterView, Stage};
use ferry_core::files::SchemeFile;
use ferry_state::{RunStatus, RunSummary, State};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::app::App;

/// How long the console waits for the broker or the state database before calling it down.
const CONNECT_TIMEOUT_SECS: u64 = 5;
/// Runs per page on a scheme's page.
pub const RUNS_PER_PAGE: u32 = 10;
/// Dead letters read per stage for the dead-letter page.
pub const DEAD_LETTERS_SHOWN: usize = 200;

/// One service the console reads, and whether it answers.
struct Link<T> {
    handle: Option<T>,
    down_since: Option<DateTime<Utc>>,
    error: Option<String>,
}

impl<T> Default for Link<T> {
    fn default() -> Self {
        Link {
            handle: None,
            down_since: None,
            error: None,
        }
    }
}

impl<T> Link<T> {
    fn up(&mut self, handle: T) {
        self.handle = Some(handle);
        self.down_since = None;
        self.error = None;
    }

    fn down(&mut self, error: String) {
        self.handle = None;
        self.down_since.get_or_insert_with(Utc::now);
        self.error = Some(error);
    }

    fn health(&self) -> Value {
        json!({
            "ok": self.down_since.is_none(),
            "since": self.down_since.map(|t| t.to_rfc3339()),
            "error": self.error,
        })
    }
}

/// The broker and the state database as the console sees them, and what each last said.
pub struct Links {
    app: Arc<App>,
    bus: Mutex<Link<Arc<Bus>>>,
    state: Mutex<Link<State>>,
    /// Per scheme: the last queue figures and the last run figures read.
    last_queues: Mutex<HashMap<String, Value>>,
    last_runs: Mutex<HashMap<String, Value>>,
}

impl Links {
    pub fn new(app: Arc<App>) -> Links {
        Links {
            app,
            bus: Mutex::new(Link::default()),
            state: Mutex::new(Link::default()),
            last_queues: Mutex::new(HashMap::new()),
            last_runs: Mutex::new(HashMap::new()),
        }
    }

    /// The broker, connecting if needed; `None` when it does not answer (noted as down).
    pub async fn bus(&self) -> Option<Arc<Bus>> {
        let mut link = self.bus.lock().await;
        if let Some(bus) = &link.handle {
            return Some(Arc::clone(bus));
        }
        let connect = self.app.bus("console");
        match tokio::time::timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS), connect).await {
            Ok(Ok(bus)) => {
                let bus = Arc::new(bus);
                link.up(Arc::clone(&bus));
                Some(bus)
            }
            Ok(Err(e)) => {
                link.down(self.redact(&format!("{e:#}")));
                None
            }
            Err(_) => {
                link.down(format!(
                    "RabbitMQ at {} gave no answer within {CONNECT_TIMEOUT_SECS} s",
                    ferry_core::redact::url(&self.app.amqp_url)
                ));
                None
            }
        }
    }

    /// The state database, connecting if needed; `None` when it does not answer.
    pub async fn state(&self) -> Option<State> {
        let mut link = self.state.lock().await;
        if let Some(state) = &link.handle {
            return Some(state.clone());
        }
        let connect = self.app.state();
        match tokio::time::timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS), connect).await {
            Ok(Ok(state)) => {
                link.up(state.clone());
                Some(state)
            }
            Ok(Err(e)) => {
                link.down(self.redact(&format!("{e:#}")));
                None
            }
            Err(_) => {
                link.down(format!(
                    "the state database at {} gave no answer within {CONNECT_TIMEOUT_SECS} s",
                    ferry_core::redact::url(&self.app.state_url)
                ));
                None
            }
        }
    }

    /// An operation on the broker failed: drop the connection (the next request reconnects).
    pub async fn bus_failed(&self, error: String) {
        let error = self.redact(&error);
        self.bus.lock().await.down(error);
    }

    /// An operation on the state database failed.
    pub async fn state_failed(&self, error: String) {
        let error = self.redact(&error);
        self.state.lock().await.down(error);
    }

    /// `{"broker": {ok, since, error}, "state": {...}}`.
    pub async fn health(&self) -> Value {
        json!({
            "broker": self.bus.lock().await.health(),
            "state": self.state.lock().await.health(),
        })
    }

    /// `text` without any secret of the configuration.
    pub fn redact(&self, text: &str) -> String {
        redact(&self.app, text)
    }

    /// The Schemes page: one entry per scheme.
    pub async fn overview(&self) -> Value {
        let bus = self.bus().await;
        let state = self.state().await;
        let mut schemes = Vec::new();
        for scheme in &self.app.files.schemes {
            let name = scheme.scheme.name.clone();
            let queues = self.queues(bus.as_deref(), scheme).await;
            let last_run = match &state {
                Some(state) => match state.recent_runs(&name, 1).await {
                    Ok(runs) => {
                        let run = runs.first().map(|r| run_json(&self.app, r));
                        let run = json!({ "run": run, "stale": false });
                        self.last_runs
                            .lock()
                            .await
                            .insert(name.clone(), run.clone());
                        run
                    }
                    Err(e) => {
                        self.state_failed(e.to_string()).await;
                        self.stale_runs(&name).await
                    }
                },
                None => self.stale_runs(&name).await,
            };
            schemes.push(json!({
                "name": name,
                "description": scheme.scheme.description,
                "source": endpoint(&self.app, &scheme.scheme.source.connection),
                "target": endpoint(&self.app, &scheme.scheme.target.connection),
                "schedule": scheme.scheme.schedule,
                "timezone": scheme.scheme.timezone,
                "next_run": next_run(scheme).map(|t| t.to_rfc3339()),
                "queues": queues,
                "last_run": last_run["run"],
                "runs_stale": last_run["stale"],
            }));
        }
        json!({
            "schemes": schemes,
            "health": self.health().await,
            "now": Utc::now().to_rfc3339(),
        })
    }

    async fn stale_runs(&self, name: &str) -> Value {
        match self.last_runs.lock().await.get(name) {
            Some(last) => json!({ "run": last["run"], "stale": true }),
            None => json!({ "run": null, "stale": true }),
        }
    }

    /// Waiting, retrying and dead-lettered messages and consumers of a scheme's queues.
    async fn queues(&self, bus: Option<&Bus>, scheme: &SchemeFile) -> Value {
        let name = &scheme.scheme.name;
        let fresh = match bus {
            Some(bus) => match bus.queue_depths(name).await {
                Ok(depths) => Some(depths),
                Err(e) => {
                    self.bus_failed(e.to_string()).await;
                    None
                }
            },
            None => None,
        };
        let Some(depths) = fresh else {
            let mut last = self
                .last_queues
                .lock()
                .await
                .get(name)
                .cloned()
                .unwrap_or_else(|| json!({ "known": false }));
            last["stale"] = json!(true);
            return last;
        };
        let count = |pred: &dyn Fn(&str) -> bool| -> (u64, u64) {
            depths
                .iter()
                .filter(|q| q.exists && pred(&q.queue))
                .fold((0, 0), |(m, c), q| {
                    (m + u64::from(q.messages), c + u64::from(q.consumers))
                })
        };
        let transform = ferry_bus::names::work_queue(name, Stage::Transform);
        let load = ferry_bus::names::work_queue(name, Stage::Load);
        let transform_dlq = ferry_bus::names::dlq(name, Stage::Transform);
        let load_dlq = ferry_bus::names::dlq(name, Stage::Load);
        let (tw, tc) = count(&|q| q == transform);
        let (lw, lc) = count(&|q| q == load);
        let (td, _) = count(&|q| q == transform_dlq);
        let (ld, _) = count(&|q| q == load_dlq);
        let (retrying, _) = count(&|q| q.contains(".retry."));
        let value = json!({
            "known": depths.iter().any(|q| q.exists),
            "stale": false,
            "waiting": { "transform": tw, "load": lw },
            "consumers": { "transform": tc, "load": lc },
            "retrying": retrying,
            "dead": { "transform": td, "load": ld, "total": td + ld },
        });
        self.last_queues
            .lock()
            .await
            .insert(name.clone(), value.clone());
        value
    }

    /// A scheme's page: its runs (page `page`, from 0), the cursor, why it stopped, its lint
    /// problems and its metadata (secrets redacted).
    pub async fn scheme(&self, scheme: &SchemeFile, page: u32) -> Value {
        let name = &scheme.scheme.name;
        let mut out = json!({
            "name": name,
            "description": scheme.scheme.description,
            "file": scheme_file(&self.app, scheme),
            "source": endpoint(&self.app, &scheme.scheme.source.connection),
            "target": endpoint(&self.app, &scheme.scheme.target.connection),
            "schedule": scheme.scheme.schedule,
            "timezone": scheme.scheme.timezone,
            "next_run": next_run(scheme).map(|t| t.to_rfc3339()),
            "lint": lint_problems(&self.app, scheme),
            "metadata": metadata(&self.app, scheme),
            "page": page,
            "per_page": RUNS_PER_PAGE,
        });
        let bus = self.bus().await;
        out["queues"] = self.queues(bus.as_deref(), scheme).await;
        if let Some(state) = self.state().await {
            match scheme_runs(&self.app, &state, name, page).await {
                Ok(runs) => {
                    for (k, v) in runs {
                        out[k] = v;
                    }
                }
                Err(e) => self.state_failed(format!("{e:#}")).await,
            }
        }
        out["health"] = self.health().await;
        out
    }

    /// The dead letters of a scheme, both stages, in queue order.
    pub async fn dead_letters(&self, scheme: &SchemeFile) -> Value {
        let name = &scheme.scheme.name;
        let mut letters = Vec::new();
        let mut totals = json!({});
        if let Some(bus) = self.bus().await {
            for stage in [Stage::Transform, Stage::Load] {
                match bus
                    .browse_dead_letters(name, stage, DEAD_LETTERS_SHOWN)
                    .await
                {
                    Ok(page) => {
                        totals[stage.as_str()] = json!(page.total);
                        letters.extend(
                            page.letters
                                .iter()
                                .map(|l| letter_json(&self.app, scheme, l)),
                        );
                    }
                    Err(e) => {
                        self.bus_failed(e.to_string()).await;
                        break;
                    }
                }
            }
        }
        json!({
            "scheme": name,
            "letters": letters,
            "totals": totals,
            "shown_per_stage": DEAD_LETTERS_SHOWN,
            "replays": self.replays(name).await,
            "health": self.health().await,
        })
    }

    /// The audited replays of a scheme, newest first.
    async fn replays(&self, name: &str) -> Value {
        match self.state().await {
            Some(state) => match super::replay::recent(&state, name).await {
                Ok(list) => Value::Array(list),
                Err(e) => {
                    self.state_failed(format!("{e:#}")).await;
                    Value::Null
                }
            },
            None => Value::Null,
        }
    }
}

/// Every secret of the configuration and every value a scheme took from the environment,
/// replaced by `***` in `text`.
pub fn redact(app: &App, text: &str) -> String {
    let mut out = text.to_string();
    for scheme in &app.files.schemes {
        out = scheme.redact(&out);
    }
    if let Some(console) = &app.files.config.console {
        for secret in [&console.token, &console.password].into_iter().flatten() {
            if !secret.is_empty() {
                out = out.replace(secret.expose(), "***");
            }
        }
    }
    out
}

fn endpoint(app: &App, connection: &str) -> Value {
    json!({
        "connection": connection,
        "kind": app.connection(connection).map(|c| c.kind().name),
    })
}

fn next_run(scheme: &SchemeFile) -> Option<DateTime<Tz>> {
    let tz = scheme.timezone;
    let cron = scheme.schedule.as_ref()?;
    cron.find_next_occurrence(&Utc::now().with_timezone(&tz), false)
        .ok()
}

fn scheme_file(app: &App, scheme: &SchemeFile) -> String {
    scheme
        .file
        .strip_prefix(&app.files.dir)
        .unwrap_or(&scheme.file)
        .display()
        .to_string()
}

/// `ferry lint`'s offline problems of this scheme's file.
fn lint_problems(app: &App, scheme: &SchemeFile) -> Value {
    let file = scheme_file(app, scheme);
    ferry_core::lint::lint(&app.files)
        .into_iter()
        .filter(|p| p.file == file)
        .map(|p| {
            json!({
                "severity": if p.is_error() { "error" } else { "warning" },
                "path": p.path,
                "message": redact(app, &p.message),
            })
        })
        .collect()
}

/// The scheme as its file says, with what came from the environment shown as `***`.
fn metadata(app: &App, scheme: &SchemeFile) -> Value {
    let text = serde_json::to_string(&scheme.scheme).unwrap_or_default();
    serde_json::from_str(&redact(app, &text)).unwrap_or(Value::Null)
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-01`).
fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent
        .split('-')
        .nth(1)
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn run_json(app: &App, r: &RunSummary) -> Value {
    let template = app
        .files
        .config
        .console
        .as_ref()
        .map(|c| c.jaeger_url.clone())
        .unwrap_or_default();
    let trace = r.traceparent.as_deref().and_then(trace_id);
    let end = r.finished_at.unwrap_or_else(Utc::now);
    json!({
        "run_id": r.run_id,
        "status": r.status.as_str(),
        "started_at": r.started_at.to_rfc3339(),
        "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
        "duration_secs": (end - r.started_at).num_milliseconds() as f64 / 1000.0,
        "pages": r.pages,
        "records": r.records,
        "counts": {
            "inserted": r.counts.inserted, "updated": r.counts.updated,
            "unchanged": r.counts.unchanged, "kept": r.counts.kept,
            "accepted": r.counts.accepted, "written": r.counts.written,
            "skipped": r.counts.skipped, "dead": r.counts.dead,
        },
        "settled": r.settled(),
        "shared_id": r.shared_id,
        "error": r.error.as_deref().map(|e| redact(app, e)),
        "trace_id": trace,
        "trace_url": trace.filter(|_| !template.is_empty()).map(|t| template.replace("{trace_id}", t)),
    })
}

/// Runs (one page), checkpoint and stop reason of a scheme.
async fn scheme_runs(
    app: &App,
    state: &State,
    name: &str,
    page: u32,
) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let wanted = (page + 1) * RUNS_PER_PAGE + 1;
    let runs = state.recent_runs(name, wanted).await?;
    let has_more = runs.len() as u32 > (page + 1) * RUNS_PER_PAGE;
    let shown: Vec<Value> = runs
        .iter()
        .skip((page * RUNS_PER_PAGE) as usize)
        .take(RUNS_PER_PAGE as usize)
        .map(|r| run_json(app, r))
        .collect();
    let stopped = runs
        .first()
        .filter(|r| matches!(r.status, RunStatus::Stopped | RunStatus::Failed))
        .map(|r| json!({ "status": r.status.as_str(), "run_id": r.run_id, "error": r.error.as_deref().map(|e| redact(app, e)) }));
    let checkpoint = state.checkpoint(name).await?;
    Ok(vec![
        ("runs", Value::Array(shown)),
        ("has_more", json!(has_more)),
        ("stopped", stopped.unwrap_or(Value::Null)),
        (
            "checkpoint",
            json!({
                "last_sync_time": checkpoint.last_sync_time.map(|t| t.to_rfc3339()),
                "cursor": checkpoint.cursor.as_ref().map(|c| redact(app, &c.to_string())),
                "resumes_run": checkpoint.cursor.as_ref().and(checkpoint.run_id.as_ref()),
                "data_cursor": checkpoint.data_cursor.as_ref().map(|c| redact(app, &c.to_string())),
            }),
        ),
    ])
}

fn letter_json(app: &App, scheme: &SchemeFile, l: &DeadLetterView) -> Value {
    let _ = scheme;
    let payload = serde_json::to_string_pretty(&l.payload).unwrap_or_default();
    json!({
        "stage": l.stage.as_str(),
        "position": l.position,
        "record_ids": l.record_ids,
        "error_class": l.error_class.map(|c| c.as_str()).unwrap_or("broker"),
        "error": l.error.as_deref().map(|e| redact(app, e))
            .unwrap_or_else(|| "dead-lettered by the broker (delivery limit)".to_string()),
        "error_path": l.error_path,
        "attempts": l.attempts,
        "replays": l.replays,
        "first_failed_at": l.first_failed_at.map(|t| t.to_rfc3339()),
        "failed_at": l.failed_at.map(|t| t.to_rfc3339()),
        "run": l.run,
        "payload": redact(app, &payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_second_field_of_the_traceparent() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("garbage"), None);
    }
}
