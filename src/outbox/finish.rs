//! Recording the outcome of a delivery try: the attempts and each job's next state.
//!
//! Both are written by one statement each over a JSON array (`json_each`), so the cost of a
//! try's transaction does not grow by two statements per job.

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
        let transitions: Vec<TransitionRow<'_>> = outcomes.iter().map(TransitionRow::of).collect();
        let attempts = serde_json::to_string(&attempts).map_err(json_error)?;
        let transitions = serde_json::to_string(&transitions).map_err(json_error)?;

        let mut tx = self.write().await?;
        record_attempts(&mut tx, &attempts).await?;
        let applied = apply_all(&mut tx, run_id, &transitions, now_ms()).await?;
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

/// Inserts the attempts in `attempts` (a JSON array of [`Attempt`]) in array order,
/// skipping those whose job no longer exists.
async fn record_attempts(conn: &mut SqliteConnection, attempts: &str) -> Result<(), OutboxError> {
    sqlx::query(
        "INSERT INTO attempts (job_id, request_id, started_at, finished_at, http_status, error, \
         response, latency_ms, outcome) \
         SELECT a.value ->> 'job_id', a.value ->> 'request_id', a.value ->> 'started_at', \
         a.value ->> 'finished_at', a.value ->> 'http_status', a.value ->> 'error', \
         a.value ->> 'response', a.value ->> 'latency_ms', a.value ->> 'outcome' \
         FROM json_each(?1) AS a \
         WHERE EXISTS (SELECT 1 FROM jobs WHERE id = a.value ->> 'job_id') ORDER BY a.key",
    )
    .bind(attempts)
    .execute(conn)
    .await?;
    Ok(())
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
