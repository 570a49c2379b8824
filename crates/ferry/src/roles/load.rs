//! `ferry load`: write each batch to the scheme's target, then acknowledge it.
//!
//! The sink reports per record; records the target refused go to the DLQ one by one, and the
//! message is acknowledged only once the rest is committed (MySQL) or accepted (DingTalk).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_bus::Headers;
use ferry_core::{Envelope, FerryError};
use ferry_sinks::Sink;

use super::worker::{Handled, Handler};

pub struct LoadHandler {
    pub sink: Arc<dyn Sink>,
}

#[async_trait]
impl Handler for LoadHandler {
    async fn handle(
        &self,
        envelope: &Envelope,
        _headers: &Headers,
        _trace: &opentelemetry::Context,
    ) -> Result<Handled, FerryError> {
        let report = self.sink.write(envelope.records.clone()).await?;
        let counts = report.counts;
        Ok(Handled {
            passed: counts.settled() - counts.skipped,
            counts,
            failed: report.failed,
            ..Handled::default()
        })
    }

    async fn probe(&self) -> Result<(), String> {
        self.sink.probe().await
    }
}
