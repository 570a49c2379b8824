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
//!
//! [`SpecToken`] is the generic `http` kind's token: fetched as the connection's
//! `[connections.<name>.token]` table ([`TokenSpec`]) says, for its source and its target alike.

use std::future::Future;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use ferry_core::FerryError;
use ferry_core::config::{TokenMethod, TokenSpec};
use ferry_state::State;
use serde_json::{Map, Value};

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

/// Most bytes of a token endpoint's answer quoted in an error.
const QUOTED_ANSWER_BYTES: usize = 300;

/// The bearer token of an `http` connection with a `[token]` table, cached in the state
/// database for every replica and every scheme on the connection.
#[derive(Clone, Debug)]
pub struct SpecToken {
    spec: TokenSpec,
    /// The token endpoint's URL, without query.
    endpoint: String,
    cache: TokenCache,
    client: reqwest::Client,
    timeout: Duration,
    connection: String,
}

impl SpecToken {
    /// The token of connection `connection` (at `base_url`) as `spec` says.
    pub fn new(
        connection: &str,
        base_url: &str,
        spec: &TokenSpec,
        state: State,
        client: reqwest::Client,
        timeout: Duration,
    ) -> SpecToken {
        let endpoint = if spec.url.contains("://") {
            spec.url.clone()
        } else {
            format!(
                "{}/{}",
                base_url.trim_end_matches('/'),
                spec.url.trim_start_matches('/')
            )
        };
        SpecToken {
            spec: spec.clone(),
            endpoint,
            cache: TokenCache::new(state, connection),
            client,
            timeout,
            connection: connection.to_string(),
        }
    }

    /// The header a call carries: its name and value (`prefix` + token). Never logged.
    pub async fn header(&self) -> Result<(String, String), FerryError> {
        let (token, _) = self.cache.get(|| self.fetch()).await?;
        Ok((
            self.spec.header.clone(),
            format!("{}{token}", self.spec.prefix),
        ))
    }

    /// The API refused the token: forget it, so that the next call fetches a new one.
    pub async fn forget(&self) -> Result<(), FerryError> {
        self.cache.forget().await
    }

    /// Ask the token endpoint. Unreachable, 408, 429 and 5xx are transient; any other refusal,
    /// or an answer without a token, stops the scheme (the credentials or the spec are wrong).
    async fn fetch(&self) -> Result<Token, FerryError> {
        let params: Vec<(&str, &str)> = self
            .spec
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let request = match self.spec.method {
            TokenMethod::Get => self.client.get(&self.endpoint).query(&params),
            TokenMethod::Post if self.spec.form => self.client.post(&self.endpoint).form(&params),
            TokenMethod::Post => {
                let body: Map<String, Value> = params
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                self.client.post(&self.endpoint).json(&body)
            }
        };
        let endpoint = ferry_core::error::redact_userinfo(&self.endpoint);
        let said = |what: &str| {
            format!(
                "connection `{}`: the token endpoint {endpoint} {what}",
                self.connection
            )
        };
        let unreachable = |e: reqwest::Error| {
            FerryError::transient(said(&format!(
                "could not be reached: {}",
                ferry_core::error::error_chain(&e.without_url())
            )))
        };
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if matches!(status.as_u16(), 408 | 429 | 500..=599) {
            return Err(FerryError::transient(said(&format!(
                "answered HTTP {status}: {}",
                quote(&text)
            ))));
        }
        if !status.is_success() {
            return Err(FerryError::config(format!(
                "{}; check the connection's `token.params` (its credentials)",
                said(&format!("answered HTTP {status}: {}", quote(&text)))
            )));
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let Some(token) = answer
            .pointer(&self.spec.token_at)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(FerryError::config(format!(
                "{}; check the connection's `token.params` and `token.token_at`",
                said(&format!(
                    "answered no token at {}: {}",
                    self.spec.token_at,
                    quote(&text)
                ))
            )));
        };
        let ttl_secs = answer
            .pointer(&self.spec.expires_at)
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .unwrap_or(self.spec.ttl_secs);
        Ok(Token {
            value: token.to_string(),
            extra: None,
            ttl: Duration::from_secs(ttl_secs),
        })
    }
}

/// At most [`QUOTED_ANSWER_BYTES`] of an answer (a refusal: it holds no token).
fn quote(text: &str) -> String {
    ferry_core::error::quote_answer(text, QUOTED_ANSWER_BYTES)
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
