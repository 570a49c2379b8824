//! The Feishu (飞书) custom bot (`kind = "feishu_robot"`): `POST
//! {base_url}/open-apis/bot/v2/hook/{token}` with `{"msg_type", "content"}` and, when the bot
//! verifies signatures, `"timestamp"` (seconds) and `"sign"`: base64 of HMAC-SHA256 keyed by
//! `"timestamp\nsecret"` over an empty message. `text` messages mention with `<at
//! user_id="ou_...">` in the text; `post` (rich text) messages have a title and lines of `text`
//! and `at` elements. Feishu mentions by open_id only, never by mobile. A bot takes 100 messages
//! a minute and 5 a second, and a request body of at most 20 KB. Answers are `{"code", "msg"}`:
//! 11232 is "too fast", 19021 a bad signature or clock, 19001 a wrong token, 19024 a missing
//! keyword, 19022 an address outside the bot's IP whitelist.

use serde_json::{Value, json};

use ferry_core::FerryError;
use ferry_core::config::Secret;
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::{feishu_bot_sign, url_encode};
use ferry_state::State;

use super::sink::{RobotSettings, RobotSink};
use super::vendor::{Format, Mentions, PushError, Vendor};

/// The Feishu open platform host.
pub const FEISHU_BASE_URL: &str = "https://open.feishu.cn";
/// A Feishu custom bot accepts 100 messages a minute...
pub const FEISHU_PER_MINUTE: u32 = 100;
/// ... and 5 a second.
pub const FEISHU_PER_SECOND: u32 = 5;
/// The `api` a Feishu bot target answers to.
pub const FEISHU_API: &str = "FeishuRobotPush";
/// The bot refuses a request body over 20 KB.
pub const FEISHU_MAX_BODY_BYTES: usize = 20 * 1024;
/// Room left in a message for the `timestamp` and `sign` added as it is sent.
const SIGNATURE_ROOM_BYTES: usize = 128;

const CODE_OK: i64 = 0;
const CODE_THROTTLED: i64 = 11_232;
const CODE_BAD_REQUEST: i64 = 9_499;
/// Answers no retry can fix: they stop the scheme until an operator acts.
const CONFIG_CODES: [(i64, &str); 5] = [
    (
        19_021,
        "check the connection's `secret` and this machine's clock (the timestamp must be within an hour)",
    ),
    (
        19_001,
        "the webhook token is wrong or the bot was removed; check the connection's `token` (the last part of the bot's webhook URL)",
    ),
    (
        19_024,
        "the message lacks the bot's custom keyword; check the connection's `keyword`",
    ),
    (
        19_022,
        "this machine's address is not in the bot's IP whitelist",
    ),
    (
        CODE_BAD_REQUEST,
        "the bot refused the message's shape; check `format` and `message_template`",
    ),
];

/// Where a Feishu custom bot is and its credentials.
pub struct FeishuWebhook {
    /// Default [`FEISHU_BASE_URL`].
    pub base_url: String,
    /// The last part of the bot's webhook URL.
    pub token: Secret,
    /// The bot's signing secret (签名校验), if it verifies signatures.
    pub secret: Option<Secret>,
    /// Messages a second (at most [`FEISHU_PER_SECOND`]).
    pub per_second: u32,
}

impl RobotSink {
    /// Open the Feishu bot `robot.connection` for `scheme_name`'s target (api
    /// `FeishuRobotPush`). Every problem with the metadata is a configuration error naming its key.
    pub fn feishu(
        robot: RobotSettings<'_>,
        webhook: &FeishuWebhook,
        metadata: &Metadata,
        state: State,
        client: reqwest::Client,
        scheme_name: &str,
    ) -> Result<RobotSink, FerryError> {
        if !metadata.api.eq_ignore_ascii_case(FEISHU_API) {
            return Err(FerryError::config(format!(
                "target.metadata.api: `{}` is not a Feishu bot api (`{FEISHU_API}`)",
                metadata.api
            )));
        }
        if webhook.token.is_empty() {
            return Err(FerryError::config(format!(
                "connection `{}`: token is empty",
                robot.connection
            )));
        }
        let vendor = std::sync::Arc::new(Feishu::new(
            &webhook.base_url,
            webhook.token.clone(),
            webhook.secret.clone(),
            webhook.per_second,
        ));
        RobotSink::open(vendor, robot, metadata, state, client, scheme_name)
    }
}

