//! A reader over a TOML table that records every problem instead of stopping at the first.
//!
//! Serde stops at the first error; an operator fixing a config wants them all at once. So
//! `ferry.toml` is parsed to a `toml::Table`, its strings are substituted, and each config struct
//! reads its keys through a [`TableReader`]: a missing, mistyped or out-of-range key is recorded
//! (with its full path) in [`Report`] and a default stands in, so reading goes on. When the table
//! is finished, every key nobody asked for is reported as unknown: that is this module's
//! `deny_unknown_fields`. Error texts name types, never values, since values may be secrets.

use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;

use toml::{Table, Value};

use super::Secret;
use crate::problem::Problem;

/// Problems found so far in one file, and the key paths already reported (so that a value whose
/// `${...}` failed is not reported a second time as mistyped).
pub(crate) struct Report {
    /// The file problems are reported in (`ferry.toml`).
    pub(crate) file: String,
    /// Everything found so far, in the order found.
    pub(crate) problems: Vec<Problem>,
    /// Key paths already reported.
    pub(crate) failed: HashSet<String>,
}

impl Report {
    pub(crate) fn new(file: impl Into<String>) -> Self {
        Report {
            file: file.into(),
            problems: Vec::new(),
            failed: HashSet::new(),
        }
    }

    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.failed.insert(path.to_string());
        self.problems
            .push(Problem::error(self.file.clone(), path, message));
    }
}

/// Join a table path and a key: `connections` + `www` = `connections.www`. Keys that are not
/// bare TOML keys are quoted, as TOML would write them.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

enum Lookup<'a> {
    Missing,
    /// Present, but its substitution already failed and was reported.
    Failed,
    Found(&'a Value),
}

