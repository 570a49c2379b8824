//! Issue 15: the WeCom group robot, the Feishu custom bot and the `http` target, each sink
//! against its sandbox simulator and a real state database (MariaDB): three sink replicas
//! sharing one limiter stay under the vendor's limit with no throttle answer, a second write
//! pushes nothing (the ledger), a wrong key or signature is a configuration error, and the HTTP
//! target dead-letters a refused record alone and retries a throttle code.

mod common;
#[path = "common/robot.rs"]
mod harness;

use std::time::Duration;

use common::World;
use ferry_core::config::{HttpConnection, Secret};
use ferry_core::{ErrorClass, FerryError, Metadata, Record};
use ferry_sandbox::SandboxOptions;
use ferry_sinks::Sink;
use ferry_sinks::robot::{FeishuWebhook, Format, RobotSettings, RobotSink, WeComWebhook};
use harness::Robot;
use serde_json::{Value, json};

fn contact(i: u64) -> Record {
    Record::new(
        &format!("c{i}"),
        json!({"title": "客户留言推送", "header": "用户留言", "name": format!("张三{i} 😀"), "company": format!("公司「{i}」")}),
    )
}

fn metadata(api: &str, extra: Value) -> Metadata {
    let mut m: Metadata = serde_json::from_value(json!({
        "api": api,
        "idCheck": true,
        "request": [
            {"field": "title", "value": "客户留言推送"},
            {"field": "header", "value": "用户留言"},
            {"label": "姓名", "field": "name", "value": "{name}"},
            {"label": "公司", "field": "company", "value": "{company}"}
        ]
    }))
    .unwrap();
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
        rate_per_sec: Some(20),
    };
    let mut meta: Metadata = serde_json::from_value(json!({
        "api": "/collect/v1/contacts",
        "method": "POST",
        "idCheck": true,
        "batch_size": 5,
        "success_pointer": "/code",
        "throttle_codes": [4290],
        "record_codes": [1001],
        "throttle_wait_secs": 1
    }))
    .unwrap();
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
    let mut ids: Vec<u64> = taken
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| match &r["body"] {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        })
        .map(|b| b["contact_id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
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
