//! Recording the outcome of a delivery try: the attempts and each job's next state.
//!
//! Attempts are inserted 100 rows per statement with bound values. Deliveries, the common
//! outcome, are applied by one statement over a JSON array of ids; other transitions by
//! one statement over a JSON array of rows (`json_each`). So the cost of a try's
//! transaction does not grow by two statements per job.

use std::collections::HashSet;

use sqlx::SqliteConnection;

use super::{Attempt, Finish, Outbox, OutboxError, Transition, now_ms};

impl Outbox {
    /// Records the outcome of a try of several jobs in one transaction. Attempts are always
    /// recorded; a transition applies only while this run owns the job's lease, and counts
    /// as one attempt of the job unless it is a release. Returns the
    /// ids whose lease was lost, which another worker may now be sending.
    pub async fn finish(&self, run_id: &str, outcomes: &[Finish]) -> Result<Vec<i64>, OutboxError> {
        let attempts: Vec<&Attempt> = outcomes.iter().flat_map(|o| &o.attempts).collect();
        let (delivered, others): (Vec<&Finish>, Vec<&Finish>) = outcomes
            .iter()
            .partition(|o| o.transition == Transition::Delivered && !o.attempts.is_empty());
        let delivered: Vec<i64> = delivered.iter().map(|o| o.job_id).collect();
        let transitions: Vec<TransitionRow<'_>> =
            others.into_iter().map(TransitionRow::of).collect();
        let delivered = serde_json::to_string(&delivered).map_err(json_error)?;
        let transitions = serde_json::to_string(&transitions).map_err(json_error)?;

        let mut tx = self.write().await?;
        for chunk in attempts.chunks(ATTEMPTS_PER_STATEMENT) {
            record_attempts(&mut tx, chunk).await?;
        }
        let now = now_ms();
        let mut applied = apply_delivered(&mut tx, run_id, &delivered, now).await?;
        applied.extend(apply_all(&mut tx, run_id, &transitions, now).await?);
        tx.commit().await?;
        let lost = outcomes
            .iter()
            .map(|outcome| outcome.job_id)
            .filter(|id| !applied.contains(id))
            .collect();
        Ok(lost)
    }
}

/// One job's next state, as a row of the JSON array that `apply_all` reads.
#[derive(serde::Serialize)]
struct TransitionRow<'a> {
    id: i64,
    status: &'static str,
    /// New `next_attempt_at`; `None` keeps the current one.
    next_at: Option<i64>,
    /// New `last_error`; `None` keeps the current one, and delivery clears it.
    error: Option<&'a str>,
    /// Whether `finished_at` is set to now; otherwise it is cleared.
    finished: bool,
    /// Attempts to add: 1 when a request was sent and the job was not released, else 0.
    counted: i64,
}

