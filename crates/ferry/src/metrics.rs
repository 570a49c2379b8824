//! Prometheus metrics and the health endpoints.
//!
//! Metric names and label sets are fixed here, once. Counters are kept per (metric, scheme,
//! stage) in a small map: the number of series is the number of schemes times a handful, so a
//! full metrics library would add build time and nothing else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub const RECORDS_IN: &str = "ferry_records_in_total";
pub const RECORDS_OUT: &str = "ferry_records_out_total";
pub const RECORDS_SKIPPED: &str = "ferry_records_skipped_total";
pub const RECORDS_FAILED: &str = "ferry_records_failed_total";
pub const RECORDS_INSERTED: &str = "ferry_records_inserted_total";
pub const RECORDS_UPDATED: &str = "ferry_records_updated_total";
pub const RECORDS_UNCHANGED: &str = "ferry_records_unchanged_total";
pub const RECORDS_KEPT: &str = "ferry_records_kept_total";
pub const RECORDS_ACCEPTED: &str = "ferry_records_accepted_total";
pub const RECORDS_WRITTEN: &str = "ferry_records_written_total";
pub const DEAD_LETTERS: &str = "ferry_dead_letters_total";
pub const DEAD_LETTERS_RECOVERED: &str = "ferry_dead_letters_recovered_total";
pub const RETRIES: &str = "ferry_retries_total";
pub const PAGES: &str = "ferry_pages_total";
pub const BATCH_SECONDS: &str = "ferry_batch_seconds";
pub const QUEUE_MESSAGES: &str = "ferry_queue_messages";
pub const SOURCE_RETRIES: &str = "ferry_source_retries_total";

const HELP: &[(&str, &str, &str)] = &[
    (RECORDS_IN, "counter", "Records received by a stage."),
    (
        RECORDS_OUT,
        "counter",
        "Records a stage passed on (published or written).",
    ),
    (
        RECORDS_SKIPPED,
        "counter",
        "Records skipped as already written (idCheck, ledger).",
    ),
    (RECORDS_FAILED, "counter", "Records that failed in a stage."),
    (
        RECORDS_INSERTED,
        "counter",
        "MySQL rows inserted (from the server's affected rows).",
    ),
    (
        RECORDS_UPDATED,
        "counter",
        "MySQL rows that existed and were changed (from the server's affected rows).",
    ),
    (
        RECORDS_UNCHANGED,
        "counter",
        "MySQL rows that already held the record's values.",
    ),
    (
        RECORDS_KEPT,
        "counter",
        "Duplicate keys kept as the target had them (write_mode insert).",
    ),
    (
        RECORDS_ACCEPTED,
        "counter",
        "Records the no-op target accepted (written nowhere).",
    ),
    (
        RECORDS_WRITTEN,
        "counter",
        "Records taken by a target that cannot say more (robot pushes, MySQL REPLACE).",
    ),
    (
        DEAD_LETTERS,
        "counter",
        "Records sent to a dead-letter queue (a replayed record dead-lettered again counts once).",
    ),
    (
        DEAD_LETTERS_RECOVERED,
        "counter",
        "Dead-lettered records that did not fail after `ferry replay`: still dead = ferry_dead_letters_total - this.",
    ),
    (
        RETRIES,
        "counter",
        "Batches sent to a retry queue (transform, load); source pages fetched again (extract).",
    ),
    (
        SOURCE_RETRIES,
        "counter",
        "API calls sent again after throttling, a 5xx or a network failure, by connection.",
    ),
    (PAGES, "counter", "Source pages published."),
    (
        BATCH_SECONDS,
        "summary",
        "Time to process one message (page or batch).",
    ),
    (
        QUEUE_MESSAGES,
        "gauge",
        "Messages ready in a scheme's queues (work, retry, dead-letter), sampled every 5 s.",
    ),
];

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, String, &'static str), u64>,
    /// (sum of seconds, count) per (scheme, stage).
    batches: BTreeMap<(String, &'static str), (f64, u64)>,
    /// Ready messages per (scheme, queue).
    queues: BTreeMap<(String, String), u64>,
}

/// The process-wide registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    ready: AtomicBool,
}

static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();

pub fn global() -> &'static Arc<Metrics> {
    METRICS.get_or_init(|| Arc::new(Metrics::default()))
}

