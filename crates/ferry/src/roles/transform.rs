//! `ferry transform`: apply the scheme's mapping to every record of a page and publish the
//! rendered records to the load queue, in batches of the target's `batch_size`.
//!
//! Per record: `formatResponse` renames and converts the source fields, then the target's
//! request tree is rendered against the record. A record that fails either step is dead-lettered
//! alone with its field path; the rest of the page moves on. Each rendered record carries the
//! source record it came from (`Record::source`), so a load dead letter can be rendered again.
//!
//! A record is its (id, content) (`ferry_core::identity`): an identical repeat in a page is
//! dropped here and counted as skipped, so the load batches of one page never repeat each other,
//! and every other content of an id moves on, counted as sharing its id.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono_tz::Tz;
use ferry_bus::{Headers, Publisher, Stage, names};
use ferry_core::files::SchemeFile;
use ferry_core::identity::distinct_records;
use ferry_core::mapping::apply_format_response;
use ferry_core::template::Context;
use ferry_core::{Envelope, FerryError, Record};
use ferry_state::{Counts, State};

use super::worker::{Handled, Handler, batch_key};

/// Records per load message when the target does not say (`metadata.batch_size`).
pub const DEFAULT_LOAD_BATCH: usize = 500;

/// A scheme's mapping, ready to apply: shared by the transform stage and `ferry preview`.
pub struct Transformer {
    /// The scheme, with its time zone and compiled templates (parsed when the files were read).
    scheme: SchemeFile,
    batch_size: usize,
}

impl Transformer {
    pub fn new(scheme: SchemeFile, default_batch: usize) -> Transformer {
        let batch_size = scheme
            .scheme
            .target
            .metadata
            .batch_size
            .unwrap_or(default_batch)
            .max(1);
        Transformer { scheme, batch_size }
    }

    /// Map one record: formatResponse, then the request tree. Also names the placeholders that
    /// read a field this record does not have (`{nmae}`), each once.
    pub fn map_record(
        &self,
        record: &Record,
        now: chrono::DateTime<Tz>,
    ) -> Result<(Record, Vec<String>), FerryError> {
        let mut data = record.data.clone();
        apply_format_response(
            &self.scheme.scheme.source.metadata.format_response,
            &mut data,
            self.scheme.timezone,
        )
        .map_err(|e| e.with_record_id(&record.id))?;
        let shaped = Record {
            id: record.id.clone(),
            data,
            source: None,
        };
        self.scheme
            .mapper
            .map_noting_absent(&shaped, &Context::new(now, self.scheme.timezone))
    }
}

/// A page mapped by [`Transformer::map_page`].
pub struct MappedPage {
    /// The rendered records for the load queue, in page order, identical repeats dropped; each
    /// carries the source record it was rendered from.
    pub records: Vec<Record>,
    /// The records whose mapping failed, each with its record error (id and field path).
    pub failed: Vec<(Record, FerryError)>,
    /// Per placeholder that read a field absent from some records (`{nmae}`), how many records.
    pub absent: BTreeMap<String, u64>,
    /// Identical repeats dropped (same id, same rendered content).
    pub repeats: u64,
    /// Records kept although an earlier one of the page had their id with another content.
    pub shared_id: u64,
}

impl Transformer {
    /// Records per load message.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The timezone the scheme's templates render in.
    pub fn timezone(&self) -> Tz {
        self.scheme.timezone
    }

    /// Map every record of a page (what the transform stage does with each message): a record
    /// that fails is set aside with its error and the rest move on; a configuration error
    /// (the scheme cannot map anything) is returned as `Err`.
    pub fn map_page(
        &self,
        records: &[Record],
        now: chrono::DateTime<Tz>,
    ) -> Result<MappedPage, FerryError> {
        let mut mapped = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        let mut absent: BTreeMap<String, u64> = BTreeMap::new();
        for record in records {
            match self.map_record(record, now) {
                Ok((r, lacking)) => {
                    // Kept so that a load dead letter can be rendered again after a mapping fix
                    // (`ferry replay --rerender`); it roughly doubles the load message.
                    let r = r.rendered_from(&record.data);
                    for placeholder in lacking {
                        *absent.entry(placeholder).or_default() += 1;
                    }
                    mapped.push(r);
                }
                Err(e @ FerryError::Config { .. }) => return Err(e),
                Err(e) => failed.push((record.clone(), e.with_record_id(&record.id))),
            }
        }
        let page = distinct_records(mapped);
        Ok(MappedPage {
            records: page.kept.into_iter().map(|(r, _)| r).collect(),
            failed,
            absent,
            repeats: page.repeats,
            shared_id: page.shared_id,
        })
    }
}

