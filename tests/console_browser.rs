//! `ferry console` in a real headless browser: `tests/browser/console.mjs` (Debian's chromium
//! driven by playwright-core) logs in, reads dead letters, replays one and sees the counts change.
//! `scripts/browser-deps.sh` installs what it needs.

mod common;
#[path = "common/console.rs"]
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::World;
use serde_json::json;
use setup::*;

/// Where the browser tests' node package lives, and the chromium they drive.
fn browser_tools() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    assert!(
        dir.join("node_modules/playwright-core").is_dir() && chromium.exists(),
        "the browser tests need Debian's chromium and playwright-core in tests/browser/node_modules: \
         run scripts/browser-deps.sh (scripts/test.sh and .ci/run do)"
    );
    (dir, chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_shows_dead_letters_and_replays_one() {
    let (browser_dir, chromium) = browser_tools();
    let mut world = World::new("cb").await;
    let (scheme, dst) = dead_lettering_scheme(&mut world).await;
    let out = world.ferry(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "two records dead-lettered: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The cause is fixed; the dead letters wait for a replay, a loader for their records.
    world
        .exec(&format!(
            "ALTER TABLE `{dst}`.customers DROP CONSTRAINT amount_small"
        ))
        .await;
    world.spawn(&["load", "--scheme", &scheme], "load.log");
    let url = start_console(&mut world, "console.log").await;

    let screenshot = std::env::var("CONSOLE_SCREENSHOT").ok();
    let mut node = Command::new("node");
    node.arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", &url)
        .env("CONSOLE_USER", USER)
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("SCHEME", &scheme)
        .env("CHROMIUM", &chromium)
        .env(
            "SECRETS",
            json!([TOKEN, ROBOT_SECRET, "robot-token-e2e-1234"]).to_string(),
        );
    if let Some(path) = &screenshot {
        node.env("SCREENSHOT", path);
    }
    let run = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node (Node.js 20) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{said}");
    assert!(
        run.status.success(),
        "the browser test failed:\n{said}\nconsole log:\n{}\nload log:\n{}",
        world.log("console.log"),
        world.log("load.log")
    );
    // The replayed record reached the target; the other one still waits.
    let names = world
        .scalar_string(&format!(
            "SELECT GROUP_CONCAT(name ORDER BY id) FROM `{dst}`.customers"
        ))
        .await;
    assert_eq!(names, "张三 😀,Zoë «quoted»,李四🚀");
    world.clean().await;
}
