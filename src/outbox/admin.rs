//! Operator actions and reports: list, show, retry, cancel, approve, stats and retention.

use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Attempt, Job, ListFilter, Outbox, OutboxError, QueueDepth, Stats, Status, now_ms};

const JOB_COLUMNS: &str = "id, kind, status, payload, idempotency_key, ordering_key, attempts, \
    next_attempt_at, created_at, updated_at, finished_at, lease_owner, lease_expires_at, \
    last_error, reset_hits, approved";

/// Attempts read for the recent outcomes in [`Outbox::stats`].
const RECENT_ATTEMPTS: i64 = 100_000;

/// Rows deleted per retention transaction, so that pruning never holds the write lock long.
const PRUNE_CHUNK: i64 = 5000;

impl Outbox {
    /// Lists jobs, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, OutboxError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR status = ?1) \
             AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        )))
        .bind(filter.status.map(Status::as_str))
        .bind(&filter.kind)
        .bind(filter.before_id)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// One job with all its attempts, oldest first.
    pub async fn show(&self, id: i64) -> Result<(Job, Vec<Attempt>), OutboxError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(OutboxError::NotFound(id))?;
        let attempts = sqlx::query(
            "SELECT job_id, request_id, started_at, finished_at, http_status, error, response, \
             latency_ms, outcome FROM attempts WHERE job_id = ?1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        Ok((
            job_from_row(&row),
            attempts.iter().map(attempt_from_row).collect(),
        ))
    }

    /// Requeues a failed or cancelled job to be sent at once, with a fresh attempt count.
    pub async fn retry(&self, id: i64) -> Result<(), OutboxError> {
        self.transition(
            id,
            "retry",
            &[Status::Failed, Status::Cancelled],
            "pending",
            0,
        )
        .await
    }

    /// Requeues every job with the given status (failed or cancelled); returns the count.
    pub async fn retry_all(&self, status: Status) -> Result<u64, OutboxError> {
        if !matches!(status, Status::Failed | Status::Cancelled) {
            return Err(OutboxError::InvalidTransition {
                id: 0,
                status,
                action: "retry",
                hint: "only failed or cancelled jobs can be retried",
            });
        }
        let mut tx = self.write().await?;
        let count = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts = 0, next_attempt_at = 0, \
             finished_at = NULL, updated_at = ?1 WHERE status = ?2",
        )
        .bind(now_ms())
        .bind(status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.wake_workers();
        Ok(count)
    }

    /// Cancels a job that is pending, held or failed.
    pub async fn cancel(&self, id: i64) -> Result<(), OutboxError> {
        let from = [Status::Pending, Status::Held, Status::Failed];
        self.transition(id, "cancel", &from, "cancelled", 0).await
    }

    /// Approves a held reset, which is then performed without a second check.
    pub async fn approve(&self, id: i64) -> Result<(), OutboxError> {
        self.transition(id, "approve", &[Status::Held], "pending", 1)
            .await
    }

    async fn transition(
        &self,
        id: i64,
        action: &'static str,
        from: &[Status],
        to: &str,
        approve: i64,
    ) -> Result<(), OutboxError> {
        let mut tx = self.write().await?;
        let current: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let status = current
            .ok_or(OutboxError::NotFound(id))?
            .parse::<Status>()
            .unwrap_or(Status::Failed);
        if !from.contains(&status) {
            return Err(OutboxError::InvalidTransition {
                id,
                status,
                action,
                hint: hint(action),
            });
        }
        let finished = (to == "cancelled").then(now_ms);
        sqlx::query(
            "UPDATE jobs SET status = ?1, finished_at = ?2, approved = MAX(approved, ?3), \
             attempts = CASE WHEN ?1 = 'pending' AND ?3 = 0 THEN 0 ELSE attempts END, \
             next_attempt_at = CASE WHEN ?1 = 'pending' THEN 0 ELSE next_attempt_at END, \
             updated_at = ?4 WHERE id = ?5",
        )
        .bind(to)
        .bind(finished)
        .bind(approve)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(())
    }

    /// Counts by status and kind, the age of the oldest pending job, and the outcomes of
    /// attempts that finished in the last hour.
    pub async fn stats(&self) -> Result<Stats, OutboxError> {
        let counts = sqlx::query("SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind")
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    lossy_text(row, 1).unwrap_or_default(),
                    row.get(2),
                )
            })
            .collect();
        let now = now_ms();
        let oldest = self.oldest_pending_created_at().await?;
        // Only the newest attempts are read, so that the cost stays bounded on a large table.
        let recent_outcomes = sqlx::query(
            "SELECT outcome, COUNT(*) FROM attempts \
             WHERE id > (SELECT COALESCE(MAX(id), 0) FROM attempts) - ?2 AND finished_at >= ?1 \
             GROUP BY outcome",
        )
        .bind(now - 3_600_000)
        .bind(RECENT_ATTEMPTS)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
        Ok(Stats {
            counts,
            oldest_pending_age_ms: oldest.map(|created| (now - created).max(0)),
            recent_outcomes,
        })
    }

    /// Jobs per unfinished or failed status, for metrics scraped often: it reads only the
    /// status index, never the delivered and cancelled rows, which grow without bound.
    pub async fn queue_depth(&self) -> Result<QueueDepth, OutboxError> {
        let mut depth = QueueDepth::default();
        for status in [
            Status::Pending,
            Status::InFlight,
            Status::Held,
            Status::Failed,
        ] {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = ?1")
                .bind(status.as_str())
                .fetch_one(&self.reader)
                .await?;
            depth.counts.push((status, count));
        }
        let oldest = self.oldest_pending_created_at().await?;
        depth.oldest_pending_age_ms = oldest.map(|created| (now_ms() - created).max(0));
        Ok(depth)
    }

    /// Creation time of the pending job with the lowest id, found through the status index.
    /// Ids grow with creation time, so it is the oldest pending job.
    async fn oldest_pending_created_at(&self) -> Result<Option<i64>, OutboxError> {
        let oldest = sqlx::query_scalar(
            "SELECT created_at FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(oldest)
    }

    /// Deletes delivered and cancelled jobs that finished more than `keep` ago, with their
    /// attempts. Failed jobs are kept until an operator acts. Returns the number deleted.
    pub async fn prune(&self, keep: Duration) -> Result<u64, OutboxError> {
        let cutoff = now_ms().saturating_sub(keep.as_millis() as i64);
        let mut deleted = 0;
        loop {
            let mut tx = self.write().await?;
            let chunk = sqlx::query(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at < ?1 \
                 AND status IN ('delivered', 'cancelled') LIMIT ?2)",
            )
            .bind(cutoff)
            .bind(PRUNE_CHUNK)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            deleted += chunk;
            if chunk < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }
}

