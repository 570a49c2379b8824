//! The state database restarted, or unreachable for a while: the roles' writes to it wait.
//!
//! A role counts every page and every settled message in the state database. Those counts decide
//! when a run is `done` (and so when `ferry run --once` ends), so one given up on is a run that
//! never ends. A write that fails because the server does not answer (the connection was cut, the
//! pool found no live connection within its timeout, the server is shutting down) is tried again
//! with backoff (0.2 s doubling up to [`STATE_RETRY_MAX_SECS`]) for up to [`STATE_WAIT_SECS`];
//! meanwhile the worker takes no other message, so its scheme's messages wait in their queue. Any
//! other error (a statement the server refused) is returned at once.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use ferry_state::StateError;

/// How long a role waits for the state database before giving up one write.
pub const STATE_WAIT_SECS: u64 = 600;

/// The longest pause between two attempts.
pub const STATE_RETRY_MAX_SECS: u64 = 5;

/// Run `op` until it succeeds, fails with an error that is not the server's absence, or
/// [`STATE_WAIT_SECS`] passed. `what` names the write for the log ("counting settled records").
pub async fn patiently<T, F, Fut>(what: &str, op: F) -> Result<T, StateError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StateError>>,
{
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(STATE_RETRY_MAX_SECS))
        .with_total_delay(Some(Duration::from_secs(STATE_WAIT_SECS)))
        .without_max_times();
    op.retry(policy)
        .when(unreachable)
        .notify(|e, after| {
            tracing::warn!(
                error = %e,
                retry_in_ms = after.as_millis() as u64,
                "{what}: the state database does not answer; waiting for it (this worker takes no \
                 other message meanwhile)"
            )
        })
        .await
}

/// Whether `err` says the state database could not be reached or went away, rather than that it
/// refused a statement.
pub fn unreachable(err: &StateError) -> bool {
    let source = match err {
        StateError::Connect { source, .. } | StateError::Query(source) => source,
        _ => return false,
    };
    match source {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Server shutdown in progress, connection killed, server gone away, lost connection,
        // too many connections (while it starts up), lock wait timeout and deadlock.
        sqlx::Error::Database(db) => matches!(
            db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number()),
            Some(1040 | 1053 | 1205 | 1213 | 1927 | 2006 | 2013)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_went_away_is_waited_for_and_a_refused_statement_is_not() {
        let io = StateError::Query(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(unreachable(&io));
        assert!(unreachable(&StateError::Query(sqlx::Error::PoolTimedOut)));
        assert!(!unreachable(&StateError::Query(sqlx::Error::RowNotFound)));
        assert!(!unreachable(&StateError::Corrupt {
            scheme: "s".into(),
            message: "m".into()
        }));
    }
}
