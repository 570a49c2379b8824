//! The chat-robot targets: a batch of rendered records (the target request tree: `title`,
//! `header` and labelled fields) becomes a few chat messages of up to `batch_size` records each
//! (default 10), every body kept under the robot's byte limit, each saying how many records it
//! carries. People read a chat group, so a duplicate is the worst outcome, and robots accept
//! only a few messages a minute:
//!
//! - Identity and the ledger (`idCheck`, [`crate::ledger`]): a record is its (id, content
//!   digest), the digest of what the group sees of it. An identical repeat is skipped; another
//!   content of an id already pushed is pushed marked as an update; a content whose earlier push
//!   went unanswered is pushed again marked as a possible repeat, so people know, rather than
//!   silently dropped. A message's records are recorded right after the robot accepted it.
//! - Rate limit ([`crate::rate`]): every push first takes a slot of the sliding-window limiter
//!   kept in the state database (`robot:<connection>`), shared by every loader replica. If the
//!   robot still answers "too fast" (someone else posts with the same robot), the sink waits out
//!   the window and tries again, a bounded number of times, before handing the batch back as a
//!   transient failure.
//! - Errors: signature, token, keyword and stopped-robot answers are configuration errors (the
//!   scheme stops, its messages stay queued); busy answers, 5xx and network failures are
//!   transient. Error texts name the connection and the robot's code and message, never the
//!   token or the secret.
//!
//! Layout:
//! - `sink`: [`RobotSink`], the write flow shared by every vendor, and the alerts' poster;
//! - `layout`: records to message texts and bodies (template, marks, mentions, keyword, split);
//! - `options`: the metadata keys every robot target reads;
//! - `vendor`: the [`vendor::Vendor`] trait (what differs between robots) and the HTTP exchange;
//! - `dingtalk`, `wecom`, `feishu`: one file per vendor (signature, body shapes, answer codes,
//!   and its constructors of [`RobotSink`]).
//!
//! The metadata keys these targets read are listed in the README ("The DingTalk robot target").

mod dingtalk;
mod feishu;
mod kinds;
mod layout;
mod options;
mod sink;
mod vendor;
mod wecom;

#[cfg(test)]
mod tests;

pub use crate::net::http_client;
pub use crate::rate::RATE_MARGIN_MS;
pub use dingtalk::MAX_BODY_BYTES;
pub use feishu::{FEISHU_BASE_URL, FEISHU_PER_MINUTE, FEISHU_PER_SECOND, FeishuWebhook};
pub use kinds::{render_robot_messages, robot_poster};
pub use options::{
    DEFAULT_MARKDOWN_TEMPLATE, DEFAULT_RECORDS_PER_MESSAGE, DEFAULT_REPEAT_MARK,
    DEFAULT_TEXT_TEMPLATE, DEFAULT_THROTTLE_RETRIES, DEFAULT_UPDATE_MARK, DEFAULT_WINDOW_SECS,
    MAX_THROTTLE_RETRIES,
};
pub use sink::{RobotSettings, RobotSink};
pub use vendor::Format;
pub use wecom::{WECOM_BASE_URL, WECOM_PER_MINUTE, WeComWebhook};
