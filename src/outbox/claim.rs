//! The delivery side of the outbox: intake of rows written by other processes, claims
//! with leases, lease renewal, and the outcome of each try.

use std::time::Duration;

use sqlx::{Row, SqliteConnection};
use tracing::warn;

use super::{Outbox, OutboxError, now_ms};
use crate::updates::check_row;

/// Rows validated per claim; older unchecked rows always go first.
const INTAKE_BATCH: i64 = 1000;

/// Cost jobs claimed together at most. Each is still sent as a request of its own, but
/// they share one claim and one outcome transaction, so the commits per job shrink.
const COST_JOBS_PER_CLAIM: i64 = 16;

/// Ready jobs, in due order, among which a cost claim looks for more cost jobs. The bound
/// keeps the claim's cost flat when few cost jobs sit among many other pending jobs.
const COST_CLAIM_WINDOW: i64 = 64;

/// What to claim, and for whom.
#[derive(Debug, Clone)]
pub struct ClaimOptions {
    /// Lease owner: the id of this process run.
    pub run_id: String,
    pub lease: Duration,
    /// Maximum number of jobs. Only jobs that may share one request are claimed together,
    /// except cost jobs, of which up to 16 are claimed together and sent one by one.
    pub max_jobs: usize,
}

/// A job reserved for one worker until its lease expires.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
    pub ordering_key: Option<String>,
    pub reset_hits: Option<i64>,
    pub approved: bool,
}

/// The next state of a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Delivered,
    /// Failed for good, with the reason kept on the job.
    Failed {
        reason: String,
    },
    /// Back to pending, due at `at_ms`.
    Retry {
        at_ms: i64,
        reason: String,
    },
    /// A reset above its guard, waiting for approval.
    Held {
        reason: String,
    },
    /// Back to pending at once, without counting an attempt (shutdown, pause).
    Release,
}

/// The outcome of one job of a request.
#[derive(Debug, Clone)]
pub struct Finish {
    pub job_id: i64,
    /// Requests this try sent for the job (several when a batch was split); empty when
    /// none was sent.
    pub attempts: Vec<super::Attempt>,
    pub transition: Transition,
}

/// Shared readiness test: due, no older unfinished job with the same ordering key, and for
/// a reset no older unfinished job at all. `?1` is now, `?2` the intake frontier.
const READY: &str = "j.status = 'pending' AND j.checked = 1 AND j.next_attempt_at <= ?1 AND j.id <= ?2 \
    AND (j.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs o \
         WHERE o.ordering_key = j.ordering_key AND o.id < j.id \
         AND o.finished_at IS NULL)) \
    AND (j.kind <> 'reset' OR NOT EXISTS (SELECT 1 FROM jobs o \
         WHERE o.id < j.id AND o.finished_at IS NULL))";

