//! The `http` target: any business API (Kingdee, Yonyou, a CRM) as the end of a scheme.
//!
//! Each rendered record (the target request tree) is the body of a `POST` or `PUT` to
//! `{base_url}{api}`, alone or `batch_size` at a time as a JSON array, as JSON or as a form. The
//! connection's `headers` carry the auth, or an [`Auth`] (the connection's `[token]`, fetched and
//! cached by `ferry-sources`' token logic, which the binary joins in): its header goes with
//! every call, and an HTTP 401 has it renewed once before the scheme stops. Success is decided by the HTTP status and, when
//! `success_pointer` is set, by the value there (`/code` = `0`, as most Chinese SaaS answer);
//! any other code is classed by configuration: `throttle_codes` (wait `throttle_wait_secs` and
//! try again), `transient_codes` (the batch goes back to the queue), `record_codes` (the record
//! is dead-lettered; in a batch, each record is then sent alone so only the bad one is), and
//! `config_codes` (the scheme stops, its messages kept); `other_codes` says what the rest mean.
//! HTTP 429 is a throttle, 408 and 5xx are transient, 401, 403, 404 and 405 stop the scheme,
//! other 4xx refuse the record.
//!
//! An API without upsert would take a record twice on a redelivery or a re-run, so `idCheck`
//! puts the target on the delivery ledger ([`crate::ledger`]): each record is its (id, digest
//! of its body), an identical one already posted is skipped. The connection's `rate_per_sec`
//! is a limit shared by every replica through the state database ([`crate::rate`]).

use ferry_core::connector::http::target as options;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::config::{HttpConnection, Secret};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::to_hex;
use ferry_core::{ErrorClass, FerryError, Record};
use ferry_state::{Counts, State};
use serde_json::Value;
use sha2::Digest as _;

pub use options::{
    BodyFormat, DEFAULT_HTTP_THROTTLE_RETRIES, DEFAULT_RECORDS_PER_REQUEST,
    DEFAULT_THROTTLE_WAIT_SECS, HttpTargetOptions, MAX_RECORDS_PER_REQUEST, Method,
};

use crate::ledger::{Ledger, Marks, Tracked};
use crate::net::error_chain;
use crate::rate::RateSlot;
use crate::{Sink, WriteReport};
use options::Class;

/// Most bytes of an answer quoted in an error.
const QUOTED_ANSWER_BYTES: usize = 300;

/// A header an `http` target gets per call from elsewhere: the connection's token.
#[async_trait]
pub trait Auth: Send + Sync {
    /// The header (name, value) to send with the next call. Its value is never logged.
    async fn header(&self) -> Result<(String, Secret), FerryError>;
    /// The API answered HTTP 401: drop what is cached, so the next call fetches anew.
    async fn refused(&self) -> Result<(), FerryError>;
}

/// An API opened as one scheme's target.
pub struct HttpSink {
    connection: String,
    base_url: String,
    headers: Vec<(String, Secret)>,
    timeout: Duration,
    client: reqwest::Client,
    options: Arc<HttpTargetOptions>,
    limit: RateSlot,
    ledger: Ledger,
    auth: Option<Arc<dyn Auth>>,
}

/// One record to send: its body's digest is its content in the ledger.
struct Item {
    record: Record,
    digest: String,
}

impl Tracked for Item {
    fn id(&self) -> &str {
        &self.record.id
    }
    fn digest(&self) -> &str {
        &self.digest
    }
    fn set_marks(&mut self, _marks: Marks) {
        // An API has no reader to tell: an update is just the next call.
    }
}

/// How one call ended, short of success.
#[derive(Debug)]
enum CallError {
    /// The API said "too fast".
    Throttled(String),
    /// The API refused, or could not be reached: nothing was taken.
    Refused(FerryError),
    /// The API refused the [`Auth`] header (HTTP 401): renew it and try once more.
    Unauthorised(String),
    /// No answer to read: it may have been taken.
    Unknown(FerryError),
}

impl HttpSink {
    /// Open the API `conn_name` for `scheme_name`'s target.
    pub fn new(
        conn_name: &str,
        conn: &HttpConnection,
        metadata: &Metadata,
        state: State,
        client: reqwest::Client,
        scheme_name: &str,
    ) -> Result<HttpSink, FerryError> {
        let options = HttpTargetOptions::read(metadata)?;
        let window = Duration::from_secs(1);
        let limit = match conn.rate_per_sec {
            Some(per_sec) => RateSlot::new(
                state.clone(),
                format!("http:{conn_name}"),
                per_sec,
                window,
                options.throttle_retries,
            ),
            None => RateSlot::unlimited(state.clone(), options.throttle_retries),
        }
        .with_retry_wait(Duration::from_secs(options.throttle_wait_secs));
        Ok(HttpSink {
            connection: conn_name.to_string(),
            base_url: conn.base_url.trim_end_matches('/').to_string(),
            headers: conn
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: Duration::from_secs(conn.timeout_secs),
            client,
            options: Arc::new(options),
            limit,
            ledger: Ledger::new(state, scheme_name, conn_name, metadata.id_check),
            auth: None,
        })
    }

