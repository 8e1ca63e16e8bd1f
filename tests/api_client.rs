//! The API client against the mock API: every endpoint, timeouts, token refresh after a 401
//! and ahead of expiry, one refresh shared by concurrent requests, and a rotated token file.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ffrelay::api::{Client, Endpoint, Outcome, TokenStore};
use ffrelay::config::Settings;
use ffrelay::mock_api::{Faults, MockApi, MockConfig};
use serde_json::json;

use common::{TestDb, mock, settings};

async fn client_for(db: &TestDb, settings: &Settings) -> Client {
    let tokens = Arc::new(
        TokenStore::load(&settings.api, db.open().await)
            .await
            .unwrap(),
    );
    Client::new(&settings.api, tokens, Duration::from_secs(60)).unwrap()
}

async fn setup(config: MockConfig, overrides: &[(&str, &str)]) -> (MockApi, TestDb, Client) {
    let api = mock(config).await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), overrides);
    let client = client_for(&db, &settings).await;
    (api, db, client)
}

fn conversion() -> serde_json::Value {
    json!({"hits": [{"hitID": "abc123", "payout": 4.2}]})
}

fn reset() -> serde_json::Value {
    json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"})
}

#[tokio::test]
async fn every_endpoint_is_delivered() {
    let faults = Faults {
        reset_count: 321,
        ..Faults::default()
    };
    let (api, _db, client) = setup(
        MockConfig {
            faults,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let events = json!({"hits": [{"hitID": "abc123", "event": 3}]});
    let cost = json!({
        "funnelIDs": ["f1"], "trafficSourceIDs": [],
        "timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-01T01:00:00Z",
        "costSegments": [{"cost": 2}]
    });
    assert_eq!(
        client
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
    assert_eq!(
        client.send(Endpoint::CustomEvents, &events).await.outcome,
        Outcome::Delivered
    );
    assert_eq!(
        client.send(Endpoint::Cost, &cost).await.outcome,
        Outcome::Delivered
    );
    assert_eq!(client.validate_reset(&reset()).await.unwrap(), 321);
    assert_eq!(
        client.send(Endpoint::PerformReset, &reset()).await.outcome,
        Outcome::Delivered
    );

    let requests = api.requests();
    let methods: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        methods,
        vec![
            ("PUT", "/v1/reporting/update/conversions/"),
            ("PUT", "/v1/reporting/update/customevents/"),
            ("PUT", "/v1/reporting/update/cost/"),
            ("POST", "/v1/reporting/update/reset/"),
            ("DELETE", "/v1/reporting/update/reset/"),
        ]
    );
    assert_eq!(requests[0].body, conversion(), "the body is sent unchanged");
}

#[tokio::test]
async fn slow_answer_times_out_and_is_retried() {
    let faults = Faults {
        latency: Duration::from_secs(3),
        ..Faults::default()
    };
    let overrides = [("FFRELAY__API__REQUEST_TIMEOUT", "300ms")];
    let (_api, _db, client) = setup(
        MockConfig {
            faults,
            ..MockConfig::default()
        },
        &overrides,
    )
    .await;
    let exchange = client.send(Endpoint::Conversions, &conversion()).await;
    assert!(
        matches!(exchange.outcome, Outcome::Retry { .. }),
        "{:?}",
        exchange.outcome
    );
    assert!(exchange.latency < Duration::from_secs(2));
    assert!(exchange.error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn unauthorized_answer_refreshes_then_retries_once() {
    let (api, _db, client) = setup(MockConfig::default(), &[]).await;
    api.expire_access_tokens();
    let exchange = client.send(Endpoint::Conversions, &conversion()).await;
    assert_eq!(exchange.outcome, Outcome::Delivered);
    assert!(exchange.refreshed);
    let statuses: Vec<u16> = api.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![401, 200, 200],
        "401, the refresh, then the retry"
    );
}

#[tokio::test]
async fn token_is_refreshed_ahead_of_expiry() {
    let config = MockConfig {
        token_ttl: Duration::from_secs(30),
        ..MockConfig::default()
    };
    let overrides = [("FFRELAY__API__TOKEN_REFRESH_MARGIN", "1m")];
    let (api, _db, client) = setup(config, &overrides).await;

    // The first refresh teaches the client the expiry; it is inside the margin at once.
    api.expire_access_tokens();
    assert_eq!(
        client
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
    assert_eq!(api.stats().refreshes, 1);
    api.clear_requests();
    let exchange = client.send(Endpoint::Conversions, &conversion()).await;
    assert_eq!(exchange.outcome, Outcome::Delivered);
    assert_eq!(api.stats().refreshes, 2, "refreshed before sending");
    assert!(
        api.requests().iter().all(|r| r.status == 200),
        "no 401 was needed"
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let (api, _db, client) = setup(MockConfig::default(), &[]).await;
    api.expire_access_tokens();
    let sends: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send(Endpoint::Conversions, &conversion()).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap().outcome, Outcome::Delivered);
    }
    assert_eq!(api.stats().refreshes, 1);
}

#[tokio::test]
async fn expiry_in_milliseconds_is_understood() {
    let config = MockConfig {
        expires_at_millis: true,
        ..MockConfig::default()
    };
    let (api, _db, client) = setup(config, &[]).await;
    api.expire_access_tokens();
    assert_eq!(
        client
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
    assert!(
        !client.tokens().is_expired().await,
        "a 72 h expiry in ms is in the future"
    );
    assert!(!client.tokens().is_due_for_refresh().await);
}

#[tokio::test]
async fn refused_refresh_pauses_and_rotated_file_resumes() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let access_file = db.dir.path().join("access");
    let refresh_file = db.dir.path().join("refresh");
    std::fs::write(&access_file, "mock-access-0").unwrap();
    std::fs::write(&refresh_file, "mock-refresh").unwrap();
    let overrides = [
        ("FFRELAY__API__ACCESS_TOKEN", ""),
        ("FFRELAY__API__REFRESH_TOKEN", ""),
        (
            "FFRELAY__API__ACCESS_TOKEN_FILE",
            access_file.to_str().unwrap(),
        ),
        (
            "FFRELAY__API__REFRESH_TOKEN_FILE",
            refresh_file.to_str().unwrap(),
        ),
    ];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let client = client_for(&db, &settings).await;

    api.set_tokens("new-access", "new-refresh");
    let exchange = client.send(Endpoint::Conversions, &conversion()).await;
    assert!(
        matches!(exchange.outcome, Outcome::Pause { .. }),
        "{:?}",
        exchange.outcome
    );
    assert!(
        !client.tokens().reload_files().await,
        "unchanged files are not a new token"
    );

    std::fs::write(&access_file, "new-access\n").unwrap();
    std::fs::write(&refresh_file, "new-refresh\n").unwrap();
    assert!(client.tokens().reload_files().await);
    assert_eq!(
        client
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
}

#[tokio::test]
async fn forbidden_pauses_delivery() {
    let faults = Faults {
        fail_next: 1,
        failure_status: 403,
        ..Faults::default()
    };
    let (_api, _db, client) = setup(
        MockConfig {
            faults,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let exchange = client.send(Endpoint::Conversions, &conversion()).await;
    assert_eq!(exchange.status, Some(403));
    assert!(
        matches!(exchange.outcome, Outcome::Pause { .. }),
        "{:?}",
        exchange.outcome
    );
}

#[tokio::test]
async fn stored_token_survives_a_restart() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), &[]);
    let client = client_for(&db, &settings).await;
    api.expire_access_tokens();
    assert_eq!(
        client
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
    drop(client);

    // A new process with the same configured tokens starts from the refreshed one.
    let restarted = client_for(&db, &settings).await;
    api.clear_requests();
    assert_eq!(
        restarted
            .send(Endpoint::Conversions, &conversion())
            .await
            .outcome,
        Outcome::Delivered
    );
    assert_eq!(
        api.stats().refreshes,
        1,
        "no second refresh after the restart"
    );
    assert!(api.requests().iter().all(|r| r.status == 200));
}
