//! Value templates: the `value` of a request field, parsed once per scheme and rendered per
//! record (target requests) or per page (source requests).
//!
//! # Syntax
//!
//! - `{field}`: a field of the record. `{{a.b.c}}`: a nested path; array elements by index
//!   (`{{items.0.name}}`). Both forms first look for a key spelled exactly as written (a key may
//!   contain dots), then walk the path. A missing field renders `null`, not an error.
//! - `{{$parent.x}}`: inside the children of an `array` field, each element is the record and the
//!   record around the array is `$parent`.
//! - Reserved names (upper case, exact): `PAGINATION_PAGE_SIZE`, `PAGINATION_START_ROW`,
//!   `PAGINATION_START_PAGE` (the paginator's numbers; an error outside a paged request),
//!   `CURRENT_TIME`, `LAST_SYNC_TIME` (the scheme's checkpoint; before the first successful run it
//!   is the wall-clock time `1970-01-01 00:00:00` in the scheme's zone, so a first run takes
//!   everything), `LAST_CURSOR` (the largest value of the source's `cursor_field` in the last
//!   complete run: a datetime moved back by the overlap, or a number as it is; the epoch before
//!   the first), `DAYS_AGO_n`, `HOURS_AGO_n`, `MINUTES_AGO_n` (now minus n, wall-clock),
//!   `TODAY`, `YESTERDAY` (midnight). Any other name is looked up in the record, then in the
//!   context's extra `vars` (e.g. `last_id` for keyset paging).
//! - Formatters after `|`: `datetime` (`%Y-%m-%d %H:%M:%S`), `date` (`%Y-%m-%d`), `timestamp`
//!   (Unix seconds, a number), `timestamp_ms`, and `format:PATTERN` where PATTERN uses MySQL
//!   `DATE_FORMAT` specifiers (`format:%Y%m%d`; note `%i` is minutes and `%M` the month name, as
//!   in MySQL). Time names default to `datetime` (`TODAY`/`YESTERDAY` to `date`); on a record
//!   field a formatter first reads the value as a datetime (epoch, ISO 8601, `YYYY-MM-DD ...`).
//! - Braces are exact: `{{name}}` and `{name}` are placeholders only when what is between them is
//!   a name (letters, digits, `_`, `.`, `$`, `-`) with an optional `|formatter`; anything else
//!   (`{"a":1}`, a lone `{`) is literal text.
//! - A template that is exactly one placeholder keeps the value's JSON type (a number stays a
//!   number, an object an object); text around placeholders makes a string, `null` rendering as
//!   an empty string.
//! - A value starting with `_function ` (after trimming) is a MySQL-style expression (see
//!   [`crate::expr`]). Placeholders inside it act as SQL literals: a number as a number, anything
//!   else as a quoted, escaped string literal (null as `NULL`), exactly as if substituted into
//!   the text first, but without re-parsing per record, so a value can never change the
//!   expression's structure. Inside a quoted string of the expression a placeholder is spliced
//!   as plain text (`'{order_no}-X'`).

use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::convert::{self, DATE_FORMAT, DATETIME_FORMAT};
use crate::error::FerryError;
use crate::expr;
use crate::record::value_text;

/// Prefix that marks a value as an expression.
pub const FUNCTION_PREFIX: &str = "_function ";

/// The paginator's numbers for the current page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageVars {
    /// Records per page (`{PAGINATION_PAGE_SIZE}`).
    pub page_size: u64,
    /// Offset of the first row of this page, from 0 (`{PAGINATION_START_ROW}`).
    pub start_row: u64,
    /// Page number, from 1 (`{PAGINATION_START_PAGE}`).
    pub start_page: u64,
}

/// A value of a source's data cursor field (`cursor_field`), as far as Ferry compares them:
/// numbers numerically, datetimes in time order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CursorValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Wall-clock time as the source wrote it (a time with an offset is read in the scheme's
    /// zone).
    Time(NaiveDateTime),
}

impl CursorValue {
    /// Read a record's cursor value: a JSON number, text that is a number, or text that is a
    /// datetime. None for anything else (null included).
    pub fn of(value: &Value, tz: Tz) -> Option<CursorValue> {
        match value {
            Value::Number(n) => Self::of_number(n),
            Value::String(s) => {
                let text = s.trim();
                if let Ok(n) = text.parse::<serde_json::Number>() {
                    return Self::of_number(&n);
                }
                convert::to_naive_datetime(value, tz).map(CursorValue::Time)
            }
            _ => None,
        }
    }

    fn of_number(n: &serde_json::Number) -> Option<CursorValue> {
        n.as_i64()
            .map(CursorValue::Int)
            .or_else(|| n.as_u64().map(CursorValue::UInt))
            .or_else(|| n.as_f64().map(CursorValue::Float))
    }

    /// Whether `self` comes after `other`; None when one is a number and the other a datetime.
    pub fn is_after(&self, other: &CursorValue) -> Option<bool> {
        use CursorValue::*;
        Some(match (self, other) {
            (Time(a), Time(b)) => a > b,
            (Time(_), _) | (_, Time(_)) => return None,
            (Int(a), Int(b)) => a > b,
            (UInt(a), UInt(b)) => a > b,
            (Int(a), UInt(b)) => i128::from(*a) > i128::from(*b),
            (UInt(a), Int(b)) => i128::from(*a) > i128::from(*b),
            (a, b) => a.as_f64() > b.as_f64(),
        })
    }

    fn as_f64(&self) -> f64 {
        match self {
            CursorValue::Int(n) => *n as f64,
            CursorValue::UInt(n) => *n as f64,
            CursorValue::Float(f) => *f,
            CursorValue::Time(_) => f64::NAN,
        }
    }

