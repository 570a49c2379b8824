use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn messages(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match FerryConfig::parse(text, "ferry.toml", env) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
[state]
url = "mysql://root@127.0.0.1:3306/ferry"
"#;

#[test]
fn minimal_config_takes_every_default() {
    let config = FerryConfig::parse(MINIMAL, "ferry.toml", &no_env).unwrap();
    assert_eq!(config.schemes, "schemes/*.json");
    assert_eq!(config.broker.prefetch, 16);
    assert_eq!(config.broker.delivery_limit, 5);
    assert_eq!(config.broker.retry_delays_secs, vec![1, 10, 60]);
    assert_eq!(config.broker.recovery_wait_secs, 60);
    assert_eq!(config.telemetry, TelemetryConfig::default());
    assert_eq!(config.telemetry.service_name, "ferry");
    assert!(config.connections.is_empty());
    assert_eq!(
        config.broker.url.to_string(),
        "amqp://guest:***@127.0.0.1:5672/%2f"
    );
}

#[test]
fn every_connection_kind_reads_with_its_defaults() {
    let text = format!(
        r#"{MINIMAL}
[connections.www]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/www"
[connections.api]
kind = "http"
base_url = "http://127.0.0.1:9180"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}
rate_per_sec = 3
[connections.yida]
kind = "dingtalk"
app_key = "k"
app_secret = "s"
rate_per_sec = 2
[connections.notify]
kind = "dingtalk_robot"
access_token = "t"
secret = "SECx"
format = "text"
[connections.erp]
kind = "jushuitan"
base_url = "http://127.0.0.1:9180"
app_key = "app"
app_secret = "secret"
access_token = "tok"
[connections.crm]
kind = "okki"
base_url = "http://127.0.0.1:9180"
client_id = "c"
client_secret = "s"
[connections.kd]
kind = "kingdee"
base_url = "http://127.0.0.1:9180"
client_id = "c"
client_secret = "s"
outer_instance_id = "219672488890732544"
[connections.none]
kind = "noop"
"#
    );
    let env = |name: &str| (name == "TOKEN").then(|| "abc".to_string());
    let config = FerryConfig::parse(&text, "ferry.toml", &env).unwrap();
    let kinds: Vec<(&str, &str)> = config
        .connections
        .iter()
        .map(|(name, c)| (name.as_str(), c.kind().name))
        .collect();
    assert_eq!(
        kinds,
        [
            ("api", "http"),
            ("crm", "okki"),
            ("erp", "jushuitan"),
            ("kd", "kingdee"),
            ("none", "noop"),
            ("notify", "dingtalk_robot"),
            ("www", "mysql"),
            ("yida", "dingtalk"),
        ]
    );
    let Connection::Mysql(www) = &config.connections["www"] else {
        panic!()
    };
    assert_eq!(www.max_connections, 10);
    let Connection::Http(api) = &config.connections["api"] else {
        panic!()
    };
    assert_eq!(api.headers["Authorization"].expose(), "Bearer abc");
    assert_eq!(format!("{:?}", api.headers["Authorization"]), "Secret(***)");
    assert_eq!(api.rate_per_sec, Some(3));
    assert_eq!(api.timeout_secs, 30);
    let Connection::DingTalk(yida) = &config.connections["yida"] else {
        panic!()
    };
    assert_eq!(yida.base_url, "https://api.dingtalk.com");
    assert_eq!(yida.rate_per_sec, Some(2));
    let Connection::DingTalkRobot(robot) = &config.connections["notify"] else {
        panic!()
    };
    assert_eq!(robot.base_url, "https://oapi.dingtalk.com");
    assert_eq!(robot.per_minute, 20);
    assert_eq!(robot.format, RobotFormat::Text);
    assert_eq!(robot.secret.as_ref().map(Secret::expose), Some("SECx"));
    let Connection::Jushuitan(erp) = &config.connections["erp"] else {
        panic!()
    };
    assert_eq!(erp.rate_per_sec, 5);
    assert_eq!(erp.refresh_token, None);
    let Connection::Okki(crm) = &config.connections["crm"] else {
        panic!()
    };
    assert_eq!(crm.scope, "user");
    assert_eq!(crm.rate_per_sec, None);
    let Connection::Kingdee(kd) = &config.connections["kd"] else {
        panic!()
    };
    assert_eq!(kd.outer_instance_id, "219672488890732544");
    assert_eq!(config.connections["none"], Connection::Noop);
}

