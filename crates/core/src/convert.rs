//! Type conversion of rendered values to a field's `type`.
//!
//! After a template renders, the field's `type` (string, int, float, decimal, date, datetime,
//! bool, object, array) turns the value into one canonical JSON shape, so that every sink sees
//! the same thing whatever the source sent: decimals as exact strings, dates as `YYYY-MM-DD`,
//! datetimes as `YYYY-MM-DD HH:MM:SS` in the scheme's time zone. A value that does not convert
//! is an error naming the value; the caller turns it into a record error with the field path.
//!
//! Bytes (`{"$bytes": "<base64>"}`, see [`crate::record`]): `string` gives their text when
//! they are valid UTF-8 and keeps them as bytes otherwise (so a MySQL target still gets the
//! exact bytes); `int` reads up to 8 bytes as a big-endian number (a MySQL `BIT` value); `object`
//! keeps the tagged object; the other types refuse them.
//!
//! Rules shared by every type: `null` stays `null`, and an empty (or blank) string becomes
//! `null` for every type but `string`, because form APIs (Yida) send `""` for an empty field.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike,
};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Number, Value};

use crate::record::as_bytes;
use crate::scheme::FieldType;

/// Canonical text form of a datetime.
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Canonical text form of a date.
pub const DATE_FORMAT: &str = "%Y-%m-%d";

/// Epoch numbers at or above this magnitude are milliseconds (13 digits, as DingTalk sends);
/// below it they are seconds. 1e11 seconds is the year 5138, 1e11 ms is March 1973.
const EPOCH_MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Longest value text quoted in an error message, so a huge blob does not flood logs.
const MAX_QUOTED_CHARS: usize = 80;

/// The lower-case name of a type, as written in scheme files.
pub fn type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "string",
        FieldType::Int => "int",
        FieldType::Float => "float",
        FieldType::Decimal => "decimal",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Bool => "bool",
        FieldType::Object => "object",
        FieldType::Array => "array",
    }
}

/// Parse a type name as written in scheme files (`string`, `int`, ...; case-insensitive).
pub fn parse_type_name(name: &str) -> Option<FieldType> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "string" => FieldType::String,
        "int" => FieldType::Int,
        "float" => FieldType::Float,
        "decimal" => FieldType::Decimal,
        "date" => FieldType::Date,
        "datetime" => FieldType::Datetime,
        "bool" => FieldType::Bool,
        "object" => FieldType::Object,
        "array" => FieldType::Array,
        _ => return None,
    })
}

/// Convert `value` to the canonical JSON shape of `kind`; the error is a message naming the
/// value, e.g. `cannot convert "abc" to int`.
pub fn convert(value: &Value, kind: FieldType, tz: Tz) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if kind != FieldType::String
        && let Value::String(s) = value
        && s.trim().is_empty()
    {
        return Ok(Value::Null);
    }
    let fail = || cannot(value, kind);
    match kind {
        FieldType::String => Ok(match as_bytes(value) {
            // Bytes that are text become that text; others stay bytes, never hex or base64 text.
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Value::String(text),
                Err(_) => value.clone(),
            },
            None => Value::String(crate::record::value_text(value)),
        }),
        FieldType::Int => to_int(value).map(Value::from).ok_or_else(fail),
        FieldType::Float => to_float(value).ok_or_else(fail),
        FieldType::Decimal => to_decimal(value)
            .map(|d| Value::String(d.to_string()))
            .ok_or_else(fail),
        FieldType::Date => to_naive_datetime(value, tz)
            .map(|dt| Value::String(date_text(&dt)))
            .ok_or_else(fail),
        FieldType::Datetime => to_naive_datetime(value, tz)
            .map(|dt| Value::String(datetime_text(&dt)))
            .ok_or_else(fail),
        FieldType::Bool => to_bool(value).map(Value::Bool).ok_or_else(fail),
        FieldType::Object => match value {
            Value::Object(_) => Ok(value.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(v),
                _ => Err(fail()),
            },
            _ => Err(fail()),
        },
        FieldType::Array => match value {
            Value::Array(_) => Ok(value.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Array(_)) => Ok(v),
                _ => Err(fail()),
            },
            _ => Err(fail()),
        },
    }
}