    fn number(&self) -> Option<Value> {
        match self {
            CursorValue::Int(n) => Some(Value::from(*n)),
            CursorValue::UInt(n) => Some(Value::from(*n)),
            CursorValue::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
            CursorValue::Time(_) => None,
        }
    }
}

/// Everything a template can refer to while rendering.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The record (a JSON object) for `{field}` placeholders.
    pub record: Option<&'a Value>,
    /// The paginator's numbers, in a source request.
    pub page: Option<PageVars>,
    /// The run's "now": `CURRENT_TIME`, `NOW()`, `DAYS_AGO_n` derive from it.
    pub now: DateTime<Tz>,
    /// The scheme's checkpoint (`LAST_SYNC_TIME`), the overlap already taken off.
    pub last_sync: Option<DateTime<Tz>>,
    /// The largest value of the source's `cursor_field` in the last complete run
    /// (`LAST_CURSOR`); None before the first.
    pub last_cursor: Option<CursorValue>,
    /// Seconds a datetime `LAST_CURSOR` is moved back (the scheme's overlap).
    pub overlap_secs: i64,
    /// The scheme's zone: wall-clock times are shown in it.
    pub tz: Tz,
    /// Extra named values (`last_id`), looked up after the record.
    pub vars: Option<&'a Map<String, Value>>,
    /// The record around an `array` field while its elements render (`{{$parent.x}}`).
    pub parent: Option<&'a Value>,
    /// Where record placeholders that name a field the record lacks are noted (as written,
    /// `{nmae}`), so the transform can report them instead of passing a silent null.
    pub absent: Option<&'a Mutex<Vec<String>>>,
}

impl<'a> Context<'a> {
    /// A context with only a clock: no record, no page, no checkpoint.
    pub fn new(now: DateTime<Tz>, tz: Tz) -> Self {
        Context {
            record: None,
            page: None,
            now,
            last_sync: None,
            last_cursor: None,
            overlap_secs: 0,
            tz,
            vars: None,
            parent: None,
            absent: None,
        }
    }

    /// The same context rendering `record`.
    pub fn with_record(mut self, record: &'a Value) -> Self {
        self.record = Some(record);
        self
    }

    /// The same context on page `page`.
    pub fn with_page(mut self, page: PageVars) -> Self {
        self.page = Some(page);
        self
    }

    /// The same context with the scheme's checkpoint (None: never synced).
    pub fn with_last_sync(mut self, last_sync: Option<DateTime<Tz>>) -> Self {
        self.last_sync = last_sync;
        self
    }

    /// The same context with the data cursor of the last complete run (`LAST_CURSOR`), shown
    /// `overlap_secs` earlier when it is a datetime.
    pub fn with_last_cursor(mut self, cursor: Option<CursorValue>, overlap_secs: i64) -> Self {
        self.last_cursor = cursor;
        self.overlap_secs = overlap_secs;
        self
    }

    /// The same context with extra named values.
    pub fn with_vars(mut self, vars: &'a Map<String, Value>) -> Self {
        self.vars = Some(vars);
        self
    }

    /// The same context with `parent` reachable as `{{$parent.x}}`.
    pub fn with_parent(mut self, parent: &'a Value) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Now, as wall-clock time in the scheme's zone.
    pub(crate) fn now_local(&self) -> NaiveDateTime {
        convert::local_time(self.now.naive_utc(), self.tz).unwrap_or(self.now.naive_utc())
    }
}

/// A template that failed to parse: what and where (character offset in the value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {offset}")]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// Character offset in the template text.
    pub offset: usize,
}

/// A parsed value template; parse once, render per record.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Parts(Vec<Part>),
    Expr(expr::Expr),
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    /// A placeholder and the text it was written as.
    Hole(Placeholder, String),
}

impl Template {
    /// Parse a template; errors point at the character where parsing failed.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if is_expression(source) {
            // `expr::parse` skips the keyword itself, keeping offsets relative to `source`.
            let parsed = expr::parse(source).map_err(|e| TemplateError {
                message: e.message,
                offset: e.offset,
            })?;
            return Ok(Template {
                source: source.to_string(),
                body: Body::Expr(parsed),
            });
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut byte = 0;
        while byte < source.len() {
            let rest = &source[byte..];
            if rest.starts_with('{')
                && let Some(found) = scan_placeholder(rest)
            {
                let (hole, len) = found.map_err(|message| TemplateError {
                    message,
                    offset: source[..byte].chars().count(),
                })?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Hole(hole, rest[..len].to_string()));
                byte += len;
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            text.push(c);
            byte += c.len_utf8();
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            body: Body::Parts(parts),
        })
    }

    /// The text this template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no placeholder and no expression: it renders to its text.
    pub fn is_constant(&self) -> bool {
        match &self.body {
            Body::Parts(parts) => parts.iter().all(|p| matches!(p, Part::Text(_))),
            Body::Expr(_) => false,
        }
    }

    /// Render against `ctx`. Failures are record errors (a value that does not format, an
    /// expression that fails on this record's data), or config errors (a paginator
    /// placeholder outside a paged request).
    pub fn render(&self, ctx: &Context<'_>) -> Result<Value, FerryError> {
        match &self.body {
            Body::Expr(e) => e
                .eval(ctx)
                .map_err(|err| FerryError::record(format!("expression: {err}"))),
            Body::Parts(parts) => match parts.as_slice() {
                [] => Ok(Value::String(String::new())),
                [Part::Hole(hole, _)] => hole.resolve(ctx),
                [Part::Text(text)] => Ok(Value::String(text.clone())),
                parts => {
                    let mut out = String::new();
                    for part in parts {
                        match part {
                            Part::Text(text) => out.push_str(text),
                            Part::Hole(hole, _) => out.push_str(&value_text(&hole.resolve(ctx)?)),
                        }
                    }
                    Ok(Value::String(out))
                }
            },
        }
    }
}

