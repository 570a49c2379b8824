//! `ferry test`: run the test cases kept beside each scheme, touching no service.
//!
//! A scheme file `schemes/NAME.json` keeps its cases in `schemes/tests/NAME.test.json` (the
//! `schemes/*.json` glob does not descend into `tests/`, so a test file is never read as a
//! scheme). A case gives sample source records, as the source yields them, and what should come
//! out: the rendered request of each record (`records`), what the target is sent (`statements`
//! for a MySQL target: the SQL and its binds; `messages` for a robot: the message bodies;
//! `requests` for an `http` target: method, path, content type and body of each call), and
//! the records that fail, with their field path and message (`errors`).
//!
//! A case runs the code the pipeline runs, in its order:
//!
//! 1. the transform stage's [`Transformer::map_page`] (`formatResponse`, the request tree,
//!    identical repeats dropped), at the case's fixed `now`;
//! 2. the load messages, cut at the target's `batch_size` and encoded and decoded as on the
//!    queue;
//! 3. the sink's own rendering of each load message: `ferry_sinks::mysql::render_statements`
//!    or `ferry_sinks::robot::render_robot_messages` (any robot kind: DingTalk, WeCom, Feishu),
//!    the code `write` runs before it sends.
//!
//! Every expected key is compared with what came out, field by field; `errors` is always compared
//! (an unexpected failure fails the case). The differences are printed per case and per field.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, FixedOffset};
use ferry_core::config::Connection;
use ferry_core::connector::Sends;
use ferry_core::files::SchemeFile;
use ferry_core::mapping::record_id;
use ferry_core::{Envelope, FerryError, Record};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::cli::TestArgs;
use crate::roles::transform::{DEFAULT_LOAD_BATCH, Transformer};

/// The folder beside the scheme files that holds their test files.
pub const TEST_DIR: &str = "tests";
/// A scheme file `NAME.json` has its cases in `tests/NAME` + this.
pub const TEST_SUFFIX: &str = ".test.json";
/// The time templates such as `{{CURRENT_TIME|datetime}}` see when a test file sets no `now`.
pub const DEFAULT_NOW: &str = "2026-01-01T09:00:00+08:00";

/// Keys of a test file.
const FILE_KEYS: [&str; 3] = ["description", "now", "cases"];
/// Keys of a case.
const CASE_KEYS: [&str; 5] = ["name", "description", "now", "records", "expect"];
/// Keys of an expected error.
const ERROR_KEYS: [&str; 3] = ["record", "path", "message"];

/// What a target kind is sent, as a case's `expect` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// A MySQL target: `statements`.
    Statements,
    /// A robot target: `messages`.
    Messages,
    /// An `http` target: `requests`.
    Requests,
    /// The no-op target: nothing.
    Nothing,
}

impl Sent {
    fn key(self) -> Option<&'static str> {
        match self {
            Sent::Statements => Some("statements"),
            Sent::Messages => Some("messages"),
            Sent::Requests => Some("requests"),
            Sent::Nothing => None,
        }
    }

    fn expect_keys(self) -> Vec<&'static str> {
        let mut keys = vec!["records"];
        keys.extend(self.key());
        keys.push("errors");
        keys
    }
}

/// A test file, read and checked.
struct TestFile {
    /// As shown: relative to the configuration's directory.
    shown: String,
    cases: Vec<Case>,
}

struct Case {
    name: String,
    now: DateTime<FixedOffset>,
    records: Vec<Value>,
    /// The expected keys, as written (an error's `"path": null` dropped).
    expect: Map<String, Value>,
}

/// How the whole run went.
#[derive(Default)]
struct Tally {
    files: usize,
    passed: usize,
    failed: usize,
    malformed: usize,
}

