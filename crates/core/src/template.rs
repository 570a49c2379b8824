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

use serde_json::{Map, Value};

use crate::error::FerryError;
use crate::expr;
pub use crate::placeholder::{Context, CursorValue, FORMATTERS, PageVars, closest, lookup, shown};
use crate::placeholder::{Placeholder, Source, scan_placeholder};
use crate::record::value_text;

/// Prefix that marks a value as an expression.
pub const FUNCTION_PREFIX: &str = "_function ";

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};
    use chrono_tz::Tz;
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
