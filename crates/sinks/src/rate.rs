//! The rate-limit slot shared by every replica of a target: a sliding window kept in the state
//! database (`State::take_rate_slot`), so three loaders posting to one robot or API together stay
//! under its limit. A request first takes a slot; when the service still answers "too fast"
//! (someone else uses the same robot or key), the caller waits a window and tries again, a
//! bounded number of times ([`RateSlot::retry_throttled`]).

use std::future::Future;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use ferry_core::FerryError;
use ferry_state::State;

/// Added to the limiter's window. A slot is taken just before a request leaves, but the service
/// counts a request when it arrives; the margin absorbs the difference in latency between two
/// requests, so that what the limiter lets through never exceeds the limit at the service.
pub const RATE_MARGIN_MS: u64 = 1_000;
/// The margin of a per-second limiter: latency differences are far below a second.
const PER_SECOND_MARGIN_MS: u64 = 200;

/// One limiter, by name, shared through the state database.
#[derive(Clone, Debug)]
pub(crate) struct RateSlot {
    state: State,
    /// `robot:<connection>` and the like: one limiter per robot or API, whichever scheme uses it.
    name: String,
    per_window: u32,
    window: Duration,
    /// A second limit per second, for services that have one on top (Feishu: 5 a second).
    per_second: Option<u32>,
    /// No shared limit: only the throttle retries apply.
    unlimited: bool,
    /// The wait before a throttled request is tried again, when not the window.
    retry_wait: Option<Duration>,
    /// How often a throttled request is tried again, a window apart.
    pub(crate) throttle_retries: usize,
}

impl RateSlot {
    pub(crate) fn new(
        state: State,
        name: String,
        per_window: u32,
        window: Duration,
        throttle_retries: usize,
    ) -> RateSlot {
        RateSlot {
            state,
            name,
            per_window: per_window.max(1),
            window,
            per_second: None,
            unlimited: false,
            retry_wait: None,
            throttle_retries,
        }
    }

    /// A service without a known limit: no slot to take, throttle answers still retried.
    pub(crate) fn unlimited(state: State, throttle_retries: usize) -> RateSlot {
        RateSlot {
            unlimited: true,
            ..RateSlot::new(state, String::new(), 1, Duration::ZERO, throttle_retries)
        }
    }

    /// Wait `wait`, not a window, before trying a throttled request again.
    pub(crate) fn with_retry_wait(mut self, wait: Duration) -> RateSlot {
        self.retry_wait = Some(wait);
        self
    }

    /// The same limiter with a per-second limit on top.
    pub(crate) fn with_per_second(mut self, per_second: Option<u32>) -> RateSlot {
        self.per_second = per_second.map(|n| n.max(1));
        self
    }

    /// The window plus [`RATE_MARGIN_MS`]: how long a slot is held, and how long a throttled
    /// request waits before it is tried again.
    pub(crate) fn window(&self) -> Duration {
        self.window + Duration::from_millis(RATE_MARGIN_MS)
    }

    /// Wait for a slot of the shared limiter (and of its per-second one, if any).
    pub(crate) async fn take(&self) -> Result<(), FerryError> {
        if self.unlimited {
            return Ok(());
        }
        self.take_one(&self.name, self.per_window, self.window())
            .await?;
        if let Some(per_second) = self.per_second {
            let second = Duration::from_millis(1_000 + PER_SECOND_MARGIN_MS);
            self.take_one(&format!("{}:1s", self.name), per_second, second)
                .await?;
        }
        Ok(())
    }

    async fn take_one(
        &self,
        name: &str,
        per_window: u32,
        window: Duration,
    ) -> Result<(), FerryError> {
        loop {
            match self.state.take_rate_slot(name, per_window, window).await? {
                None => return Ok(()),
                Some(wait) => {
                    tracing::debug!(limiter = %name, wait_ms = wait.as_millis() as u64, "rate limit: waiting for a slot");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Run `attempt` (which takes its own slot), and while it fails with an error `throttled`
    /// recognises, wait a window and run it again, at most `throttle_retries` times. `what`
    /// names the service in the warning.
    pub(crate) async fn retry_throttled<T, E, F, Fut>(
        &self,
        what: &str,
        attempt: F,
        throttled: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Debug,
    {
        attempt
            .retry(
                ConstantBuilder::new()
                    .with_delay(self.retry_wait.unwrap_or_else(|| self.window()))
                    .with_max_times(self.throttle_retries),
            )
            .when(|e| throttled(e))
            .notify(|e, wait| {
                tracing::warn!(limiter = %self.name, error = ?e, wait_secs = wait.as_secs(), "{what} throttled; waiting out the window");
            })
            .await
    }
}
