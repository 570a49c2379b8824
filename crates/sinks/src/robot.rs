//! The DingTalk custom group robot target (`DingTalkRoBotPush`, seed 000).
//!
//! A batch of rendered records (the target request tree: `title`, `header` and labelled fields)
//! becomes a few chat messages of up to `batch_size` records each (default 10), every body kept
//! under the robot's 20,000 bytes. Each message is signed (`timestamp` + HMAC-SHA256 `sign`) and
//! says how many records it carries. People read a chat group, so a duplicate is the worst
//! outcome, and the robot accepts only 20 messages a minute:
//!
//! - Identity: a record is its (id, content digest), the digest of what the group sees of it. In
//!   a batch, an identical repeat is skipped and every other content of an id is pushed, in
//!   order, the later ones marked as updates.
//! - Ledger (`idCheck`): the state database keeps every (id, digest) the robot accepted. It
//!   answers "was this exact content already pushed for this id?": if so (a replay, a
//!   redelivery, a re-extraction) the record is skipped; if the id was pushed only with other
//!   contents, the record is pushed, marked as an update. A message's records are recorded in the
//!   ledger right after the robot answered `errcode: 0`, before the next message, so a batch that
//!   fails half way and comes back pushes only what is left. Before each push its (id, digest)
//!   pairs are noted as pending; an answer (accepted or refused) settles them. A content still
//!   pending when it comes back (the process died mid-push, or the answer was lost) may be in the
//!   group already: it is pushed again marked as a possible repeat, so people know, rather than
//!   silently dropped.
//! - Rate limit: every push first takes a slot of the sliding-window limiter kept in the state
//!   database (`robot:<connection>`), shared by every loader replica. If the robot still answers
//!   130101 (someone else posts with the same robot), the sink waits out the window and tries
//!   again, a bounded number of times, before handing the batch back as a transient failure.
//! - Errors: sign, token, keyword, whitelist and stopped-robot answers are configuration errors
//!   (the scheme stops, its messages stay queued); `-1`, 5xx and network failures are transient.
//!   Error texts name the connection and the robot's errcode and errmsg, never the token or the
//!   secret.
//!
//! The metadata keys this target reads are listed in the README ("The DingTalk robot target").

use std::time::Duration;

use async_trait::async_trait;
use backon::{ConstantBuilder, ExponentialBuilder, Retryable};
use ferry_core::config::{DingTalkRobotConnection, RobotFormat, Secret};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::{robot_sign_query, to_hex, url_encode};
use ferry_core::{FerryError, Record};
use ferry_state::{Counts, State};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use ferry_core::identity::{Distinct, distinct};

use crate::{Sink, WriteReport};

/// The robot refuses a body of more than this many bytes (`460101 message too long`).
pub const MAX_BODY_BYTES: usize = 20_000;
/// Records per message when the scheme's `batch_size` is not set.
pub const DEFAULT_RECORDS_PER_MESSAGE: usize = 10;
/// The robot's rate window: `per_minute` messages per this many seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// Added to the limiter's window. A slot is taken just before a request leaves, but the robot
/// counts a message when it arrives; the margin absorbs the difference in latency between two
/// requests, so that what the limiter lets through never exceeds the limit at the robot.
pub const RATE_MARGIN_MS: u64 = 1_000;
/// How often a message answered 130101 is retried, a window apart, before the batch goes back
/// to the queue as a transient failure. Eleven one-minute windows outlast the robot's penalty of
/// about ten minutes.
pub const DEFAULT_THROTTLE_RETRIES: usize = 11;
/// Upper bound of `throttle_retries`, so that one delivery cannot be held for hours.
pub const MAX_THROTTLE_RETRIES: u64 = 60;
/// Shown next to a record that was pushed before with other content.
pub const DEFAULT_UPDATE_MARK: &str = "（更新）";
/// The mark on a record that may have been pushed already (see the module docs).
pub const DEFAULT_REPEAT_MARK: &str = "（可能重复）";
/// The message layout of the `markdown` format when `message_template` is not set.
pub const DEFAULT_MARKDOWN_TEMPLATE: &str = "#### {header}（{count} 条）\n\n{records}";
/// The message layout of the `text` format when `message_template` is not set.
pub const DEFAULT_TEXT_TEMPLATE: &str = "【{title}】{header}（{count} 条）\n\n{records}";
/// Writing the ledger after an accepted push is retried this often before the batch fails.
const LEDGER_ATTEMPTS: usize = 5;
/// First pause between ledger attempts (doubling).
const LEDGER_BACKOFF_MS: u64 = 200;

/// Fields of a rendered record that are parts of the message, not `label: value` lines.
/// `access_token` is the seeds' way of naming the robot; Ferry takes it from the connection.
const MESSAGE_PART_FIELDS: [&str; 3] = ["access_token", "title", "header"];
/// The `api` this target answers to (the seeds' spelling; compared ignoring case).
const API: &str = "DingTalkRoBotPush";
/// The placeholders a `message_template` may use.
const TEMPLATE_PLACEHOLDERS: [&str; 4] = ["title", "header", "count", "records"];

const ERRCODE_OK: i64 = 0;
const ERRCODE_BUSY: i64 = -1;
const ERRCODE_THROTTLED: i64 = 130_101;
const ERRCODE_TOO_LONG: i64 = 460_101;
/// Answers that no retry can fix: they stop the scheme until an operator acts.
const CONFIG_ERRCODES: [(i64, &str); 6] = [
    (
        310_000,
        "check the connection's `secret`, `keyword`, the robot's IP whitelist and this machine's clock",
    ),
    (300_005, "check the connection's `access_token`"),
    (300_001, "check the connection's `access_token`"),
    (
        400_102,
        "the robot was stopped in the group's settings; start it again",
    ),
    (
        40_035,
        "a required parameter is missing; check the connection's `access_token`",
    ),
    (
        43_002,
        "the robot only takes POST; check the connection's `base_url`",
    ),
];

/// Builds the HTTP client the robot sinks share. TLS uses the ring provider, installed here if
/// the process has not installed one yet (the `ferry` binary does it at start-up).
pub fn http_client() -> Result<reqwest::Client, FerryError> {
    // Installing twice is refused harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .map_err(|e| FerryError::config(format!("cannot build an HTTP client: {e}")))
}