impl<'a> TransitionRow<'a> {
    fn of(outcome: &'a Finish) -> TransitionRow<'a> {
        let (status, next_at, error, finished) = match &outcome.transition {
            Transition::Delivered => ("delivered", None, None, true),
            Transition::Failed { reason } => ("failed", None, Some(reason.as_str()), true),
            Transition::Retry { at_ms, reason } => {
                ("pending", Some(*at_ms), Some(reason.as_str()), false)
            }
            Transition::Held { reason } => ("held", None, Some(reason.as_str()), false),
            Transition::Release => ("pending", None, None, false),
        };
        // A release (shutdown, auth pause) never uses up an attempt.
        let released = outcome.transition == Transition::Release;
        let counted = i64::from(!outcome.attempts.is_empty() && !released);
        TransitionRow {
            id: outcome.job_id,
            status,
            next_at,
            error,
            finished,
            counted,
        }
    }
}

fn json_error(err: serde_json::Error) -> OutboxError {
    OutboxError::Database(sqlx::Error::Encode(Box::new(err)))
}

/// Attempts written by one INSERT; 9 bound values each stays far below SQLite's limit.
const ATTEMPTS_PER_STATEMENT: usize = 100;

/// Inserts attempts in order, skipping those whose job no longer exists (deleted by hand),
/// so that such a row never makes the whole outcome fail.
async fn record_attempts(
    conn: &mut SqliteConnection,
    attempts: &[&Attempt],
) -> Result<(), OutboxError> {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; attempts.len()].join(", ");
    let sql = format!(
        "INSERT INTO attempts (job_id, request_id, started_at, finished_at, http_status, error, \
         response, latency_ms, outcome) SELECT * FROM (VALUES {values}) AS v \
         WHERE EXISTS (SELECT 1 FROM jobs WHERE id = v.column1)"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for attempt in attempts {
        query = query
            .bind(attempt.job_id)
            .bind(&attempt.request_id)
            .bind(attempt.started_at)
            .bind(attempt.finished_at)
            .bind(attempt.http_status)
            .bind(&attempt.error)
            .bind(&attempt.response)
            .bind(attempt.latency_ms)
            .bind(&attempt.outcome);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Marks the jobs in `ids` (a JSON array) delivered where this run owns them, counting one
/// attempt each; returns the ids it applied to.
async fn apply_delivered(
    conn: &mut SqliteConnection,
    run_id: &str,
    ids: &str,
    now: i64,
) -> Result<HashSet<i64>, OutboxError> {
    if ids == "[]" {
        return Ok(HashSet::new());
    }
    let owned: String = sqlx::query_scalar(
        "SELECT json_group_array(id) FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) \
         AND +status = 'in_flight' AND +lease_owner = ?2",
    )
    .bind(ids)
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET status = 'delivered', last_error = NULL, finished_at = ?2, \
         attempts = attempts + 1, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2 \
         WHERE id IN (SELECT value FROM json_each(?1)) AND +status = 'in_flight' \
         AND +lease_owner = ?3",
    )
    .bind(ids)
    .bind(now)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    let owned: Vec<i64> = serde_json::from_str(&owned).map_err(json_error)?;
    Ok(owned.into_iter().collect())
}

/// Applies the transitions in `transitions` (a JSON array of `TransitionRow`) to the jobs
/// this run owns; returns the ids it applied to.
///
/// The owned ids are read first as one JSON text, inside the same write transaction, so
/// that no row travels on its own to sqlx's connection thread. The unary `+` keeps SQLite
/// from using the status index for the ownership test, so the plan walks the array and
/// looks each job up by id instead of scanning every in-flight job once per element.
async fn apply_all(
    conn: &mut SqliteConnection,
    run_id: &str,
    transitions: &str,
    now: i64,
) -> Result<HashSet<i64>, OutboxError> {
    if transitions == "[]" {
        return Ok(HashSet::new());
    }
    let owned: String = sqlx::query_scalar(
        "SELECT json_group_array(jobs.id) FROM json_each(?1) AS t JOIN jobs \
         ON jobs.id = t.value ->> 'id' WHERE +jobs.status = 'in_flight' AND +jobs.lease_owner = ?2",
    )
    .bind(transitions)
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET status = t.value ->> 'status', \
         next_attempt_at = COALESCE(t.value ->> 'next_at', next_attempt_at), \
         last_error = CASE WHEN t.value ->> 'status' = 'delivered' THEN NULL \
         ELSE COALESCE(t.value ->> 'error', last_error) END, \
         finished_at = CASE WHEN t.value ->> 'finished' THEN ?2 END, \
         attempts = attempts + (t.value ->> 'counted'), lease_owner = NULL, \
         lease_expires_at = NULL, updated_at = ?2 \
         FROM json_each(?1) AS t \
         WHERE jobs.id = t.value ->> 'id' AND +jobs.status = 'in_flight' AND +jobs.lease_owner = ?3",
    )
    .bind(transitions)
    .bind(now)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    let owned: Vec<i64> = serde_json::from_str(&owned).map_err(json_error)?;
    Ok(owned.into_iter().collect())
}