#[test]
fn all_problems_are_reported_with_their_paths_in_file_order() {
    let text = r#"
schemes = 7
[broker]
prefetch = 0
retry_delays_secs = [1, "x"]
[telemetry]
otlp = "http://x"
[connections.notify]
kind = "dingtalk_robot"
secrt = "x"
per_minute = 30
[connections.bad]
kind = "mysq"
whatever = 1
"#;
    assert_eq!(
        messages(text, &no_env),
        [
            "ferry.toml: schemes: expected a string, found an integer",
            "ferry.toml: broker.url: missing required key",
            "ferry.toml: broker.prefetch: must be between 1 and 65535, found 0",
            "ferry.toml: broker.retry_delays_secs[1]: expected a non-negative integer, found a string",
            "ferry.toml: telemetry.otlp: unknown field `otlp`, expected one of `otlp_endpoint`, `service_name`, `metrics_addr`",
            "ferry.toml: connections.notify.access_token: missing required key",
            "ferry.toml: connections.notify.secrt: unknown field `secrt`, expected one of `kind`, `base_url`, `access_token`, `secret`, `keyword`, `per_minute`, `format`, `timeout_secs`",
            "ferry.toml: connections.notify.per_minute: must be between 1 and 20, found 30",
            "ferry.toml: connections.bad.kind: unknown connection kind `mysq`, expected one of `mysql`, `http`, `dingtalk`, `dingtalk_robot`, `wecom_robot`, `feishu_robot`, `jushuitan`, `okki`, `kingdee`, `noop`",
            // No [state] table at all: reported after everything that is written.
            "ferry.toml: state.url: missing required key",
        ]
    );
}

#[test]
fn env_problems_name_the_key_and_are_not_reported_twice() {
    let text = r#"
[broker]
url = "${AMQP_URL}"
prefetch = "${PREFETCH"
[state]
url = "${STATE_URL:-mysql://root@127.0.0.1/ferry}"
"#;
    assert_eq!(
        messages(text, &no_env),
        [
            "ferry.toml: broker.url: environment variable `AMQP_URL` is not set and has no default (set it, or write `${AMQP_URL:-default}`)",
            "ferry.toml: broker.prefetch: `${` is not closed by `}` (write `$${` for a literal `${`)",
        ]
    );
}

#[test]
fn numbers_may_come_from_the_environment() {
    let text = MINIMAL.replace("[state]", "prefetch = \"${PREFETCH:-32}\"\n[state]");
    let env = |name: &str| (name == "PREFETCH").then(|| "64".to_string());
    assert_eq!(
        FerryConfig::parse(&text, "ferry.toml", &env)
            .unwrap()
            .broker
            .prefetch,
        64
    );
    assert_eq!(
        FerryConfig::parse(&text, "ferry.toml", &no_env)
            .unwrap()
            .broker
            .prefetch,
        32
    );
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    assert_eq!(
        messages("[broker]\nurl = \n", &no_env),
        [
            "ferry.toml: invalid TOML at line 2, column 7: string values must be quoted, expected literal string"
        ]
    );
}

#[test]
fn alerts_name_a_robot_connection_or_a_webhook() {
    let text = format!(
        r#"{MINIMAL}
[connections.notify]
kind = "dingtalk_robot"
access_token = "t"
[alerts]
robot = "notify"
webhook = "https://hooks.example.com/ferry?token=${{HOOK_TOKEN}}"
dead_letters = 25
"#
    );
    let env = |name: &str| (name == "HOOK_TOKEN").then(|| "s3cret".to_string());
    let config = FerryConfig::parse(&text, "ferry.toml", &env).unwrap();
    let alerts = config.alerts.expect("[alerts]");
    assert_eq!(alerts.robot.as_deref(), Some("notify"));
    assert_eq!(
        alerts.webhook.as_ref().map(|w| w.expose()),
        Some("https://hooks.example.com/ferry?token=s3cret")
    );
    assert!(
        !format!("{alerts:?}").contains("s3cret"),
        "the webhook is a secret"
    );
    assert_eq!(alerts.dead_letters, 25);
    assert_eq!(alerts.broker_down_secs, DEFAULT_ALERT_BROKER_DOWN_SECS);
    assert!(
        FerryConfig::parse(MINIMAL, "ferry.toml", &no_env)
            .unwrap()
            .alerts
            .is_none()
    );
    // Any robot kind takes alerts.
    for (kind, credential) in [("wecom_robot", "key"), ("feishu_robot", "token")] {
        let text = format!(
            "{MINIMAL}\n[connections.group]\nkind = \"{kind}\"\n{credential} = \"t\"\n\
             [alerts]\nrobot = \"group\"\n"
        );
        let config = FerryConfig::parse(&text, "ferry.toml", &no_env)
            .unwrap_or_else(|p| panic!("{kind}: {p:?}"));
        assert_eq!(config.alerts.unwrap().robot.as_deref(), Some("group"));
    }
}

#[test]
fn alerts_problems_name_the_key_and_the_fix() {
    let text = format!(
        r#"{MINIMAL}
[connections.www]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/www"
[alerts]
robot = "www"
webhook = "ftp://example.com"
dead_letters = 0
"#
    );
    assert_eq!(
        messages(&text, &no_env),
        [
            "ferry.toml: alerts.robot: connection `www` is of kind `mysql`; alerts need a robot connection (`dingtalk_robot`, `wecom_robot` or `feishu_robot`)",
            "ferry.toml: alerts.webhook: expected a URL starting with `http://` or `https://`",
            "ferry.toml: alerts.dead_letters: must be between 1 and 4294967295, found 0",
        ]
    );
    let text = format!("{MINIMAL}\n[alerts]\nrobot = \"notfy\"\n");
    assert_eq!(
        messages(&text, &no_env),
        ["ferry.toml: alerts.robot: no connection named `notfy` (robot connections: none)"]
    );
    let text = format!("{MINIMAL}\n[alerts]\ndead_letters = 5\n");
    assert_eq!(
        messages(&text, &no_env),
        [
            "ferry.toml: alerts: set `robot` (a dingtalk_robot, wecom_robot or feishu_robot connection) or `webhook` (a URL), or remove [alerts]"
        ]
    );
}

