//! Issue 9, items 1, 3 and 5, end to end against the real RabbitMQ and MariaDB: MySQL write
//! modes on a changed record, counts that tell the truth (inserted, updated, unchanged, kept,
//! accepted), a scheme stopped on a configuration error, the exit codes of `ferry run --once`,
//! and a run's counts after `ferry replay`.

mod common;

use std::time::Duration;

use common::{World, all_output, stdout};
use serde_json::{Value, json};

/// A source table of customers (Chinese text, emoji, two time zones' worth of timestamps), and
/// `targets` empty copies of it in the target database. Returns (src, dst).
async fn customers(world: &mut World, targets: &[&str]) -> (String, String) {
    let src = world.database("src").await;
    let dst = world.database("dst").await;
    world
        .exec(&format!(
            "CREATE TABLE `{src}`.customers (id BIGINT PRIMARY KEY, name VARCHAR(60) NOT NULL,
                city VARCHAR(40) NULL, amount DECIMAL(12,2) NOT NULL) CHARACTER SET utf8mb4;
             INSERT INTO `{src}`.customers VALUES
                (1, '张三 😀', '上海', 10.50), (2, 'Zoë «quoted»', 'Berlin', 0.01),
                (3, '李四🚀', NULL, 9999999999.99), (4, '王五 公司', '深圳', 0.00);"
        ))
        .await;
    for table in targets {
        world
            .exec(&format!(
                "CREATE TABLE `{dst}`.`{table}` LIKE `{src}`.customers"
            ))
            .await;
    }
    (src, dst)
}

/// A scheme copying `customers` into `table` through `api` with `metadata` added to the target's.
fn customers_scheme(world: &mut World, base: &str, table: &str, api: &str, extra: Value) -> String {
    let scheme = world.scheme_name(base);
    let mut target = json!({
        "api": api,
        "request": [
            {"field": "id", "type": "int", "value": "{id}"},
            {"field": "name", "value": "{name}"},
            {"field": "city", "value": "{city}"},
            {"field": "amount", "type": "decimal", "value": "{amount}"}
        ],
        "otherRequest": [{"field": "main_sql", "value": format!(
            "INSERT INTO `{table}` (`id`, `name`, `city`, `amount`) VALUES (:id, :name, :city, :amount)"
        )}]
    });
    for (k, v) in extra.as_object().unwrap() {
        target[k] = v.clone();
    }
    let text = json!({
        "name": scheme,
        "source": {"connection": "src", "metadata": {
            "api": "select", "id": "id", "pagination": {"pageSize": 3, "mode": "keyset"},
            "otherRequest": [{"field": "main_sql",
                "value": "SELECT id, name, city, amount FROM customers WHERE id > :last_id ORDER BY id LIMIT :limit"}]
        }},
        "target": {"connection": "dst", "metadata": target}
    });
    world.write(&format!("schemes/{base}.json"), &text.to_string());
    scheme
}

fn write_toml(world: &mut World, src: &str, dst: &str) {
    let state = world.state_url();
    world.write_ferry_toml(
        &state,
        &(common::mysql_connection("src", src)
            + &common::mysql_connection("dst", dst)
            + "[connections.noop]\nkind = \"noop\"\n"),
    );
}

/// The summary line `ferry run --once` printed for `scheme`.
fn summary<'a>(out: &'a str, scheme: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{scheme}: ")))
        .unwrap_or_else(|| panic!("no line for {scheme} in:\n{out}"))
}

async fn rows(world: &World, db: &str, table: &str) -> String {
    world
        .scalar_string(&format!(
            "SELECT GROUP_CONCAT(CONCAT_WS('|', id, name, IFNULL(city, '∅'), amount) ORDER BY id SEPARATOR '\\n')
             FROM `{db}`.`{table}`"
        ))
        .await
}

