//! Issue 5, end to end: seed 000's contact messages (MySQL) pushed to the sandbox's DingTalk
//! robot through the real RabbitMQ and MariaDB. The sandbox runs in this test process on a free
//! port; it checks every signature and the timestamp window, enforces its rate limit with 130101,
//! and lists what it accepted (`GET /robot/messages`) and how many calls it answered
//! (`GET /_sandbox/stats`). A call count equal to the number of accepted messages therefore means
//! every request was signed correctly and none drew a 130101.

mod common;
#[path = "common/robot.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{World, all_output, stdout};
use ferry_bus::{Bus, Headers, Stage, names};
use ferry_core::{Envelope, ErrorClass, FerryError, Record};
use ferry_sinks::Sink;
use harness::{Robot, contact_name, depth, ferry, setup, state_db};
use serde_json::{Value, json};

const ROBOT_TOKEN: &str = "robot-token-for-tests";
const ROBOT_SECRET: &str = "SEC-robot-secret-for-tests";

/// The text of a markdown robot message.
fn text_of(message: &Value) -> String {
    message["body"]["markdown"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The contact names listed in a message, in order.
fn names_in(message: &Value) -> Vec<String> {
    text_of(message)
        .lines()
        .filter_map(|l| l.strip_prefix("- 留言用户姓名: "))
        .map(String::from)
        .collect()
}

/// The (name, phone) of every contact listed in a message, in order.
fn contacts_in(message: &Value) -> Vec<(String, String)> {
    let text = text_of(message);
    let phones = text
        .lines()
        .filter_map(|l| l.strip_prefix("- 留言用户电话: "))
        .map(String::from);
    names_in(message).into_iter().zip(phones).collect()
}

/// The record count a message announces in its first line (`#### 用户留言（N 条）`).
fn announced_count(message: &Value) -> usize {
    let text = text_of(message);
    let first = text.lines().next().unwrap_or_default();
    let inner = first
        .strip_prefix("#### 用户留言（")
        .and_then(|rest| rest.strip_suffix(" 条）"))
        .unwrap_or_else(|| panic!("no count in {first:?}"));
    inner.parse().unwrap()
}

/// `ferry.toml` and seed 000's scheme (keyset paging, the sandbox robot), with `target_extra`
/// merged into the target metadata. Returns the scheme name.
fn write_config(
    world: &mut World,
    www: &str,
    state: &str,
    robot: &Robot,
    secret: &str,
    target_extra: Value,
) -> String {
    let scheme = world.scheme_name("contact");
    write_robot_toml(world, www, state, robot, secret);
    let mut target = json!({
        "api": "DingTalkRoBotPush",
        "method": "POST",
        "idCheck": true,
        "request": [
            {"field": "title", "label": "首屏会话透出的展示内容", "type": "string", "value": "平台网站用户留言推送"},
            {"field": "header", "label": "标题", "type": "string", "value": "用户留言"},
            {"label": "留言用户姓名", "field": "name", "type": "string", "value": "{name}"},
            {"label": "留言用户电话", "field": "phone", "type": "string", "value": "{phone}"},
            {"label": "公司名称", "field": "company", "type": "string", "value": "{company}"},
            {"label": "留言时间", "field": ":created_at", "type": "string", "value": "{created_at}"}
        ]
    });
    if let (Some(t), Some(extra)) = (target.as_object_mut(), target_extra.as_object()) {
        for (k, v) in extra {
            t.insert(k.clone(), v.clone());
        }
    }
    let scheme_json = json!({
        "name": scheme,
        "timezone": "Asia/Shanghai",
        "source": harness::contact_source(),
        "target": {"connection": "notify", "metadata": target}
    });
    world.write(
        "schemes/contact.json",
        &serde_json::to_string_pretty(&scheme_json).unwrap(),
    );
    scheme
}

/// `ferry.toml` with the `www` source database and the sandbox robot as connection `notify`.
fn write_robot_toml(world: &World, www: &str, state: &str, robot: &Robot, secret: &str) {
    world.write_ferry_toml(
        state,
        &format!(
            r#"{www_connection}[connections.notify]
kind = "dingtalk_robot"
base_url = "{base}"
access_token = "{ROBOT_TOKEN}"
secret = "{secret}"
"#,
            www_connection = common::mysql_connection("www", www),
            base = robot.url(),
        ),
    );
}

/// Every message carries what it announces, and together they hold `expected` names once each.
fn assert_each_record_once(messages: &[Value], expected: &[String]) {
    let mut seen = Vec::new();
    for m in messages {
        let names = names_in(m);
        assert_eq!(
            announced_count(m),
            names.len(),
            "count line of {}",
            text_of(m)
        );
        seen.extend(names);
    }
    seen.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_five_contacts_become_ten_signed_messages_and_a_rerun_pushes_nothing() {
    let mut world = World::new("r").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let (www, state) = setup(&mut world, 95).await;
    let scheme = write_config(
        &mut world,
        &www,
        &state,
        &robot,
        ROBOT_SECRET,
        json!({"batch_size": 10}),
    );

    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 95 records: 95 written, 0 skipped, 0 dead-lettered"
        )),
        "{}",
        all_output(&out)
    );
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 10);
    let expected: Vec<String> = (1..=95).map(contact_name).collect();
    assert_each_record_once(&messages, &expected);
    let counts: Vec<usize> = messages.iter().map(announced_count).collect();
    assert_eq!(counts.iter().sum::<usize>(), 95);
    assert!(counts.iter().all(|&c| c <= 10), "{counts:?}");
    for m in &messages {
        assert_eq!(m["body"]["markdown"]["title"], "平台网站用户留言推送");
        assert!(
            !text_of(m).contains("（更新）"),
            "nothing is an update yet: {}",
            text_of(m)
        );
    }
    // Signatures: the sandbox answers 310000 to a bad one, 130101 over the limit; every call
    // having become a message means neither happened.
    let (calls, statuses) = robot.send_calls().await;
    assert_eq!(calls, 10);
    assert_eq!(statuses, BTreeMap::from([("200".to_string(), 10)]));
    assert!(
        !all_output(&out).contains(ROBOT_SECRET) && !all_output(&out).contains(ROBOT_TOKEN),
        "secrets stay out of the logs"
    );

    // A re-run extracts the same 95 rows; the ledger skips every one of them.
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 95 records: 0 written, 95 skipped, 0 dead-lettered"
        )),
        "{}",
        all_output(&out)
    );
    assert_eq!(robot.messages().await.len(), 10);
    assert_eq!(robot.send_calls().await.0, 10);
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_loaders_replays_and_reruns_push_each_record_once_and_changes_as_updates() {
    let mut world = World::new("r").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let (www, state) = setup(&mut world, 95).await;
    let scheme = write_config(
        &mut world,
        &www,
        &state,
        &robot,
        ROBOT_SECRET,
        json!({"batch_size": 10}),
    );
    let load_queue = names::work_queue(&scheme, Stage::Load);
    let runs = format!("`{}`.ferry_runs", state_db(&state));

    // Extract and transform first, and keep a copy of the load messages, as a dead-letter
    // replay or a redelivery after a crash would bring them back.
    world.spawn(&["transform", "--workers", "1"], "transform.log");
    let out = ferry(&world, &["extract", "--once"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    world
        .wait_for("10 load messages", Duration::from_secs(60), || async {
            (depth(&scheme, &load_queue).await == 10).then_some(())
        })
        .await;
    let copies = take(&load_queue, 10).await;
    assert_eq!(copies.len(), 10);
    assert_eq!(
        copies.iter().map(|(e, _)| e.records.len()).sum::<usize>(),
        95
    );
    publish(&load_queue, &copies).await;

    // Three loader processes: the queue's single active consumer and the limiter keep them
    // to one message at a time.
    for i in 0..3 {
        world.spawn(&["load", "--workers", "2"], &format!("load{i}.log"));
    }
    let w = &world;
    robot.wait_for_messages(&world, 10).await;
    world
        .wait_for("the run to settle", Duration::from_secs(120), || async {
            (w.scalar_i64(&format!(
                "SELECT COUNT(*) FROM {runs} WHERE status = 'done'"
            ))
            .await
                == 1)
                .then_some(())
        })
        .await;
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 10);
    let expected: Vec<String> = (1..=95).map(contact_name).collect();
    assert_each_record_once(&messages, &expected);
    assert_eq!(
        robot.send_calls().await,
        (10, BTreeMap::from([("200".to_string(), 10)]))
    );

    // The same load messages again: every record is in the ledger with the same digest.
    // Behind them, one sentinel record the ledger has never seen: the load queue has a single
    // active consumer, so once the sentinel reaches the robot every copy before it was handled.
    let mut sentinel = copies[0].clone();
    let mut record = sentinel.0.records[0].clone();
    record.id = "sentinel-哨兵".to_string();
    record.data["name"] = serde_json::json!("哨兵 🛰️");
    sentinel.0.records = vec![record];
    let mut again = copies.clone();
    again.push(sentinel);
    publish(&load_queue, &again).await;
    robot.wait_for_messages(&world, 11).await;
    let messages = robot.messages().await;
    assert_eq!(
        messages.len(),
        11,
        "the copies pushed nothing; only the sentinel went out"
    );
    assert!(
        messages[10].to_string().contains("哨兵 🛰️"),
        "{}",
        messages[10]
    );
    assert_each_record_once(&messages[..10], &expected);
    assert_eq!(
        w.scalar_i64(&format!("SELECT CAST(SUM(skipped) AS SIGNED) FROM {runs}"))
            .await,
        0,
        "the same messages again are not counted twice"
    );

    // A re-extraction: the same rows, all skipped.
    let out = ferry(&world, &["extract", "--once"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    world
        .wait_for("the re-run to settle", Duration::from_secs(120), || async {
            (w.scalar_i64(&format!(
                "SELECT COUNT(*) FROM {runs} WHERE status = 'done' AND written = 0 AND skipped = 95"
            ))
            .await
                == 1)
                .then_some(())
        })
        .await;
    assert_eq!(robot.messages().await.len(), 11);

    // One changed row: pushed again, alone, marked as an update.
    world
        .exec(&format!(
            "UPDATE `{www}`.www_contact SET company = '新公司 ✨' WHERE id = 42"
        ))
        .await;
    let out = ferry(&world, &["extract", "--once"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    robot.wait_for_messages(&world, 12).await;
    world
        .wait_for(
            "the third run to settle",
            Duration::from_secs(120),
            || async {
                (w.scalar_i64(&format!(
                "SELECT COUNT(*) FROM {runs} WHERE status = 'done' AND written = 1 AND skipped = 94"
            ))
            .await
                == 1)
                .then_some(())
            },
        )
        .await;
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 12);
    assert_eq!(
        text_of(&messages[11]),
        format!(
            "#### 用户留言（1 条）\n\n**1.**（更新）\n- 留言用户姓名: {}\n- 留言用户电话: 13800000042\n- 公司名称: 新公司 ✨\n- 留言时间: {}",
            contact_name(42),
            created_at_of(&world, &www, 42).await
        )
    );
    assert_eq!(robot.send_calls().await.0, 12);
    assert_eq!(depth(&scheme, &names::dlq(&scheme, Stage::Load)).await, 0);

    let codes = world.stop_all();
    assert_eq!(
        codes,
        vec![Some(0); 4],
        "graceful exits\n{}\n{}",
        world.log("load0.log"),
        world.log("transform.log")
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_per_ten_seconds_makes_sixty_records_take_twenty_seconds_without_130101() {
    let mut world = World::new("r").await;
    // The sandbox robot enforces 20 per 10 s (and would stay throttled for 10 minutes).
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 10, 20).await;
    let (www, state) = setup(&mut world, 60).await;
    let scheme = write_config(
        &mut world,
        &www,
        &state,
        &robot,
        ROBOT_SECRET,
        json!({"batch_size": 1, "window_secs": 10}),
    );

    let started = Instant::now();
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 60 records: 60 written, 0 skipped, 0 dead-lettered"
        )),
        "{}",
        all_output(&out)
    );
    assert!(elapsed >= Duration::from_secs(20), "{elapsed:?}");
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 60);
    assert!(messages.iter().all(|m| announced_count(m) == 1));
    let at: Vec<i64> = messages
        .iter()
        .map(|m| m["received_at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        at[59] - at[0] >= 20_000,
        "first to last message: {} ms",
        at[59] - at[0]
    );
    // No 10-second span holds more than 20 messages.
    for i in 20..at.len() {
        assert!(
            at[i] - at[i - 20] >= 10_000,
            "messages {} and {i} only {} ms apart",
            i - 20,
            at[i] - at[i - 20]
        );
    }
    assert_eq!(
        robot.send_calls().await,
        (60, BTreeMap::from([("200".to_string(), 60)]))
    );
    let expected: Vec<String> = (1..=60).map(contact_name).collect();
    assert_each_record_once(&messages, &expected);
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_stops_the_scheme_with_a_clear_error_and_keeps_every_message_queued() {
    let mut world = World::new("r").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let (www, state) = setup(&mut world, 95).await;
    let wrong = "SEC-not-the-robots-secret";
    let scheme = write_config(
        &mut world,
        &www,
        &state,
        &robot,
        wrong,
        json!({"batch_size": 10}),
    );

    let out = ferry(&world, &["run", "--once", "--timeout-secs", "120"]).await;
    assert!(!out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: stopped: connection `notify`: the DingTalk robot refused the message: \
             errcode 310000 (sign not match); check the connection's `secret`, `keyword`, the \
             robot's IP whitelist and this machine's clock"
        )),
        "{}",
        all_output(&out)
    );
    let everything = all_output(&out);
    assert!(
        !everything.contains(wrong) && !everything.contains(ROBOT_TOKEN),
        "{everything}"
    );
    let load_queue = names::work_queue(&scheme, Stage::Load);
    world
        .wait_for(
            "every load message back in the queue",
            Duration::from_secs(30),
            || async { (depth(&scheme, &load_queue).await == 10).then_some(()) },
        )
        .await;
    assert_eq!(depth(&scheme, &names::dlq(&scheme, Stage::Load)).await, 0);
    assert!(robot.messages().await.is_empty());
    world.clean().await;
}

/// The sink on its own, against the sandbox and a state database: 130101 answers are waited out
/// inside the sink, a 5xx burst is a transient failure, the ledger makes a second write a no-op
/// and a changed record an update, and token errors are configuration errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_waits_out_130101_and_records_every_push_in_the_ledger() {
    let mut world = World::new("r").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let metadata = sink_metadata();
    let conn = |token: &str| robot_connection(&robot, token, 10);
    let sink = |token: &str| robot_sink(&conn(token), &metadata, &state);
    let record = contact_record;
    let batch: Vec<Record> = (1..=4)
        .map(|i| record(&contact_name(i), "某某公司 😀"))
        .collect();
    let good = sink(ROBOT_TOKEN);

    // Every second call answers 130101: each is waited out (1 s window) and retried.
    robot
        .set_faults(json!({"robot": {"throttle_every": 2}}))
        .await;
    let report = tokio::time::timeout(Duration::from_secs(60), good.write(batch.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            report.counts.written,
            report.counts.skipped,
            report.failed.len()
        ),
        (4, 0, 0)
    );
    assert_eq!(robot.messages().await.len(), 4);
    assert_eq!(robot.send_calls().await.0, 7);

    // Written again (a redelivery): nothing is pushed.
    robot.set_faults(json!({"robot": {}})).await;
    let report = good.write(batch.clone()).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (0, 4));
    assert_eq!(robot.messages().await.len(), 4);

    // A 5xx burst: the batch fails as transient and nothing is recorded as delivered.
    robot.set_faults(json!({"robot": {"burst_5xx": 1}})).await;
    let changed = vec![record(&contact_name(1), "改名公司")];
    let err = good.write(changed.clone()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(
        err.to_string(),
        format!(
            "connection `notify`: the DingTalk robot at {} answered HTTP 503 Service Unavailable",
            robot.url()
        )
    );
    // The retry pushes the changed record, marked as an update, with its duplicate collapsed.
    let report = good
        .write(vec![changed[0].clone(), changed[0].clone()])
        .await
        .unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (1, 1));
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 5);
    assert_eq!(
        text_of(&messages[4]),
        format!(
            "#### 用户留言（1 条）\n\n**1.**（更新）\n- 留言用户姓名: {}\n- 公司名称: 改名公司",
            contact_name(1)
        )
    );

    // An unknown token is a configuration error naming the connection, not the token.
    let err = sink("not-the-token")
        .write(vec![record("王五", "乙")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FerryError::config(
            "connection `notify`: the DingTalk robot refused the message: errcode 300005 \
             (token is not exist); check the connection's `access_token`"
        )
    );
    assert_eq!(robot.messages().await.len(), 5);

    // Throttling that outlasts `throttle_retries` hands the batch back as transient, with the
    // window as the hint; nothing of it was pushed or recorded.
    let mut impatient = metadata.clone();
    impatient.extra.insert("throttle_retries".into(), json!(1));
    let impatient = robot_sink(&conn(ROBOT_TOKEN), &impatient, &state);
    robot
        .set_faults(json!({"robot": {"throttle_every": 1}}))
        .await;
    let started = Instant::now();
    let err = impatient
        .write(vec![record("赵六", "丙")])
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "one wait of the 1 s window + 1 s margin"
    );
    assert_eq!(
        err,
        FerryError::Transient {
            message: "connection `notify`: the DingTalk robot still answers errcode 130101 \
                      (send too fast, exceed 20 times per minute) after waiting out its window 1 time(s) of 2 s"
                .into(),
            retry_after: Some(Duration::from_secs(2)),
        }
    );
    robot.set_faults(json!({"robot": {}})).await;
    let report = impatient.write(vec![record("赵六", "丙")]).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (1, 0));
    assert_eq!(robot.messages().await.len(), 6);
    world.clean().await;
}

