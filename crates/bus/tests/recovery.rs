//! Broker-side connection loss: RabbitMQ closes Ferry's connection (as on a broker restart or a
//! network cut) and lapin's auto-recovery must bring publishing and consuming back by itself.
//!
//! Only this test's own connection is closed (found by its unique connection name through
//! `rabbitmqctl`), never the broker or anyone else's connections. Skipped with a note when
//! `rabbitmqctl` is not usable on this machine.

use std::process::Command;
use std::time::Duration;

use ferry_bus::{Bus, Headers, Stage, Topology, names};
use ferry_core::{Envelope, Record};
use serde_json::json;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WAIT_SECS: u64 = 60;

/// The Erlang pids of the connections named `name`, via `rabbitmqctl list_connections`.
fn connection_pids(name: &str) -> Option<Vec<String>> {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Some(
        text.lines()
            .filter(|line| line.contains(name))
            .filter_map(|line| line.split_whitespace().next().map(str::to_string))
            .collect(),
    )
}

fn close_connection(pid: &str) -> bool {
    Command::new("rabbitmqctl")
        .args(["-q", "close_connection", pid, "ferry-bus recovery test"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(WAIT_SECS), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT_SECS}s: {what}"))
}

fn envelope(scheme: &str, id: &str) -> Envelope {
    Envelope {
        scheme: scheme.into(),
        run_id: "run".into(),
        seq: 1,
        records: vec![Record {
            id: id.into(),
            data: json!({"name": "王五 🚚"}),
            source: None,
        }],
    }
}

#[tokio::test]
async fn publishing_and_consuming_survive_a_closed_connection() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let suffix = &id[id.len() - 10..];
    let connection_name = format!("ferry-bus-recovery-{suffix}");
    let scheme = format!("test-recovery-{suffix}");
    let bus = within("connect", Bus::connect(AMQP_URL, &connection_name))
        .await
        .unwrap();
    within("declare", bus.declare(&scheme, &Topology::default()))
        .await
        .unwrap();

    let scheme_in_test = scheme.clone();
    let outcome = async move {
        let scheme = scheme_in_test;
        let Some(pids) = connection_pids(&connection_name) else {
            eprintln!("rabbitmqctl not usable here: recovery test skipped");
            return;
        };
        assert_eq!(pids.len(), 1, "exactly our connection: {pids:?}");
        let queue = names::work_queue(&scheme, Stage::Transform);
        let publisher = within("publisher", bus.publisher()).await.unwrap();
        let mut consumer = within("consume", bus.consume(&queue, 5, "recovery"))
            .await
            .unwrap();
        let headers = Headers::new(&scheme, "run", Stage::Transform);
        within(
            "publish before",
            publisher.publish(&queue, &envelope(&scheme, "before"), &headers),
        )
        .await
        .unwrap();
        let first = within("first", consumer.next()).await.unwrap().unwrap();
        assert_eq!(first.envelope.as_ref().unwrap().records[0].id, "before");
        within("ack", first.ack()).await.unwrap();

        assert!(close_connection(&pids[0]), "rabbitmqctl close_connection");
        // Publishing waits for the recovery, then goes through on the new connection.
        within(
            "publish after",
            publisher.publish(&queue, &envelope(&scheme, "after"), &headers),
        )
        .await
        .expect("publish recovers");
        let second = within("second", consumer.next())
            .await
            .expect("consumer recovers")
            .expect("not cancelled");
        assert_eq!(second.envelope.as_ref().unwrap().records[0].id, "after");
        within("ack", second.ack()).await.unwrap();
        assert!(bus.is_connected());
        let again = connection_pids(&connection_name).unwrap_or_default();
        assert_eq!(again.len(), 1);
        assert_ne!(
            again[0], pids[0],
            "a new connection replaced the closed one"
        );
    };
    let outcome = tokio::spawn(async move {
        outcome.await;
    });
    let result = outcome.await;
    let cleanup = Bus::connect(AMQP_URL, "ferry-bus cleanup").await.unwrap();
    cleanup
        .declare(&scheme, &Topology::default())
        .await
        .unwrap();
    cleanup.delete_scheme(&scheme).await.unwrap();
    if let Err(err) = result {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test]
async fn a_closed_connection_is_reported_as_lost() {
    let bus = within("connect", Bus::connect(AMQP_URL, "ferry-bus lost test"))
        .await
        .unwrap();
    let publisher = within("publisher", bus.publisher()).await.unwrap();
    within("close", bus.close()).await.unwrap();
    let scheme = "test-lost-never-declared";
    let queue = names::work_queue(scheme, Stage::Load);
    let err = within(
        "publish on a closed connection",
        publisher.publish(&queue, &envelope(scheme, "x"), &Headers::default()),
    )
    .await
    .unwrap_err();
    assert!(err.is_lost(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("lost the RabbitMQ connection and could not recover it: "),
        "{err}"
    );
    let err = within("channel on a closed connection", bus.publisher())
        .await
        .unwrap_err();
    assert!(err.is_lost(), "{err:?}");
}