/// `ferry test`: true when every case passed (and there was at least one).
pub fn run(config: &Path, args: TestArgs) -> anyhow::Result<bool> {
    let app = App::read(config)?;
    let schemes = app.schemes(&args.filter)?;
    let dir = app.files.dir.clone();
    let shown = |path: &Path| -> String {
        path.strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut tally = Tally::default();
    if args.filter.schemes.is_empty() {
        for orphan in orphan_test_files(&app.files.schemes) {
            tally.malformed += 1;
            eprintln!(
                "{}: no scheme file `{}` beside its `{TEST_DIR}/` folder; rename the test file \
                 after its scheme's file (`NAME.json` -> `{TEST_DIR}/NAME{TEST_SUFFIX}`)",
                shown(&orphan),
                scheme_file_of(&orphan)
                    .map(|p| shown(&p))
                    .unwrap_or_default()
            );
        }
    }
    for scheme in &schemes {
        let name = &scheme.scheme.name;
        let path = test_file_of(&scheme.file);
        if !path.exists() {
            println!("{name}: no test cases ({} does not exist)", shown(&path));
            continue;
        }
        let sent = match sent_by(&app, scheme) {
            Ok(sent) => sent,
            Err(e) => {
                tally.malformed += 1;
                eprintln!("{}: {e}", shown(&path));
                continue;
            }
        };
        let file = match read_test_file(&path, shown(&path), sent) {
            Ok(file) => file,
            Err(e) => {
                tally.malformed += 1;
                eprintln!("{e}; see `ferry test --help` for the file format");
                continue;
            }
        };
        tally.files += 1;
        let updated = run_file(&app, scheme, sent, &file, args.update, &mut tally)?;
        if let Some(expects) = updated {
            write_expectations(&path, &expects)
                .with_context(|| format!("writing {}", shown(&path)))?;
            println!("  updated {} with what came out", file.shown);
        }
    }
    let cases = tally.passed + tally.failed;
    let mut summary = format!(
        "ferry test: {cases} case(s) in {} file(s): {} passed, {} failed",
        tally.files, tally.passed, tally.failed
    );
    if tally.malformed > 0 {
        summary.push_str(&format!(
            "; {} test file(s) could not be run",
            tally.malformed
        ));
    }
    println!("{summary}");
    if cases == 0 && tally.malformed == 0 {
        println!(
            "ferry test: no test cases found; write them in `{TEST_DIR}/NAME{TEST_SUFFIX}` beside \
             a scheme file `NAME.json` (`ferry test --help` shows the format)"
        );
    }
    Ok(cases > 0 && tally.failed == 0 && tally.malformed == 0)
}

/// `schemes/NAME.json` -> `schemes/tests/NAME.test.json`.
fn test_file_of(scheme_file: &Path) -> PathBuf {
    let stem = scheme_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let dir = scheme_file.parent().unwrap_or(Path::new("."));
    dir.join(TEST_DIR).join(format!("{stem}{TEST_SUFFIX}"))
}

/// `schemes/tests/NAME.test.json` -> `schemes/NAME.json`.
fn scheme_file_of(test_file: &Path) -> Option<PathBuf> {
    let name = test_file.file_name()?.to_string_lossy();
    let stem = name.strip_suffix(TEST_SUFFIX)?;
    Some(test_file.parent()?.parent()?.join(format!("{stem}.json")))
}

/// Test files in the `tests/` folders beside the scheme files that belong to no scheme file.
fn orphan_test_files(schemes: &[SchemeFile]) -> Vec<PathBuf> {
    let dirs: BTreeSet<PathBuf> = schemes
        .iter()
        .filter_map(|s| Some(s.file.parent()?.join(TEST_DIR)))
        .collect();
    let wanted: BTreeSet<PathBuf> = schemes.iter().map(|s| test_file_of(&s.file)).collect();
    let mut orphans = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().ends_with(TEST_SUFFIX) && !wanted.contains(&path) {
                orphans.push(path);
            }
        }
    }
    orphans.sort();
    orphans
}

/// What the scheme's target is sent, as its connection's kind says.
fn sent_by(app: &App, scheme: &SchemeFile) -> Result<Sent, String> {
    let name = &scheme.scheme.target.connection;
    let Some(connection) = app.connection(name) else {
        return Err(format!(
            "the target connection `{name}` is not in ferry.toml"
        ));
    };
    let kind = connection.kind();
    match kind.sends {
        Sends::Statements => Ok(Sent::Statements),
        Sends::Messages => Ok(Sent::Messages),
        Sends::Nothing => Ok(Sent::Nothing),
        Sends::Requests => Ok(Sent::Requests),
    }
}

