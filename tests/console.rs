//! `ferry console` over HTTP: the login, the refusals and the security headers, what the pages say
//! when the broker is down, and no start without a login. The browser test is
//! `tests/console_browser.rs`.

mod common;
#[path = "common/console.rs"]
mod setup;

use common::World;
use serde_json::{Value, json};
use setup::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_requires_a_login_and_refuses_cross_site_requests() {
    let mut world = World::new("cl").await;
    let (scheme, _dst) = dead_lettering_scheme(&mut world).await;
    let url = start_console(&mut world, "console.log").await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = client();

    // The page and its assets are served, with the security headers.
    let page = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/assets/app.js") && !html.contains("<script>"),
        "{html}"
    );

    // No login, a wrong login: refused.
    let anonymous = http.get(format!("{url}/api/schemes")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .post(format!("{url}/api/login"))
        .json(&json!({"user": USER, "password": "口令-wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let token = http
        .post(format!("{url}/api/login"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200, "the token logs in too");

    let (cookie, csrf) = login(&url).await;
    let schemes: Value = http
        .get(format!("{url}/api/schemes"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schemes["schemes"][0]["name"], scheme);
    assert_eq!(schemes["health"]["broker"]["ok"], true);

    // State-changing requests: without the CSRF token, from another site or origin: refused.
    let replay = format!("{url}/api/schemes/{scheme}/replay");
    let body = json!({"dry_run": true});
    let no_csrf = http
        .post(&replay)
        .header("cookie", &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let other_origin = http
        .post(&replay)
        .header("cookie", &cookie)
        .header("x-ferry-csrf", &csrf)
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
    let cross_site = http
        .post(&replay)
        .header("cookie", &cookie)
        .header("x-ferry-csrf", &csrf)
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let same_site = http
        .post(&replay)
        .header("cookie", &cookie)
        .header("x-ferry-csrf", &csrf)
        .header("origin", &url)
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        same_site.status(),
        200,
        "{}",
        same_site.text().await.unwrap()
    );

    // The scheme's page never shows a secret of the configuration.
    let detail = http
        .get(format!("{url}/api/schemes/{scheme}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [PASSWORD, TOKEN, ROBOT_SECRET] {
        assert!(!detail.contains(secret), "{detail}");
    }
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_says_which_service_is_down_and_since_when() {
    let mut world = World::new("cd").await;
    let state = world.state_url();
    world.write_ferry_toml(&state, &console_sections());
    // The same config with the broker on a port nobody listens on.
    let text = std::fs::read_to_string(world.config_path()).unwrap();
    world.write(
        "ferry.toml",
        &text.replace(common::AMQP, "amqp://guest:guest@127.0.0.1:9/%2f"),
    );
    // No scheme at all: the page must still answer, saying the broker is down.
    let url = start_console(&mut world, "console.log").await;
    let (cookie, _) = login(&url).await;
    let answer: Value = client()
        .get(format!("{url}/api/schemes"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let broker = &answer["health"]["broker"];
    assert_eq!(broker["ok"], false, "{answer}");
    assert!(broker["since"].as_str().is_some(), "{answer}");
    assert!(
        broker["error"].as_str().unwrap().contains("127.0.0.1:9"),
        "the error names the broker: {answer}"
    );
    assert_eq!(answer["health"]["state"]["ok"], true, "{answer}");
    world.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_will_not_start_without_a_login() {
    let mut world = World::new("cn").await;
    let state = world.state_url();
    world.write_ferry_toml(&state, "");
    let out = world.ferry(&["console"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [console] section") && err.contains("FERRY_CONSOLE_TOKEN"),
        "{err}"
    );
    world.write_ferry_toml(&state, "[console]\ntoken = \"short\"\n");
    let out = world.ferry(&["console"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("console.token: too short"),
        "a guessable token is refused: {err}"
    );
    world.write_ferry_toml(
        &state,
        "[console]\ntoken = \"${FERRY_TEST_UNSET_CONSOLE_TOKEN:-}\"\n",
    );
    let out = world.ferry(&["console"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[console] names no login"), "{err}");
    let lint = world.ferry(&["lint"]);
    assert_eq!(
        lint.status.code(),
        Some(0),
        "other commands do not need the console's login: {}",
        String::from_utf8_lossy(&lint.stderr)
    );
    world.clean().await;
}
