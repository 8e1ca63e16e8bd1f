//! Rows that producers insert with SQL. A producer may set kind, payload, idempotency_key,
//! ordering_key and not_before. A row that sets a final status fails at insert; a row that
//! sets any other column of ffrelay's, or holds a BLOB or non-UTF-8 text, is taken in as
//! failed with the reason, and never blocks the rows behind it.

use std::time::Duration;

use super::*;

const PAYLOAD: &str = r#"{"hits":[{"hitID":"abc1"}]}"#;

async fn open() -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.db"), Duration::from_secs(5))
        .await
        .unwrap();
    (dir, outbox)
}

/// Runs one producer statement and returns the database's error message, if any.
async fn insert_error(outbox: &Outbox, sql: &str) -> Option<String> {
    match sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&outbox.writer)
        .await
    {
        Ok(_) => None,
        Err(err) => Some(err.to_string()),
    }
}

fn claim_options() -> ClaimOptions {
    ClaimOptions {
        run_id: "run".into(),
        lease: Duration::from_secs(60),
        max_jobs: 10,
    }
}

/// Inserts `sql`, then a valid row, claims, and returns the first row's status and error.
async fn intake_result(outbox: &Outbox, sql: &str) -> (String, Option<String>) {
    assert_eq!(insert_error(outbox, sql).await, None, "{sql}");
    let valid = format!("INSERT INTO jobs (kind, payload) VALUES ('conversions', '{PAYLOAD}')");
    assert_eq!(insert_error(outbox, &valid).await, None);
    let claimed = outbox.claim(&claim_options()).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "the valid row behind it is claimed: {sql}"
    );
    let listed = outbox
        .list(&ListFilter {
            limit: 2,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    let first = listed.last().unwrap();
    (first.status.clone(), first.last_error.clone())
}

#[tokio::test]
async fn final_status_at_insert_is_rejected() {
    let (_dir, outbox) = open().await;
    for status in ["delivered", "failed", "cancelled"] {
        let sql = format!(
            "INSERT INTO jobs (status, kind, payload) VALUES ('{status}', 'conversions', '{PAYLOAD}')"
        );
        let error = insert_error(&outbox, &sql).await.expect("accepted");
        assert!(
            error.contains("status_matches_finished_at"),
            "{status}: {error}"
        );
    }
    assert_eq!(outbox.stats().await.unwrap().counts.len(), 0);
}

#[tokio::test]
async fn ffrelay_columns_fail_at_intake() {
    let cases = [
        ("status, ", "'in_flight', ", "status \"in_flight\""),
        ("status, ", "'held', ", "status \"held\""),
        ("approved, ", "1, ", "columns that ffrelay sets"),
        ("attempts, ", "3, ", "columns that ffrelay sets"),
        ("lease_owner, ", "'run-1', ", "columns that ffrelay sets"),
        ("reset_hits, ", "5, ", "columns that ffrelay sets"),
    ];
    for (column, value, named) in cases {
        let (_dir, outbox) = open().await;
        let sql = format!(
            "INSERT INTO jobs ({column}kind, payload) VALUES ({value}'conversions', '{PAYLOAD}')"
        );
        let (status, error) = intake_result(&outbox, &sql).await;
        assert_eq!(status, "failed", "{column}{value}");
        let error = error.unwrap_or_default();
        assert!(error.contains(named), "{column}{value}: {error}");
    }
}

#[tokio::test]
async fn blobs_fail_at_intake() {
    let hex: String = PAYLOAD.bytes().map(|byte| format!("{byte:02X}")).collect();
    let cases = [
        format!("INSERT INTO jobs (kind, payload) VALUES ('conversions', X'{hex}')"),
        format!("INSERT INTO jobs (kind, payload) VALUES (X'636f7374', '{PAYLOAD}')"),
        format!(
            "INSERT INTO jobs (kind, payload, not_before) VALUES ('conversions', '{PAYLOAD}', X'31')"
        ),
    ];
    for sql in &cases {
        let (_dir, outbox) = open().await;
        let (status, error) = intake_result(&outbox, sql).await;
        assert_eq!(status, "failed", "{sql}");
        assert!(error.unwrap_or_default().contains("column"), "{sql}");
    }
}

#[tokio::test]
async fn producer_insert_accepts_documented_columns() {
    let (_dir, outbox) = open().await;
    let sql = format!(
        "INSERT INTO jobs (kind, payload, idempotency_key, ordering_key, not_before) \
         VALUES ('conversions', '{PAYLOAD}', 'k1', 7, 1700000000)"
    );
    assert_eq!(insert_error(&outbox, &sql).await, None);
    let claimed = outbox.claim(&claim_options()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ordering_key.as_deref(), Some("7"));
}
