//! The commands that are not pipeline roles: `replay`, `discard`, `teardown`, `status`, `lint`,
//! `preview`, `sandbox`.

use std::io::Read as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use std::process::ExitCode;

use ferry_bus::{DeadLetterAction, DeadLetterFilter, DeadLetterPass, Stage, Topology};
use ferry_core::files::SchemeFile;
use ferry_core::sql::{NamedSql, binds_for};
use ferry_core::{ErrorClass, Record};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::{
    DeadLetterFilterArgs, DiscardArgs, ErrorClassArg, LintArgs, PreviewArgs, ReplayArgs,
    SandboxArgs, StageArg, StatusArgs, TeardownArgs,
};
use crate::dead_letters::{self, DeadLetterRequest};
use crate::roles::transform::{DEFAULT_LOAD_BATCH, Transformer, absent_note};

/// `ferry lint [--online]`: every problem on one line; exit 1 if any is an error. The online
/// checks run only when the offline ones found no error.
pub async fn lint(config: &std::path::Path, args: &LintArgs) -> anyhow::Result<bool> {
    let env = |name: &str| std::env::var(name).ok();
    let mut problems = match ferry_core::files::read(config, &env) {
        Ok(files) => ferry_core::lint::lint(&files),
        Err(problems) => problems,
    };
    if args.online && !problems.iter().any(|p| p.is_error()) {
        let app = Arc::new(App::read(config)?);
        let schemes = app.schemes(&args.filter)?;
        problems.extend(crate::online::check(app, &schemes).await?);
    }
    for p in &problems {
        println!("{p}");
    }
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    eprintln!(
        "{}: {errors} error(s), {warnings} warning(s)",
        config.display()
    );
    Ok(errors == 0)
}

/// The filter, limit and dry run of `replay` and `discard` as a pass over a DLQ.
fn dead_letter_pass(args: &DeadLetterFilterArgs, rate_per_sec: Option<f64>) -> DeadLetterPass {
    DeadLetterPass {
        filter: DeadLetterFilter {
            error_class: args.error_class.map(|c| match c {
                ErrorClassArg::Transient => ErrorClass::Transient,
                ErrorClassArg::Record => ErrorClass::Record,
                ErrorClassArg::Config => ErrorClass::Config,
            }),
            text: args.text.clone(),
            record_ids: args.records.clone(),
            since: args.since,
            until: args.until,
        },
        limit: args.limit,
        dry_run: args.dry_run,
        rate_per_sec,
    }
}

fn stage_of(arg: StageArg) -> Stage {
    match arg {
        StageArg::Transform => Stage::Transform,
        StageArg::Load => Stage::Load,
    }
}

/// `ferry replay`.
pub async fn replay(app: Arc<App>, args: ReplayArgs) -> anyhow::Result<()> {
    let action = if args.rerender {
        if args.stage == Some(StageArg::Transform) {
            bail!(
                "--rerender takes load dead letters back through the transform; transform dead \
                 letters are source records already: replay them without --rerender"
            );
        }
        DeadLetterAction::Rerender
    } else {
        DeadLetterAction::Replay
    };
    let stages = match (args.stage, args.rerender) {
        (Some(stage), _) => vec![stage_of(stage)],
        (None, true) => vec![Stage::Load],
        (None, false) => vec![Stage::Transform, Stage::Load],
    };
    let request = DeadLetterRequest {
        scheme: args.scheme.clone(),
        stages,
        action,
        pass: dead_letter_pass(&args.filter, args.rate),
        actor: dead_letters::actor(args.filter.by.as_deref()),
    };
    take_dead_letters(app, request).await
}

/// `ferry discard`.
pub async fn discard(app: Arc<App>, args: DiscardArgs) -> anyhow::Result<()> {
    let request = DeadLetterRequest {
        scheme: args.scheme.clone(),
        stages: vec![stage_of(args.stage)],
        action: DeadLetterAction::Discard,
        pass: dead_letter_pass(&args.filter, None),
        actor: dead_letters::actor(args.filter.by.as_deref()),
    };
    take_dead_letters(app, request).await
}

