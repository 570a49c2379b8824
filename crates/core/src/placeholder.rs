//! Placeholders (`{field}`, `{{a.b}}`, `{{CURRENT_TIME|datetime}}`, `{PAGINATION_PAGE_SIZE}`) and
//! the [`Context`] they resolve in: what value templates ([`crate::template`]) and `_function`
//! expressions ([`crate::expr`]) both read. It sits below both, so neither imports the other for
//! it: a template holds an expression, an expression holds placeholders, and both resolve them
//! here.

use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::convert;
use crate::date_format::date_format;
use crate::error::FerryError;

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

/// A `{...}` or `{{...}}` placeholder.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Placeholder {
    pub(crate) source: Source,
    format: Option<Formatter>,
}

/// What a placeholder names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
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
            Formatter::Datetime => Value::String(convert::datetime_text(&local)),
            Formatter::Date => Value::String(convert::date_text(&local)),
            Formatter::Timestamp => Value::from(convert::resolve_local(local, tz)?.timestamp()),
            Formatter::TimestampMs => {
                Value::from(convert::resolve_local(local, tz)?.timestamp_millis())
            }
            Formatter::Pattern(p) => Value::String(date_format(local, p)),
        })
    }
}

/// The formatters after `|` (besides `format:PATTERN`).
pub const FORMATTERS: [&str; 4] = ["datetime", "date", "timestamp", "timestamp_ms"];

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
    pub(crate) fn names_record_data(&self) -> bool {
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
