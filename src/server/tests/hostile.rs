//! Adversarial bodies on `POST /v1/jobs`: each gets a clear error or correct handling, and
//! nothing of a rejected request is stored.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::{fixture, post_json};
use crate::outbox::Status;

fn post_bytes(body: Vec<u8>) -> Request<Body> {
    Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn malformed_bodies_are_400_and_store_nothing() {
    let f = fixture().await;
    let deep = format!(
        "{{\"kind\": \"conversions\", \"payload\": {{\"hits\": [{{\"hitID\": \"a\", \"x\": {}1{}}}]}}}}",
        "[".repeat(500),
        "]".repeat(500)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8",
            b"{\"kind\": \"conversions\", \"payload\": {\"hits\": [{\"hitID\": \"\xff\"}]}}"
                .to_vec(),
        ),
        (
            "duplicate key",
            br#"{"kind": "conversions", "payload": {"hits": [{"hitID": "a", "hitID": "b"}]}}"#
                .to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
        (
            "number out of range",
            br#"{"kind": "conversions", "payload": {"hits": [{"hitID": "a", "payout": 1e400}]}}"#
                .to_vec(),
        ),
        ("empty body", Vec::new()),
    ];
    for (case, body) in cases {
        let (status, answer) = f.send(post_bytes(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert!(answer["error"].is_string(), "{case}: {answer}");
    }
    let stats = f.outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Pending), 0);
}

#[tokio::test]
async fn duplicate_key_error_names_the_key() {
    let f = fixture().await;
    let body = r#"{"kind": "cost", "kind": "reset", "payload": {}}"#;
    let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"kind\""),
        "{answer}"
    );
}

#[tokio::test]
async fn semantic_problems_are_422_naming_the_field() {
    let f = fixture().await;
    let cases = [
        (r#"[]"#, None),
        (
            r#"{"kind": "conversions", "payload": {"hits": []}}"#,
            Some("payload.hits"),
        ),
        (r#"{"kind": "refunds", "payload": {}}"#, Some("kind")),
        (r#"{"kind": null, "payload": {}}"#, Some("kind")),
        (
            r#"{"kind": "reset", "payload": {"timeStart": "2026-12-01T00:00:00", "timeEnd": "2026-12-02T00:00:00Z"}}"#,
            Some("payload.timeStart"),
        ),
        (
            r#"{"kind": "reset", "payload": {"timeStart": "2026-12-02T00:00:00Z", "timeEnd": "2026-12-01T00:00:00Z"}}"#,
            Some("payload.timeEnd"),
        ),
        (
            r#"{"kind": "conversions", "payload": {"hits": [{"hitID": "a"}]}, "notBefore": "soon"}"#,
            Some("notBefore"),
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{body}: {answer}");
        }
    }
    let stats = f.outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Pending), 0);
}

#[tokio::test]
async fn eleven_custom_events_and_offsets_are_accepted() {
    let f = fixture().await;
    let hits: Vec<String> = (0..11)
        .map(|n| format!("{{\"hitID\": \"h{n}\", \"event\": 1}}"))
        .collect();
    let events = format!(
        "{{\"kind\": \"custom-events\", \"payload\": {{\"hits\": [{}]}}}}",
        hits.join(",")
    );
    assert_eq!(
        f.enqueue(&events).await.len(),
        1,
        "more than 10 items are split at delivery"
    );
    let offsets = r#"{"kind": "reset", "payload": {"timeStart": "2026-12-01T00:00:00+02:00", "timeEnd": "2026-12-01T23:00:00-05:30"}}"#;
    assert_eq!(f.enqueue(offsets).await.len(), 1);
}

#[tokio::test]
async fn repeated_idempotency_key_in_array_is_422() {
    let f = fixture().await;
    let body = r#"[
        {"kind": "conversions", "payload": {"hits": [{"hitID": "a"}]}, "idempotencyKey": "k1"},
        {"kind": "conversions", "payload": {"hits": [{"hitID": "b"}]}, "idempotencyKey": "k2"},
        {"kind": "conversions", "payload": {"hits": [{"hitID": "c"}]}, "idempotencyKey": "k1"}
    ]"#;
    let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["field"], "idempotencyKey", "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(message.contains("\"k1\""), "{answer}");
    assert!(message.contains("jobs 0 and 2"), "{answer}");
    let stats = f.outbox.stats().await.unwrap();
    assert_eq!(
        stats.count(Status::Pending),
        0,
        "nothing of the body is stored"
    );
}

#[tokio::test]
async fn stalled_body_gets_408() {
    let f = fixture().await;
    let start = r#"{"kind": "conversions", "payload": "#;
    let first = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(start.as_bytes()))
    });
    let stalled = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    let request = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stalled))
        .unwrap();

    tokio::time::pause();
    let limit = std::time::Duration::from_secs(60);
    let sent = tokio::time::timeout(limit, f.send(request)).await;
    let (status, answer) = sent.expect("no response to a stalled body within 60 s");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("30 s"),
        "{answer}"
    );
}
