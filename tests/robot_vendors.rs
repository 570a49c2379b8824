//! Issue 15: the WeCom group robot, the Feishu custom bot and the `http` target.
//!
//! End to end first: a contact table (Chinese names, emoji) in MariaDB read by `ferry extract`,
//! mapped by `ferry transform` and written by three `ferry load` processes, through the real
//! RabbitMQ, against the sandbox's simulators running in this test process. Each robot gets
//! every record exactly once under its limits (every call the simulator answered became a
//! message, so none drew 45009 or 11232), a re-run pushes nothing, and a wrong key or signing
//! secret stops the scheme with the vendor's error while its messages wait in the load queue
//! (a loader with the right credential then delivers them). The `http` target dead-letters the
//! one record the API refuses, alone and with its error, waits out throttle codes, and posts
//! nothing twice on a re-run.
//!
//! Then each sink on its own against its simulator and a state database: three sink replicas
//! sharing one limiter, the ledger, a wrong credential as a configuration error.

mod common;
#[path = "common/robot.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{World, all_output, stdout};
use ferry_bus::{Stage, names};
use ferry_core::config::{HttpConnection, Secret};
use ferry_core::{ErrorClass, FerryError, Metadata, Record};
use ferry_sandbox::SandboxOptions;
use ferry_sinks::Sink;
use ferry_sinks::robot::{FeishuWebhook, Format, RobotSettings, RobotSink, WeComWebhook};
use harness::{Robot, add_contacts, contact_name, depth, ferry, setup, state_db};
use serde_json::{Value, json};

/// A robot kind as the end-to-end test drives it.
struct RobotKind {
    /// Prefix of the test's names.
    tag: &'static str,
    /// The target's `api`.
    api: &'static str,
    /// `[connections.notify]` for the sandbox at `base_url`, with the right credential or not.
    connection: fn(base_url: &str, right: bool) -> String,
    /// The credential of the wrong connection, which must not show in any output.
    wrong: &'static str,
    /// The sandbox route every push calls (`POST ...`), for its call count.
    route: &'static str,
    /// The simulator's inbox.
    inbox: &'static str,
    /// The text of an accepted message.
    text: fn(&Value) -> String,
    /// How the scheme's stop reads (after `connection `notify`: `), the vendor's text included.
    refused: &'static str,
}