/// Run a replay or discard and print what it took, one line per dead letter, then a summary per
/// stage.
async fn take_dead_letters(app: Arc<App>, request: DeadLetterRequest) -> anyhow::Result<()> {
    let scheme = app
        .files
        .scheme(&request.scheme)
        .cloned()
        .with_context(|| format!("no scheme named `{}`", request.scheme))?;
    let bus = app.bus("replay").await?;
    app.declare(&bus, std::slice::from_ref(&scheme)).await?;
    let state = app.state().await?;
    let dry_run = request.pass.dry_run;
    let verb = match (request.action, dry_run) {
        (DeadLetterAction::Discard, true) => "would discard",
        (DeadLetterAction::Discard, false) => "discarded",
        (_, true) => "would move",
        (_, false) => "moved",
    };
    let reports = dead_letters::run(&bus, &state, &request).await?;
    let filter = request.pass.filter.describe();
    for report in &reports {
        for item in &report.items {
            println!(
                "{verb} {} [{}] {}{}",
                item.record_ids.join(","),
                item.error_class.map(|c| c.as_str()).unwrap_or("broker"),
                item.error
                    .as_deref()
                    .unwrap_or("dead-lettered by the broker (delivery limit)"),
                if item.replays > 0 {
                    format!(" (replayed {} time(s) before)", item.replays)
                } else {
                    String::new()
                }
            );
        }
        let target = report.to.as_deref().unwrap_or("(removed)");
        let head = format!("{} -> {target}", report.from);
        let taken = match (request.action, dry_run) {
            (DeadLetterAction::Discard, true) => {
                format!(
                    "{} dead letter(s) would be discarded (dry run)",
                    report.matched
                )
            }
            (DeadLetterAction::Discard, false) => {
                format!("discarded {} dead letter(s)", report.discarded)
            }
            (_, true) => format!("{} dead letter(s) would move (dry run)", report.matched),
            (_, false) => format!("moved {} dead letter(s)", report.moved),
        };
        let left = report.examined - report.matched;
        println!(
            "{head}: {taken}; filter: {filter}; {left} of {} looked at stay in the DLQ",
            report.examined
        );
        if report.without_source > 0 {
            println!(
                "  {} dead letter(s) carry no source record (written by an older Ferry) and stay: \
                 replay them without --rerender, or re-extract",
                report.without_source
            );
        }
    }
    Ok(())
}

