//! From a scheme's `connection` names to opened sources and sinks.
//!
//! Pools are opened once per connection and shared by every scheme that names it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use ferry_core::FerryError;
use ferry_core::config::Connection;
use ferry_core::files::{Role, SchemeFile};
use ferry_core::template::Context;
use ferry_sinks::Sink;
use ferry_sources::Source;
use ferry_state::State;
use serde_json::Value;
use sqlx::mysql::MySqlPool;
use tokio::sync::Mutex;

use crate::app::App;
use crate::registry::{self, Opening};

pub struct Connections {
    app: Arc<App>,
    state: State,
    pools: Mutex<HashMap<String, MySqlPool>>,
    /// Connections whose clock was found skewed from Ferry's (logged once each).
    skewed: std::sync::Mutex<HashSet<String>>,
}

/// Seconds between Ferry's clock and a source's beyond which the skew is logged.
pub const SKEW_WARN_SECS: i64 = 60;

/// A MySQL source's clock at one instant: its wall time in the session's time zone (`NOW(6)`,
/// what the table's own `DEFAULT CURRENT_TIMESTAMP` columns hold) and the same instant in UTC
/// (`UTC_TIMESTAMP(6)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceClock {
    pub wall: NaiveDateTime,
    pub utc: DateTime<Utc>,
}

impl SourceClock {
    /// The source's UTC offset in seconds (to the minute).
    pub fn offset_secs(&self) -> i64 {
        let secs = (self.wall - self.utc.naive_utc()).num_seconds();
        (secs as f64 / 60.0).round() as i64 * 60
    }

    /// The zone a run shows this source's times in, and how far instants must be moved so that
    /// they read as the source's wall time in it. The scheme's zone when its offset is the
    /// source's now (DST included), else UTC or a whole-hour `Etc/GMT` zone; for other offsets
    /// (`+05:30`) UTC with the instants shifted, where `|timestamp` formatters are off by the
    /// shift.
    pub fn zone(&self, scheme_tz: Tz) -> (Tz, i64) {
        let offset = self.offset_secs();
        let at = self.utc.naive_utc();
        let fits =
            |tz: Tz| i64::from(tz.offset_from_utc_datetime(&at).fix().local_minus_utc()) == offset;
        if fits(scheme_tz) {
            return (scheme_tz, 0);
        }
        if offset % 3600 == 0 {
            // POSIX signs: UTC+8 is Etc/GMT-8.
            let hours = -offset / 3600;
            let name = match hours {
                0 => "UTC".to_string(),
                h if h > 0 => format!("Etc/GMT+{h}"),
                h => format!("Etc/GMT{h}"),
            };
            if let Ok(tz) = name.parse::<Tz>()
                && fits(tz)
            {
                return (tz, 0);
            }
        }
        (Tz::UTC, offset)
    }
}