impl Template {
    /// Render only Ferry's own variables (paging and time names) and write every record
    /// placeholder back exactly as it was written. For text that is not a value but code, such
    /// as `main_sql`: record values reach SQL only as bound parameters, never as text.
    pub fn render_reserved(&self, ctx: &Context<'_>) -> Result<String, FerryError> {
        let Body::Parts(parts) = &self.body else {
            return Ok(self.source.clone());
        };
        let mut out = String::with_capacity(self.source.len());
        for part in parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Hole(hole, raw) if hole.names_record_data() => out.push_str(raw),
                Part::Hole(hole, _) => out.push_str(&value_text(&hole.resolve(ctx)?)),
            }
        }
        Ok(out)
    }
}

/// Render a field value: a string is a template; arrays and objects render the strings inside
/// them; other JSON literals are returned as they are. A template that does not parse is a
/// config error (the scheme is wrong, not the record).
pub fn render_value(value: &Value, ctx: &Context<'_>) -> Result<Value, FerryError> {
    match value {
        Value::String(s) => Template::parse(s)
            .map_err(|e| FerryError::config(format!("template {s:?}: {e}")))?
            .render(ctx),
        Value::Array(items) => items
            .iter()
            .map(|item| render_value(item, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render_value(v, ctx)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Does `value` start (after blanks) with `_function` and a blank?
pub fn is_expression(value: &str) -> bool {
    value
        .trim_start()
        .strip_prefix(FUNCTION_PREFIX.trim_end())
        .is_some_and(|rest| rest.starts_with(char::is_whitespace))
}

/// A `{...}` or `{{...}}` placeholder.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Placeholder {
    source: Source,
    format: Option<Formatter>,
}

/// What a placeholder names.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Field(String),
    Parent(String),
    PageSize,
    StartRow,
    StartPage,
    CurrentTime,
    LastSync,
    LastCursor,
    DaysAgo(u32),
    HoursAgo(u32),
    MinutesAgo(u32),
    Today,
    Yesterday,
}

/// How a time (or a value read as one) is shown.
#[derive(Clone, Debug, PartialEq)]
enum Formatter {
    Datetime,
    Date,
    Timestamp,
    TimestampMs,
    /// MySQL `DATE_FORMAT` pattern.
    Pattern(String),
}

impl Formatter {
    fn parse(text: &str) -> Result<Formatter, String> {
        Ok(match text {
            "datetime" => Formatter::Datetime,
            "date" => Formatter::Date,
            "timestamp" => Formatter::Timestamp,
            "timestamp_ms" => Formatter::TimestampMs,
            other => match other.strip_prefix("format:") {
                Some(pattern) if !pattern.is_empty() => Formatter::Pattern(pattern.to_string()),
                _ => {
                    let known = "datetime, date, timestamp, timestamp_ms, format:PATTERN";
                    return Err(match closest(other, &FORMATTERS) {
                        Some(near) => format!(
                            "unknown formatter {other:?}; did you mean `{near}`? (known: {known})"
                        ),
                        None => format!("unknown formatter {other:?} (known: {known})"),
                    });
                }
            },
        })
    }

    /// Show `local`; None when it has no Unix time (past the ends of the calendar).
    fn apply(&self, local: NaiveDateTime, tz: Tz) -> Option<Value> {
        Some(match self {
            Formatter::Datetime => Value::String(local.format(DATETIME_FORMAT).to_string()),
            Formatter::Date => Value::String(local.format(DATE_FORMAT).to_string()),
            Formatter::Timestamp => Value::from(convert::resolve_local(local, tz)?.timestamp()),
            Formatter::TimestampMs => {
                Value::from(convert::resolve_local(local, tz)?.timestamp_millis())
            }
            Formatter::Pattern(p) => Value::String(expr::date_format(local, p)),
        })
    }
}

/// The formatters after `|` (besides `format:PATTERN`).
pub const FORMATTERS: [&str; 4] = ["datetime", "date", "timestamp", "timestamp_ms"];

/// Ferry's own variable names, as lint suggests them (`DAYS_AGO_n` shown with `1`).
pub const FERRY_VARIABLES: [&str; 11] = [
    "LAST_SYNC_TIME",
    "LAST_CURSOR",
    "CURRENT_TIME",
    "PAGINATION_PAGE_SIZE",
    "PAGINATION_START_ROW",
    "PAGINATION_START_PAGE",
    "DAYS_AGO_1",
    "HOURS_AGO_1",
    "MINUTES_AGO_1",
    "TODAY",
    "YESTERDAY",
];

/// Ferry's own variable names as messages list them.
pub const FERRY_VARIABLE_LIST: &str = "LAST_SYNC_TIME, LAST_CURSOR, CURRENT_TIME, TODAY, YESTERDAY, \
    DAYS_AGO_n, HOURS_AGO_n, MINUTES_AGO_n, PAGINATION_PAGE_SIZE, PAGINATION_START_ROW, \
    PAGINATION_START_PAGE";

/// The candidate nearest to `name` in edit distance, if it is near enough to be a typo (at
/// most a third of the name's length, and at least 1, changed).
pub fn closest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance by characters, a swap of two neighbours counting as one edit (`nmae` is one
/// edit from `name`): the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// What a placeholder of a template reads, for checks that look at a scheme as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    /// A field of the record (`{name}`, `{{a.b}}`): its name as written between the braces.
    Field(String),
    /// A field of the record around an array (`{{$parent.x}}`).
    Parent(String),
    /// One of Ferry's own variables.
    Ferry(String),
}

impl Template {
    /// Every placeholder of the template (expressions included), in order.
    pub fn placeholders(&self) -> Vec<Reads> {
        let mut out = Vec::new();
        let mut byte = 0;
        let source = self.source.as_str();
        while byte < source.len() {
            let rest = &source[byte..];
            if rest.starts_with('{')
                && let Some(Ok((hole, len))) = scan_placeholder(rest)
            {
                out.push(match hole.source {
                    Source::Field(name) => Reads::Field(name),
                    Source::Parent(name) => Reads::Parent(name),
                    _ => Reads::Ferry(rest[..len].to_string()),
                });
                byte += len;
                continue;
            }
            byte += rest.chars().next().map_or(1, char::len_utf8);
        }
        out
    }
}

/// Whether `name` is written the way Ferry's own variables are (`LAST_SYNC_TIME`): upper-case
/// ASCII letters, digits and `_`, with at least one `_`.
pub fn looks_like_ferry_variable(name: &str) -> bool {
    name.contains('_')
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// How a record placeholder is shown in reports: `{name}`, or `{{a.b}}` for a path.
pub fn shown(name: &str) -> String {
    if name.contains('.') {
        format!("{{{{{name}}}}}")
    } else {
        format!("{{{name}}}")
    }
}

/// Is `c` allowed in a placeholder name?
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | '-')
}

/// Try to read a placeholder at the start of `text` (which starts with `{`). `None`: not a
/// placeholder, the brace is literal text. `Some(Err)`: a placeholder with a bad formatter.
/// `Some(Ok((placeholder, byte length)))` otherwise.
pub(crate) fn scan_placeholder(text: &str) -> Option<Result<(Placeholder, usize), String>> {
    if let Some(inner) = text.strip_prefix("{{")
        && let Some(end) = inner.find("}}")
        && let Some(parsed) = placeholder_body(&inner[..end])
    {
        return Some(parsed.map(|p| (p, end + 4)));
    }
    let inner = text.strip_prefix('{')?;
    let end = inner.find('}')?;
    placeholder_body(&inner[..end]).map(|parsed| parsed.map(|p| (p, end + 2)))
}

fn placeholder_body(body: &str) -> Option<Result<Placeholder, String>> {
    if body.contains(['{', '}']) {
        return None;
    }
    let (name, format) = match body.split_once('|') {
        Some((name, format)) => (name.trim(), Some(format.trim())),
        None => (body.trim(), None),
    };
    if name.is_empty() || !name.chars().all(is_name_char) {
        return None;
    }
    let format = match format.map(Formatter::parse).transpose() {
        Ok(f) => f,
        Err(message) => return Some(Err(message)),
    };
    Some(Ok(Placeholder {
        source: Source::of(name),
        format,
    }))
}

impl Source {
    /// For a time name: its wall-clock value in the context's zone (None when out of range)
    /// and its default formatter. None for the other names.
    fn time(&self, ctx: &Context<'_>) -> Option<(Option<NaiveDateTime>, Formatter)> {
        let now = || ctx.now_local();
        let ago = |delta: Option<TimeDelta>| delta.and_then(|d| now().checked_sub_signed(d));
        let midnight = || now().date().and_time(NaiveTime::MIN);
        Some(match self {
            Source::CurrentTime => (Some(now()), Formatter::Datetime),
            Source::LastSync => {
                let local = match ctx.last_sync {
                    Some(t) => convert::local_time(t.naive_utc(), ctx.tz),
                    None => Some(DateTime::UNIX_EPOCH.naive_utc()),
                };
                (local, Formatter::Datetime)
            }
            Source::DaysAgo(n) => (ago(TimeDelta::try_days(i64::from(*n))), Formatter::Datetime),
            Source::HoursAgo(n) => (
                ago(TimeDelta::try_hours(i64::from(*n))),
                Formatter::Datetime,
            ),
            Source::MinutesAgo(n) => (
                ago(TimeDelta::try_minutes(i64::from(*n))),
                Formatter::Datetime,
            ),
            Source::Today => (Some(midnight()), Formatter::Date),
            Source::Yesterday => (
                TimeDelta::try_days(1).and_then(|d| midnight().checked_sub_signed(d)),
                Formatter::Date,
            ),
            _ => return None,
        })
    }

    fn of(name: &str) -> Source {
        let count = |prefix: &str| {
            name.strip_prefix(prefix)
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
        };
        match name {
            "PAGINATION_PAGE_SIZE" => Source::PageSize,
            "PAGINATION_START_ROW" => Source::StartRow,
            "PAGINATION_START_PAGE" => Source::StartPage,
            "CURRENT_TIME" => Source::CurrentTime,
            "LAST_SYNC_TIME" => Source::LastSync,
            "LAST_CURSOR" => Source::LastCursor,
            "TODAY" => Source::Today,
            "YESTERDAY" => Source::Yesterday,
            _ => {
                if let Some(n) = count("DAYS_AGO_") {
                    Source::DaysAgo(n)
                } else if let Some(n) = count("HOURS_AGO_") {
                    Source::HoursAgo(n)
                } else if let Some(n) = count("MINUTES_AGO_") {
                    Source::MinutesAgo(n)
                } else if let Some(path) = name.strip_prefix("$parent.") {
                    Source::Parent(path.to_string())
                } else {
                    Source::Field(name.to_string())
                }
            }
        }
    }
}

impl Placeholder {
    /// True when the placeholder reads the record (`{field}`, `{{a.b}}`, `{{$parent.x}}`), not
    /// one of Ferry's own names.
    fn names_record_data(&self) -> bool {
        matches!(self.source, Source::Field(_) | Source::Parent(_))
    }

    /// The placeholder's value in `ctx`.
    pub(crate) fn resolve(&self, ctx: &Context<'_>) -> Result<Value, FerryError> {
        if self.source == Source::LastCursor {
            return self.last_cursor(ctx);
        }
        if let Some((local, default)) = self.source.time(ctx) {
            let out_of_range = || FerryError::record("time out of range");
            let local = local.ok_or_else(out_of_range)?;
            let format = self.format.as_ref().unwrap_or(&default);
            return format.apply(local, ctx.tz).ok_or_else(out_of_range);
        }
        let page = |pick: fn(&PageVars) -> u64, name: &str| {
            ctx.page
                .as_ref()
                .map(|p| Value::from(pick(p)))
                .ok_or_else(|| {
                    FerryError::config(format!(
                        "{{{name}}} is only available in a paged source request"
                    ))
                })
        };
        let raw = match &self.source {
            Source::PageSize => page(|p| p.page_size, "PAGINATION_PAGE_SIZE")?,
            Source::StartRow => page(|p| p.start_row, "PAGINATION_START_ROW")?,
            Source::StartPage => page(|p| p.start_page, "PAGINATION_START_PAGE")?,
            Source::Parent(path) => ctx
                .parent
                .and_then(|p| lookup(p, path))
                .cloned()
                .unwrap_or(Value::Null),
            Source::Field(name) => {
                let found = ctx
                    .record
                    .and_then(|r| lookup(r, name))
                    .or_else(|| ctx.vars.and_then(|v| lookup_map(v, name)));
                if found.is_none()
                    && ctx.record.is_some()
                    && let Some(Ok(mut absent)) = ctx.absent.map(Mutex::lock)
                {
                    absent.push(shown(name));
                }
                found.cloned().unwrap_or(Value::Null)
            }
            // Time names were answered above.
            _ => Value::Null,
        };
        match &self.format {
            None => Ok(raw),
            Some(_) if raw.is_null() => Ok(Value::Null),
            Some(format) => match convert::to_naive_datetime(&raw, ctx.tz)
                .and_then(|local| format.apply(local, ctx.tz))
            {
                Some(shown) => Ok(shown),
                None => Err(FerryError::record(format!(
                    "cannot convert {} to datetime",
                    convert::quote_value(&raw)
                ))),
            },
        }
    }
}

impl Placeholder {
    /// `LAST_CURSOR`: a datetime (or a number shown with a time formatter) moved back by the
    /// overlap; a number without a formatter as it is. Before the first complete run it is the
    /// epoch, `1970-01-01 00:00:00`.
    fn last_cursor(&self, ctx: &Context<'_>) -> Result<Value, FerryError> {
        let out_of_range = || FerryError::record("LAST_CURSOR: time out of range");
        let local = match ctx.last_cursor {
            None => DateTime::UNIX_EPOCH.naive_utc(),
            Some(CursorValue::Time(t)) => TimeDelta::try_seconds(ctx.overlap_secs)
                .and_then(|overlap| t.checked_sub_signed(overlap))
                .ok_or_else(out_of_range)?,
            Some(number) => {
                let value = number.number().ok_or_else(out_of_range)?;
                if self.format.is_none() {
                    return Ok(value);
                }
                convert::to_naive_datetime(&value, ctx.tz)
                    .and_then(|t| t.checked_sub_signed(TimeDelta::try_seconds(ctx.overlap_secs)?))
                    .ok_or_else(|| {
                        FerryError::config(format!(
                            "LAST_CURSOR: the number {value} does not read as a time"
                        ))
                    })?
            }
        };
        let format = self.format.as_ref().unwrap_or(&Formatter::Datetime);
        format.apply(local, ctx.tz).ok_or_else(out_of_range)
    }
}

/// Find `path` in `value`: the key spelled exactly as `path` first, then the dotted path
/// (`a.b.0.c`, numbers index arrays).
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(found) = value.as_object().and_then(|m| m.get(path)) {
        return Some(found);
    }
    let mut current = value;
    for step in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(step)?,
            Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn lookup_map<'v>(map: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(found) = map.get(path) {
        return Some(found);
    }
    let (first, rest) = path.split_once('.')?;
    lookup(map.get(first)?, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const SH: Tz = chrono_tz::Asia::Shanghai;

    /// 2024-05-29 10:11:12 in Shanghai (02:11:12 UTC).
    fn now() -> DateTime<Tz> {
        SH.with_ymd_and_hms(2024, 5, 29, 10, 11, 12).unwrap()
    }

    fn render(src: &str, record: &Value) -> Value {
        let ctx = Context::new(now(), SH).with_record(record);
        Template::parse(src).unwrap().render(&ctx).unwrap()
    }

    #[test]
    fn reserved_rendering_writes_only_ferrys_own_variables_into_code() {
        let rec = json!({"name": "x'); DROP TABLE t; --"});
        let ctx = Context::new(now(), SH)
            .with_record(&rec)
            .with_page(PageVars {
                page_size: 100,
                start_row: 200,
                start_page: 3,
            });
        let sql = "select * from t where created_at >= '{{DAYS_AGO_1|datetime}}' and name = {name} \
                   and x = '{{a.b}}' and j = '{\"k\": 1}' limit {PAGINATION_PAGE_SIZE} offset :offset";
        assert_eq!(
            Template::parse(sql).unwrap().render_reserved(&ctx).unwrap(),
            "select * from t where created_at >= '2024-05-28 10:11:12' and name = {name} \
             and x = '{{a.b}}' and j = '{\"k\": 1}' limit 100 offset :offset"
        );
    }

    #[test]
    fn record_fields_and_text_around_them() {
        let rec = json!({"order_no_new": "FKTK-1", "name": "张三", "n": 5});
        assert_eq!(render("{order_no_new}(FKTK)", &rec), json!("FKTK-1(FKTK)"));
        assert_eq!(render("Hi {name}, n={n}!", &rec), json!("Hi 张三, n=5!"));
        assert_eq!(render("plain text", &rec), json!("plain text"));
        assert_eq!(render("", &rec), json!(""));
    }

    #[test]
    fn a_single_placeholder_keeps_the_json_type() {
        let rec = json!({"n": 5, "f": 1.5, "o": {"a": [1]}, "b": true, "z": null});
        assert_eq!(render("{n}", &rec), json!(5));
        assert_eq!(render("{f}", &rec), json!(1.5));
        assert_eq!(render("{{o}}", &rec), json!({"a": [1]}));
        assert_eq!(render("{b}", &rec), json!(true));
        assert_eq!(render("{z}", &rec), Value::Null);
        assert_eq!(render("[{z}]", &rec), json!("[]"));
        assert_eq!(render("{o}!", &rec), json!("{\"a\":[1]}!"));
    }

    #[test]
    fn missing_fields_render_null() {
        let rec = json!({"a": 1});
        assert_eq!(render("{missing}", &rec), Value::Null);
        assert_eq!(render("{{a.b.c}}", &rec), Value::Null);
        assert_eq!(render("x{missing}y", &rec), json!("xy"));
    }

    #[test]
    fn nested_paths_and_array_indices() {
        let rec = json!({
            "extend": {"processInstanceId": "abc-123"},
            "items": [{"name": "苹果"}, {"name": "梨"}],
            "dotted.key": "exact"
        });
        assert_eq!(
            render("{{extend.processInstanceId}}", &rec),
            json!("abc-123")
        );
        assert_eq!(render("{{items.1.name}}", &rec), json!("梨"));
        assert_eq!(render("{items.0.name}", &rec), json!("苹果"));
        assert_eq!(render("{{items.x.name}}", &rec), Value::Null);
        assert_eq!(render("{dotted.key}", &rec), json!("exact"));
    }

    #[test]
    fn braces_are_exact() {
        let rec = json!({"a": "A"});
        assert_eq!(render("{", &rec), json!("{"));
        assert_eq!(render("{a", &rec), json!("{a"));
        assert_eq!(render("a}", &rec), json!("a}"));
        assert_eq!(render("{{a}", &rec), json!("{A"));
        assert_eq!(render("{a}}", &rec), json!("A}"));
        assert_eq!(render("{{a}}}", &rec), json!("A}"));
        assert_eq!(render("{\"a\":1}", &rec), json!("{\"a\":1}"));
        assert_eq!(render("{a b}", &rec), json!("{a b}"));
        assert_eq!(render("{}", &rec), json!("{}"));
        assert_eq!(render("{{ a }}", &rec), json!("A"));
    }

    #[test]
    fn pagination_placeholders() {
        let ctx = Context::new(now(), SH).with_page(PageVars {
            page_size: 100,
            start_row: 200,
            start_page: 3,
        });
        let r = |s: &str| Template::parse(s).unwrap().render(&ctx).unwrap();
        assert_eq!(r("{PAGINATION_PAGE_SIZE}"), json!(100));
        assert_eq!(r("{PAGINATION_START_ROW}"), json!(200));
        assert_eq!(r("{{PAGINATION_START_PAGE}}"), json!(3));
        assert_eq!(r("limit {PAGINATION_PAGE_SIZE}"), json!("limit 100"));
        let no_page = Context::new(now(), SH);
        let err = Template::parse("{PAGINATION_PAGE_SIZE}")
            .unwrap()
            .render(&no_page)
            .unwrap_err();
        assert_eq!(
            err,
            FerryError::config(
                "{PAGINATION_PAGE_SIZE} is only available in a paged source request"
            )
        );
    }

    #[test]
    fn time_placeholders_and_formatters() {
        let rec = json!({});
        assert_eq!(
            render("{{CURRENT_TIME|datetime}}", &rec),
            json!("2024-05-29 10:11:12")
        );
        assert_eq!(
            render("{{CURRENT_TIME}}", &rec),
            json!("2024-05-29 10:11:12")
        );
        assert_eq!(render("{{CURRENT_TIME|date}}", &rec), json!("2024-05-29"));
        assert_eq!(
            render("{{CURRENT_TIME|timestamp}}", &rec),
            json!(1716948672)
        );
        assert_eq!(
            render("{{CURRENT_TIME|timestamp_ms}}", &rec),
            json!(1716948672000_i64)
        );
        assert_eq!(
            render("{{CURRENT_TIME|format:%Y%m%d}}", &rec),
            json!("20240529")
        );
        assert_eq!(
            render("{{CURRENT_TIME|format:%Y-%m-%d %H:%i}}", &rec),
            json!("2024-05-29 10:11")
        );
        assert_eq!(
            render("{{DAYS_AGO_1|datetime}}", &rec),
            json!("2024-05-28 10:11:12")
        );
        assert_eq!(render("{{DAYS_AGO_30|date}}", &rec), json!("2024-04-29"));
        assert_eq!(
            render("{{HOURS_AGO_12}}", &rec),
            json!("2024-05-28 22:11:12")
        );
        assert_eq!(
            render("{{MINUTES_AGO_15|datetime}}", &rec),
            json!("2024-05-29 09:56:12")
        );
        assert_eq!(render("{{TODAY}}", &rec), json!("2024-05-29"));
        assert_eq!(
            render("{{TODAY|datetime}}", &rec),
            json!("2024-05-29 00:00:00")
        );
        assert_eq!(render("{{YESTERDAY}}", &rec), json!("2024-05-28"));
        assert_eq!(render("{{YESTERDAY|timestamp}}", &rec), json!(1716825600));
        assert_eq!(
            render("created_at >= '{{DAYS_AGO_1|datetime}}'", &rec),
            json!("created_at >= '2024-05-28 10:11:12'")
        );
        // `DAYS_AGO_x` is not a time name: it is a (missing) record field.
        assert_eq!(render("{DAYS_AGO_x}", &rec), Value::Null);
    }

    #[test]
    fn now_is_shown_in_the_context_zone() {
        let utc_now = chrono_tz::UTC
            .with_ymd_and_hms(2024, 5, 29, 20, 0, 0)
            .unwrap();
        let ctx = Context::new(utc_now, SH);
        let out = Template::parse("{{CURRENT_TIME}}")
            .unwrap()
            .render(&ctx)
            .unwrap();
        assert_eq!(out, json!("2024-05-30 04:00:00"));
    }

    #[test]
    fn last_cursor_is_moved_back_by_the_overlap_when_it_is_a_time() {
        let render = |ctx: &Context<'_>, t: &str| Template::parse(t).unwrap().render(ctx).unwrap();
        let never = Context::new(now(), SH).with_last_cursor(None, 300);
        assert_eq!(
            render(&never, "{{LAST_CURSOR}}"),
            json!("1970-01-01 00:00:00")
        );
        let time = CursorValue::of(&json!("2024-05-29 08:00:00.5"), SH).unwrap();
        let ctx = Context::new(now(), SH).with_last_cursor(Some(time), 300);
        assert_eq!(
            render(&ctx, "{{LAST_CURSOR}}"),
            json!("2024-05-29 07:55:00")
        );
        assert_eq!(
            render(&ctx, "t >= '{{LAST_CURSOR|datetime}}'"),
            json!("t >= '2024-05-29 07:55:00'")
        );
        let id = CursorValue::of(&json!("18446744073709551615"), SH).unwrap();
        let ctx = Context::new(now(), SH).with_last_cursor(Some(id), 300);
        assert_eq!(
            render(&ctx, "{{LAST_CURSOR}}"),
            json!(18446744073709551615u64)
        );
        let ms = CursorValue::of(&json!(1717000000000i64), SH).unwrap();
        let ctx = Context::new(now(), SH).with_last_cursor(Some(ms), 300);
        assert_eq!(
            render(&ctx, "{{LAST_CURSOR|timestamp_ms}}"),
            json!(1717000000000i64 - 300_000)
        );
    }

    #[test]
    fn last_cursor_with_an_overlap_past_any_time_is_an_error_not_a_panic() {
        // Found by the property tests: `TimeDelta::seconds` panics past ±2^63 ms.
        for cursor in [json!("2024-05-29 08:00:00"), json!(1717000000000i64)] {
            let cursor = CursorValue::of(&cursor, SH).unwrap();
            for overlap in [i64::MAX, i64::MIN, 9_223_372_036_854_776] {
                let ctx = Context::new(now(), SH).with_last_cursor(Some(cursor), overlap);
                let err = Template::parse("{{LAST_CURSOR|datetime}}")
                    .unwrap()
                    .render(&ctx)
                    .unwrap_err();
                assert!(err.to_string().contains("LAST_CURSOR"), "{err}");
            }
        }
    }

    #[test]
    fn cursor_values_compare_as_numbers_or_times() {
        let of = |v: Value| CursorValue::of(&v, SH).unwrap();
        assert_eq!(of(json!(9)).is_after(&of(json!("10"))), Some(false));
        assert_eq!(of(json!(-1)).is_after(&of(json!(u64::MAX))), Some(false));
        assert_eq!(of(json!(2.5)).is_after(&of(json!(2))), Some(true));
        assert_eq!(
            of(json!("2024-05-29 10:00:00")).is_after(&of(json!("2024-05-29 9:59:59"))),
            Some(true)
        );
        assert_eq!(of(json!(1)).is_after(&of(json!("2024-05-29"))), None);
        assert!(CursorValue::of(&json!("abc"), SH).is_none());
        assert!(CursorValue::of(&Value::Null, SH).is_none());
    }

    #[test]
    fn last_sync_time_and_its_fallback() {
        let t = Template::parse("{{LAST_SYNC_TIME|datetime}}").unwrap();
        let ctx = Context::new(now(), SH);
        assert_eq!(t.render(&ctx).unwrap(), json!("1970-01-01 00:00:00"));
        let synced = SH.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap();
        let ctx = ctx.with_last_sync(Some(synced));
        assert_eq!(t.render(&ctx).unwrap(), json!("2024-05-01 08:00:00"));
        let ts = Template::parse("{{LAST_SYNC_TIME|timestamp}}").unwrap();
        assert_eq!(ts.render(&ctx).unwrap(), json!(1714521600));
    }

    #[test]
    fn formatters_on_record_fields() {
        let rec = json!({"ms": 1717000000000_i64, "iso": "2024-05-29T16:26:40Z", "bad": "soon", "none": null});
        assert_eq!(render("{ms|datetime}", &rec), json!("2024-05-30 00:26:40"));
        assert_eq!(render("{{iso|date}}", &rec), json!("2024-05-30"));
        assert_eq!(render("{iso|timestamp}", &rec), json!(1717000000));
        assert_eq!(render("{none|date}", &rec), Value::Null);
        let ctx = Context::new(now(), SH).with_record(&rec);
        let err = Template::parse("{bad|date}")
            .unwrap()
            .render(&ctx)
            .unwrap_err();
        assert_eq!(
            err,
            FerryError::record("cannot convert \"soon\" to datetime")
        );
    }

    #[test]
    fn unknown_formatter_is_a_parse_error_with_offset() {
        let err = Template::parse("ab{{CURRENT_TIME|weird}}").unwrap_err();
        assert_eq!(err.offset, 2);
        assert_eq!(
            err.to_string(),
            "unknown formatter \"weird\" (known: datetime, date, timestamp, timestamp_ms, format:PATTERN) at 2"
        );
    }

    #[test]
    fn vars_and_parent() {
        let vars = json!({"last_id": 42});
        let vars = vars.as_object().unwrap();
        let rec = json!({"x": 1});
        let parent = json!({"order": "SO-1"});
        let ctx = Context::new(now(), SH)
            .with_vars(vars)
            .with_record(&rec)
            .with_parent(&parent);
        let r = |s: &str| Template::parse(s).unwrap().render(&ctx).unwrap();
        assert_eq!(r("{last_id}"), json!(42));
        assert_eq!(r("{x}"), json!(1));
        assert_eq!(r("{{$parent.order}}-{x}"), json!("SO-1-1"));
    }

    #[test]
    fn function_values_are_expressions() {
        let rec = json!({"name": "O'Brien", "qty": 3, "code": "A1"});
        assert_eq!(
            render(
                "_function DATE_FORMAT(DATE_ADD(NOW(),INTERVAL - 25 DAY),'%Y-%m-%d 00:00:00')",
                &rec
            ),
            json!("2024-05-04 00:00:00")
        );
        // A placeholder is a string literal (quotes survive), a number stays a number.
        assert_eq!(
            render("_function CONCAT({name}, '!')", &rec),
            json!("O'Brien!")
        );
        assert_eq!(render("  _function {qty} * 2", &rec), json!(6));
        assert_eq!(render("_function '{code}-X'", &rec), json!("A1-X"));
        assert_eq!(
            render("_function IFNULL({missing}, 'none')", &rec),
            json!("none")
        );
        // Without the space it is not an expression.
        assert_eq!(render("_functionNOW()", &rec), json!("_functionNOW()"));
    }

    #[test]
    fn expression_errors_carry_offsets_in_the_whole_value() {
        let err = Template::parse("_function FOO(1)").unwrap_err();
        assert_eq!(err.to_string(), "unknown function FOO at 10");
        let ctx = Context::new(now(), SH);
        let err = Template::parse("_function 1 + 'x'")
            .unwrap()
            .render(&ctx)
            .unwrap_err();
        assert_eq!(
            err,
            FerryError::record("expression: 'x' is not a number at 14")
        );
    }

    #[test]
    fn render_value_walks_json_literals() {
        let rec = json!({"a": "A", "n": 2});
        let ctx = Context::new(now(), SH).with_record(&rec);
        let v = json!({"k": ["{a}", 1, {"m": "{n}"}], "t": true, "z": null});
        assert_eq!(
            render_value(&v, &ctx).unwrap(),
            json!({"k": ["A", 1, {"m": 2}], "t": true, "z": null})
        );
        assert_eq!(
            render_value(&json!([0.0001]), &ctx).unwrap(),
            json!([0.0001])
        );
        let err = render_value(&json!("{x|nope}"), &ctx).unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Config);
    }

    #[test]
    fn is_constant_tells_literal_text() {
        assert!(Template::parse("付款退款").unwrap().is_constant());
        assert!(!Template::parse("{a}").unwrap().is_constant());
        assert!(!Template::parse("_function NOW()").unwrap().is_constant());
        assert_eq!(Template::parse("x{a}").unwrap().source(), "x{a}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_templates_never_panic(src in "\\PC{0,60}") {
            let rec = json!({"a": "x", "b": {"c": [1, 2]}, "ms": 1717000000000_i64});
            let ctx = Context::new(now(), SH).with_record(&rec);
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&ctx);
            }
        }

        #[test]
        fn brace_soup_never_panics(picks in proptest::collection::vec(0..12_usize, 0..30)) {
            const PIECES: [&str; 12] =
                ["{", "}", "{{", "}}", "a", "b.c.0", "|", "date", "format:%Y", "_function ", "'", "中"];
            let src: String = picks.iter().map(|&i| PIECES[i]).collect();
            let rec = json!({"a": "x", "b": {"c": [1, 2]}});
            let ctx = Context::new(now(), SH).with_record(&rec);
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&ctx);
            }
        }
    }

    #[test]
    fn typos_get_the_closest_name_and_strangers_none() {
        assert_eq!(closest("datetme", &FORMATTERS), Some("datetime"));
        assert_eq!(closest("timestmp", &FORMATTERS), Some("timestamp"));
        assert_eq!(closest("nosuchformat", &FORMATTERS), None);
        assert_eq!(
            closest("LAST_SYNC_TME", &FERRY_VARIABLES),
            Some("LAST_SYNC_TIME")
        );
        assert_eq!(closest("NO_SUCH_VAR", &FERRY_VARIABLES), None);
        assert!(looks_like_ferry_variable("NO_SUCH_VAR"));
        assert!(!looks_like_ferry_variable("order_no"));
        assert!(!looks_like_ferry_variable("NAME"));
    }

    #[test]
    fn placeholders_lists_fields_parents_and_ferry_variables() {
        let t =
            Template::parse("_function CONCAT({a}, '{{b.c}}', {{$parent.d}}, {{TODAY}})").unwrap();
        assert_eq!(
            t.placeholders(),
            vec![
                Reads::Field("a".into()),
                Reads::Field("b.c".into()),
                Reads::Parent("d".into()),
                Reads::Ferry("{{TODAY}}".into())
            ]
        );
    }
}
