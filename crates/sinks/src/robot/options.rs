//! The metadata keys every robot target reads (`format`, `message_template`, `batch_size`,
//! `at_mobiles`, `at_all`, the marks, `window_secs`, `throttle_retries`), read and checked in
//! one pass that reports every problem with its key.

use ferry_core::FerryError;
use ferry_core::connector::whole_option;
use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use serde_json::Value;

use super::layout::{Piece, parse_template};
use super::vendor::{Format, Mentions, Vendor};

/// Records per message when the scheme's `batch_size` is not set.
pub const DEFAULT_RECORDS_PER_MESSAGE: usize = 10;
/// The robot's rate window: `per_minute` messages per this many seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// How often a message answered "too fast" is retried, a window apart, before the batch goes
/// back to the queue as a transient failure. Eleven one-minute windows outlast DingTalk's
/// penalty of about ten minutes.
pub const DEFAULT_THROTTLE_RETRIES: usize = 11;
/// Upper bound of `throttle_retries`, so that one delivery cannot be held for hours.
pub const MAX_THROTTLE_RETRIES: u64 = 60;
/// Shown next to a record that was pushed before with other content.
pub const DEFAULT_UPDATE_MARK: &str = "（更新）";
/// The mark on a record that may have been pushed already (see the ledger).
pub const DEFAULT_REPEAT_MARK: &str = "（可能重复）";
/// The message layout of the `markdown` format when `message_template` is not set.
pub const DEFAULT_MARKDOWN_TEMPLATE: &str = "#### {header}（{count} 条）\n\n{records}";
/// The message layout of the `text` format when `message_template` is not set.
pub const DEFAULT_TEXT_TEMPLATE: &str = "【{title}】{header}（{count} 条）\n\n{records}";
/// The message layout of the `post` format (Feishu rich text, whose title is shown apart) when
/// `message_template` is not set.
pub const DEFAULT_POST_TEMPLATE: &str = "{header}（{count} 条）\n\n{records}";

/// The metadata keys of a robot target, read and checked.
pub(crate) struct Options {
    pub format: Format,
    pub template: Vec<Piece>,
    pub records_per_message: usize,
    pub mentions: Mentions,
    pub update_mark: String,
    pub repeat_mark: String,
    pub window_secs: u64,
    pub throttle_retries: usize,
}

impl Options {
    /// Read the options for `vendor`; `default_format` is the connection's.
    pub(crate) fn read(
        metadata: &Metadata,
        default_format: Format,
        vendor: &dyn Vendor,
    ) -> Result<Options, FerryError> {
        let mut problems = Vec::new();
        let extra = &metadata.extra;
        let at = |key: &str| format!("target.metadata.{key}");

        let formats = vendor.formats();
        let format = match extra.get("format") {
            None => default_format,
            Some(Value::String(s)) if formats.iter().any(|f| f.name() == s) => formats
                .iter()
                .copied()
                .find(|f| f.name() == s)
                .unwrap_or(default_format),
            Some(other) => {
                let names: Vec<&str> = formats.iter().map(|f| f.name()).collect();
                problems.push(format!(
                    "{}: `{}` is not a robot format ({})",
                    at("format"),
                    value_text(other),
                    names.join(", ")
                ));
                default_format
            }
        };
        let default_template = match format {
            Format::Markdown => DEFAULT_MARKDOWN_TEMPLATE,
            Format::Text => DEFAULT_TEXT_TEMPLATE,
            Format::Post => DEFAULT_POST_TEMPLATE,
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
        let mut list = |key: &str, what: &str| match extra.get(key) {
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
                        _ => problems.push(format!("{}: `{item}` is not a {what}", at(key))),
                    }
                }
                out
            }
            Some(_) => {
                problems.push(format!("{}: must be a list of {what}s", at(key)));
                Vec::new()
            }
        };
        let at_mobiles = list("at_mobiles", "mobile number");
        let at_user_ids = list("at_user_ids", "user id");
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
        let mut whole = |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| {
            whole_option(extra, key, &at(key), range, default, &mut problems)
        };
        let window_secs = whole("window_secs", 1..=3_600, DEFAULT_WINDOW_SECS);
        let throttle_retries = whole(
            "throttle_retries",
            0..=MAX_THROTTLE_RETRIES,
            DEFAULT_THROTTLE_RETRIES as u64,
        ) as usize;
        let mentions = Mentions {
            mobiles: at_mobiles,
            user_ids: at_user_ids,
            all: at_all,
        };
        if let Err(why) = vendor.check_mentions(format, &mentions) {
            problems.push(format!("{}: {why}", at("at_mobiles")));
        }
        if !problems.is_empty() {
            return Err(FerryError::config(problems.join("; ")));
        }
        Ok(Options {
            format,
            template,
            records_per_message,
            mentions,
            update_mark,
            repeat_mark,
            window_secs,
            throttle_retries,
        })
    }
}
