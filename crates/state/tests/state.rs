//! The state tables against the real MariaDB, each test in its own database.

use std::time::Duration;

use ferry_state::{ConfirmedPage, Counts, Reconciled, RunStatus, Settled, State};

const SERVER: &str = "mysql://root@127.0.0.1:3306";

struct TestDb {
    name: String,
    state: State,
}

impl TestDb {
    async fn new() -> TestDb {
        let name = format!("ferry_state_test_{}", uuid::Uuid::now_v7().simple());
        let state = State::connect(&format!("{SERVER}/{name}"))
            .await
            .expect("state db");
        TestDb { name, state }
    }

    async fn drop_db(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE `{}`",
            self.name
        )))
        .execute(self.state.pool())
        .await
        .expect("drop test db");
    }
}

const DIGEST: &str = "d1";

/// A confirmed page of scheme `s`.
fn page<'a>(
    run_id: &'a str,
    records: u64,
    cursor: Option<&'a serde_json::Value>,
) -> ConfirmedPage<'a> {
    ConfirmedPage {
        scheme: "s",
        run_id,
        records,
        cursor,
        source_digest: DIGEST,
        data_cursor: None,
        window_start: None,
    }
}

#[tokio::test]
async fn an_interrupted_run_resumes_after_its_last_confirmed_page_with_the_same_source() {
    let db = TestDb::new().await;
    let s = &db.state;
    assert_eq!(
        s.resume_run("s", DIGEST).await.unwrap(),
        None,
        "nothing saved"
    );
    s.start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    let first = serde_json::json!({"last_id": 500});
    let second = serde_json::json!({"last_id": 1000});
    s.page_confirmed(&page("r1", 500, Some(&first)))
        .await
        .unwrap();
    s.page_confirmed(&page("r1", 500, Some(&second)))
        .await
        .unwrap();
    s.end_extraction("r1", Some("lost the RabbitMQ connection"))
        .await
        .unwrap();

    assert_eq!(
        s.resume_run("s", "another source").await.unwrap(),
        None,
        "a changed source starts over"
    );
    let resume = s.resume_run("s", DIGEST).await.unwrap().expect("resumable");
    assert_eq!(resume.cursor, second, "after the last confirmed page");
    assert_eq!(
        (
            resume.run.run_id.as_str(),
            resume.run.status.as_str(),
            resume.run.pages,
            resume.run.records,
            resume.run.error
        ),
        ("r1", "extracting", 2, 1000, None)
    );

    // A run that extracted everything is never resumed: its cursor is gone.
    s.end_extraction("r1", None).await.unwrap();
    s.complete_sync("s", chrono::Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(s.resume_run("s", DIGEST).await.unwrap(), None);
    db.drop_db().await;
}

#[tokio::test]
async fn a_complete_extraction_ends_the_run_and_clears_the_position_at_once() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    let cursor = serde_json::json!({"last_id": 1000});
    s.page_confirmed(&page("r1", 1000, Some(&cursor)))
        .await
        .unwrap();
    // Every record settled before the extraction ended: the run is done with it.
    s.settle(&Settled {
        run_id: "r1",
        key: "k1",
        stage: "load",
        counts: Counts {
            inserted: 1000,
            ..Counts::default()
        },
        dead_ids: &[],
        replayed_ok: None,
        shared_id: 0,
    })
    .await
    .unwrap();
    let since = chrono::Utc::now();
    s.extraction_complete("r1", "s", since, None).await.unwrap();
    let run = s.run("r1").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Done);
    let checkpoint = s.checkpoint("s").await.unwrap();
    assert_eq!((checkpoint.cursor, checkpoint.run_id), (None, None));
    assert!(checkpoint.last_sync_time.is_some());
    assert_eq!(s.resume_run("s", DIGEST).await.unwrap(), None);
    db.drop_db().await;
}