/// `ferry teardown`.
pub async fn teardown(app: Arc<App>, args: TeardownArgs) -> anyhow::Result<ExitCode> {
    let broker = &app.files.config.broker;
    // The buckets configured now and the default ones: a retired scheme may predate a change.
    let mut delays = broker.retry_delays_secs.clone();
    delays.extend(ferry_bus::topology::DEFAULT_RETRY_DELAYS_SECS);
    delays.sort_unstable();
    delays.dedup();
    let topology = Topology {
        retry_delays_secs: delays,
        ..Topology::default()
    };
    let bus = app.bus("teardown").await?;
    let state = app.state().await?;
    let actor = dead_letters::actor(args.by.as_deref());
    let done =
        dead_letters::teardown(&bus, &state, &args.scheme, &topology, args.force, &actor).await?;
    let name = &args.scheme;
    if done.found.is_empty() {
        println!("{name}: no queues to remove (ferry.{name}.* does not exist)");
        return Ok(ExitCode::SUCCESS);
    }
    for q in &done.found {
        println!(
            "{} {} ({} message(s), {} consumer(s))",
            if done.removed { "removed" } else { "kept" },
            q.queue,
            q.messages,
            q.consumers
        );
    }
    if done.removed {
        println!(
            "{name}: removed {} queue(s){}",
            done.found.len(),
            if done.messages() > 0 {
                format!(", {} message(s) with them", done.messages())
            } else {
                String::new()
            }
        );
        if app.files.scheme(name).is_some() {
            println!(
                "{name}: the scheme is still in the configuration: the next role that starts for \
                 it declares its queues again; remove its file to retire it"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{name}: refused: its queues hold {} message(s) and have {} consumer(s). Stop the roles \
         that run it, replay or discard its dead letters (`ferry discard --scheme {name} --stage \
         load`), or pass --force to remove the queues with their messages",
        done.messages(),
        done.consumers()
    );
    Ok(ExitCode::FAILURE)
}

/// `ferry status [--json]`.
pub async fn status(app: Arc<App>, args: StatusArgs) -> anyhow::Result<()> {
    let schemes = app.schemes(&args.filter)?;
    let state = app.state().await?;
    let bus = match app.bus("status").await {
        Ok(bus) => Some(bus),
        Err(e) => {
            eprintln!("warning: {e:#}; queue depths unavailable");
            None
        }
    };
    // The running roles and the RabbitMQ node each is connected to (their heartbeats).
    let roles = state
        .roles(std::time::Duration::from_secs(
            crate::roles::pipeline::ROLE_FRESH_SECS,
        ))
        .await?;
    let mut out = Vec::new();
    for s in &schemes {
        let name = &s.scheme.name;
        let queues = match &bus {
            Some(bus) => bus
                .queue_depths(name)
                .await
                .map(|qs| {
                    qs.into_iter()
                        .filter(|q| q.exists)
                        .map(|q| json!({"queue": q.queue, "messages": q.messages, "consumers": q.consumers}))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let audits = state.audit_entries(name, 5).await?;
        let checkpoint = state.checkpoint(name).await?;
        let runs = state.recent_runs(name, 5).await?;
        let outages = state
            .outages(
                name,
                std::time::Duration::from_secs(crate::roles::outage::OUTAGE_FRESH_SECS),
            )
            .await?;
        // Placeholders that named a field absent from records of each run: {"{nmae}": 5}.
        let mut absent = Vec::with_capacity(runs.len());
        for r in &runs {
            let fields = state.absent_fields(&r.run_id).await?;
            absent.push(
                fields
                    .into_iter()
                    .map(|(placeholder, records)| (placeholder, json!(records)))
                    .collect::<serde_json::Map<_, _>>(),
            );
        }
        out.push(json!({
            "scheme": name,
            "source": s.scheme.source.connection,
            "target": s.scheme.target.connection,
            "schedule": s.scheme.schedule,
            "queues": queues,
            // The roles running this scheme and the broker node each is connected to.
            "roles": roles.iter().filter(|r| r.schemes.contains(name)).map(|r| json!({
                "role": r.role, "host": r.host, "pid": r.pid, "broker_node": r.broker_node,
                "connected_at": r.connected_at.to_rfc3339(), "seen_at": r.seen_at.to_rfc3339(),
            })).collect::<Vec<_>>(),
            // Services a role is waiting for, its messages held in their queues.
            "outages": outages.iter().map(|o| json!({
                "side": o.side, "since": o.since.to_rfc3339(),
                "seen_at": o.seen_at.to_rfc3339(), "error": o.error,
            })).collect::<Vec<_>>(),
            "checkpoint": {
                "last_sync_time": checkpoint.last_sync_time.map(|t| t.to_rfc3339()),
                "cursor": checkpoint.cursor,
                // The unfinished run the next extraction continues from the cursor.
                "resumes_run": checkpoint.cursor.as_ref().and(checkpoint.run_id.as_ref()),
                // The largest `cursor_field` value of the last complete run (`LAST_CURSOR`).
                "data_cursor": checkpoint.data_cursor,
            },
            "runs": runs.iter().zip(absent).map(|(r, absent)| json!({
                "run_id": r.run_id, "status": r.status.as_str(),
                "started_at": r.started_at.to_rfc3339(),
                "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
                "pages": r.pages, "records": r.records,
                "inserted": r.counts.inserted, "updated": r.counts.updated,
                "unchanged": r.counts.unchanged, "kept": r.counts.kept,
                "accepted": r.counts.accepted, "written": r.counts.written,
                "skipped": r.counts.skipped, "dead_lettered": r.counts.dead,
                "shared_id_different_content": r.shared_id,
                "error": r.error, "absent": absent,
            })).collect::<Vec<_>>(),
            // Replays, discards and teardowns, newest first.
            "replays": audits.iter().map(|a| json!({
                "action": a.action, "stage": a.stage, "by": a.by, "host": a.host,
                "filter": a.filter, "dry_run": a.dry_run, "matched": a.outcome.matched,
                "moved": a.outcome.moved, "discarded": a.outcome.discarded,
                "started_at": a.started_at.to_rfc3339(),
                "finished_at": a.finished_at.map(|t| t.to_rfc3339()),
                "error": a.error,
            })).collect::<Vec<_>>(),
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (s, scheme) in out.iter().zip(&schemes) {
        print_status(s, &crate::counts::always_shown(&app, scheme));
    }
    Ok(())
}

/// The human view of one scheme's status: work queues, retries, dead letters, last runs (with the
/// outcomes in `always` shown even when zero).
fn print_status(s: &Value, always: &[&str]) {
    let name = s["scheme"].as_str().unwrap_or("");
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!(
        "{name}  {} -> {}  (schedule: {}, last sync: {})",
        text(&s["source"]),
        text(&s["target"]),
        s["schedule"].as_str().unwrap_or("none"),
        s["checkpoint"]["last_sync_time"]
            .as_str()
            .unwrap_or("never")
    );
    for o in s["outages"].as_array().into_iter().flatten() {
        println!(
            "  {} down since {}: {}; its messages wait in the queue, probed every {} s",
            text(&o["side"]),
            text(&o["since"]),
            text(&o["error"]),
            crate::roles::outage::PROBE_EVERY_SECS
        );
    }
    for r in s["roles"].as_array().into_iter().flatten() {
        println!(
            "  role {} (host {}, pid {}): RabbitMQ node {} since {}",
            text(&r["role"]),
            text(&r["host"]),
            r["pid"],
            text(&r["broker_node"]),
            text(&r["connected_at"])
        );
    }
    let queues = s["queues"].as_array().cloned().unwrap_or_default();
    let depth = |suffix: &str| {
        queues
            .iter()
            .filter(|q| q["queue"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .map(|q| {
                (
                    q["messages"].as_u64().unwrap_or(0),
                    q["consumers"].as_u64().unwrap_or(0),
                )
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    if queues.is_empty() {
        println!(
            "  queues: not declared yet (no role has started for this scheme), or the broker is unreachable"
        );
    } else {
        let retrying: u64 = queues
            .iter()
            .filter(|q| q["queue"].as_str().is_some_and(|n| n.contains(".retry.")))
            .map(|q| q["messages"].as_u64().unwrap_or(0))
            .sum();
        let (t, tc) = depth(".transform");
        let (l, lc) = depth(".load");
        let (td, _) = depth(".transform.dlq");
        let (ld, _) = depth(".load.dlq");
        println!(
            "  waiting: transform {t} ({tc} consumers), load {l} ({lc} consumers); retrying: {retrying}"
        );
        if td + ld > 0 {
            println!(
                "  dead letters: transform {td}, load {ld}  ->  ferry replay --scheme {name} --dry-run"
            );
        } else {
            println!("  dead letters: none");
        }
    }
    if !s["checkpoint"]["data_cursor"].is_null() {
        println!(
            "  data cursor (LAST_CURSOR before the overlap): {}",
            s["checkpoint"]["data_cursor"]
        );
    }
    if let Some(run) = s["checkpoint"]["resumes_run"].as_str() {
        println!(
            "  unfinished run {run}: the next `ferry extract` continues it after cursor {} \
             (`--restart` starts over)",
            s["checkpoint"]["cursor"]
        );
    }
    for r in s["runs"].as_array().into_iter().flatten() {
        let n = |key: &str| r[key].as_u64().unwrap_or(0);
        let counts = ferry_state::Counts {
            written: n("written"),
            inserted: n("inserted"),
            updated: n("updated"),
            unchanged: n("unchanged"),
            kept: n("kept"),
            accepted: n("accepted"),
            skipped: n("skipped"),
            dead: n("dead_lettered"),
        };
        println!(
            "  run {} {:<10} {}  {} pages, {} records: {}{}{}",
            text(&r["run_id"]),
            text(&r["status"]),
            text(&r["started_at"]),
            r["pages"],
            r["records"],
            crate::counts::text(&counts, always),
            crate::counts::shared_id_note(r["shared_id_different_content"].as_i64().unwrap_or(0)),
            r["error"]
                .as_str()
                .map(|e| format!("\n      error: {e}"))
                .unwrap_or_default()
        );
        for (placeholder, records) in r["absent"].as_object().into_iter().flatten() {
            let records = records.as_i64().unwrap_or(0);
            let of = r["records"].as_i64().unwrap_or(0);
            println!("      {}", absent_note(placeholder, records, of));
        }
    }
    for a in s["replays"].as_array().into_iter().flatten() {
        println!("  {}", audit_line(a));
    }
}

/// One audited replay, discard or teardown, as `ferry status` prints it.
fn audit_line(a: &Value) -> String {
    let text = |key: &str| a[key].as_str().unwrap_or("").to_string();
    let n = |key: &str| a[key].as_u64().unwrap_or(0);
    let outcome = match text("action").as_str() {
        "teardown" => format!("removed the queues with {} message(s)", n("discarded")),
        "discard" => format!("matched {}, discarded {}", n("matched"), n("discarded")),
        _ => format!("matched {}, moved {}", n("matched"), n("moved")),
    };
    let end = match (a["finished_at"].as_str(), a["error"].as_str()) {
        (_, Some(error)) => format!("; failed: {error}"),
        (None, None) => "; did not finish".to_string(),
        (Some(_), None) => String::new(),
    };
    format!(
        "{}{} {} {} by {}@{} (filter: {}): {outcome}{end}",
        text("action"),
        if a["dry_run"].as_bool() == Some(true) {
            " (dry run)"
        } else {
            ""
        },
        text("stage"),
        text("started_at"),
        text("by"),
        text("host"),
        text("filter"),
    )
}

/// `ferry preview`: what the target would receive for sample source records, as JSON.
pub fn preview(config: &std::path::Path, args: PreviewArgs) -> anyhow::Result<bool> {
    let app = App::read(config)?;
    let scheme = app
        .files
        .scheme(&args.scheme)
        .cloned()
        .with_context(|| format!("no scheme named `{}`", args.scheme))?;
    let text = if args.input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input))?
    };
    let input: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", args.input))?;
    let samples = match input {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => bail!(
            "{}: expected a JSON array of records (or one record object)",
            args.input
        ),
    };
    let tz = scheme.timezone;
    let handler = Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH);
    let target = &scheme.scheme.target.metadata;
    let sql = match app.connection(&scheme.scheme.target.connection) {
        Some(c) if c.kind().sql => target
            .other("main_sql")
            .map(NamedSql::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("target main_sql: {e}"))?,
        _ => None,
    };
    let id_field = scheme.scheme.source.metadata.id.clone();
    let now = chrono::Utc::now().with_timezone(&tz);
    let mut all_ok = true;
    let mut out = Vec::new();
    for (i, data) in samples.into_iter().enumerate() {
        let id = ferry_core::mapping::record_id(&data, id_field.as_deref())
            .unwrap_or_else(|| format!("#{}", i + 1));
        let record = Record {
            id: id.clone(),
            data,
            source: None,
        };
        match handler.map_record(&record, now) {
            Ok((mapped, absent)) => {
                let mut entry = json!({"id": id, "request": mapped.data});
                if !absent.is_empty() {
                    // Rendered as null: say so, since a typo (`{nmae}`) looks just like this.
                    entry["absent"] = json!(absent);
                }
                if let Some(sql) = &sql {
                    let empty = serde_json::Map::new();
                    let data = mapped.data.as_object().unwrap_or(&empty);
                    entry["sql"] = json!(sql.text);
                    match binds_for(sql, data) {
                        Ok(binds) => {
                            entry["binds"] =
                                Value::Object(sql.params.iter().cloned().zip(binds).collect())
                        }
                        Err(e) => {
                            all_ok = false;
                            entry["error"] = json!(e.to_string());
                        }
                    }
                }
                out.push(entry);
            }
            Err(e) => {
                all_ok = false;
                out.push(json!({"id": id, "error": e.to_string(), "class": e.class().as_str(), "path": e.path()}));
            }
        }
    }
    // Values the scheme took from the environment (tokens) are shown as `***`.
    println!("{}", scheme.redact(&serde_json::to_string_pretty(&out)?));
    if app
        .connection(&scheme.scheme.source.connection)
        .is_some_and(|c| c.kind().sql)
        && let Some(note) = ferry_sources::mysql::planned_paging(&scheme.scheme.source.metadata)
    {
        eprintln!("{}", scheme.redact(&note));
    }
    Ok(all_ok)
}

/// `ferry sandbox`.
pub async fn sandbox(
    args: SandboxArgs,
    mut shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<()> {
    let options = args.options;
    eprintln!(
        "ferry sandbox: listening on http://{} (seed {}, {} Yida instances); the README lists endpoints and credentials",
        options.listen, options.seed, options.records
    );
    ferry_sandbox::serve(options, async move { shutdown.wait().await })
        .await
        .context("sandbox")?;
    Ok(())
}

/// `--restart`: forget where each scheme's unfinished run stopped, so its extraction starts from
/// the beginning; the run is marked failed, saying so.
pub async fn discard_unfinished(app: &App, schemes: &[SchemeFile]) -> anyhow::Result<()> {
    let state = app.state().await?;
    for scheme in schemes {
        let name = &scheme.scheme.name;
        if let Some(run) = state.discard_unfinished(name).await? {
            println!("{name}: discarded the unfinished run {run}; extracting from the beginning");
        }
    }
    Ok(())
}