/// Each write mode on a changed record: the target row after the run and the counts, for
/// `execute` and `batchexecute`; then a re-run that changes nothing reports it as unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_write_mode_on_a_changed_record_writes_and_counts_what_it_says() {
    let mut world = World::new("wm").await;
    let tables = ["keep_b", "upd_b", "upd_e", "rep_e", "seed1_e"];
    let (src, dst) = customers(&mut world, &tables).await;
    write_toml(&mut world, &src, &dst);
    let keep = customers_scheme(
        &mut world,
        "keep",
        "keep_b",
        "batchexecute",
        json!({"write_mode": "insert"}),
    );
    let update_b = customers_scheme(
        &mut world,
        "upd-b",
        "upd_b",
        "batchexecute",
        json!({"write_mode": "update"}),
    );
    let update_e = customers_scheme(
        &mut world,
        "upd-e",
        "upd_e",
        "execute",
        json!({"write_mode": "update"}),
    );
    let replace = customers_scheme(
        &mut world,
        "rep-e",
        "rep_e",
        "execute",
        json!({"write_mode": "replace"}),
    );
    // Seed 001's shape: a plain INSERT with idCheck and no write_mode.
    let seed1 = customers_scheme(
        &mut world,
        "seed1-e",
        "seed1_e",
        "execute",
        json!({"idCheck": true}),
    );
    let lint = world.ferry(&["lint"]);
    assert!(lint.status.success(), "{}", all_output(&lint));

    let first = world.ferry(&["run", "--once"]);
    let out = stdout(&first);
    assert_eq!(first.status.code(), Some(0), "{}", all_output(&first));
    for scheme in [&update_b, &update_e] {
        assert!(
            summary(&out, scheme)
                .contains("4 records: 4 inserted, 0 updated, 0 unchanged, 0 dead-lettered"),
            "{out}"
        );
    }
    for scheme in [&keep, &seed1] {
        assert!(
            summary(&out, scheme).contains("4 records: 4 inserted, 0 kept, 0 dead-lettered"),
            "{out}"
        );
    }
    assert!(
        summary(&out, &replace).contains("4 records: 4 written, 0 dead-lettered"),
        "{out}"
    );
    let original = rows(&world, &src, "customers").await;

    // Record 2 changes at the source; record 3 gets a new city.
    world
        .exec(&format!(
            "UPDATE `{src}`.customers SET name = 'Zoë 改 ✓', amount = 0.02 WHERE id = 2;
             UPDATE `{src}`.customers SET city = '杭州' WHERE id = 3;"
        ))
        .await;
    let second = world.ferry(&["run", "--once"]);
    let out = stdout(&second);
    assert_eq!(second.status.code(), Some(0), "{}", all_output(&second));
    let changed = rows(&world, &src, "customers").await;
    // insert: the target keeps its rows; the duplicates are kept, never called written.
    for (scheme, table) in [(&keep, "keep_b"), (&seed1, "seed1_e")] {
        assert!(
            summary(&out, scheme).contains("4 records: 0 inserted, 4 kept, 0 dead-lettered"),
            "{out}"
        );
        assert_eq!(
            rows(&world, &dst, table).await,
            original,
            "{table} kept its rows"
        );
    }
    // update: the two changed rows are updated, the other two found unchanged.
    for (scheme, table) in [(&update_b, "upd_b"), (&update_e, "upd_e")] {
        assert!(
            summary(&out, scheme)
                .contains("4 records: 0 inserted, 2 updated, 2 unchanged, 0 dead-lettered"),
            "{out}"
        );
        assert_eq!(rows(&world, &dst, table).await, changed, "{table} updated");
    }
    // replace: every row replaced by the record; REPLACE cannot tell which rows changed.
    assert!(
        summary(&out, &replace).contains("4 records: 4 written, 0 dead-lettered"),
        "{out}"
    );
    assert_eq!(rows(&world, &dst, "rep_e").await, changed);

    // A re-run over unchanged rows says so: nothing inserted, nothing updated.
    let third = world.ferry(&[
        "run", "--once", "--scheme", &update_b, "--scheme", &update_e,
    ]);
    let out = stdout(&third);
    assert_eq!(third.status.code(), Some(0), "{}", all_output(&third));
    for scheme in [&update_b, &update_e] {
        assert!(
            summary(&out, scheme)
                .contains("4 records: 0 inserted, 0 updated, 4 unchanged, 0 dead-lettered"),
            "{out}"
        );
    }
    let status = world.ferry(&["status", "--json", "--scheme", &update_b]);
    let json: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let run = &json[0]["runs"][0];
    assert_eq!(
        (
            &run["inserted"],
            &run["updated"],
            &run["unchanged"],
            &run["kept"],
            &run["written"]
        ),
        (&json!(0), &json!(0), &json!(4), &json!(0), &json!(0)),
        "{run}"
    );
    world.clean().await;
}