/// A push the robot took but never answered (the connection dropped) may be in the group: the
/// batch fails as transient, and when it comes back its record is pushed again marked
/// `（可能重复）`, so people know, instead of being dropped. A push the robot refused leaves no mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_answer_was_lost_is_pushed_again_marked_as_a_possible_repeat() {
    let mut world = World::new("rl").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let metadata = sink_metadata();
    let sink = robot_sink(&robot_connection(&robot, ROBOT_TOKEN, 1), &metadata, &state);
    let lost = vec![contact_record(&contact_name(1), "某某公司 😀")];

    robot
        .set_faults(json!({"robot": {"lose_answer_every": 1}}))
        .await;
    let err = sink.write(lost.clone()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(robot.messages().await.len(), 1, "the robot took it");

    robot.set_faults(json!({"robot": {}})).await;
    let report = sink.write(lost.clone()).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (1, 0));
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 2);
    assert_eq!(
        text_of(&messages[1]),
        format!(
            "#### 用户留言（1 条）\n\n**1.**（可能重复）\n- 留言用户姓名: {}\n- 公司名称: 某某公司 😀",
            contact_name(1)
        )
    );
    // Answered now: in the ledger, never pushed again.
    let report = sink.write(lost).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (0, 1));

    // Refused with a 5xx: not delivered, so the retry carries no mark.
    robot.set_faults(json!({"robot": {"burst_5xx": 1}})).await;
    let refused = vec![contact_record(&contact_name(2), "另一家")];
    assert_eq!(
        sink.write(refused.clone()).await.unwrap_err().class(),
        ErrorClass::Transient
    );
    let report = sink.write(refused).await.unwrap();
    assert_eq!(report.counts.written, 1);
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 3);
    assert!(
        text_of(&messages[2]).contains("**1.**\n"),
        "{}",
        text_of(&messages[2])
    );
    world.clean().await;
}