/// `cannot convert <value as JSON> to <type>`, the value cut to a readable length.
fn cannot(value: &Value, kind: FieldType) -> String {
    format!(
        "cannot convert {} to {}",
        quote_value(value),
        type_name(kind)
    )
}

/// The value as JSON text, cut after [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn quote_value(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_QUOTED_CHARS {
        text
    } else {
        let cut: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{cut}...")
    }
}

fn to_int(value: &Value) -> Option<i64> {
    if let Some(bytes) = as_bytes(value) {
        // A MySQL BIT value: big-endian bits.
        if bytes.len() > 8 {
            return None;
        }
        let n = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        return i64::try_from(n).ok();
    }
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else if n.is_u64() {
                None // above i64::MAX
            } else {
                // A float: accept only an exact integer (42.0), via its shortest text.
                decimal_of_number(n).and_then(integral_i64)
            }
        }
        Value::String(s) => parse_decimal_text(s.trim()).and_then(integral_i64),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn integral_i64(d: Decimal) -> Option<i64> {
    if d.fract().is_zero() {
        i64::try_from(d.trunc()).ok()
    } else {
        None
    }
}

fn to_float(value: &Value) -> Option<Value> {
    let f = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let t = s.trim();
            // Only plain decimal or scientific numbers; Rust also parses "inf" and "NaN".
            if !t
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
            {
                return None;
            }
            f64::from_str(t).ok()?
        }
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => return None,
    };
    Number::from_f64(f).map(Value::Number)
}

/// The exact decimal of a JSON number, from its text (serde_json writes floats as the
/// shortest text that round-trips, so `1234.5` stays `1234.5`).
fn decimal_of_number(n: &Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str_exact(&text)
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// Parse `[+-]digits[.digits]` (or `.digits`) exactly, keeping the scale (`12.30` stays
/// `12.30`). No thousands separators, no exponent, no comma decimal point.
pub(crate) fn parse_decimal_text(text: &str) -> Option<Decimal> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_ok(int_part) || !frac_part.is_none_or(digits_ok) {
        return None;
    }
    if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
        return None;
    }
    let normalized = text.strip_prefix('+').unwrap_or(text);
    Decimal::from_str_exact(normalized).ok()
}

fn to_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => decimal_of_number(n),
        Value::String(s) => parse_decimal_text(s.trim()),
        _ => None,
    }
}

fn to_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "是" => Some(true),
            "false" | "0" | "no" | "n" | "否" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Read a date or datetime as wall-clock time in `tz`. Accepts epoch seconds or milliseconds
/// (a number, by magnitude, or an all-digit string of 10 / 13 digits), ISO 8601 with an offset
/// or `Z` (converted into `tz`), `YYYY-MM-DD[ HH:MM[:SS[.fff]]]` with `-` or `/` (also with
/// `T`), and `YYYYMMDD` / `YYYYMMDDHHMMSS` (text or number). Naive texts are taken to be in
/// `tz` already.
pub fn to_naive_datetime(value: &Value, tz: Tz) -> Option<NaiveDateTime> {
    match value {
        Value::Number(n) => number_to_naive(decimal_of_number(n)?, tz),
        Value::String(s) => parse_datetime_text(s.trim(), tz),
        _ => None,
    }
}

/// A number as a datetime: a whole number of 8 or 14 digits is `YYYYMMDD[HHMMSS]` (as MySQL
/// reads it; as epoch seconds or milliseconds it would be 1970-1973 or after 2500), anything
/// else epoch seconds or milliseconds.
pub(crate) fn number_to_naive(d: Decimal, tz: Tz) -> Option<NaiveDateTime> {
    if d.fract().is_zero() && !d.is_sign_negative() {
        let digits = d.trunc().to_string();
        if matches!(digits.len(), 8 | 14)
            && let Some(dt) = parse_datetime_text(&digits, tz)
        {
            return Some(dt);
        }
    }
    epoch_to_naive(d, tz)
}

