//! The "Guarantees" of the README under fire: a RabbitMQ restart and a target database outage in
//! the middle of a run (MySQL to MySQL, keyset paging, `batchexecute` upsert, 30,000 rows with
//! Chinese text and emoji), with extract, transform and load as separate processes.
//!
//! The shared broker (5672) and MariaDB (3306) serve other tests running in parallel, so they are
//! never touched: each test starts a private RabbitMQ node or MariaDB server of its own, on free
//! ports, in a temporary directory, and stops it when it ends (also when it panics, by `Drop`).

mod common;
#[path = "common/copy.rs"]
mod copy;
#[path = "common/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use common::{World, drain_queue_at};
use copy::{TARGET_DDL, count, digest, write_config};
use servers::{PrivateServer, private_mariadb, private_rabbitmq, tail};
use sqlx::mysql::MySqlPool;
use sqlx::{AssertSqlSafe, Row};

const ROWS: i64 = 30_000;

/// How long the target stays down: longer than the pool's acquire timeout, so that loads fail.
const TARGET_OUTAGE_SECS: u64 = ferry_state::mysql::ACQUIRE_TIMEOUT_SECS + 3;

/// The source of the copy job, [`ROWS`] rows.
async fn fill_source(world: &mut World) -> String {
    copy::fill_source(world, ROWS).await
}

/// A role of the pipeline as a supervisor sees it: its slot in the world, its command line and
/// log, and how often it ended on its own.
struct Role {
    index: usize,
    args: &'static [&'static str],
    log: &'static str,
    exits: Vec<Option<i32>>,
    /// The `ferry: ...` line each ended run printed last.
    reasons: Vec<String>,
}

impl Role {
    fn spawn(world: &mut World, args: &'static [&'static str], log: &'static str) -> Role {
        Role {
            index: world.spawn(args, log),
            args,
            log,
            exits: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// Restart the role if it ended (as systemd or Kubernetes would); `once` roles that ended
    /// with 0 are done and stay down.
    fn supervise(&mut self, world: &mut World) {
        if let Some(code) = world.exited(self.index) {
            if code == Some(0) && self.args.contains(&"--once") {
                return;
            }
            self.exits.push(code);
            let log = world.log(self.log);
            let reason = log
                .lines()
                .rev()
                .find(|l| l.starts_with("ferry: "))
                .unwrap_or("(no `ferry:` line)")
                .to_string();
            self.reasons.push(reason);
            eprintln!(
                "`ferry {}` ended with {code:?}; restarting it. Its log:\n{}",
                self.args.join(" "),
                tail(&world.dir.join(self.log))
            );
            assert!(
                self.exits.len() <= 5,
                "{} keeps failing ({:?}):\n{}",
                self.args.join(" "),
                self.exits,
                world.log(self.log)
            );
            world.respawn(self.index, self.args, self.log);
        }
    }
}

/// Supervise `roles` until the target holds `ROWS` rows or `timeout` passes.
async fn supervise_until_complete<F, Fut>(
    world: &mut World,
    roles: &mut [Role],
    target: F,
    timeout: Duration,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<i64>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        for role in roles.iter_mut() {
            role.supervise(world);
        }
        let n = target().await;
        if n == Some(ROWS) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} with {n:?} of {ROWS} rows in the target ({}; logs in {})",
                report(roles),
                keep_logs(world)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Copy the roles' logs out of the world (which is removed at the end) for a failing test.
fn keep_logs(world: &World) -> String {
    let kept = std::env::temp_dir().join(format!("ferry-resilience-logs-{}", world.id));
    let _ = std::fs::create_dir_all(&kept);
    for log in ["transform.log", "load.log", "extract.log", "run.log"] {
        let _ = std::fs::copy(world.dir.join(log), kept.join(log));
    }
    kept.display().to_string()
}

/// A world with a RabbitMQ node of its own; `None` (the test is skipped, saying why) where no
/// private node can start.
async fn world_with_private_broker(tag: &str) -> Option<(World, PrivateServer, String)> {
    let world = World::new(tag).await;
    match private_rabbitmq(&world.id) {
        Ok(rabbit) => {
            let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit.port);
            Some((world, rabbit, amqp))
        }
        Err(why) => {
            eprintln!("SKIPPED: cannot start a private RabbitMQ node: {why}");
            world.clean().await;
            None
        }
    }
}