/// The robot target as the sink tests use it: idCheck, one record per message, a 1 s window.
fn sink_metadata() -> ferry_core::Metadata {
    serde_json::from_value(json!({
        "api": "DingTalkRoBotPush",
        "idCheck": true,
        "batch_size": 1,
        "window_secs": 1,
        "request": [
            {"field": "title", "value": "平台网站用户留言推送"},
            {"field": "header", "value": "用户留言"},
            {"label": "留言用户姓名", "field": "name", "value": "{name}"},
            {"label": "公司名称", "field": "company", "value": "{company}"}
        ]
    }))
    .unwrap()
}

fn robot_connection(
    robot: &Robot,
    token: &str,
    timeout_secs: u64,
) -> ferry_core::config::DingTalkRobotConnection {
    ferry_core::config::DingTalkRobotConnection {
        base_url: robot.url(),
        access_token: ferry_core::config::Secret::new(token),
        secret: Some(ferry_core::config::Secret::new(ROBOT_SECRET)),
        keyword: None,
        per_minute: 20,
        format: ferry_core::config::RobotFormat::Markdown,
        timeout_secs,
    }
}

fn robot_sink(
    conn: &ferry_core::config::DingTalkRobotConnection,
    metadata: &ferry_core::Metadata,
    state: &ferry_state::State,
) -> ferry_sinks::robot::RobotSink {
    ferry_sinks::robot::RobotSink::new(
        "notify",
        conn,
        metadata,
        state.clone(),
        ferry_sinks::robot::http_client().unwrap(),
        "sink-test",
    )
    .unwrap()
}

