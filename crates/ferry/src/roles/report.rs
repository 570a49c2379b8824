//! Reporting: queue depths and dead-letter alerts while roles run, and the lines `ferry run
//! --once` and `ferry extract --once` print about each run.

use std::sync::Arc;
use std::time::Duration;

use ferry_bus::{Bus, Stage};
use ferry_core::FerryError;
use ferry_core::files::SchemeFile;
use ferry_state::{RunSummary, State};

use super::extract::Extracted;
use super::transform::absent_note;
use crate::alerts::{Alert, Alerts, Kind};
use crate::shutdown::Shutdown;

/// Seconds between queue-depth samples for the `ferry_queue_messages` gauge.
pub const QUEUE_DEPTH_EVERY_SECS: u64 = 5;

/// Sample the schemes' queue depths into the metrics until shutdown, and raise or clear the
/// dead-letter alert of each scheme against `[alerts] dead_letters`.
pub(super) fn watch_queue_depths(
    bus: Arc<Bus>,
    alerts: Alerts,
    schemes: &[SchemeFile],
    mut shutdown: Shutdown,
) -> Background {
    let names: Vec<String> = schemes.iter().map(|s| s.scheme.name.clone()).collect();
    Background(tokio::spawn(async move {
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
    }))
}

/// A background task of a session, stopped when the handle is dropped (the session ended, or the
/// supervisor abandoned it with its connection).
pub(super) struct Background(tokio::task::JoinHandle<()>);

impl Background {
    pub(super) fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Raise the dead-letter alert of `scheme` when its DLQs hold `[alerts] dead_letters` messages or
/// more, clear it when they hold fewer.
pub(super) fn dead_letter_alert(alerts: &Alerts, scheme: &str, depths: &[ferry_bus::QueueDepth]) {
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

/// One line per placeholder that named a field absent from records of the run:
/// `contacts: {nmae}: absent in all 5 records (rendered as null)`.
pub(super) async fn absent_lines(state: &State, name: &str, run: &RunSummary) -> Vec<String> {
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
pub(super) fn once_per_scheme(stopped: Vec<(String, FerryError)>) -> Vec<(String, FerryError)> {
    let mut out: Vec<(String, FerryError)> = Vec::new();
    for (scheme, e) in stopped {
        if !out.iter().any(|(s, _)| *s == scheme) {
            out.push((scheme, e));
        }
    }
    out
}

pub(super) fn summary_line(name: &str, x: &Extracted, run: &RunSummary, always: &[&str]) -> String {
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
pub(super) fn resumed_note(x: &Extracted) -> String {
    x.resumed_after
        .map(|page| format!(", resumed after page {page}"))
        .unwrap_or_default()
}