const WECOM: RobotKind = RobotKind {
    tag: "wxe",
    api: "WeComRobotPush",
    connection: |base_url, right| {
        format!(
            "[connections.notify]\nkind = \"wecom_robot\"\nbase_url = \"{base_url}\"\nkey = \"{}\"\n",
            if right {
                "wecom-sandbox-key"
            } else {
                "wecom-wrong-key"
            }
        )
    },
    wrong: "wecom-wrong-key",
    route: "POST /cgi-bin/webhook/send",
    inbox: "/cgi-bin/webhook/messages",
    text: |m| {
        m["body"]["markdown"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string()
    },
    refused: "the WeCom robot refused the message: errcode 93000 (invalid webhook url, more info \
              at https://open.work.weixin.qq.com/devtool/query?e=93000); the webhook key is \
              wrong or the robot was removed; check the connection's `key`",
};

const FEISHU: RobotKind = RobotKind {
    tag: "fse",
    api: "FeishuRobotPush",
    connection: |base_url, right| {
        format!(
            "[connections.notify]\nkind = \"feishu_robot\"\nbase_url = \"{base_url}\"\n\
             token = \"feishu-sandbox-token\"\nsecret = \"{}\"\nper_minute = 20\n",
            if right {
                "feishu-sandbox-secret"
            } else {
                "feishu-wrong-secret"
            }
        )
    },
    wrong: "feishu-wrong-secret",
    route: "POST /open-apis/bot/v2/hook/feishu-sandbox-token",
    inbox: "/open-apis/bot/v2/messages",
    text: |m| {
        m["body"]["content"]["post"]["zh_cn"]["content"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| l[0]["text"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    },
    refused: "the Feishu bot refused the message: code 19021 (sign match fail or timestamp is \
              not within one hour from current time); check the connection's `secret`",
};

/// Rows of the first run; the wrong-credential run adds [`MORE`].
const FIRST: u64 = 30;
const MORE: u64 = 6;
/// The sandbox's rate window (the vendors' is a minute), matched by the target's `window_secs`.
const WINDOW_SECS: u64 = 5;

/// `ferry.toml` with the contact database as `www` and `connection` after it.
fn write_toml(world: &World, www: &str, state: &str, connection: &str) {
    world.write_ferry_toml(
        state,
        &format!("{}{connection}", common::mysql_connection("www", www)),
    );
}

/// The contact scheme to `target` (connection and metadata); returns its name.
fn write_scheme(world: &mut World, target: Value) -> String {
    let scheme = world.scheme_name("contact");
    let scheme_json = json!({
        "name": scheme,
        "timezone": "Asia/Shanghai",
        "source": harness::contact_source(),
        "target": target,
    });
    world.write(
        "schemes/contact.json",
        &serde_json::to_string_pretty(&scheme_json).unwrap(),
    );
    scheme
}

/// Wait until `runs` (the state database's `ferry_runs`) holds `count` rows matching `filter`.
async fn wait_for_runs(world: &World, runs: &str, filter: &str, count: i64) {
    world
        .wait_for(
            &format!("{count} run(s) {filter}"),
            Duration::from_secs(60),
            || async {
                (world
                    .scalar_i64(&format!("SELECT COUNT(*) FROM {runs} WHERE {filter}"))
                    .await
                    == count)
                    .then_some(())
            },
        )
        .await;
}

/// Start a transform and three loaders, then extract once.
async fn start_pipeline(world: &mut World) {
    world.spawn(&["transform", "--workers", "1"], "transform.log");
    for i in 0..3 {
        world.spawn(&["load", "--workers", "2"], &format!("load{i}.log"));
    }
    extract_once(world).await;
}

async fn extract_once(world: &World) {
    let out = ferry(world, &["extract", "--once"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
}

/// Each name of `seqs` exactly once in the texts of `messages`, one record a message.
fn assert_each_contact_once(
    kind: &RobotKind,
    messages: &[Value],
    seqs: std::ops::RangeInclusive<u64>,
) {
    let texts: Vec<String> = messages.iter().map(kind.text).collect();
    let mut names = names_in(&texts);
    names.sort();
    let mut want: Vec<String> = seqs.map(contact_name).collect();
    want.sort();
    assert_eq!(names, want, "{texts:#?}");
    assert_eq!(texts.len(), want.len(), "one record a message");
}

/// An `http` target on the collect API, five records a request, `extra` added: success is
/// `/code` = 0, 4290 a throttle code waited out 1 s, 1001 a refused record.
fn collect_target(extra: Value) -> Value {
    let mut target = json!({
        "api": "/collect/v1/contacts",
        "method": "POST",
        "idCheck": true,
        "batch_size": 5,
        "success_pointer": "/code",
        "throttle_codes": [4290],
        "record_codes": [1001],
        "throttle_wait_secs": 1
    });
    if let (Some(t), Value::Object(extra)) = (target.as_object_mut(), extra) {
        t.extend(extra);
    }
    target
}

/// The contact scheme to the collect API as connection `crm` ([`collect_target`]); returns
/// its name.
fn write_collect_scheme(world: &mut World) -> String {
    let request = json!({"request": [
        {"field": "contact_id", "type": "int", "value": "{id}"},
        {"field": "name", "type": "string", "value": "{name}"},
        {"field": "company", "type": "string", "value": "{company}"}
    ]});
    write_scheme(
        world,
        json!({"connection": "crm", "metadata": collect_target(request)}),
    )
}

/// The `contact_id`s the collect API took (from single records and batches), sorted.
fn posted_ids(taken: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = taken
        .iter()
        .flat_map(|r| match &r["body"] {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        })
        .map(|b| b["contact_id"].as_u64().unwrap())
        .collect();
    ids.sort();
    ids
}

/// The end-to-end run of a robot kind (see the module's documentation).
async fn robot_end_to_end(kind: &RobotKind) {
    let mut world = World::new(kind.tag).await;
    let robot = Robot::start_with(SandboxOptions {
        robot_window_secs: WINDOW_SECS,
        wecom_limit: 20,
        feishu_limit: 20,
        feishu_per_sec: 5,
        ..SandboxOptions::default()
    })
    .await;
    let (www, state) = setup(&mut world, FIRST).await;
    let scheme = write_scheme(
        &mut world,
        json!({"connection": "notify", "metadata": robot_target(
            kind.api,
            json!({"batch_size": 1, "window_secs": WINDOW_SECS}),
        )}),
    );
    write_toml(&world, &www, &state, &(kind.connection)(&robot.url(), true));
    let runs = format!("`{}`.ferry_runs", state_db(&state));
    let load_queue = names::work_queue(&scheme, Stage::Load);
    let dlq = names::dlq(&scheme, Stage::Load);

    // 30 records, one a message, through three loaders: 20 per 5 s window at most.
    start_pipeline(&mut world).await;
    wait_for_runs(&world, &runs, "status = 'done' AND written = 30", 1).await;
    let messages = robot.inbox(kind.inbox).await;
    assert_each_contact_once(kind, &messages, 1..=FIRST);
    // Every call the simulator answered became a message: none drew the throttle answer
    // (45009, 11232; both come with HTTP 200).
    assert_eq!(
        robot.route_statuses(kind.route).await,
        (FIRST, BTreeMap::from([("200".to_string(), FIRST)]))
    );
    let at: Vec<i64> = messages
        .iter()
        .map(|m| m["received_at_ms"].as_i64().unwrap())
        .collect();
    for i in 20..at.len() {
        assert!(
            at[i] - at[i - 20] >= (WINDOW_SECS * 1_000) as i64,
            "messages {} and {i} are {} ms apart",
            i - 20,
            at[i] - at[i - 20]
        );
    }

    // A re-run reads the same rows: the ledger skips every one.
    extract_once(&world).await;
    wait_for_runs(
        &world,
        &runs,
        "status = 'done' AND written = 0 AND skipped = 30",
        1,
    )
    .await;
    assert_eq!(robot.route_calls(kind.route).await, FIRST);
    assert_eq!(robot.inbox(kind.inbox).await.len(), FIRST as usize);
    let codes = world.stop_all();
    assert_eq!(
        codes,
        vec![Some(0); 4],
        "graceful exits\n{}",
        world.log("load0.log")
    );

    // Six new rows and a wrong credential: the scheme stops with the vendor's error, and the
    // six load messages wait in their queue (none dead-lettered, none lost).
    add_contacts(&world, &www, FIRST + 1, FIRST + MORE).await;
    write_toml(
        &world,
        &www,
        &state,
        &(kind.connection)(&robot.url(), false),
    );
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "60"]).await;
    let everything = all_output(&out);
    assert!(!out.status.success(), "{everything}");
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: stopped: connection `notify`: {}",
            kind.refused
        )),
        "{everything}"
    );
    assert!(!everything.contains(kind.wrong), "{everything}");
    world
        .wait_for(
            "the six load messages back in their queue",
            Duration::from_secs(30),
            || async { (depth(&scheme, &load_queue).await == MORE as u32).then_some(()) },
        )
        .await;
    assert_eq!(depth(&scheme, &dlq).await, 0);
    assert_eq!(robot.inbox(kind.inbox).await.len(), FIRST as usize);
    let status = ferry(&world, &["status", "--json", "--scheme", &scheme]).await;
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let run = &status[0]["runs"][0];
    assert_eq!(run["status"], "stopped", "{run}");
    assert!(
        run["error"].as_str().unwrap_or("").contains(kind.refused),
        "{run}"
    );

    // The credential fixed, one loader delivers the kept messages, each once.
    write_toml(&world, &www, &state, &(kind.connection)(&robot.url(), true));
    world.spawn(&["load", "--workers", "1"], "load-fixed.log");
    world
        .wait_for(
            "the kept messages delivered",
            Duration::from_secs(60),
            || async {
                (robot.inbox(kind.inbox).await.len() == (FIRST + MORE) as usize).then_some(())
            },
        )
        .await;
    assert_each_contact_once(kind, &robot.inbox(kind.inbox).await, 1..=FIRST + MORE);
    world
        .wait_for("an empty load queue", Duration::from_secs(30), || async {
            (depth(&scheme, &load_queue).await == 0).then_some(())
        })
        .await;
    assert_eq!(world.stop_all(), vec![Some(0)]);
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_end_to_end_three_loaders_push_once_under_the_limit_and_a_wrong_key_keeps_the_messages()
 {
    robot_end_to_end(&WECOM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_end_to_end_three_loaders_push_once_under_the_limits_and_a_wrong_secret_keeps_the_messages()
 {
    robot_end_to_end(&FEISHU).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_end_to_end_dead_letters_the_refused_record_alone_retries_throttles_and_posts_once() {
    const ROWS: u64 = 20;
    const REFUSED: u64 = 13;
    let mut world = World::new("hte").await;
    let api = Robot::start_with(SandboxOptions::default()).await;
    let (www, state) = setup(&mut world, ROWS).await;
    world
        .exec(&format!(
            "UPDATE `{www}`.www_contact SET company = 'REJECT' WHERE id = {REFUSED}"
        ))
        .await;
    let scheme = write_collect_scheme(&mut world);
    write_toml(
        &world,
        &www,
        &state,
        &format!(
            "[connections.crm]\nkind = \"http\"\nbase_url = \"{}\"\nrate_per_sec = 20\n\
             headers = {{ Authorization = \"Bearer collect-sandbox-token\" }}\n",
            api.url()
        ),
    );
    let runs = format!("`{}`.ferry_runs", state_db(&state));
    let route = "POST /collect/v1/contacts";
    let dlq = names::dlq(&scheme, Stage::Load);

    // Every third call answers code 4290 (too fast): waited out and sent again.
    api.set_faults(json!({"collect": {"throttle_every": 3}}))
        .await;
    start_pipeline(&mut world).await;
    wait_for_runs(
        &world,
        &runs,
        "status = 'done' AND written = 19 AND skipped = 0 AND dead = 1",
        1,
    )
    .await;
    let taken = api.inbox("/_sandbox/collect").await;
    let want: Vec<u64> = (1..=ROWS).filter(|i| *i != REFUSED).collect();
    assert_eq!(posted_ids(&taken), want, "each accepted record once");
    let (calls, statuses) = api.route_statuses(route).await;
    assert_eq!(statuses, BTreeMap::from([("200".to_string(), calls)]));
    // Four batches of five; the refused one again one record a call (five calls): 9 answered
    // without a throttle, plus every third call throttled and sent again.
    assert!(calls > 9, "throttled calls were sent again: {calls} calls");
    assert_eq!(taken.len(), 3 + 4, "three batches and four records alone");

    // The refused record alone in the dead-letter queue, with the API's answer.
    let dead = common::drain_queue(&dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (body, headers) = &dead[0];
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["id"], contact_name(REFUSED));
    assert_eq!(records[0]["data"]["company"], "REJECT");
    assert_eq!(headers[names::ERROR_CLASS], "record", "{headers:?}");
    // Sent alone, as a batch of one (an array): the API points at its first item.
    assert!(
        headers[names::ERROR].contains(&format!(
            "connection `crm`: {}/collect/v1/contacts answered /code = 1001 (invalid value at /0/company)",
            api.url()
        )),
        "{headers:?}"
    );

    // A re-run: the 19 are in the ledger; only the refused record is sent (and refused) again.
    api.set_faults(json!({"collect": {}})).await;
    extract_once(&world).await;
    wait_for_runs(
        &world,
        &runs,
        "status = 'done' AND written = 0 AND skipped = 19 AND dead = 1",
        1,
    )
    .await;
    assert_eq!(api.inbox("/_sandbox/collect").await.len(), taken.len());
    assert_eq!(api.route_calls(route).await, calls + 1);
    let dead = common::drain_queue(&dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0["records"][0]["id"], contact_name(REFUSED));
    assert_eq!(world.stop_all(), vec![Some(0); 4]);
    world.clean().await;
}

fn contact(i: u64) -> Record {
    Record::new(
        &format!("c{i}"),
        json!({"title": "客户留言推送", "header": "用户留言", "name": format!("张三{i} 😀"), "company": format!("公司「{i}」")}),
    )
}

/// A robot target's metadata: title, header and two labelled fields, `extra` added.
fn robot_target(api: &str, extra: Value) -> Value {
    let mut target = json!({
        "api": api,
        "idCheck": true,
        "request": [
            {"field": "title", "value": "客户留言推送"},
            {"field": "header", "value": "用户留言"},
            {"label": "姓名", "field": "name", "value": "{name}"},
            {"label": "公司", "field": "company", "value": "{company}"}
        ]
    });
    if let (Some(t), Value::Object(extra)) = (target.as_object_mut(), extra) {
        t.extend(extra);
    }
    target
}

fn metadata(api: &str, extra: Value) -> Metadata {
    let mut m: Metadata = serde_json::from_value(robot_target(api, json!({}))).unwrap();
    if let Value::Object(map) = extra {
        m.extra.extend(map.clone());
        if let Some(n) = map.get("batch_size").and_then(Value::as_u64) {
            m.batch_size = Some(n as usize);
        }
    }
    m
}

fn settings(name: &str, format: Format) -> RobotSettings<'_> {
    RobotSettings {
        connection: name,
        format,
        keyword: None,
        per_minute: 20,
        timeout_secs: 10,
    }
}

/// The names in every accepted message's text, in order.
fn names_in(texts: &[String]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim_start_matches("- ").strip_prefix("姓名: "))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Write `batches` through three sinks at once (three loader replicas).
async fn three_replicas(sinks: &[RobotSink; 3], batches: Vec<Vec<Record>>) -> (u64, u64) {
    let mut written = 0;
    let mut skipped = 0;
    let results = futures_util::future::join_all(
        batches
            .into_iter()
            .enumerate()
            .map(|(i, batch)| sinks[i % 3].write(batch)),
    )
    .await;
    for r in results {
        let r = r.unwrap();
        assert!(r.failed.is_empty());
        written += r.counts.written;
        skipped += r.counts.skipped;
    }
    (written, skipped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_three_replicas_stay_under_the_limit_push_once_and_a_wrong_key_stops() {
    let mut world = World::new("wx").await;
    let robot = Robot::start_with(SandboxOptions {
        robot_window_secs: 5,
        wecom_limit: 20,
        ..SandboxOptions::default()
    })
    .await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let meta = metadata("WeComRobotPush", json!({"batch_size": 1, "window_secs": 5}));
    let webhook = WeComWebhook {
        base_url: robot.url(),
        key: Secret::new("wecom-sandbox-key"),
    };
    let open = || {
        RobotSink::wecom(
            settings("wx", Format::Markdown),
            &webhook,
            &meta,
            state.clone(),
            ferry_sinks::robot::http_client().unwrap(),
            "wecom-test",
        )
        .unwrap()
    };
    let sinks = [open(), open(), open()];
    let batches: Vec<Vec<Record>> = (0..3)
        .map(|r| (1..=10).map(|i| contact(r * 10 + i)).collect())
        .collect();
    let started = std::time::Instant::now();
    assert_eq!(three_replicas(&sinks, batches.clone()).await, (30, 0));
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "30 at 20 per 5 s"
    );
    let inbox = robot.get_json("/cgi-bin/webhook/messages").await;
    let inbox = inbox.as_array().unwrap();
    assert_eq!(inbox.len(), 30);
    // Every call became a message: none was answered 45009 (HTTP 200 too).
    assert_eq!(robot.route_calls("POST /cgi-bin/webhook/send").await, 30);
    let texts: Vec<String> = inbox
        .iter()
        .map(|m| {
            m["body"]["markdown"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(texts.contains(
        &"#### 用户留言（1 条）\n\n**1.**\n- 姓名: 张三1 😀\n- 公司: 公司「1」".to_string()
    ));
    let mut names = names_in(&texts);
    names.sort();
    let mut want: Vec<String> = (1..=30).map(|i| format!("张三{i} 😀")).collect();
    want.sort();
    assert_eq!(names, want);
    let at: Vec<i64> = inbox
        .iter()
        .map(|m| m["received_at_ms"].as_i64().unwrap())
        .collect();
    for i in 20..at.len() {
        assert!(at[i] - at[i - 20] >= 5_000, "messages {} and {i}", i - 20);
    }

    // The same batches again (a redelivery, a re-run): nothing is pushed.
    assert_eq!(three_replicas(&sinks, batches).await, (0, 30));
    assert_eq!(robot.route_calls("POST /cgi-bin/webhook/send").await, 30);

    // A wrong key: a configuration error naming the connection, never the key.
    let wrong = RobotSink::wecom(
        settings("wx", Format::Text),
        &WeComWebhook {
            base_url: robot.url(),
            key: Secret::new("not-the-key"),
        },
        &meta,
        state.clone(),
        ferry_sinks::robot::http_client().unwrap(),
        "wecom-test",
    )
    .unwrap();
    let err = wrong.write(vec![contact(99)]).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(
        err.to_string().starts_with(
            "connection `wx`: the WeCom robot refused the message: errcode 93000 (invalid webhook url"
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-key"));
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_three_replicas_send_signed_posts_under_both_limits_and_a_wrong_secret_stops() {
    let mut world = World::new("fs").await;
    let robot = Robot::start_with(SandboxOptions {
        robot_window_secs: 5,
        feishu_limit: 20,
        feishu_per_sec: 5,
        ..SandboxOptions::default()
    })
    .await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let meta = metadata(
        "FeishuRobotPush",
        json!({"batch_size": 1, "window_secs": 5, "at_all": true}),
    );
    let webhook = |secret: &str| FeishuWebhook {
        base_url: robot.url(),
        token: Secret::new("feishu-sandbox-token"),
        secret: Some(Secret::new(secret)),
        per_second: 5,
    };
    let good = webhook("feishu-sandbox-secret");
    let open = |w: &FeishuWebhook| {
        RobotSink::feishu(
            settings("fs", Format::Post),
            w,
            &meta,
            state.clone(),
            ferry_sinks::robot::http_client().unwrap(),
            "feishu-test",
        )
        .unwrap()
    };
    let sinks = [open(&good), open(&good), open(&good)];
    let batches: Vec<Vec<Record>> = (0..3)
        .map(|r| (1..=8).map(|i| contact(r * 8 + i)).collect())
        .collect();
    assert_eq!(three_replicas(&sinks, batches.clone()).await, (24, 0));
    let route = "POST /open-apis/bot/v2/hook/feishu-sandbox-token";
    assert_eq!(robot.route_calls(route).await, 24, "no 11232 answer");
    let inbox = robot.get_json("/open-apis/bot/v2/messages").await;
    let inbox = inbox.as_array().unwrap();
    assert_eq!(inbox.len(), 24);
    let post = &inbox[0]["body"]["content"]["post"]["zh_cn"];
    assert_eq!(post["title"], "客户留言推送");
    let lines = post["content"].as_array().unwrap();
    assert_eq!(
        lines[0],
        json!([{"tag": "text", "text": "用户留言（1 条）"}])
    );
    assert_eq!(
        lines.last().unwrap(),
        &json!([{"tag": "at", "user_id": "all"}])
    );
    let texts: Vec<String> = inbox
        .iter()
        .map(|m| {
            m["body"]["content"]["post"]["zh_cn"]["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l[0]["text"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let mut names = names_in(&texts);
    names.sort();
    let mut want: Vec<String> = (1..=24).map(|i| format!("张三{i} 😀")).collect();
    want.sort();
    assert_eq!(names, want);
    let at: Vec<i64> = inbox
        .iter()
        .map(|m| m["received_at_ms"].as_i64().unwrap())
        .collect();
    for i in 20..at.len() {
        assert!(at[i] - at[i - 20] >= 5_000, "messages {} and {i}", i - 20);
    }
    for i in 5..at.len() {
        assert!(at[i] - at[i - 5] >= 1_000, "messages {} and {i}", i - 5);
    }

    assert_eq!(three_replicas(&sinks, batches).await, (0, 24));
    assert_eq!(robot.route_calls(route).await, 24);

    let err = open(&webhook("not-the-secret"))
        .write(vec![contact(99)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FerryError::config(
            "connection `fs`: the Feishu bot refused the message: code 19021 (sign match fail or \
             timestamp is not within one hour from current time); check the connection's \
             `secret` and this machine's clock (the timestamp must be within an hour)"
        )
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_dead_letters_a_refused_record_alone_retries_throttles_and_posts_once() {
    let mut world = World::new("ht").await;
    let api = Robot::start_with(SandboxOptions::default()).await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let conn = HttpConnection {
        base_url: api.url(),
        headers: [(
            "Authorization".to_string(),
            Secret::new("Bearer collect-sandbox-token"),
        )]
        .into_iter()
        .collect(),
        timeout_secs: 10,
        token: None,
        rate_per_sec: Some(20),
    };
    let mut meta: Metadata = serde_json::from_value(collect_target(json!({}))).unwrap();
    meta.batch_size = Some(5);
    let sink = ferry_sinks::http::HttpSink::new(
        "crm",
        &conn,
        &meta,
        state.clone(),
        ferry_sinks::robot::http_client().unwrap(),
        "http-test",
    )
    .unwrap();
    let record = |i: u64| {
        Record::new(
            &format!("c{i}"),
            json!({"contact_id": i, "name": format!("李四{i} 🚀"),
                   "company": if i == 13 { "REJECT".to_string() } else { format!("公司{i}") }}),
        )
    };
    let batch: Vec<Record> = (1..=20).map(record).collect();
    api.set_faults(json!({"collect": {"throttle_every": 3}}))
        .await;
    let report = sink.write(batch.clone()).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (19, 0));
    assert_eq!(report.failed.len(), 1);
    let (bad, err) = &report.failed[0];
    assert_eq!(bad.id, "c13");
    assert_eq!(err.class(), ErrorClass::Record);
    assert!(
        err.to_string().contains(&format!(
            "connection `crm`: {}/collect/v1/contacts answered /code = 1001 (invalid value at /0/company)",
            api.url()
        )),
        "{err}"
    );
    let taken = api.get_json("/_sandbox/collect").await;
    assert_eq!(
        posted_ids(taken.as_array().unwrap()),
        (1..=20).filter(|i| *i != 13).collect::<Vec<_>>(),
        "each once"
    );
    let calls = api.route_calls("POST /collect/v1/contacts").await;
    assert!(
        calls > taken.as_array().unwrap().len() as u64,
        "throttled calls were retried"
    );

    // A re-run: nothing posted twice; the bad record is refused again, alone.
    api.set_faults(json!({"collect": {}})).await;
    let report = sink.write(batch).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (0, 19));
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        api.get_json("/_sandbox/collect")
            .await
            .as_array()
            .unwrap()
            .len(),
        taken.as_array().unwrap().len()
    );

    // A wrong token is a configuration error.
    let mut wrong = conn.clone();
    wrong
        .headers
        .insert("Authorization".into(), Secret::new("Bearer nope"));
    let err = ferry_sinks::http::HttpSink::new(
        "crm",
        &wrong,
        &meta,
        state,
        ferry_sinks::robot::http_client().unwrap(),
        "http-test",
    )
    .unwrap()
    .write(vec![record(50)])
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    assert!(!err.to_string().contains("nope"));
    world.clean().await;
}

/// `[connections.crm.token]` for the collect API's token endpoint, with `secret`.
fn token_connection(base_url: &str, secret: &str) -> String {
    format!(
        "[connections.crm]\nkind = \"http\"\nbase_url = \"{base_url}\"\n\
         [connections.crm.token]\nurl = \"/auth/token\"\n\
         params = {{ client_id = \"collect-sandbox-client\", client_secret = \"{secret}\" }}\n\
         token_at = \"/data/access_token\"\nexpires_at = \"/data/expires_in\"\n"
    )
}

/// Step 2 of issue 15: an `http` target whose connection fetches its bearer token (the same
/// `[token]` table an `http` source reads), through the `ferry` binary. One token serves the
/// run; a token the API stops taking (401) is fetched again once and the call goes through; a
/// wrong client secret stops the scheme with the token endpoint's answer, the secret nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_fetches_caches_and_renews_its_token_and_a_wrong_secret_stops_the_scheme() {
    const TOKEN_ROUTE: &str = "POST /auth/token";
    const COLLECT_ROUTE: &str = "POST /collect/v1/contacts";
    let mut world = World::new("htk").await;
    let api = Robot::start_with(SandboxOptions::default()).await;
    // Tokens die after 2 s on the API's side, though the answer says 7200 (a revoked token).
    api.set_faults(json!({"collect": {"token_ttl_secs": 2}}))
        .await;
    let (www, state) = setup(&mut world, 10).await;
    let scheme = write_collect_scheme(&mut world);
    write_toml(
        &world,
        &www,
        &state,
        &token_connection(&api.url(), "collect-sandbox-secret"),
    );
    let run_once = || ferry(&world, &["run", "--once", "--timeout-secs", "60"]);

    let out = run_once().await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 10 records: 10 written, 0 skipped, 0 dead-lettered"
        )),
        "{}",
        all_output(&out)
    );
    assert_eq!(
        api.route_calls(TOKEN_ROUTE).await,
        1,
        "one token for the run"
    );
    let taken = api.inbox("/_sandbox/collect").await;
    assert_eq!(posted_ids(&taken), (1..=10).collect::<Vec<_>>());

    // The cached token has died on the API's side: refused once (401), fetched anew, sent again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    add_contacts(&world, &www, 11, 15).await;
    let out = run_once().await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains("15 records: 5 written, 10 skipped, 0 dead-lettered"),
        "{}",
        all_output(&out)
    );
    assert_eq!(api.route_calls(TOKEN_ROUTE).await, 2, "renewed once");
    let (_, statuses) = api.route_statuses(COLLECT_ROUTE).await;
    assert_eq!(statuses.get("401"), Some(&1), "{statuses:?}");
    assert_eq!(
        posted_ids(&api.inbox("/_sandbox/collect").await),
        (1..=15).collect::<Vec<_>>()
    );

    // A wrong client secret, once the cached token dies: the scheme stops, its message kept.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    add_contacts(&world, &www, 16, 17).await;
    write_toml(
        &world,
        &www,
        &state,
        &token_connection(&api.url(), "not-the-client-secret"),
    );
    let out = run_once().await;
    let everything = all_output(&out);
    assert!(!out.status.success(), "{everything}");
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: stopped: connection `crm`: the token endpoint {}/auth/token answered \
             HTTP 401 Unauthorized: {{\"code\":40001,\"msg\":\"invalid client_id or \
             client_secret\",\"data\":{{}}}}; check the connection's `token.params` (its credentials)",
            api.url()
        )),
        "{everything}"
    );
    assert!(
        !everything.contains("not-the-client-secret"),
        "{everything}"
    );
    assert!(!everything.contains("collect-0"), "no token in the output");
    let load_queue = names::work_queue(&scheme, Stage::Load);
    world
        .wait_for("the load message kept", Duration::from_secs(30), || async {
            (depth(&scheme, &load_queue).await >= 1).then_some(())
        })
        .await;
    assert_eq!(depth(&scheme, &names::dlq(&scheme, Stage::Load)).await, 0);
    assert_eq!(api.inbox("/_sandbox/collect").await.len(), taken.len() + 1);
    world.clean().await;
}
