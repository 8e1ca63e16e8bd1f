//! `POST /v1/jobs` and the ingest token.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use super::{TEST_BODY_LIMIT, conversion, fixture, fixture_with_token, get, post_json, reset};
use crate::outbox::Status;

/// Asserts a 422 whose error names `field`.
fn assert_invalid(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn single_job_is_stored_with_payload_as_sent() {
    let f = fixture().await;
    let body = r#"{"kind": "conversions", "payload": {"hits": [{"hitID": "h1", "extra": 7}]},
        "orderingKey": "k1", "notBefore": 1700000000}"#;
    let ids = f.enqueue(body).await;
    assert_eq!(ids.len(), 1);

    let (job, _) = f.outbox.show(ids[0]).await.unwrap();
    assert_eq!(job.kind, "conversions");
    assert_eq!(job.payload["hits"][0]["extra"], 7);
    assert_eq!(job.ordering_key.as_deref(), Some("k1"));
    assert_eq!(job.next_attempt_at, 1_700_000_000_000);
}

#[tokio::test]
async fn array_is_stored_in_order() {
    let f = fixture().await;
    let body = format!("[{}, {}, {}]", conversion("a"), conversion("b"), reset());
    let ids = f.enqueue(&body).await;
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    let (last, _) = f.outbox.show(ids[2]).await.unwrap();
    assert_eq!(last.kind, "reset");
}

#[tokio::test]
async fn repeated_idempotency_key_answers_200_with_existing_id() {
    let f = fixture().await;
    let body = r#"{"kind": "conversions", "payload": {"hits": [{"hitID": "h1"}]},
        "idempotencyKey": "order-1"}"#;
    let first = f.enqueue(body).await;

    let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(super::ids(&answer), first);
    let stats = f.outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Pending), 1);
}

#[tokio::test]
async fn array_with_one_new_key_answers_202() {
    let f = fixture().await;
    let old = r#"{"kind": "conversions", "payload": {"hits": [{"hitID": "h1"}]},
        "idempotencyKey": "old"}"#;
    let first = f.enqueue(old).await;
    let new = old.replace("\"old\"", "\"new\"");

    let ids = f.enqueue(&format!("[{old}, {new}]")).await;
    assert_eq!(ids[0], first[0]);
    assert_ne!(ids[1], first[0]);
}

