//! Liveness, readiness and metrics.

use axum::http::StatusCode;

use super::{conversion, fixture, get};
use crate::delivery::Health;

#[tokio::test]
async fn healthz_answers_ok() {
    let f = fixture().await;
    assert_eq!(
        f.send_text(get("/healthz")).await,
        (StatusCode::OK, "ok".to_owned())
    );
}

#[tokio::test]
async fn readyz_is_200_while_running() {
    let f = fixture().await;
    let (status, body) = f.send(get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
}

#[tokio::test]
async fn readyz_is_503_with_reason_unless_running() {
    let f = fixture().await;
    let cases = [
        (
            Health::Paused {
                reason: "token refused".into(),
            },
            "delivery paused: token refused",
        ),
        (
            Health::BreakerOpen {
                reason: "5xx".into(),
            },
            "circuit breaker open: 5xx",
        ),
        (Health::Stopping, "shutting down"),
    ];
    for (health, reason) in cases {
        f.delivery.set(health);
        let (status, body) = f.send(get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["reason"], reason);
    }
}

#[tokio::test]
async fn readyz_is_503_when_the_database_fails() {
    let f = fixture().await;
    f.outbox.close().await;
    let (status, body) = f.send(get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("database error"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_render_queue_and_file_gauges() {
    let f = fixture().await;
    f.enqueue(&conversion("a")).await;
    let response = tower::ServiceExt::oneshot(f.router.clone(), get("/metrics"))
        .await
        .unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    let (status, text) = f.send_text(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        r#"ffrelay_queue_jobs{status="pending"}"#,
        r#"ffrelay_queue_jobs{status="held"}"#,
        "ffrelay_oldest_pending_age_seconds",
        r#"ffrelay_database_size_bytes{file="db"}"#,
        r#"ffrelay_database_size_bytes{file="wal"}"#,
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test]
async fn metrics_still_render_when_the_database_fails() {
    let f = fixture().await;
    f.outbox.close().await;
    let (status, text) = f.send_text(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("ffrelay_database_size_bytes"), "{text}");
}

#[tokio::test]
async fn unknown_route_is_404() {
    let f = fixture().await;
    let (status, _) = f.send_text(get("/v2/jobs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