/// Read and check a test file; the error names the file and the key path.
fn read_test_file(path: &Path, shown: String, sent: Sent) -> Result<TestFile, String> {
    let at = |key: &str, message: String| format!("{shown}: {key}: {message}");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: not valid JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err(format!(
            "{shown}: expected a JSON object with `cases` (and optionally `now`, `description`)"
        ));
    };
    unknown_keys(&top, &FILE_KEYS, "").map_err(|(key, msg)| at(&key, msg))?;
    let file_now = match top.get("now") {
        None => parse_now(DEFAULT_NOW).map_err(|e| at("now", e))?,
        Some(v) => parse_now_value(v).map_err(|e| at("now", e))?,
    };
    let cases = match top.get("cases") {
        Some(Value::Array(cases)) if !cases.is_empty() => cases,
        Some(Value::Array(_)) => return Err(at("cases", "empty; add at least one case".into())),
        Some(_) => return Err(at("cases", "must be an array of cases".into())),
        None => return Err(format!("{shown}: no `cases` array")),
    };
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let here = format!("cases[{i}]");
        let Value::Object(case) = case else {
            return Err(at(&here, "must be an object".into()));
        };
        unknown_keys(case, &CASE_KEYS, &here).map_err(|(key, msg)| at(&key, msg))?;
        let name = match case.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err(at(
                    &format!("{here}.name"),
                    "a case needs a name (text)".into(),
                ));
            }
        };
        if !names.insert(name.clone()) {
            return Err(at(
                &format!("{here}.name"),
                format!("`{name}` names an earlier case too; give each case its own name"),
            ));
        }
        let now = match case.get("now") {
            None => file_now,
            Some(v) => parse_now_value(v).map_err(|e| at(&format!("{here}.now"), e))?,
        };
        let records = match case.get("records") {
            Some(Value::Array(records)) if !records.is_empty() => records.clone(),
            _ => {
                return Err(at(
                    &format!("{here}.records"),
                    "must be a non-empty array of source records (JSON objects)".into(),
                ));
            }
        };
        if let Some(j) = records.iter().position(|r| !r.is_object()) {
            return Err(at(
                &format!("{here}.records[{j}]"),
                "a source record must be a JSON object".into(),
            ));
        }
        let expect = read_expect(case.get("expect"), &format!("{here}.expect"), sent)
            .map_err(|(key, msg)| at(&key, msg))?;
        out.push(Case {
            name,
            now,
            records,
            expect,
        });
    }
    Ok(TestFile { shown, cases: out })
}

/// `Err((path, message))` for the first key of `object` not in `known`.
fn unknown_keys(
    object: &Map<String, Value>,
    known: &[&str],
    here: &str,
) -> Result<(), (String, String)> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err((join_path(here, key), unknown_key(key, known))),
    }
}

/// `unknown key; did you mean `messages`? (expected one of ...)`.
fn unknown_key(key: &str, known: &[&str]) -> String {
    let near = ferry_core::template::closest(key, known)
        .map(|near| format!("did you mean `{near}`? "))
        .unwrap_or_default();
    format!("unknown key; {near}(expected one of {})", list(known))
}

fn join_path(here: &str, key: &str) -> String {
    if here.is_empty() {
        key.to_string()
    } else {
        format!("{here}.{key}")
    }
}

fn parse_now_value(value: &Value) -> Result<DateTime<FixedOffset>, String> {
    match value {
        Value::String(s) => parse_now(s),
        other => Err(format!("`{other}` is not a time; write RFC 3339 text")),
    }
}

fn parse_now(text: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
        format!("`{text}` is not an RFC 3339 time with its offset (e.g. {DEFAULT_NOW})")
    })
}