/// The filled source, the empty target and the config of the copy job on broker `amqp`:
/// `(source db, target db, scheme)`.
async fn copy_job(world: &mut World, amqp: &str) -> (String, String, String) {
    let src = fill_source(world).await;
    let dst = world.database("dst").await;
    world.exec(&format!("USE `{dst}`; {TARGET_DDL}")).await;
    let scheme = write_config(
        world,
        amqp,
        &format!("{}/{src}", common::MYSQL),
        &format!("{}/{dst}", common::MYSQL),
    );
    (src, dst, scheme)
}

async fn wait_for_first_rows(world: &World, dst: &str) {
    let admin = world.admin.clone();
    world
        .wait_for(
            "the first rows in the target",
            Duration::from_secs(120),
            || {
                let admin = admin.clone();
                async move { count(&admin, dst).await.filter(|n| *n > 0) }
            },
        )
        .await;
}

/// Once rows arrive, stop the broker for `down` and start it again on the same data; then
/// supervise the roles until every row is in the target. Returns the rows written before the stop.
async fn broker_outage(
    world: &mut World,
    rabbit: &mut PrivateServer,
    roles: &mut [Role],
    dst: &str,
    down: Duration,
) -> i64 {
    let admin = world.admin.clone();
    wait_for_first_rows(world, dst).await;
    rabbit.stop("TERM");
    let written_before = count(&admin, dst).await.unwrap_or_default();
    tokio::time::sleep(down).await;
    rabbit.start().expect("restart the private RabbitMQ");
    supervise_until_complete(
        world,
        roles,
        || count(&admin, dst),
        Duration::from_secs(300),
    )
    .await;
    written_before
}

/// Wait until the latest run is `done` in the state database (every record settled, by Ferry's
/// own count) and return `(records, written, skipped, dead)`, where `written` adds up every
/// outcome of a write (inserted, updated, unchanged, kept, accepted, written). An extractor that was restarted
/// left its first run `failed`; the run that counts is the one that finished the job.
async fn settled_run(world: &mut World) -> (i64, i64, i64, i64) {
    let state = world.state_url();
    let db = state.rsplit('/').next().expect("state db").to_string();
    let admin = world.admin.clone();
    world
        .wait_for("the run to be done", Duration::from_secs(180), || {
            let sql =
                format!("SELECT status, records, written + inserted + updated + unchanged + kept + accepted, skipped, dead FROM `{db}`.ferry_runs ORDER BY started_at DESC LIMIT 1");
            let admin = admin.clone();
            async move {
                let row = sqlx::query(AssertSqlSafe(sql))
                    .fetch_one(&admin)
                    .await
                    .ok()?;
                let status: String = row.try_get(0).ok()?;
                (status == "done").then(|| {
                    let n = |i| row.try_get::<i64, _>(i).unwrap_or(-1);
                    (n(1), n(2), n(3), n(4))
                })
            }
        })
        .await
}