/// A DingTalk robot opened for one scheme.
pub struct RobotSink {
    /// The connection's name in `ferry.toml`: named in errors and in the limiter's name.
    connection: String,
    scheme: String,
    base_url: String,
    access_token: Secret,
    secret: Option<Secret>,
    timeout: Duration,
    client: reqwest::Client,
    state: State,
    layout: Layout,
    limit: RateLimit,
    /// Consult and write the ledger (`idCheck`).
    id_check: bool,
}

/// How records become message bodies. Pure: no I/O, unit-tested on its own.
#[derive(Clone, Debug)]
struct Layout {
    format: RobotFormat,
    template: Vec<Piece>,
    /// `(field key, label)` of every labelled field, in request order.
    labels: Vec<(String, String)>,
    records_per_message: usize,
    at_mobiles: Vec<String>,
    at_all: bool,
    keyword: Option<String>,
    update_mark: String,
    repeat_mark: String,
    /// Title used when a record renders none (the scheme's name).
    fallback_title: String,
}

/// A piece of a parsed `message_template`.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Title,
    Header,
    Count,
    Records,
}

#[derive(Clone, Debug)]
struct RateLimit {
    /// `robot:<connection>`: one limiter per robot, whichever scheme posts to it.
    name: String,
    per_window: u32,
    window: Duration,
    throttle_retries: usize,
}

/// One record ready to push.
#[derive(Clone, Debug)]
struct Entry {
    record: Record,
    content: Content,
    digest: String,
    /// Another content of its id was pushed before, or comes earlier in the batch.
    update: bool,
    /// In a push whose answer never came: it may be in the group already.
    maybe_repeat: bool,
}

/// What a record shows in the group.
#[derive(Clone, Debug, PartialEq)]
struct Content {
    title: String,
    header: String,
    lines: Vec<(String, String)>,
}

impl Content {
    /// SHA-256 (hex) of exactly what the group sees of this record, so a change to any shown
    /// value makes a new digest and nothing else does.
    fn digest(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        for part in [&self.title, &self.header] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        for (label, value) in &self.lines {
            hasher.update(label.as_bytes());
            hasher.update(b": ");
            hasher.update(value.as_bytes());
            hasher.update(b"\n");
        }
        to_hex(&hasher.finalize())
    }
}

/// How one push ended, short of success.
#[derive(Debug)]
enum PushError {
    /// 130101: over the robot's limit.
    Throttled(String),
    /// 460101: the body is too long. Splitting prevents it; if it happens anyway, the records of
    /// that message are bad records.
    TooLong(String),
    /// The robot refused the message, or could not be reached: it was not delivered.
    Failed(FerryError),
    /// No answer to read (a timeout or a dropped connection after sending): it may have been.
    Unknown(FerryError),
}

impl RobotSink {
    /// Open the robot `conn_name` for `scheme_name`'s target. Every problem with the metadata is
    /// a configuration error naming its key.
    pub fn new(
        conn_name: &str,
        conn: &DingTalkRobotConnection,
        metadata: &Metadata,
        state: State,
        client: reqwest::Client,
        scheme_name: &str,
    ) -> Result<RobotSink, FerryError> {
        if !metadata.api.eq_ignore_ascii_case(API) {
            return Err(FerryError::config(format!(
                "target.metadata.api: `{}` is not a DingTalk robot api (`{API}`)",
                metadata.api
            )));
        }
        if conn.access_token.is_empty() {
            return Err(FerryError::config(format!(
                "connection `{conn_name}`: access_token is empty"
            )));
        }
        let options = Options::read(metadata, conn)?;
        let layout = Layout::new(&options, metadata, conn, scheme_name);
        Ok(RobotSink {
            connection: conn_name.to_string(),
            scheme: scheme_name.to_string(),
            base_url: conn.base_url.trim_end_matches('/').to_string(),
            access_token: conn.access_token.clone(),
            secret: conn.secret.clone(),
            timeout: Duration::from_secs(conn.timeout_secs),
            client,
            state,
            layout,
            limit: RateLimit {
                name: format!("robot:{conn_name}"),
                per_window: conn.per_minute.max(1),
                window: Duration::from_secs(options.window_secs),
                throttle_retries: options.throttle_retries,
            },
            id_check: metadata.id_check,
        })
    }

    /// The robot `conn_name` as a plain poster of messages (the alerts): the same signing,
    /// sending, errcode handling and shared rate limiter as the target, and no ledger. A message
    /// the robot throttles is tried again `throttle_retries` windows later.
    pub fn poster(
        conn_name: &str,
        conn: &DingTalkRobotConnection,
        state: State,
        client: reqwest::Client,
        throttle_retries: usize,
    ) -> RobotSink {
        RobotSink {
            connection: conn_name.to_string(),
            scheme: String::new(),
            base_url: conn.base_url.trim_end_matches('/').to_string(),
            access_token: conn.access_token.clone(),
            secret: conn.secret.clone(),
            timeout: Duration::from_secs(conn.timeout_secs),
            client,
            state,
            layout: Layout {
                format: conn.format,
                template: Vec::new(),
                labels: Vec::new(),
                records_per_message: 1,
                at_mobiles: Vec::new(),
                at_all: false,
                keyword: conn.keyword.clone(),
                update_mark: String::new(),
                repeat_mark: String::new(),
                fallback_title: String::new(),
            },
            limit: RateLimit {
                name: format!("robot:{conn_name}"),
                per_window: conn.per_minute.max(1),
                window: Duration::from_secs(DEFAULT_WINDOW_SECS),
                throttle_retries,
            },
            id_check: false,
        }
    }

    /// Post one message of `title` and markdown `text` (plain text for a `text` robot), with the
    /// connection's keyword added when the text lacks it.
    pub async fn post(&self, title: &str, text: &str) -> Result<(), FerryError> {
        let mut text = text.to_string();
        if let Some(keyword) = &self.layout.keyword
            && !text.contains(keyword.as_str())
            && !title.contains(keyword.as_str())
        {
            text.push_str("\n\n");
            text.push_str(keyword);
        }
        let body = match self.layout.format {
            RobotFormat::Markdown => json!({
                "msgtype": "markdown",
                "markdown": { "title": title, "text": text },
            }),
            RobotFormat::Text => json!({
                "msgtype": "text",
                "text": { "content": text },
            }),
        };
        // Serialising a tree of strings cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.push(&body).await.map_err(|e| self.give_up(e))
    }

