//! The sandbox over real HTTP: each test starts its own sandbox on port 0 and speaks each
//! vendor's protocol to it, checking successes and every documented error.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::sign;
use ferry_sandbox::{Faults, SandboxOptions};
use serde_json::{Value, json};

/// Every request gives up after this long, so a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT_SECS: u64 = 20;
const FORM_UUID: &str = "FORM-0IA66C71A4V9JSAX6MEV45W77QOO2WI78EHGLQ";

struct Sandbox {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), ferry_sandbox::SandboxError>>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sandbox {
    async fn start(opts: SandboxOptions) -> Sandbox {
        // reqwest is built without a default TLS provider; plain HTTP still needs one installed
        // before a client is built. Installing twice is harmless (the second call is refused).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = SandboxOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..opts
        };
        let (addr, task) = ferry_sandbox::spawn(opts).await.unwrap();
        Sandbox {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
                .build()
                .unwrap(),
            task,
        }
    }

    async fn default() -> Sandbox {
        Sandbox::start(quiet_options()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn set_faults(&self, faults: Value) {
        let response = self
            .client
            .post(self.url("/_sandbox/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn dataset(&self, name: &str) -> Vec<Value> {
        let response = self
            .client
            .get(self.url(&format!("/_sandbox/data/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Vec<Value>>().await.unwrap()
    }
}

/// Default options with Jushuitan's own rate limits off (most tests send bursts).
fn quiet_options() -> SandboxOptions {
    SandboxOptions {
        no_jushuitan_rate_limits: true,
        ..SandboxOptions::default()
    }
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap();
    (status, body)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

// ---------------------------------------------------------------------------------------------
// DingTalk token and Yida
// ---------------------------------------------------------------------------------------------

async fn dingtalk_token(sandbox: &Sandbox) -> String {
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/oauth2/accessToken"))
            .json(&json!({"appKey": "ding-sandbox-key", "appSecret": "ding-sandbox-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["accessToken"].as_str().unwrap().to_string()
}

async fn yida_page(
    sandbox: &Sandbox,
    token: &str,
    page_number: u64,
    page_size: u64,
    body: Value,
) -> (u16, Value) {
    status_and_json(
        sandbox
            .client
            .post(sandbox.url(&format!(
                "/v1.0/yida/processes/instances?pageNumber={page_number}&pageSize={page_size}"
            )))
            .header("x-acs-dingtalk-access-token", token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn dingtalk_tokens_new_and_old_api_with_their_errors() {
    let sandbox = Sandbox::default().await;
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/oauth2/accessToken"))
            .json(&json!({"appKey": "ding-sandbox-key", "appSecret": "ding-sandbox-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expireIn"], 7200);
    assert!(body["accessToken"].as_str().unwrap().starts_with("ding-"));

    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/oauth2/accessToken"))
            .json(&json!({"appKey": "ding-sandbox-key", "appSecret": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalidClientIdOrSecret");

    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/oauth2/accessToken"))
            .json(&json!({"appSecret": "ding-sandbox-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "MissingappKey");

    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/gettoken?appkey=ding-sandbox-key&appsecret=ding-sandbox-secret"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errcode"], 0);
    assert_eq!(body["expires_in"], 7200);
    let old_token = body["access_token"].as_str().unwrap().to_string();
    // A token from the old API works on v1.0 calls too.
    let (status, _) = yida_page(&sandbox, &old_token, 1, 1, json!({"formUuid": FORM_UUID})).await;
    assert_eq!(status, 200);

    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/gettoken?appkey=ding-sandbox-key&appsecret=nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errcode"], 40089);

    sandbox
        .set_faults(json!({"dingtalk_token": {"throttle_every": 1}}))
        .await;
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/oauth2/accessToken"))
            .json(&json!({"appKey": "ding-sandbox-key", "appSecret": "ding-sandbox-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "Forbidden.AccessDenied.QpsLimitForApi");
    let (_, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/gettoken?appkey=ding-sandbox-key&appsecret=ding-sandbox-secret"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["errcode"], 90002);
}

#[tokio::test]
async fn yida_rejects_missing_invalid_and_expired_tokens() {
    let sandbox = Sandbox::default().await;
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1.0/yida/processes/instances"))
            .json(&json!({"formUuid": FORM_UUID}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "MissingxAcsDingtalkAccessToken");

    let (status, body) = yida_page(
        &sandbox,
        "ding-forged",
        1,
        10,
        json!({"formUuid": FORM_UUID}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "InvalidAuthentication");
    assert_eq!(body["message"], "不合法的access_token");

    sandbox
        .set_faults(json!({"dingtalk_token": {"token_ttl_secs": 0}}))
        .await;
    let expired = dingtalk_token(&sandbox).await;
    let (status, body) = yida_page(&sandbox, &expired, 1, 10, json!({"formUuid": FORM_UUID})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "InvalidAuthentication");
}

#[tokio::test]
async fn yida_paging_with_page_size_100_yields_every_instance_once() {
    for records in [250usize, 100_000] {
        let sandbox = Sandbox::start(SandboxOptions {
            records,
            seed: 42,
            ..quiet_options()
        })
        .await;
        let token = dingtalk_token(&sandbox).await;
        let mut ids = HashSet::new();
        let mut pages = 0;
        for page_number in 1.. {
            let (status, body) = yida_page(
                &sandbox,
                &token,
                page_number,
                100,
                json!({"formUuid": FORM_UUID}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["totalCount"], records);
            assert_eq!(body["pageNumber"], page_number);
            let data = body["data"].as_array().unwrap();
            for item in data {
                assert!(ids.insert(item["processInstanceId"].as_str().unwrap().to_string()));
            }
            pages += 1;
            if data.is_empty() || page_number * 100 >= records as u64 {
                break;
            }
        }
        assert_eq!(ids.len(), records);
        assert_eq!(pages, records.div_ceil(100));
    }
}

#[tokio::test]
async fn yida_item_shape_and_errors() {
    let sandbox = Sandbox::default().await;
    let token = dingtalk_token(&sandbox).await;
    let (status, body) = yida_page(&sandbox, &token, 1, 1, json!({"formUuid": FORM_UUID})).await;
    assert_eq!(status, 200);
    let item = &body["data"][0];
    for key in [
        "processInstanceId",
        "title",
        "formUuid",
        "instanceStatus",
        "approvedResult",
        "createTimeGMT",
        "modifiedTimeGMT",
        "version",
    ] {
        assert!(item.get(key).is_some(), "missing {key} in {item}");
    }
    assert!(item["title"].as_str().unwrap().contains("报销退款单"));
    assert!(item["data"]["dateField_lgkieplu"].is_i64());
    assert!(item["data"]["numberField_lgkiepjv"].is_f64());
    assert!(item["data"]["serialNumberField_lgk9jn2s"].is_string());
    assert!(["是", "否"].contains(&item["data"]["selectField_lgkiepju"].as_str().unwrap()));
    assert!(item["originator"]["name"]["nameInChinese"].is_string());
    assert!(item["originator"]["deptName"].is_string());

    let (status, body) = yida_page(&sandbox, &token, 1, 10, json!({"appType": "APP_X"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "MissingformUuid");

    let (status, body) = yida_page(&sandbox, &token, 1, 101, json!({"formUuid": FORM_UUID})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "InvalidParameter");
    assert_eq!(body["message"], "pageSize must not exceed 100");

    // Another form has no instances.
    let (status, body) =
        yida_page(&sandbox, &token, 1, 10, json!({"formUuid": "FORM-OTHER"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["totalCount"], 0);

    // Malformed JSON and bytes that are not UTF-8 answer in the vendor's shape.
    for garbage in [b"{not json".to_vec(), vec![0xff, 0xfe, 0x00, 0x80]] {
        let (status, body) = status_and_json(
            sandbox
                .client
                .post(sandbox.url("/v1.0/yida/processes/instances"))
                .header("x-acs-dingtalk-access-token", &token)
                .body(garbage)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "InvalidParameter");
    }
    let (status, body) = yida_page(
        &sandbox,
        &token,
        1,
        10,
        json!({"formUuid": FORM_UUID, "createFromTimeGMT": "last week"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "InvalidParameter");
}

#[tokio::test]
async fn yida_throttle_and_5xx_burst_faults() {
    let sandbox = Sandbox::default().await;
    let token = dingtalk_token(&sandbox).await;
    sandbox
        .set_faults(json!({"yida": {"throttle_every": 3}}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, body) =
            yida_page(&sandbox, &token, 1, 5, json!({"formUuid": FORM_UUID})).await;
        if status == 403 {
            assert_eq!(body["code"], "Forbidden.AccessDenied.QpsLimitForApi");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200, 200, 403, 200, 200, 403]);

    sandbox
        .set_faults(json!({"yida": {"burst_5xx": 2, "slow_ms": 50}}))
        .await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = yida_page(&sandbox, &token, 1, 5, json!({"formUuid": FORM_UUID})).await;
        statuses.push(status);
    }
    assert_eq!(statuses, vec![503, 503, 200]);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn yida_honours_seed_001_filters() {
    let sandbox = Sandbox::start(SandboxOptions {
        records: 2000,
        ..quiet_options()
    })
    .await;
    let token = dingtalk_token(&sandbox).await;
    let all = sandbox.dataset("yida").await;
    assert_eq!(all.len(), 2000);

    let from = chrono::Utc::now() - chrono::Duration::days(25);
    let from_ms = from.timestamp_millis();
    let from_text = from.format("%Y-%m-%d %H:%M:%S").to_string();
    // The create time is only given to the minute in answers, so count from the data itself.
    let expected: Vec<&Value> = all
        .iter()
        .filter(|item| {
            let data = &item["data"];
            data["selectField_lgkiepju"] == "是"
                && data["radioField_lgk9jn2v"] == "借款核销"
                && data["numberField_lgkiepjv"].as_f64().unwrap() >= 0.0001
                && item["instanceStatus"] == "COMPLETED"
                && item["approvedResult"] == "agree"
        })
        .collect();
    assert!(!expected.is_empty());

    let search = json!({
        "selectField_lgkiepju": "是",
        "radioField_lgk9jn2v": "借款核销",
        "numberField_lgkiepjv": [0.0001]
    });
    let base = json!({
        "formUuid": FORM_UUID,
        "instanceStatus": "COMPLETED",
        "approvedResult": "agree",
    });
    // searchFieldJson as a string (the documented form) and as an object agree.
    let mut as_string = base.clone();
    as_string["searchFieldJson"] = Value::String(search.to_string());
    let mut as_object = base.clone();
    as_object["searchFieldJson"] = search.clone();
    let (_, by_string) = yida_page(&sandbox, &token, 1, 100, as_string.clone()).await;
    let (_, by_object) = yida_page(&sandbox, &token, 1, 100, as_object).await;
    assert_eq!(by_string["totalCount"], expected.len());
    assert_eq!(by_object["totalCount"], expected.len());
    for item in by_string["data"].as_array().unwrap() {
        assert_eq!(item["data"]["radioField_lgk9jn2v"], "借款核销");
        assert_eq!(item["instanceStatus"], "COMPLETED");
    }

    // The time window: text and epoch ms give the same answer, and it narrows the result.
    let mut windowed_text = as_string.clone();
    windowed_text["createFromTimeGMT"] = Value::String(from_text);
    windowed_text["createToTimeGMT"] = json!(now_ms());
    let mut windowed_ms = as_string.clone();
    windowed_ms["createFromTimeGMT"] = json!(from_ms - from_ms % 1000);
    let (_, text_page) = yida_page(&sandbox, &token, 1, 100, windowed_text).await;
    let (_, ms_page) = yida_page(&sandbox, &token, 1, 100, windowed_ms).await;
    let windowed = text_page["totalCount"].as_u64().unwrap();
    assert_eq!(ms_page["totalCount"], windowed);
    assert!(
        windowed > 0 && windowed < expected.len() as u64,
        "{windowed}"
    );
}

// ---------------------------------------------------------------------------------------------
// Jushuitan
// ---------------------------------------------------------------------------------------------

fn jushuitan_form(extra: &[(&str, String)], secret: &str) -> Vec<(String, String)> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    params.insert("app_key".into(), "jst-sandbox-key".into());
    params.insert("timestamp".into(), (now_ms() / 1000).to_string());
    params.insert("charset".into(), "utf-8".into());
    params.insert("version".into(), "2".into());
    for (key, value) in extra {
        params.insert(key.to_string(), value.clone());
    }
    let signature = sign::jushuitan_sign(secret, &params);
    params.insert("sign".into(), signature);
    params.into_iter().collect()
}

fn shops_form(page_index: u64, page_size: u64) -> Vec<(String, String)> {
    jushuitan_form(
        &[
            ("access_token", "jst-sandbox-token".to_string()),
            (
                "biz",
                json!({"page_index": page_index, "page_size": page_size}).to_string(),
            ),
        ],
        "jst-sandbox-secret",
    )
}

async fn jushuitan_post(sandbox: &Sandbox, path: &str, form: &[(String, String)]) -> (u16, Value) {
    status_and_json(
        sandbox
            .client
            .post(sandbox.url(path))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn jushuitan_pages_all_shops() {
    let sandbox = Sandbox::default().await;
    let expected = sandbox.dataset("jushuitan").await;
    assert_eq!(expected.len(), 237);
    let mut ids = HashSet::new();
    let mut has_next = Vec::new();
    for page_index in 1..=3 {
        let (status, body) =
            jushuitan_post(&sandbox, "/open/shops/query", &shops_form(page_index, 100)).await;
        assert_eq!(status, 200);
        assert_eq!(body["code"], 0, "{body}");
        assert_eq!(body["msg"], Value::Null);
        let data = &body["data"];
        assert_eq!(data["data_count"], 237);
        assert_eq!(data["page_count"], 3);
        assert_eq!(data["page_index"], page_index);
        has_next.push(data["has_next"].as_bool().unwrap());
        for shop in data["datas"].as_array().unwrap() {
            assert!(
                shop["shop_name"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .any(|c| c > '\u{2E80}')
            );
            for key in [
                "co_id",
                "shop_site",
                "shop_url",
                "created",
                "nick",
                "session_expired",
                "session_uid",
            ] {
                assert!(shop.get(key).is_some(), "{key}");
            }
            assert!(ids.insert(shop["shop_id"].as_i64().unwrap()));
        }
    }
    assert_eq!(has_next, vec![true, true, false]);
    assert_eq!(ids.len(), 237);
}

#[tokio::test]
async fn jushuitan_documented_errors() {
    let sandbox = Sandbox::default().await;
    // Wrong secret -> invalid signature.
    let form = jushuitan_form(
        &[("access_token", "jst-sandbox-token".to_string())],
        "not-the-secret",
    );
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &form).await;
    assert_eq!(body["code"], 10);
    // Tampered parameter after signing -> invalid signature.
    let mut form = shops_form(1, 10);
    for (key, value) in form.iter_mut() {
        if key == "biz" {
            *value = json!({"page_index": 2, "page_size": 10}).to_string();
        }
    }
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &form).await;
    assert_eq!(body["code"], 10);
    // Timestamp 20 minutes old -> 140.
    let form = jushuitan_form(
        &[
            ("access_token", "jst-sandbox-token".to_string()),
            ("timestamp", (now_ms() / 1000 - 20 * 60).to_string()),
        ],
        "jst-sandbox-secret",
    );
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &form).await;
    assert_eq!(body["code"], 140);
    // Unknown access token -> 100.
    let form = jushuitan_form(
        &[("access_token", "jst-expired".to_string())],
        "jst-sandbox-secret",
    );
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &form).await;
    assert_eq!(body["code"], 100);
    // Page size over 100.
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 101)).await;
    assert_eq!(body["code"], 30);
    // Garbage body: not UTF-8 -> signature cannot match.
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/open/shops/query"))
            .body(vec![0xff, 0x00, b'=', 0xc3])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 10);
    // Throttling knob -> 199; 5xx burst -> 503.
    sandbox
        .set_faults(json!({"jushuitan": {"throttle_every": 2}}))
        .await;
    let (_, first) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 10)).await;
    let (_, second) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 10)).await;
    assert_eq!(
        (first["code"].clone(), second["code"].clone()),
        (json!(0), json!(199))
    );
    sandbox
        .set_faults(json!({"jushuitan": {"burst_5xx": 1}}))
        .await;
    let (status, _) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 10)).await;
    assert_eq!(status, 503);
    let (status, _) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 10)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn jushuitan_own_rate_limit_answers_199() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &shops_form(1, 1)).await;
        codes.push(body["code"].as_i64().unwrap());
    }
    // Six calls well within one second: the sixth is over 5/s.
    assert_eq!(codes, vec![0, 0, 0, 0, 0, 199]);
}

#[tokio::test]
async fn jushuitan_refresh_token_issues_a_working_token() {
    let sandbox = Sandbox::default().await;
    let refresh = |token: &str| {
        jushuitan_form(
            &[
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", token.to_string()),
                ("scope", "all".to_string()),
            ],
            "jst-sandbox-secret",
        )
    };
    let (_, body) = jushuitan_post(
        &sandbox,
        "/openWeb/auth/refreshToken",
        &refresh("jst-sandbox-refresh"),
    )
    .await;
    assert_eq!(body["code"], 0, "{body}");
    let access = body["data"]["access_token"].as_str().unwrap().to_string();
    let next_refresh = body["data"]["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["expires_in"], 30 * 86_400);

    let form = jushuitan_form(
        &[("access_token", access), ("biz", "{}".to_string())],
        "jst-sandbox-secret",
    );
    let (_, body) = jushuitan_post(&sandbox, "/open/shops/query", &form).await;
    assert_eq!(body["code"], 0);

    // An issued refresh token works once.
    let (_, body) = jushuitan_post(
        &sandbox,
        "/openWeb/auth/refreshToken",
        &refresh(&next_refresh),
    )
    .await;
    assert_eq!(body["code"], 0);
    let (_, body) = jushuitan_post(
        &sandbox,
        "/openWeb/auth/refreshToken",
        &refresh(&next_refresh),
    )
    .await;
    assert_eq!(body["code"], 100);
    // Unsigned refresh -> 10.
    let (_, body) = jushuitan_post(
        &sandbox,
        "/openWeb/auth/refreshToken",
        &[("app_key".to_string(), "jst-sandbox-key".to_string())],
    )
    .await;
    assert_eq!(body["code"], 10);
}

// ---------------------------------------------------------------------------------------------
// OKKI
// ---------------------------------------------------------------------------------------------

async fn okki_token(sandbox: &Sandbox) -> String {
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1/oauth2/access_token"))
            .json(&json!({
                "grant_type": "client_credentials",
                "client_id": "okki-sandbox-client",
                "client_secret": "okki-sandbox-secret",
                "scope": "user"
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("expires_in").is_none());
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn okki_token_and_user_list() {
    let sandbox = Sandbox::default().await;
    let token = okki_token(&sandbox).await;
    // Asking again while the token lives returns the same token (form-encoded this time).
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1/oauth2/access_token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "okki-sandbox-client"),
                ("client_secret", "okki-sandbox-secret"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["access_token"], token.as_str());

    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/v1/user/list"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 200);
    assert_eq!(body["message"], "success");
    assert!(body["now"].is_string());
    let users = body["data"].as_array().unwrap();
    assert_eq!(users.len(), 42);
    assert_eq!(sandbox.dataset("okki").await.len(), 42);
    for user in users {
        assert!(!user["departments"].as_array().unwrap().is_empty());
        assert_eq!(
            user["department_id"],
            user["departments"][0]["department_id"]
        );
        assert!(user["department_name"].is_string());
    }
    let enabled = users.iter().filter(|user| user["enable_flag"] == 1).count();
    // Bare token and the enable_flag filter.
    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/v1/user/list?enable_flag=1"))
            .header("Authorization", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), enabled);
}

#[tokio::test]
async fn okki_errors() {
    let sandbox = Sandbox::default().await;
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1/oauth2/access_token"))
            .json(&json!({"grant_type": "client_credentials", "client_id": "okki-sandbox-client", "client_secret": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1/oauth2/access_token"))
            .json(&json!({"grant_type": "password", "client_id": "okki-sandbox-client", "client_secret": "okki-sandbox-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/v1/oauth2/access_token"))
            .header("content-type", "application/json")
            .body("{broken")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");

    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/v1/user/list"))
            .bearer_auth("okki-forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 401);

    // Expired token -> 401, and a new one is issued after expiry.
    sandbox
        .set_faults(json!({"okki": {"token_ttl_secs": 0}}))
        .await;
    let expired = okki_token(&sandbox).await;
    let response = sandbox
        .client
        .get(sandbox.url("/v1/user/list"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_ne!(okki_token(&sandbox).await, expired);

    sandbox
        .set_faults(json!({"okki": {"throttle_every": 1}}))
        .await;
    let response = sandbox
        .client
        .get(sandbox.url("/v1/user/list"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
}

// ---------------------------------------------------------------------------------------------
// Kingdee
// ---------------------------------------------------------------------------------------------

struct KingdeeCall<'a> {
    method: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    client_id: &'a str,
    client_secret: &'a str,
    version: &'a str,
    timestamp_ms: i64,
    sign_headers: &'a str,
}

impl<'a> KingdeeCall<'a> {
    fn new(method: &'a str, path: &'a str, query: &[(&str, &str)]) -> Self {
        KingdeeCall {
            method,
            path,
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            client_id: "kd-sandbox-client",
            client_secret: "kd-sandbox-secret",
            version: "2.0",
            timestamp_ms: now_ms(),
            sign_headers: "X-Api-Nonce,X-Api-TimeStamp",
        }
    }

    async fn send(&self, sandbox: &Sandbox) -> (u16, Value) {
        let nonce = "n0nce12345";
        let timestamp = self.timestamp_ms.to_string();
        let string_to_sign = sign::kingdee_string_to_sign(
            self.method,
            self.path,
            &self.query,
            &[
                ("X-Api-Nonce".to_string(), nonce.to_string()),
                ("X-Api-TimeStamp".to_string(), timestamp.clone()),
            ],
        );
        let signature = sign::kingdee_signature(self.client_secret, &string_to_sign);
        let url = sandbox.url(self.path);
        let request = if self.method == "GET" {
            sandbox.client.get(url)
        } else {
            sandbox.client.post(url)
        };
        status_and_json(
            request
                .query(&self.query)
                .header("X-Api-ClientID", self.client_id)
                .header("X-Api-Auth-Version", self.version)
                .header("X-Api-TimeStamp", timestamp)
                .header("X-Api-Nonce", nonce)
                .header("X-Api-SignHeaders", self.sign_headers)
                .header("X-Api-Signature", signature)
                .body("{}")
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

const AUTHORIZE: &str = "/jdyconnector/app_management/push_app_authorize";
const AUTH_TOKEN: &str = "/jdyconnector/app_management/kingdee_auth_token";

#[tokio::test]
async fn kingdee_authorize_then_auth_token() {
    let sandbox = Sandbox::default().await;
    let (status, body) = KingdeeCall::new(
        "POST",
        AUTHORIZE,
        &[("outerInstanceId", "219672488890732544")],
    )
    .send(&sandbox)
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errcode"], 0);
    let app = &body["data"][0];
    assert_eq!(app["outerInstanceId"], "219672488890732544");
    let app_key = app["appKey"].as_str().unwrap().to_string();
    let app_secret = app["appSecret"].as_str().unwrap().to_string();
    for key in ["accountId", "accountName", "domain", "status"] {
        assert!(app.get(key).is_some(), "{key}");
    }

    let app_signature = sign::kingdee_app_signature(&app_key, &app_secret);
    let call = KingdeeCall::new(
        "GET",
        AUTH_TOKEN,
        &[("app_key", &app_key), ("app_signature", &app_signature)],
    );
    let (status, body) = call.send(&sandbox).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errcode"], 0);
    assert!(body["data"]["app-token"].is_string());
    assert!(body["data"]["uid"].is_string());

    // A wrong app signature -> 1030002006.
    let (_, body) = KingdeeCall::new(
        "GET",
        AUTH_TOKEN,
        &[("app_key", &app_key), ("app_signature", "d3Jvbmc=")],
    )
    .send(&sandbox)
    .await;
    assert_eq!(body["errcode"], 1_030_002_006);
    // A third call within the minute is over the 2/min limit.
    let (status, body) = call.send(&sandbox).await;
    assert_eq!(status, 519);
    assert_eq!(body["errcode"], 5007);
}

#[tokio::test]
async fn kingdee_gateway_errors() {
    let sandbox = Sandbox::default().await;
    let query = [("outerInstanceId", "42")];
    let mut call = KingdeeCall::new("POST", AUTHORIZE, &query);
    call.client_secret = "wrong-secret";
    assert_eq!(call.send(&sandbox).await.1["errcode"], 4008);

    let mut call = KingdeeCall::new("POST", AUTHORIZE, &query);
    call.client_id = "someone-else";
    let (status, body) = call.send(&sandbox).await;
    assert_eq!((status, body["errcode"].clone()), (519, json!(4003)));

    let mut call = KingdeeCall::new("POST", AUTHORIZE, &query);
    call.version = "1.0";
    assert_eq!(call.send(&sandbox).await.1["errcode"], 4001);

    let mut call = KingdeeCall::new("POST", AUTHORIZE, &query);
    call.timestamp_ms -= 3_600_000;
    assert_eq!(call.send(&sandbox).await.1["errcode"], 4006);

    let mut call = KingdeeCall::new("POST", AUTHORIZE, &query);
    call.sign_headers = "X-Api-Nonce";
    assert_eq!(call.send(&sandbox).await.1["errcode"], 4007);

    // Unknown API behind the gateway.
    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/jdyconnector/nothing/here"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["errcode"].clone()), (519, json!(5001)));

    sandbox
        .set_faults(json!({"kingdee": {"throttle_every": 1}}))
        .await;
    let (status, body) = KingdeeCall::new("POST", AUTHORIZE, &query)
        .send(&sandbox)
        .await;
    assert_eq!((status, body["errcode"].clone()), (519, json!(5007)));
}

#[tokio::test]
async fn kingdee_rotated_secret_answers_1030002006() {
    let sandbox = Sandbox::default().await;
    sandbox
        .set_faults(json!({"kingdee": {"token_ttl_secs": 0}}))
        .await;
    let (_, body) = KingdeeCall::new("POST", AUTHORIZE, &[("outerInstanceId", "7")])
        .send(&sandbox)
        .await;
    let app_key = body["data"][0]["appKey"].as_str().unwrap().to_string();
    let app_secret = body["data"][0]["appSecret"].as_str().unwrap().to_string();
    let app_signature = sign::kingdee_app_signature(&app_key, &app_secret);
    let (status, body) = KingdeeCall::new(
        "GET",
        AUTH_TOKEN,
        &[("app_key", &app_key), ("app_signature", &app_signature)],
    )
    .send(&sandbox)
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errcode"], 1_030_002_006);
    assert_eq!(body["description"], "授权密钥校验失败，请获取最新密钥加密");
}

// ---------------------------------------------------------------------------------------------
// DingTalk robot
// ---------------------------------------------------------------------------------------------

async fn robot_send(sandbox: &Sandbox, query: &str, body: &Value) -> Value {
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url(&format!("/robot/send?{query}")))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    body
}

fn signed_query(secret: &str) -> String {
    format!(
        "access_token=robot-sandbox-token&{}",
        sign::robot_sign_query(secret, now_ms())
    )
}

fn text_message(content: &str) -> Value {
    json!({"msgtype": "text", "text": {"content": content}})
}

#[tokio::test]
async fn robot_accepts_signed_messages_and_lists_them() {
    let sandbox = Sandbox::default().await;
    let reply = robot_send(
        &sandbox,
        &signed_query("robot-sandbox-secret"),
        &text_message("用户留言：张三 13800138000 😀"),
    )
    .await;
    assert_eq!(reply, json!({"errcode": 0, "errmsg": "ok"}));
    let markdown = json!({"msgtype": "markdown", "markdown": {"title": "留言", "text": "### 新留言"},
                          "at": {"atMobiles": ["13800138000"], "isAtAll": false}});
    assert_eq!(
        robot_send(&sandbox, &signed_query("robot-sandbox-secret"), &markdown).await["errcode"],
        0
    );
    let messages: Vec<Value> = sandbox
        .client
        .get(sandbox.url("/robot/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0]["body"]["text"]["content"],
        "用户留言：张三 13800138000 😀"
    );
    assert!(messages[0]["received_at"].is_string());
    assert!(
        messages[1]["received_at_ms"].as_i64().unwrap()
            >= messages[0]["received_at_ms"].as_i64().unwrap()
    );

    let cleared: Value = sandbox
        .client
        .delete(sandbox.url("/robot/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], 2);
    let messages: Vec<Value> = sandbox
        .client
        .get(sandbox.url("/robot/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(messages.is_empty());
}

#[tokio::test]
async fn robot_documented_errors() {
    let sandbox = Sandbox::start(SandboxOptions {
        robot_keyword: Some("留言".to_string()),
        ..quiet_options()
    })
    .await;
    let hello = text_message("新留言");
    let reply = robot_send(&sandbox, &signed_query("wrong-secret"), &hello).await;
    assert_eq!(
        reply,
        json!({"errcode": 310000, "errmsg": "sign not match"})
    );

    let stale = format!(
        "access_token=robot-sandbox-token&{}",
        sign::robot_sign_query("robot-sandbox-secret", now_ms() - 2 * 3_600_000)
    );
    assert_eq!(
        robot_send(&sandbox, &stale, &hello).await["errmsg"],
        "invalid timestamp"
    );
    // A sign sent without URL-encoding: its '+' arrives as a space, as at the vendor.
    let ts = (0..1000)
        .map(|back| now_ms() - back)
        .find(|ts| sign::robot_sign("robot-sandbox-secret", *ts).contains('+'))
        .unwrap();
    let raw = format!(
        "access_token=robot-sandbox-token&timestamp={ts}&sign={}",
        sign::robot_sign("robot-sandbox-secret", ts)
    );
    let reply = robot_send(&sandbox, &raw, &hello).await;
    assert_eq!(reply["errcode"], 310000);

    let reply = robot_send(&sandbox, "access_token=nope", &hello).await;
    assert_eq!(reply["errcode"], 300005);
    let reply = robot_send(&sandbox, "timestamp=1", &hello).await;
    assert_eq!(reply["errcode"], 40035);

    let query = signed_query("robot-sandbox-secret");
    let reply = robot_send(&sandbox, &query, &text_message("no keyword here")).await;
    assert_eq!(
        reply,
        json!({"errcode": 310000, "errmsg": "keywords not in content"})
    );
    let reply = robot_send(&sandbox, &query, &json!({"msgtype": "text", "text": {}})).await;
    assert_eq!(reply["errcode"], 40035);
    let reply = robot_send(&sandbox, &query, &json!({"msgtype": "video"})).await;
    assert_eq!(reply["errcode"], 40035);
    let reply = robot_send(&sandbox, &query, &text_message(&"留言".repeat(7000))).await;
    assert_eq!(
        reply,
        json!({"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"})
    );
    let (status, reply) = status_and_json(
        sandbox
            .client
            .post(sandbox.url(&format!("/robot/send?{query}")))
            .body(vec![0xff, 0xfe, 0xfd])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["errcode"], 40035);
    let (status, reply) = status_and_json(
        sandbox
            .client
            .get(sandbox.url(&format!("/robot/send?{query}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["errcode"], 43002);

    sandbox.set_faults(json!({"robot": {"burst_5xx": 1}})).await;
    let response = sandbox
        .client
        .post(sandbox.url(&format!("/robot/send?{query}")))
        .json(&hello)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(robot_send(&sandbox, &query, &hello).await["errcode"], 0);
}

#[tokio::test]
async fn robot_21st_message_in_a_window_is_throttled_until_the_penalty_ends() {
    let sandbox = Sandbox::start(SandboxOptions {
        robot_window_secs: 1,
        robot_penalty_secs: 1,
        ..quiet_options()
    })
    .await;
    let query = signed_query("robot-sandbox-secret");
    let mut codes = Vec::new();
    for n in 0..22 {
        let reply = robot_send(&sandbox, &query, &text_message(&format!("消息 {n}"))).await;
        codes.push(reply["errcode"].as_i64().unwrap());
    }
    assert_eq!(&codes[..20], &[0; 20]);
    assert_eq!(&codes[20..], &[130101, 130101]);
    let reply = robot_send(&sandbox, &query, &text_message("still")).await;
    assert_eq!(
        reply,
        json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = robot_send(&sandbox, &query, &text_message("after the penalty")).await;
    assert_eq!(reply["errcode"], 0);
    let messages: Vec<Value> = sandbox
        .client
        .get(sandbox.url("/robot/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages.len(), 21);
}

// ---------------------------------------------------------------------------------------------
// WeCom group robot
// ---------------------------------------------------------------------------------------------

async fn wecom_send(sandbox: &Sandbox, key: &str, body: &Value) -> Value {
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url(&format!("/cgi-bin/webhook/send?key={key}")))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    body
}

async fn inbox(sandbox: &Sandbox, path: &str) -> Vec<Value> {
    sandbox
        .client
        .get(sandbox.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn wecom_robot_takes_text_and_markdown_and_answers_its_documented_errors() {
    let sandbox = Sandbox::start(SandboxOptions {
        robot_window_secs: 2,
        wecom_limit: 3,
        ..quiet_options()
    })
    .await;
    let key = "wecom-sandbox-key";
    let text = json!({"msgtype": "text", "text": {"content": "新留言：张三 😀",
        "mentioned_mobile_list": ["13800138000", "@all"]}});
    assert_eq!(
        wecom_send(&sandbox, key, &text).await,
        json!({"errcode": 0, "errmsg": "ok"})
    );
    let markdown = json!({"msgtype": "markdown", "markdown": {"content": "#### 新留言\n> 李四"}});
    assert_eq!(wecom_send(&sandbox, key, &markdown).await["errcode"], 0);
    let got = inbox(&sandbox, "/cgi-bin/webhook/messages").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["body"], markdown);

    assert_eq!(wecom_send(&sandbox, "wrong", &text).await["errcode"], 93000);
    let long = json!({"msgtype": "text", "text": {"content": "长".repeat(700)}});
    assert_eq!(
        wecom_send(&sandbox, key, &long).await,
        json!({"errcode": 40058, "errmsg": "text.content exceed max length 2048"})
    );
    let reply = wecom_send(&sandbox, key, &json!({"msgtype": "video"})).await;
    assert_eq!(reply["errcode"], 40008);
    let reply = wecom_send(&sandbox, key, &json!({"msgtype": "text", "text": {}})).await;
    assert_eq!(reply["errcode"], 44004);
    let bad_list = json!({"msgtype": "text", "text": {"content": "x", "mentioned_list": "zs"}});
    assert_eq!(wecom_send(&sandbox, key, &bad_list).await["errcode"], 40058);

    // Three a window: the fourth is 45009, and the robot takes messages again once it has room.
    assert_eq!(wecom_send(&sandbox, key, &text).await["errcode"], 0);
    assert_eq!(wecom_send(&sandbox, key, &text).await["errcode"], 45009);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(wecom_send(&sandbox, key, &text).await["errcode"], 0);

    sandbox
        .set_faults(json!({"wecom_robot": {"throttle_every": 1}}))
        .await;
    assert_eq!(wecom_send(&sandbox, key, &text).await["errcode"], 45009);
}

// ---------------------------------------------------------------------------------------------
// Feishu custom bot
// ---------------------------------------------------------------------------------------------

async fn feishu_send(sandbox: &Sandbox, token: &str, body: &Value) -> Value {
    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url(&format!("/open-apis/bot/v2/hook/{token}")))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    body
}

fn feishu_signed(secret: &str, mut message: Value) -> Value {
    let ts = now_ms() / 1000;
    message["timestamp"] = json!(ts.to_string());
    message["sign"] = json!(sign::feishu_bot_sign(secret, ts));
    message
}

#[tokio::test]
async fn feishu_bot_checks_the_signature_the_shape_and_both_rate_windows() {
    let sandbox = Sandbox::start(SandboxOptions {
        feishu_keyword: Some("留言".to_string()),
        feishu_per_sec: 2,
        ..quiet_options()
    })
    .await;
    let token = "feishu-sandbox-token";
    let secret = "feishu-sandbox-secret";
    let post = json!({"msg_type": "post", "content": {"post": {"zh_cn": {"title": "用户留言",
        "content": [[{"tag": "text", "text": "张三 🚀"}], [{"tag": "at", "user_id": "all"}]]}}}});
    assert_eq!(
        feishu_send(&sandbox, token, &feishu_signed(secret, post.clone())).await,
        json!({"code": 0, "msg": "success", "data": {}})
    );
    let got = inbox(&sandbox, "/open-apis/bot/v2/messages").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"]["content"], post["content"]);

    let reply = feishu_send(&sandbox, token, &feishu_signed("wrong", post.clone())).await;
    assert_eq!(
        reply["msg"],
        "sign match fail or timestamp is not within one hour from current time"
    );
    assert_eq!(reply["code"], 19021);
    assert_eq!(feishu_send(&sandbox, token, &post).await["code"], 19021);
    let mut stale = post.clone();
    let old = now_ms() / 1000 - 7200;
    stale["timestamp"] = json!(old.to_string());
    stale["sign"] = json!(sign::feishu_bot_sign(secret, old));
    assert_eq!(feishu_send(&sandbox, token, &stale).await["code"], 19021);
    assert_eq!(feishu_send(&sandbox, "nope", &post).await["code"], 19001);
    let no_keyword = json!({"msg_type": "text", "content": {"text": "hello"}});
    assert_eq!(
        feishu_send(&sandbox, token, &feishu_signed(secret, no_keyword)).await,
        json!({"code": 19024, "msg": "Key Words Not Found", "data": {}})
    );
    let bad_tag = json!({"msg_type": "post", "content": {"post": {"zh_cn": {
        "content": [[{"tag": "bold", "text": "留言"}]]}}}});
    assert_eq!(
        feishu_send(&sandbox, token, &feishu_signed(secret, bad_tag)).await["code"],
        9499
    );

    // Two a second here: the third in the same second is 11232.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let text = json!({"msg_type": "text", "content": {"text": "新留言"}});
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            feishu_send(&sandbox, token, &feishu_signed(secret, text.clone())).await["code"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(codes, vec![0, 0, 11232]);
}

// ---------------------------------------------------------------------------------------------
// Collect (a generic business API)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn collect_keeps_what_it_takes_and_refuses_by_token_value_and_knob() {
    let sandbox = Sandbox::default().await;
    let post = |body: Value| {
        sandbox
            .client
            .post(sandbox.url("/collect/v1/orders"))
            .bearer_auth("collect-sandbox-token")
            .json(&body)
            .send()
    };
    let (status, reply) = status_and_json(
        post(json!({"name": "张三 😀", "amount": 12.5}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, reply["code"].clone()), (200, json!(0)));
    let (_, reply) =
        status_and_json(post(json!([{"name": "a"}, {"name": "b"}])).await.unwrap()).await;
    assert_eq!(reply["data"]["received"], 2);
    let (_, reply) = status_and_json(
        post(json!([{"name": "a"}, {"name": "REJECT"}]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        reply,
        json!({"code": 1001, "msg": "invalid value at /1/name", "data": {}})
    );
    let (status, reply) = status_and_json(
        sandbox
            .client
            .put(sandbox.url("/collect/v1/orders/7"))
            .bearer_auth("collect-sandbox-token")
            .form(&[("name", "李四"), ("note", "a&b")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, reply["code"].clone()), (200, json!(0)));
    let (status, _) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/collect/v1/orders"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    sandbox
        .set_faults(json!({"collect": {"throttle_every": 1}}))
        .await;
    let (status, reply) = status_and_json(post(json!({"x": 1})).await.unwrap()).await;
    assert_eq!((status, reply["code"].clone()), (200, json!(4290)));
    sandbox
        .set_faults(json!({"collect": {"burst_5xx": 1}}))
        .await;
    assert_eq!(post(json!({"x": 1})).await.unwrap().status(), 503);

    let taken = inbox(&sandbox, "/_sandbox/collect").await;
    assert_eq!(taken.len(), 3);
    assert_eq!(taken[0]["body"], json!({"name": "张三 😀", "amount": 12.5}));
    assert_eq!(taken[0]["method"], "POST");
    assert_eq!(taken[0]["path"], "/v1/orders");
    assert_eq!(taken[2]["method"], "PUT");
    assert_eq!(taken[2]["body"], json!({"name": "李四", "note": "a&b"}));
}

// ---------------------------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_faults_stats_and_datasets() {
    let sandbox = Sandbox::start(SandboxOptions {
        faults: r#"{"okki":{"burst_5xx":1}}"#.parse::<Faults>().unwrap(),
        ..quiet_options()
    })
    .await;
    let faults: Value = sandbox
        .client
        .get(sandbox.url("/_sandbox/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["okki"]["burst_5xx"], 1);
    assert_eq!(faults["yida"]["throttle_every"], Value::Null);

    let (status, body) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/_sandbox/faults"))
            .json(&json!({"nowhere": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown endpoint \"nowhere\"")
    );
    let (status, _) = status_and_json(
        sandbox
            .client
            .post(sandbox.url("/_sandbox/faults"))
            .json(&json!({"yida": {"throttle_every": "often"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/_sandbox/data/nothing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    assert_eq!(sandbox.dataset("yida").await.len(), 250);
    let (status, body) = status_and_json(
        sandbox
            .client
            .get(sandbox.url("/no/such/path"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no such endpoint in the sandbox");

    let response = sandbox
        .client
        .get(sandbox.url("/v1/user/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let response = sandbox
        .client
        .get(sandbox.url("/v1/user/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let stats: Value = sandbox
        .client
        .get(sandbox.url("/_sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = &stats["routes"]["GET /v1/user/list"];
    assert_eq!(users["calls"], 2);
    assert_eq!(users["statuses"]["503"], 1);
    assert_eq!(users["statuses"]["401"], 1);
    assert_eq!(stats["routes"]["GET /_sandbox/data/yida"]["calls"], 1);
}

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() {
    let a = Sandbox::start(SandboxOptions {
        seed: 5,
        anchor_ms: Some(1_700_000_000_000),
        ..quiet_options()
    })
    .await;
    let b = Sandbox::start(SandboxOptions {
        seed: 5,
        anchor_ms: Some(1_700_000_000_000),
        ..quiet_options()
    })
    .await;
    let c = Sandbox::start(SandboxOptions {
        seed: 6,
        anchor_ms: Some(1_700_000_000_000),
        ..quiet_options()
    })
    .await;
    for name in ["yida", "jushuitan", "okki"] {
        assert_eq!(a.dataset(name).await, b.dataset(name).await, "{name}");
        assert_ne!(a.dataset(name).await, c.dataset(name).await, "{name}");
    }
}

#[tokio::test]
async fn spawn_reports_a_bind_failure() {
    let first = Sandbox::default().await;
    let taken: SocketAddr = first.base.trim_start_matches("http://").parse().unwrap();
    let err = ferry_sandbox::spawn(SandboxOptions {
        listen: taken,
        ..SandboxOptions::default()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {taken}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_never_gets_a_non_vendor_answer() {
    let sandbox = Sandbox::default().await;
    let routes = [
        ("POST", "/v1.0/oauth2/accessToken"),
        ("GET", "/gettoken"),
        ("POST", "/v1.0/yida/processes/instances"),
        ("POST", "/robot/send"),
        ("POST", "/open/shops/query"),
        ("POST", "/openWeb/auth/refreshToken"),
        ("POST", "/v1/oauth2/access_token"),
        ("GET", "/v1/user/list"),
        ("POST", "/jdyconnector/app_management/push_app_authorize"),
        ("GET", "/jdyconnector/app_management/kingdee_auth_token"),
        ("POST", "/_sandbox/faults"),
    ];
    let bodies: [&[u8]; 4] = [b"", b"{\"a\":", &[0xff, 0xfe, 0x00, 0xc3], b"[1,2,3]"];
    for (method, path) in routes {
        for body in bodies {
            let url = sandbox.url(&format!("{path}?x=%ff%zz&access_token=%E4&&="));
            let request = if method == "GET" {
                sandbox.client.get(url)
            } else {
                sandbox.client.post(url)
            };
            let response = request
                .header("content-type", "application/json")
                .header("x-acs-dingtalk-access-token", "%ff")
                .header(
                    "Authorization",
                    reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
                )
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            // 519 is the Kingdee gateway's own error status; nothing may answer a real 5xx.
            assert!(status < 500 || status == 519, "{method} {path}: {status}");
            let text = response.text().await.unwrap();
            assert!(
                serde_json::from_str::<Value>(&text).is_ok(),
                "{method} {path}: not JSON: {text}"
            );
        }
    }
}

#[tokio::test]
async fn slow_every_delays_only_every_nth_call() {
    let sandbox = Sandbox::default().await;
    sandbox
        .set_faults(json!({"okki": {"slow_ms": 1000, "slow_every": 2}}))
        .await;
    let mut elapsed = Vec::new();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let response = sandbox
            .client
            .get(sandbox.url("/v1/user/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        elapsed.push(started.elapsed());
    }
    assert!(elapsed[0] < Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed[1] >= Duration::from_millis(1000), "{elapsed:?}");
}