/// Epoch seconds or milliseconds (by magnitude) to wall-clock time in `tz`.
fn epoch_to_naive(epoch: Decimal, tz: Tz) -> Option<NaiveDateTime> {
    let whole = i64::try_from(epoch.trunc()).ok()?;
    let millis = if whole.abs() >= EPOCH_MILLIS_THRESHOLD {
        epoch.trunc()
    } else {
        epoch.checked_mul(Decimal::from(1000))?.trunc()
    };
    let millis = i64::try_from(millis).ok()?;
    let utc = DateTime::from_timestamp_millis(millis)?;
    local_time(utc.naive_utc(), tz)
}

/// `dt` as [`DATE_FORMAT`] writes it, without reading the format string on every call (the
/// hot path of every `date` field); years outside 0..=9999 go through chrono.
pub fn date_text(dt: &NaiveDateTime) -> String {
    use std::fmt::Write as _;
    let (year, month, day) = (dt.year(), dt.month(), dt.day());
    if !(0..=9999).contains(&year) {
        return dt.format(DATE_FORMAT).to_string();
    }
    let mut out = String::with_capacity(10);
    // Writing into a String cannot fail.
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    out
}

/// `dt` as [`DATETIME_FORMAT`] writes it (seconds, no fraction), as [`date_text`] does.
pub fn datetime_text(dt: &NaiveDateTime) -> String {
    use std::fmt::Write as _;
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        return dt.format(DATETIME_FORMAT).to_string();
    }
    let mut out = String::with_capacity(19);
    let _ = write!(
        out,
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    out
}

/// The common shape of a local date and time, `YYYY-MM-DD HH:MM:SS` with an optional `T` in
/// place of the space and an optional fraction of 1 to 9 digits, read without chrono's format
/// parser. `None` for anything else, including an impossible date or a leap second, which the
/// general path then reads (or refuses) exactly as before.
fn plain_local_datetime(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let value = digits(20, b.len())?;
            value * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 7)?, digits(8, 10)?)?;
    let time =
        NaiveTime::from_hms_nano_opt(digits(11, 13)?, digits(14, 16)?, digits(17, 19)?, nanos)?;
    Some(date.and_time(time))
}

fn parse_datetime_text(text: &str, tz: Tz) -> Option<NaiveDateTime> {
    if text.is_empty() {
        return None;
    }
    if let Some(dt) = plain_local_datetime(text) {
        return Some(dt);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return match text.len() {
            10 | 13 => epoch_to_naive(Decimal::from_str(text).ok()?, tz),
            8 => NaiveDate::parse_from_str(text, "%Y%m%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN)),
            14 => NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S").ok(),
            _ => None,
        };
    }
    // With an explicit offset: convert into the scheme's zone.
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return local_time(dt.naive_utc(), tz);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, fmt) {
            return local_time(dt.naive_utc(), tz);
        }
    }
    let normalized = text.replace('/', "-").replacen('T', " ", 1);
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&normalized, fmt) {
            return Some(dt);
        }
    }
    NaiveDate::parse_from_str(&normalized, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN))
}

/// Wall-clock time in `tz` of the UTC time `utc`; None past the ends of the calendar, where
/// chrono's own `naive_local` would panic.
pub(crate) fn local_time(utc: NaiveDateTime, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset)
}

/// Wall-clock time in `tz` to an instant; in a DST gap the later side is taken, in an overlap
/// the earlier (no zone the sources use has DST today, but history and the choice of zone can).
/// None within a day of the ends of the calendar, where applying an offset overflows.
pub(crate) fn resolve_local(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Tz>> {
    let margin = TimeDelta::try_days(1)?;
    naive.checked_sub_signed(margin)?;
    naive.checked_add_signed(margin)?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Some(dt),
        LocalResult::Ambiguous(early, _) => Some(early),
        LocalResult::None => {
            // Skip forward past the gap, an hour at most in practice.
            let later = naive.checked_add_signed(TimeDelta::try_hours(1)?)?;
            tz.from_local_datetime(&later).earliest()
        }
    }
}