fn contact_record(name: &str, company: &str) -> Record {
    Record {
        id: name.to_string(),
        data: json!({"title": "平台网站用户留言推送", "header": "用户留言", "name": name, "company": company}),
        source: None,
    }
}

/// Take `count` messages of `queue` (acknowledged), keeping body and headers. A consumer, not
/// `basic.get`: quorum queues with a single active consumer refuse `basic.get`.
async fn take(queue: &str, count: usize) -> Vec<(Envelope, Headers)> {
    let bus = Bus::connect(common::AMQP, "ferry-test-robot-take")
        .await
        .unwrap();
    let mut consumer = bus
        .consume(queue, 50, "ferry-test-robot-take")
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let incoming = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("a load message within 30 s")
            .unwrap()
            .expect("the consumer is not cancelled");
        let envelope = incoming.envelope.clone().expect("an envelope");
        out.push((envelope, incoming.headers.clone()));
        incoming.ack().await.unwrap();
    }
    let _ = consumer.cancel().await;
    let _ = bus.close().await;
    out
}

/// Publish `messages` to `queue` with confirms.
async fn publish(queue: &str, messages: &[(Envelope, Headers)]) {
    let bus = Bus::connect(common::AMQP, "ferry-test-robot-publish")
        .await
        .unwrap();
    bus.publisher()
        .await
        .unwrap()
        .publish_many(queue, messages)
        .await
        .unwrap();
    let _ = bus.close().await;
}