fn hint(action: &str) -> &'static str {
    match action {
        "retry" => "only failed or cancelled jobs can be retried",
        "cancel" => "only pending, held or failed jobs can be cancelled",
        _ => "only held resets can be approved",
    }
}

/// Reads a producer-written text column; bytes that are not valid UTF-8 are replaced, so
/// that an operator can still see (and cancel) a row another process wrote badly.
pub(super) fn lossy_text(row: &SqliteRow, index: usize) -> Option<String> {
    match row.try_get::<Option<String>, _>(index) {
        Ok(text) => text,
        Err(_) => {
            let bytes: Option<Vec<u8>> = row.try_get_unchecked(index).ok().flatten();
            bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}

fn job_from_row(row: &SqliteRow) -> Job {
    let payload = lossy_text(row, 3).unwrap_or_default();
    Job {
        id: row.get(0),
        kind: lossy_text(row, 1).unwrap_or_default(),
        status: row.get(2),
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        idempotency_key: lossy_text(row, 4),
        ordering_key: lossy_text(row, 5),
        attempts: row.get(6),
        next_attempt_at: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
        finished_at: row.get(10),
        lease_owner: row.get(11),
        lease_expires_at: row.get(12),
        last_error: row.get(13),
        reset_hits: row.get(14),
        approved: row.get::<i64, _>(15) != 0,
    }
}

fn attempt_from_row(row: &SqliteRow) -> Attempt {
    Attempt {
        job_id: row.get(0),
        request_id: row.get(1),
        started_at: row.get(2),
        finished_at: row.get(3),
        http_status: row.get(4),
        error: row.get(5),
        response: row.get(6),
        latency_ms: row.get(7),
        outcome: row.get(8),
    }
}
