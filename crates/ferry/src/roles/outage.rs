//! Outages held by the queue: a scheme's target that does not answer at all is waited for, not
//! ground through the retry queues.
//!
//! When a batch fails with a `Transient` error, the worker asks the target whether it answers at
//! all ([`ferry_sinks::Sink::probe`]: a fresh connection and a ping). If it does, the failure was
//! the batch's (a lock wait, a deadlock) and goes to a retry queue as before. If it does not, the
//! service is down, and a retry schedule (1/2/3 s, say) would only dead-letter good records:
//!
//! 1. The worker keeps the message in hand, unacknowledged, and takes no other: the scheme's
//!    messages stay in their queue, untouched (no retry, no dead letter, no delivery counted).
//! 2. It probes the service every [`PROBE_EVERY_SECS`], logs that it is still down every
//!    [`SAY_EVERY_SECS`], and records the outage in the state database (`ferry status` shows
//!    "target down since T").
//! 3. When a probe answers, it handles the message it holds again and goes on consuming.
//! 4. A shutdown meanwhile puts the held message back in its queue as a new message (not a
//!    requeue, which a quorum queue would count against the delivery limit).
//!
//! The outages of a process are also kept in memory ([`Outages`]), where `ferry run --once` reads
//! them to say what it is waiting for and to stop waiting after `--outage-limit-secs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferry_state::State;

use crate::shutdown::Shutdown;

/// Seconds between two probes of a service that is down.
pub const PROBE_EVERY_SECS: u64 = 3;

/// Seconds between two "still down" lines in the log.
pub const SAY_EVERY_SECS: u64 = 10;

/// `ferry status` shows an outage a role renewed within this many seconds (an older row is of a
/// role that stopped while the service was down).
pub const OUTAGE_FRESH_SECS: u64 = 60;

/// Which service of a scheme is down. Only targets are probed so far; the state database's
/// `side` column leaves room for sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Target,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Target => "target",
        }
    }
}

/// One outage as this process sees it.
#[derive(Clone, Debug)]
pub struct Down {
    /// When a worker of this process first found the service unreachable.
    pub since: DateTime<Utc>,
    /// The same moment on this process's monotonic clock.
    pub started: Instant,
    /// What the last probe said.
    pub error: String,
}

/// The outages of this process's schemes, shared by their workers (and read by `run --once`).
#[derive(Clone, Default)]
pub struct Outages(Arc<Mutex<HashMap<(String, Side), Down>>>);

impl Outages {
    /// Every outage in progress: (scheme, side, since when).
    pub fn current(&self) -> Vec<(String, Side, Down)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|((scheme, side), down)| (scheme.clone(), *side, down.clone()))
            .collect();
        out.sort_by_key(|(_, _, d)| d.started);
        out
    }

    /// Note the outage (keeping its first `since`); true when this call began it.
    fn begin(&self, scheme: &str, side: Side, error: &str) -> (bool, Down) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut began = false;
        let down = map.entry((scheme.to_string(), side)).or_insert_with(|| {
            began = true;
            Down {
                since: Utc::now(),
                started: Instant::now(),
                error: error.to_string(),
            }
        });
        down.error = error.to_string();
        (began, down.clone())
    }

    /// The outage is over; `Some` (how it was) when this call ended it.
    fn end(&self, scheme: &str, side: Side) -> Option<Down> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(scheme.to_string(), side))
    }
}

/// Wait until `probe` answers, probing every [`PROBE_EVERY_SECS`]; `error` is what the failed
/// batch (or the first probe) said. True when the service is back, false when a shutdown came
/// first.
pub async fn hold<P, F>(
    outages: &Outages,
    state: &State,
    scheme: &str,
    side: Side,
    error: &str,
    probe: P,
    shutdown: &Shutdown,
) -> bool
where
    P: Fn() -> F,
    F: Future<Output = Result<(), String>>,
{
    use backon::{ConstantBuilder, Retryable};
    let what = side.as_str();
    let (began, down) = outages.begin(scheme, side, error);
    if began {
        tracing::warn!(
            scheme,
            side = what,
            error,
            "the {what} does not answer: its messages stay queued (no retry, no dead letter) \
             until it is back; probing every {PROBE_EVERY_SECS} s"
        );
    }
    seen(state, scheme, side, &down, error).await;
    let said = Mutex::new(Instant::now());
    let attempt = || async {
        let answer = probe().await;
        if let Err(e) = &answer {
            let down = outages.begin(scheme, side, e).1;
            seen(state, scheme, side, &down, e).await;
        }
        answer
    };
    let back = attempt
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_secs(PROBE_EVERY_SECS))
                .without_max_times(),
        )
        .notify(|e: &String, _| {
            let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
            if said.elapsed() >= Duration::from_secs(SAY_EVERY_SECS) {
                *said = Instant::now();
                tracing::warn!(
                    scheme,
                    side = what,
                    since = %down.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    down_secs = down.started.elapsed().as_secs(),
                    error = %e,
                    "the {what} is still down; its messages stay queued"
                );
            }
        });
    let mut stop = shutdown.clone();
    tokio::select! {
        _ = back => {}
        _ = stop.wait() => return false,
    }
    if let Some(down) = outages.end(scheme, side) {
        tracing::info!(
            scheme,
            side = what,
            down_secs = down.started.elapsed().as_secs(),
            "the {what} answers again; resuming its messages"
        );
    }
    let (state, scheme) = (state.clone(), scheme.to_string());
    tokio::spawn(async move {
        if let Err(e) = state.outage_over(&scheme, side.as_str()).await {
            tracing::debug!(scheme, error = %e, "could not clear the outage in the state database");
        }
    });
    true
}

/// Renew the outage in the state database, in the background: that database may be down too (it
/// may be the same server), which must not slow the probes.
async fn seen(state: &State, scheme: &str, side: Side, down: &Down, error: &str) {
    let (state, scheme, since, error) = (
        state.clone(),
        scheme.to_string(),
        down.since,
        error.to_string(),
    );
    tokio::spawn(async move {
        if let Err(e) = state
            .outage_seen(&scheme, side.as_str(), since, &error)
            .await
        {
            tracing::debug!(scheme, error = %e, "could not record the outage in the state database");
        }
    });
}
