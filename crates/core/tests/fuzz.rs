//! Property tests of every place where input comes from outside Ferry: scheme files and
//! `ferry.toml` (with `${VAR}`), templates, `_function` expressions, message bodies, `{"$bytes"}`
//! values and scheme SQL. Arbitrary and near-valid input must give `Ok` or a clean error: never a
//! panic, a stack overflow or a hang. Where a round trip exists it is asserted.
//!
//! Each property runs a fixed number of cases so the set stays quick in CI; a longer run by hand:
//! `PROPTEST_CASES=100000 cargo test -p ferry-core --test fuzz --release`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use ferry_core::config::FerryConfig;
use ferry_core::config::env::substitute;
use ferry_core::convert::{convert, parse_type_name};
use ferry_core::expr;
use ferry_core::files::read;
use ferry_core::lint::lint;
use ferry_core::mapping::{Mapper, apply_format_response};
use ferry_core::record::{as_bytes, bytes_text, bytes_value, value_text};
use ferry_core::sql::{NamedSql, binds_for, split_insert};
use ferry_core::template::{Context, Template, render_value};
use ferry_core::{Envelope, FieldType, Record};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const SH: Tz = chrono_tz::Asia::Shanghai;

/// `default` cases per property, unless `PROPTEST_CASES` asks for another number.
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        // A failure found here becomes a named regression test, not a file of seeds.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

fn now() -> DateTime<Tz> {
    SH.with_ymd_and_hms(2026, 6, 1, 9, 30, 0).unwrap()
}

/// Pieces that sit near the edges of every grammar here: braces, formatters, expression calls,
/// `${VAR}`, quotes, SQL comments, huge numbers, Chinese text and emoji.
const PIECES: &[&str] = &[
    "{",
    "}",
    "{{",
    "}}",
    "{a",
    "{a}",
    "{{b.c.0}}",
    "{{$parent.d}}",
    "{a|",
    "{a|date",
    "{ms|datetime}",
    "|format:%Y-%m-%d %H:%i:%s",
    "{{CURRENT_TIME|datetime}}",
    "{{LAST_SYNC_TIME}}",
    "{{PAGE_NO}}",
    "_function ",
    "_function DATE_ADD(",
    "DATE_ADD(NOW(), INTERVAL ",
    "INTERVAL",
    " 1 DAY)",
    "DATE_FORMAT(",
    "'%Y-%m-%d %U %x'",
    "LPAD(",
    "SUBSTRING(",
    "CONCAT(",
    "IF(",
    "ROUND(",
    "FROM_UNIXTIME(",
    "(",
    ")",
    ",",
    "'",
    "\"",
    "`",
    "\\",
    "-",
    "--",
    "#",
    "/*",
    "*/",
    ":",
    ":name",
    "?",
    "${",
    "${VAR}",
    "${VAR:-默认}",
    "$${",
    "$",
    "99999999999999999999999999999999",
    "-9223372036854775808",
    "1e308",
    "0.000000000000000000000000000001",
    "NaN",
    "退款",
    "付款单 😀",
    "👨‍👩‍👧",
    "\u{feff}",
    "\u{0}",
    "\n",
    " ",
    "a",
    "[",
    "]",
];

/// Text from outside: arbitrary characters, or a soup of [`PIECES`], or deep nesting.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,60}",
        ".{0,40}",
        proptest::collection::vec(proptest::sample::select(PIECES), 0..24)
            .prop_map(|pieces| pieces.concat()),
        (
            proptest::sample::select(&["(", "{", "{{", "[", "_function (", "IF(1,", "-", "'"][..]),
            0..3000_usize
        )
            .prop_map(|(open, n)| open.repeat(n)),
    ]
}