async fn created_at_of(world: &World, www: &str, id: u64) -> String {
    world
        .scalar_string(&format!(
            "SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s') FROM `{www}`.www_contact WHERE id = {id}"
        ))
        .await
}

/// Issue 8 item 3: seed 000 pasted as shipped (its `id` is `name`) over contacts among whom only
/// five names occur. Each contact is a distinct content of its name, so each is pushed exactly
/// once over two runs, later contents of a name marked as updates; identical re-reads are
/// skipped by the ledger, and a third run pushes nothing. The summary says how many records
/// shared an id with different content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_as_shipped_pushes_each_of_37_contacts_with_5_names_exactly_once() {
    const NAMES: [&str; 5] = ["张三", "李四", "王五 😀", "赵六", "Ωmega 钱七"];
    let mut world = World::new("ri").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let www = world.database("www").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{www}`.www_contact (id BIGINT PRIMARY KEY, company VARCHAR(100),
                name VARCHAR(50), phone VARCHAR(20), created_at DATETIME) CHARACTER SET utf8mb4"
        ))
        .await;
    let add_contacts = |from: u64, to: u64| {
        format!(
            "INSERT INTO `{www}`.www_contact (id, company, name, phone, created_at)
             SELECT seq, CONCAT(ELT(1 + seq % 3, '某某公司 😀', '深圳🚀科技', '北京「引号」有限公司'), ' ', seq),
                 ELT(1 + seq % 5, '{}', '{}', '{}', '{}', '{}'), CONCAT('139', LPAD(seq, 8, '0')),
                 NOW() - INTERVAL seq MINUTE
             FROM `{www}`.seq_{from}_to_{to}",
            NAMES[0], NAMES[1], NAMES[2], NAMES[3], NAMES[4]
        )
    };
    let contact = |seq: u64| {
        (
            NAMES[(seq % 5) as usize].to_string(),
            format!("139{seq:08}"),
        )
    };

    // Seed 000 as shipped, under this test's name.
    let shipped = format!(
        "{}/../../config/schemes/contact-to-dingtalk.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seed: Value = serde_json::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
    let scheme = world.scheme_name("contact-to-dingtalk");
    seed["name"] = json!(scheme);
    world.write(
        "schemes/contact-to-dingtalk.json",
        &serde_json::to_string_pretty(&seed).unwrap(),
    );
    write_robot_toml(&world, &www, &state, &robot, ROBOT_SECRET);
    let all_contacts = |messages: &[Value]| {
        let mut seen: Vec<(String, String)> = messages.iter().flat_map(contacts_in).collect();
        seen.sort();
        seen
    };
    let updates = |messages: &[Value]| {
        messages
            .iter()
            .map(|m| text_of(m).matches("（更新）").count())
            .sum::<usize>()
    };

    // 20 contacts, 4 of each name: every one pushed, the 15 later contents of a name as updates.
    world.exec(&add_contacts(1, 20)).await;
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 20 records: 20 written, 0 skipped, 0 dead-lettered"
        )) && stdout(&out).contains("; 15 shared an id with different content"),
        "{}",
        all_output(&out)
    );
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 2);
    let mut want: Vec<(String, String)> = (1..=20).map(contact).collect();
    want.sort();
    assert_eq!(all_contacts(&messages), want);
    assert_eq!(updates(&messages), 15);
    for m in &messages {
        assert_eq!(announced_count(m), names_in(m).len());
    }

    // 17 more: the 20 read again are in the ledger (skipped), the 17 new ones are pushed, all
    // as updates since every name was pushed before.
    world.exec(&add_contacts(21, 37)).await;
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 37 records: 17 written, 20 skipped, 0 dead-lettered"
        )) && stdout(&out).contains("; 32 shared an id with different content"),
        "{}",
        all_output(&out)
    );
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 4);
    let mut want: Vec<(String, String)> = (1..=37).map(contact).collect();
    want.sort();
    assert_eq!(all_contacts(&messages), want, "each contact exactly once");
    assert_eq!(updates(&messages[2..]), 17);

    // A third run: everything is in the ledger.
    let out = ferry(&world, &["run", "--once", "--timeout-secs", "300"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{scheme}: 1 pages, 37 records: 0 written, 37 skipped, 0 dead-lettered"
        )),
        "{}",
        all_output(&out)
    );
    assert_eq!(robot.messages().await.len(), 4);
    assert_eq!(
        robot.send_calls().await,
        (4, BTreeMap::from([("200".to_string(), 4)]))
    );

    // `ferry status --json` keeps the count per run, newest first.
    let out = ferry(&world, &["status", "--json"]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = status[0]["runs"].as_array().unwrap();
    let shared: Vec<i64> = runs
        .iter()
        .map(|r| r["shared_id_different_content"].as_i64().unwrap())
        .collect();
    assert_eq!(shared, [32, 32, 15]);
    let out = ferry(&world, &["status"]).await;
    assert!(
        stdout(&out).contains("37 records: 17 written, 20 skipped, 0 dead-lettered; 32 shared an id with different content"),
        "{}",
        all_output(&out)
    );
    world.clean().await;
}

/// Pending marks are per content: two contents of one id in a push whose answer was lost are
/// both pushed again marked `（可能重复）`, the second also as an update; an identical repeat in
/// the batch is skipped, and once answered neither content is pushed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_contents_of_one_id_in_a_lost_push_both_come_back_marked_as_possible_repeats() {
    let mut world = World::new("rp").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let state = ferry_state::State::connect(&world.state_url())
        .await
        .unwrap();
    let mut metadata = sink_metadata();
    metadata.batch_size = Some(10);
    let sink = robot_sink(&robot_connection(&robot, ROBOT_TOKEN, 1), &metadata, &state);
    let first = contact_record("张三 😀", "某某公司");
    let second = contact_record("张三 😀", "深圳🚀科技");
    let batch = vec![first.clone(), second.clone(), first.clone()];

    robot
        .set_faults(json!({"robot": {"lose_answer_every": 1}}))
        .await;
    let err = sink.write(batch.clone()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(robot.messages().await.len(), 1, "the robot took it");

    robot.set_faults(json!({"robot": {}})).await;
    let report = sink.write(batch.clone()).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (2, 1));
    let messages = robot.messages().await;
    assert_eq!(messages.len(), 2);
    assert_eq!(
        text_of(&messages[1]),
        "#### 用户留言（2 条）\n\n\
         **1.**（可能重复）\n- 留言用户姓名: 张三 😀\n- 公司名称: 某某公司\n\n\
         **2.**（更新）（可能重复）\n- 留言用户姓名: 张三 😀\n- 公司名称: 深圳🚀科技"
    );
    let report = sink.write(batch).await.unwrap();
    assert_eq!((report.counts.written, report.counts.skipped), (0, 3));
    assert_eq!(robot.messages().await.len(), 2);
    world.clean().await;
}