    /// Send `auth`'s header with every call (the connection's token).
    pub fn with_auth(self, auth: Arc<dyn Auth>) -> HttpSink {
        HttpSink {
            auth: Some(auth),
            ..self
        }
    }

    /// Where requests go, for texts: no query, no credentials.
    fn target(&self) -> String {
        let path = self.options.path.trim_start_matches('/');
        format!("{}/{path}", self.base_url)
    }

    /// The body of one request holding `items`.
    fn body(&self, items: &[&Item]) -> (Vec<u8>, &'static str) {
        let records: Vec<&Value> = items.iter().map(|i| &i.record.data).collect();
        body_of(&self.options, &records)
    }

    /// One call, after taking a rate slot.
    async fn call_once(&self, body: &[u8], content_type: &str) -> Result<(), CallError> {
        self.limit.take().await.map_err(CallError::Refused)?;
        let conn = &self.connection;
        let target = self.target();
        let mut request = match self.options.method {
            Method::Post => self.client.post(&target),
            Method::Put => self.client.put(&target),
        }
        .timeout(self.timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_vec());
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose());
        }
        if let Some(auth) = &self.auth {
            let (name, value) = auth.header().await.map_err(CallError::Refused)?;
            request = request.header(name.as_str(), value.expose());
        }
        let response = request.send().await.map_err(|e| {
            let refused = e.is_connect();
            let undelivered = refused || e.is_builder();
            let err = FerryError::transient(format!(
                "connection `{conn}`: cannot reach {target}: {}{}",
                error_chain(&e.without_url()),
                if refused {
                    ferry_core::error::refused_hint(&self.base_url)
                } else {
                    ""
                }
            ));
            if undelivered {
                CallError::Refused(err)
            } else {
                CallError::Unknown(err)
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            CallError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the answer of {target} could not be read: {}",
                error_chain(&e.without_url())
            )))
        })?;
        let answer: Option<Value> = serde_json::from_str(&text).ok();
        let quoted = quote(&text);
        let said = |what: &str| format!("connection `{conn}`: {target} answered {what}");
        if !status.is_success() {
            let what = format!("HTTP {status}: {quoted}");
            return Err(match status.as_u16() {
                429 => CallError::Throttled(what),
                401 if self.auth.is_some() => CallError::Unauthorised(said(&what)),
                408 | 500..=599 => CallError::Refused(FerryError::transient(said(&what))),
                401 | 403 => CallError::Refused(FerryError::config(format!(
                    "{}; check the connection's `headers` (the API's credentials)",
                    said(&what)
                ))),
                404 | 405 => CallError::Refused(FerryError::config(format!(
                    "{}; check the connection's `base_url` and the target's `api` and `method`",
                    said(&what)
                ))),
                _ => CallError::Refused(FerryError::record(said(&what))),
            });
        }
        let Some(pointer) = &self.options.success_pointer else {
            return Ok(());
        };
        let Some(answer) = answer else {
            return Err(CallError::Unknown(FerryError::transient(said(&format!(
                "HTTP {status} with a body that is not JSON: {quoted}"
            )))));
        };
        let code = answer.pointer(pointer).cloned().unwrap_or(Value::Null);
        let message = self
            .options
            .message_pointer
            .as_deref()
            .and_then(|p| answer.pointer(p))
            .or_else(|| answer.pointer("/msg"))
            .or_else(|| answer.pointer("/message"))
            .map(value_text)
            .unwrap_or_default();
        let what = format!("{pointer} = {code} ({message})");
        match self.options.class_of(&code) {
            None => Ok(()),
            Some(Class::Throttled) => Err(CallError::Throttled(what)),
            Some(Class::Of(ErrorClass::Transient)) => {
                Err(CallError::Refused(FerryError::transient(said(&what))))
            }
            Some(Class::Of(ErrorClass::Config)) => Err(CallError::Refused(FerryError::config(
                format!("{}; the scheme stops until this is fixed", said(&what)),
            ))),
            Some(Class::Of(_)) => Err(CallError::Refused(FerryError::record(said(&what)))),
        }
    }

    /// A call, waiting and trying again while the API says "too fast", and once more with a
    /// new token when it refused the one it was sent.
    async fn call(&self, items: &[&Item]) -> Result<(), CallError> {
        let (body, content_type) = self.body(items);
        let what = format!("connection `{}`: {}", self.connection, self.target());
        let call = || {
            self.limit.retry_throttled(
                &what,
                || self.call_once(&body, content_type),
                |e| matches!(e, CallError::Throttled(_)),
            )
        };
        match (call().await, &self.auth) {
            (Err(CallError::Unauthorised(refused)), Some(auth)) => {
                tracing::info!(connection = %self.connection, reason = %refused, "token refused; renewing it");
                auth.refused().await.map_err(CallError::Refused)?;
                call().await
            }
            (result, _) => result,
        }
    }

    /// Send `items` in one request and settle them in the ledger and the report. A batch
    /// refused as a bad record is sent again one record a request, so only the bad one fails.
    async fn send(&self, items: &[&Item], report: &mut WriteReport) -> Result<(), FerryError> {
        self.ledger.mark_pending(items).await?;
        let result = self.call(items).await;
        if !matches!(result, Ok(()) | Err(CallError::Unknown(_))) {
            self.ledger.clear_pending(items).await;
        }
        match result {
            Ok(()) => {
                self.ledger.record(items, "posted").await?;
                report.counts.written += items.len() as u64;
                Ok(())
            }
            Err(CallError::Refused(e)) if e.class() == ErrorClass::Record && items.len() > 1 => {
                for item in items {
                    Box::pin(self.send(&[*item], report)).await?;
                }
                Ok(())
            }
            Err(CallError::Refused(e)) if e.class() == ErrorClass::Record => {
                let item = items[0];
                report
                    .failed
                    .push((item.record.clone(), e.with_record_id(&item.record.id)));
                Ok(())
            }
            Err(CallError::Throttled(what)) => Err(FerryError::Transient {
                message: format!(
                    "connection `{}`: {} still answers {what} after {} tries {} s apart",
                    self.connection,
                    self.target(),
                    self.options.throttle_retries + 1,
                    self.options.throttle_wait_secs
                ),
                retry_after: Some(Duration::from_secs(self.options.throttle_wait_secs)),
            }),
            Err(CallError::Unauthorised(what)) => Err(FerryError::config(format!(
                "{what} (refused again with a new token; check the connection's `token`)"
            ))),
            Err(CallError::Refused(e) | CallError::Unknown(e)) => Err(e),
        }
    }
}

