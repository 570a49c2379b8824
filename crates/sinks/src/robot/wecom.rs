//! The WeCom (企业微信) group robot (`kind = "wecom_robot"`): `POST
//! {base_url}/cgi-bin/webhook/send?key=K`, where the key (from the webhook URL) is the only
//! credential. `text` messages (content up to 2,048 bytes) mention members by mobile
//! (`mentioned_mobile_list`) or userid (`mentioned_list`), `"@all"` for everyone; `markdown`
//! messages (content up to 4,096 bytes) mention only by `<@userid>` in the text. 20 messages a
//! minute per robot. Every answer is HTTP 200 with `{"errcode", "errmsg"}`: 45009 is "too fast",
//! 93000 a wrong key, 40058 "exceed max length" a message too long.

use serde_json::{Value, json};

use ferry_core::FerryError;
use ferry_core::config::Secret;
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::url_encode;
use ferry_state::State;

use super::sink::{RobotSettings, RobotSink};
use super::vendor::{Format, Mentions, PushError, Vendor};

/// The WeCom API host.
pub const WECOM_BASE_URL: &str = "https://qyapi.weixin.qq.com";
/// A WeCom group robot accepts 20 messages a minute.
pub const WECOM_PER_MINUTE: u32 = 20;
/// The `api` a WeCom robot target answers to.
pub const WECOM_API: &str = "WeComRobotPush";
/// Most bytes of a `text` message's content.
pub const WECOM_MAX_TEXT_BYTES: usize = 2_048;
/// Most bytes of a `markdown` message's content.
pub const WECOM_MAX_MARKDOWN_BYTES: usize = 4_096;

const ERRCODE_OK: i64 = 0;
const ERRCODE_BUSY: i64 = -1;
const ERRCODE_THROTTLED: i64 = 45_009;
const ERRCODE_INVALID_PARAMETER: i64 = 40_058;
/// Answers no retry can fix: they stop the scheme until an operator acts.
const CONFIG_ERRCODES: [(i64, &str); 4] = [
    (
        93_000,
        "the webhook key is wrong or the robot was removed; check the connection's `key` (the `key=` of the robot's webhook URL)",
    ),
    (
        40_008,
        "the robot does not take this message type; check the target's `format`",
    ),
    (
        44_004,
        "the message is empty; check the target's `message_template`",
    ),
    (
        ERRCODE_INVALID_PARAMETER,
        "the robot refused the message's fields; check `format`, `at_mobiles` and `at_user_ids`",
    ),
];

/// Where a WeCom group robot is and its key.
pub struct WeComWebhook {
    /// Default [`WECOM_BASE_URL`].
    pub base_url: String,
    /// The `key=` of the robot's webhook URL.
    pub key: Secret,
}

impl RobotSink {
    /// Open the WeCom robot `robot.connection` for `scheme_name`'s target (api
    /// `WeComRobotPush`). Every problem with the metadata is a configuration error naming its key.
    pub fn wecom(
        robot: RobotSettings<'_>,
        webhook: &WeComWebhook,
        metadata: &Metadata,
        state: State,
        client: reqwest::Client,
        scheme_name: &str,
    ) -> Result<RobotSink, FerryError> {
        if !metadata.api.eq_ignore_ascii_case(WECOM_API) {
            return Err(FerryError::config(format!(
                "target.metadata.api: `{}` is not a WeCom robot api (`{WECOM_API}`)",
                metadata.api
            )));
        }
        if webhook.key.is_empty() {
            return Err(FerryError::config(format!(
                "connection `{}`: key is empty",
                robot.connection
            )));
        }
        let vendor = std::sync::Arc::new(WeCom::new(&webhook.base_url, webhook.key.clone()));
        RobotSink::open(vendor, robot, metadata, state, client, scheme_name)
    }
}

/// A WeCom group robot's address and key.
#[derive(Debug)]
pub(crate) struct WeCom {
    base_url: String,
    key: Secret,
}