#[tokio::test]
async fn roles_are_shown_with_their_node_and_move_when_they_connect_afresh() {
    let db = TestDb::new().await;
    let s = &db.state;
    let schemes = vec!["orders".to_string()];
    let seen = |node| ferry_state::RoleSeen {
        process: "host-1-a",
        role: "load",
        host: "host",
        pid: 1,
        schemes: &schemes,
        broker_node: node,
    };
    s.role_seen(&seen("127.0.0.1:5681")).await.unwrap();
    let first = s.roles(Duration::from_secs(30)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].role.as_str(), first[0].broker_node.as_str()),
        ("load", "127.0.0.1:5681")
    );
    assert_eq!(first[0].schemes, schemes);
    // A heartbeat on the same node keeps when it connected; another node moves it.
    s.role_seen(&seen("127.0.0.1:5681")).await.unwrap();
    let again = s.roles(Duration::from_secs(30)).await.unwrap();
    assert_eq!(again[0].connected_at, first[0].connected_at);
    s.role_seen(&seen("127.0.0.1:5682")).await.unwrap();
    let moved = s.roles(Duration::from_secs(30)).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].broker_node, "127.0.0.1:5682");
    assert!(moved[0].connected_at > first[0].connected_at);
    s.role_gone("host-1-a").await.unwrap();
    assert!(s.roles(Duration::from_secs(30)).await.unwrap().is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_checkpoints_round_trip() {
    let db = TestDb::new().await;
    // A second process starting against the same database runs the migrations again.
    State::connect(&format!("{SERVER}/{}", db.name))
        .await
        .expect("second connect");

    assert_eq!(db.state.checkpoint("s").await.unwrap(), Default::default());
    let cursor = serde_json::json!({"last_id": 42, "note": "中文🚀"});
    db.state
        .start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    db.state
        .page_confirmed(&page("r1", 10, Some(&cursor)))
        .await
        .unwrap();
    let cp = db.state.checkpoint("s").await.unwrap();
    assert_eq!(
        (cp.cursor, cp.run_id.as_deref(), cp.source_digest.as_deref()),
        (Some(cursor), Some("r1"), Some(DIGEST))
    );

    let since = chrono::Utc::now();
    db.state.complete_sync("s", since, None).await.unwrap();
    let cp = db.state.checkpoint("s").await.unwrap();
    assert_eq!((cp.cursor, cp.run_id), (None, None));
    assert_eq!(
        cp.last_sync_time.unwrap().timestamp_micros(),
        since.timestamp_micros()
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    let db = TestDb::new().await;
    let s = &db.state;
    assert!(
        s.try_lock("extract:s", "a", Duration::from_millis(400))
            .await
            .unwrap()
    );
    assert!(
        !s.try_lock("extract:s", "b", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        s.try_lock("extract:s", "a", Duration::from_millis(400))
            .await
            .unwrap(),
        "renew"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        s.try_lock("extract:s", "b", Duration::from_secs(5))
            .await
            .unwrap(),
        "take over"
    );
    assert_eq!(
        s.lock_holder("extract:s").await.unwrap().as_deref(),
        Some("b")
    );
    s.unlock("extract:s", "b").await.unwrap();
    assert_eq!(s.lock_holder("extract:s").await.unwrap(), None);
    db.drop_db().await;
}

#[tokio::test]
async fn a_dead_holders_lease_can_be_taken_over_once() {
    let db = TestDb::new().await;
    let s = &db.state;
    let ttl = Duration::from_secs(60);
    assert!(s.try_lock("extract:s", "dead", ttl).await.unwrap());
    assert!(
        s.take_over_lock("extract:s", "dead", "b", ttl)
            .await
            .unwrap()
    );
    assert!(
        !s.take_over_lock("extract:s", "dead", "c", ttl)
            .await
            .unwrap(),
        "only one taker wins"
    );
    assert_eq!(
        s.lock_holder("extract:s").await.unwrap().as_deref(),
        Some("b")
    );
    db.drop_db().await;
}

/// A load message of run `r1` that settled `counts`, dead-lettering `dead_ids`.
fn load<'a>(key: &'a str, counts: Counts, dead_ids: &'a [String]) -> Settled<'a> {
    Settled {
        run_id: "r1",
        key,
        stage: "load",
        counts,
        dead_ids,
        replayed_ok: None,
        shared_id: 0,
    }
}

#[tokio::test]
async fn runs_settle_to_done() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    s.page_confirmed(&page("r1", 3, None)).await.unwrap();
    s.page_confirmed(&page("r1", 2, None)).await.unwrap();
    let two = Counts {
        inserted: 2,
        ..Counts::default()
    };
    let shared = |key| Settled {
        shared_id: 1,
        ..load(key, two, &[])
    };
    s.settle(&shared("batch-a")).await.unwrap();
    // The same message, redelivered.
    let again = s.settle(&shared("batch-a")).await.unwrap();
    assert!(!again.counted);
    s.end_extraction("r1", None).await.unwrap();
    assert_eq!(
        s.run("r1").await.unwrap().unwrap().status,
        RunStatus::Loading
    );
    assert_eq!(
        s.run("r1").await.unwrap().unwrap().counts.inserted,
        2,
        "a redelivered batch counts once"
    );
    let rest = Counts {
        unchanged: 1,
        kept: 1,
        dead: 1,
        ..Counts::default()
    };
    s.settle(&load("batch-b", rest, &["z".to_string()]))
        .await
        .unwrap();
    let run = s.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (run.status, run.pages, run.records, run.settled()),
        (RunStatus::Done, 2, 5, 5)
    );
    assert_eq!(
        run.shared_id, 1,
        "counted once, and not as a settled record"
    );
    db.drop_db().await;
}

/// A dead letter replayed and failing again stays counted once; replayed and written, it moves
/// from `dead` to the outcome; a stage's configuration stop marks the run stopped with its error.
#[tokio::test]
async fn replayed_records_move_out_of_dead_and_stopped_runs_say_why() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    s.page_confirmed(&page("r1", 3, None)).await.unwrap();
    s.end_extraction("r1", None).await.unwrap();
    let poison = ["记录-7 😀".to_string()];
    let one_dead = Counts {
        inserted: 2,
        dead: 1,
        ..Counts::default()
    };
    s.settle(&load("page-1", one_dead, &poison)).await.unwrap();
    assert_eq!(
        s.dead_by_stage("r1").await.unwrap(),
        vec![("load".to_string(), 1)]
    );
    // Replayed, failing again: still one dead letter.
    let failed_again = s
        .settle(&Settled {
            replayed_ok: Some(&[]),
            ..load(
                "replay-1",
                Counts {
                    dead: 1,
                    ..Counts::default()
                },
                &poison,
            )
        })
        .await
        .unwrap();
    assert_eq!(
        failed_again,
        Reconciled {
            counted: true,
            recovered: 0,
            dead_again: 1
        }
    );
    let run = s.run("r1").await.unwrap().unwrap();
    assert_eq!((run.counts.inserted, run.counts.dead), (2, 1));
    // Replayed after the fix: inserted, and out of dead.
    let written = s
        .settle(&Settled {
            replayed_ok: Some(&poison),
            ..load(
                "replay-2",
                Counts {
                    inserted: 1,
                    ..Counts::default()
                },
                &[],
            )
        })
        .await
        .unwrap();
    assert_eq!(written.recovered, 1);
    let run = s.run("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            run.records,
            run.counts.inserted,
            run.counts.dead,
            run.status
        ),
        (3, 3, 0, RunStatus::Done)
    );
    assert!(s.dead_by_stage("r1").await.unwrap().is_empty());

    s.start_run("r2", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    s.stop_run("r2", "Unknown column 'citty' in 'INSERT INTO'")
        .await
        .unwrap();
    s.end_extraction("r2", None).await.unwrap();
    let run = s.run("r2").await.unwrap().unwrap();
    assert_eq!(
        (run.status, run.error.as_deref()),
        (
            RunStatus::Stopped,
            Some("Unknown column 'citty' in 'INSERT INTO'")
        )
    );
    db.drop_db().await;
}