/// Check a case's `expect` against what the target kind is sent.
fn read_expect(
    expect: Option<&Value>,
    here: &str,
    sent: Sent,
) -> Result<Map<String, Value>, (String, String)> {
    let Some(Value::Object(expect)) = expect else {
        return Err((
            here.to_string(),
            format!(
                "a case needs an `expect` object with any of {}",
                list(&sent.expect_keys())
            ),
        ));
    };
    let mut out = Map::new();
    for (key, value) in expect {
        let path = join_path(here, key);
        let known = ["records", "statements", "messages", "requests", "errors"];
        if !known.contains(&key.as_str()) {
            return Err((path, unknown_key(key, &sent.expect_keys())));
        }
        if !sent.expect_keys().contains(&key.as_str()) {
            let instead = match sent.key() {
                Some(k) => format!("expect `{k}` instead"),
                None => "the no-op target is sent nothing; expect `records` instead".to_string(),
            };
            return Err((
                path,
                format!("this scheme's target is not sent `{key}`; {instead}"),
            ));
        }
        let Value::Array(items) = value else {
            return Err((path, "must be an array".into()));
        };
        if key == "errors" {
            let mut errors = Vec::with_capacity(items.len());
            for (i, error) in items.iter().enumerate() {
                errors.push(read_error(error, &format!("{path}[{i}]"))?);
            }
            out.insert(key.clone(), Value::Array(errors));
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// An expected error: `{"record": "id", "path": "a.b", "message": "..."}` (`path` optional).
fn read_error(error: &Value, here: &str) -> Result<Value, (String, String)> {
    let Value::Object(error) = error else {
        return Err((
            here.to_string(),
            "an expected error is an object with `record`, `path` and `message`".into(),
        ));
    };
    unknown_keys(error, &ERROR_KEYS, here)?;
    for key in ["record", "message"] {
        if !error.get(key).is_some_and(Value::is_string) {
            return Err((join_path(here, key), "required, as text".into()));
        }
    }
    let mut out = error.clone();
    match error.get("path") {
        Some(Value::Null) => {
            out.remove("path");
        }
        None | Some(Value::String(_)) => {}
        Some(_) => return Err((join_path(here, "path"), "must be text".into())),
    }
    Ok(Value::Object(out))
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run every case of a file, printing each result. With `update`, the new `expect` of every
/// case (what came out), to be written back.
fn run_file(
    app: &App,
    scheme: &SchemeFile,
    sent: Sent,
    file: &TestFile,
    update: bool,
    tally: &mut Tally,
) -> anyhow::Result<Option<Vec<Map<String, Value>>>> {
    println!("{}: {}", scheme.scheme.name, file.shown);
    let transformer = Transformer::new(scheme.clone(), DEFAULT_LOAD_BATCH);
    let mut updated = Vec::with_capacity(file.cases.len());
    for case in &file.cases {
        let outcome = run_case(app, scheme, &transformer, case);
        let diffs = match &outcome {
            Ok(actual) => compare(&case.expect, actual),
            Err(stopped) => vec![stopped.clone()],
        };
        if diffs.is_empty() {
            tally.passed += 1;
            println!("  ok    {}", case.name);
        } else {
            tally.failed += 1;
            println!("  FAIL  {}", case.name);
            for line in diffs {
                println!("{}", scheme.redact(&indent(&line, "        ")));
            }
        }
        if update && let Ok(actual) = outcome {
            updated.push(new_expect(&case.expect, actual, sent));
        } else {
            updated.push(case.expect.clone());
        }
    }
    Ok(update.then_some(updated))
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What came out of a case, under the keys a case expects: `records`, `statements` or
/// `messages`, `errors`. `Err` when the scheme stops on a configuration error.
fn run_case(
    app: &App,
    scheme: &SchemeFile,
    transformer: &Transformer,
    case: &Case,
) -> Result<Map<String, Value>, String> {
    let id_field = scheme.scheme.source.metadata.id.as_deref();
    let inputs = &case.records;
    let records: Vec<Record> = inputs
        .iter()
        .map(|data| Record {
            id: record_id(data, id_field).unwrap_or_default(),
            data: data.clone(),
            source: None,
        })
        .collect();
    // A record is named by its id, or by its place in the case (`#2`) when it has none.
    let label = |record: &Record| -> String {
        if !record.id.is_empty() {
            return record.id.clone();
        }
        let data = record.source_value().unwrap_or_else(|| record.data.clone());
        match inputs.iter().position(|input| *input == data) {
            Some(i) => format!("#{}", i + 1),
            None => String::new(),
        }
    };
    let stops = |e: FerryError| format!("the scheme stops on a configuration error: {e}");
    let now = case.now.with_timezone(&transformer.timezone());
    let page = transformer.map_page(&records, now).map_err(stops)?;
    let mut errors: Vec<Value> = page
        .failed
        .iter()
        .map(|(record, e)| error_value(&label(record), e))
        .collect();
    let mut out = Map::new();
    out.insert(
        "records".into(),
        page.records
            .iter()
            .map(|r| json!({"id": label(r), "request": r.data}))
            .collect(),
    );
    let target = &scheme.scheme.target;
    let mut statements = Vec::new();
    let mut messages = Vec::new();
    let mut requests = Vec::new();
    for batch in page.records.chunks(transformer.batch_size()) {
        let batch = through_the_queue(&scheme.scheme.name, batch.to_vec()).map_err(stops)?;
        let failed = match app.connection(&target.connection) {
            Some(Connection::Mysql(_)) => {
                let (sent, failed) = ferry_sinks::mysql::render_statements(&target.metadata, batch)
                    .map_err(stops)?;
                statements.extend(sent.into_iter().map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .into_iter()
                        .map(|(_, binds)| {
                            Value::Object(s.params.iter().cloned().zip(binds).collect())
                        })
                        .collect();
                    json!({"sql": s.sql, "rows": rows})
                }));
                failed
            }
            Some(robot) if robot.kind().sends == Sends::Messages => {
                let (bodies, failed) = ferry_sinks::robot::render_robot_messages(
                    robot,
                    &target.metadata,
                    &scheme.scheme.name,
                    batch,
                )
                .map_err(stops)?;
                messages.extend(bodies);
                failed
            }
            Some(api) if api.kind().sends == Sends::Requests => {
                requests.extend(
                    ferry_sinks::http::render_requests(&target.metadata, &batch).map_err(stops)?,
                );
                Vec::new()
            }
            _ => Vec::new(),
        };
        errors.extend(failed.iter().map(|(r, e)| error_value(&label(r), e)));
    }
    match app.connection(&target.connection).map(|c| c.kind().sends) {
        Some(Sends::Statements) => {
            out.insert("statements".into(), Value::Array(statements));
        }
        Some(Sends::Messages) => {
            out.insert("messages".into(), Value::Array(messages));
        }
        Some(Sends::Requests) => {
            out.insert("requests".into(), Value::Array(requests));
        }
        _ => {}
    }
    out.insert("errors".into(), Value::Array(errors));
    Ok(out)
}

/// A load message's records as the loader reads them: encoded and decoded as on the queue.
fn through_the_queue(scheme: &str, records: Vec<Record>) -> Result<Vec<Record>, FerryError> {
    let envelope = Envelope {
        scheme: scheme.to_string(),
        run_id: "ferry-test".to_string(),
        seq: 0,
        records,
    };
    Envelope::from_bytes(&envelope.to_bytes())
        .map(|e| e.records)
        .map_err(|e| FerryError::config(format!("a load message does not decode: {e}")))
}

fn error_value(record: &str, e: &FerryError) -> Value {
    let mut out = Map::new();
    out.insert("record".into(), json!(record));
    if let Some(path) = e.path() {
        out.insert("path".into(), json!(path));
    }
    out.insert("message".into(), json!(e.message()));
    Value::Object(out)
}

/// The differences between what a case expects and what came out, one entry per field.
fn compare(expect: &Map<String, Value>, actual: &Map<String, Value>) -> Vec<String> {
    let mut diffs = Vec::new();
    let none = Value::Array(Vec::new());
    for (key, expected) in expect {
        diff(
            key,
            expected,
            actual.get(key).unwrap_or(&Value::Null),
            &mut diffs,
        );
    }
    if !expect.contains_key("errors") {
        diff(
            "errors",
            &none,
            actual.get("errors").unwrap_or(&none),
            &mut diffs,
        );
    }
    diffs
}

/// Walk `expected` and `actual` together, noting each field that differs under its path.
fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let here = join_path(path, key);
                match a.get(key) {
                    Some(av) => diff(&here, ev, av, out),
                    None => out.push(format!("{here}: expected {}, missing", show(ev))),
                }
            }
            for (key, av) in a {
                if !e.contains_key(key) {
                    out.push(format!(
                        "{}: not expected, got {}",
                        join_path(path, key),
                        show(av)
                    ));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{path}: expected {} item(s), got {}",
                    e.len(),
                    a.len()
                ));
            }
            for i in 0..e.len().max(a.len()) {
                let here = format!("{path}[{i}]");
                match (e.get(i), a.get(i)) {
                    (Some(ev), Some(av)) => diff(&here, ev, av, out),
                    (Some(ev), None) => out.push(format!("{here}: expected {}, missing", show(ev))),
                    (None, Some(av)) => out.push(format!("{here}: not expected, got {}", show(av))),
                    (None, None) => {}
                }
            }
        }
        (Value::String(e), Value::String(a))
            if e != a && (e.contains('\n') || a.contains('\n')) =>
        {
            out.push(format!(
                "{path}: text differs (- expected, + got):\n{}",
                line_diff(e, a)
            ));
        }
        (e, a) if e != a => out.push(format!("{path}: expected {}, got {}", show(e), show(a))),
        _ => {}
    }
}