/// A plain INSERT without `write_mode` or `idCheck` refuses a key the table has: the record is
/// dead-lettered, and its error says which `write_mode` to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_insert_without_write_mode_dead_letters_a_duplicate_and_says_what_to_set() {
    let mut world = World::new("wd").await;
    let (src, dst) = customers(&mut world, &["plain_t"]).await;
    world
        .exec(&format!(
            "INSERT INTO `{dst}`.plain_t VALUES (3, '李四 旧', '北京', 1.00)"
        ))
        .await;
    write_toml(&mut world, &src, &dst);
    let scheme = customers_scheme(&mut world, "plain", "plain_t", "execute", json!({}));
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(
        summary(&stdout(&out), &scheme).contains("4 records: 3 inserted, 1 dead-lettered"),
        "{}",
        all_output(&out)
    );
    let letters = common::drain_queue(&format!("ferry.{scheme}.load.dlq")).await;
    assert_eq!(letters.len(), 1);
    let error = &letters[0].1["x-ferry-error"];
    assert!(
        error.contains("Duplicate entry '3'")
            && error.contains("set the target's write_mode to `insert` to keep the row the target has, or `update` to update it"),
        "{error}"
    );
    assert_eq!(
        world
            .scalar_string(&format!("SELECT name FROM `{dst}`.plain_t WHERE id = 3"))
            .await,
        "李四 旧"
    );
    world.clean().await;
}

/// `write_mode` is checked by `ferry lint`, naming the file and the JSON path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_names_the_file_and_path_of_a_bad_write_mode() {
    let mut world = World::new("wl").await;
    let (src, dst) = customers(&mut world, &[]).await;
    write_toml(&mut world, &src, &dst);
    customers_scheme(
        &mut world,
        "typo",
        "t",
        "batchexecute",
        json!({"write_mode": "upsert"}),
    );
    let out = world.ferry(&["lint"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        stdout(&out).contains(
            "schemes/typo.json: target.metadata.write_mode: unknown write_mode `upsert`, expected \
             `insert` (keep the row the target has), `update` (upsert every mapped column) or \
             `replace` (REPLACE INTO)"
        ),
        "{}",
        all_output(&out)
    );
    world.clean().await;
}

/// The no-op target accepts records; it never claims to have written them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noop_target_counts_records_as_accepted() {
    let mut world = World::new("wn").await;
    let (src, dst) = customers(&mut world, &[]).await;
    write_toml(&mut world, &src, &dst);
    let scheme = world.scheme_name("noop");
    world.write(
        "schemes/noop.json",
        &json!({
            "name": scheme,
            "source": {"connection": "src", "metadata": {"api": "select", "id": "id",
                "otherRequest": [{"field": "main_sql", "value": "SELECT id, name FROM customers"}]}},
            "target": {"connection": "noop", "metadata": {"api": "写入空操作"}}
        })
        .to_string(),
    );
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = stdout(&out);
    assert!(
        summary(&text, &scheme).contains("4 records: 4 accepted, 0 dead-lettered"),
        "{text}"
    );
    assert!(!text.contains("written"), "{text}");
    world.clean().await;
}

/// A scheme whose target SQL names an unknown column stops: shown as `stopped` with its error
/// once, in the summary and in `ferry status` (text and JSON); one scheme failed; exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheme_stopped_on_an_unknown_column_is_reported_once_as_stopped() {
    let mut world = World::new("ws").await;
    let (src, dst) = customers(&mut world, &["stop_t"]).await;
    write_toml(&mut world, &src, &dst);
    let scheme = customers_scheme(
        &mut world,
        "stop",
        "stop_t",
        "batchexecute",
        json!({"write_mode": "update"}),
    );
    let path = world.dir.join("schemes/stop.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("`city`, `amount`)", "`citty`, `amount`)");
    std::fs::write(&path, text).unwrap();

    let out = world.ferry(&["run", "--once", "--timeout-secs", "120"]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let text = stdout(&out);
    let line = format!("{scheme}: stopped: ");
    assert_eq!(text.matches(&line).count(), 1, "{all}");
    assert!(
        summary(&text, &scheme).contains("Unknown column 'citty'"),
        "{all}"
    );
    assert_eq!(
        text.matches("Unknown column").count(),
        1,
        "the error once: {all}"
    );
    assert!(!text.contains("did not settle"), "{all}");
    assert!(all.contains("1 scheme(s) failed"), "{all}");

    let status = world.ferry(&["status", "--json", "--scheme", &scheme]);
    let json: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let run = &json[0]["runs"][0];
    assert_eq!(run["status"], "stopped", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("Unknown column 'citty'")),
        "{run}"
    );
    let human = stdout(&world.ferry(&["status", "--scheme", &scheme]));
    assert!(human.contains(" stopped "), "{human}");
    assert_eq!(
        human.matches("Unknown column 'citty'").count(),
        1,
        "{human}"
    );
    world.clean().await;
}

