//! The MySQL/MariaDB binlog source (`api: "binlog"` on a `mysql` connection): every insert,
//! update and delete of the tables a scheme names, in commit order, read from the server's
//! row-based binary log as a replica reads it (`mysql_async`'s binlog stream: `COM_REGISTER_SLAVE`
//! then `COM_BINLOG_DUMP` from a file and position).
//!
//! One run, in order:
//! 1. check the server: binary log on, `binlog_format = ROW`, `binlog_row_image = FULL`, and the
//!    user's `REPLICATION CLIENT` (reading the binlog position) — each failure says what to do;
//! 2. without a saved cursor, copy the named tables (the snapshot) inside one
//!    `START TRANSACTION WITH CONSISTENT SNAPSHOT`, whose binlog position MariaDB gives as
//!    `binlog_snapshot_file`/`_position` (on MySQL, a short `FLUSH TABLES WITH READ LOCK` around
//!    `SHOW MASTER STATUS`); the snapshot pages go by primary key;
//! 3. then follow the binlog from that position for as long as the run lasts (a binlog run does
//!    not end by itself; it stops on a signal or an error, and the next run resumes it).
//!
//! Each page ends on a transaction boundary, or inside a large transaction as its start plus the
//! number of its rows already published. Its cursor, `{"binlog": {"file", "pos", "skip"}}` (and
//! `"snapshot": {"table", "after"}` while the copy goes on), is saved by the extractor only once
//! the broker confirmed the page, so a restart reads again from exactly there: a page in flight
//! comes back with the same record ids, which idempotent writes absorb.
//!
//! A record is the row after the change (before it, for a delete) with `_op` (`insert`,
//! `update`, `delete`), `_table` (`db.table`), `_ts` (the change's time in the binlog, on the
//! source's clock), `_pos` (`file:position` of its transaction) and `_before` (the row before an
//! update or delete, else null). Snapshot rows are `insert`s with `_snapshot: true`. Values are
//! those of the `select` source ([`crate::row`]): decimals as exact text, dates as the server
//! writes them, bytes as `{"$bytes": ..}`.

mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_core::connector::mysql::BinlogOptions;
use ferry_core::scheme::Metadata;
use ferry_core::{FerryError, Record};
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use serde_json::{Map, Value, json};
use sqlx::mysql::{MySql, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::row::RowDecoder;
use crate::{Page, Source};
use schema::Table;

/// The scheme's `api` that selects this source on a `mysql` connection.
pub const API: &str = ferry_core::files::BINLOG_API;
/// Records per page when the scheme gives no `pagination.pageSize`.
pub const DEFAULT_PAGE_SIZE: u64 = 1000;
/// A page with records is handed on once the binlog has been quiet this long.
pub const FLUSH_AFTER_MS: u64 = 50;
/// With nothing new, an empty page (the same cursor) is handed on this often, so the extractor
/// can see a shutdown and renew its lease.
pub const IDLE_PAGE_SECS: u64 = 1;
/// Metadata keys this source reads (besides `api` and `pagination.pageSize`), as
/// [`BinlogOptions`] reads them.
pub const OPTION_KEYS: &[&str] = &["tables", "snapshot", "server_id"];

/// MariaDB's compressed row events (`log_bin_compress = ON`), which the client cannot read.
const MARIADB_COMPRESSED_ROWS: std::ops::RangeInclusive<u8> = 166..=171;
/// MariaDB's GTID event: it opens a transaction, as `BEGIN` does.
const MARIADB_GTID_EVENT: u8 = 162;

/// The scheme's options, read once.
#[derive(Clone, Debug, PartialEq)]
struct Options {
    /// `(database, table)` in the order the scheme names them.
    tables: Vec<(String, String)>,
    snapshot: bool,
    server_id: u32,
    page_size: u64,
}

impl Options {
    /// The scheme's options as the `mysql` kind parses them ([`BinlogOptions::read`], which
    /// `ferry lint` runs too), with bare table names put in the connection's database.
    fn read(metadata: &Metadata, default_db: Option<&str>) -> Result<Options, FerryError> {
        let parsed = BinlogOptions::read(metadata).map_err(crate::config_error)?;
        let mut tables = Vec::with_capacity(parsed.tables.len());
        for (i, (db, table)) in parsed.tables.into_iter().enumerate() {
            let db = match (db, default_db) {
                (Some(db), _) => db,
                (None, Some(db)) => db.to_string(),
                (None, None) => {
                    return Err(FerryError::config(format!(
                        "source.metadata.tables[{i}]: `{table}` names no database and the \
                         connection's url has none; write it as `db.{table}`"
                    )));
                }
            };
            tables.push((db, table));
        }
        let server_id = parsed
            .server_id
            .unwrap_or_else(|| default_server_id(&tables));
        let page_size = metadata
            .pagination
            .as_ref()
            .and_then(|p| p.page_size)
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .max(1);
        Ok(Options {
            tables,
            snapshot: parsed.snapshot,
            server_id,
            page_size,
        })
    }
}

/// A replica id of its own for a set of tables (FNV-1a, in the upper half of the range, where
/// servers seldom number themselves). Two schemes that follow the same tables of one server set
/// `server_id` apart: the server drops the older of two replicas with one id.
fn default_server_id(tables: &[(String, String)]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for (db, table) in tables {
        for byte in db.bytes().chain([b'.']).chain(table.bytes()).chain([0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    0x8000_0000 | (hash & 0x7FFF_FFFF)
}

/// A place in the binlog: the start of an event (a transaction's, for a cursor).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    file: String,
    pos: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Where the source stands between pages: the binlog position to read from (and the rows of its
/// transaction already published), and the snapshot's progress while it goes on.
#[derive(Clone, Debug, PartialEq)]
struct Cursor {
    binlog: Position,
    skip: u64,
    snapshot: Option<SnapshotAt>,
}

#[derive(Clone, Debug, PartialEq)]
struct SnapshotAt {
    /// Index into the scheme's tables.
    table: usize,
    /// The primary key of the last row copied (none: from the first).
    after: Option<Vec<Value>>,
}

impl Cursor {
    fn to_json(&self) -> Value {
        let mut out = json!({
            "binlog": { "file": self.binlog.file, "pos": self.binlog.pos, "skip": self.skip }
        });
        if let Some(s) = &self.snapshot {
            out["snapshot"] = json!({ "table": s.table, "after": s.after });
        }
        out
    }

    fn from_json(value: &Value) -> Option<Cursor> {
        let binlog = value.get("binlog")?;
        let snapshot = match value.get("snapshot") {
            None | Some(Value::Null) => None,
            Some(s) => Some(SnapshotAt {
                table: usize::try_from(s.get("table")?.as_u64()?).ok()?,
                after: match s.get("after") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(key)) => Some(key.clone()),
                    Some(_) => return None,
                },
            }),
        };
        Some(Cursor {
            binlog: Position {
                file: binlog.get("file")?.as_str()?.to_string(),
                pos: binlog.get("pos")?.as_u64()?,
            },
            skip: binlog.get("skip").and_then(Value::as_u64).unwrap_or(0),
            snapshot,
        })
    }
}

/// The binlog stream and what has been read of it since the last page's cursor.
struct Follow {
    stream: BinlogStream,
    file: String,
    /// The open transaction: where it starts and how many watched rows it had so far.
    txn: Option<(u64, u64)>,
    /// Rows of the first transaction that the last page already carried.
    skip: u64,
    /// The position after the last complete transaction (or DDL) read.
    boundary: Position,
    /// Whether the server's format description (checksums on or off) has been read.
    described: bool,
}

/// The binlog source opened for one run.
pub struct BinlogSource {
    pool: MySqlPool,
    opts: mysql_async::Opts,
    options: Options,
    /// The watched tables, read from information_schema when the run starts.
    tables: Vec<Table>,
    by_name: HashMap<(String, String), usize>,
    /// Tables whose shape may have changed (a DDL statement named them).
    stale: HashSet<usize>,
    utc_offset_secs: i64,
    started: bool,
    /// Where the last page left off (or where the run starts).
    at: Option<Cursor>,
    /// The consistent snapshot's transaction, while the copy goes on in this run.
    snapshot_conn: Option<PoolConnection<MySql>>,
    snapshot_ts: String,
    follow: Option<Follow>,
}

impl BinlogSource {
    /// Open the source. `url` is the `mysql` connection's (its user needs `REPLICATION SLAVE`
    /// and `REPLICATION CLIENT`); `pool` is the same connection's pool, for the snapshot and
    /// `information_schema`.
    pub fn new(
        pool: MySqlPool,
        url: &str,
        metadata: Arc<Metadata>,
    ) -> Result<BinlogSource, FerryError> {
        let (opts, default_db) = replica_opts(url)?;
        let options = Options::read(&metadata, default_db.as_deref())?;
        Ok(BinlogSource {
            pool,
            opts,
            options,
            tables: Vec::new(),
            by_name: HashMap::new(),
            stale: HashSet::new(),
            utc_offset_secs: 0,
            started: false,
            at: None,
            snapshot_conn: None,
            snapshot_ts: String::new(),
            follow: None,
        })
    }

    /// Check the server and read the tables, once per run; without a saved cursor, also choose
    /// where the run starts (a consistent snapshot's position, or the binlog's end).
    async fn start(&mut self) -> Result<(), FerryError> {
        if self.started {
            return Ok(());
        }
        let (log_bin, format, image, offset): (i64, String, String, i64) = sqlx::query_as(
            "SELECT CAST(@@GLOBAL.log_bin AS SIGNED), CAST(@@GLOBAL.binlog_format AS CHAR),
                    CAST(@@GLOBAL.binlog_row_image AS CHAR),
                    CAST(TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) AS SIGNED)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| sql_error("checking the binlog settings", e))?;
        if log_bin == 0 {
            return Err(FerryError::config(
                "the source's binary log is off: the binlog source needs it on, in ROW format. \
                 Start the server with --log-bin --binlog-format=ROW --server-id=1 (my.cnf: \
                 log_bin, binlog_format = ROW, server_id = 1) and restart it",
            ));
        }
        if !format.eq_ignore_ascii_case("ROW") {
            return Err(FerryError::config(format!(
                "the source's binlog_format is {format}; the binlog source needs ROW (each \
                 changed row logged). Run SET GLOBAL binlog_format = 'ROW' and set it in my.cnf, \
                 then start the scheme again; changes logged as {format} statements cannot be \
                 followed"
            )));
        }
        if !image.eq_ignore_ascii_case("FULL") {
            return Err(FerryError::config(format!(
                "the source's binlog_row_image is {image}; the binlog source needs FULL (every \
                 column of a changed row). Run SET GLOBAL binlog_row_image = 'FULL' and set it \
                 in my.cnf"
            )));
        }
        self.utc_offset_secs = offset;
        // REPLICATION CLIENT (MariaDB: BINLOG MONITOR) lets the user see the binlog files.
        let logs = self.binary_logs().await?;
        for (db, name) in self.options.tables.clone() {
            let table = Table::read(&self.pool, &db, &name).await?;
            self.by_name
                .insert((db.clone(), name.clone()), self.tables.len());
            self.tables.push(table);
        }
        match &self.at {
            Some(cursor) => {
                if !logs.iter().any(|f| *f == cursor.binlog.file) {
                    return Err(purged(&cursor.binlog));
                }
            }
            None if self.options.snapshot => self.begin_snapshot().await?,
            None => {
                let end = self.master_status().await?;
                tracing::info!(position = %end, "following the binlog from its end (no snapshot)");
                self.at = Some(Cursor {
                    binlog: end,
                    skip: 0,
                    snapshot: None,
                });
            }
        }
        self.started = true;
        Ok(())
    }

    /// The binlog files the server still has.
    async fn binary_logs(&self) -> Result<Vec<String>, FerryError> {
        let rows = sqlx::query("SHOW BINARY LOGS")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| sql_error("listing the binlog files (SHOW BINARY LOGS)", e))?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect())
    }

    async fn master_status(&self) -> Result<Position, FerryError> {
        let row = match sqlx::query("SHOW MASTER STATUS")
            .fetch_optional(&self.pool)
            .await
        {
            // MySQL 8.4 renamed it.
            Err(sqlx::Error::Database(e)) if e.message().contains("syntax") => {
                sqlx::query("SHOW BINARY LOG STATUS")
                    .fetch_optional(&self.pool)
                    .await
            }
            other => other,
        }
        .map_err(|e| sql_error("reading the binlog position (SHOW MASTER STATUS)", e))?;
        let row = row.ok_or_else(|| {
            FerryError::config(
                "SHOW MASTER STATUS returned nothing: the source's binary log is off; start it \
                 with --log-bin --binlog-format=ROW --server-id=1",
            )
        })?;
        Ok(Position {
            file: row
                .try_get::<String, _>(0)
                .map_err(|e| FerryError::transient(format!("reading SHOW MASTER STATUS: {e}")))?,
            pos: row
                .try_get::<u64, _>(1)
                .map_err(|e| FerryError::transient(format!("reading SHOW MASTER STATUS: {e}")))?,
        })
    }

    /// Open the snapshot's transaction and note the binlog position it sees.
    async fn begin_snapshot(&mut self) -> Result<(), FerryError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| sql_error("opening the snapshot's connection", e))?;
        for sql in [
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        ] {
            sqlx::query(sql)
                .execute(&mut *conn)
                .await
                .map_err(|e| sql_error("starting the snapshot", e))?;
        }
        // MariaDB: the binlog position of this very snapshot, no lock needed.
        let rows = sqlx::query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| sql_error("reading the snapshot's binlog position", e))?;
        let status: HashMap<String, String> = rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect();
        let position = match (
            status.get("Binlog_snapshot_file").filter(|f| !f.is_empty()),
            status
                .get("Binlog_snapshot_position")
                .and_then(|p| p.parse::<u64>().ok()),
        ) {
            (Some(file), Some(pos)) => Position {
                file: file.clone(),
                pos,
            },
            // MySQL: hold writes for the moment between the snapshot and the position.
            _ => {
                sqlx::query("ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| sql_error("starting the snapshot", e))?;
                sqlx::query("FLUSH TABLES WITH READ LOCK")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| {
                        sql_error(
                            "locking the tables for the snapshot (needs the RELOAD privilege)",
                            e,
                        )
                    })?;
                let started = sqlx::query("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .execute(&mut *conn)
                    .await;
                let position = self.master_status().await;
                let _ = sqlx::query("UNLOCK TABLES").execute(&mut *conn).await;
                started.map_err(|e| sql_error("starting the snapshot", e))?;
                position?
            }
        };
        let (now,): (String,) = sqlx::query_as("SELECT CAST(NOW() AS CHAR)")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| sql_error("reading the snapshot's time", e))?;
        tracing::info!(position = %position, tables = self.tables.len(), "snapshot started; the binlog is followed from its position after the copy");
        self.snapshot_ts = now;
        self.snapshot_conn = Some(conn);
        self.at = Some(Cursor {
            binlog: position,
            skip: 0,
            snapshot: Some(SnapshotAt {
                table: 0,
                after: None,
            }),
        });
        Ok(())
    }

    /// The next page of the snapshot, or `None` once every table is copied.
    async fn snapshot_page(&mut self, cursor: Cursor) -> Result<Option<Page>, FerryError> {
        let Some(mut at) = cursor.snapshot.clone() else {
            return Ok(None);
        };
        while at.table < self.tables.len() {
            let table = &self.tables[at.table];
            let keys = table
                .key
                .iter()
                .map(|k| quote(k))
                .collect::<Vec<_>>()
                .join(", ");
            let filter = match &at.after {
                None => String::new(),
                Some(after) => format!("WHERE ({keys}) > ({})", vec!["?"; after.len()].join(", ")),
            };
            let sql = format!(
                "SELECT * FROM {}.{} {filter} ORDER BY {keys} LIMIT {}",
                quote(&table.database),
                quote(&table.name),
                self.options.page_size
            );
            let binds = at.after.clone().unwrap_or_default();
            let query = ferry_state::mysql::bind_values(sqlx::query(AssertSqlSafe(sql)), &binds);
            let rows = match self.snapshot_conn.as_mut() {
                Some(conn) => query.fetch_all(&mut **conn).await,
                // A resumed copy reads outside the first run's snapshot: rows changed since are
                // read in their later state, and the binlog from the snapshot's position
                // replays the changes after it, so the target still ends where the source is.
                None => query.fetch_all(&self.pool).await,
            }
            .map_err(|e| sql_error(&format!("copying `{}`", table.qualified()), e))?;
            let mut records = Vec::with_capacity(rows.len());
            let mut rejected = Vec::new();
            let mut decoder: Option<RowDecoder> = None;
            let mut last_key = None;
            let qualified = table.qualified();
            for row in &rows {
                let decoder = decoder.get_or_insert_with(|| RowDecoder::new(row));
                let decoded = decoder.decode(row);
                let key: Vec<Value> = table
                    .key
                    .iter()
                    .map(|k| decoded.data.get(k).cloned().unwrap_or(Value::Null))
                    .collect();
                let mut data = decoded.data;
                data.insert("_op".into(), Value::from("insert"));
                data.insert("_table".into(), Value::from(qualified.as_str()));
                data.insert("_ts".into(), Value::from(self.snapshot_ts.as_str()));
                data.insert("_pos".into(), Value::from(cursor.binlog.to_string()));
                data.insert("_before".into(), Value::Null);
                data.insert("_snapshot".into(), Value::Bool(true));
                let id = format!(
                    "snapshot:{qualified}:{}",
                    serde_json::to_string(&key).unwrap_or_default()
                );
                let record = Record::new(id, Value::Object(data));
                match crate::mysql::unreadable_error(&decoded.unreadable) {
                    None => records.push(record),
                    Some(err) => rejected.push((record, err)),
                }
                last_key = Some(key);
            }
            let full = rows.len() as u64 >= self.options.page_size;
            if full {
                at.after = last_key;
            } else {
                at = SnapshotAt {
                    table: at.table + 1,
                    after: None,
                };
            }
            let done = at.table >= self.tables.len();
            if done {
                if let Some(mut conn) = self.snapshot_conn.take() {
                    let _ = sqlx::query("COMMIT").execute(&mut *conn).await;
                }
                tracing::info!(position = %cursor.binlog, "snapshot copied; following the binlog");
            }
            if records.is_empty() && rejected.is_empty() && !done {
                continue;
            }
            let next = Cursor {
                snapshot: (!done).then_some(at),
                ..cursor
            };
            let page = Page {
                records,
                cursor: Some(next.to_json()),
                rejected,
            };
            self.at = Some(next);
            return Ok(Some(page));
        }
        Ok(None)
    }

    /// Connect as a replica and ask for the binlog from `cursor`.
    async fn follow(&self, cursor: &Cursor) -> Result<Follow, FerryError> {
        let conn = mysql_async::Conn::new(self.opts.clone())
            .await
            .map_err(|e| replica_error(e, &cursor.binlog))?;
        let request = BinlogStreamRequest::new(self.options.server_id)
            .with_filename(cursor.binlog.file.as_bytes())
            .with_pos(cursor.binlog.pos);
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| replica_error(e, &cursor.binlog))?;
        tracing::info!(position = %cursor.binlog, skip = cursor.skip, server_id = self.options.server_id, "reading the binlog");
        Ok(Follow {
            stream,
            file: cursor.binlog.file.clone(),
            txn: None,
            skip: cursor.skip,
            boundary: cursor.binlog.clone(),
            described: false,
        })
    }

    /// The next page of changes: at least one record and the binlog quiet for
    /// [`FLUSH_AFTER_MS`], a full page, or an empty page after [`IDLE_PAGE_SECS`] of quiet.
    async fn binlog_page(&mut self, cursor: Cursor) -> Result<Page, FerryError> {
        if self.follow.is_none() {
            self.follow = Some(self.follow(&cursor).await?);
        }
        let result = self.read_changes().await;
        match result {
            Ok((records, rejected, next)) => {
                self.at = Some(next.clone());
                Ok(Page {
                    records,
                    cursor: Some(next.to_json()),
                    rejected,
                })
            }
            Err(err) => {
                // Read again from the last page's cursor on the next attempt.
                self.follow = None;
                Err(err)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn read_changes(
        &mut self,
    ) -> Result<(Vec<Record>, Vec<(Record, FerryError)>, Cursor), FerryError> {
        let mut records: Vec<Record> = Vec::new();
        let mut rejected: Vec<(Record, FerryError)> = Vec::new();
        let page_size = self.options.page_size as usize;
        let idle_since = Instant::now();
        loop {
            let Some(follow) = self.follow.as_mut() else {
                return Err(FerryError::transient("the binlog stream is not open"));
            };
            let have = records.len() + rejected.len();
            let wait = if have > 0 {
                Duration::from_millis(FLUSH_AFTER_MS)
            } else {
                Duration::from_secs(IDLE_PAGE_SECS).saturating_sub(idle_since.elapsed())
            };
            // Inside a transaction: its start and its followed rows seen so far (all carried
            // by this page or an earlier one); between transactions: the boundary.
            let cursor_now = |f: &Follow| match f.txn {
                Some((start, rows)) => Cursor {
                    binlog: Position {
                        file: f.file.clone(),
                        pos: start,
                    },
                    skip: rows,
                    snapshot: None,
                },
                None => Cursor {
                    binlog: f.boundary.clone(),
                    skip: f.skip,
                    snapshot: None,
                },
            };
            if have >= page_size {
                return Ok((records, rejected, cursor_now(follow)));
            }
            let event = match tokio::time::timeout(wait, follow.stream.next()).await {
                Err(_) => {
                    // Quiet: hand on what there is (an empty page keeps the run responsive).
                    return Ok((records, rejected, cursor_now(follow)));
                }
                Ok(None) => {
                    return Err(FerryError::transient(
                        "the source closed the binlog stream; reading again from the last \
                         confirmed position",
                    ));
                }
                Ok(Some(Err(e))) => {
                    let at = follow.boundary.clone();
                    return Err(replica_error(e, &at));
                }
                Ok(Some(Ok(event))) => event,
            };
            let header = event.header();
            let end = u64::from(header.log_pos());
            let start = end.saturating_sub(u64::from(header.event_size()));
            let raw_type = header.event_type_raw();
            let timestamp = header.timestamp();
            let data = event.read_data().map_err(|e| {
                FerryError::transient(format!(
                    "reading a binlog event at {}:{start}: {e}",
                    follow.file
                ))
            })?;
            let Some(data) = data else {
                if MARIADB_COMPRESSED_ROWS.contains(&raw_type) {
                    return Err(FerryError::config(
                        "the source logs compressed row events (log_bin_compress = ON), which \
                         the binlog source cannot read; SET GLOBAL log_bin_compress = OFF, then \
                         start a new snapshot with `ferry extract --once --restart --scheme <scheme>`",
                    ));
                }
                if raw_type == MARIADB_GTID_EVENT && end > 0 {
                    follow.txn = Some((follow.boundary.pos, 0));
                }
                continue;
            };
            match data {
                EventData::FormatDescriptionEvent(_) => follow.described = true,
                EventData::RotateEvent(rotate) => {
                    // The server's first event names the file asked for, but before the format
                    // description it cannot be parsed knowing its checksum (which the name would
                    // then end with): the file is the one asked for.
                    if follow.described {
                        follow.file = rotate.name().into_owned();
                    }
                    // A rotation happens between transactions: the new file's start is a boundary.
                    follow.boundary = Position {
                        file: follow.file.clone(),
                        pos: rotate.position(),
                    };
                }
                EventData::QueryEvent(query) => {
                    if end == 0 {
                        continue;
                    }
                    let text = query.query();
                    let word = text.trim_start().split_whitespace().next().unwrap_or("");
                    if word.eq_ignore_ascii_case("BEGIN") {
                        follow.txn = Some((follow.boundary.pos, 0));
                    } else if word.eq_ignore_ascii_case("COMMIT")
                        || word.eq_ignore_ascii_case("ROLLBACK") && !text.contains(" TO ")
                    {
                        end_transaction(follow, end);
                    } else if follow.txn.is_none() {
                        // Outside a transaction: DDL, which commits by itself. A statement that
                        // names a followed table may have changed its shape.
                        let ddl = ["ALTER", "DROP", "RENAME", "TRUNCATE", "CREATE"]
                            .iter()
                            .any(|w| word.eq_ignore_ascii_case(w));
                        let upper = text.to_ascii_uppercase();
                        for (i, table) in self.tables.iter().enumerate() {
                            if ddl && upper.contains(&table.name.to_ascii_uppercase()) {
                                if word.eq_ignore_ascii_case("TRUNCATE") {
                                    tracing::warn!(table = %table.qualified(), position = %format!("{}:{start}", follow.file), "TRUNCATE of a followed table: the binlog logs no rows for it, so the target keeps them; empty the target's table yourself");
                                }
                                tracing::info!(table = %table.qualified(), schema = %query.schema(), statement = %text.chars().take(200).collect::<String>(), "a statement changed a followed table; its columns are read again");
                                self.stale.insert(i);
                            }
                        }
                        end_transaction(follow, end);
                    }
                }
                EventData::XidEvent(_) => end_transaction(follow, end),
                EventData::TableMapEvent(tme) => {
                    let key = (
                        tme.database_name().into_owned(),
                        tme.table_name().into_owned(),
                    );
                    if let Some(&i) = self.by_name.get(&key) {
                        let logged = tme.columns_count() as usize;
                        if self.stale.contains(&i) || self.tables[i].columns.len() != logged {
                            let position = Position {
                                file: follow.file.clone(),
                                pos: start,
                            };
                            self.reread_table(i, logged, &position).await?;
                        }
                    }
                }
                EventData::RowsEvent(rows) => {
                    // A transaction starts where the last one ended (its GTID or BEGIN event and
                    // its table maps follow), so reading again from there sees all of them.
                    let Follow {
                        stream,
                        file,
                        txn,
                        skip,
                        boundary,
                        ..
                    } = follow;
                    let Some(tme) = stream.get_tme(rows.table_id()) else {
                        continue;
                    };
                    let key = (
                        tme.database_name().into_owned(),
                        tme.table_name().into_owned(),
                    );
                    let Some(&i) = self.by_name.get(&key) else {
                        continue;
                    };
                    let op =
                        match &rows {
                            RowsEventData::WriteRowsEvent(_)
                            | RowsEventData::WriteRowsEventV1(_) => "insert",
                            RowsEventData::UpdateRowsEvent(_)
                            | RowsEventData::UpdateRowsEventV1(_)
                            | RowsEventData::PartialUpdateRowsEvent(_) => "update",
                            RowsEventData::DeleteRowsEvent(_)
                            | RowsEventData::DeleteRowsEventV1(_) => "delete",
                        };
                    let (txn_start, _) = *txn.get_or_insert((boundary.pos, 0));
                    let position = format!("{file}:{txn_start}");
                    let ts = wall_time(self.utc_offset_secs, timestamp);
                    let table = &self.tables[i];
                    for row in rows.rows(tme) {
                        let (before, after) = row.map_err(|e| {
                            FerryError::transient(format!(
                                "reading a row of `{}` at {position}: {e}",
                                table.qualified()
                            ))
                        })?;
                        let Some((_, n)) = txn.as_mut() else {
                            continue;
                        };
                        *n += 1;
                        if *n <= *skip {
                            continue;
                        }
                        let id = format!("{position}#{n}");
                        let (record, problems) = change_record(
                            table,
                            id,
                            op,
                            before,
                            after,
                            (&ts, &position),
                            self.utc_offset_secs,
                        );
                        if let Some(old) = moved_key(table, &record) {
                            records.push(old);
                        }
                        match crate::mysql::unreadable_error(&problems) {
                            None => records.push(record),
                            Some(err) => rejected.push((record, err)),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Read table `i`'s columns again after a statement changed it, or when the binlog logs
    /// `logged` columns for it; report columns added and dropped. Still disagreeing with the
    /// binlog means the table changed again since this event: say how to start over.
    async fn reread_table(
        &mut self,
        i: usize,
        logged: usize,
        at: &Position,
    ) -> Result<(), FerryError> {
        let old = &self.tables[i];
        let new = Table::read(&self.pool, &old.database, &old.name).await?;
        let names = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let (before, after) = (names(old), names(&new));
        let added: Vec<&String> = after.iter().filter(|c| !before.contains(c)).collect();
        let dropped: Vec<&String> = before.iter().filter(|c| !after.contains(c)).collect();
        if !added.is_empty() {
            tracing::info!(table = %new.qualified(), position = %at, columns = ?added, "columns added to a followed table; its records carry them from here on");
        }
        if !dropped.is_empty() {
            tracing::warn!(table = %new.qualified(), position = %at, columns = ?dropped, "columns dropped from a followed table; its records no longer carry them, and the target's columns keep their last values unless the mapping changes");
        }
        if new.columns.len() != logged {
            return Err(FerryError::config(format!(
                "table `{}` has {logged} columns in the binlog at {at} but {} now ({}): it was \
                 altered again after this position, so its older changes cannot be matched to \
                 column names. Start a new snapshot with `ferry extract --once --restart --scheme \
                 <scheme>`",
                new.qualified(),
                new.columns.len(),
                after.join(", ")
            )));
        }
        self.stale.remove(&i);
        self.tables[i] = new;
        Ok(())
    }
}

/// A binlog timestamp (seconds since the epoch) as the source's wall time.
fn wall_time(offset_secs: i64, secs: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(secs) + offset_secs, 0)
        .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A transaction (or a DDL statement) ended at `end`: the next one starts there.
fn end_transaction(follow: &mut Follow, end: u64) {
    follow.txn = None;
    follow.skip = 0;
    follow.boundary = Position {
        file: follow.file.clone(),
        pos: end,
    };
}

/// One change as a record (see the module docs), and the columns whose values cannot be carried.
fn change_record(
    table: &Table,
    id: String,
    op: &str,
    before: Option<BinlogRow>,
    after: Option<BinlogRow>,
    (ts, position): (&str, &str),
    offset: i64,
) -> (Record, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut image = |row: BinlogRow| {
        let mut map = Map::with_capacity(table.columns.len() + 6);
        for (column, value) in table.columns.iter().zip(row.unwrap()) {
            match schema::json_value(column, value, offset) {
                Ok(v) => {
                    map.insert(column.name.clone(), v);
                }
                Err(reason) => {
                    map.insert(column.name.clone(), Value::Null);
                    problems.push((column.name.clone(), reason));
                }
            }
        }
        map
    };
    let before = before.map(&mut image);
    let after = after.map(&mut image);
    let (mut data, before) = match (after, before) {
        (Some(after), before) => (after, before.map(Value::Object)),
        (None, Some(before)) => (before.clone(), Some(Value::Object(before))),
        (None, None) => (Map::new(), None),
    };
    data.insert("_op".into(), Value::from(op));
    data.insert("_table".into(), Value::from(table.qualified()));
    data.insert("_ts".into(), Value::from(ts));
    data.insert("_pos".into(), Value::from(position));
    data.insert("_before".into(), before.unwrap_or(Value::Null));
    (Record::new(id, Value::Object(data)), problems)
}

/// An update that changed its row's primary key also removes the row under the old key: the
/// delete of the before image (id `<id>-old`), to go just before the update.
fn moved_key(table: &Table, update: &Record) -> Option<Record> {
    let data = update.data.as_object()?;
    if data.get("_op")?.as_str()? != "update" {
        return None;
    }
    let before = data.get("_before")?.as_object()?;
    if table.key.iter().all(|k| before.get(k) == data.get(k)) {
        return None;
    }
    let mut old = before.clone();
    for field in ["_table", "_ts", "_pos"] {
        old.insert(
            field.into(),
            data.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    old.insert("_op".into(), Value::from("delete"));
    old.insert("_before".into(), Value::Object(before.clone()));
    Some(Record::new(
        format!("{}-old", update.id),
        Value::Object(old),
    ))
}

#[async_trait]
impl Source for BinlogSource {
    async fn next_page(&mut self) -> Result<Option<Page>, FerryError> {
        self.start().await?;
        let cursor = self
            .at
            .clone()
            .ok_or_else(|| FerryError::transient("the binlog source has no position"))?;
        if cursor.snapshot.is_some()
            && let Some(page) = self.snapshot_page(cursor).await?
        {
            return Ok(Some(page));
        }
        let cursor = self
            .at
            .clone()
            .ok_or_else(|| FerryError::transient("the binlog source has no position"))?;
        self.binlog_page(cursor).await.map(Some)
    }

    /// `{"binlog": {"file", "pos", "skip"}, "snapshot": ..}`, as pages write it.
    fn resume_at(&mut self, cursor: &Value) -> Result<(), FerryError> {
        self.at = Some(Cursor::from_json(cursor).ok_or_else(|| crate::foreign_cursor(cursor))?);
        Ok(())
    }
}

/// The replica connection's options from the `mysql` connection's url (`mysql://` or
/// `mariadb://`), and its database.
fn replica_opts(url: &str) -> Result<(mysql_async::Opts, Option<String>), FerryError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        FerryError::config(format!(
            "the connection's url is not a URL ({e}); write mysql://user:password@host:3306/db"
        ))
    })?;
    let decode = |s: &str| percent_decode(s);
    let db = parsed
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|d| !d.is_empty())
        .map(decode);
    let builder = mysql_async::OptsBuilder::default()
        .ip_or_hostname(parsed.host_str().unwrap_or("127.0.0.1").to_string())
        .tcp_port(parsed.port().unwrap_or(3306))
        .user(Some(decode(parsed.username())).filter(|u| !u.is_empty()))
        .pass(parsed.password().map(decode))
        .db_name(db.clone())
        .prefer_socket(false);
    Ok((builder.into(), db))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A failed statement of the source's checks or snapshot; access errors say which privilege.
fn sql_error(what: &str, e: sqlx::Error) -> FerryError {
    let number = match &e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|e| e.number())
            .unwrap_or(0),
        _ => 0,
    };
    let err = ferry_state::mysql::classify_ref(&e);
    if number == 1227 {
        return FerryError::config(format!(
            "{what}: {} — the connection's user lacks REPLICATION CLIENT (MariaDB 10.5+: BINLOG \
             MONITOR); run GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the user",
            err.message()
        ));
    }
    let text = format!("{what}: {}", err.message());
    match err.class() {
        ferry_core::ErrorClass::Transient => FerryError::transient(text),
        _ => FerryError::config(text),
    }
}

/// The error for a position the server no longer has.
fn purged(at: &Position) -> FerryError {
    FerryError::config(format!(
        "the binlog position {at} is no longer on the source: its binlog file was purged \
         (binlog_expire_logs_seconds / expire_logs_days, or PURGE BINARY LOGS), so the changes \
         since cannot be read. Start a new snapshot with `ferry extract --once --restart --scheme \
         <scheme>`, and keep binlogs longer than the scheme may stay stopped"
    ))
}

/// An error of the replica connection or its stream, read from `at`.
fn replica_error(e: mysql_async::Error, at: &Position) -> FerryError {
    match &e {
        mysql_async::Error::Server(server) => match server.code {
            // ER_MASTER_FATAL_ERROR_READING_BINLOG: a purged or missing file, a bad position.
            1236 if server.message.contains("first log file")
                || server.message.contains("purged")
                || server.message.contains("not find") =>
            {
                purged(at)
            }
            1236 => FerryError::config(format!(
                "the source cannot send its binlog from {at}: {} (MySQL error 1236). Start a new \
                 snapshot with `ferry extract --once --restart --scheme <scheme>`",
                server.message
            )),
            1227 => FerryError::config(format!(
                "reading the binlog: {} — the connection's user lacks REPLICATION SLAVE (MariaDB \
                 10.5+: REPLICATION SLAVE); run GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* \
                 TO the user",
                server.message
            )),
            1044 | 1045 | 1049 => FerryError::config(format!(
                "connecting as a replica: {} (MySQL error {})",
                server.message, server.code
            )),
            _ => FerryError::transient(format!(
                "reading the binlog from {at}: {} (MySQL error {})",
                server.message, server.code
            )),
        },
        _ => FerryError::transient(format!("reading the binlog from {at}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn options_name_tables_in_the_connections_database_unless_qualified() {
        let m = metadata(json!({"api": "binlog", "tables": ["订单", "other.items"],
            "pagination": {"pageSize": 10}}));
        let o = Options::read(&m, Some("shop")).unwrap();
        assert_eq!(
            o.tables,
            vec![
                ("shop".to_string(), "订单".to_string()),
                ("other".to_string(), "items".to_string())
            ]
        );
        assert!(o.snapshot);
        assert_eq!(o.page_size, 10);
        assert!(o.server_id >= 0x8000_0000);
        let err = Options::read(&metadata(json!({"api": "binlog"})), Some("shop")).unwrap_err();
        assert!(
            err.to_string().contains("source.metadata.tables: missing"),
            "{err}"
        );
        let err =
            Options::read(&metadata(json!({"api": "binlog", "tables": ["t"]})), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("source.metadata.tables[0]: `t` names no database"),
            "{err}"
        );
        let err = Options::read(
            &metadata(json!({"api": "binlog", "tables": ["t"], "server_id": 0})),
            Some("d"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("source.metadata.server_id"),
            "{err}"
        );
    }

    #[test]
    fn a_cursor_reads_back_as_written_and_a_foreign_one_is_refused() {
        let cursor = Cursor {
            binlog: Position {
                file: "mysql-bin.000002".into(),
                pos: 1234,
            },
            skip: 3,
            snapshot: Some(SnapshotAt {
                table: 1,
                after: Some(vec![json!(42), json!("张三")]),
            }),
        };
        assert_eq!(Cursor::from_json(&cursor.to_json()), Some(cursor));
        assert_eq!(Cursor::from_json(&json!({"last_id": 5})), None);
    }

    #[test]
    fn the_replica_url_keeps_user_password_and_database() {
        let (opts, db) = replica_opts("mariadb://repl:p%40ss@db.example:3307/商店").unwrap();
        assert_eq!(opts.user(), Some("repl"));
        assert_eq!(opts.pass(), Some("p@ss"));
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(db.as_deref(), Some("商店"));
    }
}