/// A value on one line, as JSON.
fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The lines of two texts, `  ` kept, `- ` only expected, `+ ` only got (longest common
/// subsequence; the texts are message bodies, a few dozen lines).
fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.split('\n').collect();
    let a: Vec<&str> = actual.split('\n').collect();
    // lcs[i][j]: the longest common subsequence of e[i..] and a[j..].
    let mut lcs = vec![vec![0usize; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::new();
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            lines.push(format!("  {}", e[i]));
            i += 1;
            j += 1;
        } else if i < e.len() && (j == a.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(format!("- {}", e[i]));
            i += 1;
        } else {
            lines.push(format!("+ {}", a[j]));
            j += 1;
        }
    }
    lines.join("\n")
}

/// `--update`: the keys the case expected, now holding what came out; `errors` added when
/// records failed; the target's key added when the case expected none of the outputs.
fn new_expect(
    expect: &Map<String, Value>,
    mut actual: Map<String, Value>,
    sent: Sent,
) -> Map<String, Value> {
    let mut keys: Vec<String> = expect.keys().cloned().collect();
    if !keys.iter().any(|k| k != "errors") {
        keys.insert(0, sent.key().unwrap_or("records").to_string());
    }
    let failed = actual
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if failed && !keys.iter().any(|k| k == "errors") {
        keys.push("errors".to_string());
    }
    keys.into_iter()
        .filter_map(|k| {
            let v = actual.remove(&k)?;
            Some((k, v))
        })
        .collect()
}

