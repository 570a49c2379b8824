//! Issue 12 item 2, end to end against the real RabbitMQ and MariaDB: `ferry replay` filters
//! (error class, text, record id, failure time) that move only the selected dead letters and
//! leave the others in their order, the rate limit, the audit shown by `ferry status`,
//! `ferry discard`, `ferry teardown`, and re-rendering load dead letters after a mapping fix.

mod common;

use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::World;
use ferry_bus::{Bus, Headers, Stage, Topology, names};
use ferry_core::{Envelope, ErrorClass, Record};
use serde_json::{Value, json};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn all_output(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One seeded load dead letter: id, data, class, error, day of March 2026 it failed (08:00 UTC).
type Letter = (&'static str, Value, ErrorClass, &'static str, u32);

fn letters() -> Vec<Letter> {
    vec![
        (
            "1",
            json!({"name": "张三 😀", "company": "某某公司"}),
            ErrorClass::Record,
            "Duplicate entry '1' for key 'PRIMARY'",
            1,
        ),
        (
            "2",
            json!({"name": "李四🚀"}),
            ErrorClass::Transient,
            "Lock wait timeout exceeded; try restarting transaction",
            2,
        ),
        (
            "3",
            json!({"name": "王五", "company": "某某公司 😀"}),
            ErrorClass::Record,
            "Data too long for column 'name' at row 1",
            3,
        ),
        (
            "4",
            json!({"name": "Zoë «quoted»"}),
            ErrorClass::Transient,
            "connection reset by peer",
            4,
        ),
        (
            "5",
            json!({"name": "赵六"}),
            ErrorClass::Config,
            "Unknown column 'nmae' in 'field list'",
            5,
        ),
    ]
}

fn failed_on(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, 8, 0, 0).unwrap()
}

/// A world with one scheme (MySQL source to a no-op target; only its queues matter here).
async fn scheme_world(tag: &str) -> (World, String) {
    let mut world = World::new(tag).await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", "unused") + "[connections.noop]\nkind = \"noop\"\n"),
    );
    let scheme = world.scheme_name("dl");
    let text = json!({
        "name": scheme,
        "source": {"connection": "src", "metadata": {"api": "select", "id": "id",
            "otherRequest": [{"field": "main_sql", "value": "SELECT id, name FROM customers"}]}},
        "target": {"connection": "noop", "metadata": {"api": "写入空操作",
            "request": [{"field": "name", "value": "{name}"}]}}
    });
    world.write("schemes/dl.json", &text.to_string());
    (world, scheme)
}

/// Empty the scheme's load queues and put the five [`letters`] in its load DLQ, in order.
async fn seed(scheme: &str) {
    let bus = Bus::connect(common::AMQP, "ferry-test-seed").await.unwrap();
    bus.declare(scheme, &Topology::default()).await.unwrap();
    bus.purge_scheme(scheme).await.unwrap();
    let publisher = bus.publisher().await.unwrap();
    for (id, data, class, error, day) in letters() {
        let envelope = Envelope {
            scheme: scheme.to_string(),
            run_id: "run-1".into(),
            seq: 1,
            records: vec![Record::new(id, data)],
        };
        let headers = Headers {
            error_class: Some(class),
            error: Some(error.to_string()),
            first_failed_at: Some(failed_on(day)),
            failed_at: Some(failed_on(day)),
            record_id: Some(id.to_string()),
            ..Headers::new(scheme, "run-1", Stage::Load)
        };
        publisher
            .publish(&names::dlq(scheme, Stage::Load), &envelope, &headers)
            .await
            .unwrap();
    }
    bus.close().await.unwrap();
}