fn report(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| {
            format!(
                "`ferry {}` exits: {:?} {:?}",
                r.args.join(" "),
                r.exits,
                r.reasons
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The broker (a private RabbitMQ node) is stopped cleanly while loads are in flight and started
/// again 3 s later on the same data directory. The quorum queues and their messages survive it;
/// transform and load wait for lapin's recovery and go on by themselves; the run completes with
/// every row exactly once (ordered checksum of every column) and no dead letter. A role that
/// exits non-zero would be restarted here as a supervisor would, and its exits are reported; the
/// test asserts that none was needed (see the README's Guarantees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_run_loses_and_duplicates_nothing() {
    let Some((mut world, mut rabbit, amqp)) = world_with_private_broker("rb").await else {
        return;
    };
    let (src, dst, scheme) = copy_job(&mut world, &amqp).await;

    let mut roles = vec![
        Role::spawn(
            &mut world,
            &["transform", "--workers", "2"],
            "transform.log",
        ),
        Role::spawn(&mut world, &["load", "--workers", "2"], "load.log"),
        Role::spawn(&mut world, &["extract", "--once"], "extract.log"),
    ];
    let admin = world.admin.clone();
    let written_before = broker_outage(
        &mut world,
        &mut rabbit,
        &mut roles,
        &dst,
        Duration::from_secs(3),
    )
    .await;
    let restarts = report(&roles);
    eprintln!("after the broker restart: {restarts}");
    assert!(
        written_before < ROWS,
        "the broker went down mid-run ({written_before} of {ROWS} rows written)"
    );
    assert_same_rows(&admin, &src, &dst).await;
    let (records, written, skipped, dead) = settled_run(&mut world).await;
    eprintln!(
        "the run by Ferry's count: {records} records, {written} written, {skipped} skipped, {dead} dead"
    );
    assert_eq!((records, dead), (ROWS, 0));
    assert_eq!(
        written + skipped,
        ROWS,
        "each record counted once, even after redeliveries: {written} + {skipped}"
    );
    assert_no_dead_letters(&amqp, &scheme).await;
    // A role may give its connection up (lapin's recovery stalled) and exit 1 saying so; nothing
    // else is an acceptable way to end.
    assert!(
        roles.iter().all(|r| r.exits.iter().all(|c| *c == Some(1))
            && r.reasons.iter().all(|why| why.contains("RabbitMQ"))),
        "roles recovered or exited because the connection was lost: {restarts} (logs in {})",
        keep_logs(&world)
    );
    assert_graceful_stop(&mut world, "load.log");
    world.clean().await;
    drop(rabbit);
}

/// The broker stays down longer than `[broker] recovery_wait_secs` (3 s here, 60 by default), so
/// every process gives its connection up while the extractor is in the middle of its run. Each
/// (`ferry run`, `ferry load`, `ferry extract --once`) connects afresh in the same process once the
/// broker is back (none exits, no supervisor needed), the extractor resumes its run after the last
/// confirmed page, and the run completes with every row exactly once and every record counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_longer_than_the_recovery_wait_is_ridden_out_in_process() {
    let Some((mut world, mut rabbit, amqp)) = world_with_private_broker("ro").await else {
        return;
    };
    let (src, dst, scheme) = outage_job(&mut world, &amqp).await;

    // `ferry run` (no schedule: its transform and load workers only) beside a separate loader and
    // extractor, so both ways of running the stages ride the outage out.
    let mut roles = vec![
        Role::spawn(&mut world, &["run"], "run.log"),
        Role::spawn(&mut world, &["load"], "load.log"),
        Role::spawn(&mut world, &["extract", "--once"], "extract.log"),
    ];
    let admin = world.admin.clone();
    broker_outage(
        &mut world,
        &mut rabbit,
        &mut roles,
        &dst,
        Duration::from_secs(8),
    )
    .await;
    assert!(
        roles.iter().all(|r| r.exits.is_empty()),
        "no role ended: {} (logs in {})",
        report(&roles),
        keep_logs(&world)
    );
    for log in ["run.log", "load.log", "extract.log"] {
        assert!(
            world.log(log).contains("connecting afresh"),
            "{log} gave its connection up and connected afresh:\n{}",
            world.log(log)
        );
    }
    assert_same_rows(&admin, &src, &dst).await;
    let (records, written, skipped, dead) = settled_run(&mut world).await;
    assert_eq!((records, dead), (ROWS, 0));
    assert_eq!(written + skipped, ROWS, "each record counted once");
    let state = world.state_url();
    let state_db = state.rsplit('/').next().expect("state db");
    assert_eq!(
        world
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM `{state_db}`.ferry_runs WHERE pages = 60"
            ))
            .await,
        1,
        "one run of 60 pages: resumed, not started over\n{}",
        world.log("extract.log")
    );
    assert_no_dead_letters(&amqp, &scheme).await;
    assert_graceful_stop(&mut world, "extract.log");
    world.clean().await;
    drop(rabbit);
}

