//! The layout and options of a robot target, with DingTalk bodies.

use std::sync::Arc;

use ferry_core::config::{DingTalkRobotConnection, RobotFormat, Secret};
use ferry_core::scheme::{Field, Metadata};
use ferry_core::{FerryError, Record};
use serde_json::{Value, json};

use super::dingtalk::DingTalk;
use super::layout::{Entry, Layout, Message, Piece, labels, parse_template};
use super::options::Options;
use super::{MAX_BODY_BYTES, render_robot_messages};
use crate::ledger::Marks;

fn seed_000_metadata() -> Metadata {
    let field = |key: &str, label: &str, value: &str| Field {
        field: Some(key.into()),
        label: Some(label.into()),
        value: Some(Value::String(value.into())),
        ..Field::default()
    };
    Metadata {
        api: "DingTalkRoBotPush".into(),
        id_check: true,
        request: vec![
            field("access_token", "钉钉机器人token", "7ba5"),
            field("title", "首屏会话透出的展示内容", "平台网站用户留言推送"),
            field("header", "标题", "用户留言"),
            field("name", "留言用户姓名", "{name}"),
            field("phone", "留言用户电话", "{phone}"),
            field("company", "公司名称", "{company}"),
            field(":created_at", "留言时间", "{created_at}"),
        ],
        ..Metadata::default()
    }
}

fn conn() -> DingTalkRobotConnection {
    DingTalkRobotConnection {
        base_url: "http://127.0.0.1:9".into(),
        access_token: Secret::new("token"),
        secret: Some(Secret::new("SECsecret")),
        keyword: None,
        per_minute: 20,
        format: RobotFormat::Markdown,
        timeout_secs: 30,
    }
}

fn layout(metadata: &Metadata, conn: &DingTalkRobotConnection) -> Result<Layout, FerryError> {
    let vendor = Arc::new(DingTalk::new(conn));
    let o = Options::read(metadata, conn.format.into(), vendor.as_ref())?;
    Ok(Layout {
        vendor,
        format: o.format,
        template: o.template,
        labels: labels(metadata),
        records_per_message: o.records_per_message,
        mentions: o.mentions,
        keyword: conn.keyword.clone(),
        update_mark: o.update_mark,
        repeat_mark: o.repeat_mark,
        fallback_title: "scheme".into(),
    })
}

fn contact(layout: &Layout, name: &str, company: &str, update: bool) -> Entry {
    let data = json!({
        "access_token": "7ba5",
        "title": "平台网站用户留言推送",
        "header": "用户留言",
        "name": name,
        "phone": "13800138000",
        "company": company,
        "created_at": "2026-11-23 12:00:00",
    });
    let content = layout.content(&data);
    Entry {
        record: Record {
            id: name.into(),
            data,
            source: None,
        },
        digest: content.digest(),
        content,
        marks: Marks {
            update,
            maybe_repeat: false,
        },
    }
}

fn body_json(message: &Message) -> Value {
    serde_json::from_slice(&message.body).unwrap()
}

#[test]
fn bytes_show_as_their_text_or_as_hex() {
    let l = layout(&seed_000_metadata(), &conn()).unwrap();
    let data = json!({
        "name": ferry_core::record::bytes_value("张三🚀".as_bytes()),
        "company": ferry_core::record::bytes_value(&[0x00, 0xFF, 0x10]),
    });
    let values: Vec<String> = l.content(&data).lines.into_iter().map(|(_, v)| v).collect();
    assert!(values.contains(&"张三🚀".to_string()), "{values:?}");
    assert!(values.contains(&"0x00FF10".to_string()), "{values:?}");
}

#[test]
fn seed_000_renders_as_markdown_with_the_count_and_labelled_lines() {
    let l = layout(&seed_000_metadata(), &conn()).unwrap();
    let entries = vec![
        contact(&l, "张三", "某某公司 😀", false),
        contact(&l, "李四🚀", "另一家", true),
    ];
    let (messages, too_long) = l.split(&entries);
    assert!(too_long.is_empty());
    assert_eq!(messages.len(), 1);
    assert_eq!(
        body_json(&messages[0]),
        json!({
            "msgtype": "markdown",
            "markdown": {
                "title": "平台网站用户留言推送",
                "text": "#### 用户留言（2 条）\n\n\
                         **1.**\n- 留言用户姓名: 张三\n- 留言用户电话: 13800138000\n- 公司名称: 某某公司 😀\n- 留言时间: 2026-11-23 12:00:00\n\n\
                         **2.**（更新）\n- 留言用户姓名: 李四🚀\n- 留言用户电话: 13800138000\n- 公司名称: 另一家\n- 留言时间: 2026-11-23 12:00:00"
            }
        })
    );
}