impl Outbox {
    /// Claims up to `max_jobs` ready jobs that may share one request: the first ready job,
    /// plus, when it has a batch key, the next ready jobs with the same key. When the first
    /// ready job is a cost job, the claim takes the cost jobs among the next 64 ready jobs
    /// instead, up to 16.
    pub async fn claim(&self, options: &ClaimOptions) -> Result<Vec<Claimed>, OutboxError> {
        let mut tx = self.write().await?;
        let now = now_ms();
        let frontier = intake(&mut tx, now).await?;
        // Without the hint SQLite picks `jobs_status_id` for `status = 'pending'` and sorts
        // every pending row to find the first, which grows with the queue.
        let first = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT j.id, j.batch_key, j.kind FROM jobs j INDEXED BY jobs_pending_due WHERE {READY} \
             ORDER BY j.next_attempt_at, j.id LIMIT 1"
        )))
        .bind(now)
        .bind(frontier)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(first) = first else {
            tx.commit().await?;
            return Ok(Vec::new());
        };
        let lease_until = now.saturating_add(options.lease.as_millis() as i64);
        let batch_key: Option<String> = first.get(1);
        let kind: String = first.get(2);
        let claimed = match batch_key {
            Some(key) if options.max_jobs > 1 => {
                claim_batch(&mut tx, &key, options, now, frontier, lease_until).await?
            }
            None if options.max_jobs > 1 && kind == "cost" => {
                claim_cost(&mut tx, options, now, frontier, lease_until).await?
            }
            _ => claim_one(&mut tx, first.get(0), &options.run_id, now, lease_until).await?,
        };
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extends the leases of jobs this run still owns.
    pub async fn renew(
        &self,
        run_id: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<u64, OutboxError> {
        let until = now_ms().saturating_add(lease.as_millis() as i64);
        let mut tx = self.write().await?;
        let mut renewed = 0;
        for id in ids {
            renewed += sqlx::query(
                "UPDATE jobs SET lease_expires_at = ?1 \
                 WHERE id = ?2 AND status = 'in_flight' AND lease_owner = ?3",
            )
            .bind(until)
            .bind(id)
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(renewed)
    }

    /// Records the hit count a reset validation returned.
    pub async fn set_reset_hits(
        &self,
        run_id: &str,
        id: i64,
        hits: i64,
    ) -> Result<(), OutboxError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE jobs SET reset_hits = ?1, updated_at = ?2 WHERE id = ?3 AND lease_owner = ?4",
        )
        .bind(hits)
        .bind(now_ms())
        .bind(id)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns every job this run has claimed to pending, to be sent at once by the next run.
    pub async fn release_run(&self, run_id: &str) -> Result<u64, OutboxError> {
        let mut tx = self.write().await?;
        let released = release_where_owner(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(released)
    }

    /// Returns jobs whose lease has expired to pending.
    pub async fn recover_expired(&self) -> Result<u64, OutboxError> {
        let mut tx = self.write().await?;
        let recovered = sqlx::query(
            "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = ?1 WHERE status = 'in_flight' AND (lease_expires_at IS NULL OR lease_expires_at < ?1)",
        )
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(recovered)
    }
}

pub(super) async fn release_where_owner(
    conn: &mut SqliteConnection,
    run_id: &str,
) -> Result<u64, OutboxError> {
    let released = sqlx::query(
        "UPDATE jobs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
         updated_at = ?1 WHERE status = 'in_flight' AND lease_owner = ?2",
    )
    .bind(now_ms())
    .bind(run_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(released)
}

/// Rejects an intake row that sets columns ffrelay owns: a producer may set only kind,
/// payload, idempotency_key, ordering_key and not_before.
fn producer_columns(row: &sqlx::sqlite::SqliteRow) -> Result<(), String> {
    let status = row.try_get::<String, _>(5).unwrap_or_default();
    if status != "pending" {
        return Err(format!(
            "inserted with status {status:?}; leave status out of the INSERT, ffrelay starts \
             every job as pending (retry the job to send it)"
        ));
    }
    if row.try_get::<bool, _>(6).unwrap_or(true) {
        return Err(
            "inserted with columns that ffrelay sets (attempts, approved, lease_owner, \
                    lease_expires_at, last_error, reset_hits or batch_key); leave them out of \
                    the INSERT"
                .to_owned(),
        );
    }
    Ok(())
}

/// Reads the producer's text columns of an intake row; text that is not valid UTF-8 is
/// an error naming the column, never a panic.
#[allow(clippy::type_complexity)]
fn read_text_columns(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<(String, String, Option<String>, Option<String>), String> {
    let invalid =
        |column: &str, err: sqlx::Error| format!("column {column} is not valid UTF-8 text ({err})");
    let kind = row.try_get(1).map_err(|err| invalid("kind", err))?;
    let payload = row.try_get(2).map_err(|err| invalid("payload", err))?;
    let ordering_key = row.try_get(3).map_err(|err| invalid("ordering_key", err))?;
    let not_before = row.try_get(4).map_err(|err| invalid("not_before", err))?;
    Ok((kind, payload, ordering_key, not_before))
}

/// Validates unchecked rows written by other processes, oldest first. An invalid row is
/// marked failed with the reason; it is never deleted. Returns the highest id that may be
/// claimed: every unchecked row above it waits for the next intake.
async fn intake(conn: &mut SqliteConnection, now: i64) -> Result<i64, OutboxError> {
    let rows = sqlx::query(
        "SELECT id, kind, payload, ordering_key, not_before, status, \
         attempts <> 0 OR approved IS NOT 0 OR lease_owner IS NOT NULL \
         OR lease_expires_at IS NOT NULL OR last_error IS NOT NULL OR reset_hits IS NOT NULL \
         OR batch_key IS NOT NULL \
         FROM jobs WHERE checked = 0 ORDER BY id LIMIT ?1",
    )
    .bind(INTAKE_BATCH)
    .fetch_all(&mut *conn)
    .await?;
    let frontier = match rows.last() {
        Some(row) if rows.len() as i64 == INTAKE_BATCH => row.get(0),
        _ => i64::MAX,
    };
    for row in rows {
        let id: i64 = row.get(0);
        let kind = row.try_get::<String, _>(1).unwrap_or_default();
        let checked = producer_columns(&row)
            .and_then(|()| read_text_columns(&row))
            .and_then(|(kind, payload, key, not_before)| {
                check_row(&kind, &payload, key.as_deref(), not_before.as_deref())
            });
        match checked {
            Ok(keys) => {
                sqlx::query(
                    "UPDATE jobs SET checked = 1, ordering_key = ?1, batch_key = ?2, \
                     next_attempt_at = MAX(next_attempt_at, ?3), updated_at = ?4 WHERE id = ?5",
                )
                .bind(keys.ordering_key)
                .bind(keys.batch_key)
                .bind(keys.not_before_ms.unwrap_or(0))
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            }
            Err(reason) => {
                warn!(job_id = id, kind = %kind, error = %reason, "rejected job written to the outbox table");
                sqlx::query(
                    "UPDATE jobs SET checked = 1, status = 'failed', last_error = ?1, \
                     finished_at = ?2, updated_at = ?2 WHERE id = ?3",
                )
                .bind(format!("rejected at intake: {reason}"))
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(frontier)
}

async fn claim_one(
    conn: &mut SqliteConnection,
    id: i64,
    run_id: &str,
    now: i64,
    lease_until: i64,
) -> Result<Vec<Claimed>, OutboxError> {
    mark_in_flight(conn, &format!("[{id}]"), run_id, now, lease_until).await
}

async fn claim_batch(
    conn: &mut SqliteConnection,
    batch_key: &str,
    options: &ClaimOptions,
    now: i64,
    frontier: i64,
    lease_until: i64,
) -> Result<Vec<Claimed>, OutboxError> {
    let ids: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT json_group_array(id) FROM (SELECT j.id FROM jobs j WHERE j.batch_key = ?3 \
         AND {READY} ORDER BY j.next_attempt_at, j.id LIMIT ?4)"
    )))
    .bind(now)
    .bind(frontier)
    .bind(batch_key)
    .bind(options.max_jobs as i64)
    .fetch_one(&mut *conn)
    .await?;
    mark_in_flight(conn, &ids, &options.run_id, now, lease_until).await
}

async fn claim_cost(
    conn: &mut SqliteConnection,
    options: &ClaimOptions,
    now: i64,
    frontier: i64,
    lease_until: i64,
) -> Result<Vec<Claimed>, OutboxError> {
    let limit = COST_JOBS_PER_CLAIM.min(options.max_jobs as i64);
    let ids: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT json_group_array(id) FROM (SELECT id FROM (SELECT j.id, j.kind FROM jobs j \
         INDEXED BY jobs_pending_due WHERE {READY} ORDER BY j.next_attempt_at, j.id LIMIT ?3) \
         WHERE kind = 'cost' LIMIT ?4)"
    )))
    .bind(now)
    .bind(frontier)
    .bind(COST_CLAIM_WINDOW)
    .bind(limit)
    .fetch_one(&mut *conn)
    .await?;
    mark_in_flight(conn, &ids, &options.run_id, now, lease_until).await
}