#[cfg(test)]
mod tests {
    /// The shortcuts for the common shapes give exactly what chrono's format strings give.
    #[test]
    fn plain_datetimes_read_and_write_as_chrono_does() {
        let general = |text: &str| {
            let normalized = text.replace('/', "-").replacen('T', " ", 1);
            NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%d %H:%M:%S%.f").ok()
        };
        for text in [
            "2026-11-30 12:34:56",
            "2026-11-30T12:34:56",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59.999999999",
            "2024-02-29 08:00:00.5",
            "2024-02-29 08:00:00.000123",
            "1970-01-01 00:00:00.1234567",
        ] {
            let fast = plain_local_datetime(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, general(text), "{text}");
        }
        // Not the plain shape, or not a real time: left to the general reading.
        for text in [
            "2023-02-29 08:00:00",
            "2026-11-30 24:00:00",
            "2026-11-30 23:59:60",
            "2026-11-30 12:34:56.",
            "2026-11-30 12:34:56.1234567890",
            "2026-11-30 12:34:56Z",
            "2026-11-30 12:34:56+08:00",
            "2026/11/30 12:34:56",
            "2026-1-30 12:34:56",
            "２０２６-11-30 12:34:56",
            "2026-11-30 12:34",
        ] {
            assert_eq!(plain_local_datetime(text), None, "{text}");
        }
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(
            parse_datetime_text("2026-11-30 23:59:60", tz),
            general("2026-11-30 23:59:60"),
            "a leap second reads as chrono reads it"
        );
        for dt in [
            general("2026-11-30 12:34:56.789").unwrap(),
            general("0000-01-01 00:00:00").unwrap(),
            general("9999-12-31 23:59:59").unwrap(),
            NaiveDate::from_ymd_opt(-5, 3, 4)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap(),
            NaiveDate::from_ymd_opt(12345, 3, 4)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap(),
        ] {
            assert_eq!(datetime_text(&dt), dt.format(DATETIME_FORMAT).to_string());
            assert_eq!(date_text(&dt), dt.format(DATE_FORMAT).to_string());
        }
    }

    use super::*;
    use serde_json::json;

    const SH: Tz = chrono_tz::Asia::Shanghai;

    const EVERY_TYPE: [FieldType; 9] = [
        FieldType::String,
        FieldType::Int,
        FieldType::Float,
        FieldType::Decimal,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Bool,
        FieldType::Object,
        FieldType::Array,
    ];

    fn ok(v: Value, kind: FieldType) -> Value {
        convert(&v, kind, SH).unwrap()
    }

    fn err(v: Value, kind: FieldType) -> String {
        convert(&v, kind, SH).unwrap_err()
    }

    #[test]
    fn null_stays_null_for_every_type() {
        for kind in EVERY_TYPE {
            assert_eq!(ok(Value::Null, kind), Value::Null, "{kind:?}");
        }
    }

    #[test]
    fn empty_string_is_null_except_for_string() {
        assert_eq!(ok(json!(""), FieldType::Int), Value::Null);
        assert_eq!(ok(json!("  "), FieldType::Datetime), Value::Null);
        assert_eq!(ok(json!(""), FieldType::String), json!(""));
    }

    #[test]
    fn string_renders_scalars_as_text() {
        assert_eq!(ok(json!("张三🚀"), FieldType::String), json!("张三🚀"));
        assert_eq!(ok(json!(42), FieldType::String), json!("42"));
        assert_eq!(ok(json!(1234.5), FieldType::String), json!("1234.5"));
        assert_eq!(ok(json!(true), FieldType::String), json!("true"));
        assert_eq!(ok(json!({"a": 1}), FieldType::String), json!("{\"a\":1}"));
    }

    #[test]
    fn bytes_convert_to_text_only_when_they_are_text() {
        let bytes = |raw: &[u8]| crate::record::bytes_value(raw);
        assert_eq!(
            ok(bytes("张三🚀".as_bytes()), FieldType::String),
            json!("张三🚀")
        );
        assert_eq!(
            ok(bytes(&[0x00, 0xFF, 0x10]), FieldType::String),
            json!({"$bytes": "AP8Q"})
        );
        assert_eq!(ok(bytes(&[0x05]), FieldType::Int), json!(5));
        assert_eq!(ok(bytes(&[0x01, 0x00]), FieldType::Int), json!(256));
        assert_eq!(
            err(bytes(&[0xFF; 8]), FieldType::Int),
            "cannot convert {\"$bytes\":\"//////////8=\"} to int"
        );
        assert!(convert(&bytes(&[1]), FieldType::Decimal, SH).is_err());
    }

