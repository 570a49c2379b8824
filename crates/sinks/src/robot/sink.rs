//! The robot target: a batch sorted by the ledger, split into messages by the layout, each
//! pushed after taking a slot of the shared rate limit, and recorded in the ledger as soon as
//! the robot accepted it. The same type posts the alerts ([`RobotSink::post`]), without a ledger.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::identity::distinct;
use ferry_core::scheme::Metadata;
use ferry_core::{FerryError, Record};
use ferry_state::{Counts, State};
use serde_json::Value;

use super::layout::{Entry, Layout, add_keyword};
use super::options::{DEFAULT_WINDOW_SECS, Options};
use super::vendor::{Format, Mentions, PushError, Vendor, send};
use crate::ledger::{Ledger, Marks};
use crate::rate::RateSlot;
use crate::{Sink, WriteReport};

/// A chat robot opened for one scheme (or for the alerts).
pub struct RobotSink {
    /// The connection's name in `ferry.toml`: named in errors and in the limiter's name.
    connection: String,
    vendor: Arc<dyn Vendor>,
    timeout: Duration,
    client: reqwest::Client,
    layout: Layout,
    limit: RateSlot,
    ledger: Ledger,
}

/// What every robot connection says, whatever its vendor.
pub struct RobotSettings<'a> {
    /// The connection's name.
    pub connection: &'a str,
    pub format: Format,
    /// The keyword the robot's security setting requires, if any.
    pub keyword: Option<String>,
    pub per_minute: u32,
    pub timeout_secs: u64,
}

impl RobotSink {
    /// A robot target for `scheme_name`, its metadata read and checked.
    pub(crate) fn open(
        vendor: Arc<dyn Vendor>,
        robot: RobotSettings<'_>,
        metadata: &Metadata,
        state: State,
        client: reqwest::Client,
        scheme_name: &str,
    ) -> Result<RobotSink, FerryError> {
        let options = Options::read(metadata, robot.format, vendor.as_ref())?;
        let layout = Layout::new(vendor.clone(), &options, &robot, metadata, scheme_name);
        Ok(RobotSink {
            connection: robot.connection.to_string(),
            vendor: vendor.clone(),
            timeout: Duration::from_secs(robot.timeout_secs),
            client,
            layout,
            limit: RateSlot::new(
                state.clone(),
                format!("robot:{}", robot.connection),
                robot.per_minute,
                Duration::from_secs(options.window_secs),
                options.throttle_retries,
            )
            .with_per_second(vendor.per_second()),
            ledger: Ledger::new(state, scheme_name, robot.connection, metadata.id_check),
        })
    }

    /// A plain poster of messages: no template, no ledger.
    pub(crate) fn open_poster(
        vendor: Arc<dyn Vendor>,
        robot: RobotSettings<'_>,
        state: State,
        client: reqwest::Client,
        throttle_retries: usize,
    ) -> RobotSink {
        RobotSink {
            connection: robot.connection.to_string(),
            vendor: vendor.clone(),
            timeout: Duration::from_secs(robot.timeout_secs),
            client,
            layout: Layout {
                vendor: vendor.clone(),
                format: robot.format,
                template: Vec::new(),
                labels: Vec::new(),
                records_per_message: 1,
                mentions: Mentions::default(),
                keyword: robot.keyword,
                update_mark: String::new(),
                repeat_mark: String::new(),
                fallback_title: String::new(),
            },
            limit: RateSlot::new(
                state.clone(),
                format!("robot:{}", robot.connection),
                robot.per_minute,
                Duration::from_secs(DEFAULT_WINDOW_SECS),
                throttle_retries,
            )
            .with_per_second(vendor.per_second()),
            ledger: Ledger::new(state, "", robot.connection, false),
        }
    }

    /// Post one message of `title` and markdown `text` (plain text for a `text` robot), with the
    /// connection's keyword added when the text lacks it.
    pub async fn post(&self, title: &str, text: &str) -> Result<(), FerryError> {
        let mut text = text.to_string();
        // Whatever the format, a keyword in the title counts (as in a markdown message).
        add_keyword(
            self.layout.keyword.as_deref(),
            Format::Markdown,
            title,
            &mut text,
        );
        let body = self
            .vendor
            .body(self.layout.format, title, &text, &Mentions::default());
        // Serialising a tree of strings cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.push(&body).await.map_err(|e| self.give_up(e))
    }

    /// One POST of `body`, after taking a rate slot.
    async fn push_once(&self, body: &[u8]) -> Result<(), PushError> {
        self.limit.take().await.map_err(PushError::Failed)?;
        send(
            self.vendor.as_ref(),
            &self.client,
            &self.connection,
            self.timeout,
            body,
        )
        .await
    }

