//! The DingTalk custom group robot (`kind = "dingtalk_robot"`, api `DingTalkRoBotPush`, seed 000):
//! `POST {base_url}/robot/send?access_token=T&timestamp=MS&sign=S`, where `sign` is the
//! HMAC-SHA256 of `"{timestamp}\n{secret}"` (the "加签" option). Every answer is HTTP 200 with
//! `{"errcode", "errmsg"}`: 130101 is "too fast", 460101 "too long", sign, token, keyword,
//! whitelist and stopped-robot answers are configuration errors, `-1` and the rest transient.

use ferry_core::FerryError;
use ferry_core::config::{DingTalkRobotConnection, Secret};
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::{robot_sign_query, url_encode};
use ferry_state::State;
use serde_json::{Value, json};

use super::sink::RobotSink;
use super::vendor::{Format, Mentions, PushError, Vendor};

/// The robot refuses a body of more than this many bytes (`460101 message too long`).
pub const MAX_BODY_BYTES: usize = 20_000;
/// The `api` this target answers to (the seeds' spelling; compared ignoring case).
pub(crate) const API: &str = "DingTalkRoBotPush";

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

/// A DingTalk robot's address and credentials.
#[derive(Debug)]
pub(crate) struct DingTalk {
    base_url: String,
    access_token: Secret,
    secret: Option<Secret>,
}

impl DingTalk {
    pub(crate) fn new(conn: &DingTalkRobotConnection) -> DingTalk {
        DingTalk {
            base_url: conn.base_url.trim_end_matches('/').to_string(),
            access_token: conn.access_token.clone(),
            secret: conn.secret.clone(),
        }
    }
}

impl Vendor for DingTalk {
    fn product(&self) -> &'static str {
        "DingTalk robot"
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::Markdown, Format::Text]
    }

    fn max_body_bytes(&self, _format: Format) -> usize {
        MAX_BODY_BYTES
    }

    fn mention_text(&self, _format: Format, mentions: &Mentions) -> Option<String> {
        // DingTalk only notifies a mobile or user that also appears in the text.
        let at: Vec<String> = mentions
            .mobiles
            .iter()
            .chain(&mentions.user_ids)
            .map(|m| format!("@{m}"))
            .collect();
        (!at.is_empty()).then(|| at.join(" "))
    }

    fn body(&self, format: Format, title: &str, text: &str, mentions: &Mentions) -> Value {
        let mut body = match format {
            Format::Markdown | Format::Post => json!({
                "msgtype": "markdown",
                "markdown": { "title": title, "text": text },
            }),
            Format::Text => json!({
                "msgtype": "text",
                "text": { "content": text },
            }),
        };
        if !mentions.is_empty() {
            body["at"] = json!({ "atMobiles": mentions.mobiles, "isAtAll": mentions.all });
            if !mentions.user_ids.is_empty() {
                body["at"]["atUserIds"] = json!(mentions.user_ids);
            }
        }
        body
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self) -> String {
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
        url
    }

    fn classify(&self, conn: &str, answer: &Value) -> Result<(), PushError> {
        let errcode = answer.get("errcode").and_then(Value::as_i64);
        let errmsg = answer.get("errmsg").map(value_text).unwrap_or_default();
        match errcode {
            Some(code) => classify_answer(conn, code, &errmsg),
            None => Err(PushError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the DingTalk robot's answer has no errcode"
            )))),
        }
    }

    fn throttle_code(&self) -> i64 {
        ERRCODE_THROTTLED
    }

    fn too_long_code(&self) -> i64 {
        ERRCODE_TOO_LONG
    }
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

impl RobotSink {
    /// Open the DingTalk robot `conn_name` for `scheme_name`'s target. Every problem with the
    /// metadata is a configuration error naming its key.
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
        RobotSink::open(
            std::sync::Arc::new(DingTalk::new(conn)),
            robot(conn, conn_name),
            metadata,
            state,
            client,
            scheme_name,
        )
    }

    /// The DingTalk robot `conn_name` as a plain poster of messages (the alerts): the same
    /// signing, sending, errcode handling and shared rate limiter as the target, and no ledger.
    /// A message the robot throttles is tried again `throttle_retries` windows later.
    pub fn poster(
        conn_name: &str,
        conn: &DingTalkRobotConnection,
        state: State,
        client: reqwest::Client,
        throttle_retries: usize,
    ) -> RobotSink {
        RobotSink::open_poster(
            std::sync::Arc::new(DingTalk::new(conn)),
            robot(conn, conn_name),
            state,
            client,
            throttle_retries,
        )
    }
}

/// What the write flow needs of a DingTalk connection named `name`.
fn robot<'a>(conn: &DingTalkRobotConnection, name: &'a str) -> super::sink::RobotSettings<'a> {
    super::sink::RobotSettings {
        connection: name,
        format: conn.format.into(),
        keyword: conn.keyword.clone(),
        per_minute: conn.per_minute,
        timeout_secs: conn.timeout_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