    /// Wait for a slot of the shared limiter.
    async fn take_slot(&self) -> Result<(), FerryError> {
        let window = self.limit.window + Duration::from_millis(RATE_MARGIN_MS);
        loop {
            match self
                .state
                .take_rate_slot(&self.limit.name, self.limit.per_window, window)
                .await?
            {
                None => return Ok(()),
                Some(wait) => {
                    tracing::debug!(limiter = %self.limit.name, wait_ms = wait.as_millis() as u64, "robot rate limit: waiting for a slot");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One signed POST of `body`, after taking a rate slot.
    async fn push_once(&self, body: &[u8]) -> Result<(), PushError> {
        self.take_slot().await.map_err(PushError::Failed)?;
        let mut url = format!(
            "{}/robot/send?access_token={}",
            self.base_url,
            url_encode(self.access_token.expose())
        );
        if let Some(secret) = &self.secret {
            let now_ms = chrono::Utc::now().timestamp_millis();
            url.push('&');
            url.push_str(&robot_sign_query(secret.expose(), now_ms));
        }
        let conn = &self.connection;
        let response = self
            .client
            .post(url)
            .timeout(self.timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                // Refused before the request went out: not delivered; otherwise nobody knows.
                let undelivered = e.is_connect() || e.is_builder();
                let refused = e.is_connect();
                // The URL carries the token and the signature: never let it into the text.
                let err = FerryError::transient(format!(
                    "connection `{conn}`: cannot reach the DingTalk robot at {}: {}{}",
                    self.base_url,
                    error_chain(&e.without_url()),
                    if refused {
                        ferry_core::error::refused_hint(&self.base_url)
                    } else {
                        ""
                    }
                ));
                if undelivered {
                    PushError::Failed(err)
                } else {
                    PushError::Unknown(err)
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = format!(
                "connection `{conn}`: the DingTalk robot at {} answered HTTP {status}",
                self.base_url
            );
            let permanent = status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
            return Err(PushError::Failed(if permanent {
                FerryError::config(format!("{text}; check base_url"))
            } else {
                FerryError::transient(text)
            }));
        }
        let answer: Value = response.json().await.map_err(|e| {
            PushError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the DingTalk robot's answer is not JSON: {}",
                error_chain(&e.without_url())
            )))
        })?;
        let errcode = answer.get("errcode").and_then(Value::as_i64);
        let errmsg = answer.get("errmsg").map(value_text).unwrap_or_default();
        match errcode {
            Some(code) => classify_answer(conn, code, &errmsg),
            None => Err(PushError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the DingTalk robot's answer has no errcode"
            )))),
        }
    }

    /// Push `body`, waiting out the window and trying again while the robot answers 130101.
    async fn push(&self, body: &[u8]) -> Result<(), PushError> {
        let window = self.limit.window + Duration::from_millis(RATE_MARGIN_MS);
        (|| self.push_once(body))
            .retry(
                ConstantBuilder::new()
                    .with_delay(window)
                    .with_max_times(self.limit.throttle_retries),
            )
            .when(|e| matches!(e, PushError::Throttled(_)))
            .notify(|e, wait| {
                tracing::warn!(connection = %self.connection, error = ?e, wait_secs = wait.as_secs(), "DingTalk robot throttled (130101); waiting out the window");
            })
            .await
    }

    /// The error a failed push hands to the worker. Throttling that outlasted every retry is
    /// transient, with the window as the hint for when to come back.
    fn give_up(&self, err: PushError) -> FerryError {
        match err {
            PushError::Throttled(errmsg) => {
                let window = self.limit.window + Duration::from_millis(RATE_MARGIN_MS);
                FerryError::Transient {
                    message: format!(
                        "connection `{}`: the DingTalk robot still answers errcode {ERRCODE_THROTTLED} \
                         ({errmsg}) after waiting out its window {} time(s) of {} s",
                        self.connection,
                        self.limit.throttle_retries,
                        window.as_secs()
                    ),
                    retry_after: Some(window),
                }
            }
            PushError::TooLong(errmsg) => FerryError::record(format!(
                "connection `{}`: errcode {ERRCODE_TOO_LONG} ({errmsg})",
                self.connection
            )),
            PushError::Failed(err) | PushError::Unknown(err) => err,
        }
    }

    /// `(id, digest)` of the entries the ledger tracks (those with an id).
    fn ledger_pairs(&self, entries: &[&Entry]) -> Vec<(String, String)> {
        if !self.id_check {
            return Vec::new();
        }
        entries
            .iter()
            .filter(|e| !e.record.id.is_empty())
            .map(|e| (e.record.id.clone(), e.digest.clone()))
            .collect()
    }

    /// Note a message's records as being pushed, before the push.
    async fn mark_pending(&self, entries: &[&Entry]) -> Result<(), FerryError> {
        let pairs = self.ledger_pairs(entries);
        if pairs.is_empty() {
            return Ok(());
        }
        Ok(self.state.mark_pending(&self.scheme, &pairs).await?)
    }

    /// The robot refused the message: its records were not delivered. A failure here only
    /// costs a needless "possible repeat" mark later, so it is logged, not raised.
    async fn clear_pending(&self, entries: &[&Entry]) {
        let pairs = self.ledger_pairs(entries);
        if pairs.is_empty() {
            return;
        }
        if let Err(e) = self.state.clear_pending(&self.scheme, &pairs).await {
            tracing::warn!(connection = %self.connection, error = %e, "could not clear pending robot records");
        }
    }

    /// Record delivered records in the ledger, retrying briefly: a push that is not recorded
    /// would be pushed again after a redelivery.
    async fn record(&self, entries: &[&Entry]) -> Result<(), FerryError> {
        let pairs = self.ledger_pairs(entries);
        if pairs.is_empty() {
            return Ok(());
        }
        (|| self.state.record_delivered(&self.scheme, &pairs))
            .retry(
                ExponentialBuilder::new()
                    .with_min_delay(Duration::from_millis(LEDGER_BACKOFF_MS))
                    .with_max_times(LEDGER_ATTEMPTS),
            )
            .await
            .map_err(|e| {
                FerryError::transient(format!(
                    "connection `{}`: pushed {} records but could not record them in the ledger \
                     (they may be pushed again): {e}",
                    self.connection,
                    pairs.len()
                ))
            })
    }

    /// Sort the batch by identity: identical repeats in the batch and contents the ledger has
    /// (skipped), and the rest to push, marked as updates when another content of their id was
    /// pushed before or comes earlier in the batch, and as possible repeats when an earlier push
    /// of the same content went unanswered.
    async fn entries(&self, records: Vec<Record>) -> Result<(Vec<Entry>, u64), FerryError> {
        let batch = self.layout.distinct_entries(records);
        let (ledger, pending) = if self.id_check {
            let mut ids: Vec<String> = batch
                .kept
                .iter()
                .filter(|(e, _)| !e.record.id.is_empty())
                .map(|(e, _)| e.record.id.clone())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            (
                self.state.ledger(&self.scheme, &ids).await?,
                self.state.pending(&self.scheme, &ids).await?,
            )
        } else {
            Default::default()
        };
        let mut skipped = batch.repeats;
        let mut entries = Vec::with_capacity(batch.kept.len());
        for (mut entry, later_content) in batch.kept {
            let delivered = ledger.get(&entry.record.id).map(Vec::as_slice);
            let delivered = delivered.unwrap_or_default();
            if delivered.iter().any(|d| d.digest == entry.digest) {
                skipped += 1;
                continue;
            }
            entry.update = later_content || !delivered.is_empty();
            entry.maybe_repeat = pending.contains(&(entry.record.id.clone(), entry.digest.clone()));
            entries.push(entry);
        }
        Ok((entries, skipped))
    }
}

