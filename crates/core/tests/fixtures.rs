//! Every malformed configuration under `tests/fixtures/<case>/` fails (or warns) with exactly
//! the problem lines its `expected.txt` holds, and the shipped `config/ferry.toml` is clean.
//!
//! A case is a directory with a `ferry.toml`, scheme files as it needs, an `expected.txt` (one
//! printed problem per line, as `ferry lint` prints them) and optionally an `env` file of
//! `NAME=value` lines: the only environment the case sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_core::files::read;
use ferry_core::lint::lint;
use ferry_core::problem::has_errors;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What `ferry lint` prints for `config`: the read errors, or the lint warnings.
fn lint_lines(config: &Path, env: &BTreeMap<String, String>) -> Vec<String> {
    let lookup = |name: &str| env.get(name).cloned();
    let problems = match read(config, &lookup) {
        Ok(files) => lint(&files),
        Err(problems) => problems,
    };
    problems.iter().map(ToString::to_string).collect()
}

fn read_env(dir: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("env")) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_fixture_reports_exactly_its_expected_problems() {
    let root = workspace_root().join("tests/fixtures");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("ferry.toml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} fixtures", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let actual = lint_lines(&case.join("ferry.toml"), &read_env(case));
        let expected: Vec<String> = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap_or_else(|err| panic!("{name}/expected.txt: {err}"))
            .lines()
            .map(str::to_string)
            .collect();
        if actual != expected {
            failures.push(format!(
                "--- {name}\nexpected:\n{}\nactual:\n{}\n",
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn shipped_config_loads_and_lints_clean_with_no_environment() {
    let config = workspace_root().join("config/ferry.toml");
    let files = read(&config, &|_| None).unwrap_or_else(|problems| {
        panic!(
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let names: Vec<&str> = files
        .schemes
        .iter()
        .map(|s| s.scheme.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "contact-to-dingtalk",
            "jushuitan-shops-to-bi",
            "kingdee-token-refresh",
            "okki-users",
            "yida-refunds-to-mysql",
        ]
    );
    let problems = lint(&files);
    assert!(!has_errors(&problems));
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines, Vec::<String>::new());
    assert_eq!(
        files.display_name(&files.scheme("okki-users").unwrap().file),
        "schemes/okki-users.json"
    );
}

#[test]
fn a_read_scheme_carries_its_zone_schedule_and_templates_parsed() {
    let config = workspace_root().join("config/ferry.toml");
    let files = read(&config, &|_| None).expect("the shipped config reads");
    let okki = files.scheme("okki-users").expect("okki-users is shipped");
    assert_eq!(okki.timezone, chrono_tz::Asia::Shanghai);
    let cron = okki.schedule.as_ref().expect("okki-users has a schedule");
    assert_eq!(cron.as_str(), "0 8 * * *");
    assert!(files.schemes.iter().all(|s| s.schedule.is_some()));
}

#[test]
fn shipped_config_takes_its_hosts_and_secrets_from_the_environment() {
    use ferry_core::config::Connection;
    let config = workspace_root().join("config/ferry.toml");
    let env = |name: &str| match name {
        "SANDBOX_URL" => Some("http://sandbox:9180".to_string()),
        "DINGTALK_ROBOT_SECRET" => Some("SEC0123".to_string()),
        "FERRY_AMQP_URL" => Some("amqp://ferry:s3cret@rabbitmq:5672/%2f".to_string()),
        _ => None,
    };
    let files = read(&config, &env).unwrap();
    let Some(Connection::DingTalkRobot(robot)) = files.connection("notify") else {
        panic!("notify is not a robot");
    };
    assert_eq!(robot.base_url, "http://sandbox:9180");
    assert_eq!(robot.secret.as_ref().unwrap().expose(), "SEC0123");
    assert_eq!(robot.access_token.expose(), "robot-sandbox-token");
    assert_eq!(
        files.config.broker.url.to_string(),
        "amqp://ferry:***@rabbitmq:5672/%2f"
    );
    assert_eq!(files.config.broker.prefetch, 16);
    assert_eq!(files.config.telemetry.otlp_endpoint, None);
}