#[test]
fn several_broker_nodes_are_read_as_one_list_and_shown_redacted() {
    let text = r#"
[broker]
urls = ["amqp://guest:一号🔑@10.0.0.1:5672/%2f", "amqp://guest:second@10.0.0.2:5672/%2f"]
quorum_group_size = 3
[state]
url = "mysql://root@127.0.0.1:3306/ferry"
"#;
    let config = FerryConfig::parse(text, "ferry.toml", &no_env).unwrap();
    assert_eq!(
        config.broker.url.to_string(),
        "amqp://guest:***@10.0.0.1:5672/%2f,amqp://guest:***@10.0.0.2:5672/%2f"
    );
    assert_eq!(
        node_urls(config.broker.url.expose()),
        [
            "amqp://guest:一号🔑@10.0.0.1:5672/%2f",
            "amqp://guest:second@10.0.0.2:5672/%2f"
        ]
    );
    assert_eq!(config.broker.quorum_group_size, Some(3));
    let one = FerryConfig::parse(MINIMAL, "ferry.toml", &no_env).unwrap();
    assert_eq!(one.broker.quorum_group_size, None);
    // The comma-separated form `FERRY_AMQP_URL` takes works in `url` too.
    assert_eq!(
        node_urls(" amqp://a:1@h1/%2f , amqp://b:2@h2/%2f ,"),
        ["amqp://a:1@h1/%2f", "amqp://b:2@h2/%2f"]
    );
}

#[test]
fn broker_node_problems_name_the_node() {
    let text = r#"
[broker]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
urls = ["amqp://guest:guest@10.0.0.1:5672/%2f", "http://10.0.0.2:15672", 3]
quorum_group_size = 0
[state]
url = "mysql://root@127.0.0.1:3306/ferry"
"#;
    assert_eq!(
        messages(text, &no_env),
        [
            "ferry.toml: broker.urls: set `url` (one node) or `urls` (several nodes), not both",
            "ferry.toml: broker.urls[1]: expected a URL starting with `amqp://` or `amqps://`",
            "ferry.toml: broker.urls[2]: expected a string, found an integer",
            "ferry.toml: broker.quorum_group_size: must be between 1 and 255, found 0",
        ]
    );
}

#[test]
fn an_http_connection_reads_its_token_table_with_defaults_and_checks_it() {
    let text = format!(
        r#"{MINIMAL}
[connections.crm]
kind = "http"
base_url = "https://api.example.com"
[connections.crm.token]
url = "/oauth/token"
params = {{ client_id = "id", client_secret = "s3cret" }}
[connections.bare]
kind = "http"
base_url = "https://api.example.com"
"#
    );
    let config = FerryConfig::parse(&text, "ferry.toml", &no_env).unwrap();
    let Connection::Http(crm) = &config.connections["crm"] else {
        panic!("http");
    };
    let token = crm.token.as_ref().expect("a token table");
    assert_eq!(token.url, "/oauth/token");
    assert_eq!(token.method, TokenMethod::Post);
    assert!(!token.form);
    assert_eq!(token.params["client_secret"].expose(), "s3cret");
    assert_eq!(
        (token.token_at.as_str(), token.expires_at.as_str()),
        ("/access_token", "/expires_in")
    );
    assert_eq!(token.ttl_secs, 7_200);
    assert_eq!(
        (token.header.as_str(), token.prefix.as_str()),
        ("Authorization", "Bearer ")
    );
    assert!(
        !format!("{crm:?}").contains("s3cret"),
        "secrets stay hidden"
    );
    let Connection::Http(bare) = &config.connections["bare"] else {
        panic!("http");
    };
    assert_eq!(bare.token, None);

    let bad = format!(
        r#"{MINIMAL}
[connections.crm]
kind = "http"
base_url = "https://api.example.com"
[connections.crm.token]
url = "/oauth/token"
token_at = "data.access_token"
method = "PUT"
scope = "all"
"#
    );
    assert_eq!(
        messages(&bad, &no_env),
        [
            "ferry.toml: connections.crm.token.token_at: `data.access_token` is not a JSON pointer (it starts with `/`, as `/data/access_token`)",
            "ferry.toml: connections.crm.token.method: unknown value `PUT`, expected one of `POST`, `GET`",
            "ferry.toml: connections.crm.token.scope: unknown field `scope`, expected one of `url`, `method`, `params`, `body_format`, `token_at`, `expires_at`, `ttl_secs`, `header`, `prefix`",
        ]
    );
}
