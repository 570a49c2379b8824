//! Unit tests of the HTTP source: spec resolution, request building, the generic kind's judge,
//! record extraction and lookups. No service is needed.

use std::time::Duration;

use ferry_core::connector::http::options::ApiMethod;
use serde_json::{Map, Value, json};

use super::paginator::items_at;
use super::*;

fn metadata(json: Value) -> Metadata {
    serde_json::from_value(json).unwrap()
}

fn reply(status: u16, body: Value) -> Reply {
    Reply::json(status, body)
}

#[test]
fn truthy_accepts_bool_number_and_string() {
    for yes in [
        json!(true),
        json!(1),
        json!("true"),
        json!("1"),
        json!("True"),
    ] {
        assert!(truthy(&yes), "{yes}");
    }
    for no in [
        json!(false),
        json!(0),
        json!("false"),
        json!("0"),
        json!(""),
        json!(null),
    ] {
        assert!(!truthy(&no), "{no}");
    }
}

#[test]
fn mode_is_inferred_from_the_request_templates() {
    let page = metadata(json!({"api": "/x", "request": [
        {"field": "p", "value": "{PAGINATION_START_PAGE}"}]}));
    assert_eq!(
        ApiSpec::resolve(&page, Defaults::default()).unwrap().mode,
        Mode::Page
    );
    let offset = metadata(json!({"api": "/x", "request": [
        {"field": "o", "value": "{PAGINATION_START_ROW}"}]}));
    assert_eq!(
        ApiSpec::resolve(&offset, Defaults::default()).unwrap().mode,
        Mode::Offset
    );
    let cursor = metadata(json!({"api": "/x", "pagination": {"cursor_at": "/next"}}));
    assert_eq!(
        ApiSpec::resolve(&cursor, Defaults::default()).unwrap().mode,
        Mode::Cursor
    );
    let none = metadata(json!({"api": "/x"}));
    assert_eq!(
        ApiSpec::resolve(&none, Defaults::default()).unwrap().mode,
        Mode::None
    );
}

#[test]
fn spec_errors_name_the_key() {
    let bad = metadata(json!({"api": "/x", "pagination": {"mode": "pages"}}));
    assert_eq!(
        ApiSpec::resolve(&bad, Defaults::default())
            .unwrap_err()
            .to_string(),
        "source.metadata.pagination.mode: `pages` is not an HTTP paging mode (page, offset, cursor, none)"
    );
    let big = metadata(json!({"api": "/x", "pagination": {"pageSize": 200}}));
    let defaults = Defaults {
        max_page_size: Some(100),
        ..Defaults::default()
    };
    assert_eq!(
        ApiSpec::resolve(&big, defaults).unwrap_err().to_string(),
        "source.metadata.pagination.pageSize: 200 is more than the 100 records a page this API serves"
    );
    let cursor = metadata(json!({"api": "/x", "pagination": {"mode": "cursor"}}));
    assert_eq!(
        ApiSpec::resolve(&cursor, Defaults::default())
            .unwrap_err()
            .to_string(),
        "source.metadata.pagination.cursor_at: cursor paging needs the JSON pointer of the next-page token"
    );
    let url = metadata(json!({"api": "https://evil.example/x"}));
    assert!(
        ApiSpec::resolve(&url, Defaults::default())
            .unwrap_err()
            .to_string()
            .starts_with("source.metadata.api: give a path")
    );
    let lookups = metadata(json!({"api": "/x", "lookups": [{"field": "a", "from": "b"}]}));
    assert_eq!(
        ApiSpec::resolve(&lookups, Defaults::default())
            .unwrap_err()
            .to_string(),
        "source.metadata.lookups[0].pick: missing"
    );
}

