//! Who may use the console, and from where.
//!
//! - Login: the `[console]` token, or its user and password, compared in constant time. A login
//!   opens a session: a random id in a cookie (`HttpOnly`, `SameSite=Strict`, never readable by
//!   the page's script) and a random CSRF token the page sends back in `X-Ferry-CSRF`.
//! - Every `/api` request but the login needs the session; every state-changing request (POST)
//!   also needs the CSRF token, and is refused when the browser says it comes from another site
//!   (`Sec-Fetch-Site`) or names another origin (`Origin`).
//! - Every answer carries the security headers: a CSP without inline script, no framing, no
//!   MIME sniffing, no referrer.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_core::config::ConsoleConfig;
use serde_json::json;

/// The session cookie.
pub const COOKIE: &str = "ferry_console";
/// The header that carries the CSRF token of the session.
pub const CSRF_HEADER: &str = "x-ferry-csrf";
/// The Content-Security-Policy of every answer: scripts and styles from the console itself only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A logged-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user name, or `token` for a token login; recorded with each replay.
    pub user: String,
    pub csrf: String,
    last_used: Instant,
}

/// The open sessions (in memory: a restart logs everyone out).
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

impl Sessions {
    pub fn new(config: &ConsoleConfig) -> Sessions {
        Sessions {
            by_id: Mutex::new(HashMap::new()),
            idle: Duration::from_secs(config.session_minutes.saturating_mul(60)),
        }
    }

    /// Open a session for `user`; returns its id (for the cookie) and the session.
    pub fn open(&self, user: &str) -> std::io::Result<(String, Session)> {
        let id = random_hex()?;
        let session = Session {
            user: user.to_string(),
            csrf: random_hex()?,
            last_used: Instant::now(),
        };
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.last_used.elapsed() < self.idle);
        map.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session the request's cookie names, if it is open; renews it.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get_mut(&id)?;
        if session.last_used.elapsed() >= self.idle {
            map.remove(&id);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.by_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// The login a request offers.
#[derive(Debug, serde::Deserialize)]
pub struct Login {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// The user the login names when it matches `[console]`, else `None`.
pub fn check_login(config: &ConsoleConfig, login: &Login) -> Option<String> {
    if let (Some(wanted), Some(given)) = (&config.token, &login.token)
        && constant_time_eq(wanted.expose().as_bytes(), given.as_bytes())
    {
        return Some("token".to_string());
    }
    if let (Some(user), Some(password), Some(given_user), Some(given_password)) =
        (&config.user, &config.password, &login.user, &login.password)
    {
        // Both compared, whatever the first says, so timing tells nothing.
        let user_ok = constant_time_eq(user.as_bytes(), given_user.as_bytes());
        let password_ok = constant_time_eq(password.expose().as_bytes(), given_password.as_bytes());
        if user_ok && password_ok {
            return Some(user.clone());
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value of a session (`None`: the cookie that ends it).
pub fn session_cookie(id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Why a request is refused, as a JSON answer.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Refuses a state-changing request that a browser says comes from another site, or whose
/// `Origin` is not this console's. Requests without either header (curl, scripts) pass here and
/// still need the session and its CSRF token.
pub fn same_site(headers: &HeaderMap) -> Result<(), Response> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: this request comes from another site",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let own = ["http://", "https://"]
            .iter()
            .any(|scheme| origin == format!("{scheme}{host}"));
        if !own {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: this request comes from another origin",
            ));
        }
    }
    Ok(())
}

/// The session of an `/api` request, and for a POST its CSRF token and origin; else the refusal.
pub fn authorize(
    sessions: &Sessions,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Session, Response> {
    if *method != Method::GET && *method != Method::HEAD {
        same_site(headers)?;
    }
    let Some(session) = sessions.find(headers) else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "log in first"));
    };
    if *method != Method::GET && *method != Method::HEAD {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: the request lacks this session's CSRF token (reload the page)",
            ));
        }
    }
    Ok(session)
}

/// Adds the security headers to every answer.
pub async fn security_headers(request: Request<Body>, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    if api {
        set(headers, "cache-control", "no-store");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConsoleConfig {
        ConsoleConfig {
            listen: "127.0.0.1:0".into(),
            token: Some("a-long-console-token".into()),
            user: Some("ops".into()),
            password: Some("运维-password-1".into()),
            jaeger_url: String::new(),
            session_minutes: 5,
        }
    }

    #[test]
    fn logins_match_only_the_configured_secrets() {
        let c = config();
        let login = |token: Option<&str>, user: Option<&str>, password: Option<&str>| Login {
            token: token.map(Into::into),
            user: user.map(Into::into),
            password: password.map(Into::into),
        };
        assert_eq!(
            check_login(&c, &login(Some("a-long-console-token"), None, None)).as_deref(),
            Some("token")
        );
        assert_eq!(
            check_login(&c, &login(Some("a-long-console-toke"), None, None)),
            None
        );
        assert_eq!(
            check_login(&c, &login(None, Some("ops"), Some("运维-password-1"))).as_deref(),
            Some("ops")
        );
        assert_eq!(
            check_login(&c, &login(None, Some("ops"), Some("运维-password-2"))),
            None
        );
        assert_eq!(check_login(&c, &login(None, None, None)), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9190"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9190"),
        );
        assert!(same_site(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_site(&h).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_site(&h).is_err());
    }
}
