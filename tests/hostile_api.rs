//! The API client against answers a real API should never give: redirects, garbage,
//! bodies that never end, stalls, huge error bodies, and a peer that does not speak HTTP.
//! Each must become a clear outcome, within the configured timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use ffrelay::api::{Client, Endpoint, Outcome, TokenStore};
use futures_util::stream;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use common::{TestDb, settings};

async fn hostile(Path((scenario, _rest)): Path<(String, String)>) -> Response {
    match scenario.as_str() {
        "redirect" => (
            StatusCode::FOUND,
            [(header::LOCATION, "http://127.0.0.1:9/elsewhere")],
        )
            .into_response(),
        "garbage-200" => (StatusCode::OK, "<<not json at all>>").into_response(),
        "status-299" => (StatusCode::from_u16(299).unwrap(), "").into_response(),
        "endless-200" => endless(StatusCode::OK),
        "endless-503" => endless(StatusCode::SERVICE_UNAVAILABLE),
        "stall-200" => stalled_body(StatusCode::OK),
        "stall-headers" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        "huge-400" => (StatusCode::BAD_REQUEST, "x".repeat(10 << 20)).into_response(),
        "reset-garbage" => (StatusCode::OK, "{\"value\": \"many\"}").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn endless(status: StatusCode) -> Response {
    let chunks = stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'a'; 8192]));
    Response::builder()
        .status(status)
        .body(Body::from_stream(chunks))
        .unwrap()
}

fn stalled_body(status: StatusCode) -> Response {
    let first = stream::once(async { Ok::<_, std::io::Error>(b"{\"partial\":".to_vec()) });
    let chunks = futures_util::StreamExt::chain(first, stream::pending());
    Response::builder()
        .status(status)
        .body(Body::from_stream(chunks))
        .unwrap()
}

async fn start_hostile() -> String {
    let app = Router::new().route("/{scenario}/v1/{*rest}", any(hostile));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn client(db: &TestDb, base_url: &str) -> Client {
    let overrides = [
        ("FFRELAY__API__REQUEST_TIMEOUT", "1s"),
        ("FFRELAY__API__MAX_RESPONSE_BYTES", "65536"),
    ];
    let settings = settings(&db.path, base_url, &overrides);
    let tokens = Arc::new(
        TokenStore::load(&settings.api, db.open().await)
            .await
            .unwrap(),
    );
    Client::new(&settings.api, tokens, Duration::from_secs(60)).unwrap()
}

fn body() -> serde_json::Value {
    json!({"hits": [{"hitID": "abc1"}]})
}

async fn send(server: &str, scenario: &str) -> ffrelay::api::Exchange {
    let db = TestDb::new();
    let client = client(&db, &format!("{server}/{scenario}/v1")).await;
    client.send(Endpoint::Conversions, &body()).await
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let server = start_hostile().await;
    let exchange = send(&server, "redirect").await;
    assert_eq!(exchange.status, Some(302));
    assert!(
        matches!(exchange.outcome, Outcome::Failed { .. }),
        "{:?}",
        exchange.outcome
    );
}

#[tokio::test]
async fn success_with_garbage_body_is_delivered() {
    let server = start_hostile().await;
    assert_eq!(
        send(&server, "garbage-200").await.outcome,
        Outcome::Delivered
    );
    assert_eq!(
        send(&server, "status-299").await.outcome,
        Outcome::Delivered
    );
}

#[tokio::test]
async fn endless_bodies_are_read_up_to_the_limit() {
    let server = start_hostile().await;
    let ok = send(&server, "endless-200").await;
    assert_eq!(ok.outcome, Outcome::Delivered);
    assert!(ok.body.len() <= 65536);
    let unavailable = send(&server, "endless-503").await;
    assert!(
        matches!(unavailable.outcome, Outcome::Retry { .. }),
        "{:?}",
        unavailable.outcome
    );
    assert!(unavailable.body.len() <= 65536);
}

#[tokio::test]
async fn stalled_answers_time_out() {
    let server = start_hostile().await;
    let stalled_body = send(&server, "stall-200").await;
    assert_eq!(
        stalled_body.outcome,
        Outcome::Delivered,
        "a 2xx needs no body"
    );
    let stalled = send(&server, "stall-headers").await;
    assert!(
        matches!(stalled.outcome, Outcome::Retry { .. }),
        "{:?}",
        stalled.outcome
    );
    assert!(
        stalled.latency < Duration::from_secs(5),
        "the request timeout applied"
    );
}

#[tokio::test]
async fn huge_error_body_is_bounded() {
    let server = start_hostile().await;
    let exchange = send(&server, "huge-400").await;
    let Outcome::Failed { reason } = exchange.outcome else {
        panic!("expected a failure")
    };
    assert!(
        reason.chars().count() <= 600,
        "reason has {} characters",
        reason.chars().count()
    );
    assert!(exchange.body.len() <= 65536);
}

#[tokio::test]
async fn reset_count_that_is_not_a_number_is_an_error() {
    let server = start_hostile().await;
    let db = TestDb::new();
    let client = client(&db, &format!("{server}/reset-garbage/v1")).await;
    let reset = json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"});
    let err = client.validate_reset(&reset).await.unwrap_err();
    assert!(err.to_string().contains("\"value\""), "{err}");
}

#[tokio::test]
async fn peer_that_is_not_http_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"SSH-2.0-not-http\r\n\r\n").await;
        }
    });
    let db = TestDb::new();
    let client = client(&db, &format!("http://{addr}/v1")).await;
    let exchange = client.send(Endpoint::Conversions, &body()).await;
    assert!(
        matches!(exchange.outcome, Outcome::Retry { .. }),
        "{:?}",
        exchange.outcome
    );
    assert!(exchange.error.is_some());
}
