//! Integration tests against the real RabbitMQ at 127.0.0.1:5672 (guest/guest).
//!
//! Each test uses a scheme name with a random suffix, deletes its queues at the end (also when
//! it fails), and puts a timeout around every wait.

use std::future::Future;
use std::time::Duration;

use ferry_bus::{
    Bus, BusError, Consumer, Headers, Incoming, Publisher, Routed, Stage, Topology, names, trace,
};
use ferry_core::{Envelope, ErrorClass, FerryError, Record};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::json;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Longest wait for any single broker interaction in these tests.
const WAIT_SECS: u64 = 15;
const TRACE_ID_HEX: &str = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID_HEX: &str = "b7ad6b7169203331";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(WAIT_SECS), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT_SECS}s: {what}"))
}

fn unique_scheme(tag: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("test-{tag}-{}", &id[id.len() - 10..])
}

async fn connect() -> Bus {
    within("connect", Bus::connect(AMQP_URL, "ferry-bus tests"))
        .await
        .expect("RabbitMQ at 127.0.0.1:5672")
}

/// Run `body` with a fresh scheme declared under `topology`; delete its queues afterwards, also
/// when the body panics (the panic is re-raised after the cleanup).
async fn with_scheme<F, Fut>(tag: &str, topology: Topology, body: F)
where
    F: FnOnce(std::sync::Arc<Bus>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let bus = std::sync::Arc::new(connect().await);
    let scheme = unique_scheme(tag);
    within("declare", bus.declare(&scheme, &topology))
        .await
        .expect("declare");
    let outcome = tokio::spawn(body(bus.clone(), scheme.clone())).await;
    within("delete", bus.delete_scheme(&scheme))
        .await
        .expect("delete queues");
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

fn envelope(scheme: &str, ids: &[&str]) -> Envelope {
    Envelope {
        scheme: scheme.to_string(),
        run_id: "run-42".into(),
        seq: 7,
        records: ids
            .iter()
            .map(|id| Record {
                id: id.to_string(),
                data: json!({"company": "某某公司 😀", "id": id, "amount": "12.30"}),
                source: None,
            })
            .collect(),
    }
}

fn traced_headers(scheme: &str, stage: Stage) -> Headers {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let span = SpanContext::new(
        TraceId::from_hex(TRACE_ID_HEX).unwrap(),
        SpanId::from_hex(SPAN_ID_HEX).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(span);
    let mut headers = Headers::new(scheme, "run-42", stage);
    trace::inject(&cx, &mut headers);
    headers
}

fn traceparent() -> String {
    format!("00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01")
}

async fn next(consumer: &mut Consumer) -> Incoming {
    within("next message", consumer.next())
        .await
        .expect("consume")
        .expect("consumer not cancelled")
}

/// No message arrives within `secs`.
async fn assert_quiet(consumer: &mut Consumer, secs: u64) {
    if let Ok(got) = tokio::time::timeout(Duration::from_secs(secs), consumer.next()).await {
        panic!("expected no message, got {got:?}");
    }
}

async fn publisher(bus: &Bus) -> Publisher {
    within("publisher", bus.publisher())
        .await
        .expect("publisher")
}

/// Wait until `queue` holds `messages` ready messages (queue stats lag a little behind).
async fn wait_depth(bus: &Bus, scheme: &str, queue: &str, messages: u32) {
    within(&format!("{queue} to hold {messages}"), async {
        loop {
            let depths = bus.queue_depths(scheme).await.expect("depths");
            let depth = depths.iter().find(|d| d.queue == queue).expect("listed");
            if depth.messages == messages {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

#[tokio::test]
async fn declare_is_idempotent_and_a_changed_limit_names_the_queue() {
    let topology = Topology {
        delivery_limit: 3,
        retry_delays_secs: vec![1, 5],
        single_active_load: true,
        quorum_group_size: None,
        single_active_transform: false,
    };
    with_scheme("declare", topology.clone(), |bus, scheme| async move {
        within("declare again", bus.declare(&scheme, &topology))
            .await
            .expect("second declare is a no-op");

        let depths = within("depths", bus.queue_depths(&scheme)).await.unwrap();
        let listed: Vec<(&str, bool, u32)> = depths
            .iter()
            .map(|d| (d.queue.as_str(), d.exists, d.messages))
            .collect();
        let expected: Vec<String> = topology.queues(&scheme);
        assert_eq!(listed.len(), 8);
        for ((queue, exists, messages), name) in listed.iter().zip(&expected) {
            assert_eq!((*queue, *exists, *messages), (name.as_str(), true, 0));
        }

        let changed = Topology {
            delivery_limit: 4,
            ..topology.clone()
        };
        let err = within("changed declare", bus.declare(&scheme, &changed))
            .await
            .unwrap_err();
        let queue = names::work_queue(&scheme, Stage::Transform);
        match &err {
            BusError::TopologyChanged { queue: q, reason } => {
                assert_eq!(q, &queue);
                assert!(reason.starts_with("PRECONDITION_FAILED"), "{reason}");
                assert!(reason.contains("x-delivery-limit"), "{reason}");
            }
            other => panic!("expected TopologyChanged, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("`rabbitmqctl delete_queue {queue}`")),
            "{err}"
        );
        // The bus still works after the refused declaration.
        within("declare original", bus.declare(&scheme, &topology))
            .await
            .expect("original topology still declares");
    })
    .await;
}

#[tokio::test]
async fn queue_depths_report_missing_queues_as_absent() {
    let bus = connect().await;
    let scheme = unique_scheme("absent");
    let depths = within("depths", bus.queue_depths(&scheme)).await.unwrap();
    assert_eq!(
        depths.len(),
        10,
        "work, dlq and 3 default retry buckets per stage"
    );
    assert!(depths.iter().all(|d| !d.exists && d.messages == 0));
    assert_eq!(depths[0].queue, format!("ferry.{scheme}.transform"));
}

#[tokio::test]
async fn connect_errors_do_not_show_the_password() {
    let err = within(
        "bad login",
        Bus::connect("amqp://guest:not-the-password-xyz@127.0.0.1:5672/%2f", "t"),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:5672/%2f: "),
        "{text}"
    );
    assert!(!text.contains("not-the-password-xyz"), "{text}");
}

#[tokio::test]
async fn publish_with_confirm_then_consume_round_trips_envelope_and_headers() {
    with_scheme("roundtrip", Topology::default(), |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let queue = names::work_queue(&scheme, Stage::Transform);
        let sent = envelope(&scheme, &["张三🚀", "李四"]);
        let headers = traced_headers(&scheme, Stage::Transform);
        assert_eq!(headers.traceparent.as_deref(), Some(traceparent().as_str()));
        within("publish", publisher.publish(&queue, &sent, &headers))
            .await
            .expect("confirmed");

        let mut consumer = within("consume", bus.consume(&queue, 10, "roundtrip"))
            .await
            .unwrap();
        let got = next(&mut consumer).await;
        assert_eq!(got.envelope.as_ref(), Ok(&sent));
        assert_eq!(got.headers, headers);
        assert!(!got.redelivered);
        assert_eq!(got.delivery_count, 0);
        assert_eq!(got.queue, queue);
        let cx = trace::extract(&got.headers);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            TRACE_ID_HEX
        );
        within("ack", got.ack()).await.expect("ack");
        wait_depth(&bus, &scheme, &queue, 0).await;

        // A batch is confirmed as a whole.
        let batch = vec![
            (envelope(&scheme, &["a"]), headers.clone()),
            (envelope(&scheme, &["b"]), headers.clone()),
        ];
        within("publish_many", publisher.publish_many(&queue, &batch))
            .await
            .expect("confirmed");
        for (expected, _) in &batch {
            let got = next(&mut consumer).await;
            assert_eq!(got.envelope.as_ref(), Ok(expected));
            within("ack", got.ack()).await.unwrap();
        }

        // A queue that does not exist is an error, not a silently dropped message.
        let missing = format!("ferry.{scheme}.nowhere");
        let err = within(
            "publish nowhere",
            publisher.publish(&missing, &sent, &headers),
        )
        .await
        .unwrap_err();
        assert_eq!(err, BusError::NoRoute { queue: missing });
        within("cancel", consumer.cancel()).await.unwrap();

        // purge_scheme empties every queue of the scheme.
        let load = names::work_queue(&scheme, Stage::Load);
        within("publish_many", publisher.publish_many(&load, &batch))
            .await
            .unwrap();
        wait_depth(&bus, &scheme, &load, 2).await;
        assert_eq!(within("purge", bus.purge_scheme(&scheme)).await, Ok(2));
        wait_depth(&bus, &scheme, &load, 0).await;
    })
    .await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_dead_lettered_with_its_error() {
    let topology = Topology {
        retry_delays_secs: vec![1, 30],
        ..Topology::default()
    };
    with_scheme("retry", topology, |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let stage = Stage::Load;
        let queue = names::work_queue(&scheme, stage);
        let sent = envelope(&scheme, &["r1", "r2"]);
        let headers = traced_headers(&scheme, stage);
        within("publish", publisher.publish(&queue, &sent, &headers))
            .await
            .unwrap();
        let mut consumer = within("consume", bus.consume(&queue, 1, "")).await.unwrap();
        let err = FerryError::transient("vendor timeout 超时");
        let max_attempts = 1;

        let first = next(&mut consumer).await;
        assert_eq!(first.headers.attempt, 0);
        let routed = within(
            "route retry",
            bus.route_failure(
                &publisher,
                &scheme,
                stage,
                &sent,
                &first.headers,
                &err,
                max_attempts,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            routed,
            Routed::Retried {
                queue: names::retry_queue(&scheme, stage, 1),
                delay_secs: 1,
                attempt: 1
            }
        );
        within("ack", first.ack()).await.unwrap();

        // Back from the 1 s bucket, as a fresh delivery carrying attempt 1.
        let started = std::time::Instant::now();
        let second = next(&mut consumer).await;
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(second.envelope.as_ref(), Ok(&sent));
        assert_eq!(second.headers.attempt, 1);
        assert_eq!(second.headers.error_class, Some(ErrorClass::Transient));
        assert_eq!(
            second.headers.traceparent.as_deref(),
            Some(traceparent().as_str())
        );
        let first_failed_at = second.headers.first_failed_at.expect("first failure time");

        let routed = within(
            "route dead letter",
            bus.route_failure(
                &publisher,
                &scheme,
                stage,
                &sent,
                &second.headers,
                &err,
                max_attempts,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            routed,
            Routed::DeadLettered {
                queue: names::dlq(&scheme, stage),
                records: 2
            }
        );
        within("ack", second.ack()).await.unwrap();

        let mut dlq = within(
            "consume dlq",
            bus.consume(&names::dlq(&scheme, stage), 10, ""),
        )
        .await
        .unwrap();
        for id in ["r1", "r2"] {
            let letter = next(&mut dlq).await;
            let body = letter.envelope.as_ref().unwrap();
            assert_eq!(body.records.len(), 1);
            assert_eq!(body.records[0].id, id);
            assert_eq!(body.records[0].data["company"], "某某公司 😀");
            let h = &letter.headers;
            assert_eq!(h.error_class, Some(ErrorClass::Transient));
            assert_eq!(h.error.as_deref(), Some("vendor timeout 超时"));
            assert_eq!(h.error_path, None);
            assert_eq!(h.record_id.as_deref(), Some(id));
            assert_eq!(h.attempt, 1);
            assert_eq!(h.stage, Some(stage));
            assert_eq!(h.scheme.as_deref(), Some(scheme.as_str()));
            assert_eq!(h.run.as_deref(), Some("run-42"));
            assert_eq!(h.first_failed_at, Some(first_failed_at));
            assert!(h.failed_at.expect("failed_at") >= first_failed_at);
            assert_eq!(h.traceparent.as_deref(), Some(traceparent().as_str()));
            within("ack", letter.ack()).await.unwrap();
        }
        assert_quiet(&mut consumer, 2).await;
    })
    .await;
}

#[tokio::test]
async fn record_failures_become_one_dead_letter_per_record() {
    with_scheme("record", Topology::default(), |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let stage = Stage::Transform;
        let dlq_name = names::dlq(&scheme, stage);
        let sent = envelope(&scheme, &["1", "2", "3"]);
        let headers = traced_headers(&scheme, stage);

        // The whole envelope failed: three single-record dead letters with the same error.
        let err = FerryError::record_at("main_params.amount", "not a number: \"abc\"");
        let routed = within(
            "route",
            bus.route_failure(&publisher, &scheme, stage, &sent, &headers, &err, 3),
        )
        .await
        .unwrap();
        assert_eq!(
            routed,
            Routed::DeadLettered {
                queue: dlq_name.clone(),
                records: 3
            }
        );
        let mut dlq = within("consume dlq", bus.consume(&dlq_name, 10, "")).await.unwrap();
        for id in ["1", "2", "3"] {
            let letter = next(&mut dlq).await;
            assert_eq!(letter.envelope.as_ref().unwrap().records, vec![sent.records[id.parse::<usize>().unwrap() - 1].clone()]);
            assert_eq!(letter.headers.error_class, Some(ErrorClass::Record));
            assert_eq!(letter.headers.error.as_deref(), Some("not a number: \"abc\""));
            assert_eq!(letter.headers.error_path.as_deref(), Some("main_params.amount"));
            assert_eq!(letter.headers.record_id.as_deref(), Some(id));
            within("ack", letter.ack()).await.unwrap();
        }

        // Only record 2 failed, with its own error: exactly one dead letter.
        let failures = vec![(
            sent.records[1].clone(),
            FerryError::record_at("date", "不是日期").with_record_id("2"),
        )];
        let routed = within(
            "route records",
            bus.route_record_failures(&publisher, &scheme, stage, &sent, &headers, &failures, 3),
        )
        .await
        .unwrap();
        assert_eq!(
            routed,
            vec![Routed::DeadLettered {
                queue: dlq_name.clone(),
                records: 1
            }]
        );
        let letter = next(&mut dlq).await;
        assert_eq!(letter.envelope.as_ref().unwrap().records, vec![sent.records[1].clone()]);
        assert_eq!(letter.headers.error.as_deref(), Some("不是日期"));
        assert_eq!(letter.headers.error_path.as_deref(), Some("date"));
        assert_eq!(letter.headers.record_id.as_deref(), Some("2"));
        within("ack", letter.ack()).await.unwrap();
        assert_quiet(&mut dlq, 1).await;

        // A mix: record 1 hit throttling (retry after 5 s), record 3 is bad. Record 1 waits in
        // the first bucket long enough (10 s); record 3 becomes a dead letter.
        let failures = vec![
            (
                sent.records[0].clone(),
                FerryError::Transient {
                    message: "throttled".into(),
                    retry_after: Some(Duration::from_secs(5)),
                },
            ),
            (sent.records[2].clone(), FerryError::record("too long")),
        ];
        let routed = within(
            "route mixed",
            bus.route_record_failures(&publisher, &scheme, stage, &sent, &headers, &failures, 3),
        )
        .await
        .unwrap();
        let retry_10s = names::retry_queue(&scheme, stage, 10);
        assert_eq!(
            routed,
            vec![
                Routed::Retried {
                    queue: retry_10s.clone(),
                    delay_secs: 10,
                    attempt: 1
                },
                Routed::DeadLettered {
                    queue: dlq_name.clone(),
                    records: 1
                }
            ]
        );
        let letter = next(&mut dlq).await;
        assert_eq!(letter.headers.record_id.as_deref(), Some("3"));
        assert_eq!(letter.headers.error.as_deref(), Some("too long"));
        within("ack", letter.ack()).await.unwrap();
        wait_depth(&bus, &scheme, &retry_10s, 1).await;

        // Config errors are not routed, and nothing is published for them.
        let err = within(
            "route config",
            bus.route_failure(&publisher, &scheme, stage, &sent, &headers, &FerryError::config("table t missing"), 3),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "not routed: config error (table t missing): stop consuming and leave the message queued"
        );
        assert_quiet(&mut dlq, 1).await;
    })
    .await;
}

#[tokio::test]
async fn replay_moves_dead_letters_back_with_their_trace_and_a_replay_count() {
    with_scheme("replay", Topology::default(), |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let stage = Stage::Load;
        let dlq_name = names::dlq(&scheme, stage);
        let work = names::work_queue(&scheme, stage);
        let sent = envelope(&scheme, &["a", "b", "c"]);
        let headers = traced_headers(&scheme, stage);
        let err = FerryError::record("constraint violation");
        within(
            "route",
            bus.route_failure(&publisher, &scheme, stage, &sent, &headers, &err, 3),
        )
        .await
        .unwrap();
        wait_depth(&bus, &scheme, &dlq_name, 3).await;

        let dry = within("dry run", bus.replay(&scheme, stage, None, true))
            .await
            .unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.moved, 0);
        let ids: Vec<Vec<String>> = dry.items.iter().map(|i| i.record_ids.clone()).collect();
        assert_eq!(
            ids,
            vec![vec!["a".to_string()], vec!["b".into()], vec!["c".into()]]
        );
        assert!(
            dry.items
                .iter()
                .all(|i| i.error.as_deref() == Some("constraint violation")
                    && i.error_class == Some(ErrorClass::Record)
                    && i.replays == 0)
        );
        wait_depth(&bus, &scheme, &dlq_name, 3).await;
        wait_depth(&bus, &scheme, &work, 0).await;
        let dry_one = within(
            "dry run, limit 1",
            bus.replay(&scheme, stage, Some(1), true),
        )
        .await
        .unwrap();
        assert_eq!((dry_one.moved, dry_one.items.len()), (0, 1));
        wait_depth(&bus, &scheme, &dlq_name, 3).await;

        let report = within("replay 2", bus.replay(&scheme, stage, Some(2), false))
            .await
            .unwrap();
        assert_eq!(report.moved, 2);
        assert_eq!(report.items.len(), 2);
        assert_eq!(
            (report.from.as_str(), report.to.as_deref()),
            (dlq_name.as_str(), Some(work.as_str()))
        );
        wait_depth(&bus, &scheme, &dlq_name, 1).await;
        wait_depth(&bus, &scheme, &work, 2).await;

        let mut consumer = within("consume", bus.consume(&work, 10, "")).await.unwrap();
        let mut replayed_ids = Vec::new();
        for _ in 0..2 {
            let msg = next(&mut consumer).await;
            let h = &msg.headers;
            assert_eq!(h.replays, 1);
            assert_eq!(h.attempt, 0);
            assert_eq!(h.error, None);
            assert_eq!(h.error_class, None);
            assert_eq!(h.failed_at, None);
            assert_eq!(h.traceparent.as_deref(), Some(traceparent().as_str()));
            let body = msg.envelope.as_ref().unwrap();
            assert_eq!(h.record_id.as_deref(), Some(body.records[0].id.as_str()));
            replayed_ids.push(body.records[0].id.clone());
            within("ack", msg.ack()).await.unwrap();
        }
        replayed_ids.sort();
        assert_eq!(replayed_ids.len(), 2);

        let rest = within("replay rest", bus.replay(&scheme, stage, None, false))
            .await
            .unwrap();
        assert_eq!(rest.moved, 1);
        let last = next(&mut consumer).await;
        assert_eq!(last.headers.replays, 1);
        within("ack", last.ack()).await.unwrap();
        wait_depth(&bus, &scheme, &dlq_name, 0).await;

        let empty = within("replay empty", bus.replay(&scheme, stage, None, false))
            .await
            .unwrap();
        assert_eq!((empty.moved, empty.items.len()), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn rejected_and_over_delivered_messages_land_in_the_dlq() {
    let topology = Topology {
        delivery_limit: 1,
        ..Topology::default()
    };
    with_scheme("reject", topology, |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let stage = Stage::Transform;
        let work = names::work_queue(&scheme, stage);
        let dlq_name = names::dlq(&scheme, stage);
        let headers = traced_headers(&scheme, stage);
        let mut consumer = within("consume", bus.consume(&work, 1, "")).await.unwrap();
        let mut dlq = within("consume dlq", bus.consume(&dlq_name, 10, ""))
            .await
            .unwrap();

        // Rejected without requeue: the broker dead-letters it as it is.
        let rejected = envelope(&scheme, &["rejected"]);
        within("publish", publisher.publish(&work, &rejected, &headers))
            .await
            .unwrap();
        let msg = next(&mut consumer).await;
        within("reject", msg.reject_to_dlq()).await.unwrap();
        let letter = next(&mut dlq).await;
        assert_eq!(letter.envelope.as_ref(), Ok(&rejected));
        assert_eq!(
            letter.headers.traceparent.as_deref(),
            Some(traceparent().as_str())
        );
        within("ack", letter.ack()).await.unwrap();

        // Requeued over and over (a consumer that keeps crashing): dead-lettered once the
        // delivery limit (1) is exceeded, instead of looping.
        let looping = envelope(&scheme, &["looping"]);
        within("publish", publisher.publish(&work, &looping, &headers))
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for _ in 0..2 {
            let msg = next(&mut consumer).await;
            deliveries.push((msg.redelivered, msg.delivery_count));
            within("nack", msg.nack_requeue()).await.unwrap();
        }
        assert_eq!(deliveries, vec![(false, 0), (true, 1)]);
        let letter = next(&mut dlq).await;
        assert_eq!(letter.envelope.as_ref(), Ok(&looping));
        within("ack", letter.ack()).await.unwrap();
        assert_quiet(&mut consumer, 1).await;
    })
    .await;
}

#[tokio::test]
async fn an_invalid_body_is_dead_lettered_with_its_parse_error() {
    with_scheme("invalid", Topology::default(), |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let stage = Stage::Load;
        let work = names::work_queue(&scheme, stage);
        let dlq_name = names::dlq(&scheme, stage);

        // Published by something other than Ferry: raw bytes, no Ferry headers.
        let raw = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = raw.create_channel().await.unwrap();
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        let confirm = within(
            "raw publish",
            channel
                .basic_publish(
                    "".into(),
                    work.as_str().into(),
                    lapin::options::BasicPublishOptions::default(),
                    "{not json 😀".as_bytes(),
                    lapin::BasicProperties::default(),
                )
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        assert!(confirm.is_ack());

        let mut consumer = within("consume", bus.consume(&work, 1, "")).await.unwrap();
        let msg = next(&mut consumer).await;
        let reason = msg.envelope.as_ref().unwrap_err().clone();
        assert!(
            reason.starts_with("message body is not a Ferry envelope (JSON {\"scheme\", \"run_id\", \"seq\", \"records\"}): key must be a string"),
            "{reason}"
        );
        let routed = within("route invalid", bus.route_invalid(&publisher, &scheme, stage, &msg))
            .await
            .unwrap();
        assert_eq!(routed, Routed::DeadLettered { queue: dlq_name.clone(), records: 1 });
        within("ack", msg.ack()).await.unwrap();

        let mut dlq = within("consume dlq", bus.consume(&dlq_name, 10, "")).await.unwrap();
        let letter = next(&mut dlq).await;
        assert_eq!(letter.body, "{not json 😀".as_bytes());
        assert_eq!(letter.headers.error_class, Some(ErrorClass::Record));
        assert_eq!(letter.headers.error.as_deref(), Some(reason.as_str()));
        assert_eq!(letter.headers.stage, Some(stage));
        assert_eq!(letter.headers.scheme.as_deref(), Some(scheme.as_str()));
        within("ack", letter.ack()).await.unwrap();
        assert_quiet(&mut consumer, 1).await;
        let _ = raw.close(200, "OK".into()).await;
    })
    .await;
}

#[tokio::test]
async fn single_active_load_gives_one_loader_at_a_time() {
    let topology = Topology {
        single_active_load: true,
        ..Topology::default()
    };
    with_scheme("sac", topology, |bus, scheme| async move {
        let publisher = publisher(&bus).await;
        let load = names::work_queue(&scheme, Stage::Load);
        let mut active = within("consume a", bus.consume(&load, 10, "a"))
            .await
            .unwrap();
        let mut standby = within("consume b", bus.consume(&load, 10, "b"))
            .await
            .unwrap();
        let headers = Headers::new(&scheme, "run-42", Stage::Load);
        let batch = vec![
            (envelope(&scheme, &["1"]), headers.clone()),
            (envelope(&scheme, &["2"]), headers.clone()),
        ];
        within("publish", publisher.publish_many(&load, &batch))
            .await
            .unwrap();
        for (expected, _) in &batch {
            let msg = next(&mut active).await;
            assert_eq!(msg.envelope.as_ref(), Ok(expected));
            within("ack", msg.ack()).await.unwrap();
        }
        assert_quiet(&mut standby, 1).await;
        let depths = within("depths", bus.queue_depths(&scheme)).await.unwrap();
        let load_depth = depths.iter().find(|d| d.queue == load).unwrap();
        // With a single active consumer the broker counts only the active one.
        assert_eq!((load_depth.messages, load_depth.consumers), (0, 1));
    })
    .await;
}
