//! How records become chat messages. Pure: no I/O, unit-tested on its own.
//!
//! A rendered record (the target request tree: `title`, `header` and labelled fields) becomes a
//! [`Content`]: what the group sees of it, whose digest is the record's identity in the ledger.
//! A batch of entries is split into [`Message`]s of at most `batch_size` records, each body kept
//! under the vendor's byte limit. A message's text is the `message_template` with `{title}`,
//! `{header}`, `{count}` and `{records}` (one numbered block of `label: value` lines per record,
//! marked as an update or a possible repeat), then the mentions' text, then the keyword when the
//! robot's security setting requires one and the message lacks it.

use std::sync::Arc;

use ferry_core::record::value_text;
use ferry_core::scheme::Metadata;
use ferry_core::sign::to_hex;
use ferry_core::{FerryError, Record};
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::options::Options;
use super::sink::RobotSettings;
use super::vendor::{Format, Mentions, Vendor};
use crate::ledger::{Marks, Tracked};

/// Fields of a rendered record that are parts of the message, not `label: value` lines.
/// `access_token` is the seeds' way of naming the robot; Ferry takes it from the connection.
const MESSAGE_PART_FIELDS: [&str; 3] = ["access_token", "title", "header"];
/// The placeholders a `message_template` may use.
const TEMPLATE_PLACEHOLDERS: [&str; 4] = ["title", "header", "count", "records"];

/// How records become message bodies for one robot.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub vendor: Arc<dyn Vendor>,
    pub format: Format,
    pub template: Vec<Piece>,
    /// `(field key, label)` of every labelled field, in request order.
    pub labels: Vec<(String, String)>,
    pub records_per_message: usize,
    pub mentions: Mentions,
    pub keyword: Option<String>,
    pub update_mark: String,
    pub repeat_mark: String,
    /// Title used when a record renders none (the scheme's name).
    pub fallback_title: String,
}

/// A piece of a parsed `message_template`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Title,
    Header,
    Count,
    Records,
}

/// One record ready to push.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub record: Record,
    pub content: Content,
    pub digest: String,
    pub marks: Marks,
}

impl Entry {
    pub(crate) fn new(record: Record, layout: &Layout) -> Entry {
        let content = layout.content(&record.data);
        Entry {
            digest: content.digest(),
            record,
            content,
            marks: Marks::default(),
        }
    }
}

impl Tracked for Entry {
    fn id(&self) -> &str {
        &self.record.id
    }
    fn digest(&self) -> &str {
        &self.digest
    }
    fn set_marks(&mut self, marks: Marks) {
        self.marks = marks;
    }
}

/// What a record shows in the group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Content {
    pub title: String,
    pub header: String,
    pub lines: Vec<(String, String)>,
}

impl Content {
    /// SHA-256 (hex) of exactly what the group sees of this record, so a change to any shown
    /// value makes a new digest and nothing else does.
    pub(crate) fn digest(&self) -> String {
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

/// A message ready to send: its body and the entries it carries.
#[derive(Debug)]
pub(crate) struct Message {
    pub indexes: Vec<usize>,
    pub body: Vec<u8>,
}

/// `(field key, label)` of every request field that becomes a `label: value` line.
pub(crate) fn labels(metadata: &Metadata) -> Vec<(String, String)> {
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

/// Parse a `message_template`: `{title}`, `{header}`, `{count}` and `{records}` are replaced;
/// any other `{word}` is refused (a typo would otherwise reach the group); other braces stay.
pub(crate) fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
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

/// Add `keyword` at the end of `text` unless the message already carries it (the title of a
/// markdown or post message counts; a text message has only its text).
pub(crate) fn add_keyword(keyword: Option<&str>, format: Format, title: &str, text: &mut String) {
    if let Some(keyword) = keyword {
        let seen = (format.titled() && title.contains(keyword)) || text.contains(keyword);
        if !seen {
            text.push_str("\n\n");
            text.push_str(keyword);
        }
    }
}

impl Layout {
    /// The layout of a target whose metadata is `metadata` (read into `options`).
    pub(crate) fn new(
        vendor: Arc<dyn Vendor>,
        options: &Options,
        robot: &RobotSettings<'_>,
        metadata: &Metadata,
        scheme_name: &str,
    ) -> Layout {
        Layout {
            vendor,
            format: options.format,
            template: options.template.clone(),
            labels: labels(metadata),
            records_per_message: options.records_per_message,
            mentions: options.mentions.clone(),
            keyword: robot.keyword.clone(),
            update_mark: options.update_mark.clone(),
            repeat_mark: options.repeat_mark.clone(),
            fallback_title: scheme_name.to_string(),
        }
    }

    /// The error of a record too long to send even alone.
    pub(crate) fn too_long_error(&self, record: &Record) -> FerryError {
        FerryError::record(format!(
            "this record alone makes a {} message over {} bytes",
            self.vendor.product(),
            self.vendor.max_body_bytes(self.format)
        ))
        .with_record_id(&record.id)
    }

    /// What `data` (one rendered record) shows.
    pub(crate) fn content(&self, data: &Value) -> Content {
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

    /// Group entries into messages of at most `records_per_message`, each body under the
    /// vendor's byte limit. Returns the messages and the entries too long to send even alone.
    pub(crate) fn split(&self, entries: &[Entry]) -> (Vec<Message>, Vec<usize>) {
        let max_bytes = self.vendor.max_body_bytes(self.format);
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
            if body.len() < max_bytes {
                current = candidate;
                current_body = body;
                continue;
            }
            let alone = self.body(entries, &[i]);
            if alone.len() >= max_bytes {
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
        if let Some(mentions) = self.vendor.mention_text(self.format, &self.mentions) {
            text.push_str("\n\n");
            text.push_str(&mentions);
        }
        add_keyword(self.keyword.as_deref(), self.format, &title, &mut text);
        let body = self.vendor.body(self.format, &title, &text, &self.mentions);
        // Serialising a tree of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The `{records}` part: one numbered block of `label: value` lines per record.
    fn records_text(&self, chosen: &[&Entry]) -> String {
        let mut blocks = Vec::with_capacity(chosen.len());
        for (n, entry) in chosen.iter().enumerate() {
            let mut mark = String::new();
            if entry.marks.update {
                mark.push_str(&self.update_mark);
            }
            if entry.marks.maybe_repeat {
                mark.push_str(&self.repeat_mark);
            }
            let mut block = if self.format.markdown() {
                format!("**{}.**{mark}", n + 1)
            } else {
                format!("{}.{mark}", n + 1)
            };
            for (label, value) in &entry.content.lines {
                block.push('\n');
                if self.format.markdown() {
                    block.push_str(&format!("- {label}: {value}"));
                } else {
                    block.push_str(&format!("{label}: {value}"));
                }
            }
            blocks.push(block);
        }
        blocks.join("\n\n")
    }
}
