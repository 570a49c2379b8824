//! The operator's loop, end to end: something breaks, `ferry status` / `/metrics` /
//! `ferry replay --dry-run` show what and why, the operator fixes the target, and one
//! `ferry replay` brings every dead letter home. Traces are exported to an OTLP endpoint.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::World;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stand-in OTLP/HTTP collector that counts trace export requests.
async fn collector() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = Arc::clone(&counter);
            async move {
                if !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

async fn http_get(url: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new().get(url).send().await.expect(url);
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_visible_and_one_replay_brings_them_home() {
    const N: i64 = 200;
    let mut world = World::new("r").await;
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    let state = world.state_url();
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.invoices (id BIGINT PRIMARY KEY, buyer VARCHAR(60), amount DECIMAL(12,2)) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.invoices SELECT seq, CONCAT('买家 ', seq, ' 🧾'), IF(seq IN (7, 70, 170), -5.00, seq * 2.5)
                FROM `{src}`.seq_1_to_{N};
             CREATE TABLE `{dst}`.invoices (id BIGINT PRIMARY KEY, buyer VARCHAR(60), amount DECIMAL(12,2),
                CONSTRAINT amount_nonneg CHECK (amount >= 0)) CHARACTER SET utf8mb4;"
        ))
        .await;
    let scheme = world.scheme_name("invoices");
    let (otlp, exports) = collector().await;
    world.write(
        "ferry.toml",
        &format!(
            "[broker]\nurl = \"{}\"\n[state]\nurl = \"{state}\"\n[telemetry]\notlp_endpoint = \"{otlp}\"\n\
             [connections.src]\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{src}\"\n\
             [connections.dst]\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{dst}\"\n",
            common::AMQP
        ),
    );
    world.write(
        "schemes/invoices.json",
        &format!(
            r#"{{ "name": "{scheme}",
  "source": {{ "connection": "src", "metadata": {{ "api": "select", "id": "id", "pagination": {{ "pageSize": 50, "mode": "keyset" }},
    "otherRequest": [{{ "field": "main_sql", "value": "SELECT id, buyer, amount FROM invoices WHERE id > :last_id ORDER BY id LIMIT :limit" }}] }} }},
  "target": {{ "connection": "dst", "metadata": {{ "api": "batchexecute", "idCheck": true,
    "request": [ {{ "field": "id", "type": "int", "value": "{{id}}" }}, {{ "field": "buyer", "value": "{{buyer}}" }},
                 {{ "field": "amount", "type": "decimal", "value": "{{amount}}" }} ],
    "otherRequest": [{{ "field": "main_sql", "value": "INSERT INTO invoices (id, buyer, amount) VALUES (:id, :buyer, :amount) ON DUPLICATE KEY UPDATE buyer = VALUES(buyer), amount = VALUES(amount)" }}] }} }} }}"#
        ),
    );
    let metrics_port = free_port();
    world.spawn(&["transform"], "transform.log");
    world.spawn(
        &[
            "load",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ],
        "load.log",
    );
    let out = world.ferry(&["extract", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let count_sql = format!("SELECT COUNT(*) FROM `{dst}`.invoices");
    let w = &world;
    world
        .wait_for_count("the good rows", &count_sql, Duration::from_secs(120), |n| {
            n == N - 3
        })
        .await;

    // See it: status, metrics, and the dead letters with their errors.
    let status = world
        .wait_for("the run to settle", Duration::from_secs(60), || async {
            let out = w.ferry(&["status", "--json", "--scheme", &scheme]);
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (json[0]["runs"][0]["status"] == "done").then_some(json)
        })
        .await;
    let run = &status[0]["runs"][0];
    assert_eq!(
        (
            run["records"].as_i64(),
            run["inserted"].as_i64(),
            run["dead_lettered"].as_i64()
        ),
        (Some(N), Some(N - 3), Some(3))
    );
    let dlq = status[0]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == format!("ferry.{scheme}.load.dlq"))
        .expect("the load DLQ is listed");
    assert_eq!(dlq["messages"], 3);

    let (code, ready) = http_get(&format!("http://127.0.0.1:{metrics_port}/readyz")).await;
    assert_eq!((code, ready.as_str()), (200, "ready"));
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "ferry_dead_letters_total{{scheme=\"{scheme}\",stage=\"load\"}} 3\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "ferry_records_out_total{{scheme=\"{scheme}\",stage=\"load\"}} {}\n",
            N - 3
        )),
        "{metrics}"
    );
    let gauge = format!(
        "ferry_queue_messages{{scheme=\"{scheme}\",queue=\"ferry.{scheme}.load.dlq\"}} 3\n"
    );
    world
        .wait_for(
            "the DLQ depth gauge (sampled every 5 s)",
            Duration::from_secs(20),
            || async {
                let (_, metrics) =
                    http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
                metrics.contains(&gauge).then_some(())
            },
        )
        .await;

    let dry = world.ferry(&[
        "replay",
        "--scheme",
        &scheme,
        "--stage",
        "load",
        "--dry-run",
    ]);
    let listing = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{listing}");
    for id in ["7", "70", "170"] {
        assert!(
            listing.contains(&format!("would move {id} [record]")),
            "{listing}"
        );
    }
    assert!(
        listing.contains("amount_nonneg"),
        "the reason is shown: {listing}"
    );
    assert!(
        listing.contains("3 dead letter(s) would move (dry run)"),
        "{listing}"
    );

    // Fix it, then one command.
    world
        .exec(&format!(
            "ALTER TABLE `{dst}`.invoices DROP CONSTRAINT amount_nonneg"
        ))
        .await;
    let replay = world.ferry(&["replay", "--scheme", &scheme, "--stage", "load"]);
    let text = String::from_utf8_lossy(&replay.stdout).to_string();
    assert!(
        replay.status.success() && text.contains("moved 3 dead letter(s)"),
        "{text}"
    );
    world
        .wait_for_count(
            "the replayed rows",
            &count_sql,
            Duration::from_secs(60),
            |n| n == N,
        )
        .await;
    assert_eq!(
        world
            .scalar_string(&format!(
                "SELECT CAST(SUM(amount) AS CHAR) FROM `{dst}`.invoices"
            ))
            .await,
        world
            .scalar_string(&format!(
                "SELECT CAST(SUM(amount) AS CHAR) FROM `{src}`.invoices"
            ))
            .await
    );

    // The run's counts add up again: the three replayed records moved from dead-lettered to
    // inserted, in `ferry status` and in /metrics.
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let run = world
        .wait_for(
            "the replayed records counted",
            Duration::from_secs(60),
            || async {
                let run = w.run_status(&scheme, &run_id)?;
                (run["inserted"] == N).then_some(run)
            },
        )
        .await;
    assert_eq!(
        (
            run["records"].as_i64(),
            run["inserted"].as_i64(),
            run["dead_lettered"].as_i64(),
            run["status"].as_str()
        ),
        (Some(N), Some(N), Some(0), Some("done"))
    );
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    for line in [
        format!("ferry_dead_letters_total{{scheme=\"{scheme}\",stage=\"load\"}} 3\n"),
        format!("ferry_dead_letters_recovered_total{{scheme=\"{scheme}\",stage=\"load\"}} 3\n"),
        format!("ferry_records_inserted_total{{scheme=\"{scheme}\",stage=\"load\"}} {N}\n"),
    ] {
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }

    let codes = world.stop_all();
    assert_eq!(codes, vec![Some(0), Some(0)]);
    assert!(
        exports.load(Ordering::SeqCst) > 0,
        "spans were exported to the OTLP endpoint"
    );
    world.clean().await;
}