/// `ferry run --once` exits 0 on a clean run, 3 when records were dead-lettered (saying how many
/// and the replay command), 0 with `--allow-dead-letters`. A replay that fails again leaves the
/// run's dead count as it was; after the target is fixed, the replayed records move from
/// dead-lettered to inserted and the run's counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exit_codes_and_counts_after_a_replay() {
    let mut world = World::new("wx").await;
    let (src, dst) = customers(&mut world, &["clean_t", "dead_t"]).await;
    world
        .exec(&format!(
            "ALTER TABLE `{dst}`.dead_t ADD CONSTRAINT amount_small CHECK (amount < 1000)"
        ))
        .await;
    write_toml(&mut world, &src, &dst);
    let clean = customers_scheme(
        &mut world,
        "clean",
        "clean_t",
        "batchexecute",
        json!({"write_mode": "update"}),
    );
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a clean run: {}",
        all_output(&out)
    );
    std::fs::remove_file(world.dir.join("schemes/clean.json")).unwrap();
    let _ = clean;

    let scheme = customers_scheme(
        &mut world,
        "dead",
        "dead_t",
        "batchexecute",
        json!({"write_mode": "update"}),
    );
    let out = world.ferry(&["run", "--once"]);
    let all = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    let text = stdout(&out);
    assert!(
        summary(&text, &scheme)
            .contains("4 records: 3 inserted, 0 updated, 0 unchanged, 1 dead-lettered"),
        "{all}"
    );
    assert!(
        text.contains(&format!(
            "{scheme}: 1 record(s) dead-lettered; fix the cause, then replay them: \
             ferry replay --scheme {scheme} --stage load"
        )),
        "{all}"
    );
    let run_id = {
        let status = world.ferry(&["status", "--json", "--scheme", &scheme]);
        let json: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
        json[0]["runs"][0]["run_id"].as_str().unwrap().to_string()
    };

    let allowed = world.ferry(&["run", "--once", "--allow-dead-letters"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", all_output(&allowed));
    assert!(
        stdout(&allowed).contains("1 record(s) dead-lettered"),
        "{}",
        all_output(&allowed)
    );

    // Replayed before the fix: both dead letters fail again; the first run still counts one.
    let load = world.spawn(&["load"], "load.log");
    let w = &world;
    let replay = world.ferry(&["replay", "--scheme", &scheme, "--stage", "load"]);
    assert!(
        stdout(&replay).contains("moved 2 dead letter(s)"),
        "{}",
        all_output(&replay)
    );
    let dlq = format!("ferry.{scheme}.load.dlq");
    world
        .wait_for(
            "the replayed records to fail again",
            Duration::from_secs(60),
            || async {
                let out = w.ferry(&["status", "--json", "--scheme", &scheme]);
                let json: Value = serde_json::from_slice(&out.stdout).ok()?;
                let queue = json[0]["queues"]
                    .as_array()?
                    .iter()
                    .find(|q| q["queue"] == dlq.as_str())?
                    .clone();
                (queue["messages"] == 2).then_some(())
            },
        )
        .await;
    let run = w.run_status(&scheme, &run_id).expect("the first run");
    assert_eq!(
        (&run["inserted"], &run["dead_lettered"]),
        (&json!(3), &json!(1)),
        "{run}"
    );

    // Fixed at the target, replayed: the run's counts add up.
    world
        .exec(&format!(
            "ALTER TABLE `{dst}`.dead_t DROP CONSTRAINT amount_small"
        ))
        .await;
    let replay = world.ferry(&["replay", "--scheme", &scheme, "--stage", "load"]);
    assert!(
        stdout(&replay).contains("moved 2 dead letter(s)"),
        "{}",
        all_output(&replay)
    );
    let run = world
        .wait_for(
            "the replayed record counted",
            Duration::from_secs(60),
            || async {
                let run = w.run_status(&scheme, &run_id)?;
                (run["dead_lettered"] == 0).then_some(run)
            },
        )
        .await;
    // The replay moved two copies of the record (this run's and the --allow-dead-letters run's);
    // the loader's workers may write either first, so this run's copy is the insert or finds the
    // row as the other copy left it (unchanged). Either way it counts once, and nothing is dead.
    let written = run["inserted"].as_u64().unwrap_or(0) + run["unchanged"].as_u64().unwrap_or(0);
    assert!(run["inserted"].as_u64() >= Some(3), "{run}");
    assert_eq!(
        (
            &run["records"],
            &json!(written),
            &run["updated"],
            &run["dead_lettered"],
            &run["status"]
        ),
        (&json!(4), &json!(4), &json!(0), &json!(0), &json!("done")),
        "{run}"
    );
    assert_eq!(
        rows(&world, &dst, "dead_t").await,
        rows(&world, &src, "customers").await
    );
    world.kill(load);
    world.clean().await;
}