#[test]
fn records_whose_push_went_unanswered_are_marked_as_possible_repeats() {
    let mut meta = seed_000_metadata();
    let l = layout(&meta, &conn()).unwrap();
    let mut first = contact(&l, "张三", "某某公司 😀", false);
    let mut second = contact(&l, "李四🚀", "另一家", true);
    first.marks.maybe_repeat = true;
    second.marks.maybe_repeat = true;
    let (messages, _) = l.split(&[first.clone(), second.clone()]);
    let text = body_json(&messages[0])["markdown"]["text"].clone();
    let text = text.as_str().unwrap();
    assert!(text.contains("**1.**（可能重复）\n"), "{text}");
    assert!(text.contains("**2.**（更新）（可能重复）\n"), "{text}");

    meta.extra
        .insert("repeat_mark".into(), json!(" [maybe again]"));
    let l = layout(&meta, &conn()).unwrap();
    let (messages, _) = l.split(&[first]);
    let text = body_json(&messages[0])["markdown"]["text"].clone();
    assert!(
        text.as_str().unwrap().contains("**1.** [maybe again]\n"),
        "{text}"
    );
    meta.extra.insert("repeat_mark".into(), json!(1));
    assert_eq!(
        layout(&meta, &conn()).unwrap_err().to_string(),
        "target.metadata.repeat_mark: must be text"
    );
}

#[test]
fn text_format_template_and_at_are_configurable() {
    let mut meta = seed_000_metadata();
    meta.extra.insert("format".into(), json!("text"));
    meta.extra.insert(
        "message_template".into(),
        json!("{header} x{count} {braces}\n{records}"),
    );
    assert_eq!(
        layout(&meta, &conn()).unwrap_err().to_string(),
        "target.metadata.message_template: unknown placeholder `{braces}`; use `{title}`, `{header}`, `{count}`, `{records}`"
    );
    meta.extra.insert(
        "message_template".into(),
        json!("{header} x{count} {} {\n{records}"),
    );
    meta.extra
        .insert("at_mobiles".into(), json!(["13800138000", 13900139000u64]));
    meta.extra.insert("at_all".into(), json!(true));
    let l = layout(&meta, &conn()).unwrap();
    let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
    assert_eq!(
        body_json(&messages[0]),
        json!({
            "msgtype": "text",
            "text": { "content": "用户留言 x1 {} {\n1.\n留言用户姓名: 张三\n留言用户电话: 13800138000\n公司名称: 甲\n留言时间: 2026-11-23 12:00:00\n\n@13800138000 @13900139000" },
            "at": { "atMobiles": ["13800138000", "13900139000"], "isAtAll": true }
        })
    );
}

#[test]
fn bad_metadata_reports_every_key() {
    let mut meta = seed_000_metadata();
    meta.batch_size = Some(0);
    meta.extra.insert("window_secs".into(), json!(0));
    meta.extra.insert("at_all".into(), json!("yes"));
    meta.extra.insert("format".into(), json!("html"));
    meta.extra
        .insert("message_template".into(), json!("{count}"));
    assert_eq!(
        layout(&meta, &conn()).unwrap_err(),
        FerryError::config(
            "target.metadata.format: `html` is not a robot format (markdown, text); \
             target.metadata.message_template: must contain `{records}`, or the records would not be shown; \
             target.metadata.batch_size: must be at least 1; \
             target.metadata.at_all: must be true or false; \
             target.metadata.window_secs: `0` is not a whole number from 1 to 3600"
        )
    );
}