#[test]
fn overlap_defaults_and_both_keys_work() {
    let plain = metadata(json!({"api": "/x"}));
    assert_eq!(
        ApiSpec::resolve(&plain, Defaults::default())
            .unwrap()
            .overlap,
        Duration::from_secs(crate::DEFAULT_SYNC_OVERLAP_SECS)
    );
    let top = metadata(json!({"api": "/x", "sync_overlap_secs": 60}));
    assert_eq!(
        ApiSpec::resolve(&top, Defaults::default()).unwrap().overlap,
        Duration::from_secs(60)
    );
    let paged = metadata(json!({"api": "/x", "pagination": {"overlap_secs": "0"}}));
    assert_eq!(
        ApiSpec::resolve(&paged, Defaults::default())
            .unwrap()
            .overlap,
        Duration::ZERO
    );
}

#[test]
fn build_places_fields_in_query_and_body() {
    let md = metadata(json!({"api": "v1/items", "method": "POST"}));
    let spec = ApiSpec::resolve(
        &md,
        Defaults {
            query_fields: vec!["pageNumber".into()],
            json_text_fields: vec!["search".into()],
            ..Defaults::default()
        },
    )
    .unwrap();
    let fields: Map<String, Value> = serde_json::from_value(json!({
        "pageNumber": 2, "search": {"a": "是"}, "skip": null, "name": "张三"
    }))
    .unwrap();
    let req = spec.build("http://h/base/", fields);
    assert_eq!(req.url(), "http://h/base/v1/items");
    assert_eq!(req.query, vec![("pageNumber".to_string(), "2".to_string())]);
    assert_eq!(
        req.body,
        Body::Json(json!({"search": "{\"a\":\"是\"}", "name": "张三"}))
    );

    let get = metadata(json!({"api": "/list", "method": "get"}));
    let spec = ApiSpec::resolve(&get, Defaults::default()).unwrap();
    let fields: Map<String, Value> =
        serde_json::from_value(json!({"now": "2024-01-01 00:00:00", "code": null})).unwrap();
    let req = spec.build("http://h", fields);
    assert_eq!(
        req.query,
        vec![("now".to_string(), "2024-01-01 00:00:00".to_string())]
    );
    assert_eq!(req.body, Body::Empty);

    let form = metadata(json!({"api": "/f", "method": "POST", "body_format": "form"}));
    let spec = ApiSpec::resolve(&form, Defaults::default()).unwrap();
    let fields: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": "x"})).unwrap();
    assert_eq!(
        spec.build("http://h", fields).body,
        Body::Form(vec![("a".into(), "1".into()), ("b".into(), "x".into())])
    );
}