    /// Push `body`, waiting out the window and trying again while the robot answers "too fast".
    async fn push(&self, body: &[u8]) -> Result<(), PushError> {
        let what = format!(
            "connection `{}`: the {} ({})",
            self.connection,
            self.vendor.product(),
            self.vendor.throttle_code()
        );
        self.limit
            .retry_throttled(
                &what,
                || self.push_once(body),
                |e| matches!(e, PushError::Throttled(_)),
            )
            .await
    }

    /// The error a failed push hands to the worker. Throttling that outlasted every retry is
    /// transient, with the window as the hint for when to come back.
    fn give_up(&self, err: PushError) -> FerryError {
        match err {
            PushError::Throttled(errmsg) => {
                let window = self.limit.window();
                FerryError::Transient {
                    message: format!(
                        "connection `{}`: the {} still answers errcode {} \
                         ({errmsg}) after waiting out its window {} time(s) of {} s",
                        self.connection,
                        self.vendor.product(),
                        self.vendor.throttle_code(),
                        self.limit.throttle_retries,
                        window.as_secs()
                    ),
                    retry_after: Some(window),
                }
            }
            PushError::TooLong(errmsg) => FerryError::record(format!(
                "connection `{}`: errcode {} ({errmsg})",
                self.connection,
                self.vendor.too_long_code()
            )),
            PushError::Failed(err) | PushError::Unknown(err) => err,
        }
    }
}

#[async_trait]
impl Sink for RobotSink {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        let all = records
            .into_iter()
            .map(|record| Entry::new(record, &self.layout))
            .collect();
        let (entries, skipped) = self.ledger.sort(all).await?;
        let mut report = WriteReport {
            counts: Counts {
                skipped,
                ..Counts::default()
            },
            failed: Vec::new(),
        };
        let product = self.vendor.product();
        let (messages, too_long) = self.layout.split(&entries);
        for i in too_long {
            let record = &entries[i].record;
            report
                .failed
                .push((record.clone(), self.layout.too_long_error(record)));
        }
        for message in messages {
            let included: Vec<&Entry> = message.indexes.iter().map(|&i| &entries[i]).collect();
            self.ledger.mark_pending(&included).await?;
            let pushed = self.push(&message.body).await;
            if matches!(
                pushed,
                Err(PushError::TooLong(_) | PushError::Throttled(_) | PushError::Failed(_))
            ) {
                self.ledger.clear_pending(&included).await;
            }
            match pushed {
                Ok(()) => {
                    self.ledger.record(&included, "pushed").await?;
                    report.counts.written += included.len() as u64;
                    tracing::debug!(connection = %self.connection, records = included.len(), bytes = message.body.len(), "robot message accepted");
                }
                Err(PushError::TooLong(errmsg)) => {
                    for entry in included {
                        report.failed.push((
                            entry.record.clone(),
                            FerryError::record(format!(
                                "the {product} refused the message holding this record: errcode {} ({errmsg})",
                                self.vendor.too_long_code()
                            ))
                            .with_record_id(&entry.record.id),
                        ));
                    }
                }
                Err(other) => return Err(self.give_up(other)),
            }
        }
        Ok(report)
    }
}

/// The message bodies [`RobotSink::write`] would push for `records` (rendered target records) to
/// a robot whose ledger holds none of them, in order, and the records too long to send even
/// alone: the same layout, grouping and splitting `write` runs, with no state database and no
/// request (a signature is added when sending, not to these bodies). `ferry test` compares
/// these bodies with a scheme's expected messages.
pub(crate) fn render(
    vendor: Arc<dyn Vendor>,
    robot: RobotSettings<'_>,
    metadata: &Metadata,
    scheme_name: &str,
    records: Vec<Record>,
) -> Result<(Vec<Value>, Vec<(Record, FerryError)>), FerryError> {
    let options = Options::read(metadata, robot.format, vendor.as_ref())?;
    let layout = Layout::new(vendor, &options, &robot, metadata, scheme_name);
    let all = records
        .into_iter()
        .map(|record| Entry::new(record, &layout))
        .collect();
    let entries: Vec<Entry> = distinct(all, |e| &e.record.id, |a, b| a.digest == b.digest)
        .kept
        .into_iter()
        .map(|(mut entry, later_content)| {
            entry.marks = Marks {
                update: later_content,
                maybe_repeat: false,
            };
            entry
        })
        .collect();
    let (messages, too_long) = layout.split(&entries);
    let failed = too_long
        .into_iter()
        .map(|i| {
            let record = &entries[i].record;
            (record.clone(), layout.too_long_error(record))
        })
        .collect();
    let bodies = messages
        .iter()
        .map(|m| serde_json::from_slice(&m.body).unwrap_or(Value::Null))
        .collect();
    Ok((bodies, failed))
}
