//! Router tests: every status path of every endpoint, called with `oneshot` on a router
//! backed by a real SQLite file in a temporary directory.

mod admin;
mod health;
mod hostile;
mod jobs;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

use super::{AppState, Ingest, router};
use crate::delivery::DeliveryState;
use crate::outbox::Outbox;
use crate::secret::Secret;
use crate::telemetry;

/// Body limit of the test router, in bytes.
const TEST_BODY_LIMIT: usize = 64 * 1024;

/// A router on a fresh database, with handles to what it works on.
struct Fixture {
    _dir: TempDir,
    outbox: Outbox,
    delivery: DeliveryState,
    router: Router,
}

async fn fixture() -> Fixture {
    fixture_with_token(None).await
}

async fn fixture_with_token(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path, Duration::from_secs(5)).await.unwrap();
    let delivery = DeliveryState::default();
    let state = AppState {
        outbox: outbox.clone(),
        ingest: Ingest::start(outbox.clone()),
        delivery: delivery.clone(),
        ingest_token: token.map(Secret::new),
        metrics: telemetry::prometheus(),
    };
    Fixture {
        _dir: dir,
        outbox,
        delivery,
        router: router(state, TEST_BODY_LIMIT),
    }
}

impl Fixture {
    /// Sends a request and returns the status and the body as text.
    async fn send_text(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Sends a request and returns the status and the body parsed as JSON.
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, text) = self.send_text(request).await;
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {text:?}"));
        (status, body)
    }

    /// Stores jobs through the endpoint and returns their ids.
    async fn enqueue(&self, body: &str) -> Vec<i64> {
        let (status, answer) = self.send(post_json("/v1/jobs", body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        ids(&answer)
    }
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn post_empty(uri: &str) -> Request<Body> {
    Request::post(uri).body(Body::empty()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn ids(answer: &Value) -> Vec<i64> {
    answer["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {answer}"))
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect()
}

/// Builds a valid conversion job object for one hit.
fn conversion(hit: &str) -> String {
    format!(r#"{{"kind": "conversions", "payload": {{"hits": [{{"hitID": "{hit}"}}]}}}}"#)
}

/// Builds a valid reset job object.
fn reset() -> String {
    r#"{"kind": "reset", "payload": {"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"}}"#
        .to_owned()
}