/// Reads the keys of one table (or of an absent one: every key is then missing).
pub(crate) struct TableReader<'a> {
    table: Option<&'a Table>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> TableReader<'a> {
    pub(crate) fn new(table: Option<&'a Table>, path: impl Into<String>) -> Self {
        TableReader {
            table,
            path: path.into(),
            known: Vec::new(),
        }
    }

    /// Whether the table is there at all (an absent one reads as every key missing).
    pub(crate) fn is_present(&self) -> bool {
        self.table.is_some()
    }

    /// The path of this table (`alerts`).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The full path of `key` in this table (`connections.www.url`).
    pub(crate) fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn lookup(&mut self, report: &Report, key: &'static str) -> Lookup<'a> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        match self.table.and_then(|t| t.get(key)) {
            None => Lookup::Missing,
            Some(_) if report.failed.contains(&self.path_of(key)) => Lookup::Failed,
            Some(v) => Lookup::Found(v),
        }
    }

    fn mistyped(&self, report: &mut Report, key: &str, expected: &str, found: &Value) {
        report.error(
            &self.path_of(key),
            format!("expected {expected}, found {}", type_name(found)),
        );
    }

    /// A required string; records an error and returns "" when it is missing or not a string.
    pub(crate) fn string(&mut self, report: &mut Report, key: &'static str) -> String {
        match self.lookup(report, key) {
            Lookup::Missing => {
                report.error(&self.path_of(key), "missing required key");
                String::new()
            }
            _ => self.opt_string(report, key).unwrap_or_default(),
        }
    }

    /// An optional string.
    pub(crate) fn opt_string(&mut self, report: &mut Report, key: &'static str) -> Option<String> {
        match self.lookup(report, key) {
            Lookup::Found(Value::String(s)) => Some(s.clone()),
            Lookup::Found(other) => {
                self.mistyped(report, key, "a string", other);
                None
            }
            Lookup::Missing | Lookup::Failed => None,
        }
    }

    /// A string with a default.
    pub(crate) fn string_or(
        &mut self,
        report: &mut Report,
        key: &'static str,
        default: &str,
    ) -> String {
        self.opt_string(report, key)
            .unwrap_or_else(|| default.to_string())
    }

    /// A string that must be one of `allowed`.
    pub(crate) fn choice(
        &mut self,
        report: &mut Report,
        key: &'static str,
        allowed: &[&str],
        default: &str,
    ) -> String {
        let value = self.string_or(report, key, default);
        if allowed.contains(&value.as_str()) {
            value
        } else {
            let list = allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            report.error(
                &self.path_of(key),
                format!("unknown value `{value}`, expected one of {list}"),
            );
            default.to_string()
        }
    }

    /// Report `value` (read from `key`) unless it starts with one of `schemes` (`http://`).
    /// Empty values were reported as missing already. The value itself is not shown: URLs may
    /// carry passwords.
    pub(crate) fn require_url(
        &self,
        report: &mut Report,
        key: &str,
        value: &str,
        schemes: &[&str],
    ) {
        let path = self.path_of(key);
        if value.is_empty() || report.failed.contains(&path) {
            return;
        }
        if !schemes
            .iter()
            .any(|s| value.starts_with(&format!("{s}://")))
        {
            let list = schemes
                .iter()
                .map(|s| format!("`{s}://`"))
                .collect::<Vec<_>>()
                .join(" or ");
            report.error(&path, format!("expected a URL starting with {list}"));
        }
    }

    /// A required secret.
    pub(crate) fn secret(&mut self, report: &mut Report, key: &'static str) -> Secret {
        Secret::new(self.string(report, key))
    }

    /// An optional secret.
    pub(crate) fn opt_secret(&mut self, report: &mut Report, key: &'static str) -> Option<Secret> {
        self.opt_string(report, key).map(Secret::new)
    }

    /// An unsigned integer in `range`, with a default. A string holding digits is accepted, so
    /// that numbers can come from the environment (`"${PREFETCH:-16}"`).
    pub(crate) fn uint<T>(
        &mut self,
        report: &mut Report,
        key: &'static str,
        range: RangeInclusive<u64>,
        default: T,
    ) -> T
    where
        T: TryFrom<u64> + Copy,
    {
        let number = match self.lookup(report, key) {
            Lookup::Missing | Lookup::Failed => return default,
            Lookup::Found(value) => match as_uint(value) {
                Some(n) => n,
                None => {
                    self.mistyped(report, key, "a non-negative integer", value);
                    return default;
                }
            },
        };
        if !range.contains(&number) {
            report.error(
                &self.path_of(key),
                format!(
                    "must be between {} and {}, found {number}",
                    range.start(),
                    range.end()
                ),
            );
            return default;
        }
        T::try_from(number).unwrap_or(default)
    }

    /// A list of unsigned integers, with a default.
    pub(crate) fn uint_list(
        &mut self,
        report: &mut Report,
        key: &'static str,
        default: &[u64],
    ) -> Vec<u64> {
        match self.lookup(report, key) {
            Lookup::Missing | Lookup::Failed => default.to_vec(),
            Lookup::Found(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match as_uint(item) {
                        Some(n) => out.push(n),
                        None => report.error(
                            &format!("{}[{i}]", self.path_of(key)),
                            format!("expected a non-negative integer, found {}", type_name(item)),
                        ),
                    }
                }
                out
            }
            Lookup::Found(other) => {
                self.mistyped(report, key, "an array of integers", other);
                default.to_vec()
            }
        }
    }

    /// An optional list of strings; `None` when the key is absent or not a list (reported).
    pub(crate) fn opt_string_list(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> Option<Vec<String>> {
        match self.lookup(report, key) {
            Lookup::Missing | Lookup::Failed => None,
            Lookup::Found(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{}[{i}]", self.path_of(key));
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ if report.failed.contains(&item_path) => {}
                        other => report.error(
                            &item_path,
                            format!("expected a string, found {}", type_name(other)),
                        ),
                    }
                }
                Some(out)
            }
            Lookup::Found(other) => {
                self.mistyped(report, key, "an array of strings", other);
                None
            }
        }
    }

    /// A table of secret strings (HTTP headers).
    pub(crate) fn secret_map(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> BTreeMap<String, Secret> {
        let path = self.path_of(key);
        match self.lookup(report, key) {
            Lookup::Missing | Lookup::Failed => BTreeMap::new(),
            Lookup::Found(Value::Table(table)) => {
                let mut out = BTreeMap::new();
                for (name, value) in table {
                    let item_path = join(&path, name);
                    match value {
                        Value::String(s) => {
                            out.insert(name.clone(), Secret::new(s.clone()));
                        }
                        _ if report.failed.contains(&item_path) => {}
                        other => report.error(
                            &item_path,
                            format!("expected a string, found {}", type_name(other)),
                        ),
                    }
                }
                out
            }
            Lookup::Found(other) => {
                self.mistyped(report, key, "a table", other);
                BTreeMap::new()
            }
        }
    }

    /// A sub-table; absent gives a reader over nothing (every key missing). A value that is not
    /// a table is reported and also read as absent.
    pub(crate) fn table(&mut self, report: &mut Report, key: &'static str) -> TableReader<'a> {
        let path = self.path_of(key);
        match self.lookup(report, key) {
            Lookup::Found(Value::Table(t)) => TableReader::new(Some(t), path),
            Lookup::Found(other) => {
                self.mistyped(report, key, "a table", other);
                TableReader::new(None, path)
            }
            Lookup::Missing | Lookup::Failed => TableReader::new(None, path),
        }
    }

    /// The raw sub-table under `key`, for maps of user-named entries (`[connections.<name>]`).
    pub(crate) fn entries(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> Vec<(String, &'a Value)> {
        match self.lookup(report, key) {
            Lookup::Found(Value::Table(t)) => t
                .iter()
                .map(|(name, value)| (name.clone(), value))
                .collect(),
            Lookup::Found(other) => {
                self.mistyped(report, key, "a table", other);
                Vec::new()
            }
            Lookup::Missing | Lookup::Failed => Vec::new(),
        }
    }

    /// Report every key of the table that was never read.
    pub(crate) fn finish(self, report: &mut Report) {
        let Some(table) = self.table else { return };
        let expected = self
            .known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for key in table.keys() {
            if !self.known.contains(&key.as_str()) {
                report.error(
                    &self.path_of(key),
                    format!("unknown field `{key}`, expected one of {expected}"),
                );
            }
        }
    }
}

/// The TOML type of `value` with its article, for messages (never the value: it may be secret).
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A TOML integer, or a string of digits (from a `${VAR}`), as u64.
fn as_uint(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(n) => u64::try_from(*n).ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