impl Connections {
    pub fn new(app: Arc<App>, state: State) -> Connections {
        Connections {
            app,
            state,
            pools: Mutex::new(HashMap::new()),
            skewed: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// The clock of the scheme's source when it is a MySQL database (`SELECT NOW(6),
    /// UTC_TIMESTAMP(6)` on its pool, whose sessions keep the server's own time zone); None for
    /// sources that keep Ferry's clock. A skew of more than [`SKEW_WARN_SECS`] between the two
    /// clocks is logged once per connection, with both values.
    pub async fn source_clock(
        &self,
        scheme: &SchemeFile,
    ) -> Result<Option<SourceClock>, FerryError> {
        let name = &scheme.scheme.source.connection;
        let Connection::Mysql(_) = self.connection(name)? else {
            return Ok(None);
        };
        let pool = self.mysql_pool(name).await?;
        let (wall, utc): (NaiveDateTime, NaiveDateTime) =
            sqlx::query_as("SELECT NOW(6), UTC_TIMESTAMP(6)")
                .fetch_one(&pool)
                .await
                .map_err(|e| {
                    let err = ferry_state::mysql::classify(e);
                    let text = format!(
                        "connection `{name}`: reading the source's clock: {}",
                        err.message()
                    );
                    match err.class() {
                        ferry_core::ErrorClass::Config => FerryError::config(text),
                        _ => FerryError::transient(text),
                    }
                })?;
        let ferry = Utc::now();
        let clock = SourceClock {
            wall,
            utc: DateTime::from_naive_utc_and_offset(utc, Utc),
        };
        let skew = (ferry - clock.utc).num_seconds();
        if skew.abs() > SKEW_WARN_SECS
            && self
                .skewed
                .lock()
                .map(|mut seen| seen.insert(name.clone()))
                .unwrap_or(false)
        {
            tracing::warn!(
                connection = %name,
                ferry_utc = %ferry.format("%Y-%m-%d %H:%M:%S%.3f"),
                source_utc = %clock.utc.format("%Y-%m-%d %H:%M:%S%.3f"),
                source_now = %clock.wall.format("%Y-%m-%d %H:%M:%S%.3f"),
                skew_secs = skew,
                "the source's clock and Ferry's disagree; windows use the source's"
            );
        }
        Ok(Some(clock))
    }

    fn connection(&self, name: &str) -> Result<&Connection, FerryError> {
        self.app.connection(name).ok_or_else(|| {
            FerryError::config(format!("connection `{name}` is not defined in ferry.toml"))
        })
    }

    /// The shared pool of a MySQL connection.
    pub async fn mysql_pool(&self, name: &str) -> Result<MySqlPool, FerryError> {
        let mut pools = self.pools.lock().await;
        if let Some(pool) = pools.get(name) {
            return Ok(pool.clone());
        }
        let Connection::Mysql(conn) = self.connection(name)? else {
            return Err(FerryError::config(format!(
                "connection `{name}` is not a mysql connection"
            )));
        };
        let url = conn.url.expose();
        let pool = match ferry_state::mysql::connect(url, conn.max_connections, false).await {
            Ok(pool) => pool,
            Err(e) => {
                let err = ferry_state::mysql::classify_ref(&e);
                let text = format!(
                    "connection `{name}` ({}): {}",
                    ferry_core::redact::url(url),
                    err.message()
                );
                if err.class() == ferry_core::ErrorClass::Config {
                    return Err(FerryError::config(text));
                }
                // Unreachable is not misconfigured: the pool connects once the server answers,
                // and meanwhile the roles hold the scheme's messages in their queues.
                tracing::warn!(connection = %name, error = %text, "the database does not answer yet; connecting when it does");
                ferry_state::mysql::connect_lazy(url, conn.max_connections)
                    .map_err(|e| FerryError::config(format!("{text}: {e}")))?
            }
        };
        pools.insert(name.to_string(), pool.clone());
        Ok(pool)
    }

    /// The state database (token cache, ledger, rate-limit slots).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Open the scheme's source for one run, through its kind's factory; `cursor` continues an
    /// interrupted run after the page that saved it.
    pub async fn open_source(
        &self,
        scheme: &SchemeFile,
        ctx: Context<'static>,
        cursor: Option<&Value>,
    ) -> Result<Box<dyn Source>, FerryError> {
        let name = &scheme.scheme.source.connection;
        let connection = self.connection(name)?;
        let factory = registry::factories(connection)
            .source
            .ok_or_else(|| registry::cannot_open(name, connection, Role::Source))?;
        let opening = Opening {
            connections: self,
            name,
            connection,
            scheme,
        };
        let mut source = factory(&opening, ctx).await?;
        if let Some(cursor) = cursor {
            source.resume_at(cursor)?;
        }
        Ok(source)
    }

    /// Open the scheme's target, through its kind's factory.
    pub async fn open_sink(&self, scheme: &SchemeFile) -> Result<Arc<dyn Sink>, FerryError> {
        let name = &scheme.scheme.target.connection;
        let connection = self.connection(name)?;
        let factory = registry::factories(connection)
            .sink
            .ok_or_else(|| registry::cannot_open(name, connection, Role::Target))?;
        let opening = Opening {
            connections: self,
            name,
            connection,
            scheme,
        };
        factory(&opening).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(wall: &str, utc: &str) -> SourceClock {
        let parse = |t: &str| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        SourceClock {
            wall: parse(wall),
            utc: DateTime::from_naive_utc_and_offset(parse(utc), Utc),
        }
    }

    #[test]
    fn a_source_clock_is_shown_in_a_zone_with_its_offset() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // A UTC server, a scheme at the default zone.
        let utc = clock("2026-12-01 08:00:00.250", "2026-12-01 08:00:00.250");
        assert_eq!(utc.zone(shanghai), (Tz::UTC, 0));
        // A server at +08:00 and the scheme in Shanghai: the scheme's own zone.
        let east = clock("2026-12-01 16:00:00", "2026-12-01 08:00:00");
        assert_eq!(east.offset_secs(), 8 * 3600);
        assert_eq!(east.zone(shanghai), (shanghai, 0));
        // A server at -05:00: Etc/GMT+5 (POSIX signs).
        let west = clock("2026-12-01 03:00:00", "2026-12-01 08:00:00");
        assert_eq!(west.zone(shanghai), (chrono_tz::Etc::GMTPlus5, 0));
        // +05:30 has no Etc zone: UTC, instants shifted by the offset.
        let india = clock("2026-12-01 13:30:00", "2026-12-01 08:00:00");
        assert_eq!(india.zone(shanghai), (Tz::UTC, 5 * 3600 + 1800));
    }
}
