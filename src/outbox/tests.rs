use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::updates::{JobOptions, Kind, prepare};

async fn open() -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.db"), Duration::from_secs(5))
        .await
        .unwrap();
    (dir, outbox)
}

fn conversion(hit: &str) -> NewJob {
    let body = json!({"hits": [{"hitID": hit, "payout": 1.5}]});
    prepare(Kind::Conversions, &body, JobOptions::default()).unwrap()
}

fn reset() -> NewJob {
    let body = json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"});
    prepare(Kind::Reset, &body, JobOptions::default()).unwrap()
}

fn claim_options(run: &str, max_jobs: usize) -> ClaimOptions {
    ClaimOptions {
        run_id: run.into(),
        lease: Duration::from_secs(60),
        max_jobs,
    }
}

fn ids(jobs: &[Claimed]) -> Vec<i64> {
    jobs.iter().map(|job| job.id).collect()
}

async fn status_of(outbox: &Outbox, id: i64) -> String {
    outbox.show(id).await.unwrap().0.status
}

fn done(id: i64, transition: Transition) -> Finish {
    Finish {
        job_id: id,
        attempts: Vec::new(),
        transition,
    }
}

#[tokio::test]
async fn database_file_is_private() {
    let (dir, _outbox) = open().await;
    let mode = std::fs::metadata(dir.path().join("outbox.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn repeated_idempotency_key_stores_nothing() {
    let (_dir, outbox) = open().await;
    let mut job = conversion("a1");
    job.idempotency_key = Some("key-1".into());
    let first = outbox.enqueue(std::slice::from_ref(&job)).await.unwrap();
    let second = outbox.enqueue(&[job]).await.unwrap();
    assert!(first[0].created);
    assert!(!second[0].created);
    assert_eq!(first[0].id, second[0].id);
    assert_eq!(outbox.stats().await.unwrap().count(Status::Pending), 1);
}

#[tokio::test]
async fn failing_group_does_not_lose_other_groups() {
    let (_dir, outbox) = open().await;
    sqlx::query(
        "CREATE TEMP TRIGGER reject_boom BEFORE INSERT ON jobs WHEN NEW.payload = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'boom rejected'); END",
    )
    .execute(&outbox.writer)
    .await
    .unwrap();
    let mut bad = conversion("b1");
    bad.payload = "boom".into();
    let groups = vec![
        vec![conversion("a1")],
        vec![conversion("b0"), bad],
        vec![conversion("c1"), conversion("c2")],
    ];
    let results = outbox.enqueue_groups(&groups).await.unwrap();
    assert!(results[0].is_ok());
    assert!(results[1].is_err(), "the group with the rejected row fails");
    assert!(results[2].is_ok());
    let stats = outbox.stats().await.unwrap();
    assert_eq!(
        stats.count(Status::Pending),
        3,
        "b0 was rolled back with its group"
    );
}

#[tokio::test]
async fn same_ordering_key_is_claimed_one_at_a_time() {
    let (_dir, outbox) = open().await;
    let stored = outbox
        .enqueue(&[conversion("a1"), conversion("a1"), conversion("b2")])
        .await
        .unwrap();
    let (first, second, other) = (stored[0].id, stored[1].id, stored[2].id);

    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    assert_eq!(
        ids(&claimed),
        vec![first, other],
        "a batch never holds two jobs of one key"
    );
    assert!(
        outbox
            .claim(&claim_options("run", 10))
            .await
            .unwrap()
            .is_empty()
    );

    outbox
        .finish("run", &[done(first, Transition::Delivered)])
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    assert_eq!(ids(&claimed), vec![second]);
}

#[tokio::test]
async fn retry_later_keeps_key_order() {
    let (_dir, outbox) = open().await;
    let stored = outbox
        .enqueue(&[conversion("a1"), conversion("a1")])
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    let retry = Transition::Retry {
        at_ms: now_ms() + 60_000,
        reason: "503".into(),
    };
    outbox
        .finish("run", &[done(claimed[0].id, retry)])
        .await
        .unwrap();
    assert!(
        outbox
            .claim(&claim_options("run", 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(status_of(&outbox, stored[1].id).await, "pending");
}

#[tokio::test]
async fn reset_waits_for_every_older_job() {
    let (_dir, outbox) = open().await;
    let stored = outbox.enqueue(&[conversion("a1"), reset()]).await.unwrap();
    let claimed = outbox.claim(&claim_options("run", 1)).await.unwrap();
    assert_eq!(ids(&claimed), vec![stored[0].id]);
    assert!(
        outbox
            .claim(&claim_options("run", 1))
            .await
            .unwrap()
            .is_empty()
    );
    outbox
        .finish("run", &[done(stored[0].id, Transition::Delivered)])
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 1)).await.unwrap();
    assert_eq!(ids(&claimed), vec![stored[1].id]);
}

#[tokio::test]
async fn conversions_with_equal_options_are_claimed_together() {
    let (_dir, outbox) = open().await;
    let jobs: Vec<NewJob> = (0..5).map(|i| conversion(&format!("h{i}"))).collect();
    outbox.enqueue(&jobs).await.unwrap();
    let claimed = outbox.claim(&claim_options("run", 3)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let claimed = outbox.claim(&claim_options("run", 3)).await.unwrap();
    assert_eq!(claimed.len(), 2);
}

fn cost(segment: usize) -> NewJob {
    let body = json!({
        "funnelIDs": [], "trafficSourceIDs": [format!("ts{segment}")],
        "timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-01T01:00:00Z",
        "costSegments": [{"cost": 1.25}]
    });
    prepare(Kind::Cost, &body, JobOptions::default()).unwrap()
}

#[tokio::test]
async fn cost_jobs_are_claimed_sixteen_at_a_time() {
    let (_dir, outbox) = open().await;
    let jobs: Vec<NewJob> = (0..20).map(cost).collect();
    let stored = outbox.enqueue(&jobs).await.unwrap();
    let claimed = outbox.claim(&claim_options("run", 500)).await.unwrap();
    let first_sixteen: Vec<i64> = stored[..16].iter().map(|job| job.id).collect();
    assert_eq!(ids(&claimed), first_sixteen);
    let claimed = outbox.claim(&claim_options("run", 500)).await.unwrap();
    assert_eq!(claimed.len(), 4);
}

#[tokio::test]
async fn cost_claim_skips_other_kinds_and_same_segment() {
    let (_dir, outbox) = open().await;
    let jobs = vec![cost(1), conversion("h1"), cost(1), reset(), cost(2)];
    let stored = outbox.enqueue(&jobs).await.unwrap();
    let claimed = outbox.claim(&claim_options("run", 500)).await.unwrap();
    assert_eq!(ids(&claimed), vec![stored[0].id, stored[4].id]);
    let single = outbox.claim(&claim_options("run", 1)).await.unwrap();
    assert_eq!(ids(&single), vec![stored[1].id]);
}

#[tokio::test]
async fn expired_lease_returns_job() {
    let (_dir, outbox) = open().await;
    let stored = outbox.enqueue(&[conversion("a1")]).await.unwrap();
    let options = ClaimOptions {
        lease: Duration::from_millis(20),
        ..claim_options("dead", 1)
    };
    assert_eq!(outbox.claim(&options).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(outbox.recover_expired().await.unwrap(), 1);
    let claimed = outbox.claim(&claim_options("alive", 1)).await.unwrap();
    assert_eq!(ids(&claimed), vec![stored[0].id]);
}

#[tokio::test]
async fn non_owner_cannot_finish_job() {
    let (_dir, outbox) = open().await;
    let stored = outbox.enqueue(&[conversion("a1")]).await.unwrap();
    outbox.claim(&claim_options("owner", 1)).await.unwrap();
    let lost = outbox
        .finish("intruder", &[done(stored[0].id, Transition::Delivered)])
        .await
        .unwrap();
    assert_eq!(lost, vec![stored[0].id]);
    assert_eq!(status_of(&outbox, stored[0].id).await, "in_flight");
}

#[tokio::test]
async fn attempts_are_recorded_and_counted() {
    let (_dir, outbox) = open().await;
    let stored = outbox.enqueue(&[conversion("a1")]).await.unwrap();
    let id = stored[0].id;
    outbox.claim(&claim_options("run", 1)).await.unwrap();
    let attempt = Attempt {
        job_id: id,
        request_id: "req-1".into(),
        started_at: now_ms(),
        finished_at: now_ms(),
        http_status: Some(503),
        error: None,
        response: Some("unavailable".into()),
        latency_ms: 3,
        outcome: "retry".into(),
    };
    let retry = Transition::Retry {
        at_ms: 0,
        reason: "status 503".into(),
    };
    outbox
        .finish(
            "run",
            &[Finish {
                job_id: id,
                attempts: vec![attempt.clone()],
                transition: retry,
            }],
        )
        .await
        .unwrap();
    let (job, attempts) = outbox.show(id).await.unwrap();
    assert_eq!(job.attempts, 1);
    assert_eq!(job.last_error.as_deref(), Some("status 503"));
    assert_eq!(attempts, vec![attempt]);
}

#[tokio::test]
async fn operator_transitions_follow_the_state_machine() {
    let (_dir, outbox) = open().await;
    let stored = outbox.enqueue(&[reset(), conversion("a1")]).await.unwrap();
    let (reset_id, conversion_id) = (stored[0].id, stored[1].id);

    // Held reset: approve, then it is pending and approved.
    outbox.claim(&claim_options("run", 1)).await.unwrap();
    let held = Transition::Held {
        reason: "would delete 99 hits".into(),
    };
    outbox.finish("run", &[done(reset_id, held)]).await.unwrap();
    assert!(matches!(
        outbox.retry(reset_id).await,
        Err(OutboxError::InvalidTransition { .. })
    ));
    outbox.approve(reset_id).await.unwrap();
    let (job, _) = outbox.show(reset_id).await.unwrap();
    assert_eq!((job.status.as_str(), job.approved), ("pending", true));

    // Approve only works on held jobs; cancel not on delivered ones.
    assert!(matches!(
        outbox.approve(conversion_id).await,
        Err(OutboxError::InvalidTransition { .. })
    ));
    outbox.cancel(conversion_id).await.unwrap();
    assert_eq!(status_of(&outbox, conversion_id).await, "cancelled");
    outbox.retry(conversion_id).await.unwrap();
    assert_eq!(status_of(&outbox, conversion_id).await, "pending");

    let claimed = outbox.claim(&claim_options("run", 1)).await.unwrap();
    outbox
        .finish("run", &[done(claimed[0].id, Transition::Delivered)])
        .await
        .unwrap();
    let err = outbox.cancel(claimed[0].id).await.unwrap_err();
    assert!(err.to_string().contains("is delivered"), "{err}");
    assert!(matches!(
        outbox.cancel(9999).await,
        Err(OutboxError::NotFound(9999))
    ));
}

#[tokio::test]
async fn retry_all_requeues_failed_jobs() {
    let (_dir, outbox) = open().await;
    outbox
        .enqueue(&[conversion("a1"), conversion("b1")])
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    let failed: Vec<Finish> = claimed
        .iter()
        .map(|job| {
            done(
                job.id,
                Transition::Failed {
                    reason: "400".into(),
                },
            )
        })
        .collect();
    outbox.finish("run", &failed).await.unwrap();
    assert_eq!(outbox.retry_all(Status::Failed).await.unwrap(), 2);
    assert_eq!(outbox.stats().await.unwrap().count(Status::Pending), 2);
    assert!(outbox.retry_all(Status::Delivered).await.is_err());
}

#[tokio::test]
async fn invalid_sql_row_fails_with_reason() {
    let (_dir, outbox) = open().await;
    sqlx::query(
        "INSERT INTO jobs (kind, payload) VALUES ('refunds', '{}'), ('conversions', 'oops')",
    )
    .execute(&outbox.writer)
    .await
    .unwrap();
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('conversions', '{\"hits\":[{\"hitID\":\"ok1\"}]}')")
        .execute(&outbox.writer)
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    assert_eq!(ids(&claimed), vec![3]);
    assert_eq!(claimed[0].ordering_key.as_deref(), Some("hit:ok1"));
    let (first, _) = outbox.show(1).await.unwrap();
    assert_eq!(first.status, "failed");
    assert!(first.last_error.unwrap().contains("\"refunds\""));
    let (second, _) = outbox.show(2).await.unwrap();
    assert!(second.last_error.unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn sql_row_not_before_delays_claim() {
    let (_dir, outbox) = open().await;
    sqlx::query("INSERT INTO jobs (kind, payload, not_before) VALUES ('conversions', '{\"hits\":[{\"hitID\":\"a1\"}]}', '2999-01-01T00:00:00Z')")
        .execute(&outbox.writer)
        .await
        .unwrap();
    assert!(
        outbox
            .claim(&claim_options("run", 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(status_of(&outbox, 1).await, "pending");
}

#[tokio::test]
async fn dead_run_leases_are_recovered_at_once() {
    let (_dir, outbox) = open().await;
    outbox.enqueue(&[conversion("a1")]).await.unwrap();
    let dead = outbox.register_run().await.unwrap();
    let dead_id = dead.id().to_owned();
    outbox.claim(&claim_options(&dead_id, 1)).await.unwrap();
    let alive = outbox.register_run().await.unwrap();
    assert_eq!(
        outbox.recover_dead_runs(alive.id()).await.unwrap(),
        0,
        "lock still held"
    );
    drop(dead);
    assert_eq!(outbox.recover_dead_runs(alive.id()).await.unwrap(), 1);
    assert_eq!(status_of(&outbox, 1).await, "pending");
}

#[tokio::test]
async fn release_run_returns_jobs_without_an_attempt() {
    let (_dir, outbox) = open().await;
    outbox.enqueue(&[conversion("a1")]).await.unwrap();
    outbox.claim(&claim_options("run", 1)).await.unwrap();
    assert_eq!(outbox.release_run("run").await.unwrap(), 1);
    let (job, _) = outbox.show(1).await.unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("pending", 0));
}

#[tokio::test]
async fn prune_keeps_failed_and_recent_jobs() {
    let (_dir, outbox) = open().await;
    outbox
        .enqueue(&[conversion("a1"), conversion("b1"), conversion("c1")])
        .await
        .unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    let outcomes = vec![
        done(claimed[0].id, Transition::Delivered),
        done(
            claimed[1].id,
            Transition::Failed {
                reason: "400".into(),
            },
        ),
    ];
    outbox.finish("run", &outcomes).await.unwrap();
    assert_eq!(outbox.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(outbox.prune(Duration::from_millis(1)).await.unwrap(), 1);
    assert!(matches!(
        outbox.show(claimed[0].id).await,
        Err(OutboxError::NotFound(_))
    ));
    assert_eq!(status_of(&outbox, claimed[1].id).await, "failed");
    outbox.checkpoint().await.unwrap();
}

#[tokio::test]
async fn tokens_round_trip() {
    let (_dir, outbox) = open().await;
    assert!(outbox.load_tokens().await.unwrap().is_none());
    let tokens = StoredTokens {
        access_token: "acc".to_string().into(),
        refresh_token: "ref".to_string().into(),
        expires_at_ms: Some(42),
        source_digest: "d".into(),
    };
    outbox.save_tokens(&tokens).await.unwrap();
    let loaded = outbox.load_tokens().await.unwrap().unwrap();
    assert_eq!(loaded.access_token.expose(), "acc");
    assert_eq!(loaded.expires_at_ms, Some(42));
}

#[tokio::test]
async fn removed_or_replaced_file_fails_ping() {
    let (dir, outbox) = open().await;
    outbox.ping().await.unwrap();
    let path = dir.path().join("outbox.db");
    std::fs::rename(&path, dir.path().join("moved.db")).unwrap();
    let err = outbox.ping().await.unwrap_err();
    assert!(matches!(err, OutboxError::Replaced { .. }), "{err}");
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        outbox.ping().await,
        Err(OutboxError::Replaced { .. })
    ));
}

#[tokio::test]
async fn mixed_batch_keeps_input_order() {
    let (_dir, outbox) = open().await;
    let mut keyed = conversion("k1");
    keyed.idempotency_key = Some("key-1".into());
    let existing = outbox.enqueue(&[keyed.clone()]).await.unwrap()[0].id;
    let mut jobs = vec![conversion("a0"), keyed];
    jobs.extend((1..250).map(|i| conversion(&format!("a{i}"))));

    let stored = outbox.enqueue(&jobs).await.unwrap();
    assert_eq!(stored.len(), jobs.len());
    assert_eq!(
        stored[1],
        Enqueued {
            id: existing,
            created: false
        }
    );
    let created: Vec<i64> = stored.iter().filter(|s| s.created).map(|s| s.id).collect();
    assert!(created.windows(2).all(|pair| pair[0] < pair[1]));
    for (job, entry) in jobs.iter().zip(&stored) {
        let (shown, _) = outbox.show(entry.id).await.unwrap();
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
        assert_eq!(shown.payload, payload);
    }
}

#[tokio::test]
async fn non_utf8_text_row_fails_instead_of_panicking() {
    let (_dir, outbox) = open().await;
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('conversions', CAST(X'7B22FF' AS TEXT))")
        .execute(&outbox.writer)
        .await
        .unwrap();
    outbox.enqueue(&[conversion("a1")]).await.unwrap();
    let claimed = outbox.claim(&claim_options("run", 10)).await.unwrap();
    assert_eq!(ids(&claimed), vec![2], "the valid job behind it is claimed");
    let (bad, _) = outbox.show(1).await.unwrap();
    assert_eq!(bad.status, "failed");
    let reason = bad.last_error.unwrap();
    assert!(
        reason.contains("column payload is not valid UTF-8"),
        "{reason}"
    );
}

#[tokio::test]
async fn non_utf8_kind_does_not_break_reports() {
    let (_dir, outbox) = open().await;
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES (CAST(X'FF' AS TEXT), '{}')")
        .execute(&outbox.writer)
        .await
        .unwrap();
    assert!(
        outbox
            .claim(&claim_options("run", 10))
            .await
            .unwrap()
            .is_empty()
    );
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Failed), 1);
    assert_eq!(outbox.report().await.unwrap().len(), 1);
    let listed = outbox
        .list(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].kind, "\u{FFFD}");
}