/// A JSON value as a record (or a scheme) might hold it: huge and tiny numbers, odd text,
/// `{"$bytes": ...}` with valid and invalid base64, nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        text().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| bytes_value(&b)),
        text().prop_map(|t| json!({"$bytes": t})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(prop_oneof!["[a-z]{1,3}", text()], inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record as a source delivers it: the fields the shipped schemes read, with any values.
fn record_data() -> impl Strategy<Value = Value> {
    const FIELDS: &[&str] = &[
        "a",
        "b",
        "ms",
        "id",
        "name",
        "email",
        "message",
        "created_at",
        "amount",
        "shop_id",
        "shop_name",
        "user_id",
        "nickname",
        "formData",
        "instanceId",
        "originatorUserId",
        "createTimeGMT",
        "modifiedTimeGMT",
        "processInstanceId",
        "title",
        "data",
        "status",
    ];
    proptest::collection::btree_map(proptest::sample::select(FIELDS), json_value(), 0..12).prop_map(
        |m| {
            Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<String, Value>>(),
            )
        },
    )
}

fn env(name: &str) -> Option<String> {
    match name {
        "VAR" => Some("值 😀".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

// ---------------------------------------------------------------- templates and expressions

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn templates_parse_and_render_or_fail_cleanly(src in text(), data in record_data()) {
        let parent = json!({"d": "父"});
        let ctx = Context::new(now(), SH).with_record(&data).with_parent(&parent);
        if let Ok(template) = Template::parse(&src) {
            let _ = template.render(&ctx);
            let _ = template.render_reserved(&ctx);
            let _ = template.placeholders();
        }
        let _ = render_value(&Value::String(src.clone()), &ctx);
        let _ = render_value(&json!([src, {"k": data}]), &ctx);
    }

    #[test]
    fn a_template_without_placeholders_renders_itself(src in "[^{}]{0,60}") {
        prop_assume!(!ferry_core::template::is_expression(&src));
        let template = Template::parse(&src).unwrap();
        prop_assert!(template.is_constant());
        let ctx = Context::new(now(), SH);
        prop_assert_eq!(template.render(&ctx).unwrap(), Value::String(src.clone()));
        prop_assert_eq!(template.render_reserved(&ctx).unwrap(), src);
    }

    #[test]
    fn expressions_parse_and_evaluate_or_fail_cleanly(src in text(), data in record_data()) {
        let ctx = Context::new(now(), SH).with_record(&data);
        let _ = expr::eval(&src, &ctx);
        let _ = expr::eval(&format!("_function {src}"), &ctx);
    }

    #[test]
    fn near_valid_calls_evaluate_or_fail_cleanly(
        func in proptest::sample::select(FUNCTIONS),
        args in proptest::collection::vec(
            prop_oneof![
                text(),
                any::<i64>().prop_map(|n| n.to_string()),
                Just("99999999999999999999999999999.5".to_string()),
                Just("-1e400".to_string()),
                Just("{a}".to_string()),
                Just("'2026-02-29 25:61:61'".to_string()),
                Just("NOW()".to_string()),
                Just("INTERVAL 9223372036854775807 YEAR".to_string()),
                Just("INTERVAL -9223372036854775808 MICROSECOND".to_string()),
                Just("'付款 😀'".to_string()),
            ],
            0..4,
        ),
        close in any::<bool>(),
        data in record_data(),
    ) {
        let ctx = Context::new(now(), SH).with_record(&data);
        let src = format!(
            "_function {func}({}{}",
            args.join(", "),
            if close { ")" } else { "" }
        );
        let _ = expr::eval(&src, &ctx);
        let _ = Template::parse(&src).map(|t| t.render(&ctx));
    }
}

const FUNCTIONS: &[&str] = &[
    "NOW",
    "SYSDATE",
    "CURRENT_TIMESTAMP",
    "CURDATE",
    "CURRENT_DATE",
    "DATE",
    "DATE_ADD",
    "ADDDATE",
    "DATE_SUB",
    "SUBDATE",
    "DATE_FORMAT",
    "DATEDIFF",
    "UNIX_TIMESTAMP",
    "FROM_UNIXTIME",
    "CONCAT",
    "CONCAT_WS",
    "IFNULL",
    "COALESCE",
    "IF",
    "NULLIF",
    "ROUND",
    "FLOOR",
    "CEIL",
    "CEILING",
    "ABS",
    "REPLACE",
    "SUBSTRING",
    "SUBSTR",
    "LEFT",
    "RIGHT",
    "LPAD",
    "RPAD",
    "UPPER",
    "UCASE",
    "LOWER",
    "LCASE",
    "TRIM",
    "LTRIM",
    "RTRIM",
    "LENGTH",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "NO_SUCH_FUNCTION",
];

// ---------------------------------------------------------------- values and conversion

const TYPES: &[FieldType] = &[
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

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn values_convert_to_every_type_or_fail_cleanly(value in json_value(), name in text()) {
        for &kind in TYPES {
            let _ = convert(&value, kind, SH);
            let _ = convert(&value, kind, chrono_tz::Pacific::Kiritimati);
        }
        let _ = parse_type_name(&name);
        let _ = value_text(&value);
    }

    #[test]
    fn bytes_round_trip_and_any_bytes_object_is_safe(bytes in proptest::collection::vec(any::<u8>(), 0..64), tag in text()) {
        prop_assert_eq!(as_bytes(&bytes_value(&bytes)), Some(bytes.clone()));
        let shown = bytes_text(&bytes);
        match std::str::from_utf8(&bytes) {
            Ok(text) => prop_assert_eq!(shown, text),
            Err(_) => prop_assert_eq!(shown.len(), 2 + 2 * bytes.len()),
        }
        let tagged = json!({"$bytes": tag});
        let _ = as_bytes(&tagged);
        let _ = value_text(&tagged);
    }
}

// ---------------------------------------------------------------- message bodies

fn record() -> impl Strategy<Value = Record> {
    (text(), record_data(), proptest::option::of(record_data())).prop_map(|(id, data, source)| {
        match source {
            Some(source) => Record::new(id, data).rendered_from(&source),
            None => Record::new(id, data),
        }
    })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        text(),
        text(),
        any::<u64>(),
        proptest::collection::vec(record(), 0..5),
    )
        .prop_map(|(scheme, run_id, seq, records)| Envelope {
            scheme,
            run_id,
            seq,
            records,
        })
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn envelopes_round_trip(envelope in envelope()) {
        let bytes = envelope.to_bytes();
        prop_assert_eq!(Envelope::from_bytes(&bytes).unwrap(), envelope);
    }

    #[test]
    fn any_body_decodes_or_fails_cleanly(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        envelope in envelope(),
        cut in any::<proptest::sample::Index>(),
        flip in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let _ = Envelope::from_bytes(&bytes);
        let mut body = envelope.to_bytes();
        let at = flip.index(body.len());
        body[at] = byte; // possibly invalid UTF-8 in the middle of a string
        let _ = Envelope::from_bytes(&body);
        body.truncate(cut.index(body.len()));
        let _ = Envelope::from_bytes(&body);
    }

    #[test]
    fn deeply_nested_bodies_fail_cleanly(depth in 0..100_000_usize, open in proptest::sample::select(&["[", "{\"a\":"][..])) {
        let body = format!(
            r#"{{"scheme":"s","run_id":"r","seq":1,"records":[{{"id":"1","data":{}}}]}}"#,
            open.repeat(depth)
        );
        prop_assert!(Envelope::from_bytes(body.as_bytes()).is_err());
    }
}

// ---------------------------------------------------------------- scheme SQL

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn scheme_sql_parses_or_fails_cleanly(
        src in text(),
        head in proptest::sample::select(&[
            "INSERT INTO t (a, b) VALUES ",
            "REPLACE INTO `表` VALUE ",
            "insert into t values",
            "SELECT * FROM t WHERE id > ",
            "UPDATE t SET a = ",
        ][..]),
        data in record_data(),
    ) {
        let Value::Object(data) = data else { unreachable!() };
        for sql in [src.clone(), format!("{head}{src}"), format!("{head}(:a, :名){src}")] {
            if let Ok(named) = NamedSql::parse(&sql) {
                let _ = split_insert(&named.text);
                let _ = binds_for(&named, &data);
            }
            let _ = split_insert(&sql);
        }
    }
}

// ---------------------------------------------------------------- ferry.toml and `${VAR}`

fn shipped(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Replace the value of the line `at` (counted among `key = value` lines) with `value`.
fn with_value(toml: &str, at: proptest::sample::Index, value: &str) -> String {
    let lines: Vec<&str> = toml.lines().collect();
    let assignments: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" = "))
        .collect();
    let target = assignments[at.index(assignments.len())];
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == target {
                let key = line.split(" = ").next().unwrap_or_default();
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn env_substitution_is_clean(src in text()) {
        let _ = substitute(&src, &env);
        let _ = substitute(&src, &|_| Some("${VAR}".to_string()));
    }

    #[test]
    fn any_ferry_toml_parses_or_fails_cleanly(
        src in text(),
        at in any::<proptest::sample::Index>(),
        cut in any::<proptest::sample::Index>(),
        value in prop_oneof![
            text().prop_map(|t| format!("{t:?}")),
            text(),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("99999999999999999999999".to_string()),
            Just("-1".to_string()),
            Just("[1, -2, 99999999999]".to_string()),
            Just("{ a = 1 }".to_string()),
            Just(format!("{}1{}", "[".repeat(5000), "]".repeat(5000))),
            Just(format!("{}1{}", "{a=".repeat(5000), "}".repeat(5000))),
        ],
    ) {
        let _ = FerryConfig::parse(&src, "ferry.toml", &env);
        let toml = shipped("ferry.toml");
        let _ = FerryConfig::parse(&with_value(&toml, at, &value), "ferry.toml", &env);
        let mut end = cut.index(toml.len());
        while !toml.is_char_boundary(end) {
            end -= 1;
        }
        let _ = FerryConfig::parse(&toml[..end], "ferry.toml", &env);
    }
}

// ---------------------------------------------------------------- scheme files, files and linted

/// A copy of the shipped `config/` in a directory of its own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferry-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(path.join("schemes")).unwrap();
        std::fs::write(path.join("ferry.toml"), shipped("ferry.toml")).unwrap();
        Dir(path)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join("schemes").join(name), bytes).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SEEDS: &[&str] = &[
    "contact-to-dingtalk.json",
    "jushuitan-shops-to-bi.json",
    "kingdee-token-refresh.json",
    "okki-users.json",
    "yida-refunds-to-mysql.json",
];

