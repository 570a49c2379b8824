//! The no-op target (`写入空操作`): accepts every record and writes nothing. Seeds 003 and 004
//! use it to run a source for its side effects (a token refresh) or for counts.

use async_trait::async_trait;
use ferry_core::{FerryError, Record};
use ferry_state::Counts;

use crate::{Sink, WriteReport};

pub struct NoopSink;

#[async_trait]
impl Sink for NoopSink {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        Ok(WriteReport {
            counts: Counts {
                accepted: records.len() as u64,
                ..Counts::default()
            },
            failed: Vec::new(),
        })
    }
}