/// How a run reports a placeholder that named a field absent from `records` of its `of`
/// records: `{nmae}: absent in all 5 records (rendered as null)`.
pub fn absent_note(placeholder: &str, records: i64, of: i64) -> String {
    let how_many = if records >= of {
        format!("all {of} records")
    } else {
        format!("{records} of {of} records")
    };
    format!("{placeholder}: absent in {how_many} (rendered as null)")
}

/// The transform stage: map, then publish to the load queue.
pub struct TransformHandler {
    pub transformer: Transformer,
    pub publisher: Publisher,
    /// Where the run's absent-field counts go.
    pub state: State,
}

impl TransformHandler {
    /// Log the placeholders that named a field absent from records of this message, and count
    /// them on the run (once per message) for its summary. Counting is best effort: a state
    /// database outage must not hold records back, so it is logged and the batch moves on.
    async fn report_absent(&self, envelope: &Envelope, absent: BTreeMap<String, u64>) {
        let scheme = &self.transformer.scheme.scheme.name;
        let total = envelope.records.len();
        for (placeholder, records) in &absent {
            tracing::warn!(
                scheme,
                run = %envelope.run_id,
                placeholder,
                records,
                of = total,
                "{placeholder}: absent in {records} of {total} records of this batch; it renders \
                 null (a misspelt field name?)"
            );
        }
        let absent: Vec<(String, u64)> = absent.into_iter().collect();
        let key = batch_key(Stage::Transform, envelope, 0);
        if let Err(e) = self
            .state
            .count_absent(&envelope.run_id, &key, &absent)
            .await
        {
            tracing::warn!(scheme, error = %e, "could not count absent fields on the run");
        }
    }
}

#[async_trait]
impl Handler for TransformHandler {
    async fn handle(
        &self,
        envelope: &Envelope,
        headers: &Headers,
        trace: &opentelemetry::Context,
    ) -> Result<Handled, FerryError> {
        let t = &self.transformer;
        let now = chrono::Utc::now().with_timezone(&t.scheme.timezone);
        let MappedPage {
            records: mapped,
            failed,
            absent,
            repeats,
            shared_id,
        } = t.map_page(&envelope.records, now)?;
        let passed = mapped.len() as u64;
        if !absent.is_empty() {
            self.report_absent(envelope, absent).await;
        }
        if !mapped.is_empty() {
            let name = &t.scheme.scheme.name;
            let mut out_headers = Headers::new(name, &envelope.run_id, Stage::Load);
            out_headers.replays = headers.replays;
            ferry_bus::trace::inject(trace, &mut out_headers);
            let mut batches = Vec::new();
            let mut records = mapped.into_iter().peekable();
            while records.peek().is_some() {
                let chunk: Vec<Record> = records.by_ref().take(t.batch_size).collect();
                batches.push((
                    Envelope {
                        scheme: name.clone(),
                        run_id: envelope.run_id.clone(),
                        seq: envelope.seq,
                        records: chunk,
                    },
                    out_headers.clone(),
                ));
            }
            self.publisher
                .publish_many(&names::work_queue(name, Stage::Load), &batches)
                .await
                .map_err(|e| FerryError::transient(format!("publishing to the load queue: {e}")))?;
        }
        Ok(Handled {
            passed,
            // Identical repeats in the page end here; every other record settles in the load.
            counts: Counts {
                skipped: repeats,
                ..Counts::default()
            },
            shared_id,
            failed,
        })
    }
}