/// The record ids in `queue`, in queue order (the queue is emptied).
async fn ids_in(queue: &str) -> Vec<String> {
    common::drain_queue(queue)
        .await
        .iter()
        .map(|(body, _)| body["records"][0]["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Seed, run `ferry replay --scheme S --stage load <filter>`, and return (moved ids in the work
/// queue, ids left in the DLQ), both in queue order.
async fn replay_with(world: &World, scheme: &str, filter: &[&str]) -> (Vec<String>, Vec<String>) {
    seed(scheme).await;
    let mut args = vec!["replay", "--scheme", scheme, "--stage", "load"];
    args.extend_from_slice(filter);
    let out = world.ferry(&args);
    assert!(out.status.success(), "{}", all_output(&out));
    let moved = ids_in(&names::work_queue(scheme, Stage::Load)).await;
    assert!(
        stdout(&out).contains(&format!("moved {} dead letter(s)", moved.len())),
        "{}",
        all_output(&out)
    );
    let kept = ids_in(&names::dlq(scheme, Stage::Load)).await;
    (moved, kept)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_error_class_moves_only_that_class_and_keeps_the_rest_in_order() {
    let (world, scheme) = scheme_world("rc").await;
    let (moved, kept) = replay_with(&world, &scheme, &["--error-class", "transient"]).await;
    assert_eq!((moved, kept), (ids(&["2", "4"]), ids(&["1", "3", "5"])));
    let (moved, kept) = replay_with(&world, &scheme, &["--error-class", "config"]).await;
    assert_eq!((moved, kept), (ids(&["5"]), ids(&["1", "2", "3", "4"])));
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_text_looks_in_the_error_and_the_payload() {
    let (world, scheme) = scheme_world("rm").await;
    // In the payload, Chinese text as it is.
    let (moved, kept) = replay_with(&world, &scheme, &["--match", "某某公司"]).await;
    assert_eq!((moved, kept), (ids(&["1", "3"]), ids(&["2", "4", "5"])));
    // In the error, ignoring case.
    let (moved, kept) = replay_with(&world, &scheme, &["--match", "LOCK WAIT"]).await;
    assert_eq!((moved, kept), (ids(&["2"]), ids(&["1", "3", "4", "5"])));
    // Combined with --limit: the first match only; the rest stay in order.
    let (moved, kept) =
        replay_with(&world, &scheme, &["--match", "某某公司", "--limit", "1"]).await;
    assert_eq!((moved, kept), (ids(&["1"]), ids(&["2", "3", "4", "5"])));
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_record_id_moves_those_records() {
    let (world, scheme) = scheme_world("ri").await;
    let (moved, kept) = replay_with(&world, &scheme, &["--record", "5", "--record", "3"]).await;
    assert_eq!((moved, kept), (ids(&["3", "5"]), ids(&["1", "2", "4"])));
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_failure_time_takes_since_inclusive_until_exclusive() {
    let (world, scheme) = scheme_world("rt").await;
    // Until 2026-03-04 16:00 in Shanghai, i.e. 08:00 UTC: letter 4 failed exactly then.
    let (moved, kept) = replay_with(
        &world,
        &scheme,
        &[
            "--since",
            "2026-03-02 08:00",
            "--until",
            "2026-03-04T16:00:00+08:00",
        ],
    )
    .await;
    assert_eq!((moved, kept), (ids(&["2", "3"]), ids(&["1", "4", "5"])));
    let bad = world.ferry(&["replay", "--scheme", &scheme, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2), "{}", all_output(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`yesterday` is not a time"),
        "{}",
        all_output(&bad)
    );
    world.clean().await;
}

/// The audit rows of `scheme`, as `ferry status --json` shows them, newest first.
fn audits(world: &World, scheme: &str) -> Vec<Value> {
    let out = world.ferry(&["status", "--json", "--scheme", scheme]);
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", all_output(&out)));
    json[0]["replays"].as_array().cloned().unwrap_or_default()
}

fn seconds_between(audit: &Value) -> f64 {
    let at = |k: &str| DateTime::parse_from_rfc3339(audit[k].as_str().unwrap()).unwrap();
    (at("finished_at") - at("started_at")).as_seconds_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_at_a_rate_spreads_the_moves() {
    let (world, scheme) = scheme_world("rr").await;
    // 5 moves at 2/s: the first at once, then one every 0.5 s, so at least 2 s in all.
    let (moved, kept) = replay_with(&world, &scheme, &["--rate", "2/s"]).await;
    assert_eq!((moved.len(), kept.len()), (5, 0));
    let audit = &audits(&world, &scheme)[0];
    assert_eq!(audit["moved"], 5, "{audit}");
    assert!(seconds_between(audit) >= 1.95, "{audit}");
    let bad = world.ferry(&["replay", "--scheme", &scheme, "--rate", "0/s"]);
    assert_eq!(bad.status.code(), Some(2), "{}", all_output(&bad));
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replay_is_audited_and_shown_by_status() {
    let (world, scheme) = scheme_world("ra").await;
    seed(&scheme).await;
    let dry = world.ferry(&[
        "replay",
        "--scheme",
        &scheme,
        "--stage",
        "load",
        "--error-class",
        "record",
        "--dry-run",
        "--by",
        "运维-小王",
    ]);
    assert!(
        stdout(&dry).contains("2 dead letter(s) would move (dry run); filter: class=record"),
        "{}",
        all_output(&dry)
    );
    let real = world.ferry(&[
        "replay", "--scheme", &scheme, "--stage", "load", "--match", "赵六",
    ]);
    assert!(real.status.success(), "{}", all_output(&real));
    assert_eq!(ids_in(&names::dlq(&scheme, Stage::Load)).await.len(), 4);

    let rows = audits(&world, &scheme);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (newest, oldest) = (&rows[0], &rows[1]);
    assert_eq!(
        (
            &oldest["action"],
            &oldest["stage"],
            &oldest["by"],
            &oldest["filter"]
        ),
        (
            &json!("replay"),
            &json!("load"),
            &json!("运维-小王"),
            &json!("class=record")
        )
    );
    assert_eq!(
        (&oldest["dry_run"], &oldest["matched"], &oldest["moved"]),
        (&json!(true), &json!(2), &json!(0))
    );
    // The OS user, as the command takes it.
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        (
            &newest["by"],
            &newest["filter"],
            &newest["dry_run"],
            &newest["matched"],
            &newest["moved"]
        ),
        (
            &json!(user),
            &json!("match=\"赵六\""),
            &json!(false),
            &json!(1),
            &json!(1)
        )
    );
    assert!(
        newest["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{newest}"
    );
    assert!(newest["finished_at"].is_string(), "{newest}");

    let text = stdout(&world.ferry(&["status", "--scheme", &scheme]));
    assert!(
        text.contains(&format!(
            "replay load {}",
            newest["started_at"].as_str().unwrap()
        )) && text.contains(&format!("by {user}@"))
            && text.contains("(filter: match=\"赵六\"): matched 1, moved 1")
            && text.contains("replay (dry run) load")
            && text.contains("by 运维-小王@"),
        "{text}"
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_removes_the_selected_dead_letters_audited_with_a_dry_run_first() {
    let (world, scheme) = scheme_world("rd").await;
    seed(&scheme).await;
    let dlq = names::dlq(&scheme, Stage::Load);
    let dry = world.ferry(&[
        "discard",
        "--scheme",
        &scheme,
        "--stage",
        "load",
        "--error-class",
        "transient",
        "--dry-run",
    ]);
    assert!(
        stdout(&dry).contains("would discard 2 [transient] Lock wait timeout")
            && stdout(&dry).contains("2 dead letter(s) would be discarded (dry run)"),
        "{}",
        all_output(&dry)
    );
    let out = world.ferry(&[
        "discard",
        "--scheme",
        &scheme,
        "--stage",
        "load",
        "--error-class",
        "transient",
    ]);
    assert!(
        stdout(&out).contains(&format!("{dlq} -> (removed): discarded 2 dead letter(s)")),
        "{}",
        all_output(&out)
    );
    assert_eq!(ids_in(&dlq).await, ids(&["1", "3", "5"]));
    assert!(
        ids_in(&names::work_queue(&scheme, Stage::Load))
            .await
            .is_empty()
    );
    let rows = audits(&world, &scheme);
    assert_eq!(
        (
            &rows[0]["action"],
            &rows[0]["discarded"],
            &rows[0]["dry_run"]
        ),
        (&json!("discard"), &json!(2), &json!(false))
    );
    assert_eq!(
        (
            &rows[1]["action"],
            &rows[1]["matched"],
            &rows[1]["discarded"],
            &rows[1]["dry_run"]
        ),
        (&json!("discard"), &json!(2), &json!(0), &json!(true))
    );
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_refuses_queues_with_messages_and_removes_them_with_force() {
    let (world, scheme) = scheme_world("rw").await;
    seed(&scheme).await;
    let dlq = names::dlq(&scheme, Stage::Load);
    let refused = world.ferry(&["teardown", "--scheme", &scheme]);
    assert_eq!(refused.status.code(), Some(1), "{}", all_output(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("{scheme}: refused: its queues hold 5 message(s)")),
        "{}",
        all_output(&refused)
    );
    let bus = Bus::connect(common::AMQP, "ferry-test-teardown")
        .await
        .unwrap();
    let exists = |depths: Vec<ferry_bus::QueueDepth>| {
        depths
            .into_iter()
            .filter(|q| q.exists)
            .map(|q| q.queue)
            .collect::<Vec<_>>()
    };
    assert_eq!(exists(bus.queue_depths(&scheme).await.unwrap()).len(), 10);

    let forced = world.ferry(&["teardown", "--scheme", &scheme, "--force"]);
    let text = stdout(&forced);
    assert!(
        forced.status.success()
            && text.contains(&format!("removed {dlq} (5 message(s), 0 consumer(s))"))
            && text.contains(&format!(
                "{scheme}: removed 10 queue(s), 5 message(s) with them"
            )),
        "{}",
        all_output(&forced)
    );
    assert!(exists(bus.queue_depths(&scheme).await.unwrap()).is_empty());
    let again = world.ferry(&["teardown", "--scheme", &scheme]);
    assert!(
        again.status.success() && stdout(&again).contains("no queues to remove"),
        "{}",
        all_output(&again)
    );
    let rows = audits(&world, &scheme);
    assert_eq!(
        (&rows[0]["action"], &rows[0]["discarded"]),
        (&json!("teardown"), &json!(5))
    );
    bus.close().await.unwrap();
    world.clean().await;
}

/// A misspelt placeholder (`{nmae}`) renders null and the target refuses it; after the scheme is
/// fixed, `ferry replay --rerender` sends the load dead letters' source records through the
/// transform again: the records arrive, nothing is extracted again, and the run's counts move
/// from dead-lettered to inserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerender_after_a_mapping_fix_delivers_without_extracting_again() {
    let mut world = World::new("rn").await;
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL,
                city VARCHAR(40) NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.customers VALUES
                (1, '张三 😀', '上海'), (2, 'Zoë «quoted»', 'Berlin'), (3, '李四🚀', NULL),
                (4, '王五 公司', '深圳');
             CREATE TABLE `{dst}`.customers LIKE `{src}`.customers;"
        ))
        .await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src) + &common::mysql_connection("dst", &dst)),
    );
    let scheme = world.scheme_name("fix");
    let scheme_text = |name_value: &str| {
        json!({
            "name": scheme,
            "source": {"connection": "src", "metadata": {
                "api": "select", "id": "id", "pagination": {"pageSize": 3, "mode": "keyset"},
                "otherRequest": [{"field": "main_sql",
                    "value": "SELECT id, name, city FROM customers WHERE id > :last_id ORDER BY id LIMIT :limit"}]
            }},
            "target": {"connection": "dst", "metadata": {
                "api": "batchexecute", "write_mode": "update",
                "request": [
                    {"field": "id", "type": "int", "value": "{id}"},
                    {"field": "name", "value": name_value},
                    {"field": "city", "value": "{city}"}
                ],
                "otherRequest": [{"field": "main_sql", "value":
                    "INSERT INTO customers (id, name, city) VALUES (:id, :name, :city)"}]
            }}
        })
        .to_string()
    };
    world.write("schemes/fix.json", &scheme_text("{nmae}"));
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let status = |world: &World| -> Value {
        let out = world.ferry(&["status", "--json", "--scheme", &scheme]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", all_output(&out)))
    };
    let before = status(&world)[0]["runs"].clone();
    assert_eq!(
        (
            before.as_array().unwrap().len(),
            &before[0]["records"],
            &before[0]["dead_lettered"]
        ),
        (1, &json!(4), &json!(4)),
        "{before}"
    );

    world.write("schemes/fix.json", &scheme_text("{name}"));
    let replay = world.ferry(&["replay", "--scheme", &scheme, "--rerender"]);
    assert!(
        stdout(&replay).contains(&format!(
            "ferry.{scheme}.load.dlq -> ferry.{scheme}.transform: moved 4 dead letter(s)"
        )),
        "{}",
        all_output(&replay)
    );
    world.spawn(&["transform"], "transform.log");
    world.spawn(&["load"], "load.log");
    let w = &world;
    let rows_sql = format!(
        "SELECT GROUP_CONCAT(CONCAT_WS('|', id, name, IFNULL(city, '∅')) ORDER BY id SEPARATOR '\\n')
         FROM `{dst}`.customers"
    );
    world
        .wait_for(
            "the re-rendered records",
            Duration::from_secs(60),
            || async {
                (w.scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.customers"))
                    .await
                    == 4)
                    .then_some(())
            },
        )
        .await;
    assert_eq!(
        world.scalar_string(&rows_sql).await,
        "1|张三 😀|上海\n2|Zoë «quoted»|Berlin\n3|李四🚀|∅\n4|王五 公司|深圳"
    );
    let runs = world
        .wait_for("the run's counts", Duration::from_secs(30), || async {
            let runs = status(w)[0]["runs"].clone();
            (runs[0]["dead_lettered"] == 0).then_some(runs)
        })
        .await;
    // The same single run, the same extraction: nothing was extracted again.
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(
        (
            &runs[0]["run_id"],
            &runs[0]["pages"],
            &runs[0]["records"],
            &runs[0]["inserted"]
        ),
        (
            &before[0]["run_id"],
            &before[0]["pages"],
            &json!(4),
            &json!(4)
        ),
        "{runs}"
    );
    assert!(ids_in(&names::dlq(&scheme, Stage::Load)).await.is_empty());
    world.clean().await;
}

/// A replay killed in the middle of its pass loses no dead letter: each is in the work queue or
/// still in the DLQ (one published but not yet acknowledged may be in both), and the audit shows
/// the pass as one that did not finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_mid_pass_loses_nothing() {
    let (mut world, scheme) = scheme_world("rk").await;
    seed(&scheme).await;
    // Letters 2 and 4 are selected; at 1/s the second move waits a second after the first.
    let replay = world.spawn(
        &[
            "replay",
            "--scheme",
            &scheme,
            "--stage",
            "load",
            "--error-class",
            "transient",
            "--rate",
            "1/s",
        ],
        "replay.log",
    );
    let bus = Bus::connect(common::AMQP, "ferry-test-kill").await.unwrap();
    let work = names::work_queue(&scheme, Stage::Load);
    let b = &bus;
    world
        .wait_for("the first move", Duration::from_secs(30), || async {
            let depths = b.queue_depths(&scheme).await.ok()?;
            depths
                .iter()
                .any(|q| q.queue == work && q.messages >= 1)
                .then_some(())
        })
        .await;
    world.kill(replay);
    bus.close().await.unwrap();
    let mut seen = ids_in(&work).await;
    seen.extend(ids_in(&names::dlq(&scheme, Stage::Load)).await);
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ids(&["1", "2", "3", "4", "5"]));
    let audit = &audits(&world, &scheme)[0];
    assert!(audit["finished_at"].is_null(), "{audit}");
    let text = stdout(&world.ferry(&["status", "--scheme", &scheme]));
    assert!(
        text.contains("(filter: class=transient): matched 0, moved 0; did not finish"),
        "{text}"
    );
    world.clean().await;
}