/// The body of one request holding `records` (rendered request trees), and its content type.
fn body_of(options: &HttpTargetOptions, records: &[&Value]) -> (Vec<u8>, &'static str) {
    match options.body_format {
        BodyFormat::Json => {
            let body = if records.len() == 1 && options.records_per_request == 1 {
                serde_json::to_vec(records[0])
            } else {
                serde_json::to_vec(records)
            };
            // Serialising a JSON tree cannot fail.
            (body.unwrap_or_default(), "application/json; charset=utf-8")
        }
        BodyFormat::Form => {
            let mut form = String::new();
            if let Some(Value::Object(fields)) = records.first() {
                for (key, value) in fields {
                    let text = match value {
                        Value::Object(_) | Value::Array(_) => value.to_string(),
                        other => value_text(other),
                    };
                    if !form.is_empty() {
                        form.push('&');
                    }
                    form.push_str(&ferry_core::sign::url_encode(key));
                    form.push('=');
                    form.push_str(&ferry_core::sign::url_encode(&text));
                }
            }
            (form.into_bytes(), "application/x-www-form-urlencoded")
        }
    }
}

/// The requests an `http` target would send for `records` (its ledger taken as empty, every
/// answer a success): `{"method", "path", "content_type", "body"}` each, the body as JSON or,
/// for a form, as its text. What `ferry test` compares with a scheme's expected requests.
pub fn render_requests(metadata: &Metadata, records: &[Record]) -> Result<Vec<Value>, FerryError> {
    let options = HttpTargetOptions::read(metadata)?;
    let data: Vec<&Value> = records.iter().map(|r| &r.data).collect();
    Ok(data
        .chunks(options.records_per_request)
        .map(|chunk| {
            let (body, content_type) = body_of(&options, chunk);
            let body = match options.body_format {
                BodyFormat::Json => serde_json::from_slice(&body).unwrap_or(Value::Null),
                BodyFormat::Form => Value::String(String::from_utf8_lossy(&body).into_owned()),
            };
            serde_json::json!({
                "method": match options.method { Method::Post => "POST", Method::Put => "PUT" },
                "path": options.path,
                "content_type": content_type,
                "body": body,
            })
        })
        .collect())
}

/// At most [`QUOTED_ANSWER_BYTES`] of an answer.
fn quote(text: &str) -> String {
    ferry_core::error::quote_answer(text, QUOTED_ANSWER_BYTES)
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&self, records: Vec<Record>) -> Result<WriteReport, FerryError> {
        let items: Vec<Item> = records
            .into_iter()
            .map(|record| {
                // Serialising a JSON tree cannot fail.
                let bytes = serde_json::to_vec(&record.data).unwrap_or_default();
                Item {
                    digest: to_hex(&sha2::Sha256::digest(&bytes)),
                    record,
                }
            })
            .collect();
        let (items, skipped) = self.ledger.sort(items).await?;
        let mut report = WriteReport {
            counts: Counts {
                skipped,
                ..Counts::default()
            },
            failed: Vec::new(),
        };
        let refs: Vec<&Item> = items.iter().collect();
        for chunk in refs.chunks(self.options.records_per_request) {
            self.send(chunk, &mut report).await?;
        }
        Ok(report)
    }
}
