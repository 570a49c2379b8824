//! # ferry-sandbox
//!
//! Local simulators of the vendor APIs Ferry talks to, so that tests, the demo and
//! `docker compose up` run without the internet. Each simulator speaks its vendor's documented
//! protocol (paths, auth, signatures, paging, error shapes) from seeded, deterministic data, and
//! can be told to fail the way the vendor fails (throttling, 5xx bursts, slow answers, expiring
//! tokens). Pointing a connection's `base_url` at the real host is the only change for
//! production. See the README ("The vendor sandbox") for the endpoint list and which behaviours are inferred.
//!
//! ## Layout
//! - [`options`]: [`SandboxOptions`] (the `ferry sandbox` flags) and the [`Faults`] knobs.
//! - `data`, `prng`: the seeded datasets (Yida instances, Jushuitan shops, OKKI users).
//! - `dingtalk`, `yida`, `jushuitan`, `okki`, `kingdee`, `robot` (DingTalk), `wecom`, `feishu`:
//!   one module per vendor API; `robot` also holds the rate windows and inbox every robot shares.
//! - `collect`: a generic business API (`/collect/...`) for the `http` target.
//! - `admin`: `/_sandbox/*` (datasets, fault knobs at run time, call statistics).
//! - `state`, `wire`: shared state, fault injection, and request parsing that never rejects in
//!   a shape the vendor would not use.

// Handlers return a finished vendor-shaped `Response` as their error: it is the answer, not a
// failure to propagate, so its size is irrelevant.
#![allow(clippy::result_large_err)]

mod admin;
mod collect;
mod data;
mod dingtalk;
mod feishu;
mod jushuitan;
mod kingdee;
mod okki;
pub mod options;
mod prng;
mod robot;
mod state;
mod wecom;
mod wire;
mod yida;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;

pub use collect::{COLLECT_BAD_CLIENT_CODE, COLLECT_REJECT_CODE, COLLECT_THROTTLE_CODE};
pub use dingtalk::{DINGTALK_APP_KEY, DINGTALK_APP_SECRET};
pub use jushuitan::{
    JUSHUITAN_ACCESS_TOKEN, JUSHUITAN_APP_KEY, JUSHUITAN_APP_SECRET, JUSHUITAN_REFRESH_TOKEN,
};
pub use kingdee::{KINGDEE_CLIENT_ID, KINGDEE_CLIENT_SECRET};
pub use okki::{OKKI_CLIENT_ID, OKKI_CLIENT_SECRET};
pub use options::{EndpointFaults, Faults, SandboxOptions};

use crate::state::AppState;

/// Why the sandbox could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The options make no sense (the message says which and why).
    #[error("invalid sandbox options: {0}")]
    Options(String),
    /// The listen address could not be bound (in use, no permission, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("sandbox server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs the sandbox on `opts.listen` until `shutdown` completes, then drains and returns.
pub async fn serve(
    opts: SandboxOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    let (listener, app) = bind(opts).await?;
    run(listener, app, shutdown).await
}

/// Binds `opts.listen` (port 0 picks a free port), starts serving in a task and returns the
/// real address. The task runs until it is aborted or the runtime stops.
pub async fn spawn(
    opts: SandboxOptions,
) -> Result<
    (
        SocketAddr,
        tokio::task::JoinHandle<Result<(), SandboxError>>,
    ),
    SandboxError,
> {
    let (listener, app) = bind(opts).await?;
    let addr = listener.local_addr().map_err(SandboxError::Serve)?;
    let handle = tokio::spawn(run(listener, app, std::future::pending()));
    Ok((addr, handle))
}

async fn bind(opts: SandboxOptions) -> Result<(TcpListener, Router), SandboxError> {
    validate(&opts)?;
    let addr = opts.listen;
    let app = router(build_state(opts));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind { addr, source })?;
    Ok((listener, app))
}

async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "sandbox listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SandboxError::Serve)
}

fn validate(opts: &SandboxOptions) -> Result<(), SandboxError> {
    if opts.records > options::MAX_RECORDS {
        return Err(SandboxError::Options(format!(
            "records: {} is more than the {} the sandbox generates",
            opts.records,
            options::MAX_RECORDS
        )));
    }
    if opts.robot_window_secs == 0 {
        return Err(SandboxError::Options(
            "robot_window_secs: must be at least 1".to_string(),
        ));
    }
    if opts.robot_access_token.is_empty() {
        return Err(SandboxError::Options(
            "robot_access_token: must not be empty".to_string(),
        ));
    }
    Ok(())
}

/// Midnight UTC today, in epoch ms: the default anchor of Yida create times.
fn today_midnight_ms() -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let now = wire::now_ms();
    now - now.rem_euclid(DAY_MS)
}

fn build_state(opts: SandboxOptions) -> Arc<AppState> {
    let anchor_ms = opts.anchor_ms.unwrap_or_else(today_midnight_ms);
    let yida = data::yida_instances(opts.seed, opts.records, anchor_ms);
    let shops = data::jushuitan_shops(opts.seed);
    let users = data::okki_users(opts.seed);
    AppState::new(opts, yida, shops, users)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        // For docker-compose's healthcheck, as the roles serve it.
        .route("/healthz", get(|| async { "ok" }))
        // DingTalk open API and Yida
        .route("/v1.0/oauth2/accessToken", post(dingtalk::access_token))
        .route("/gettoken", get(dingtalk::gettoken))
        .route("/v1.0/yida/processes/instances", post(yida::instances))
        // DingTalk robot
        .route(
            "/robot/send",
            post(robot::send).fallback(robot::send_wrong_method),
        )
        .route(
            "/robot/messages",
            get(robot::messages).delete(robot::clear_messages),
        )
        // WeCom group robot
        .route("/cgi-bin/webhook/send", post(wecom::send))
        .route(
            "/cgi-bin/webhook/messages",
            get(wecom::messages).delete(wecom::clear_messages),
        )
        // Feishu custom bot
        .route("/open-apis/bot/v2/hook/{token}", post(feishu::send))
        .route(
            "/open-apis/bot/v2/messages",
            get(feishu::messages).delete(feishu::clear_messages),
        )
        // A generic business API (the http target)
        .route(
            "/collect/{*path}",
            post(collect::collect).put(collect::collect),
        )
        .route("/auth/token", post(collect::token))
        // Jushuitan
        .route("/open/shops/query", post(jushuitan::shops_query))
        .route("/openWeb/auth/refreshToken", post(jushuitan::refresh_token))
        // OKKI
        .route("/v1/oauth2/access_token", post(okki::access_token))
        .route("/v1/user/list", get(okki::user_list))
        // Kingdee gateway
        .route(
            "/jdyconnector/app_management/push_app_authorize",
            post(kingdee::push_app_authorize),
        )
        .route(
            "/jdyconnector/app_management/kingdee_auth_token",
            get(kingdee::kingdee_auth_token),
        )
        .route("/jdyconnector/{*rest}", any(kingdee::not_found))
        // The sandbox's own
        .route("/_sandbox/data/{dataset}", get(admin::dataset))
        .route(
            "/_sandbox/faults",
            get(admin::get_faults).post(admin::set_faults),
        )
        .route("/_sandbox/stats", get(admin::stats))
        .route(
            "/_sandbox/collect",
            get(collect::requests).delete(collect::clear),
        )
        .fallback(admin::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            state::record_stats,
        ))
        .with_state(state)
}