/// Every value slot of `value` (objects' values and array elements), depth first.
fn slots(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(slots).sum(),
        Value::Object(map) => map.values().map(slots).sum(),
        _ => 0,
    }
}

/// Replace the `n`-th slot of `value` (in [`slots`] order) with `with`.
fn replace_slot(value: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *value = with.clone();
        return true;
    }
    *n -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|v| replace_slot(v, n, with)),
        Value::Object(map) => map.values_mut().any(|v| replace_slot(v, n, with)),
        _ => false,
    }
}

/// Load (and, when it loads, lint) the directory; then map records through every scheme, as
/// `ferry transform` does.
fn load_lint_and_map(dir: &Dir, records: &[Value]) {
    let files = match read(&dir.0.join("ferry.toml"), &env) {
        Ok(files) => files,
        Err(problems) => {
            for problem in &problems {
                let _ = problem.to_string();
            }
            return;
        }
    };
    let _ = lint(&files);
    for scheme in &files.schemes {
        let tz = ferry_core::files::timezone(&scheme.scheme.timezone).unwrap_or(SH);
        let Ok(mapper) = Mapper::new(&scheme.scheme.target.metadata) else {
            continue;
        };
        for data in records {
            let mut data = data.clone();
            let rules = &scheme.scheme.source.metadata.format_response;
            if apply_format_response(rules, &mut data, tz).is_ok() {
                let record = Record::new("1", data);
                let _ = mapper.map(&record, &Context::new(now(), tz));
            }
        }
        let _ = scheme.redact("secret");
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_scheme_with_any_value_anywhere_loads_or_fails_cleanly(
        seed in proptest::sample::select(SEEDS),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), prop_oneof![
            3 => text().prop_map(Value::from),
            1 => json_value(),
        ]), 1..4),
        records in proptest::collection::vec(record_data(), 0..3),
    ) {
        let mut scheme: Value = serde_json::from_str(&shipped(&format!("schemes/{seed}"))).unwrap();
        for (at, with) in &edits {
            let mut n = at.index(slots(&scheme));
            replace_slot(&mut scheme, &mut n, with);
        }
        let dir = Dir::new();
        dir.write(seed, serde_json::to_string_pretty(&scheme).unwrap().as_bytes());
        load_lint_and_map(&dir, &records);
    }

    #[test]
    fn any_scheme_file_bytes_load_or_fail_cleanly(
        seed in proptest::sample::select(SEEDS),
        cut in any::<proptest::sample::Index>(),
        flip in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
        src in text(),
    ) {
        let text = shipped(&format!("schemes/{seed}"));
        let mut bytes = text.as_bytes().to_vec();
        let at = flip.index(bytes.len());
        bytes[at] = byte; // possibly invalid UTF-8
        let dir = Dir::new();
        dir.write("flipped.json", &bytes);
        dir.write("cut.json", &text.as_bytes()[..cut.index(text.len())]);
        dir.write("text.json", src.as_bytes());
        load_lint_and_map(&dir, &[]);
    }
}