#[tokio::test]
async fn the_ledger_remembers_every_content_of_an_id() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.record_delivered(
        "s",
        &[("张三".into(), "d1".into()), ("b".into(), "d2".into())],
    )
    .await
    .unwrap();
    s.record_delivered("s", &[("b".into(), "d3".into())])
        .await
        .unwrap();
    // A row of the ledger as versions before the content ledger kept it: still a delivered fact.
    sqlx::query(
        "INSERT INTO ferry_ledger (scheme, record_id, digest, delivered_at)
         VALUES ('s', 'old 😀', 'd0', UTC_TIMESTAMP(6))",
    )
    .execute(s.pool())
    .await
    .unwrap();
    let got = s
        .ledger(
            "s",
            &["张三".into(), "b".into(), "c".into(), "old 😀".into()],
        )
        .await
        .unwrap();
    let digests = |id: &str| {
        let mut d: Vec<&str> = got[id].iter().map(|e| e.digest.as_str()).collect();
        d.sort();
        d
    };
    assert_eq!(got.len(), 3);
    assert_eq!(digests("张三"), ["d1"]);
    assert_eq!(digests("b"), ["d2", "d3"], "both contents of b");
    assert_eq!(digests("old 😀"), ["d0"]);

    // Pending marks are per content: settling one content of an id leaves the other.
    let both = [
        ("b".to_string(), "d4".to_string()),
        ("b".into(), "d5".into()),
    ];
    s.mark_pending("s", &both).await.unwrap();
    s.record_delivered("s", &both[..1]).await.unwrap();
    let pending = s.pending("s", &["b".into()]).await.unwrap();
    assert_eq!(pending.into_iter().collect::<Vec<_>>(), [both[1].clone()]);
    s.clear_pending("s", &both[1..]).await.unwrap();
    assert!(s.pending("s", &["b".into()]).await.unwrap().is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn the_rate_limit_is_a_sliding_window_shared_by_callers() {
    let db = TestDb::new().await;
    let s = &db.state;
    let window = Duration::from_millis(800);
    // Two "replicas" drawing from the same limiter.
    let other = State::connect(&format!("{SERVER}/{}", db.name))
        .await
        .unwrap();
    let mut granted = 0;
    for i in 0..6 {
        let who = if i % 2 == 0 { s } else { &other };
        if who
            .take_rate_slot("robot:x", 4, window)
            .await
            .unwrap()
            .is_none()
        {
            granted += 1;
        }
    }
    assert_eq!(granted, 4);
    let wait = s
        .take_rate_slot("robot:x", 4, window)
        .await
        .unwrap()
        .expect("full");
    assert!(wait <= window, "wait {wait:?} within the window");
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(s.take_rate_slot("robot:x", 4, window).await.unwrap(), None);
    db.drop_db().await;
}

#[tokio::test]
async fn tokens_expire_with_a_margin() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.save_token("okki", "tok", None, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.token("okki", Duration::from_secs(10)).await.unwrap(),
        Some(("tok".into(), None))
    );
    assert_eq!(
        s.token("okki", Duration::from_secs(120)).await.unwrap(),
        None,
        "refresh before expiry"
    );
    s.forget_token("okki").await.unwrap();
    assert_eq!(s.token("okki", Duration::ZERO).await.unwrap(), None);
    db.drop_db().await;
}

