//! The commands that are not pipeline roles: `replay`, `status`, `lint`, `preview`, `sandbox`.

use std::io::Read as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use chrono_tz::Tz;
use ferry_bus::Stage;
use ferry_core::Record;
use ferry_core::config::Connection;
use ferry_core::load::LoadedScheme;
use ferry_core::sql::{NamedSql, binds_for};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::{LintArgs, PreviewArgs, ReplayArgs, SandboxArgs, StageArg, StatusArgs};
use crate::roles::transform::{DEFAULT_LOAD_BATCH, Transformer, absent_note};

/// `ferry lint [--online]`: every problem on one line; exit 1 if any is an error. The online
/// checks run only when the offline ones found no error.
pub async fn lint(config: &std::path::Path, args: &LintArgs) -> anyhow::Result<bool> {
    let env = |name: &str| std::env::var(name).ok();
    let mut problems = match ferry_core::load::load(config, &env) {
        Ok(loaded) => ferry_core::lint::lint(&loaded),
        Err(problems) => problems,
    };
    if args.online && !problems.iter().any(|p| p.is_error()) {
        let app = Arc::new(App::load(config)?);
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

/// `ferry replay`.
pub async fn replay(app: Arc<App>, args: ReplayArgs) -> anyhow::Result<()> {
    let scheme = app
        .loaded
        .scheme(&args.scheme)
        .cloned()
        .with_context(|| format!("no scheme named `{}`", args.scheme))?;
    let bus = app.bus("replay").await?;
    app.declare(&bus, std::slice::from_ref(&scheme)).await?;
    let stages = match args.stage {
        Some(StageArg::Transform) => vec![Stage::Transform],
        Some(StageArg::Load) => vec![Stage::Load],
        None => vec![Stage::Transform, Stage::Load],
    };
    for stage in stages {
        let report = bus
            .replay(&args.scheme, stage, args.limit, args.dry_run)
            .await?;
        for item in &report.items {
            println!(
                "{} {} [{}] {}{}",
                if args.dry_run { "would move" } else { "moved" },
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
        if args.dry_run {
            println!(
                "{} -> {}: {} dead letter(s) would move (dry run)",
                report.from,
                report.to,
                report.items.len()
            );
        } else {
            println!(
                "{} -> {}: moved {} dead letter(s)",
                report.from, report.to, report.moved
            );
        }
    }
    Ok(())
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
        let checkpoint = state.checkpoint(name).await?;
        let runs = state.recent_runs(name, 5).await?;
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
}

/// `ferry preview`: what the target would receive for sample source records, as JSON.
pub fn preview(config: &std::path::Path, args: PreviewArgs) -> anyhow::Result<bool> {
    let app = App::load(config)?;
    let scheme = app
        .loaded
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
    let tz: Tz = scheme
        .scheme
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("timezone `{}` does not parse", scheme.scheme.timezone))?;
    let handler =
        Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = &scheme.scheme.target.metadata;
    let sql = match app.connection(&scheme.scheme.target.connection) {
        Some(Connection::Mysql(_)) => target
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
pub async fn discard_unfinished(app: &App, schemes: &[LoadedScheme]) -> anyhow::Result<()> {
    let state = app.state().await?;
    for scheme in schemes {
        let name = &scheme.scheme.name;
        if let Some(run) = state.discard_unfinished(name).await? {
            println!("{name}: discarded the unfinished run {run}; extracting from the beginning");
        }
    }
    Ok(())
}
