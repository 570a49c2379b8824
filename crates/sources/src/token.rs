//! Access tokens cached in the state database, shared by every scheme and replica on a
//! connection.
//!
//! A vendor token (DingTalk `accessToken`, OKKI bearer token, Kingdee `app-token`, a refreshed
//! Jushuitan `access_token`) is fetched once and stored under the connection's name in
//! `ferry_tokens`. It is stored with an expiry *before* the vendor's: [`refresh_margin`] of its
//! lifetime is cut off, so every reader refreshes it while the old one still works and no call
//! goes out with a token about to die.
//!
//! Several replicas finding the cache empty at once would each ask the vendor (and some vendors
//! rate-limit their token endpoint: Kingdee's allows 2 calls a minute). So the fetch happens
//! under a short lease in the state database: one process fetches, the others wait for its result.

use std::future::Future;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use ferry_core::FerryError;
use ferry_state::State;
use serde_json::Value;

/// Longest part of a token's lifetime cut off before the vendor's expiry (5 minutes).
pub const REFRESH_MARGIN_MAX_SECS: u64 = 300;
/// How long one process may hold the fetch lease (a token fetch that takes longer has failed).
pub const FETCH_LEASE_SECS: u64 = 30;
/// Pause between looks at the cache while another process fetches the token.
const WAIT_STEP_MS: u64 = 200;

/// A token as a vendor handed it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// The token itself. Never logged.
    pub value: String,
    /// What else the connection needs with it (Kingdee's `domain`, Jushuitan's refresh token).
    pub extra: Option<Value>,
    /// How long the vendor says it lives.
    pub ttl: Duration,
}

/// How much of a lifetime of `ttl` is cut off: a fifth of it, at most
/// [`REFRESH_MARGIN_MAX_SECS`] (a 2-hour DingTalk token is refreshed 5 minutes early, a
/// 10-second test token 2 seconds early).
pub fn refresh_margin(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_secs(REFRESH_MARGIN_MAX_SECS))
}

/// The token cache of one connection.
#[derive(Clone, Debug)]
pub struct TokenCache {
    state: State,
    connection: String,
}

impl TokenCache {
    /// The cache of `connection` (its name in `ferry.toml`).
    pub fn new(state: State, connection: &str) -> TokenCache {
        TokenCache {
            state,
            connection: connection.to_string(),
        }
    }

    /// The cached token, if one is stored and not yet due for refreshing.
    pub async fn cached(&self) -> Result<Option<(String, Option<Value>)>, FerryError> {
        let row = self.state.token(&self.connection, Duration::ZERO).await?;
        Ok(row.map(|(token, extra)| {
            let extra = extra.and_then(|text| serde_json::from_str(&text).ok());
            (token, extra)
        }))
    }

    /// Store `token` for every reader, due for refreshing [`refresh_margin`] before it expires.
    pub async fn save(&self, token: &Token) -> Result<(), FerryError> {
        let extra = token.extra.as_ref().map(Value::to_string);
        let ttl = token.ttl.saturating_sub(refresh_margin(token.ttl));
        self.state
            .save_token(&self.connection, &token.value, extra.as_deref(), ttl)
            .await?;
        Ok(())
    }

    /// Drop the cached token (the vendor refused it), so that the next reader fetches a new one.
    pub async fn forget(&self) -> Result<(), FerryError> {
        self.state.forget_token(&self.connection).await?;
        Ok(())
    }

    /// The cached token, or a new one from `fetch`, stored for every other reader.
    ///
    /// Only one process fetches at a time: the others wait for its result (up to
    /// [`FETCH_LEASE_SECS`]) and then fetch themselves if none appeared.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<(String, Option<Value>), FerryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, FerryError>>,
    {
        let lease = format!("token:{}", self.connection);
        let owner = uuid::Uuid::now_v7().simple().to_string();
        let lease_ttl = Duration::from_secs(FETCH_LEASE_SECS);
        let deadline = tokio::time::Instant::now() + lease_ttl;
        let (lease, owner) = (lease.as_str(), owner.as_str());
        // A look: the cached token, else the lease; while another process holds the lease,
        // look again every WAIT_STEP_MS until it has held it for as long as a lease lasts.
        let look = move || async move {
            if let Some(found) = self.cached().await.map_err(Look::Failed)? {
                return Ok(Some(found));
            }
            match self.state.try_lock(lease, owner, lease_ttl).await {
                Ok(true) => Ok(None),
                Ok(false) => Err(Look::Busy),
                Err(err) => Err(Look::Failed(err.into())),
            }
        };
        let held = match look
            .retry(
                ConstantBuilder::default()
                    .with_delay(Duration::from_millis(WAIT_STEP_MS))
                    .without_max_times(),
            )
            .when(|look| matches!(look, Look::Busy) && tokio::time::Instant::now() < deadline)
            .await
        {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => true,
            // The holder took too long: fetch without the lease.
            Err(Look::Busy) => false,
            Err(Look::Failed(err)) => return Err(err),
        };
        // Someone may have stored a token between our last look and taking the lease.
        if let Some(found) = self.cached().await? {
            if held {
                let _ = self.state.unlock(lease, owner).await;
            }
            return Ok(found);
        }
        let fetched = fetch().await;
        let outcome = match fetched {
            Ok(token) => self.save(&token).await.map(|()| (token.value, token.extra)),
            Err(err) => Err(err),
        };
        if held {
            // A failed unlock only delays the next fetcher until the lease expires.
            let _ = self.state.unlock(lease, owner).await;
        }
        outcome
    }
}

/// A look at the token cache that found no token.
enum Look {
    /// Another process holds the fetch lease.
    Busy,
    /// The state database failed.
    Failed(FerryError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_fifth_capped_at_five_minutes() {
        assert_eq!(
            refresh_margin(Duration::from_secs(7200)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }
}
