//! `ferry console`: the operator console, a web page served by Ferry itself.
//!
//! Every asset (one HTML page, one script, one style sheet) is compiled into the binary, so the
//! console works offline. The page is a small script that renders the JSON of `/api/...` with
//! `textContent` only (never as HTML), and polls it every few seconds so counts change without a
//! reload. Pages: Schemes, a Scheme (runs, cursor, stop reason, lint, redacted metadata, trace
//! links), its Dead letters (browse, filter, replay with a confirmation).
//!
//! ```text
//! GET  /                                   the page (login form until logged in)
//! POST /api/login   {token} | {user, password}   -> session cookie + CSRF token
//! GET  /api/session                        who is logged in, the CSRF token
//! GET  /api/schemes                        the Schemes page
//! GET  /api/schemes/{name}?page=N          a Scheme
//! GET  /api/schemes/{name}/dead-letters    its dead letters and replays
//! POST /api/schemes/{name}/replay  {stage, error_class, text, record, dry_run}
//! POST /api/logout
//! ```
//!
//! Security rules live in [`auth`]; where the data comes from, and what is shown when the broker
//! or the state database is down, in [`data`]; the replay itself in [`replay`].

mod auth;
mod data;
mod replay;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_core::config::ConsoleConfig;
use serde_json::json;

use crate::app::App;
use crate::shutdown::Shutdown;
use auth::{Sessions, refuse};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

struct Console {
    app: Arc<App>,
    config: ConsoleConfig,
    sessions: Sessions,
    links: data::Links,
}

/// Serve the console on `listen` until `shutdown`.
pub async fn serve(
    app: Arc<App>,
    listen: Option<String>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let config = app.files.config.console.clone().with_context(|| {
        format!(
            "{}: no [console] section: the console needs a login, e.g.\n  [console]\n  token = \"${{FERRY_CONSOLE_TOKEN}}\"",
            app.files.config_name()
        )
    })?;
    if !config.has_login() {
        anyhow::bail!(
            "{}: [console] names no login: set FERRY_CONSOLE_TOKEN (for `token = \"${{FERRY_CONSOLE_TOKEN:-}}\"`), \
             or `user` and `password`; the console never runs without one",
            app.files.config_name()
        );
    }
    let listen = listen.unwrap_or_else(|| config.listen.clone());
    let console = Arc::new(Console {
        sessions: Sessions::new(&config),
        links: data::Links::new(Arc::clone(&app)),
        app,
        config,
    });
    let router = Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/schemes", get(schemes))
        .route("/api/schemes/{name}", get(scheme))
        .route("/api/schemes/{name}/dead-letters", get(dead_letters))
        .route("/api/schemes/{name}/replay", post(replay_letters))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn(auth::security_headers))
        .with_state(console);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("console: cannot listen on {listen}"))?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    // The line tests and operators wait for.
    println!("ferry console: listening on http://{local}");
    tracing::info!(address = %local, "console listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .context("console server")
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

type Shared = AxumState<Arc<Console>>;

async fn login(AxumState(c): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = auth::same_site(&headers) {
        return refused;
    }
    let Ok(given) = serde_json::from_slice::<auth::Login>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected {\"token\"} or {\"user\", \"password\"}",
        );
    };
    let Some(user) = auth::check_login(&c.config, &given) else {
        tracing::warn!("console: a login was refused");
        return refuse(StatusCode::UNAUTHORIZED, "wrong token, user or password");
    };
    match c.sessions.open(&user) {
        Ok((id, session)) => (
            [(header::SET_COOKIE, auth::session_cookie(Some(&id)))],
            axum::Json(json!({ "user": session.user, "csrf": session.csrf })),
        )
            .into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot open a session: {e}"),
        ),
    }
}

async fn logout(AxumState(c): Shared, method: Method, headers: HeaderMap) -> Response {
    if let Err(refused) = auth::authorize(&c.sessions, &method, &headers) {
        return refused;
    }
    c.sessions.close(&headers);
    (
        [(header::SET_COOKIE, auth::session_cookie(None))],
        axum::Json(json!({ "user": null })),
    )
        .into_response()
}

async fn session(AxumState(c): Shared, method: Method, headers: HeaderMap) -> Response {
    match auth::authorize(&c.sessions, &method, &headers) {
        Ok(s) => axum::Json(json!({ "user": s.user, "csrf": s.csrf })).into_response(),
        Err(refused) => refused,
    }
}

async fn schemes(AxumState(c): Shared, method: Method, headers: HeaderMap) -> Response {
    if let Err(refused) = auth::authorize(&c.sessions, &method, &headers) {
        return refused;
    }
    axum::Json(c.links.overview().await).into_response()
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: u32,
}

async fn scheme(
    AxumState(c): Shared,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Err(refused) = auth::authorize(&c.sessions, &method, &headers) {
        return refused;
    }
    let Some(scheme) = c.app.files.scheme(&name) else {
        return refuse(StatusCode::NOT_FOUND, "no such scheme");
    };
    axum::Json(c.links.scheme(scheme, q.page.min(10_000)).await).into_response()
}

async fn dead_letters(
    AxumState(c): Shared,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(refused) = auth::authorize(&c.sessions, &method, &headers) {
        return refused;
    }
    let Some(scheme) = c.app.files.scheme(&name) else {
        return refuse(StatusCode::NOT_FOUND, "no such scheme");
    };
    axum::Json(c.links.dead_letters(scheme).await).into_response()
}

async fn replay_letters(
    AxumState(c): Shared,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let session = match auth::authorize(&c.sessions, &method, &headers) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let Some(scheme) = c.app.files.scheme(&name) else {
        return refuse(StatusCode::NOT_FOUND, "no such scheme");
    };
    let request: replay::ReplayRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("bad replay request: {e}")),
    };
    if let Err(e) = request.stages().and(request.class()) {
        return refuse(StatusCode::BAD_REQUEST, &e);
    }
    let Some(bus) = c.links.bus().await else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "RabbitMQ is unreachable: nothing was moved",
        );
    };
    let Some(state) = c.links.state().await else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state database is unreachable: the replay could not be recorded, nothing was moved",
        );
    };
    // As `ferry replay` does: the work queues must exist for the dead letters to go back to.
    if let Err(e) = c.app.declare(&bus, std::slice::from_ref(scheme)).await {
        c.links.bus_failed(format!("{e:#}")).await;
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &c.links
                .redact(&format!("cannot declare the scheme's queues: {e:#}")),
        );
    }
    match replay::run(&bus, &state, &name, &request, &session.user).await {
        Ok(outcome) => axum::Json(json!({
            "dry_run": request.dry_run,
            "matched": outcome.matched,
            "moved": outcome.moved,
        }))
        .into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &c.links.redact(&format!("the replay failed: {e:#}")),
        ),
    }
}
