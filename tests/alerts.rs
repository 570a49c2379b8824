//! Issue 12 item 1, end to end against the real RabbitMQ and MariaDB and the sandbox's DingTalk
//! robot (in this test process, on a free port): `[alerts]` tells the robot once per failure,
//! whatever the number of replicas, and once more when it clears; a robot that refuses alerts
//! changes nothing for the pipeline. A WeCom robot takes alerts as well (issue 15).

mod common;
#[path = "common/robot.rs"]
mod harness;

use std::time::Duration;

use common::{World, all_output};
use harness::Robot;
use serde_json::json;

const ROBOT_TOKEN: &str = "alert-robot-token";
const ROBOT_SECRET: &str = "SEC-alert-robot-secret";

/// Customers (Chinese text, emoji, one id repeated across pages' worth of rows) in a source
/// database, and empty copies `stop_t` and `dead_t` in the target. `dead_t` takes only amounts
/// under 1, so two of the four records are dead-lettered. Returns (src, dst).
async fn customers(world: &mut World) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL,
                city VARCHAR(40) NULL, amount DECIMAL(12,2) NOT NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.customers VALUES
                (1, '张三 😀', '上海', 10.50), (2, 'Zoë «quoted»', 'Berlin', 0.01),
                (3, '李四🚀', NULL, 9999999999.99), (4, '王五 公司', '深圳', 0.00);
             CREATE TABLE `{dst}`.stop_t LIKE `{src}`.customers;
             CREATE TABLE `{dst}`.dead_t LIKE `{src}`.customers;
             ALTER TABLE `{dst}`.dead_t ADD CONSTRAINT amount_small CHECK (amount < 1);"
        ))
        .await;
    (src, dst)
}

/// A scheme copying `customers` into `table`; `columns` is the target's column list.
fn customers_scheme(world: &mut World, base: &str, table: &str, columns: &str) -> String {
    let scheme = world.scheme_name(base);
    let text = json!({
        "name": scheme,
        "source": {"connection": "src", "metadata": {
            "api": "select", "id": "id", "pagination": {"pageSize": 3, "mode": "keyset"},
            "otherRequest": [{"field": "main_sql",
                "value": "SELECT id, name, city, amount FROM customers WHERE id > :last_id ORDER BY id LIMIT :limit"}]
        }},
        "target": {"connection": "dst", "metadata": {
            "api": "batchexecute",
            "request": [
                {"field": "id", "type": "int", "value": "{id}"},
                {"field": "name", "value": "{name}"},
                {"field": "city", "value": "{city}"},
                {"field": "amount", "type": "decimal", "value": "{amount}"}
            ],
            "otherRequest": [{"field": "main_sql", "value": format!(
                "INSERT INTO `{table}` ({columns}) VALUES (:id, :name, :city, :amount)"
            )}]
        }}
    });
    world.write(&format!("schemes/{base}.json"), &text.to_string());
    scheme
}

/// `ferry.toml` with the source, the target, the robot `alarm` (with `token`) and `[alerts]`.
fn write_toml(world: &mut World, src: &str, dst: &str, robot: &Robot, token: &str, dead: u32) {
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &format!(
            "{}{}[connections.alarm]\nkind = \"dingtalk_robot\"\nbase_url = \"{}\"\n\
             access_token = \"{token}\"\nsecret = \"{ROBOT_SECRET}\"\n\
             [alerts]\nrobot = \"alarm\"\ndead_letters = {dead}\n",
            common::mysql_connection("src", src),
            common::mysql_connection("dst", dst),
            robot.url()
        ),
    );
}

