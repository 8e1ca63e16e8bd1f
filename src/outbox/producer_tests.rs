//! Rows that producers insert with SQL. The triggers of `0002_producer_checks.sql` reject
//! the columns that belong to ffrelay and BLOBs in text columns. Such an insert fails at
//! once with a reason, instead of leaving a row that is never sent or cannot be read.

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

/// Runs one producer INSERT and returns the database's error message, if any.
async fn insert_error(outbox: &Outbox, sql: &str) -> Option<String> {
    match sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&outbox.writer)
        .await
    {
        Ok(_) => None,
        Err(err) => Some(err.to_string()),
    }
}

#[tokio::test]
async fn producer_insert_rejects_ffrelay_columns() {
    let (_dir, outbox) = open().await;
    let cases = [
        ("status, ", "'delivered', ", "jobs.status"),
        ("status, ", "'in_flight', ", "jobs.status"),
        ("status, ", "'held', ", "jobs.status"),
        ("approved, ", "1, ", "approved"),
        ("attempts, ", "'x', ", "attempts"),
        ("created_at, ", "'yesterday', ", "created_at"),
        ("lease_owner, ", "'run-1', ", "lease_owner"),
        ("reset_hits, ", "5, ", "reset_hits"),
    ];
    for (column, value, named) in cases {
        let sql = format!(
            "INSERT INTO jobs ({column}kind, payload) VALUES ({value}'conversions', '{PAYLOAD}')"
        );
        let error = insert_error(&outbox, &sql).await;
        let error = error.unwrap_or_else(|| panic!("{column}{value} was accepted"));
        assert!(error.contains(named), "{column}{value}: {error}");
    }
    assert_eq!(outbox.stats().await.unwrap().counts.len(), 0);
}

#[tokio::test]
async fn producer_insert_rejects_blobs() {
    let (_dir, outbox) = open().await;
    let hex: String = PAYLOAD.bytes().map(|byte| format!("{byte:02X}")).collect();
    let cases = [
        format!("INSERT INTO jobs (kind, payload) VALUES ('conversions', X'{hex}')"),
        format!("INSERT INTO jobs (kind, payload) VALUES (X'636f7374', '{PAYLOAD}')"),
        format!(
            "INSERT INTO jobs (kind, payload, not_before) VALUES ('conversions', '{PAYLOAD}', X'31')"
        ),
        format!(
            "INSERT INTO jobs (kind, payload, ordering_key) VALUES ('conversions', '{PAYLOAD}', X'31')"
        ),
    ];
    for sql in &cases {
        let error = insert_error(&outbox, sql).await;
        let error = error.unwrap_or_else(|| panic!("accepted: {sql}"));
        assert!(error.contains("BLOB"), "{sql}: {error}");
    }
}

#[tokio::test]
async fn producer_update_rejects_blob_payload() {
    let (_dir, outbox) = open().await;
    let insert = format!("INSERT INTO jobs (kind, payload) VALUES ('conversions', '{PAYLOAD}')");
    assert_eq!(insert_error(&outbox, &insert).await, None);
    let update = "UPDATE jobs SET payload = X'7b7d' WHERE id = 1";
    let error = insert_error(&outbox, update)
        .await
        .expect("update accepted");
    assert!(error.contains("BLOB"), "{error}");
}

#[tokio::test]
async fn producer_insert_accepts_documented_columns() {
    let (_dir, outbox) = open().await;
    let sql = format!(
        "INSERT INTO jobs (kind, payload, idempotency_key, ordering_key, not_before) \
         VALUES ('conversions', '{PAYLOAD}', 'k1', 7, 1700000000)"
    );
    assert_eq!(insert_error(&outbox, &sql).await, None);
    let options = ClaimOptions {
        run_id: "run".into(),
        lease: Duration::from_secs(60),
        max_jobs: 10,
    };
    let claimed = outbox.claim(&options).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ordering_key.as_deref(), Some("7"));
}
