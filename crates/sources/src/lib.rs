//! # ferry-sources
//!
//! Where records come from. A [`Source`] pages through one scheme's source for one run and yields
//! [`Page`]s of records with their ids; the extractor publishes each page and only then asks for
//! the next, saving the page's cursor once the broker confirmed it.
//!
//! - [`mysql`]: `select` with the seeds' `limit :limit offset :offset`, or keyset paging.
//! - [`row`]: MySQL rows to JSON without losing precision (DECIMAL as exact text).
//! - [`http`]: the HTTP client every API source shares (signing hook, rate limit, retries that
//!   honour Retry-After), the paginator (page, offset, cursor, `has_next`, totals, lookups) and
//!   the generic `http` kind.
//! - [`vendors`]: DingTalk/Yida, Jushuitan, OKKI and Kingdee on top of [`http`].
//! - [`token`]: vendor access tokens cached in the state database for every replica.

pub mod http;
pub mod mysql;
pub mod row;
pub mod token;
pub mod vendors;

use async_trait::async_trait;
use ferry_core::{FerryError, Record};
use serde_json::Value;

/// One page of records, and where the source stands after it.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The position to resume from after this page (saved once the page is confirmed).
    pub cursor: Option<Value>,
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
}

/// The error for a saved cursor that does not fit the source.
pub(crate) fn foreign_cursor(cursor: &Value) -> FerryError {
    FerryError::config(format!(
        "the saved cursor {cursor} was not written by this source; start the scheme from the \
         beginning with `ferry extract --once --restart --scheme NAME`"
    ))
}