#[test]
fn plain_judges_status_and_body_codes() {
    let conn = HttpConnection {
        base_url: "http://h".into(),
        headers: Default::default(),
        timeout_secs: 30,
        rate_per_sec: None,
        token: None,
    };
    let md = metadata(json!({"api": "/x", "code_at": "/code", "message_at": "/msg"}));
    let plain = Plain::new(&conn, &md).unwrap();
    assert_eq!(plain.judge(&reply(200, json!({"code": 0}))), Verdict::Ok);
    assert_eq!(
        plain.judge(&reply(200, json!({"code": 7, "msg": "参数错误"}))),
        Verdict::Config("the API answered code 7: 参数错误".into())
    );
    assert!(matches!(
        plain.judge(&reply(503, json!({}))),
        Verdict::Retry { .. }
    ));
    let mut throttled = reply(429, json!({}));
    throttled.retry_after = Some(Duration::from_secs(3));
    assert_eq!(
        plain.judge(&throttled),
        Verdict::Retry {
            message: "the API answered HTTP 429: {}".into(),
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(
        plain.judge(&reply(401, json!({"error": "bad"}))),
        Verdict::Config("the API refused the credentials (HTTP 401): {\"error\":\"bad\"}".into())
    );
}

#[test]
fn items_at_reads_pointer_and_refuses_non_arrays() {
    let r = reply(200, json!({"data": {"datas": [{"a": 1}]}}));
    assert_eq!(
        items_at(&r, "/data/datas", "records_at").unwrap(),
        vec![json!({"a": 1})]
    );
    assert_eq!(
        items_at(&r, "/data/none", "records_at").unwrap(),
        Vec::<Value>::new()
    );
    let err = items_at(&r, "/data", "records_at").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("source.metadata.records_at: `/data` is not an array"),
        "{err}"
    );
}

#[test]
fn lookups_parse_both_forms() {
    let list = json!([
        {"field": "department_names", "from": "departments", "pick": "department_name", "join": ","},
        {"field": "boss", "api": "/v1/user/list", "records_at": "/data", "key": "user_id", "value": "nickname", "match": "user_id"}
    ]);
    let parsed = Lookup::parse_all(&list).unwrap();
    assert_eq!(
        parsed[0],
        Lookup::Nested {
            field: "department_names".into(),
            from: "departments".into(),
            pick: "department_name".into(),
            join: Some(",".into())
        }
    );
    assert!(
        matches!(&parsed[1], Lookup::Call { method, records_at, .. } if *method == ApiMethod::Get && records_at == "/data")
    );
}

#[test]
fn a_call_of_five_attempts_waits_four_times_within_the_bounds() {
    use backon::BackoffBuilder;
    let delays: Vec<Duration> = super::client::retry_policy(CALL_ATTEMPTS).build().collect();
    assert_eq!(delays.len(), CALL_ATTEMPTS - 1);
    // Jitter adds up to the delay itself on top of the schedule 200 ms, 400 ms, 800 ms, ...
    for (i, delay) in delays.iter().enumerate() {
        let base = Duration::from_millis(RETRY_MIN_DELAY_MS * 2u64.pow(i as u32))
            .min(Duration::from_millis(RETRY_MAX_DELAY_MS));
        assert!(
            *delay >= base && *delay <= base * 2,
            "attempt {i}: {delay:?}"
        );
    }
    assert!(super::client::retry_policy(1).build().next().is_none());
}

#[test]
fn a_huge_start_page_is_an_error_when_paging_not_an_overflow() {
    // Found by fuzzing: `pagination.start_page` near u64::MAX overflowed on the second page.
    use super::paginator::{page_number, pages_after};
    assert_eq!(page_number(1, 0).unwrap(), 1);
    assert_eq!(page_number(u64::MAX, 0).unwrap(), u64::MAX);
    let err = page_number(u64::MAX, 1).unwrap_err();
    assert_eq!(err.class(), ferry_core::ErrorClass::Config);
    assert_eq!(
        err.to_string(),
        "source.metadata.pagination.start_page: page 18446744073709551615 + 1 is past the \
         largest page number (18446744073709551615); start from a lower page"
    );
    // Resuming from a saved page: as before where nothing overflows, and no panic where it did.
    assert_eq!(pages_after(3, 1), 3);
    assert_eq!(pages_after(0, 1), 0);
    assert_eq!(pages_after(1, 3), 0);
    assert_eq!(pages_after(u64::MAX, 0), u64::MAX);
    assert_eq!(pages_after(u64::MAX, u64::MAX), 1);
}

#[test]
fn the_source_refuses_a_bad_option_with_the_words_of_ferry_lint() {
    // The lint fixture's scheme, opened as the generic kind opens it: the same problems, in the
    // same order, with the same messages as `ferry lint` prints for it.
    let case = "../../tests/fixtures/scheme-bad-option-value-http";
    let scheme: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{case}/schemes/orders.json")).unwrap(),
    )
    .unwrap();
    let md = metadata(scheme["source"]["metadata"].clone());
    let conn = HttpConnection {
        base_url: "http://h".into(),
        headers: Default::default(),
        timeout_secs: 30,
        rate_per_sec: None,
        token: None,
    };
    let err = Plain::new(&conn, &md).err().unwrap();
    let expected: Vec<String> = std::fs::read_to_string(format!("{case}/expected.txt"))
        .unwrap()
        .lines()
        .map(|line| line.trim_start_matches("schemes/orders.json: ").to_string())
        .collect();
    assert_eq!(err.to_string(), expected.join("; "));
    assert_eq!(
        ApiSpec::resolve(&md, Defaults::default())
            .unwrap_err()
            .to_string(),
        expected[..4].join("; ")
    );
}