/// A Feishu custom bot's address and credentials.
#[derive(Debug)]
pub(crate) struct Feishu {
    base_url: String,
    token: Secret,
    secret: Option<Secret>,
    per_second: u32,
}

impl Feishu {
    pub(crate) fn new(
        base_url: &str,
        token: Secret,
        secret: Option<Secret>,
        per_second: u32,
    ) -> Feishu {
        Feishu {
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            secret,
            per_second,
        }
    }
}

impl Vendor for Feishu {
    fn product(&self) -> &'static str {
        "Feishu bot"
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::Post, Format::Text]
    }

    fn max_body_bytes(&self, _format: Format) -> usize {
        FEISHU_MAX_BODY_BYTES - SIGNATURE_ROOM_BYTES
    }

    fn check_mentions(&self, _format: Format, mentions: &Mentions) -> Result<(), String> {
        if !mentions.mobiles.is_empty() {
            return Err(
                "a Feishu custom bot cannot mention by mobile; use `at_user_ids` (open_id, \
                 `ou_...`) or `at_all`"
                    .to_string(),
            );
        }
        Ok(())
    }

    fn mention_text(&self, format: Format, mentions: &Mentions) -> Option<String> {
        // A text message mentions with tags in its text; a post gets a line of `at` elements.
        if format != Format::Text || mentions.is_empty() {
            return None;
        }
        let mut at: Vec<String> = mentions
            .user_ids
            .iter()
            .map(|u| format!("<at user_id=\"{u}\"></at>"))
            .collect();
        if mentions.all {
            at.push("<at user_id=\"all\">所有人</at>".to_string());
        }
        Some(at.join(" "))
    }

    fn body(&self, format: Format, title: &str, text: &str, mentions: &Mentions) -> Value {
        match format {
            Format::Text => json!({ "msg_type": "text", "content": { "text": text } }),
            Format::Post | Format::Markdown => {
                let mut lines: Vec<Value> = text
                    .split('\n')
                    .map(|line| json!([{ "tag": "text", "text": line }]))
                    .collect();
                let mut at: Vec<Value> = mentions
                    .user_ids
                    .iter()
                    .map(|u| json!({ "tag": "at", "user_id": u }))
                    .collect();
                if mentions.all {
                    at.push(json!({ "tag": "at", "user_id": "all" }));
                }
                if !at.is_empty() {
                    lines.push(Value::Array(at));
                }
                json!({
                    "msg_type": "post",
                    "content": { "post": { "zh_cn": { "title": title, "content": lines } } },
                })
            }
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self) -> String {
        format!(
            "{}/open-apis/bot/v2/hook/{}",
            self.base_url,
            url_encode(self.token.expose())
        )
    }

    fn signed_body(&self, body: &[u8]) -> Vec<u8> {
        let Some(secret) = &self.secret else {
            return body.to_vec();
        };
        let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(body) else {
            return body.to_vec();
        };
        let now_secs = chrono::Utc::now().timestamp();
        message.insert("timestamp".into(), json!(now_secs.to_string()));
        message.insert(
            "sign".into(),
            json!(feishu_bot_sign(secret.expose(), now_secs)),
        );
        // Serialising a tree of strings cannot fail.
        serde_json::to_vec(&message).unwrap_or_else(|_| body.to_vec())
    }

    fn classify(&self, conn: &str, answer: &Value) -> Result<(), PushError> {
        // Older bots answer `StatusCode`/`StatusMessage`, current ones `code`/`msg`.
        let code = answer
            .get("code")
            .or_else(|| answer.get("StatusCode"))
            .and_then(Value::as_i64);
        let Some(code) = code else {
            return Err(PushError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the Feishu bot's answer has no code"
            ))));
        };
        let msg = answer
            .get("msg")
            .or_else(|| answer.get("StatusMessage"))
            .map(value_text)
            .unwrap_or_default();
        classify_answer(conn, code, &msg)
    }

    fn throttle_code(&self) -> i64 {
        CODE_THROTTLED
    }

    fn too_long_code(&self) -> i64 {
        CODE_BAD_REQUEST
    }

    fn per_second(&self) -> Option<u32> {
        Some(self.per_second)
    }
}

