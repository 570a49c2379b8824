//! Connecting to MySQL / MariaDB.
//!
//! Every pool Ferry opens (its state database, a scheme's source or target) goes through
//! [`connect`]: utf8mb4 always, and the server's own time zone and `sql_mode` rather than sqlx's
//! defaults (`+00:00`, `PIPES_AS_CONCAT`), because schemes paste SQL written for a stock server.
//! Errors name the host and database, never the password.

use std::str::FromStr;
use std::time::Duration;

use ferry_core::FerryError;
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

/// How long to wait for a connection from the pool before calling the database unreachable.
pub const ACQUIRE_TIMEOUT_SECS: u64 = 10;

/// The database name in a MySQL URL (`mysql://u@h:3306/db?x=y` gives `db`).
pub fn database_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')? + 1..];
    let db = path.split('?').next().unwrap_or("");
    (!db.is_empty()).then(|| db.to_string())
}

/// The same URL without a database, for `CREATE DATABASE`.
fn server_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.find('/') {
        Some(i) => {
            let query = rest[i..].split_once('?').map(|(_, q)| format!("?{q}"));
            format!("{scheme}://{}/{}", &rest[..i], query.unwrap_or_default())
        }
        None => url.to_string(),
    }
}

fn options(url: &str) -> Result<MySqlConnectOptions, sqlx::Error> {
    Ok(MySqlConnectOptions::from_str(url)?
        .charset("utf8mb4")
        .timezone(None)
        .pipes_as_concat(false)
        .statement_cache_capacity(256))
}

/// Open a pool. With `create_database`, a missing database is created (utf8mb4) first.
pub async fn connect(
    url: &str,
    max_connections: u32,
    create_database: bool,
) -> Result<MySqlPool, sqlx::Error> {
    if create_database && let Some(db) = database_of(url) {
        let server = MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(ACQUIRE_TIMEOUT_SECS))
            .connect_with(options(&server_url(url))?)
            .await?;
        let ddl = format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            db.replace('`', "``")
        );
        sqlx::query(sqlx::AssertSqlSafe(ddl))
            .execute(&server)
            .await?;
        server.close().await;
    }
    MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(ACQUIRE_TIMEOUT_SECS))
        .connect_with(options(url)?)
        .await
}

/// Open a pool that connects on first use: for a scheme's source or target that is unreachable
/// when a role starts (its messages wait in their queue until it answers; see the worker's outage
/// hold), where [`connect`] would fail at once.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<MySqlPool, sqlx::Error> {
    Ok(MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(ACQUIRE_TIMEOUT_SECS))
        .connect_lazy_with(options(url)?))
}

/// How long [`probe`] waits for a fresh connection and its ping.
pub const PROBE_TIMEOUT_SECS: u64 = 5;

/// Whether the server of `pool` answers: a fresh connection (not one from the pool, which may be
/// a stale one) and a ping, within [`PROBE_TIMEOUT_SECS`]. `Err` says why not, without a password.
pub async fn probe(pool: &MySqlPool) -> Result<(), String> {
    use sqlx::{ConnectOptions, Connection};
    let options = pool.connect_options();
    let attempt = async {
        let mut conn = options.connect().await?;
        conn.ping().await?;
        conn.close().await
    };
    match tokio::time::timeout(Duration::from_secs(PROBE_TIMEOUT_SECS), attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("MySQL: {e}")),
        Err(_) => Err(format!(
            "MySQL: no connection within {PROBE_TIMEOUT_SECS} s"
        )),
    }
}

/// Bind JSON values to a query in order: integers as integers (`BIGINT UNSIGNED` too), other
/// numbers as doubles, strings as strings (exact decimals and dates included, the server
/// converts them), `{"$bytes": ..}` as bytes, other objects and arrays as their JSON text.
pub fn bind_values<'q>(
    query: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    values: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    bind_all(query, values)
}

/// [`bind_values`] over values wherever they are (a multi-row statement binds every row's
/// values straight from its records, with no copy).
pub fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    values: impl IntoIterator<Item = &'q Value>,
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    for value in values {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => query.bind(i),
                (None, Some(u)) => query.bind(u),
                _ => query.bind(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => query.bind(s.as_str()),
            other => match ferry_core::record::as_bytes(other) {
                Some(bytes) => query.bind(bytes),
                None => query.bind(other.to_string()),
            },
        };
    }
    query
}

/// Classify a MySQL error into what the pipeline must do about it.
pub fn classify(err: sqlx::Error) -> FerryError {
    classify_ref(&err)
}

/// See [`classify`]. Data errors (SQLSTATE class 22 and 23, incorrect values) are the record's
/// fault; syntax, unknown tables and columns, and access errors (class 42, 28) are configuration;
/// everything else (lost connections, lock waits, deadlocks, pool timeouts) is transient.
pub fn classify_ref(err: &sqlx::Error) -> FerryError {
    match err {
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number())
                .unwrap_or(0);
            let state = db.code().map(|c| c.to_string()).unwrap_or_default();
            let message = format!("MySQL error {number} ({state}): {}", db.message());
            match (state.get(..2).unwrap_or(""), number) {
                (_, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927) => {
                    FerryError::transient(message)
                }
                (_, 1044 | 1045 | 1049 | 1142 | 1143 | 1146 | 1054 | 1064 | 1149) => {
                    FerryError::config(message)
                }
                ("22" | "23", _) => FerryError::record(message),
                (
                    _,
                    1364 | 1366 | 1367 | 1406 | 1264 | 1265 | 1292 | 1048 | 1452 | 1451 | 1062
                    | 3819 | 4025,
                ) => FerryError::record(message),
                ("42" | "28", _) => FerryError::config(message),
                _ => FerryError::transient(message),
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            FerryError::record(err.to_string())
        }
        sqlx::Error::Configuration(_) => FerryError::config(err.to_string()),
        _ => FerryError::transient(format!("MySQL: {err}")),
    }
}

/// True if the error is a duplicate key (MySQL 1062).
pub fn is_duplicate_key(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number()) == Some(1062))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_and_server_urls() {
        assert_eq!(
            database_of("mysql://root@h:3306/ferry?ssl-mode=disabled").as_deref(),
            Some("ferry")
        );
        assert_eq!(database_of("mysql://root@h:3306"), None);
        assert_eq!(
            server_url("mysql://root@h:3306/ferry?a=b"),
            "mysql://root@h:3306/?a=b"
        );
    }
}
