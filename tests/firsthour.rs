//! Issue 12 items 3 and 4, as a new user meets them: `ferry extract --run-now` moves data at
//! once (what `docker compose up` relies on), log lines carry no colour codes when they go to a
//! file or a pipe, and a refused connection names the URL (password hidden) and, for the vendor
//! sandbox's default address, says to start `ferry sandbox`.

mod common;

use std::process::Output;
use std::time::Duration;

use common::World;
use serde_json::json;

fn all_output(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A source table of customers and an empty copy in the target; a scheme copying one into the
/// other whose cron schedule only comes round on the 1st of January. Returns (scheme, dst).
async fn yearly_copy(world: &mut World) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL)
                 CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.customers VALUES (1, '张三 😀'), (2, 'Zoë'), (3, '李四🚀');
             CREATE TABLE `{dst}`.customers LIKE `{src}`.customers;"
        ))
        .await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", &src) + &common::mysql_connection("dst", &dst)),
    );
    let scheme = world.scheme_name("yearly");
    let text = json!({
        "name": scheme,
        "schedule": "0 0 1 1 *",
        "source": {"connection": "src", "metadata": {
            "api": "select", "id": "id", "pagination": {"pageSize": 2, "mode": "keyset"},
            "otherRequest": [{"field": "main_sql",
                "value": "SELECT id, name FROM customers WHERE id > :last_id ORDER BY id LIMIT :limit"}]
        }},
        "target": {"connection": "dst", "metadata": {
            "api": "batchexecute", "idCheck": true,
            "request": [
                {"field": "id", "type": "int", "value": "{id}"},
                {"field": "name", "value": "{name}"}
            ],
            "otherRequest": [{"field": "main_sql",
                "value": "INSERT INTO customers (id, name) VALUES (:id, :name)"}]
        }}
    });
    world.write("schemes/yearly.json", &text.to_string());
    (scheme, dst)
}

/// `ferry extract --run-now` runs every scheme once when it starts, then waits for the schedule:
/// the rows arrive although the next cron tick is months away, and the log (a file, not a
/// terminal) holds no ANSI colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_run_now_moves_data_before_the_first_tick_in_plain_text_logs() {
    let mut world = World::new("rn").await;
    let (scheme, dst) = yearly_copy(&mut world).await;
    world.spawn(&["transform"], "transform.log");
    world.spawn(&["load"], "load.log");
    world.spawn(&["extract", "--run-now"], "extract.log");
    world
        .wait_for_count(
            "every customer in the target",
            &format!(
                "SELECT COUNT(*) FROM `{dst}`.customers WHERE name IN ('张三 😀', 'Zoë', '李四🚀')"
            ),
            Duration::from_secs(120),
            |n| n == 3,
        )
        .await;
    world
        .wait_for(
            "the extractor to wait for the schedule",
            Duration::from_secs(60),
            || async {
                world
                    .log("extract.log")
                    .contains("next run scheduled")
                    .then_some(())
            },
        )
        .await;
    let log = world.log("extract.log");
    assert!(
        log.contains("--run-now: extracted") && log.contains(&scheme),
        "{log}"
    );
    assert!(log.contains(" INFO "), "plain level names: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a file: {log:?}"
    );
    let codes = world.stop_all();
    assert!(codes.iter().all(|c| *c == Some(0)), "{codes:?}");
    world.clean().await;
}

/// Refused connections, each named with its URL and the password hidden: the state database and
/// an HTTP source; the sandbox's default address adds how to start the sandbox,
/// another address does not. Nothing printed carries colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_name_the_url_and_the_sandbox_address_says_to_start_it() {
    let mut world = World::new("rf").await;
    // Closed ports: nothing listens on port 1, and the sandbox's default port must be free for
    // this test to mean anything.
    assert!(
        std::net::TcpListener::bind("127.0.0.1:9180").is_ok(),
        "port 9180 is in use (a `ferry sandbox` running?); this test needs it free"
    );
    let state = world.state_url();
    let sources = |base: &str| {
        format!(
            "[connections.api]\nkind = \"http\"\nbase_url = \"{base}\"\n[connections.noop]\nkind = \"noop\"\n"
        )
    };
    let scheme = world.scheme_name("api");
    world.write(
        "schemes/api.json",
        &json!({
            "name": scheme,
            "source": {"connection": "api", "metadata": {"api": "/v1/user/list", "method": "GET", "id": "nickname"}},
            "target": {"connection": "noop", "metadata": {"api": "写入空操作"}}
        })
        .to_string(),
    );

    // The vendor sandbox's default address, not started.
    world.write_ferry_toml(&state, &sources("http://127.0.0.1:9180"));
    let out = world.ferry(&["lint", "--online"]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("cannot connect to http://127.0.0.1:9180")
            && all.contains("start it with `ferry sandbox` in another terminal"),
        "{all}"
    );
    assert!(!all.contains('\u{1b}'), "{all:?}");

    // Another closed address: named, without the sandbox's advice; the password hidden.
    world.write_ferry_toml(&state, &sources("http://ferry:pa55w0rd@127.0.0.1:1"));
    let out = world.ferry(&["lint", "--online"]);
    let all = all_output(&out);
    assert!(
        all.contains("cannot connect to http://ferry:***@127.0.0.1:1"),
        "{all}"
    );
    assert!(
        !all.contains("ferry sandbox") && !all.contains("pa55w0rd"),
        "{all}"
    );

    // The state database refused: named, the password hidden. (RabbitMQ's refusal names its
    // URL the same way, after lapin's connection attempts, which take minutes.)
    let out = world
        .command(&["status"])
        .env("FERRY_STATE_URL", "mysql://root:s3cret@127.0.0.1:1/ferry")
        .output()
        .unwrap();
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("mysql://root:***@127.0.0.1:1/ferry"), "{all}");
    assert!(
        !all.contains("s3cret") && !all.contains('\u{1b}'),
        "{all:?}"
    );
    world.clean().await;
}
