//! End-to-end tests of the mock FunnelFlux API over loopback HTTP: every endpoint, every
//! fault, validation, token handling, the request log and the `/_mock` control endpoints.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ffrelay::mock_api::{Faults, MockApi, MockConfig, MockStats, RecordedRequest};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "mock-access-0";
const REFRESH: &str = "mock-refresh";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_with(config: MockConfig) -> MockApi {
    MockApi::start(loopback(), config).await.unwrap()
}

async fn start(faults: Faults) -> MockApi {
    start_with(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await
}

async fn send(mock: &MockApi, method: Method, path: &str, token: &str, body: &Value) -> Response {
    let url = format!("{}{path}", mock.base_url());
    let request = Client::new().request(method, url).bearer_auth(token);
    request.json(body).send().await.unwrap()
}

async fn put(mock: &MockApi, path: &str, body: &Value) -> Response {
    send(mock, Method::PUT, path, TOKEN, body).await
}

async fn refresh(mock: &MockApi, bearer: &str, refresh_token: &str) -> Response {
    let body = json!({ "refresh_token": refresh_token });
    send(mock, Method::POST, "/auth/validate", bearer, &body).await
}

async fn error_of(response: Response) -> Value {
    response.json::<Value>().await.unwrap()
}

fn conversions_body() -> Value {
    json!({
        "hits": [
            {"hitID": "abc123", "transactionID": "t1", "payout": 2.5},
            {"hitID": "def456"}
        ],
        "postbackCalls": "onlyOnce",
        "overridePayout": null,
        "disablePostbacks": false,
        "forcePostbacks": true,
        "somethingNew": {"kept": true}
    })
}

fn custom_events_body() -> Value {
    json!({"hits": [{"hitID": "abc123", "event": 1}, {"hitID": "def456", "event": 10}]})
}

fn cost_body() -> Value {
    json!({
        "funnelIDs": ["f1"],
        "trafficSourceIDs": [],
        "timeStart": "2024-05-01T00:00:00Z",
        "timeEnd": "2024-05-01T01:00:00+00:00",
        "costSegments": [{"cost": 1.0}, {"cost": 2.0}, {"cost": 3.0}]
    })
}

fn reset_body() -> Value {
    json!({
        "timeStart": "2024-05-01T00:00:00Z",
        "timeEnd": "2024-05-02T00:00:00Z",
        "restrictToFunnelIDs": ["f1"]
    })
}

#[tokio::test]
async fn updates_succeed_with_empty_body() {
    let mock = start(Faults::default()).await;
    let cases = [
        (
            Method::PUT,
            "/reporting/update/conversions/",
            conversions_body(),
        ),
        (
            Method::PUT,
            "/reporting/update/customevents/",
            custom_events_body(),
        ),
        (Method::PUT, "/reporting/update/cost/", cost_body()),
        (Method::DELETE, "/reporting/update/reset/", reset_body()),
    ];
    for (method, path, body) in cases {
        let response = send(&mock, method, path, TOKEN, &body).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.text().await.unwrap(), "", "{path}");
    }

    let stats = mock.stats();
    assert_eq!(stats.accepted_items.conversions, 2);
    assert_eq!(stats.accepted_items.custom_events, 2);
    assert_eq!(stats.accepted_items.cost, 3);
    assert_eq!(stats.accepted_items.reset_perform, 1);
    assert_eq!(stats.accepted_requests.conversions, 1);
    assert_eq!(stats.by_status.get(&200), Some(&4));
    mock.shutdown().await;
}