/// The same outage under `ferry run --once` alone (all three stages in one process, exiting
/// when the run has settled): it connects afresh, resumes its extraction, and exits 0 with the
/// exact summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_run_once_rides_out_a_broker_outage_longer_than_the_recovery_wait() {
    let Some((mut world, mut rabbit, amqp)) = world_with_private_broker("rr").await else {
        return;
    };
    let (src, dst, scheme) = outage_job(&mut world, &amqp).await;
    let mut roles = vec![Role::spawn(&mut world, &["run", "--once"], "run.log")];
    let admin = world.admin.clone();
    broker_outage(
        &mut world,
        &mut rabbit,
        &mut roles,
        &dst,
        Duration::from_secs(8),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(code) = world.exited(roles[0].index) {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "`ferry run --once` did not end:\n{}",
            world.log("run.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = world.log("run.log");
    assert_eq!(code, Some(0), "{log}");
    assert!(roles[0].exits.is_empty(), "{}", report(&roles));
    assert!(log.contains("connecting afresh"), "{log}");
    // A batch written again after the outage finds its rows as they were: `unchanged`.
    let counted = log.lines().find_map(|line| {
        let rest = line.strip_prefix(&format!("{scheme}: 60 pages, {ROWS} records: "))?;
        let (inserted, rest) = rest.split_once(" inserted, 0 updated, ")?;
        let (unchanged, rest) = rest.split_once(" unchanged, ")?;
        if !rest.starts_with("0 dead-lettered") {
            return None;
        }
        Some(inserted.parse::<i64>().ok()? + unchanged.parse::<i64>().ok()?)
    });
    assert_eq!(
        counted,
        Some(ROWS),
        "one run of 60 pages, each record counted once:\n{log}"
    );
    assert_same_rows(&admin, &src, &dst).await;
    assert_no_dead_letters(&amqp, &scheme).await;
    world.clean().await;
    drop(rabbit);
}

/// SIGTERM the three roles: each drains and exits 0 (else `log` is shown).
fn assert_graceful_stop(world: &mut World, log: &str) {
    let codes = world.stop_all();
    assert_eq!(
        codes,
        vec![Some(0), Some(0), Some(0)],
        "graceful exits\n{}",
        world.log(log)
    );
}

/// Every source row is in the target exactly once, every column unchanged (ordered checksum).
async fn assert_same_rows(admin: &MySqlPool, src: &str, dst: &str) {
    assert_eq!(
        digest(admin, dst, "orders_copy").await,
        digest(admin, src, "orders").await,
        "every row exactly once, every column unchanged"
    );
}

/// Neither of the scheme's dead-letter queues on the broker at `amqp` holds anything.
async fn assert_no_dead_letters(amqp: &str, scheme: &str) {
    for stage in ["transform", "load"] {
        let dead = drain_queue_at(amqp, &format!("ferry.{scheme}.{stage}.dlq")).await;
        assert!(dead.is_empty(), "{stage} dead letters: {dead:?}");
    }
}

/// The copy job of [`copy_job`] set up to meet an outage: a 3 s recovery wait, and page queries
/// that wait 0.2 s each, so the 60 pages take 12 s and the outage falls inside the run.
async fn outage_job(world: &mut World, amqp: &str) -> (String, String, String) {
    let job = copy_job(world, amqp).await;
    let toml = world.log("ferry.toml").replace(
        &format!("url = \"{amqp}\"\n"),
        &format!("url = \"{amqp}\"\nrecovery_wait_secs = 3\n"),
    );
    assert!(toml.contains("recovery_wait_secs = 3"), "{toml}");
    world.write("ferry.toml", &toml);
    let slow = world.log("schemes/orders.json").replace(
        "FROM orders WHERE",
        "FROM orders JOIN (SELECT SLEEP(0.2) AS pause) AS slow WHERE",
    );
    world.write("schemes/orders.json", &slow);
    job
}

/// The target (a private MariaDB) is killed with SIGKILL while loads are in flight and started
/// again on the same data directory after [`TARGET_OUTAGE_SECS`]. The loader finds it down (a
/// probe after the failed batch) and holds the scheme's messages in their queue, probing, instead
/// of sending batches through the retry queues; once the server is back the run completes with
/// every row exactly once and nothing retried or dead-lettered, no role restarted.
///
/// The outage outlasts the pool's acquire timeout (`ferry_state::mysql::ACQUIRE_TIMEOUT_SECS`,
/// 10 s), so loads do fail while it lasts. `tests/outage.rs` holds longer outages under
/// `ferry run --once`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_outage_mid_run_is_retried_until_every_row_is_written() {
    let mut world = World::new("db").await;
    let mut mariadb = match private_mariadb(&world.id) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED: cannot start a private MariaDB: {why}");
            world.clean().await;
            return;
        }
    };
    let target_server = format!("mysql://root@127.0.0.1:{}", mariadb.port);
    let dst = format!("ferry_t_{}_dst", world.id);
    let target_pool = ferry_state::mysql::connect(&format!("{target_server}/"), 2, false)
        .await
        .expect("the private MariaDB");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE DATABASE `{dst}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE `{dst}`; {TARGET_DDL}"
    )))
    .execute(&target_pool)
    .await
    .expect("target table");
    target_pool.close().await;

    let src = fill_source(&mut world).await;
    let scheme = write_config(
        &mut world,
        common::AMQP,
        &format!("{}/{src}", common::MYSQL),
        &format!("{target_server}/{dst}"),
    );
    let mut roles = vec![
        Role::spawn(
            &mut world,
            &["transform", "--workers", "2"],
            "transform.log",
        ),
        Role::spawn(&mut world, &["load", "--workers", "2"], "load.log"),
        Role::spawn(&mut world, &["extract", "--once"], "extract.log"),
    ];
    // A pool that outlives the outage: sqlx replaces broken connections on acquire.
    let target_pool = ferry_state::mysql::connect(&format!("{target_server}/"), 2, false)
        .await
        .expect("the private MariaDB");
    let w = &world;
    let pool = &target_pool;
    w.wait_for(
        "the first rows in the target",
        Duration::from_secs(120),
        || {
            let dst = dst.clone();
            async move { count(pool, &dst).await.filter(|n| *n > 0).map(|_| ()) }
        },
    )
    .await;
    mariadb.stop("KILL");
    tokio::time::sleep(Duration::from_secs(TARGET_OUTAGE_SECS)).await;
    mariadb.start().expect("restart the private MariaDB");
    let written_before = count(pool, &dst).await.unwrap_or_default();
    supervise_until_complete(
        &mut world,
        &mut roles,
        || count(pool, &dst),
        Duration::from_secs(400),
    )
    .await;
    let restarts = report(&roles);
    let load_log = world.log("load.log");
    eprintln!(
        "after the target outage: {restarts}; {} of {ROWS} rows written before the kill",
        written_before
    );
    assert!(
        written_before < ROWS,
        "the target went down mid-run ({written_before} of {ROWS} rows written)"
    );
    assert_eq!(
        digest(&target_pool, &dst, "orders_copy").await,
        digest(&world.admin, &src, "orders").await,
        "every row exactly once, every column unchanged"
    );
    assert!(
        load_log.contains("the target does not answer"),
        "the loader found the target down and held its messages:\n{load_log}"
    );
    assert!(
        !load_log.contains("batch failed; retrying later"),
        "no batch went through the retry queues:\n{load_log}"
    );
    let (records, written, skipped, dead) = settled_run(&mut world).await;
    eprintln!(
        "the run by Ferry's count: {records} records, {written} written, {skipped} skipped, {dead} dead"
    );
    assert_eq!((records, dead), (ROWS, 0));
    assert!(written + skipped >= ROWS, "{written} + {skipped}");
    assert_no_dead_letters(common::AMQP, &scheme).await;
    assert!(
        roles.iter().all(|r| r.exits.is_empty()),
        "no role had to be restarted: {restarts}"
    );
    assert_graceful_stop(&mut world, "load.log");
    target_pool.close().await;
    world.clean().await;
    drop(mariadb);
}

/// Two RabbitMQ nodes in `[broker] urls` (two private nodes standing in for a cluster's): every
/// role (`ferry transform`, `ferry load`, `ferry extract --once`) connects to the first. That node
/// is killed (SIGKILL) mid-run and stays down: each role's supervisor gives the connection up
/// after the recovery wait (3 s here) and, in the same process, connects afresh to the second node
/// within seconds; the extractor resumes its run there after its last confirmed page and finishes
/// it, and the rows it publishes there reach the target. (The pages still queued on the dead node
/// wait for it: independent nodes share no queue, a cluster's replicated queues do.) No role
/// exits, no password shows in any log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_connects_afresh_to_the_next_node_when_its_node_dies() {
    let Some((mut world, mut first, amqp_first)) = world_with_private_broker("fo").await else {
        return;
    };
    let second = match private_rabbitmq(&format!("{}b", world.id)) {
        Ok(second) => second,
        Err(why) => {
            eprintln!("SKIPPED: cannot start a second private RabbitMQ node: {why}");
            world.clean().await;
            return;
        }
    };
    let amqp_second = format!("amqp://guest:guest@127.0.0.1:{}/%2f", second.port);
    let (_src, dst, scheme) = outage_job(&mut world, &amqp_first).await;
    let toml = world.log("ferry.toml").replace(
        &format!("url = \"{amqp_first}\"\n"),
        &format!("urls = [\"{amqp_first}\", \"{amqp_second}\"]\n"),
    );
    assert!(toml.contains("urls = ["), "{toml}");
    world.write("ferry.toml", &toml);
    let mut roles = vec![
        Role::spawn(&mut world, &["transform"], "transform.log"),
        Role::spawn(&mut world, &["load"], "load.log"),
        Role::spawn(&mut world, &["extract", "--once"], "extract.log"),
    ];
    let admin = world.admin.clone();
    wait_for_first_rows(&world, &dst).await;
    first.stop("KILL");
    let killed = Instant::now();
    let before = count(&admin, &dst).await.unwrap_or_default();
    assert!(before < ROWS, "the node died mid-run ({before} of {ROWS})");
    let second_node = format!("127.0.0.1:{}", second.port);
    let logs = ["transform.log", "load.log", "extract.log"];
    let deadline = killed + Duration::from_secs(90);
    loop {
        for role in roles.iter_mut() {
            role.supervise(&mut world);
        }
        let moved = logs.iter().all(|log| {
            world
                .log(log)
                .lines()
                .any(|l| l.contains("connected to RabbitMQ afresh") && l.contains(&second_node))
        });
        if moved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every role connected afresh to the second node ({}; logs in {})",
            report(&roles),
            keep_logs(&world)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failover = killed.elapsed();
    eprintln!("every role was on the second node {failover:?} after the first died");
    assert!(
        failover < Duration::from_secs(30),
        "failover within seconds: {failover:?}"
    );
    // The extractor finishes its run on the second node, resumed, and exits 0.
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(code) = world.exited(roles[2].index) {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "`ferry extract --once` did not end:\n{}",
            world.log("extract.log")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let extract_log = world.log("extract.log");
    assert_eq!(code, Some(0), "{extract_log}");
    assert!(
        extract_log.contains(&format!("{scheme}: extracted {ROWS} records in 60 pages"))
            && extract_log.contains(", resumed after page"),
        "{extract_log}"
    );
    // The pages published on the second node reach the target.
    let moved_on = world
        .wait_for_count(
            "rows written through the second node",
            &format!("SELECT COUNT(*) FROM `{dst}`.orders_copy"),
            Duration::from_secs(120),
            |n| n > before,
        )
        .await;
    eprintln!("{before} rows before the node died, {moved_on} after");
    assert!(
        roles.iter().all(|r| r.exits.is_empty()),
        "no role ended: {} (logs in {})",
        report(&roles),
        keep_logs(&world)
    );
    for log in logs {
        let text = world.log(log);
        assert!(text.contains("connecting afresh"), "{log}:\n{text}");
        assert!(
            !text.contains("guest:guest@"),
            "{log} shows a password:\n{text}"
        );
    }
    assert_no_dead_letters(&amqp_second, &scheme).await;
    assert_graceful_stop(&mut world, "load.log");
    world.clean().await;
    drop(second);
}

/// Rows of the job [`every_role_connects_afresh_through_its_supervisor_when_its_connection_is_cut`]
/// copies before and again after the cut.
const CUT_ROWS: i64 = 2_000;

/// `rabbitmqctl` on the shared broker; the error says why it could not run.
fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The test's vhost on the shared broker, deleted when the test ends, also when it panics.
struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.0]);
    }
}

/// Every long-running role runs inside the one supervisor (`roles/supervisor.rs`): this cuts the
/// connection of every role at once, on the shared broker, in the test's own vhost: guest loses
/// its permissions there and the vhost's connections are closed, so lapin's recovery is refused
/// until the permissions come back 6 s later. `ferry extract`, `ferry transform`, `ferry load` and `ferry run` each
/// give their connection up after the recovery wait (3 s), connect afresh through the
/// supervisor with backoff, and go on without restarting: a second extraction after the cut
/// reaches the target through them, every row once. (`ferry run --once` and `ferry extract
/// --once` mid-run are the broker-outage tests above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_connects_afresh_through_its_supervisor_when_its_connection_is_cut() {
    let mut world = World::new("sv").await;
    let vhost = format!("ferry-sv-{}", world.id);
    if let Err(why) = rabbitmqctl(&["add_vhost", &vhost]) {
        eprintln!("SKIPPED: cannot make a vhost on the shared broker: {why}");
        world.clean().await;
        return;
    }
    let _vhost = Vhost(vhost.clone());
    let grant = || rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    grant().expect("guest may use the test's vhost");
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");

    let src = copy::fill_source(&mut world, CUT_ROWS).await;
    let dst = world.database("dst").await;
    world.exec(&format!("USE `{dst}`; {TARGET_DDL}")).await;
    write_config(
        &mut world,
        &amqp,
        &format!("{}/{src}", common::MYSQL),
        &format!("{}/{dst}", common::MYSQL),
    );
    let toml = world.log("ferry.toml").replace(
        &format!("url = \"{amqp}\"\n"),
        &format!("url = \"{amqp}\"\nrecovery_wait_secs = 3\n"),
    );
    assert!(toml.contains("recovery_wait_secs = 3"), "{toml}");
    world.write("ferry.toml", &toml);

    let logs = ["extract.log", "transform.log", "load.log", "run.log"];
    let roles = [
        Role::spawn(&mut world, &["extract"], logs[0]),
        Role::spawn(&mut world, &["transform"], logs[1]),
        Role::spawn(&mut world, &["load"], logs[2]),
        Role::spawn(&mut world, &["run"], logs[3]),
    ];
    let admin = world.admin.clone();
    let copied = |rows: i64| {
        let admin = admin.clone();
        let dst = dst.clone();
        move || {
            let admin = admin.clone();
            let dst = dst.clone();
            async move { count(&admin, &dst).await.filter(|n| *n == rows) }
        }
    };
    let once = world.ferry(&["extract", "--once"]);
    assert!(once.status.success(), "{}", common::all_output(&once));
    world
        .wait_for(
            "the rows before the cut",
            Duration::from_secs(120),
            copied(CUT_ROWS),
        )
        .await;

    rabbitmqctl(&["clear_permissions", "-p", &vhost, "guest"]).expect("guest is locked out");
    rabbitmqctl(&[
        "close_all_connections",
        "--vhost",
        &vhost,
        "cut by a Ferry test",
    ])
    .expect("every connection of the vhost is closed");
    tokio::time::sleep(Duration::from_secs(6)).await;
    grant().expect("guest may use the vhost again");
    let deadline = Instant::now() + Duration::from_secs(60);
    for log in logs {
        while !world.log(log).contains("connecting afresh") {
            assert!(
                Instant::now() < deadline,
                "{log} gave its connection up and connected afresh:\n{}",
                world.log(log)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    world
        .exec(&format!(
            "INSERT INTO `{src}`.orders (id, customer, amount, qty, created_at, note, payload)
             SELECT id + {CUT_ROWS}, customer, amount, qty, created_at, note, payload
             FROM `{src}`.orders"
        ))
        .await;
    let again = world.ferry(&["extract", "--once"]);
    assert!(again.status.success(), "{}", common::all_output(&again));
    world
        .wait_for(
            "the rows after the cut",
            Duration::from_secs(120),
            copied(2 * CUT_ROWS),
        )
        .await;
    for role in &roles {
        assert_eq!(
            world.exited(role.index),
            None,
            "`ferry {}` kept running:\n{}",
            role.args.join(" "),
            world.log(role.log)
        );
    }
    assert_same_rows(&admin, &src, &dst).await;
    let codes = world.stop_all();
    assert!(
        codes.iter().all(|c| *c == Some(0)),
        "graceful exits {codes:?} ({})",
        keep_logs(&world)
    );
    world.clean().await;
}