/// A claimed row as `mark_in_flight` reads it back.
type ClaimedRow = (
    i64,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    i64,
);

/// Marks the jobs in `ids` (a JSON array) in flight for `run_id` and returns them in id
/// order. The rows come back as one JSON text, so that the cost in statements and in
/// messages to sqlx's connection thread does not grow with the number of jobs.
async fn mark_in_flight(
    conn: &mut SqliteConnection,
    ids: &str,
    run_id: &str,
    now: i64,
    lease_until: i64,
) -> Result<Vec<Claimed>, OutboxError> {
    sqlx::query(
        "UPDATE jobs SET status = 'in_flight', lease_owner = ?1, lease_expires_at = ?2, \
         updated_at = ?3 WHERE id IN (SELECT value FROM json_each(?4))",
    )
    .bind(run_id)
    .bind(lease_until)
    .bind(now)
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    let rows: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, kind, payload, attempts, created_at, \
         ordering_key, reset_hits, approved)) FROM (SELECT * FROM jobs \
         WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id)",
    )
    .bind(ids)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<ClaimedRow> = serde_json::from_str(&rows)
        .map_err(|err| OutboxError::Database(sqlx::Error::Decode(Box::new(err))))?;
    Ok(rows.into_iter().map(claimed_from_row).collect())
}

fn claimed_from_row(row: ClaimedRow) -> Claimed {
    let (id, kind, payload, attempts, created_at, ordering_key, reset_hits, approved) = row;
    Claimed {
        id,
        kind,
        payload,
        attempts,
        created_at,
        ordering_key,
        reset_hits,
        approved: approved != 0,
    }
}