/// True when one line of `log` holds every one of `parts`.
fn logged(log: &str, parts: &[&str]) -> bool {
    log.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

const COLUMNS: &str = "`id`, `name`, `city`, `amount`";

/// Three `ferry load` processes (and a transform) see a scheme stop on a configuration error and
/// another scheme's dead letters pass the threshold: the robot gets exactly one alert for each,
/// in Chinese with the scheme, the counts, the error and the fixing command, although every
/// replica saw both. After the scheme is fixed (loaders restarted) and the dead letters replayed
/// into a fixed table, exactly one recovery message each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_loaders_send_one_alert_per_failure_and_one_recovery_each() {
    let mut world = World::new("al").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let (src, dst) = customers(&mut world).await;
    write_toml(&mut world, &src, &dst, &robot, ROBOT_TOKEN, 2);
    let stop = customers_scheme(
        &mut world,
        "stop",
        "stop_t",
        "`id`, `name`, `citty`, `amount`",
    );
    let dead = customers_scheme(&mut world, "dead", "dead_t", COLUMNS);

    let loaders: Vec<usize> = (0..3)
        .map(|i| world.spawn(&["load"], &format!("load{i}.log")))
        .collect();
    world.spawn(&["transform"], "transform.log");
    let extract = world.ferry(&["extract", "--once"]);
    assert!(extract.status.success(), "{}", all_output(&extract));

    // Every loader stops the broken scheme (the message goes back to the queue each time) and
    // sees the dead letters; each one tried to raise both alerts.
    for i in 0..3 {
        let log = format!("load{i}.log");
        world
            .wait_for(
                &format!("{log} to try both alerts"),
                Duration::from_secs(120),
                || async {
                    let text = world.log(&log);
                    let tried = |kind: &str, scheme: &str| {
                        logged(&text, &["alert raised", kind, scheme])
                            || logged(&text, &["alert already open", kind, scheme])
                    };
                    (tried("stopped", &stop) && tried("dead_letters", &dead)).then_some(())
                },
            )
            .await;
    }
    let texts = robot.wait_for_texts(&world, 2).await;
    assert_eq!(texts.len(), 2, "one alert per failure: {texts:#?}");
    let stop_alert = texts
        .iter()
        .find(|t| t.contains(&stop))
        .unwrap_or_else(|| panic!("{texts:#?}"));
    for part in [
        format!("【Ferry 告警】方案 {stop}：配置错误，已停止"),
        "- 阶段：load".to_string(),
        "Unknown column 'citty'".to_string(),
        format!("ferry lint --online --scheme {stop}"),
    ] {
        assert!(stop_alert.contains(&part), "{part} in {stop_alert}");
    }
    let dead_alert = texts
        .iter()
        .find(|t| t.contains(&dead))
        .unwrap_or_else(|| panic!("{texts:#?}"));
    for part in [
        format!("【Ferry 告警】方案 {dead}：死信超过阈值"),
        "共 2 条（阈值 2）：load 阶段 2 条".to_string(),
        format!("`ferry replay --scheme {dead} --stage load`"),
    ] {
        assert!(dead_alert.contains(&part), "{part} in {dead_alert}");
    }
    assert!(!texts.concat().contains(ROBOT_SECRET));

    // Fix both: the column name (the loaders read schemes at start), and the table's check.
    let path = world.dir.join("schemes/stop.json");
    let fixed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("`citty`", "`city`");
    std::fs::write(&path, fixed).unwrap();
    for (i, &index) in loaders.iter().enumerate() {
        world.respawn(index, &["load"], &format!("load{i}.log"));
    }
    world
        .exec(&format!(
            "ALTER TABLE `{dst}`.dead_t DROP CONSTRAINT amount_small"
        ))
        .await;
    let replay = world.ferry(&["replay", "--scheme", &dead, "--stage", "load"]);
    assert!(replay.status.success(), "{}", all_output(&replay));
    for table in ["stop_t", "dead_t"] {
        world
            .wait_for_count(
                &format!("{table} to hold every customer"),
                &format!("SELECT COUNT(*) FROM `{dst}`.`{table}`"),
                Duration::from_secs(120),
                |n| n == 4,
            )
            .await;
    }
    let texts = robot.wait_for_texts(&world, 4).await;
    let recoveries: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("【Ferry 恢复】"))
        .collect();
    assert_eq!(recoveries.len(), 2, "one recovery per alert: {texts:#?}");
    assert!(
        recoveries.iter().any(|t| t
            .contains(&format!("【Ferry 恢复】方案 {stop}：配置错误，已停止"))
            && t.contains("load 阶段已恢复处理消息")),
        "{texts:#?}"
    );
    // The recovery is sent once the DLQs fall below the threshold, which may be mid-replay
    // (1 left) or after it (0 left).
    assert!(
        recoveries.iter().any(
            |t| t.contains(&format!("【Ferry 恢复】方案 {dead}：死信超过阈值"))
                && t.contains("低于阈值 2")
        ),
        "{texts:#?}"
    );
    // Every replica has seen both clear (its own clear found nothing left to close, or closed
    // it): nothing more will come.
    assert_eq!(robot.texts().await.len(), 4, "{texts:#?}");
    world.clean().await;
}