#[test]
fn batches_split_by_count_and_stay_under_the_byte_limit() {
    let mut meta = seed_000_metadata();
    meta.batch_size = Some(10);
    let l = layout(&meta, &conn()).unwrap();
    let entries: Vec<Entry> = (0..95)
        .map(|i| contact(&l, &format!("客户{i}"), "某某公司", false))
        .collect();
    let (messages, too_long) = l.split(&entries);
    assert!(too_long.is_empty());
    let sizes: Vec<usize> = messages.iter().map(|m| m.indexes.len()).collect();
    assert_eq!(sizes, vec![10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    let last = body_json(&messages[9]);
    assert!(
        last["markdown"]["text"]
            .as_str()
            .unwrap()
            .starts_with("#### 用户留言（5 条）")
    );

    // Records of ~3 KB each: six fit under 20,000 bytes, so a batch of 10 splits.
    let big = "长".repeat(1_000);
    let entries: Vec<Entry> = (0..10)
        .map(|i| contact(&l, &format!("c{i}"), &big, false))
        .collect();
    let (messages, too_long) = l.split(&entries);
    assert!(too_long.is_empty());
    let sizes: Vec<usize> = messages.iter().map(|m| m.indexes.len()).collect();
    assert_eq!(sizes, vec![6, 4]);
    for m in &messages {
        assert!(m.body.len() < MAX_BODY_BYTES, "{}", m.body.len());
    }
    let all: Vec<usize> = messages.iter().flat_map(|m| m.indexes.clone()).collect();
    assert_eq!(all, (0..10).collect::<Vec<_>>());

    // A record that cannot fit even alone is reported, its neighbours still go.
    let huge = "长".repeat(7_000);
    let entries = vec![
        contact(&l, "a", "甲", false),
        contact(&l, "b", &huge, false),
        contact(&l, "c", "丙", false),
    ];
    let (messages, too_long) = l.split(&entries);
    assert_eq!(too_long, vec![1]);
    let all: Vec<Vec<usize>> = messages.iter().map(|m| m.indexes.clone()).collect();
    assert_eq!(all, vec![vec![0, 2]]);
}

#[test]
fn the_keyword_is_added_only_when_missing() {
    let mut c = conn();
    c.keyword = Some("留言".into());
    let l = layout(&seed_000_metadata(), &c).unwrap();
    let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
    assert!(
        !body_json(&messages[0])["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("留言")
    );
    c.keyword = Some("通知".into());
    let l = layout(&seed_000_metadata(), &c).unwrap();
    let (messages, _) = l.split(&[contact(&l, "张三", "甲", false)]);
    assert!(
        body_json(&messages[0])["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("\n\n通知")
    );
}

#[test]
fn the_digest_follows_what_is_shown() {
    let l = layout(&seed_000_metadata(), &conn()).unwrap();
    let a = contact(&l, "张三", "甲", false);
    let again = contact(&l, "张三", "甲", true);
    let changed = contact(&l, "张三", "乙", false);
    assert_eq!(a.digest, again.digest);
    assert_ne!(a.digest, changed.digest);
    assert_eq!(a.digest.len(), 64);
    // A field the message does not show (access_token) does not change the digest.
    let mut data = a.record.data.clone();
    data["access_token"] = json!("other");
    assert_eq!(l.content(&data).digest(), a.digest);
}

#[test]
fn template_braces_that_are_not_placeholders_stay() {
    assert_eq!(
        parse_template("a {b c} {records}{").unwrap(),
        vec![
            Piece::Text("a {b c} ".into()),
            Piece::Records,
            Piece::Text("{".into())
        ]
    );
}

/// `ferry test` shows the bodies `write` pushes: ten records a message, a later content of an id
/// marked as an update, an identical repeat dropped, the mention in the text and `at`.
#[test]
fn rendered_messages_are_the_bodies_write_pushes() {
    let mut metadata = seed_000_metadata();
    metadata
        .extra
        .insert("at_mobiles".into(), json!(["13800138000"]));
    let record = |id: &str, phone: &str| {
        Record::new(
            id,
            json!({"title": "平台网站用户留言推送", "header": "用户留言", "name": id, "phone": phone}),
        )
    };
    let mut records: Vec<Record> = (0..11).map(|i| record(&format!("客户{i}"), "1")).collect();
    records.push(record("客户0", "1"));
    records.push(record("客户0", "2 😀"));
    let (bodies, failed) = render_robot_messages(
        &ferry_core::config::Connection::DingTalkRobot(conn()),
        &metadata,
        "contacts",
        records,
    )
    .unwrap();
    assert!(failed.is_empty());
    assert_eq!(bodies.len(), 2);
    let text = |i: usize| bodies[i]["markdown"]["text"].as_str().unwrap().to_string();
    assert!(text(0).starts_with("#### 用户留言（10 条）"), "{}", text(0));
    assert!(text(1).starts_with("#### 用户留言（2 条）"), "{}", text(1));
    assert!(
        text(1).contains("**2.**（更新）\n- 留言用户姓名: 客户0\n- 留言用户电话: 2 😀"),
        "{}",
        text(1)
    );
    assert!(text(1).ends_with("\n\n@13800138000"));
    assert_eq!(
        bodies[1]["at"],
        json!({"atMobiles": ["13800138000"], "isAtAll": false})
    );
}
