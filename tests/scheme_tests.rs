//! `ferry test`: the shipped seed schemes' test cases pass, a wrong expectation fails with the
//! exact per-field diff, a malformed test file is named with its key path, and `--update` writes
//! what came out. No service is touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ferry_test(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("test")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run ferry")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

#[test]
fn the_seed_schemes_cases_all_pass() {
    let out = ferry_test(&repo().join("config/ferry.toml"), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.ends_with("ferry test: 10 case(s) in 5 file(s): 10 passed, 0 failed\n"),
        "{stdout}"
    );
    // Every seed scheme has its test file, and none of them is read as a scheme.
    for scheme in [
        "contact-to-dingtalk",
        "jushuitan-shops-to-bi",
        "kingdee-token-refresh",
        "okki-users",
        "yida-refunds-to-mysql",
    ] {
        assert!(
            stdout.contains(&format!("{scheme}: schemes/tests/{scheme}.test.json\n")),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // The per-record error case of seed 001 is among them.
    assert!(
        stdout.contains("  ok    日期读不出的单据单独报错，其余照写\n"),
        "{stdout}"
    );
}

#[test]
fn one_scheme_runs_alone() {
    let out = ferry_test(
        &repo().join("config/ferry.toml"),
        &["--scheme", "contact-to-dingtalk"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("ferry test: 4 case(s) in 1 file(s): 4 passed, 0 failed\n")
    );
}

#[test]
fn a_wrong_expectation_fails_with_the_diff_per_field() {
    let case = repo().join("tests/fixtures/test-wrong-expectation");
    let out = ferry_test(&case.join("ferry.toml"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let expected = std::fs::read_to_string(case.join("expected-test.txt")).unwrap();
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn a_malformed_test_file_is_named_with_its_key_path() {
    let case = repo().join("tests/fixtures/test-malformed-file");
    let out = ferry_test(&case.join("ferry.toml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "schemes/tests/contacts.test.json: cases[0].expect.mesages: unknown key; did you mean \
         `messages`? (expected one of `records`, `messages`, `errors`); see `ferry test --help` \
         for the file format\n"
    );
    assert_eq!(
        text(&out.stdout),
        "ferry test: 0 case(s) in 0 file(s): 0 passed, 0 failed; 1 test file(s) could not be run\n"
    );
}

#[test]
fn update_writes_what_came_out_and_the_cases_then_pass() {
    let from = repo().join("tests/fixtures/test-wrong-expectation");
    let dir = std::env::temp_dir().join(format!("ferry-scheme-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("schemes/tests")).unwrap();
    for file in [
        "ferry.toml",
        "schemes/contacts.json",
        "schemes/refunds.json",
        "schemes/tests/contacts.test.json",
        "schemes/tests/refunds.test.json",
    ] {
        std::fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    let config = dir.join("ferry.toml");
    let out = ferry_test(&config, &["--update"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the run that updates still reports the failures"
    );
    let out = ferry_test(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let refunds = std::fs::read_to_string(dir.join("schemes/tests/refunds.test.json")).unwrap();
    assert!(
        refunds.contains("\"message\": \"cannot convert \\\"十二元\\\" to decimal\""),
        "{refunds}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15: `ferry test` renders WeCom and Feishu robot messages as their sinks would push them
/// and an `http` target's requests (`tests/fixtures/test-robot-vendors`: a WeCom `text` message
/// mentioning a mobile, a Feishu `post` with `@all`, two records a request to the API, Chinese
/// text and emoji), and the cases kept there pass.
#[test]
fn wecom_feishu_and_http_targets_are_rendered_and_their_cases_pass() {
    let case = repo().join("tests/fixtures/test-robot-vendors");
    let out = ferry_test(&case.join("ferry.toml"), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.ends_with("ferry test: 3 case(s) in 3 file(s): 3 passed, 0 failed\n"),
        "{stdout}"
    );
    let wecom: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("schemes/tests/contacts-wecom.test.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        wecom["cases"][0]["expect"]["messages"][0]["text"]["content"],
        "【用户留言】新留言（2 条）\n\n1.\n姓名: 李四 😀\n电话: 13912345678\n\n2.\n姓名: 王五「引号」\n电话: 13700001111"
    );
    let api: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("schemes/tests/contacts-api.test.json")).unwrap(),
    )
    .unwrap();
    let requests = &api["cases"][0]["expect"]["requests"];
    assert_eq!(requests.as_array().map(Vec::len), Some(2), "{requests}");
    assert_eq!(requests[1]["body"][0]["contact_id"], 10);
}
