//! `kind = "okki"`: OKKI CRM (seed 003, `GET /v1/user/list`).
//!
//! The token comes from `POST {base}/v1/oauth2/access_token` with the client-credentials grant
//! (`client_id`, `client_secret`, `scope`, as a form). The vendor documents no `expires_in` for
//! this grant; a token lives 8 hours, so that is the lifetime cached in the state database
//! (unless an answer names one). Calls carry `Authorization: Bearer <token>`; a 401 drops the
//! token and fetches a new one once. Throttling (429, honouring `Retry-After`) and 5xx are
//! retried; OAuth errors (`invalid_client`, `invalid_scope`, ...) stop the scheme with the
//! vendor's error. A body `code` other than 0 or 200 stops it too.
//!
//! The user list is not paginated: records are at `/data`, one call per run. Unless the scheme
//! sets its own `lookups`, every user gets `department_names`: the names of its `departments`
//! joined with `,` (seed 003's department lookup).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::FerryError;
use ferry_core::config::OkkiConnection;
use ferry_core::scheme::Metadata;
use ferry_core::template::Context;
use reqwest::Method;

use super::{TokenAnswer, api_ends_with, api_source, code_and_message};
use crate::Source;
use crate::http::{
    Body, Defaults, HttpClient, Lookup, Mode, Reply, Request, Vendor, Verdict, judge_http,
    judge_status,
};
use crate::token::{Token, TokenCache};

/// A client-credentials token lives 8 hours.
pub const TOKEN_TTL_SECS: u64 = 8 * 3600;
const TOKEN_PATH: &str = "/v1/oauth2/access_token";
const TOKEN_ANSWER: TokenAnswer = TokenAnswer {
    label: "OKKI",
    token_field: "access_token",
    ttl_field: "expires_in",
    default_ttl_secs: TOKEN_TTL_SECS,
};

/// OKKI CRM as a [`Vendor`].
pub struct Okki {
    base: String,
    client_id: String,
    client_secret: String,
    scope: String,
    tokens: TokenCache,
}

impl Okki {
    async fn fetch(&self, http: &HttpClient) -> Result<Token, FerryError> {
        let mut req = Request::new(Method::POST, &self.base, TOKEN_PATH);
        req.body = Body::Form(vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), self.client_id.clone()),
            ("client_secret".into(), self.client_secret.clone()),
            ("scope".into(), self.scope.clone()),
        ]);
        TOKEN_ANSWER.fetch(http, &req, judge_token).await
    }
}

/// The token endpoint.
pub fn judge_token(reply: &Reply) -> Verdict {
    if let Some(verdict) = judge_status(reply, "OKKI") {
        return verdict;
    }
    if reply.is_success() {
        return TOKEN_ANSWER.judge_success(reply);
    }
    Verdict::Config(format!(
        "OKKI refused the client credentials (HTTP {}, {})",
        reply.status,
        code_and_message(reply.field("error"), reply.field("error_description"))
    ))
}

/// A business call.
pub fn judge_answer(reply: &Reply) -> Verdict {
    if reply.status == 401 {
        return Verdict::Reauth {
            message: format!(
                "OKKI refused the access token ({})",
                code_and_message(reply.field("code"), reply.field("message"))
            ),
        };
    }
    if let Some(verdict) = judge_http(reply, "OKKI") {
        return verdict;
    }
    match reply.field("code").as_deref() {
        None | Some("0") | Some("200") => Verdict::Ok,
        Some(code) => Verdict::Config(format!(
            "OKKI answered code {}",
            code_and_message(Some(code.to_string()), reply.field("message"))
        )),
    }
}

#[async_trait]
impl Vendor for Okki {
    fn label(&self) -> &'static str {
        "OKKI"
    }

    async fn prepare(&self, http: &HttpClient, req: &mut Request) -> Result<(), FerryError> {
        let (token, _) = self.tokens.get(|| self.fetch(http)).await?;
        req.header("Authorization", format!("Bearer {token}"));
        Ok(())
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        judge_answer(reply)
    }

    async fn renew_token(&self, _http: &HttpClient) -> Result<(), FerryError> {
        self.tokens.forget().await
    }
}

/// Open an OKKI source.
pub fn open(
    conn_name: &str,
    conn: &OkkiConnection,
    http: HttpClient,
    metadata: Arc<Metadata>,
    ctx: Context<'static>,
) -> Result<Box<dyn Source>, FerryError> {
    let vendor = Arc::new(Okki {
        base: conn.base_url.clone(),
        client_id: conn.client_id.clone(),
        client_secret: conn.client_secret.expose().to_string(),
        scope: conn.scope.clone(),
        tokens: TokenCache::new(http.state().clone(), conn_name),
    });
    let user_list = api_ends_with(&metadata.api, "user/list");
    let defaults = Defaults {
        method: Method::GET,
        records_at: Some("/data".into()),
        mode: user_list.then_some(Mode::None),
        lookups: user_list.then(|| {
            vec![Lookup::Nested {
                field: "department_names".into(),
                from: "departments".into(),
                pick: "department_name".into(),
                join: Some(",".into()),
            }]
        }),
        ..Defaults::default()
    };
    api_source(http, vendor, &conn.base_url, &metadata, defaults, ctx)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

    fn reply(status: u16, body: Value) -> Reply {
        Reply::json(status, body)
    }

    #[test]
    fn token_and_answers_are_classified() {
        assert_eq!(
            judge_token(&reply(400, json!({"error": "invalid_client", "error_description": "Client authentication failed."}))),
            Verdict::Config(
                "OKKI refused the client credentials (HTTP 400, invalid_client: Client authentication failed.)".into()
            )
        );
        assert_eq!(
            judge_token(&reply(
                200,
                json!({"token_type": "Bearer", "access_token": "t"})
            )),
            Verdict::Ok
        );
        assert!(matches!(
            judge_answer(&reply(401, json!({"code": 401}))),
            Verdict::Reauth { .. }
        ));
        let mut throttled = reply(429, json!({"code": 429}));
        throttled.retry_after = Some(Duration::from_secs(1));
        assert!(
            matches!(judge_answer(&throttled), Verdict::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(1))
        );
        assert_eq!(
            judge_answer(&reply(200, json!({"code": 200, "data": []}))),
            Verdict::Ok
        );
        assert_eq!(
            judge_answer(&reply(200, json!({"code": 0, "data": []}))),
            Verdict::Ok
        );
        assert_eq!(
            judge_answer(&reply(
                200,
                json!({"code": 403, "message": "no permission"})
            )),
            Verdict::Config("OKKI answered code 403: no permission".into())
        );
    }
}