    #[test]
    fn int_accepts_integral_values_only() {
        assert_eq!(ok(json!("42"), FieldType::Int), json!(42));
        assert_eq!(ok(json!(" -7 "), FieldType::Int), json!(-7));
        assert_eq!(ok(json!(42), FieldType::Int), json!(42));
        assert_eq!(ok(json!(42.0), FieldType::Int), json!(42));
        assert_eq!(ok(json!("42.00"), FieldType::Int), json!(42));
        assert_eq!(ok(json!(true), FieldType::Int), json!(1));
        assert_eq!(
            err(json!(42.5), FieldType::Int),
            "cannot convert 42.5 to int"
        );
        assert_eq!(
            err(json!("4x2"), FieldType::Int),
            "cannot convert \"4x2\" to int"
        );
        assert_eq!(
            err(json!("abc"), FieldType::Int),
            "cannot convert \"abc\" to int"
        );
        assert_eq!(
            err(json!(u64::MAX), FieldType::Int),
            "cannot convert 18446744073709551615 to int"
        );
        assert_eq!(err(json!([1]), FieldType::Int), "cannot convert [1] to int");
    }

    #[test]
    fn float_gives_json_numbers() {
        assert_eq!(ok(json!("1.5"), FieldType::Float), json!(1.5));
        assert_eq!(ok(json!(2), FieldType::Float), json!(2.0));
        assert_eq!(ok(json!("1e3"), FieldType::Float), json!(1000.0));
        assert_eq!(
            err(json!("NaN"), FieldType::Float),
            "cannot convert \"NaN\" to float"
        );
        assert_eq!(
            err(json!("inf"), FieldType::Float),
            "cannot convert \"inf\" to float"
        );
        assert_eq!(
            err(json!("1,5"), FieldType::Float),
            "cannot convert \"1,5\" to float"
        );
    }

    #[test]
    fn decimal_keeps_exact_digits_as_a_string() {
        for (v, want) in [
            (json!("12.30"), "12.30"),
            (json!("1234.50"), "1234.50"),
            (json!("+0.10"), "0.10"),
            (json!(".5"), "0.5"),
            (json!("-3"), "-3"),
            (json!(1234.5), "1234.5"),
            (json!(42), "42"),
            (
                json!("12345678901234567890.123456"),
                "12345678901234567890.123456",
            ),
        ] {
            assert_eq!(ok(v.clone(), FieldType::Decimal), json!(want), "{v}");
        }
        for (v, message) in [
            (json!("12,3"), "cannot convert \"12,3\" to decimal"),
            (json!("1e5"), "cannot convert \"1e5\" to decimal"),
            (json!("."), "cannot convert \".\" to decimal"),
            (json!(true), "cannot convert true to decimal"),
        ] {
            assert_eq!(err(v, FieldType::Decimal), message);
        }
    }

    #[test]
    fn datetime_reads_epochs_iso_and_local_texts() {
        // 1717000000000 ms = 2024-05-29 16:26:40 UTC = 2024-05-30 00:26:40 in Shanghai.
        for v in [
            json!(1717000000000_i64),
            json!("1717000000000"),
            json!(1717000000),
            json!("1717000000"),
            json!("2024-05-29T16:26:40Z"),
            json!("2024-05-29T18:26:40.5+02:00"),
            json!("2024-05-29 18:26:40+0200"),
        ] {
            assert_eq!(
                ok(v.clone(), FieldType::Datetime),
                json!("2024-05-30 00:26:40"),
                "{v}"
            );
        }
        for (v, want) in [
            (json!("2024-05-29 08:01:02"), "2024-05-29 08:01:02"),
            (json!("2024-05-29T08:01:02"), "2024-05-29 08:01:02"),
            (json!("2024-05-29 08:01"), "2024-05-29 08:01:00"),
            (json!("2024/05/29 08:01:02"), "2024-05-29 08:01:02"),
            (json!("2024/5/9 8:01"), "2024-05-09 08:01:00"),
            (json!("2024-05-29"), "2024-05-29 00:00:00"),
            (json!("20240529"), "2024-05-29 00:00:00"),
            (json!(20240529), "2024-05-29 00:00:00"),
            (json!("20240529080102"), "2024-05-29 08:01:02"),
            (json!(20240529080102_i64), "2024-05-29 08:01:02"),
        ] {
            assert_eq!(ok(v.clone(), FieldType::Datetime), json!(want), "{v}");
        }
        // Eight digits that are no date are epoch seconds (1970).
        assert_eq!(ok(json!(20241399), FieldType::Date), json!("1970-08-23"));
        for (v, message) in [
            (
                json!("2024-13-01"),
                "cannot convert \"2024-13-01\" to datetime",
            ),
            (
                json!("yesterday"),
                "cannot convert \"yesterday\" to datetime",
            ),
            (json!("12345"), "cannot convert \"12345\" to datetime"),
            (json!(true), "cannot convert true to datetime"),
        ] {
            assert_eq!(err(v, FieldType::Datetime), message);
        }
    }

