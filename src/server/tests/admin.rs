//! Admin endpoints: list, show, retry, cancel, approve and stats.

use std::time::Duration;

use axum::http::StatusCode;

use super::{Fixture, conversion, fixture, get, post_empty, reset};
use crate::delivery::Health;
use crate::outbox::{Attempt, ClaimOptions, Finish, Transition};

/// Claims the next ready job and moves it to `transition`, recording one attempt.
async fn claim_and_finish(f: &Fixture, transition: Transition) -> i64 {
    let options = ClaimOptions {
        run_id: "test-run".into(),
        lease: Duration::from_secs(60),
        max_jobs: 1,
    };
    let claimed = f.outbox.claim(&options).await.unwrap();
    let id = claimed[0].id;
    let attempt = Attempt {
        job_id: id,
        request_id: "r1".into(),
        started_at: 1,
        finished_at: 2,
        http_status: Some(400),
        error: None,
        response: Some("bad".into()),
        latency_ms: 1,
        outcome: "failed".into(),
    };
    let finish = Finish {
        job_id: id,
        attempts: vec![attempt],
        transition,
    };
    f.outbox.finish("test-run", &[finish]).await.unwrap();
    id
}

fn failed() -> Transition {
    Transition::Failed {
        reason: "rejected".into(),
    }
}

#[tokio::test]
async fn list_pages_newest_first() {
    let f = fixture().await;
    let items: Vec<String> = (0..5).map(|n| conversion(&format!("h{n}"))).collect();
    let ids = f.enqueue(&format!("[{}]", items.join(","))).await;

    let (status, page) = f.send(get("/v1/jobs?limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<i64> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[4], ids[3]]);
    assert_eq!(page["next"], ids[3]);

    let (_, last) = f
        .send(get(&format!("/v1/jobs?limit=3&before={}", ids[3])))
        .await;
    assert_eq!(last["jobs"].as_array().unwrap().len(), 3);
    assert!(last["next"].is_null(), "{last}");
}

#[tokio::test]
async fn list_filters_by_status_and_kind() {
    let f = fixture().await;
    f.enqueue(&format!("[{}, {}]", conversion("a"), reset()))
        .await;
    let failed_id = claim_and_finish(&f, failed()).await;

    let (_, page) = f.send(get("/v1/jobs?status=failed")).await;
    assert_eq!(page["jobs"][0]["id"], failed_id, "{page}");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);

    let (_, page) = f.send(get("/v1/jobs?kind=reset&status=pending")).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["jobs"][0]["kind"], "reset");
    assert!(page["next"].is_null());
}

#[tokio::test]
async fn list_treats_empty_parameters_as_unset() {
    let f = fixture().await;
    f.enqueue(&conversion("abc1")).await;
    let (status, page) = f.send(get("/v1/jobs?status=&kind=&limit=&before=")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn list_rejects_invalid_parameters_by_name() {
    let f = fixture().await;
    let cases = [
        ("status=lost", "status"),
        ("kind=refunds", "kind"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("before=-3", "before"),
        ("before=x", "before"),
        ("stat=failed", "stat"),
    ];
    for (query, field) in cases {
        let (status, body) = f.send(get(&format!("/v1/jobs?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

#[tokio::test]
async fn show_returns_job_and_attempts() {
    let f = fixture().await;
    f.enqueue(&conversion("a")).await;
    let id = claim_and_finish(&f, failed()).await;

    let (status, body) = f.send(get(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["status"], "failed");
    assert_eq!(body["attempts"][0]["http_status"], 400);
}

#[tokio::test]
async fn show_rejects_unknown_and_bad_ids() {
    let f = fixture().await;
    let (status, body) = f.send(get("/v1/jobs/999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("999"));

    let (status, body) = f.send(get("/v1/jobs/abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "id");
}

#[tokio::test]
async fn retry_requeues_a_failed_job() {
    let f = fixture().await;
    f.enqueue(&conversion("a")).await;
    let id = claim_and_finish(&f, failed()).await;

    let (status, body) = f.send(post_empty(&format!("/v1/jobs/{id}/retry"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let (job, _) = f.outbox.show(id).await.unwrap();
    assert_eq!(job.status, "pending");
}

#[tokio::test]
async fn cancel_then_invalid_transition_is_409() {
    let f = fixture().await;
    let ids = f.enqueue(&conversion("a")).await;

    let uri = format!("/v1/jobs/{}/cancel", ids[0]);
    let (status, body) = f.send(post_empty(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");

    let (status, body) = f.send(post_empty(&uri)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("is cancelled"),
        "{body}"
    );
}

#[tokio::test]
async fn approve_releases_a_held_reset() {
    let f = fixture().await;
    f.enqueue(&reset()).await;
    let held = Transition::Held {
        reason: "would delete 99 hits".into(),
    };
    let id = claim_and_finish(&f, held).await;

    let (status, body) = f.send(post_empty(&format!("/v1/jobs/{id}/approve"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approved"], true);
    let (job, _) = f.outbox.show(id).await.unwrap();
    assert!(job.approved);
}

#[tokio::test]
async fn actions_on_unknown_or_wrong_jobs_fail() {
    let f = fixture().await;
    let ids = f.enqueue(&conversion("a")).await;
    for action in ["retry", "cancel", "approve"] {
        let (status, body) = f.send(post_empty(&format!("/v1/jobs/999/{action}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        let (status, body) = f.send(post_empty(&format!("/v1/jobs/x/{action}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}: {body}");
    }
    for action in ["retry", "approve"] {
        let uri = format!("/v1/jobs/{}/{action}", ids[0]);
        let (status, body) = f.send(post_empty(&uri)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
    }
}

#[tokio::test]
async fn stats_report_counts_and_delivery_health() {
    let f = fixture().await;
    f.enqueue(&format!("[{}, {}]", conversion("a"), conversion("b")))
        .await;
    f.delivery.set(Health::Paused {
        reason: "refresh refused".into(),
    });

    let (status, body) = f.send(get("/v1/stats")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["stats"]["counts"][0],
        serde_json::json!(["pending", "conversions", 2])
    );
    assert_eq!(body["delivery"]["state"], "paused");
    assert_eq!(body["delivery"]["reason"], "refresh refused");
    assert!(body["runs"].is_array(), "{body}");
}

#[tokio::test]
async fn stats_on_a_closed_database_is_503() {
    let f = fixture().await;
    f.outbox.close().await;
    let (status, body) = f.send(get("/v1/stats")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