#[tokio::test]
async fn paths_without_trailing_slash() {
    let mock = start(Faults::default()).await;
    let response = put(&mock, "/reporting/update/conversions", &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = refresh(&mock, TOKEN, REFRESH).await;
    assert_eq!(response.status(), StatusCode::OK);
    let url = format!("{}/auth/validate/", mock.base_url());
    let body = json!({ "refresh_token": REFRESH });
    let client = Client::new().post(url).bearer_auth(TOKEN).json(&body);
    assert_eq!(client.send().await.unwrap().status(), StatusCode::OK);
    mock.shutdown().await;
}

#[tokio::test]
async fn reset_validation_returns_count() {
    let faults = Faults {
        reset_count: 4242,
        ..Faults::default()
    };
    let mock = start(faults).await;
    let path = "/reporting/update/reset/";
    let response = send(&mock, Method::POST, path, TOKEN, &reset_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"value": 4242})
    );
    assert_eq!(mock.stats().accepted_requests.reset_validate, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn unknown_path_and_method() {
    let mock = start(Faults::default()).await;
    let response = put(&mock, "/reporting/update/nothing/", &json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let path = "/reporting/update/cost/";
    let response = send(&mock, Method::POST, path, TOKEN, &cost_body()).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mock.requests().len(), 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn failure_rate_one_always_fails() {
    let faults = Faults {
        failure_rate: 1.0,
        failure_status: 502,
        ..Faults::default()
    };
    let mock = start(faults).await;
    for _ in 0..3 {
        let response = put(&mock, "/reporting/update/conversions/", &conversions_body()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let error = error_of(response).await;
        assert_eq!(error["error"], "injected failure");
    }
    assert_eq!(mock.stats().accepted_items.conversions, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn fail_next_counts_down() {
    let mock = start(Faults::default()).await;
    mock.set_faults(Faults {
        fail_next: 2,
        ..Faults::default()
    });
    let path = "/reporting/update/customevents/";
    let first = put(&mock, path, &custom_events_body()).await.status();
    assert_eq!(mock.faults().fail_next, 1);
    let second = put(&mock, path, &custom_events_body()).await.status();
    let third = put(&mock, path, &custom_events_body()).await.status();
    assert_eq!(first, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third, StatusCode::OK);
    assert_eq!(mock.faults().fail_next, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn latency_delays_answer() {
    let faults = Faults {
        latency: Duration::from_millis(250),
        ..Faults::default()
    };
    let mock = start(faults).await;
    let started = Instant::now();
    let response = put(&mock, "/reporting/update/cost/", &cost_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
    mock.shutdown().await;
}

fn rate_limited(retry_after_secs: Option<u64>) -> Faults {
    Faults {
        rate_limit_per_second: Some(0.5),
        rate_limit_burst: 2,
        retry_after_secs,
        ..Faults::default()
    }
}

#[tokio::test]
async fn rate_limit_sends_retry_after() {
    let mock = start(rate_limited(Some(7))).await;
    let path = "/reporting/update/conversions/";
    assert_eq!(
        put(&mock, path, &conversions_body()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&mock, path, &conversions_body()).await.status(),
        StatusCode::OK
    );

    let response = put(&mock, path, &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response.headers().get("retry-after").unwrap();
    assert_eq!(retry_after.to_str().unwrap(), "7");
    assert_eq!(mock.stats().rate_limited, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn rate_limit_without_retry_after() {
    let mock = start(rate_limited(None)).await;
    let path = "/reporting/update/conversions/";
    for _ in 0..2 {
        put(&mock, path, &conversions_body()).await;
    }
    let response = put(&mock, path, &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
    mock.shutdown().await;
}

#[tokio::test]
async fn poison_hit_is_named() {
    let faults = Faults {
        poison_hits: vec!["def456".to_owned()],
        ..Faults::default()
    };
    let mock = start(faults).await;
    let response = put(&mock, "/reporting/update/conversions/", &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert_eq!(error["field"], "hits[1].hitID");
    assert_eq!(error["value"], "def456");
    assert!(error["error"].as_str().unwrap().contains("def456"));

    let clean = json!({"hits": [{"hitID": "abc123", "event": 2}]});
    let response = put(&mock, "/reporting/update/customevents/", &clean).await;
    assert_eq!(response.status(), StatusCode::OK);
    mock.shutdown().await;
}

#[tokio::test]
async fn hang_outlasts_client_timeout() {
    let faults = Faults {
        hang_rate: 1.0,
        ..Faults::default()
    };
    let mock = start(faults).await;
    let client = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}/reporting/update/cost/", mock.base_url());
    let result = client
        .put(url)
        .bearer_auth(TOKEN)
        .json(&cost_body())
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 0);
    assert_eq!(mock.stats().hung, 1);

    let started = Instant::now();
    mock.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn hanging_request_released_on_shutdown() {
    let faults = Faults {
        hang_rate: 1.0,
        ..Faults::default()
    };
    let mock = start(faults).await;
    let url = format!("{}/reporting/update/cost/", mock.base_url());
    let pending = Client::new()
        .put(url)
        .bearer_auth(TOKEN)
        .json(&cost_body())
        .send();
    let pending = tokio::spawn(pending);
    tokio::time::sleep(Duration::from_millis(100)).await;

    mock.shutdown().await;
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn missing_and_unknown_tokens_get_401() {
    let mock = start(Faults::default()).await;
    let url = format!("{}/reporting/update/conversions/", mock.base_url());
    let response = Client::new()
        .put(url)
        .json(&conversions_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await["error"], "missing bearer token");

    let path = "/reporting/update/conversions/";
    let response = send(&mock, Method::PUT, path, "forged", &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await["error"], "unknown access token");
    mock.shutdown().await;
}

#[tokio::test]
async fn expired_token_gets_configured_status() {
    let mock = start(Faults::default()).await;
    mock.expire_access_tokens();
    let path = "/reporting/update/conversions/";
    let response = put(&mock, path, &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await["error"], "access token expired");

    mock.set_faults(Faults {
        expired_status: 400,
        ..Faults::default()
    });
    let response = put(&mock, path, &conversions_body()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    mock.shutdown().await;
}

#[tokio::test]
async fn token_ttl_expires_tokens() {
    let config = MockConfig {
        token_ttl: Duration::from_millis(100),
        ..MockConfig::default()
    };
    let mock = start_with(config).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let response = put(&mock, "/reporting/update/cost/", &cost_body()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    mock.shutdown().await;
}

fn unix_seconds() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

#[tokio::test]
async fn refresh_issues_working_token() {
    let mock = start(Faults::default()).await;
    mock.expire_access_tokens();
    let response = refresh(&mock, TOKEN, REFRESH).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.json::<Value>().await.unwrap();
    let access = body["tokens"]["access_token"].as_str().unwrap().to_owned();
    let expires_at = body["tokens"]["expires_at"].as_i64().unwrap();
    assert_eq!(access, "mock-access-1");
    let expected = unix_seconds() + 72 * 3600;
    assert!(
        (expires_at - expected).abs() <= 2,
        "expires_at {expires_at}"
    );

    let path = "/reporting/update/cost/";
    let response = send(&mock, Method::PUT, path, &access, &cost_body()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.stats().refreshes, 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn refresh_expires_at_in_millis() {
    let config = MockConfig {
        expires_at_millis: true,
        ..MockConfig::default()
    };
    let mock = start_with(config).await;
    let body = refresh(&mock, TOKEN, REFRESH)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let expires_at = body["tokens"]["expires_at"].as_i64().unwrap();
    let expected = (unix_seconds() + 72 * 3600) * 1000;
    assert!(
        (expires_at - expected).abs() <= 2000,
        "expires_at {expires_at}"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn refresh_refused_gets_401() {
    let mock = start(Faults::default()).await;
    let response = refresh(&mock, TOKEN, "wrong-refresh").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await["error"], "invalid refresh token");

    let response = refresh(&mock, "never-issued", REFRESH).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(response).await["error"], "unknown access token");

    mock.set_faults(Faults {
        refuse_refresh: true,
        ..Faults::default()
    });
    let response = refresh(&mock, TOKEN, REFRESH).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(error_of(response).await["error"].is_string());
    assert_eq!(mock.stats().refused_refreshes, 3);
    assert_eq!(mock.stats().refreshes, 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn rotated_tokens_replace_old_pair() {
    let mock = start(Faults::default()).await;
    mock.set_tokens("fresh-access", "fresh-refresh");
    let path = "/reporting/update/cost/";
    let old = put(&mock, path, &cost_body()).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = send(&mock, Method::PUT, path, "fresh-access", &cost_body()).await;
    assert_eq!(new.status(), StatusCode::OK);

    let stale_refresh = refresh(&mock, "fresh-access", REFRESH).await;
    assert_eq!(stale_refresh.status(), StatusCode::UNAUTHORIZED);
    let fresh_refresh = refresh(&mock, "fresh-access", "fresh-refresh").await;
    assert_eq!(fresh_refresh.status(), StatusCode::OK);
    mock.shutdown().await;
}

#[tokio::test]
async fn validation_errors_name_field() {
    let conversions = "/reporting/update/conversions/";
    let events = "/reporting/update/customevents/";
    let cost = "/reporting/update/cost/";
    let reset = "/reporting/update/reset/";
    let ten_events: Vec<Value> = (0..11).map(|_| json!({"hitID": "a", "event": 1})).collect();
    let cases = [
        (conversions, json!({"hits": []}), "hits"),
        (conversions, json!({"other": 1}), "hits"),
        (conversions, json!([1, 2]), ""),
        (conversions, json!({"hits": ["abc"]}), "hits[0]"),
        (
            conversions,
            json!({"hits": [{"hitID": "Abc"}]}),
            "hits[0].hitID",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a-b"}]}),
            "hits[0].hitID",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": 12}]}),
            "hits[0].hitID",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a", "payout": "1"}]}),
            "hits[0].payout",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a", "transactionID": 1}]}),
            "hits[0].transactionID",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a"}], "postbackCalls": "some"}),
            "postbackCalls",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a"}], "overridePayout": "x"}),
            "overridePayout",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a"}], "forcePostbacks": 1}),
            "forcePostbacks",
        ),
        (
            conversions,
            json!({"hits": [{"hitID": "a"}], "disablePostbacks": "no"}),
            "disablePostbacks",
        ),
        (events, json!({ "hits": ten_events }), "hits"),
        (
            events,
            json!({"hits": [{"hitID": "a", "event": 11}]}),
            "hits[0].event",
        ),
        (
            events,
            json!({"hits": [{"hitID": "a", "event": 1}, {"hitID": "b"}]}),
            "hits[1].event",
        ),
        (
            events,
            json!({"hits": [{"hitID": "a", "event": 1.5}]}),
            "hits[0].event",
        ),
        (
            cost,
            json!({"trafficSourceIDs": [], "timeStart": "2024-01-01T00:00:00Z"}),
            "funnelIDs",
        ),
        (
            cost,
            json!({"funnelIDs": [1], "trafficSourceIDs": []}),
            "funnelIDs",
        ),
        (
            cost,
            json!({"funnelIDs": [], "trafficSourceIDs": [], "timeStart": "yesterday"}),
            "timeStart",
        ),
        (
            reset,
            json!({"timeStart": "2024-01-01T00:00:00Z"}),
            "timeEnd",
        ),
        (
            reset,
            json!({"timeStart": "2024-01-02T00:00:00Z", "timeEnd": "2024-01-01T00:00:00Z"}),
            "timeEnd",
        ),
    ];
    let mock = start(Faults::default()).await;
    for (path, body, field) in cases {
        let method = if path == reset {
            Method::POST
        } else {
            Method::PUT
        };
        let response = send(&mock, method, path, TOKEN, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        let error = error_of(response).await;
        assert_eq!(error["field"], field, "{path} {body}: {error}");
        assert!(error["error"].is_string(), "{path} {body}");
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn cost_segments_required() {
    let mock = start(Faults::default()).await;
    let mut body = cost_body();
    body.as_object_mut().unwrap().remove("costSegments");
    let response = put(&mock, "/reporting/update/cost/", &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(response).await["field"], "costSegments");
    mock.shutdown().await;
}

#[tokio::test]
async fn invalid_json_gets_400() {
    let mock = start(Faults::default()).await;
    let url = format!("{}/reporting/update/conversions/", mock.base_url());
    let request = Client::new().put(url).bearer_auth(TOKEN).body("{not json");
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert!(error["error"].as_str().unwrap().starts_with("invalid JSON"));
    assert_eq!(mock.requests()[0].body, json!("{not json"));
    mock.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded() {
    let mock = start(Faults::default()).await;
    let path = "/reporting/update/conversions/";
    put(&mock, path, &conversions_body()).await;
    put(&mock, path, &json!({"hits": []})).await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/v1/reporting/update/conversions/");
    assert_eq!(requests[0].body, conversions_body());
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].response, "");
    assert!(requests[0].at_ms > 1_700_000_000_000);
    assert_eq!(requests[1].status, 400);
    assert!(requests[1].response.contains("\"field\":\"hits\""));

    mock.clear_requests();
    assert!(mock.requests().is_empty());
    put(&mock, path, &conversions_body()).await;
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(mock.stats().accepted_items.conversions, 4);
    mock.shutdown().await;
}

#[tokio::test]
async fn record_bodies_off_keeps_rest() {
    let config = MockConfig {
        record_bodies: false,
        ..MockConfig::default()
    };
    let mock = start_with(config).await;
    put(&mock, "/reporting/update/conversions/", &conversions_body()).await;
    let requests = mock.requests();
    assert_eq!(requests[0].body, Value::Null);
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].path, "/v1/reporting/update/conversions/");
    assert_eq!(mock.stats().accepted_items.conversions, 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn control_endpoints_work() {
    let mock = start(Faults::default()).await;
    let control = format!("http://{}/_mock", mock.addr());
    let client = Client::new();

    let faults = json!({"latency": "5ms", "reset_count": 9, "retry_after_secs": null});
    let response = client
        .put(format!("{control}/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let current: Value = client
        .get(format!("{control}/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["latency"], 5);
    assert_eq!(current["reset_count"], 9);
    assert_eq!(current["failure_status"], 503);
    assert_eq!(mock.faults().retry_after_secs, None);

    put(&mock, "/reporting/update/cost/", &cost_body()).await;
    put(&mock, "/reporting/update/cost/", &cost_body()).await;
    let url = format!("{control}/requests?since=1");
    let requests: Vec<RecordedRequest> =
        client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(requests.len(), 1);

    let stats: MockStats = client
        .get(format!("{control}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.accepted_items.cost, 6);
    assert_eq!(stats, mock.stats());

    let response = client
        .delete(format!("{control}/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(mock.requests().is_empty());

    client
        .post(format!("{control}/expire-tokens"))
        .send()
        .await
        .unwrap();
    let response = put(&mock, "/reporting/update/cost/", &cost_body()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    mock.shutdown().await;
}
