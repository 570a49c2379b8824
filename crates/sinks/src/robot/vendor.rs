//! What differs between chat robots, and the one HTTP exchange they share.
//!
//! A [`Vendor`] says how a message's title and text become the robot's JSON body, where the body
//! is sent (with the token and any signature), and what the robot's answer means. [`send`] does
//! the POST and turns transport failures into [`PushError`]s that never show the URL (it carries
//! the token or the signature).

use std::time::Duration;

use ferry_core::FerryError;
use ferry_core::config::RobotFormat;
use serde_json::Value;

use crate::net::error_chain;

/// How a message is written, as the scheme's `format` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A title and markdown text (DingTalk, WeCom).
    Markdown,
    /// Plain text.
    Text,
    /// Feishu's rich text: a title and lines of text elements.
    Post,
}

impl Format {
    /// As written in `format = "..."`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Post => "post",
        }
    }

    /// Records are written as markdown (bold numbers, list items).
    pub(crate) fn markdown(self) -> bool {
        self == Format::Markdown
    }

    /// The message shows its title apart from its text, so a keyword in the title counts.
    pub(crate) fn titled(self) -> bool {
        matches!(self, Format::Markdown | Format::Post)
    }
}

impl From<RobotFormat> for Format {
    fn from(format: RobotFormat) -> Format {
        match format {
            RobotFormat::Markdown => Format::Markdown,
            RobotFormat::Text => Format::Text,
            RobotFormat::Post => Format::Post,
        }
    }
}

/// Who a message mentions.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Mentions {
    /// Mobile numbers to notify.
    pub mobiles: Vec<String>,
    /// User ids to notify (the vendor's own: a DingTalk userId, a WeCom userid, a Feishu open_id).
    pub user_ids: Vec<String>,
    /// Notify everyone in the group.
    pub all: bool,
}

impl Mentions {
    pub(crate) fn is_empty(&self) -> bool {
        self.mobiles.is_empty() && self.user_ids.is_empty() && !self.all
    }
}

/// One kind of chat robot.
pub(crate) trait Vendor: Send + Sync + std::fmt::Debug {
    /// How texts name the service: "DingTalk robot".
    fn product(&self) -> &'static str;
    /// The formats it takes, the connection's default first.
    fn formats(&self) -> &'static [Format];
    /// Largest message body, in bytes, the robot accepts in `format` (measured on the whole
    /// body, which is at least as long as the part the vendor limits).
    fn max_body_bytes(&self, format: Format) -> usize;
    /// Why `mentions` cannot be made in `format`, if they cannot.
    fn check_mentions(&self, _format: Format, _mentions: &Mentions) -> Result<(), String> {
        Ok(())
    }
    /// Text a message must carry for its mentions to notify (DingTalk: `@<mobile>`), if any.
    fn mention_text(&self, format: Format, mentions: &Mentions) -> Option<String>;
    /// The JSON body of one message.
    fn body(&self, format: Format, title: &str, text: &str, mentions: &Mentions) -> Value;
    /// Messages it accepts per second on top of the per-minute limit, if it has such a limit.
    fn per_second(&self) -> Option<u32> {
        None
    }
    /// Where the robot is, for error texts: no token, no signature.
    fn base_url(&self) -> &str;
    /// The URL a message is posted to, with the token and a fresh signature where the vendor
    /// signs the URL. Never logged.
    fn url(&self) -> String;
    /// The bytes posted for `body`, signed where the vendor signs the body.
    fn signed_body(&self, body: &[u8]) -> Vec<u8> {
        body.to_vec()
    }
    /// What an HTTP 200 answer means.
    fn classify(&self, conn: &str, answer: &Value) -> Result<(), PushError>;
    /// The code of the robot's "too fast" answer, named when throttling outlasts every retry.
    fn throttle_code(&self) -> i64;
    /// The code of the robot's "message too long" answer.
    fn too_long_code(&self) -> i64;
}

/// How one push ended, short of success.
#[derive(Debug)]
pub(crate) enum PushError {
    /// Over the robot's limit (its message).
    Throttled(String),
    /// The body is too long. Splitting prevents it; if it happens anyway, the records of that
    /// message are bad records.
    TooLong(String),
    /// The robot refused the message, or could not be reached: it was not delivered.
    Failed(FerryError),
    /// No answer to read (a timeout or a dropped connection after sending): it may have been.
    Unknown(FerryError),
}

/// POST `body` to the robot and read its answer.
pub(crate) async fn send(
    vendor: &dyn Vendor,
    client: &reqwest::Client,
    conn: &str,
    timeout: Duration,
    body: &[u8],
) -> Result<(), PushError> {
    let product = vendor.product();
    let base_url = vendor.base_url();
    let response = client
        .post(vendor.url())
        .timeout(timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(vendor.signed_body(body))
        .send()
        .await
        .map_err(|e| {
            // Refused before the request went out: not delivered; otherwise nobody knows.
            let undelivered = e.is_connect() || e.is_builder();
            let refused = e.is_connect();
            // The URL carries the token and the signature: never let it into the text.
            let err = FerryError::transient(format!(
                "connection `{conn}`: cannot reach the {product} at {base_url}: {}{}",
                error_chain(&e.without_url()),
                if refused {
                    ferry_core::error::refused_hint(base_url)
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
        let text =
            format!("connection `{conn}`: the {product} at {base_url} answered HTTP {status}");
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
            "connection `{conn}`: the {product}'s answer is not JSON: {}",
            error_chain(&e.without_url())
        )))
    })?;
    vendor.classify(conn, &answer)
}
