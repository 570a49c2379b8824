//! The options every source kind reads alike, whatever its connection: how far each run's window
//! reaches back (`sync_overlap_secs`, or `pagination.overlap_secs`) and the data cursor
//! (`cursor_field`, `cursor_start`) behind `{{LAST_CURSOR}}`.
//!
//! [`SyncOptions::read`] is the one parser: [`crate::files`] runs it on every source, so
//! `ferry lint` names a bad value with its file and path, and the extractor reads the values it
//! returns from the [`crate::files::SchemeFile`] instead of parsing the metadata again.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::scheme::Metadata;
use crate::template::CursorValue;

/// How far `LAST_SYNC_TIME` (and a datetime `LAST_CURSOR`) is moved back when the scheme sets
/// no `sync_overlap_secs`.
pub const DEFAULT_SYNC_OVERLAP_SECS: u64 = 300;

/// The largest overlap accepted: 100 years. Windows are computed on chrono times, which cannot
/// move back by an arbitrary number of seconds.
pub const MAX_SYNC_OVERLAP_SECS: u64 = 100 * 365 * 24 * 60 * 60;

/// A source's window and data cursor options, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncOptions {
    /// `sync_overlap_secs`, else `pagination.overlap_secs`, else [`DEFAULT_SYNC_OVERLAP_SECS`]:
    /// the next window starts this much earlier than the last one began, so records stamped
    /// near the boundary (or committed late) are read again; idempotent writes absorb them.
    pub overlap: Duration,
    /// `cursor_field`: the record field whose largest value becomes `{{LAST_CURSOR}}`.
    pub cursor_field: Option<String>,
    /// `cursor_start`: `{{LAST_CURSOR}}` before any run saved one; a number, or text that is a
    /// number or a datetime.
    pub cursor_start: Option<Value>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            overlap: Duration::from_secs(DEFAULT_SYNC_OVERLAP_SECS),
            cursor_field: None,
            cursor_start: None,
        }
    }
}

impl SyncOptions {
    /// Read a source's options; every problem as (path from the scheme's root, message).
    pub fn read(metadata: &Metadata) -> Result<SyncOptions, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let empty = Map::new();
        let pagination = metadata.pagination.as_ref().map_or(&empty, |p| &p.extra);
        // `pagination.overlap_secs` is read only when `sync_overlap_secs` is not there.
        let secs = if has(&metadata.extra, "sync_overlap_secs") {
            overlap_secs(&metadata.extra, "sync_overlap_secs", &mut problems)
        } else {
            overlap_secs(pagination, "pagination.overlap_secs", &mut problems)
        }
        .unwrap_or(DEFAULT_SYNC_OVERLAP_SECS);
        let cursor_field = match metadata.extra.get("cursor_field") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(other) => {
                problems.push((
                    "source.metadata.cursor_field".into(),
                    format!("expected the name of a record field, found {other}"),
                ));
                None
            }
        };
        let cursor_start = metadata
            .extra
            .get("cursor_start")
            .filter(|v| !v.is_null())
            .cloned();
        // Whether text reads as a datetime does not depend on the zone it is read in.
        if let Some(start) = &cursor_start
            && CursorValue::of(start, chrono_tz::Tz::UTC).is_none()
        {
            problems.push((
                "source.metadata.cursor_start".into(),
                format!("{start} is neither a number nor a datetime"),
            ));
        }
        if problems.is_empty() {
            Ok(SyncOptions {
                overlap: Duration::from_secs(secs),
                cursor_field,
                cursor_start,
            })
        } else {
            Err(problems)
        }
    }
}

fn has(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|v| !v.is_null())
}

/// `key` of `map` as seconds of overlap; none when absent, a problem when not a whole number up
/// to [`MAX_SYNC_OVERLAP_SECS`].
fn overlap_secs(
    map: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<(String, String)>,
) -> Option<u64> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let value = map.get(key).filter(|v| !v.is_null())?;
    let secs = value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|secs| *secs <= MAX_SYNC_OVERLAP_SECS);
    if secs.is_none() {
        problems.push((
            format!("source.metadata.{path}"),
            format!(
                "expected a whole number of seconds up to {MAX_SYNC_OVERLAP_SECS} (100 years), \
                 found {value}"
            ),
        ));
    }
    secs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Result<SyncOptions, Vec<(String, String)>> {
        SyncOptions::read(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn defaults_and_the_pagination_overlap() {
        assert_eq!(read(json!({"api": "select"})), Ok(SyncOptions::default()));
        let paged = read(json!({"api": "/x", "pagination": {"overlap_secs": "60"}})).unwrap();
        assert_eq!(paged.overlap, Duration::from_secs(60));
        let both = read(json!({"api": "/x", "sync_overlap_secs": 10,
            "pagination": {"overlap_secs": 60}, "cursor_field": " updated_at ",
            "cursor_start": "2024-01-01 00:00:00"}))
        .unwrap();
        assert_eq!(both.overlap, Duration::from_secs(10));
        assert_eq!(both.cursor_field.as_deref(), Some("updated_at"));
    }

    #[test]
    fn every_bad_value_is_named_with_its_path() {
        let problems = read(json!({"api": "select", "sync_overlap_secs": -1,
            "cursor_field": 3, "cursor_start": "yesterday"}))
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "source.metadata.sync_overlap_secs",
                "source.metadata.cursor_field",
                "source.metadata.cursor_start",
            ]
        );
        let paged = read(json!({"api": "/x", "pagination": {"overlap_secs": "soon"}}));
        assert_eq!(
            paged.unwrap_err()[0].0,
            "source.metadata.pagination.overlap_secs"
        );
        assert_eq!(
            problems[2].1,
            "\"yesterday\" is neither a number nor a datetime"
        );
    }
}