#[tokio::test]
async fn invalid_json_is_400() {
    let f = fixture().await;
    let (status, body) = f.send(post_json("/v1/jobs", "{\"kind\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let f = fixture().await;
    let text = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(conversion("a")))
        .unwrap();
    let (status, body) = f.send(text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("text/plain"));

    let untyped = Request::post("/v1/jobs")
        .body(Body::from(conversion("a")))
        .unwrap();
    let (status, _) = f.send(untyped).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let f = fixture().await;
    let request = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Body::from(conversion("a")))
        .unwrap();
    let (status, body) = f.send(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn oversized_body_is_413_json() {
    let f = fixture().await;
    let padding = "x".repeat(TEST_BODY_LIMIT);
    let body = format!(
        r#"{{"kind": "conversions", "payload": {{"hits": [{{"hitID": "h1", "note": "{padding}"}}]}}}}"#
    );
    let (status, answer) = f.send(post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("limit"));
    assert_eq!(f.outbox.stats().await.unwrap().counts, vec![]);
}

#[tokio::test]
async fn body_of_wrong_shape_is_422() {
    let f = fixture().await;
    for body in ["42", "\"job\"", "[]", "null"] {
        let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn array_above_the_limit_is_422() {
    let f = fixture().await;
    let items = vec!["{}"; super::super::MAX_JOBS_PER_REQUEST + 1];
    let body = format!("[{}]", items.join(","));
    let (status, answer) = f.send(post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("10001"),
        "{answer}"
    );
}

#[tokio::test]
async fn unknown_top_level_field_is_named() {
    let f = fixture().await;
    let body = r#"{"kind": "conversions", "payload": {"hits": [{"hitID": "h1"}]},
        "idempotency_key": "k"}"#;
    let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
    assert_invalid(status, &answer, "idempotency_key");
    assert!(answer.get("index").is_none(), "{answer}");
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let f = fixture().await;
    let hits = r#""payload": {"hits": [{"hitID": "h1"}]}"#;
    let cases = [
        (r#"{"payload": {}}"#.to_owned(), "kind"),
        (format!(r#"{{"kind": 3, {hits}}}"#), "kind"),
        (format!(r#"{{"kind": "refunds", {hits}}}"#), "kind"),
        (r#"{"kind": "conversions"}"#.to_owned(), "payload"),
        (
            r#"{"kind": "conversions", "payload": []}"#.to_owned(),
            "payload",
        ),
        (
            format!(r#"{{"kind": "conversions", {hits}, "idempotencyKey": 5}}"#),
            "idempotencyKey",
        ),
        (
            format!(r#"{{"kind": "conversions", {hits}, "idempotencyKey": ""}}"#),
            "idempotencyKey",
        ),
        (
            format!(r#"{{"kind": "conversions", {hits}, "orderingKey": true}}"#),
            "orderingKey",
        ),
        (
            format!(r#"{{"kind": "conversions", {hits}, "notBefore": "soon"}}"#),
            "notBefore",
        ),
        (
            format!(r#"{{"kind": "conversions", {hits}, "notBefore": 1.5}}"#),
            "notBefore",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = f.send(post_json("/v1/jobs", &body)).await;
        assert_invalid(status, &answer, field);
    }
}

#[tokio::test]
async fn invalid_payload_field_is_named_by_path() {
    let f = fixture().await;
    let body = r#"{"kind": "conversions", "payload": {"hits": []}}"#;
    let (status, answer) = f.send(post_json("/v1/jobs", body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["field"], "payload.hits", "{answer}");
}

#[tokio::test]
async fn invalid_array_item_stores_nothing() {
    let f = fixture().await;
    let bad = r#"{"kind": "conversions", "payload": {"hits": []}}"#;
    let body = format!("[{}, {bad}, {}]", conversion("a"), conversion("b"));
    let (status, answer) = f.send(post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["index"], 1, "{answer}");
    assert_eq!(answer["field"], "payload.hits", "{answer}");
    assert_eq!(f.outbox.stats().await.unwrap().counts, vec![]);

    let body = format!("[{}, 7]", conversion("a"));
    let (status, answer) = f.send(post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["index"], 1, "{answer}");
}

#[tokio::test]
async fn stored_jobs_are_counted_by_kind() {
    let f = fixture().await;
    f.enqueue(&format!("[{}, {}]", conversion("a"), reset()))
        .await;
    let (_, text) = f.send_text(get("/metrics")).await;
    assert!(
        text.contains(r#"ffrelay_jobs_enqueued_total{kind="conversions"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ffrelay_jobs_enqueued_total{kind="reset"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn database_failure_is_503() {
    let f = fixture().await;
    f.outbox.close().await;
    let (status, answer) = f.send(post_json("/v1/jobs", &conversion("a"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("failed to store"),
        "{answer}"
    );
}

#[tokio::test]
async fn token_is_required_on_v1_routes() {
    let f = fixture_with_token(Some("s3cret-token")).await;
    let (status, answer) = f.send(post_json("/v1/jobs", &conversion("a"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("missing"),
        "{answer}"
    );

    let mut wrong = post_json("/v1/jobs", &conversion("a"));
    let offered = "Bearer s3cret-tokeX".parse().unwrap();
    wrong.headers_mut().insert(header::AUTHORIZATION, offered);
    let response = f.send_text(wrong).await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    assert!(!response.1.contains("s3cret"), "{}", response.1);

    let (status, _) = f.send(get("/v1/stats")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.outbox.stats().await.unwrap().counts, vec![]);
}

#[tokio::test]
async fn right_token_is_accepted() {
    let f = fixture_with_token(Some("s3cret-token")).await;
    let mut request = post_json("/v1/jobs", &conversion("a"));
    let offered = "Bearer s3cret-token".parse().unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, offered);
    let (status, answer) = f.send(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[tokio::test]
async fn unauthorized_answer_carries_a_bearer_challenge() {
    let f = fixture_with_token(Some("s3cret-token")).await;
    let response = tower::ServiceExt::oneshot(f.router.clone(), get("/v1/stats"))
        .await
        .unwrap();
    let challenge = response.headers().get(header::WWW_AUTHENTICATE).unwrap();
    assert_eq!(challenge, "Bearer");
}

#[tokio::test]
async fn probes_stay_open_with_a_token() {
    let f = fixture_with_token(Some("s3cret-token")).await;
    for uri in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = f.send_text(get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}
