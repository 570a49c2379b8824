//! `[console]`: the operator console (`ferry console`), its login and its links.
//!
//! The console shows business data and can move dead letters, so it has no anonymous mode:
//! `ferry console` refuses to start unless the section names a token, or a user and a password
//! (each secret through `${VAR}`, so it never sits in the file). An empty value (an unset
//! `${FERRY_CONSOLE_TOKEN:-}`) counts as absent, so the shipped `ferry.toml` can carry the section
//! without every other command needing the variable. The listen address defaults to loopback.

use super::Secret;
use super::read::{Report, TableReader};

/// Default `[console] listen`: loopback only.
pub const DEFAULT_CONSOLE_LISTEN: &str = "127.0.0.1:9190";
/// Default `[console] jaeger_url`: Jaeger's UI as docker-compose.yml publishes it.
pub const DEFAULT_JAEGER_URL: &str = "http://127.0.0.1:16686/trace/{trace_id}";
/// Shortest accepted token or password: a guessable secret guards nothing.
pub const MIN_CONSOLE_SECRET_LEN: usize = 12;

/// `[console]`: how operators log in to `ferry console`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleConfig {
    /// Address the console listens on (default `127.0.0.1:9190`); `ferry console --listen`
    /// overrides it.
    pub listen: String,
    /// A shared login token (e.g. `"${FERRY_CONSOLE_TOKEN}"`).
    pub token: Option<Secret>,
    /// A user name, for a user/password login (with `password`).
    pub user: Option<String>,
    /// That user's password (e.g. `"${FERRY_CONSOLE_PASSWORD}"`).
    pub password: Option<Secret>,
    /// Link to a run's trace; `{trace_id}` is replaced by the run's trace id
    /// (default `http://127.0.0.1:16686/trace/{trace_id}`).
    pub jaeger_url: String,
    /// Minutes a login stays valid without use (default 480).
    pub session_minutes: u64,
}

impl ConsoleConfig {
    /// True when a login is configured (a token, or a user and a password).
    pub fn has_login(&self) -> bool {
        self.token.is_some() || (self.user.is_some() && self.password.is_some())
    }

    pub(crate) fn read(mut r: TableReader<'_>, report: &mut Report) -> Self {
        let config = ConsoleConfig {
            listen: r.string_or(report, "listen", DEFAULT_CONSOLE_LISTEN),
            token: r.opt_secret(report, "token").filter(|s| !s.is_empty()),
            user: r.opt_string(report, "user").filter(|s| !s.is_empty()),
            password: r.opt_secret(report, "password").filter(|s| !s.is_empty()),
            jaeger_url: r.string_or(report, "jaeger_url", DEFAULT_JAEGER_URL),
            session_minutes: r.uint(report, "session_minutes", 1..=10_080, 480),
        };
        if config.user.is_some() != config.password.is_some() {
            let missing = if config.user.is_some() {
                "password"
            } else {
                "user"
            };
            report.error(
                &r.path_of(missing),
                "`user` and `password` go together: set both, or use `token`",
            );
        }
        for (key, secret) in [("token", &config.token), ("password", &config.password)] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose().chars().count() < MIN_CONSOLE_SECRET_LEN)
            {
                report.error(
                    &r.path_of(key),
                    format!("too short: use at least {MIN_CONSOLE_SECRET_LEN} characters"),
                );
            }
        }
        r.finish(report);
        config
    }
}