    #[test]
    fn date_keeps_the_day_in_the_zone() {
        assert_eq!(
            ok(json!(1717000000000_i64), FieldType::Date),
            json!("2024-05-30")
        );
        assert_eq!(
            convert(&json!(1717000000000_i64), FieldType::Date, chrono_tz::UTC).unwrap(),
            json!("2024-05-29")
        );
        assert_eq!(
            ok(json!("2024/05/29"), FieldType::Date),
            json!("2024-05-29")
        );
        assert_eq!(
            ok(json!("2024-05-29 23:59:59"), FieldType::Date),
            json!("2024-05-29")
        );
        assert_eq!(
            err(json!("2024-02-30"), FieldType::Date),
            "cannot convert \"2024-02-30\" to date"
        );
    }

    #[test]
    fn bool_accepts_words_digits_and_chinese() {
        for (v, b) in [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!("1"), true),
            (json!("0"), false),
            (json!("TRUE"), true),
            (json!("false"), false),
            (json!("yes"), true),
            (json!("No"), false),
            (json!("是"), true),
            (json!("否"), false),
        ] {
            assert_eq!(ok(v.clone(), FieldType::Bool), json!(b), "{v}");
        }
        assert_eq!(err(json!(2), FieldType::Bool), "cannot convert 2 to bool");
        assert_eq!(
            err(json!("maybe"), FieldType::Bool),
            "cannot convert \"maybe\" to bool"
        );
    }

    #[test]
    fn object_and_array_need_that_json_shape() {
        assert_eq!(
            ok(json!({"a": "某"}), FieldType::Object),
            json!({"a": "某"})
        );
        assert_eq!(ok(json!("{\"a\":1}"), FieldType::Object), json!({"a": 1}));
        assert_eq!(ok(json!([1, 2]), FieldType::Array), json!([1, 2]));
        assert_eq!(ok(json!("[1,2]"), FieldType::Array), json!([1, 2]));
        assert_eq!(
            err(json!("[1,2]"), FieldType::Object),
            "cannot convert \"[1,2]\" to object"
        );
        assert_eq!(
            err(json!({"a": 1}), FieldType::Array),
            "cannot convert {\"a\":1} to array"
        );
        assert_eq!(
            err(json!(5), FieldType::Object),
            "cannot convert 5 to object"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(200);
        let msg = err(json!(long), FieldType::Int);
        assert_eq!(
            msg,
            format!("cannot convert \"{}... to int", "x".repeat(79))
        );
    }

    #[test]
    fn type_names_round_trip() {
        assert_eq!(parse_type_name("DateTime"), Some(FieldType::Datetime));
        assert_eq!(parse_type_name("text"), None);
        assert_eq!(type_name(FieldType::Decimal), "decimal");
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let max_ms = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
        let min_ms = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
        for ms in [max_ms, min_ms, max_ms / 1000, min_ms / 1000] {
            for tz in [chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
                let _ = convert(&json!(ms), FieldType::Datetime, tz);
                let _ = convert(&json!(ms.to_string()), FieldType::Date, tz);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn conversions_never_panic(n in proptest::num::i64::ANY, f in proptest::num::f64::ANY, s in "\\PC{0,30}") {
            for value in [json!(n), json!(f), json!(s), json!(n.to_string())] {
                for kind in EVERY_TYPE {
                    for tz in [SH, chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
                        let _ = convert(&value, kind, tz);
                    }
                }
            }
        }
    }
}
