//! The sandbox's shared state: the seeded datasets (read-only), and behind one mutex the fault
//! knobs, call statistics, issued tokens, rate windows and the robot's inbox.
//!
//! The mutex is a `std::sync::Mutex` held only for short, synchronous bookkeeping, never across
//! an `.await`; simulated slowness sleeps after the lock is released.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::data::{Shop, User, YidaInstance};
use crate::options::{EndpointFaults, FaultKey, Faults, SandboxOptions};

/// Expired tokens are dropped once this many are stored.
const PRUNE_TOKENS_ABOVE: usize = 10_000;

/// What a fault knob decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Answer the vendor's throttling response.
    Throttle,
    /// Answer HTTP 503.
    Unavailable,
}

/// Per-endpoint counters the fault knobs work from; reset whenever the knobs change.
#[derive(Clone, Copy, Debug, Default)]
struct FaultCounters {
    calls: u64,
    burst_left: u32,
}

/// Calls per route, by HTTP status.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RouteStats {
    pub calls: u64,
    pub statuses: BTreeMap<u16, u64>,
}

/// A message the robot accepted.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RobotMessage {
    pub received_at: String,
    pub received_at_ms: i64,
    pub body: serde_json::Value,
}

/// The robot's rate window and inbox.
#[derive(Debug, Default)]
pub(crate) struct RobotState {
    pub accepted_at: VecDeque<Instant>,
    pub throttled_until: Option<Instant>,
    pub messages: Vec<RobotMessage>,
}

/// A request the collect API took.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Collected {
    pub method: String,
    /// The path below `/collect`.
    pub path: String,
    pub content_type: String,
    /// The body: JSON as sent, a form as an object of its fields.
    pub body: serde_json::Value,
}

/// A Kingdee app authorised through `push_app_authorize`.
#[derive(Clone, Debug)]
pub(crate) struct KingdeeApp {
    pub outer_instance_id: String,
    /// Bumped each time the appSecret rotates.
    pub generation: u64,
    pub secret_issued: Instant,
    pub auth_token_calls: VecDeque<Instant>,
}

/// Everything mutable.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    faults: Faults,
    counters: HashMap<FaultKey, FaultCounters>,
    pub stats: BTreeMap<String, RouteStats>,
    /// Issued bearer tokens (all vendors share the space; prefixes keep them apart) -> expiry.
    pub tokens: HashMap<String, Instant>,
    /// OKKI: the live token per client id, so asking again does not extend it.
    pub okki_client_tokens: HashMap<String, String>,
    /// Jushuitan refresh tokens issued by refreshToken (single use).
    pub jushuitan_refresh_tokens: HashMap<String, Instant>,
    /// Jushuitan calls within the last minute, for its own rate limits.
    pub jushuitan_calls: VecDeque<Instant>,
    pub kingdee_apps: HashMap<String, KingdeeApp>,
    pub robot: RobotState,
    pub wecom: RobotState,
    pub feishu: RobotState,
    /// What the collect API took, oldest first.
    pub collected: Vec<Collected>,
    pub next_token: u64,
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub options: SandboxOptions,
    pub yida: Vec<YidaInstance>,
    pub shops: Vec<Shop>,
    pub users: Vec<User>,
    inner: Mutex<Inner>,
}

impl AppState {
    pub(crate) fn new(
        options: SandboxOptions,
        yida: Vec<YidaInstance>,
        shops: Vec<Shop>,
        users: Vec<User>,
    ) -> Arc<Self> {
        let inner = Inner {
            faults: options.faults.clone(),
            counters: FaultKey::ALL
                .into_iter()
                .map(|key| (key, counters_for(options.faults.get(key))))
                .collect(),
            ..Inner::default()
        };
        Arc::new(AppState {
            options,
            yida,
            shops,
            users,
            inner: Mutex::new(inner),
        })
    }

    /// The mutable state. A handler that panicked while holding the lock cannot leave it
    /// half-updated in a way that matters for a simulator, so a poisoned lock is simply reused.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a call against `key`'s fault knobs, sleeps if the call is to be slow, and says
    /// whether the call must fail instead of being answered normally.
    pub(crate) async fn fault_gate(&self, key: FaultKey) -> Option<Injected> {
        let (delay, injected) = {
            let mut inner = self.lock();
            let knobs = *inner.faults.get(key);
            let counters = inner.counters.entry(key).or_default();
            counters.calls += 1;
            let calls = counters.calls;
            let delay = match (knobs.slow_ms, knobs.slow_every) {
                (Some(ms), Some(every)) if every > 0 && calls.is_multiple_of(u64::from(every)) => {
                    ms
                }
                (Some(ms), None) => ms,
                _ => 0,
            };
            let injected = if counters.burst_left > 0 {
                counters.burst_left -= 1;
                Some(Injected::Unavailable)
            } else if matches!(knobs.throttle_every, Some(every) if every > 0 && calls.is_multiple_of(u64::from(every)))
            {
                Some(Injected::Throttle)
            } else {
                None
            };
            (delay, injected)
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        injected
    }

    /// The lifetime of tokens `key` issues.
    pub(crate) fn token_ttl(&self, key: FaultKey, default_secs: u64) -> Duration {
        let inner = self.lock();
        Duration::from_secs(inner.faults.get(key).token_ttl_secs.unwrap_or(default_secs))
    }

    /// True when the call `fault_gate` just counted for `key` is one whose answer is to be lost.
    pub(crate) fn loses_answer(&self, key: FaultKey) -> bool {
        let inner = self.lock();
        let calls = inner.counters.get(&key).map_or(0, |c| c.calls);
        matches!(inner.faults.get(key).lose_answer_every,
            Some(every) if every > 0 && calls.is_multiple_of(u64::from(every)))
    }

    /// Current knobs.
    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces one endpoint's knobs and restarts its counters.
    pub(crate) fn set_faults(&self, key: FaultKey, knobs: EndpointFaults) {
        let mut inner = self.lock();
        *inner.faults.get_mut(key) = knobs;
        inner.counters.insert(key, counters_for(&knobs));
    }

    /// Issues a fresh token with the given prefix, valid for `ttl`.
    pub(crate) fn issue_token(inner: &mut Inner, prefix: &str, ttl: Duration) -> String {
        // A long-running sandbox issues tokens forever; forget expired ones now and then.
        if inner.tokens.len() >= PRUNE_TOKENS_ABOVE {
            let now = Instant::now();
            inner.tokens.retain(|_, expiry| now < *expiry);
        }
        inner.next_token += 1;
        let token = format!("{prefix}-{:016x}", mix(inner.next_token));
        inner.tokens.insert(token.clone(), Instant::now() + ttl);
        token
    }

    /// Whether `token` was issued and has not expired (a TTL of 0 expires it at once).
    pub(crate) fn token_valid(&self, token: &str) -> bool {
        let inner = self.lock();
        inner
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }
}

fn counters_for(knobs: &EndpointFaults) -> FaultCounters {
    FaultCounters {
        calls: 0,
        burst_left: knobs.burst_5xx.unwrap_or(0),
    }
}

/// Scrambles a counter into token-looking hex (tokens must not be guessable from each other
/// in a way that makes a test pass by accident).
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Middleware: counts every routed call by `METHOD /path` and answer status, for
/// `GET /_sandbox/stats`.
pub(crate) async fn record_stats(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // Every route but the dataset one is a fixed path, so the path names the route.
    let key = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let mut inner = state.lock();
    let stats = inner.stats.entry(key).or_default();
    stats.calls += 1;
    *stats
        .statuses
        .entry(response.status().as_u16())
        .or_default() += 1;
    response
}