// ---------------------------------------------------------------- schedules, globs, cursors, paging

const CRON_PIECES: &[&str] = &[
    "0",
    "5",
    "59",
    "60",
    "31",
    "2",
    "12",
    "7",
    "*",
    "*/",
    "/",
    "-",
    ",",
    "L",
    "W",
    "#",
    "?",
    "LW",
    "5L",
    "MON",
    "SUN-SAT",
    "JAN",
    "99999999999",
    " ",
    "  ",
    "\t",
    "@daily",
    "@hourly",
    "日",
];

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn any_schedule_parses_and_finds_its_next_time_or_fails_cleanly(
        pieces in proptest::collection::vec(proptest::sample::select(CRON_PIECES), 0..16),
        src in text(),
    ) {
        for expr in [pieces.concat(), pieces.join(" "), src] {
            if let Ok(cron) = ferry_core::files::schedule(&expr) {
                // As the extract role asks it: the next run after now, in the scheme's zone.
                let _ = cron.find_next_occurrence(&now(), false);
            }
        }
    }

    #[test]
    fn any_schemes_glob_loads_or_fails_cleanly(
        pattern in prop_oneof![
            text(),
            proptest::collection::vec(
                proptest::sample::select(&["schemes", "/", "*", "**", "?", "[", "]", "[!", "{", "}", "..", "退款", "\\", ".json"][..]),
                0..10,
            ).prop_map(|p| p.concat()),
        ],
    ) {
        let dir = Dir::new();
        dir.write("x.json", b"{}");
        let toml = shipped("ferry.toml").replacen(
            "schemes = \"schemes/*.json\"",
            &format!("schemes = {:?}", pattern),
            1,
        );
        std::fs::write(dir.0.join("ferry.toml"), toml).unwrap();
        load_lint_and_map(&dir, &[]);
    }

    #[test]
    fn cursor_values_compare_without_panic(a in json_value(), b in json_value()) {
        let a = ferry_core::template::CursorValue::of(&a, SH);
        let b = ferry_core::template::CursorValue::of(&b, SH);
        if let (Some(a), Some(b)) = (a, b) {
            let _ = a.is_after(&b);
            let _ = b.is_after(&a);
        }
    }

    #[test]
    fn source_requests_render_with_any_paging_and_cursor(
        seed in proptest::sample::select(SEEDS),
        page_size in any::<u64>(),
        start_row in any::<u64>(),
        start_page in any::<u64>(),
        cursor in prop_oneof![
            json_value(),
            "[0-9]{4}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0_i64..4_000_000_000_000).prop_map(Value::from),
        ],
        overlap in prop_oneof![any::<i64>(), -1_000_000_000_i64..1_000_000_000],
        last_sync in proptest::option::of(-8_000_000_000_000_i64..8_000_000_000_000),
    ) {
        let scheme: ferry_core::Scheme =
            serde_json::from_str(&shipped(&format!("schemes/{seed}"))).unwrap();
        let page = ferry_core::template::PageVars { page_size, start_row, start_page };
        let last_sync = last_sync.and_then(|s| SH.timestamp_opt(s, 0).single());
        let ctx = Context::new(now(), SH)
            .with_page(page)
            .with_last_sync(last_sync)
            .with_last_cursor(ferry_core::template::CursorValue::of(&cursor, SH), overlap);
        let _ = ferry_core::mapping::render_tree(&scheme.source.metadata.request, &ctx);
        for text in [
            "{{PAGINATION_PAGE_SIZE}} {{PAGINATION_START_ROW}} {{PAGINATION_START_PAGE}}",
            "{{LAST_SYNC_TIME}}|{{LAST_CURSOR}}|{{LAST_SYNC_TIME|timestamp}}",
            "{{LAST_CURSOR|datetime}} {{LAST_CURSOR|timestamp_ms}} {{LAST_CURSOR|date}}",
            "_function DATE_SUB('{{LAST_SYNC_TIME}}', INTERVAL {{PAGINATION_START_ROW}} SECOND)",
        ] {
            let _ = Template::parse(text).map(|t| t.render(&ctx));
        }
    }
}