#[async_trait]
impl Sink for RobotSink {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        let (entries, skipped) = self.entries(records).await?;
        let mut report = WriteReport {
            counts: Counts {
                skipped,
                ..Counts::default()
            },
            failed: Vec::new(),
        };
        let (messages, too_long) = self.layout.split(&entries);
        for i in too_long {
            let record = &entries[i].record;
            report.failed.push((record.clone(), too_long_error(record)));
        }
        for message in messages {
            let included: Vec<&Entry> = message.indexes.iter().map(|&i| &entries[i]).collect();
            self.mark_pending(&included).await?;
            let pushed = self.push(&message.body).await;
            if matches!(
                pushed,
                Err(PushError::TooLong(_) | PushError::Throttled(_) | PushError::Failed(_))
            ) {
                self.clear_pending(&included).await;
            }
            match pushed {
                Ok(()) => {
                    self.record(&included).await?;
                    report.counts.written += included.len() as u64;
                    tracing::debug!(connection = %self.connection, records = included.len(), bytes = message.body.len(), "robot message accepted");
                }
                Err(PushError::TooLong(errmsg)) => {
                    for entry in included {
                        report.failed.push((
                            entry.record.clone(),
                            FerryError::record(format!(
                                "the DingTalk robot refused the message holding this record: errcode {ERRCODE_TOO_LONG} ({errmsg})"
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
/// request (the signature is added to the URL when sending, not to the body). `ferry test`
/// compares these bodies with a scheme's expected messages.
pub fn render_messages(
    conn: &DingTalkRobotConnection,
    metadata: &Metadata,
    scheme_name: &str,
    records: Vec<Record>,
) -> Result<(Vec<Value>, Vec<(Record, FerryError)>), FerryError> {
    let layout = Layout::new(&Options::read(metadata, conn)?, metadata, conn, scheme_name);
    let entries: Vec<Entry> = (layout.distinct_entries(records).kept.into_iter())
        .map(|(entry, later_content)| Entry {
            update: later_content,
            ..entry
        })
        .collect();
    let (messages, too_long) = layout.split(&entries);
    let failed = too_long
        .into_iter()
        .map(|i| {
            (
                entries[i].record.clone(),
                too_long_error(&entries[i].record),
            )
        })
        .collect();
    let bodies = messages
        .iter()
        .map(|m| serde_json::from_slice(&m.body).unwrap_or(Value::Null))
        .collect();
    Ok((bodies, failed))
}

fn too_long_error(record: &Record) -> FerryError {
    FerryError::record(format!(
        "this record alone makes a DingTalk robot message over {MAX_BODY_BYTES} bytes"
    ))
    .with_record_id(&record.id)
}

/// Decide from the robot's `errcode` (the HTTP status is 200 for all of them).
fn classify_answer(conn: &str, errcode: i64, errmsg: &str) -> Result<(), PushError> {
    match errcode {
        ERRCODE_OK => Ok(()),
        ERRCODE_THROTTLED => Err(PushError::Throttled(errmsg.to_string())),
        ERRCODE_TOO_LONG => Err(PushError::TooLong(errmsg.to_string())),
        ERRCODE_BUSY => Err(PushError::Failed(FerryError::transient(format!(
            "connection `{conn}`: the DingTalk robot is busy: errcode {errcode} ({errmsg})"
        )))),
        code => match CONFIG_ERRCODES.iter().find(|(c, _)| *c == code) {
            Some((_, hint)) => Err(PushError::Failed(FerryError::config(format!(
                "connection `{conn}`: the DingTalk robot refused the message: errcode {code} \
                 ({errmsg}); {hint}"
            )))),
            None => Err(PushError::Failed(FerryError::transient(format!(
                "connection `{conn}`: the DingTalk robot answered errcode {code} ({errmsg})"
            )))),
        },
    }
}

/// `e` and its sources, `: `-separated (reqwest's own text is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `(field key, label)` of every request field that becomes a `label: value` line.
fn labels(metadata: &Metadata) -> Vec<(String, String)> {
    metadata
        .request
        .iter()
        .filter_map(|field| {
            let key = field.key()?;
            if key.is_empty() || MESSAGE_PART_FIELDS.contains(&key) {
                return None;
            }
            let label = field
                .label
                .as_deref()
                .filter(|l| !l.is_empty())
                .unwrap_or(key);
            Some((key.to_string(), label.to_string()))
        })
        .collect()
}

/// The metadata keys of this target, read and checked.
struct Options {
    format: RobotFormat,
    template: Vec<Piece>,
    records_per_message: usize,
    at_mobiles: Vec<String>,
    at_all: bool,
    update_mark: String,
    repeat_mark: String,
    window_secs: u64,
    throttle_retries: usize,
}

impl Options {
    fn read(metadata: &Metadata, conn: &DingTalkRobotConnection) -> Result<Options, FerryError> {
        let mut problems = Vec::new();
        let extra = &metadata.extra;
        let at = |key: &str| format!("target.metadata.{key}");

        let format = match extra.get("format") {
            None => conn.format,
            Some(Value::String(s)) if s == "markdown" => RobotFormat::Markdown,
            Some(Value::String(s)) if s == "text" => RobotFormat::Text,
            Some(other) => {
                problems.push(format!(
                    "{}: `{}` is not a robot format (markdown, text)",
                    at("format"),
                    value_text(other)
                ));
                conn.format
            }
        };
        let default_template = match format {
            RobotFormat::Markdown => DEFAULT_MARKDOWN_TEMPLATE,
            RobotFormat::Text => DEFAULT_TEXT_TEMPLATE,
        };
        let template = match extra.get("message_template") {
            None => parse_template(default_template).unwrap_or_default(),
            Some(Value::String(s)) => match parse_template(s) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", at("message_template")));
                    Vec::new()
                }
            },
            Some(_) => {
                problems.push(format!("{}: must be text", at("message_template")));
                Vec::new()
            }
        };
        let records_per_message = match metadata.batch_size {
            None => DEFAULT_RECORDS_PER_MESSAGE,
            Some(0) => {
                problems.push(format!("{}: must be at least 1", at("batch_size")));
                1
            }
            Some(n) => n,
        };
        let at_mobiles = match extra.get("at_mobiles") {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => problems.push(format!(
                            "{}: `{item}` is not a mobile number",
                            at("at_mobiles")
                        )),
                    }
                }
                out
            }
            Some(_) => {
                problems.push(format!(
                    "{}: must be a list of mobile numbers",
                    at("at_mobiles")
                ));
                Vec::new()
            }
        };
        let at_all = match extra.get("at_all") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                problems.push(format!("{}: must be true or false", at("at_all")));
                false
            }
        };
        let mut mark = |key: &str, default: &str| match extra.get(key) {
            None => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                problems.push(format!("{}: must be text", at(key)));
                String::new()
            }
        };
        let update_mark = mark("update_mark", DEFAULT_UPDATE_MARK);
        let repeat_mark = mark("repeat_mark", DEFAULT_REPEAT_MARK);
        let mut whole = |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| -> u64 {
            match extra.get(key) {
                None => default,
                Some(v) => match v.as_u64().filter(|n| range.contains(n)) {
                    Some(n) => n,
                    None => {
                        problems.push(format!(
                            "{}: `{}` is not a whole number from {} to {}",
                            at(key),
                            value_text(v),
                            range.start(),
                            range.end()
                        ));
                        default
                    }
                },
            }
        };
        let window_secs = whole("window_secs", 1..=3_600, DEFAULT_WINDOW_SECS);
        let throttle_retries = whole(
            "throttle_retries",
            0..=MAX_THROTTLE_RETRIES,
            DEFAULT_THROTTLE_RETRIES as u64,
        ) as usize;
        if !problems.is_empty() {
            return Err(FerryError::config(problems.join("; ")));
        }
        Ok(Options {
            format,
            template,
            records_per_message,
            at_mobiles,
            at_all,
            update_mark,
            repeat_mark,
            window_secs,
            throttle_retries,
        })
    }
}

/// Parse a `message_template`: `{title}`, `{header}`, `{count}` and `{records}` are replaced;
/// any other `{word}` is refused (a typo would otherwise reach the group); other braces stay.
fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut has_records = false;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let word_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if word_len > 0 && after[word_len..].starts_with('}') {
            let piece = match &after[..word_len] {
                "title" => Piece::Title,
                "header" => Piece::Header,
                "count" => Piece::Count,
                "records" => {
                    has_records = true;
                    Piece::Records
                }
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}`; use {}",
                        TEMPLATE_PLACEHOLDERS
                            .iter()
                            .map(|p| format!("`{{{p}}}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            rest = &after[word_len + 1..];
        } else {
            literal.push('{');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    if !has_records {
        return Err("must contain `{records}`, or the records would not be shown".to_string());
    }
    Ok(pieces)
}

/// A message ready to send: its body and the entries it carries.
#[derive(Debug)]
struct Message {
    indexes: Vec<usize>,
    body: Vec<u8>,
}

impl Layout {
    fn new(
        options: &Options,
        metadata: &Metadata,
        conn: &DingTalkRobotConnection,
        scheme_name: &str,
    ) -> Layout {
        Layout {
            format: options.format,
            template: options.template.clone(),
            labels: labels(metadata),
            records_per_message: options.records_per_message,
            at_mobiles: options.at_mobiles.clone(),
            at_all: options.at_all,
            keyword: conn.keyword.clone(),
            update_mark: options.update_mark.clone(),
            repeat_mark: options.repeat_mark.clone(),
            fallback_title: scheme_name.to_string(),
        }
    }

