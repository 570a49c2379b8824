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
use ferry_core::connector::sync::SyncOptions;
use ferry_core::scheme::Metadata;
use ferry_core::{FerryError, Record};
use serde_json::Value;

pub use ferry_core::connector::sync::{DEFAULT_SYNC_OVERLAP_SECS, MAX_SYNC_OVERLAP_SECS};

/// The overlap of a source, every kind alike, as [`SyncOptions::read`] (the one parser of it)
/// reads it: `sync_overlap_secs` in the metadata, else `pagination.overlap_secs`, else
/// [`DEFAULT_SYNC_OVERLAP_SECS`]. The next window starts this much earlier than the last one
/// began, so records stamped near the boundary (or committed late) are read again; idempotent
/// writes absorb the repeats. `ferry lint` refused a bad value already; the error is for
/// metadata that did not come through [`ferry_core::files::read`].
pub fn overlap(metadata: &Metadata) -> Result<Duration, FerryError> {
    SyncOptions::read(metadata)
        .map(|options| options.overlap)
        .map_err(config_error)
}

/// A configuration error listing `problems` (path, message) as `path: message; ...`.
pub(crate) fn config_error(problems: Vec<(String, String)>) -> FerryError {
    let list: Vec<String> = problems
        .into_iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
    FerryError::config(list.join("; "))
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