/// A robot that refuses every alert (a wrong token): `ferry run --once` prints and exits exactly
/// as without alerts (3, two records dead-lettered, the rest written), and the refusal is logged
/// with the robot's errcode, never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_refusing_alerts_leaves_the_run_unaffected() {
    let mut world = World::new("ar").await;
    let robot = Robot::start(ROBOT_TOKEN, ROBOT_SECRET, 60, 20).await;
    let (src, dst) = customers(&mut world).await;
    write_toml(&mut world, &src, &dst, &robot, "wrong-token-😀", 1);
    let dead = customers_scheme(&mut world, "dead", "dead_t", COLUMNS);

    let out = world.ferry(&["run", "--once", "--timeout-secs", "120"]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{dead}: ")))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        summary.contains("4 records: 2 inserted") && summary.contains(", 2 dead-lettered in"),
        "{all}"
    );
    assert!(
        stdout.contains(&format!("ferry replay --scheme {dead} --stage load")),
        "{all}"
    );
    assert!(
        logged(
            &all,
            &[
                "could not deliver an alert to the DingTalk robot",
                "dead_letters",
                "errcode 300005",
            ]
        ),
        "{all}"
    );
    assert!(!all.contains("wrong-token"), "{all}");
    assert_eq!(
        world
            .scalar_i64(&format!("SELECT COUNT(*) FROM `{dst}`.dead_t"))
            .await,
        2
    );
    assert!(robot.texts().await.is_empty());
    world.clean().await;
}

/// Issue 15: alerts go to any robot kind. A WeCom group robot (the sandbox's) gets the alert of a
/// scheme that stops on a configuration error, once, naming the scheme and the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_robot_gets_the_alert_of_a_stopped_scheme() {
    let mut world = World::new("aw").await;
    let robot = Robot::start_with(ferry_sandbox::SandboxOptions::default()).await;
    let (src, dst) = customers(&mut world).await;
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &format!(
            "{}{}[connections.alarm]\nkind = \"wecom_robot\"\nbase_url = \"{}\"\n\
             key = \"wecom-sandbox-key\"\n[alerts]\nrobot = \"alarm\"\n",
            common::mysql_connection("src", &src),
            common::mysql_connection("dst", &dst),
            robot.url()
        ),
    );
    let stop = customers_scheme(
        &mut world,
        "stop",
        "stop_t",
        "`id`, `name`, `citty`, `amount`",
    );

    let out = world.ferry(&["run", "--once", "--timeout-secs", "120"]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let inbox = "/cgi-bin/webhook/messages";
    world
        .wait_for("the WeCom alert", Duration::from_secs(30), || async {
            (!robot.inbox(inbox).await.is_empty()).then_some(())
        })
        .await;
    let messages = robot.inbox(inbox).await;
    assert_eq!(messages.len(), 1, "one alert: {messages:?}");
    let content = messages[0]["body"]["markdown"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        content.contains(&stop) && content.contains("Unknown column 'citty'"),
        "{content}"
    );
    assert!(!all.contains("wecom-sandbox-key"), "{all}");
    world.clean().await;
}