/// Decide from the bot's `code`.
fn classify_answer(conn: &str, code: i64, msg: &str) -> Result<(), PushError> {
    match code {
        CODE_OK => Ok(()),
        CODE_THROTTLED => Err(PushError::Throttled(msg.to_string())),
        CODE_BAD_REQUEST if msg.contains("size") => Err(PushError::TooLong(msg.to_string())),
        code => match CONFIG_CODES.iter().find(|(c, _)| *c == code) {
            Some((_, hint)) => Err(PushError::Failed(FerryError::config(format!(
                "connection `{conn}`: the Feishu bot refused the message: code {code} ({msg}); {hint}"
            )))),
            None => Err(PushError::Failed(FerryError::transient(format!(
                "connection `{conn}`: the Feishu bot answered code {code} ({msg})"
            )))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feishu(secret: Option<&str>) -> Feishu {
        Feishu::new(
            "http://127.0.0.1:9",
            Secret::new("tok"),
            secret.map(Secret::new),
            5,
        )
    }

    #[test]
    fn posts_are_lines_of_text_with_an_at_line_and_texts_carry_at_tags() {
        let mentions = Mentions {
            user_ids: vec!["ou_1".into()],
            all: true,
            ..Mentions::default()
        };
        let f = feishu(None);
        assert_eq!(
            f.body(
                Format::Post,
                "留言推送",
                "用户留言（1 条）\n\n1.\n姓名: 张三🚀",
                &mentions
            ),
            json!({"msg_type": "post", "content": {"post": {"zh_cn": {
                "title": "留言推送",
                "content": [
                    [{"tag": "text", "text": "用户留言（1 条）"}],
                    [{"tag": "text", "text": ""}],
                    [{"tag": "text", "text": "1."}],
                    [{"tag": "text", "text": "姓名: 张三🚀"}],
                    [{"tag": "at", "user_id": "ou_1"}, {"tag": "at", "user_id": "all"}],
                ]
            }}}})
        );
        assert_eq!(f.mention_text(Format::Post, &mentions), None);
        assert_eq!(
            f.mention_text(Format::Text, &mentions).as_deref(),
            Some("<at user_id=\"ou_1\"></at> <at user_id=\"all\">所有人</at>")
        );
        let by_mobile = Mentions {
            mobiles: vec!["13800138000".into()],
            ..Mentions::default()
        };
        assert!(f.check_mentions(Format::Text, &by_mobile).is_err());
    }

    #[test]
    fn a_signed_body_carries_timestamp_and_sign_computed_from_the_secret() {
        let f = feishu(Some("s3cret"));
        let body =
            serde_json::to_vec(&json!({"msg_type": "text", "content": {"text": "x"}})).unwrap();
        let signed: Value = serde_json::from_slice(&f.signed_body(&body)).unwrap();
        let ts: i64 = signed["timestamp"].as_str().unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 5);
        assert_eq!(signed["sign"], json!(feishu_bot_sign("s3cret", ts)));
        assert_eq!(signed["content"]["text"], "x");
        assert_eq!(feishu(None).signed_body(&body), body);
        assert_eq!(f.url(), "http://127.0.0.1:9/open-apis/bot/v2/hook/tok");
    }

    #[test]
    fn codes_are_classified() {
        let refused = |code, msg: &str| match classify_answer("fs", code, msg) {
            Err(PushError::Failed(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(
                19_021,
                "sign match fail or timestamp is not within one hour from current time"
            ),
            FerryError::config(
                "connection `fs`: the Feishu bot refused the message: code 19021 (sign match fail \
                 or timestamp is not within one hour from current time); check the connection's \
                 `secret` and this machine's clock (the timestamp must be within an hour)"
            )
        );
        for code in [19_001, 19_024, 19_022, 9_499] {
            assert_eq!(refused(code, "x").class(), ferry_core::ErrorClass::Config);
        }
        assert_eq!(
            refused(9_999, "x").class(),
            ferry_core::ErrorClass::Transient
        );
        assert!(matches!(
            classify_answer("fs", 11_232, "frequency limited"),
            Err(PushError::Throttled(_))
        ));
        assert!(matches!(
            classify_answer("fs", 9_499, "Bad Request: request body size exceeds 20KB"),
            Err(PushError::TooLong(_))
        ));
        let f = feishu(None);
        assert!(
            f.classify("fs", &json!({"StatusCode": 0, "StatusMessage": "success"}))
                .is_ok()
        );
    }
}