impl Metrics {
    pub fn add(&self, metric: &'static str, scheme: &str, stage: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            *inner
                .counters
                .entry((metric, scheme.to_string(), stage))
                .or_default() += n;
        }
    }

    pub fn observe_batch(&self, scheme: &str, stage: &'static str, seconds: f64) {
        if let Ok(mut inner) = self.inner.lock() {
            let e = inner
                .batches
                .entry((scheme.to_string(), stage))
                .or_default();
            e.0 += seconds;
            e.1 += 1;
        }
    }

    pub fn set_queue_depth(&self, scheme: &str, queue: &str, messages: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .queues
                .insert((scheme.to_string(), queue.to_string()), messages);
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if *name == QUEUE_MESSAGES {
                for ((scheme, queue), value) in &inner.queues {
                    let _ = writeln!(
                        out,
                        "{name}{{scheme=\"{}\",queue=\"{}\"}} {value}",
                        escape(scheme),
                        escape(queue)
                    );
                }
                continue;
            }
            if *name == SOURCE_RETRIES {
                write_by_connection(&mut out, name, &ferry_sources::http::call_retries());
                continue;
            }
            if *name == BATCH_SECONDS {
                for ((scheme, stage), (sum, count)) in &inner.batches {
                    let labels = format!("scheme=\"{}\",stage=\"{stage}\"", escape(scheme));
                    let _ = writeln!(
                        out,
                        "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}"
                    );
                }
                continue;
            }
            for ((metric, scheme, stage), value) in &inner.counters {
                if metric == name {
                    let _ = writeln!(
                        out,
                        "{name}{{scheme=\"{}\",stage=\"{stage}\"}} {value}",
                        escape(scheme)
                    );
                }
            }
        }
        out
    }
}

/// Count what a message's records came to (see `State::settle` for `reconciled`; `None` when the
/// state database could not count them).
pub fn record_outcomes(
    scheme: &str,
    stage: &'static str,
    counts: &ferry_state::Counts,
    reconciled: Option<ferry_state::Reconciled>,
) {
    let m = global();
    for (metric, n) in [
        (RECORDS_INSERTED, counts.inserted),
        (RECORDS_UPDATED, counts.updated),
        (RECORDS_UNCHANGED, counts.unchanged),
        (RECORDS_KEPT, counts.kept),
        (RECORDS_ACCEPTED, counts.accepted),
        (RECORDS_WRITTEN, counts.written),
        (RECORDS_SKIPPED, counts.skipped),
    ] {
        m.add(metric, scheme, stage, n);
    }
    let reconciled = reconciled.unwrap_or_default();
    m.add(
        DEAD_LETTERS,
        scheme,
        stage,
        counts.dead.saturating_sub(reconciled.dead_again),
    );
    m.add(DEAD_LETTERS_RECOVERED, scheme, stage, reconciled.recovered);
}

/// One sample per connection (the sources keep these counts themselves).
fn write_by_connection(out: &mut String, name: &str, values: &[(String, u64)]) {
    for (connection, value) in values {
        let _ = writeln!(
            out,
            "{name}{{connection=\"{}\"}} {value}",
            escape(connection)
        );
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve /metrics, /healthz and /readyz until shutdown.
pub async fn serve(addr: &str, mut shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use axum::http::StatusCode;
    use axum::routing::get;

    let app = axum::Router::new()
        .route("/metrics", get(|| async { global().render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async {
                if global().is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics server: cannot listen on {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .context("metrics server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let m = Metrics::default();
        m.add(RECORDS_OUT, "a\"b", "load", 3);
        m.add(RECORDS_OUT, "a\"b", "load", 2);
        m.observe_batch("s", "load", 0.5);
        m.set_queue_depth("s", "ferry.s.load.dlq", 3);
        let text = m.render();
        assert!(
            text.contains("ferry_queue_messages{scheme=\"s\",queue=\"ferry.s.load.dlq\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("ferry_records_out_total{scheme=\"a\\\"b\",stage=\"load\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("ferry_batch_seconds_count{scheme=\"s\",stage=\"load\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ferry_source_retries_total counter\n"),
            "{text}"
        );
        let mut out = String::new();
        write_by_connection(&mut out, SOURCE_RETRIES, &[("jushuitan".into(), 4)]);
        assert_eq!(
            out,
            "ferry_source_retries_total{connection=\"jushuitan\"} 4\n"
        );
    }
}
