//! # ferry-sources
//!
//! Where records come from. A [`Source`] pages through one scheme's source for one run and yields
//! [`Page`]s of records with their ids; the extractor publishes each page and only then asks for
//! the next, saving the page's cursor once the broker confirmed it.
//!
//! - [`binlog`]: every insert, update and delete of MySQL/MariaDB tables from the binlog, after
//!   a consistent snapshot, resumable at the exact binlog position.
//! - [`mysql`]: `select` with the seeds' `limit :limit offset :offset` (paged by the table's key
//!   where that reads the same rows), or keyset paging.
//! - [`row`]: MySQL rows to JSON without losing precision (DECIMAL as exact text).
//! - [`http`]: the HTTP client every API source shares (signing hook, rate limit, retries that
//!   honour Retry-After), the paginator (page, offset, cursor, `has_next`, totals, lookups) and
//!   the generic `http` kind.
//! - [`vendors`]: DingTalk/Yida, Jushuitan, OKKI and Kingdee on top of [`http`].
//! - [`token`]: vendor access tokens cached in the state database for every replica.

pub mod binlog;
pub mod http;
pub mod mysql;
pub mod row;
pub mod token;
pub mod vendors;

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::scheme::Metadata;
use ferry_core::{FerryError, Record};
use serde_json::Value;

/// How far `LAST_SYNC_TIME` (and a datetime `LAST_CURSOR`) is moved back when the scheme sets
/// no `sync_overlap_secs`.
pub const DEFAULT_SYNC_OVERLAP_SECS: u64 = 300;

/// The largest overlap accepted: 100 years. Windows are computed on chrono times, which cannot
/// move back by an arbitrary number of seconds.
pub const MAX_SYNC_OVERLAP_SECS: u64 = 100 * 365 * 24 * 60 * 60;

/// The overlap of a source, every kind alike: `sync_overlap_secs` in the metadata, else
/// `pagination.overlap_secs`, else [`DEFAULT_SYNC_OVERLAP_SECS`]. The next window starts this
/// much earlier than the last one began, so records stamped near the boundary (or committed
/// late) are read again; idempotent writes absorb the repeats.
pub fn overlap(metadata: &Metadata) -> Result<Duration, FerryError> {
    let read = |map: &serde_json::Map<String, Value>, key: &str, path: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|secs| *secs <= MAX_SYNC_OVERLAP_SECS)
            .map(Some)
            .ok_or_else(|| {
                FerryError::config(format!(
                    "source.metadata.{path}: expected a whole number of seconds up to \
                     {MAX_SYNC_OVERLAP_SECS} (100 years), found {v}"
                ))
            }),
    };
    let pagination = metadata.pagination.clone().unwrap_or_default();
    let secs = match read(&metadata.extra, "sync_overlap_secs", "sync_overlap_secs")? {
        Some(secs) => secs,
        None => read(&pagination.extra, "overlap_secs", "pagination.overlap_secs")?
            .unwrap_or(DEFAULT_SYNC_OVERLAP_SECS),
    };
    Ok(Duration::from_secs(secs))
}

/// One page of records, and where the source stands after it.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The position to resume from after this page (saved once the page is confirmed).
    pub cursor: Option<Value>,
    /// Records of this page that cannot be carried (a value the source could not decode), each
    /// with its error naming the column; the extractor dead-letters them, the rest goes on.
    pub rejected: Vec<(Record, FerryError)>,
}

/// A source opened for one run.
#[async_trait]
pub trait Source: Send {
    /// The next page, or `None` when the source is exhausted.
    async fn next_page(&mut self) -> Result<Option<Page>, FerryError>;

    /// Continue after the page whose [`Page::cursor`] this is (an interrupted run of the same
    /// scheme), before the first `next_page`. A cursor this kind of source did not write is a
    /// configuration error naming it.
    fn resume_at(&mut self, cursor: &Value) -> Result<(), FerryError>;

    /// How the source pages, where the user should know (a MySQL source's offset SQL paged by
    /// the table's key, or kept as written and why), for `ferry lint --online`.
    async fn paging_note(&mut self) -> Result<Option<String>, FerryError> {
        Ok(None)
    }
}

/// The error for a saved cursor that does not fit the source.
pub(crate) fn foreign_cursor(cursor: &Value) -> FerryError {
    FerryError::config(format!(
        "the saved cursor {cursor} was not written by this source; start the scheme from the \
         beginning with `ferry extract --once --restart --scheme NAME`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn an_overlap_past_what_a_time_can_move_is_a_config_error() {
        // Found by the property tests: the extractor turned this into `TimeDelta::seconds`
        // of i64::MAX and panicked at the start of every run.
        for huge in [json!(18446744073709551615u64), json!("9223372036854775807")] {
            let err = overlap(&metadata(
                json!({"api": "select", "sync_overlap_secs": huge}),
            ))
            .unwrap_err();
            assert_eq!(err.class(), ferry_core::ErrorClass::Config);
            assert!(
                err.to_string().starts_with(
                    "source.metadata.sync_overlap_secs: expected a whole number of seconds up to \
                     3153600000 (100 years), found "
                ),
                "{err}"
            );
        }
        let paged = metadata(json!({"api": "/x", "pagination": {"overlap_secs": 3153600001u64}}));
        assert!(overlap(&paged).is_err());
        let most = metadata(json!({"api": "/x", "sync_overlap_secs": MAX_SYNC_OVERLAP_SECS}));
        assert_eq!(
            overlap(&most).unwrap(),
            Duration::from_secs(MAX_SYNC_OVERLAP_SECS)
        );
    }
}