/// The data cursor: the largest `cursor_field` value so far is saved with each page's position
/// (a resumed run gets it back), promoted by the end of a complete run, and kept by a complete
/// run that saw no value.
#[tokio::test]
async fn the_data_cursor_and_the_window_survive_a_resume_and_a_run_that_saw_no_value() {
    let db = TestDb::new().await;
    let s = &db.state;
    s.start_run("r1", "s", chrono::Utc::now(), None)
        .await
        .unwrap();
    let position = serde_json::json!({"last_id": 5});
    let seen = serde_json::json!("2024-03-01 10:00:00");
    // The window started on the source's clock, five minutes off Ferry's.
    let window_start = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    s.page_confirmed(&ConfirmedPage {
        data_cursor: Some(&seen),
        window_start: Some(window_start),
        ..page("r1", 5, Some(&position))
    })
    .await
    .unwrap();
    s.end_extraction("r1", Some("stopped")).await.unwrap();
    let resume = s.resume_run("s", DIGEST).await.unwrap().expect("resumable");
    assert_eq!(resume.data_cursor.as_ref(), Some(&seen));
    assert_eq!(
        resume.window_start.map(|t| t.timestamp_micros()),
        Some(window_start.timestamp_micros())
    );
    assert_eq!(s.checkpoint("s").await.unwrap().data_cursor, None);

    s.end_extraction("r1", None).await.unwrap();
    s.complete_sync("s", chrono::Utc::now(), Some(&seen))
        .await
        .unwrap();
    let checkpoint = s.checkpoint("s").await.unwrap();
    assert_eq!(
        (checkpoint.data_cursor.as_ref(), checkpoint.run_data_cursor),
        (Some(&seen), None)
    );
    // The next run saw no row: LAST_CURSOR stays where it was.
    s.complete_sync("s", chrono::Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(s.checkpoint("s").await.unwrap().data_cursor, Some(seen));
    db.drop_db().await;
}