    /// The batch as entries, identical repeats (same id, same content digest) dropped.
    fn distinct_entries(&self, records: Vec<Record>) -> Distinct<Entry> {
        let all: Vec<Entry> = records
            .into_iter()
            .map(|record| {
                let content = self.content(&record.data);
                Entry {
                    digest: content.digest(),
                    record,
                    content,
                    update: false,
                    maybe_repeat: false,
                }
            })
            .collect();
        distinct(all, |e| &e.record.id, |a, b| a.digest == b.digest)
    }

    /// What `data` (one rendered record) shows.
    fn content(&self, data: &Value) -> Content {
        let empty = Map::new();
        let object = data.as_object().unwrap_or(&empty);
        let text = |key: &str| object.get(key).map(value_text).unwrap_or_default();
        Content {
            title: text("title"),
            header: text("header"),
            lines: self
                .labels
                .iter()
                .map(|(key, label)| (label.clone(), text(key)))
                .collect(),
        }
    }

    /// Group entries into messages of at most `records_per_message`, each body under
    /// [`MAX_BODY_BYTES`]. Returns the messages and the entries too long to send even alone.
    fn split(&self, entries: &[Entry]) -> (Vec<Message>, Vec<usize>) {
        let mut messages = Vec::new();
        let mut too_long = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut current_body: Vec<u8> = Vec::new();
        for i in 0..entries.len() {
            if current.len() >= self.records_per_message {
                messages.push(Message {
                    indexes: std::mem::take(&mut current),
                    body: std::mem::take(&mut current_body),
                });
            }
            let mut candidate = current.clone();
            candidate.push(i);
            let body = self.body(entries, &candidate);
            if body.len() < MAX_BODY_BYTES {
                current = candidate;
                current_body = body;
                continue;
            }
            let alone = self.body(entries, &[i]);
            if alone.len() >= MAX_BODY_BYTES {
                // Too long even alone: report it and keep filling the current message.
                too_long.push(i);
                continue;
            }
            if !current.is_empty() {
                messages.push(Message {
                    indexes: std::mem::take(&mut current),
                    body: std::mem::take(&mut current_body),
                });
            }
            current = vec![i];
            current_body = alone;
        }
        if !current.is_empty() {
            messages.push(Message {
                indexes: current,
                body: current_body,
            });
        }
        (messages, too_long)
    }