/// Write each case's new `expect` into the test file, the rest of the file as it was.
fn write_expectations(path: &Path, expects: &[Map<String, Value>]) -> anyhow::Result<()> {
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    if let Some(cases) = file.get_mut("cases").and_then(Value::as_array_mut) {
        for (case, expect) in cases.iter_mut().zip(expects) {
            case["expect"] = Value::Object(expect.clone());
        }
    }
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_file_sits_in_tests_beside_its_scheme() {
        let scheme = Path::new("config/schemes/contact-to-dingtalk.json");
        let test = test_file_of(scheme);
        assert_eq!(
            test,
            Path::new("config/schemes/tests/contact-to-dingtalk.test.json")
        );
        assert_eq!(scheme_file_of(&test).as_deref(), Some(scheme));
        assert_ne!(
            test.parent(),
            scheme.parent(),
            "the schemes glob `schemes/*.json` does not reach it"
        );
    }

    #[test]
    fn differences_are_named_by_field_path() {
        let expected = json!({"a": [1, {"b": "x"}], "c": true});
        let actual = json!({"a": [1, {"b": "y"}, 3], "d": null});
        let mut out = Vec::new();
        diff("", &expected, &actual, &mut out);
        assert_eq!(
            out,
            [
                "a: expected 2 item(s), got 3",
                "a[1].b: expected \"x\", got \"y\"",
                "a[2]: not expected, got 3",
                "c: expected true, missing",
                "d: not expected, got null",
            ]
        );
    }

    #[test]
    fn texts_differ_line_by_line() {
        assert_eq!(
            line_diff(
                "标题\n- 姓名: 张三\n- 电话: 1",
                "标题\n- 姓名: 李四\n- 电话: 1"
            ),
            "  标题\n- - 姓名: 张三\n+ - 姓名: 李四\n  - 电话: 1"
        );
    }

    #[test]
    fn an_expect_key_the_target_is_not_sent_says_which_to_use() {
        let expect = json!({"messages": []});
        let err = read_expect(Some(&expect), "cases[0].expect", Sent::Statements).unwrap_err();
        assert_eq!(
            err,
            (
                "cases[0].expect.messages".to_string(),
                "this scheme's target is not sent `messages`; expect `statements` instead"
                    .to_string()
            )
        );
        let expect = json!({"mesages": []});
        let err = read_expect(Some(&expect), "cases[0].expect", Sent::Messages).unwrap_err();
        assert_eq!(
            err.1,
            "unknown key; did you mean `messages`? (expected one of `records`, `messages`, `errors`)"
        );
    }
}
