//! The binary's offline commands, as a user runs them: `lint`, `preview`, `--help`, and the
//! errors for a wrong scheme name. No service is touched.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ferry(config: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_CONFIG", repo().join(config))
        .output()
        .expect("run ferry")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

#[test]
fn the_shipped_configuration_lints_clean() {
    let out = ferry("config/ferry.toml", &["lint"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("0 error(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn lint_names_the_file_and_field_and_exits_1() {
    let out = ferry("tests/fixtures/scheme-bad-schedule/ferry.toml", &["lint"]);
    assert_eq!(out.status.code(), Some(1));
    let expected =
        std::fs::read_to_string(repo().join("tests/fixtures/scheme-bad-schedule/expected.txt"))
            .unwrap();
    assert_eq!(text(&out.stdout).trim_end(), expected.trim_end());
}

#[test]
fn preview_of_seed_001_renders_the_refund_row_and_reports_the_bad_record() {
    let input = repo().join("tests/fixtures/preview/yida-refunds.json");
    let out = ferry(
        "config/ferry.toml",
        &[
            "preview",
            "--scheme",
            "yida-refunds-to-mysql",
            "--input",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "one record fails, so the exit code says so"
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let good = &shown[0]["request"]["main_params"];
    assert_eq!(good["order_no_new"], "FKTK-2024-001(FKTK)");
    assert_eq!(
        good["datetime_new"], "2024-05-30",
        "epoch ms 1717000000000 is 2024-05-30 in Asia/Shanghai"
    );
    assert_eq!(good["qty_count"], "1");
    assert_eq!(good["Document_Type"], "付款退款");
    assert_eq!(good["sales_count"], "1234.50");
    assert_eq!(good["extend_processInstanceId"], "abc-123");
    assert!(
        shown[0]["sql"]
            .as_str()
            .unwrap()
            .starts_with("INSERT INTO `hc_dd_fktk`")
    );
    assert!(
        shown[0]["sql"]
            .as_str()
            .unwrap()
            .contains("VALUES (?, ?, ?, ?, ?, ?, ?)"),
        "values are bound, never spliced"
    );
    assert_eq!(shown[0]["binds"]["order_no_new"], "FKTK-2024-001(FKTK)");
    let bad = &shown[1];
    assert_eq!(bad["class"], "record");
    assert_eq!(bad["path"], "datetime_new");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("cannot convert \"not a date\" to date"),
        "{bad}"
    );
}

#[test]
fn preview_of_seed_000_renders_the_robot_fields() {
    let input = repo().join("tests/fixtures/preview/contacts.json");
    let out = ferry(
        "config/ferry.toml",
        &[
            "preview",
            "--scheme",
            "contact-to-dingtalk",
            "--input",
            input.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let request = &shown[0]["request"];
    assert_eq!(request["title"], "平台网站用户留言推送");
    assert_eq!(request["header"], "用户留言");
    assert_eq!(request["name"], "张三");
    assert_eq!(request["phone"], "13800138000");
    assert_eq!(request["company"], "某某公司");
    assert_eq!(
        request["created_at"], "2023-10-01 12:00:00",
        "the seed's `:created_at` field loses its colon"
    );
}

#[test]
fn preview_input_errors_name_the_file() {
    let out = ferry(
        "config/ferry.toml",
        &[
            "preview",
            "--scheme",
            "contact-to-dingtalk",
            "--input",
            "/nonexistent/x.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reading /nonexistent/x.json"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_scheme_lists_the_known_ones() {
    let out = ferry(
        "config/ferry.toml",
        &["preview", "--scheme", "nope", "--input", "-"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no scheme named `nope`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_lists_every_role() {
    let out = ferry("config/ferry.toml", &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in [
        "extract",
        "transform",
        "load",
        "run",
        "replay",
        "discard",
        "teardown",
        "status",
        "lint",
        "preview",
        "sandbox",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "--help lacks {cmd}:\n{help}"
        );
    }
    let replay = text(&ferry("config/ferry.toml", &["replay", "--help"]).stdout);
    assert!(
        replay.contains("--dry-run") && replay.contains("--limit"),
        "{replay}"
    );
}

/// A config directory of its own under the system's temp dir, for the tests below.
fn temp_config(name: &str, scheme: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferry-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("schemes")).unwrap();
    std::fs::write(
        dir.join("ferry.toml"),
        "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n\
         [state]\nurl = \"mysql://root@127.0.0.1:3306/ferry\"\n\
         [connections.www]\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/www\"\n\
         [connections.noop]\nkind = \"noop\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("schemes/contacts.json"), scheme).unwrap();
    dir
}

const ENV_SCHEME: &str = r#"{
  "name": "contacts",
  "source": { "connection": "www", "metadata": { "api": "select", "id": "id",
    "otherRequest": [{ "field": "main_sql", "value": "SELECT id, name, phone FROM www_contact WHERE id > :last_id ORDER BY id LIMIT :limit" }] } },
  "target": { "connection": "noop", "metadata": { "api": "写入空操作",
    "request": [
      { "field": "title", "value": "${ROBOT_TITLE:-用户留言}" },
      { "field": "access_token", "value": "${ROBOT_ACCESS_TOKEN}" },
      { "field": "note", "value": "$${see docs} ${NOTE_SUFFIX:-}" },
      { "field": "name", "value": "{nmae}" },
      { "field": "phone", "value": "{phone}" }
    ] } }
}"#;

#[test]
fn scheme_values_come_from_the_environment_and_stay_redacted_in_preview() {
    const TOKEN: &str = "7ba55a29f8bc455edd40c6f5c2698dab";
    let dir = temp_config("env", ENV_SCHEME);
    let run = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .env("FERRY_CONFIG", dir.join("ferry.toml"))
            .env_remove("ROBOT_TITLE")
            .env_remove("NOTE_SUFFIX")
            .env_remove("ROBOT_ACCESS_TOKEN");
        if let Some(token) = token {
            cmd.env("ROBOT_ACCESS_TOKEN", token)
                .env("NOTE_SUFFIX", "v2");
        }
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all("[{\"id\": 1, \"name\": \"张三🚀\", \"phone\": null}]".as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let out = run(
        &["preview", "--scheme", "contacts", "--input", "-"],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(TOKEN),
        "the token is never shown: {stdout}"
    );
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let request = &shown[0]["request"];
    assert_eq!(
        request["title"], "用户留言",
        "the default, as in ferry.toml"
    );
    assert_eq!(request["access_token"], "***");
    assert_eq!(
        request["note"], "${see docs} v2",
        "`$${{` writes `${{`; a value under 4 characters is not redacted"
    );
    assert_eq!(request["name"], serde_json::Value::Null);
    assert_eq!(
        shown[0]["absent"],
        serde_json::json!(["{nmae}"]),
        "the misspelt field is marked; `phone` is present with null, so it is not"
    );

    let out = run(&["lint"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).trim_end(),
        "schemes/contacts.json: target.metadata.request[1].value: environment variable \
         `ROBOT_ACCESS_TOKEN` is not set and has no default (set it, or write \
         `${ROBOT_ACCESS_TOKEN:-default}`)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several broker nodes (`FERRY_AMQP_URL`, comma-separated), none answering: the error names each
/// node and why, with every password hidden, not only the first URL's.
#[test]
fn no_broker_password_shows_when_none_of_several_nodes_answers() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["replay", "--scheme", "yida-refunds-to-mysql"])
        .env("FERRY_CONFIG", repo().join("config/ferry.toml"))
        .env(
            "FERRY_AMQP_URL",
            "amqp://guest:s3cr3t-one@127.0.0.1:1/%2f,amqp://ferry:密码🔑@127.0.0.1:2/%2f",
        )
        .output()
        .expect("run ferry");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let refused = "IO error: Connection refused (os error 111)";
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "ferry: cannot connect to RabbitMQ (FERRY_AMQP_URL / [broker] url or urls): cannot \
                 connect to RabbitMQ: none of its 2 nodes answered \
                 (amqp://guest:***@127.0.0.1:1/%2f: {refused}; amqp://ferry:***@127.0.0.1:2/%2f: \
                 {refused})"
            )
            .as_str()
        ),
        "{stderr}"
    );
    for secret in ["s3cr3t-one", "密码"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}{stderr}"
        );
    }
}