impl WeCom {
    pub(crate) fn new(base_url: &str, key: Secret) -> WeCom {
        WeCom {
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }
}

impl Vendor for WeCom {
    fn product(&self) -> &'static str {
        "WeCom robot"
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::Markdown, Format::Text]
    }

    fn max_body_bytes(&self, format: Format) -> usize {
        match format {
            Format::Text => WECOM_MAX_TEXT_BYTES,
            Format::Markdown | Format::Post => WECOM_MAX_MARKDOWN_BYTES,
        }
    }

    fn check_mentions(&self, format: Format, mentions: &Mentions) -> Result<(), String> {
        if format == Format::Markdown && (!mentions.mobiles.is_empty() || mentions.all) {
            return Err(
                "a WeCom markdown message can mention only by user id (`at_user_ids`); use \
                 `format` = \"text\" to mention by mobile or everyone"
                    .to_string(),
            );
        }
        Ok(())
    }

    fn mention_text(&self, format: Format, mentions: &Mentions) -> Option<String> {
        // Markdown notifies `<@userid>` written in the text; text messages carry lists.
        (format == Format::Markdown && !mentions.user_ids.is_empty()).then(|| {
            let at: Vec<String> = mentions
                .user_ids
                .iter()
                .map(|u| format!("<@{u}>"))
                .collect();
            at.join(" ")
        })
    }

    fn body(&self, format: Format, _title: &str, text: &str, mentions: &Mentions) -> Value {
        match format {
            Format::Markdown | Format::Post => json!({
                "msgtype": "markdown",
                "markdown": { "content": text },
            }),
            Format::Text => {
                let mut content = json!({ "content": text });
                let mut mobiles = mentions.mobiles.clone();
                if mentions.all {
                    mobiles.push("@all".to_string());
                }
                if !mobiles.is_empty() {
                    content["mentioned_mobile_list"] = json!(mobiles);
                }
                if !mentions.user_ids.is_empty() {
                    content["mentioned_list"] = json!(mentions.user_ids);
                }
                json!({ "msgtype": "text", "text": content })
            }
        }
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self) -> String {
        format!(
            "{}/cgi-bin/webhook/send?key={}",
            self.base_url,
            url_encode(self.key.expose())
        )
    }

    fn classify(&self, conn: &str, answer: &Value) -> Result<(), PushError> {
        let Some(code) = answer.get("errcode").and_then(Value::as_i64) else {
            return Err(PushError::Unknown(FerryError::transient(format!(
                "connection `{conn}`: the WeCom robot's answer has no errcode"
            ))));
        };
        let errmsg = answer.get("errmsg").map(value_text).unwrap_or_default();
        classify_answer(conn, code, &errmsg)
    }

    fn throttle_code(&self) -> i64 {
        ERRCODE_THROTTLED
    }

    fn too_long_code(&self) -> i64 {
        ERRCODE_INVALID_PARAMETER
    }
}

/// Decide from the robot's `errcode` (the HTTP status is 200 for all of them).
fn classify_answer(conn: &str, code: i64, errmsg: &str) -> Result<(), PushError> {
    match code {
        ERRCODE_OK => Ok(()),
        ERRCODE_THROTTLED => Err(PushError::Throttled(errmsg.to_string())),
        ERRCODE_INVALID_PARAMETER if errmsg.contains("exceed max length") => {
            Err(PushError::TooLong(errmsg.to_string()))
        }
        ERRCODE_BUSY => Err(PushError::Failed(FerryError::transient(format!(
            "connection `{conn}`: the WeCom robot is busy: errcode {code} ({errmsg})"
        )))),
        code => match CONFIG_ERRCODES.iter().find(|(c, _)| *c == code) {
            Some((_, hint)) => Err(PushError::Failed(FerryError::config(format!(
                "connection `{conn}`: the WeCom robot refused the message: errcode {code} \
                 ({errmsg}); {hint}"
            )))),
            None => Err(PushError::Failed(FerryError::transient(format!(
                "connection `{conn}`: the WeCom robot answered errcode {code} ({errmsg})"
            )))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wecom() -> WeCom {
        WeCom::new("http://127.0.0.1:9/", Secret::new("k-1"))
    }

    #[test]
    fn text_mentions_go_in_lists_and_markdown_mentions_in_the_text() {
        let mentions = Mentions {
            mobiles: vec!["13800138000".into()],
            user_ids: vec!["zhangsan".into()],
            all: true,
        };
        let w = wecom();
        assert_eq!(
            w.body(Format::Text, "t", "留言 😀", &mentions),
            json!({"msgtype": "text", "text": {
                "content": "留言 😀",
                "mentioned_mobile_list": ["13800138000", "@all"],
                "mentioned_list": ["zhangsan"],
            }})
        );
        assert_eq!(w.mention_text(Format::Text, &mentions), None);
        let by_user = Mentions {
            user_ids: vec!["zhangsan".into(), "lisi".into()],
            ..Mentions::default()
        };
        assert_eq!(
            w.mention_text(Format::Markdown, &by_user).as_deref(),
            Some("<@zhangsan> <@lisi>")
        );
        assert!(w.check_mentions(Format::Markdown, &by_user).is_ok());
        assert!(w.check_mentions(Format::Markdown, &mentions).is_err());
        assert_eq!(
            w.body(Format::Markdown, "t", "#### 留言", &by_user),
            json!({"msgtype": "markdown", "markdown": {"content": "#### 留言"}})
        );
        assert_eq!(w.url(), "http://127.0.0.1:9/cgi-bin/webhook/send?key=k-1");
    }

    #[test]
    fn errcodes_are_classified_without_the_key() {
        let refused = |code, msg: &str| match classify_answer("wx", code, msg) {
            Err(PushError::Failed(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(93_000, "invalid webhook url"),
            FerryError::config(
                "connection `wx`: the WeCom robot refused the message: errcode 93000 (invalid \
                 webhook url); the webhook key is wrong or the robot was removed; check the \
                 connection's `key` (the `key=` of the robot's webhook URL)"
            )
        );
        assert_eq!(
            refused(-1, "system busy").class(),
            ferry_core::ErrorClass::Transient
        );
        assert_eq!(
            refused(40_008, "invalid message type").class(),
            ferry_core::ErrorClass::Config
        );
        assert!(matches!(
            classify_answer("wx", 45_009, "api freq out of limit"),
            Err(PushError::Throttled(_))
        ));
        assert!(matches!(
            classify_answer("wx", 40_058, "text.content exceed max length 2048"),
            Err(PushError::TooLong(_))
        ));
        assert!(classify_answer("wx", 0, "ok").is_ok());
    }
}