    /// The JSON body of one message holding `indexes` of `entries`.
    fn body(&self, entries: &[Entry], indexes: &[usize]) -> Vec<u8> {
        let chosen: Vec<&Entry> = indexes.iter().map(|&i| &entries[i]).collect();
        let first = chosen.first().map(|e| &e.content);
        let header = first.map(|c| c.header.clone()).unwrap_or_default();
        let title = first
            .map(|c| c.title.clone())
            .filter(|t| !t.is_empty())
            .or_else(|| Some(header.clone()).filter(|h| !h.is_empty()))
            .unwrap_or_else(|| self.fallback_title.clone());
        let records = self.records_text(&chosen);
        let mut text = String::new();
        for piece in &self.template {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Title => text.push_str(&title),
                Piece::Header => text.push_str(&header),
                Piece::Count => text.push_str(&chosen.len().to_string()),
                Piece::Records => text.push_str(&records),
            }
        }
        if !self.at_mobiles.is_empty() {
            // DingTalk only notifies a mobile that also appears in the text.
            let mentions: Vec<String> = self.at_mobiles.iter().map(|m| format!("@{m}")).collect();
            text.push_str("\n\n");
            text.push_str(&mentions.join(" "));
        }
        if let Some(keyword) = &self.keyword {
            let seen = match self.format {
                RobotFormat::Markdown => title.contains(keyword.as_str()),
                RobotFormat::Text => false,
            } || text.contains(keyword.as_str());
            if !seen {
                text.push_str("\n\n");
                text.push_str(keyword);
            }
        }
        let mut body = match self.format {
            RobotFormat::Markdown => json!({
                "msgtype": "markdown",
                "markdown": { "title": title, "text": text },
            }),
            RobotFormat::Text => json!({
                "msgtype": "text",
                "text": { "content": text },
            }),
        };
        if !self.at_mobiles.is_empty() || self.at_all {
            body["at"] = json!({ "atMobiles": self.at_mobiles, "isAtAll": self.at_all });
        }
        // Serialising a tree of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The `{records}` part: one numbered block of `label: value` lines per record.
    fn records_text(&self, chosen: &[&Entry]) -> String {
        let mut blocks = Vec::with_capacity(chosen.len());
        for (n, entry) in chosen.iter().enumerate() {
            let mut mark = String::new();
            if entry.update {
                mark.push_str(&self.update_mark);
            }
            if entry.maybe_repeat {
                mark.push_str(&self.repeat_mark);
            }
            let mut block = match self.format {
                RobotFormat::Markdown => format!("**{}.**{mark}", n + 1),
                RobotFormat::Text => format!("{}.{mark}", n + 1),
            };
            for (label, value) in &entry.content.lines {
                block.push('\n');
                match self.format {
                    RobotFormat::Markdown => block.push_str(&format!("- {label}: {value}")),
                    RobotFormat::Text => block.push_str(&format!("{label}: {value}")),
                }
            }
            blocks.push(block);
        }
        blocks.join("\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::scheme::Field;

    fn seed_000_metadata() -> Metadata {
        let field = |key: &str, label: &str, value: &str| Field {
            field: Some(key.into()),
            label: Some(label.into()),
            value: Some(Value::String(value.into())),
            ..Field::default()
        };
        Metadata {
            api: "DingTalkRoBotPush".into(),
            id_check: true,
            request: vec![
                field("access_token", "钉钉机器人token", "7ba5"),
                field("title", "首屏会话透出的展示内容", "平台网站用户留言推送"),
                field("header", "标题", "用户留言"),
                field("name", "留言用户姓名", "{name}"),
                field("phone", "留言用户电话", "{phone}"),
                field("company", "公司名称", "{company}"),
                field(":created_at", "留言时间", "{created_at}"),
            ],
            ..Metadata::default()
        }
    }

    fn conn() -> DingTalkRobotConnection {
        DingTalkRobotConnection {
            base_url: "http://127.0.0.1:9".into(),
            access_token: Secret::new("token"),
            secret: Some(Secret::new("SECsecret")),
            keyword: None,
            per_minute: 20,
            format: RobotFormat::Markdown,
            timeout_secs: 30,
        }
    }

    fn layout(metadata: &Metadata, conn: &DingTalkRobotConnection) -> Result<Layout, FerryError> {
        let o = Options::read(metadata, conn)?;
        Ok(Layout::new(&o, metadata, conn, "scheme"))
    }

    fn contact(layout: &Layout, name: &str, company: &str, update: bool) -> Entry {
        let data = json!({
            "access_token": "7ba5",
            "title": "平台网站用户留言推送",
            "header": "用户留言",
            "name": name,
            "phone": "13800138000",
            "company": company,
            "created_at": "2026-11-23 12:00:00",
        });
        let content = layout.content(&data);
        Entry {
            record: Record {
                id: name.into(),
                data,
                source: None,
            },
            digest: content.digest(),
            content,
            update,
            maybe_repeat: false,
        }
    }

    fn body_json(message: &Message) -> Value {
        serde_json::from_slice(&message.body).unwrap()
    }

    #[test]
    fn bytes_show_as_their_text_or_as_hex() {
        let l = layout(&seed_000_metadata(), &conn()).unwrap();
        let data = json!({
            "name": ferry_core::record::bytes_value("张三🚀".as_bytes()),
            "company": ferry_core::record::bytes_value(&[0x00, 0xFF, 0x10]),
        });
        let values: Vec<String> = l.content(&data).lines.into_iter().map(|(_, v)| v).collect();
        assert!(values.contains(&"张三🚀".to_string()), "{values:?}");
        assert!(values.contains(&"0x00FF10".to_string()), "{values:?}");
    }

    #[test]
    fn seed_000_renders_as_markdown_with_the_count_and_labelled_lines() {
        let l = layout(&seed_000_metadata(), &conn()).unwrap();
        let entries = vec![
            contact(&l, "张三", "某某公司 😀", false),
            contact(&l, "李四🚀", "另一家", true),
        ];
        let (messages, too_long) = l.split(&entries);
        assert!(too_long.is_empty());
        assert_eq!(messages.len(), 1);
        assert_eq!(
            body_json(&messages[0]),
            json!({
                "msgtype": "markdown",
                "markdown": {
                    "title": "平台网站用户留言推送",
                    "text": "#### 用户留言（2 条）\n\n\
                             **1.**\n- 留言用户姓名: 张三\n- 留言用户电话: 13800138000\n- 公司名称: 某某公司 😀\n- 留言时间: 2026-11-23 12:00:00\n\n\
                             **2.**（更新）\n- 留言用户姓名: 李四🚀\n- 留言用户电话: 13800138000\n- 公司名称: 另一家\n- 留言时间: 2026-11-23 12:00:00"
                }
            })
        );
    }

    #[test]
    fn records_whose_push_went_unanswered_are_marked_as_possible_repeats() {
        let mut meta = seed_000_metadata();
        let l = layout(&meta, &conn()).unwrap();
        let mut first = contact(&l, "张三", "某某公司 😀", false);
        let mut second = contact(&l, "李四🚀", "另一家", true);
        first.maybe_repeat = true;
        second.maybe_repeat = true;
        let (messages, _) = l.split(&[first.clone(), second.clone()]);
        let text = body_json(&messages[0])["markdown"]["text"].clone();
        let text = text.as_str().unwrap();
        assert!(text.contains("**1.**（可能重复）\n"), "{text}");
        assert!(text.contains("**2.**（更新）（可能重复）\n"), "{text}");

        meta.extra
            .insert("repeat_mark".into(), json!(" [maybe again]"));
        let l = layout(&meta, &conn()).unwrap();
        let (messages, _) = l.split(&[first]);
        let text = body_json(&messages[0])["markdown"]["text"].clone();
        assert!(
            text.as_str().unwrap().contains("**1.** [maybe again]\n"),
            "{text}"
        );
        meta.extra.insert("repeat_mark".into(), json!(1));
        assert_eq!(
            layout(&meta, &conn()).unwrap_err().to_string(),
            "target.metadata.repeat_mark: must be text"
        );
    }

    #[test]
    fn text_format_template_and_at_are_configurable() {
        let mut meta = seed_000_metadata();
        meta.extra.insert("format".into(), json!("text"));
        meta.extra.insert(
            "message_template".into(),
            json!("{header} x{count} {braces}\n{records}"),
        );
        assert_eq!(
            layout(&meta, &conn()).unwrap_err().to_string(),
            "target.metadata.message_template: unknown placeholder `{braces}`; use `{title}`, `{header}`, `{count}`, `{records}`"
        );
        meta.extra.insert(
            "message_template".into(),
            json!("{header} x{count} {} {\n{records}"),
        );
        meta.extra
            .insert("at_mobiles".into(), json!(["13800138000", 13900139000u64]));
        meta.extra.insert("at_all".into(), json!(true));
        let l = layout(&meta, &conn()).unwrap();
        let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
        assert_eq!(
            body_json(&messages[0]),
            json!({
                "msgtype": "text",
                "text": { "content": "用户留言 x1 {} {\n1.\n留言用户姓名: 张三\n留言用户电话: 13800138000\n公司名称: 甲\n留言时间: 2026-11-23 12:00:00\n\n@13800138000 @13900139000" },
                "at": { "atMobiles": ["13800138000", "13900139000"], "isAtAll": true }
            })
        );
    }

    #[test]
    fn bad_metadata_reports_every_key() {
        let mut meta = seed_000_metadata();
        meta.batch_size = Some(0);
        meta.extra.insert("window_secs".into(), json!(0));
        meta.extra.insert("at_all".into(), json!("yes"));
        meta.extra.insert("format".into(), json!("html"));
        meta.extra
            .insert("message_template".into(), json!("{count}"));
        assert_eq!(
            layout(&meta, &conn()).unwrap_err(),
            FerryError::config(
                "target.metadata.format: `html` is not a robot format (markdown, text); \
                 target.metadata.message_template: must contain `{records}`, or the records would not be shown; \
                 target.metadata.batch_size: must be at least 1; \
                 target.metadata.at_all: must be true or false; \
                 target.metadata.window_secs: `0` is not a whole number from 1 to 3600"
            )
        );
    }

    #[test]
    fn batches_split_by_count_and_stay_under_the_byte_limit() {
        let mut meta = seed_000_metadata();
        meta.batch_size = Some(10);
        let l = layout(&meta, &conn()).unwrap();
        let entries: Vec<Entry> = (0..95)
            .map(|i| contact(&l, &format!("客户{i}"), "某某公司", false))
            .collect();
        let (messages, too_long) = l.split(&entries);
        assert!(too_long.is_empty());
        let sizes: Vec<usize> = messages.iter().map(|m| m.indexes.len()).collect();
        assert_eq!(sizes, vec![10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
        let last = body_json(&messages[9]);
        assert!(
            last["markdown"]["text"]
                .as_str()
                .unwrap()
                .starts_with("#### 用户留言（5 条）")
        );

        // Records of ~3 KB each: six fit under 20,000 bytes, so a batch of 10 splits.
        let big = "长".repeat(1_000);
        let entries: Vec<Entry> = (0..10)
            .map(|i| contact(&l, &format!("c{i}"), &big, false))
            .collect();
        let (messages, too_long) = l.split(&entries);
        assert!(too_long.is_empty());
        let sizes: Vec<usize> = messages.iter().map(|m| m.indexes.len()).collect();
        assert_eq!(sizes, vec![6, 4]);
        for m in &messages {
            assert!(m.body.len() < MAX_BODY_BYTES, "{}", m.body.len());
        }
        let all: Vec<usize> = messages.iter().flat_map(|m| m.indexes.clone()).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());

        // A record that cannot fit even alone is reported, its neighbours still go.
        let huge = "长".repeat(7_000);
        let entries = vec![
            contact(&l, "a", "甲", false),
            contact(&l, "b", &huge, false),
            contact(&l, "c", "丙", false),
        ];
        let (messages, too_long) = l.split(&entries);
        assert_eq!(too_long, vec![1]);
        let all: Vec<Vec<usize>> = messages.iter().map(|m| m.indexes.clone()).collect();
        assert_eq!(all, vec![vec![0, 2]]);
    }

    #[test]
    fn the_keyword_is_added_only_when_missing() {
        let mut c = conn();
        c.keyword = Some("留言".into());
        let l = layout(&seed_000_metadata(), &c).unwrap();
        let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
        assert!(
            !body_json(&messages[0])["markdown"]["text"]
                .as_str()
                .unwrap()
                .ends_with("留言")
        );
        c.keyword = Some("通知".into());
        let l = layout(&seed_000_metadata(), &c).unwrap();
        let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
        assert!(
            body_json(&messages[0])["markdown"]["text"]
                .as_str()
                .unwrap()
                .ends_with("\n\n通知")
        );
    }

    #[test]
    fn the_digest_follows_what_is_shown() {
        let l = layout(&seed_000_metadata(), &conn()).unwrap();
        let a = contact(&l, "张三", "甲", false);
        let again = contact(&l, "张三", "甲", true);
        let changed = contact(&l, "张三", "乙", false);
        assert_eq!(a.digest, again.digest);
        assert_ne!(a.digest, changed.digest);
        assert_eq!(a.digest.len(), 64);
        // A field the message does not show (access_token) does not change the digest.
        let mut data = a.record.data.clone();
        data["access_token"] = json!("other");
        assert_eq!(l.content(&data).digest(), a.digest);
    }

    #[test]
    fn errcodes_are_classified_without_secrets() {
        let refused = |code, msg: &str| match classify_answer("notify", code, msg) {
            Err(PushError::Failed(e)) => e,
            other => panic!("{other:?}"),
        };
        let e = refused(310_000, "sign not match");
        assert_eq!(
            e,
            FerryError::config(
                "connection `notify`: the DingTalk robot refused the message: errcode 310000 (sign not match); \
                 check the connection's `secret`, `keyword`, the robot's IP whitelist and this machine's clock"
            )
        );
        for code in [300_005, 400_102, 40_035, 43_002] {
            assert_eq!(
                refused(code, "x").class(),
                ferry_core::ErrorClass::Config,
                "{code}"
            );
        }
        assert_eq!(
            refused(-1, "系统繁忙"),
            FerryError::transient(
                "connection `notify`: the DingTalk robot is busy: errcode -1 (系统繁忙)"
            )
        );
        assert_eq!(
            refused(12_345, "?").class(),
            ferry_core::ErrorClass::Transient
        );
        assert!(
            matches!(classify_answer("n", 130_101, "too fast"), Err(PushError::Throttled(m)) if m == "too fast")
        );
        assert!(matches!(
            classify_answer("n", 460_101, "long"),
            Err(PushError::TooLong(_))
        ));
        assert!(classify_answer("n", 0, "ok").is_ok());
    }

    #[test]
    fn template_braces_that_are_not_placeholders_stay() {
        assert_eq!(
            parse_template("a {b c} {records}{").unwrap(),
            vec![
                Piece::Text("a {b c} ".into()),
                Piece::Records,
                Piece::Text("{".into())
            ]
        );
    }

    /// `ferry test` shows the bodies `write` pushes: ten records a message, a later content of
    /// an id marked as an update, an identical repeat dropped, the mention in the text and `at`.
    #[test]
    fn rendered_messages_are_the_bodies_write_pushes() {
        let mut metadata = seed_000_metadata();
        metadata
            .extra
            .insert("at_mobiles".into(), json!(["13800138000"]));
        let record = |id: &str, phone: &str| {
            Record::new(
                id,
                json!({"title": "平台网站用户留言推送", "header": "用户留言", "name": id, "phone": phone}),
            )
        };
        let mut records: Vec<Record> = (0..11).map(|i| record(&format!("客户{i}"), "1")).collect();
        records.push(record("客户0", "1"));
        records.push(record("客户0", "2 😀"));
        let (bodies, failed) = render_messages(&conn(), &metadata, "contacts", records).unwrap();
        assert!(failed.is_empty());
        assert_eq!(bodies.len(), 2);
        let text = |i: usize| bodies[i]["markdown"]["text"].as_str().unwrap().to_string();
        assert!(text(0).starts_with("#### 用户留言（10 条）"), "{}", text(0));
        assert!(text(1).starts_with("#### 用户留言（2 条）"), "{}", text(1));
        assert!(
            text(1).contains("**2.**（更新）\n- 留言用户姓名: 客户0\n- 留言用户电话: 2 😀"),
            "{}",
            text(1)
        );
        assert!(text(1).ends_with("\n\n@13800138000"));
        assert_eq!(
            bodies[1]["at"],
            json!({"atMobiles": ["13800138000"], "isAtAll": false})
        );
    }
}
