//! Storing new jobs, one request at a time or many requests in one shared transaction.

use sqlx::{Row, SqliteConnection};
use tracing::debug;

use super::{Enqueued, NewJob, Outbox, OutboxError};

/// Jobs between two calls of the progress callback.
const PROGRESS_EVERY: usize = 1000;

/// Rows per multi-row `INSERT`. At 7 parameters a row this stays far below SQLite's limit
/// of 32,766 parameters, and it turns the round trips to the connection thread, which
/// dominate the cost of single-row inserts, into one per 100 jobs.
const ROWS_PER_INSERT: usize = 100;

impl Outbox {
    /// Stores jobs in one transaction, all or nothing, and wakes the workers.
    ///
    /// A job whose idempotency key already exists is not stored again; its entry in the
    /// result carries the existing id with `created: false`.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, OutboxError> {
        self.enqueue_with_progress(jobs, |_| {}).await
    }

    /// Like [`Outbox::enqueue`], calling `progress` with the number of jobs written so far
    /// every 1,000 jobs.
    pub async fn enqueue_with_progress(
        &self,
        jobs: &[NewJob],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Enqueued>, OutboxError> {
        let mut tx = self.write().await?;
        let mut stored = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(PROGRESS_EVERY) {
            let chunk: Vec<&NewJob> = chunk.iter().collect();
            stored.extend(insert_all(&mut tx, &chunk).await?);
            progress(stored.len());
        }
        tx.commit().await?;
        self.wake_workers();
        Ok(stored)
    }

    /// Stores several independent groups of jobs in one transaction, so that concurrent
    /// requests share one commit. Each group is all or nothing on its own: a failing group
    /// is rolled back to its savepoint and reported, and the others are still stored.
    ///
    /// The groups are first stored together without savepoints, which lets their jobs share
    /// multi-row statements. Only when that fails is the transaction rolled back and every
    /// group stored again on a savepoint of its own, to find the failing ones.
    pub async fn enqueue_groups(
        &self,
        groups: &[Vec<NewJob>],
    ) -> Result<Vec<Result<Vec<Enqueued>, OutboxError>>, OutboxError> {
        let results = match self.enqueue_groups_together(groups).await {
            Ok(results) => results,
            Err(err) => {
                debug!(groups = groups.len(), error = %err, "storing the groups together failed; storing each on its own savepoint");
                self.enqueue_groups_one_by_one(groups).await?
            }
        };
        self.wake_workers();
        Ok(results)
    }

    async fn enqueue_groups_together(
        &self,
        groups: &[Vec<NewJob>],
    ) -> Result<Vec<Result<Vec<Enqueued>, OutboxError>>, OutboxError> {
        let jobs: Vec<&NewJob> = groups.iter().flatten().collect();
        let mut tx = self.write().await?;
        let mut stored = insert_all(&mut tx, &jobs).await?.into_iter();
        tx.commit().await?;
        let results = groups
            .iter()
            .map(|group| Ok(stored.by_ref().take(group.len()).collect()))
            .collect();
        Ok(results)
    }

    async fn enqueue_groups_one_by_one(
        &self,
        groups: &[Vec<NewJob>],
    ) -> Result<Vec<Result<Vec<Enqueued>, OutboxError>>, OutboxError> {
        let mut tx = self.write().await?;
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            sqlx::query("SAVEPOINT enqueue_group")
                .execute(&mut *tx)
                .await?;
            let group: Vec<&NewJob> = group.iter().collect();
            match insert_all(&mut tx, &group).await {
                Ok(stored) => results.push(Ok(stored)),
                Err(err) => {
                    sqlx::query("ROLLBACK TO enqueue_group")
                        .execute(&mut *tx)
                        .await?;
                    results.push(Err(err));
                }
            }
            sqlx::query("RELEASE enqueue_group")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(results)
    }
}

/// Inserts jobs in input order. Runs of jobs without an idempotency key, which cannot
/// conflict, go in multi-row statements; a job with a key goes alone, so that an existing
/// key is reported with its id.
async fn insert_all(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
) -> Result<Vec<Enqueued>, OutboxError> {
    let mut stored = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while let Some(first) = rest.first() {
        let unkeyed = rest
            .iter()
            .take_while(|job| job.idempotency_key.is_none())
            .take(ROWS_PER_INSERT)
            .count();
        if unkeyed == 0 {
            stored.push(insert(conn, first).await?);
            rest = &rest[1..];
            continue;
        }
        let (run, tail) = rest.split_at(unkeyed);
        stored.extend(insert_unkeyed(conn, run).await?);
        rest = tail;
    }
    Ok(stored)
}

/// Inserts jobs without idempotency keys with one statement. Sorting the returned ids
/// gives input order, because SQLite inserts `VALUES` rows in order and
/// `AUTOINCREMENT` ids only grow.
async fn insert_unkeyed(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
) -> Result<Vec<Enqueued>, OutboxError> {
    let row = "(?, ?, ?, ?, 1, ?, ?, ?)";
    let rows = vec![row; jobs.len()].join(", ");
    let sql = format!(
        "INSERT INTO jobs (kind, payload, ordering_key, batch_key, checked, next_attempt_at, \
         created_at, updated_at) VALUES {rows} RETURNING id"
    );
    let now = super::now_ms();
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
    for job in jobs {
        query = query
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(&job.ordering_key)
            .bind(&job.batch_key)
            .bind(job.not_before_ms.unwrap_or(0))
            .bind(now)
            .bind(now);
    }
    let mut ids: Vec<i64> = query.fetch_all(&mut *conn).await?;
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|id| Enqueued { id, created: true })
        .collect())
}

async fn insert(conn: &mut SqliteConnection, job: &NewJob) -> Result<Enqueued, OutboxError> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (kind, payload, idempotency_key, ordering_key, batch_key, checked, \
         next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(&job.idempotency_key)
    .bind(&job.ordering_key)
    .bind(&job.batch_key)
    .bind(job.not_before_ms.unwrap_or(0))
    .bind(super::now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok(Enqueued {
            id: row.get(0),
            created: true,
        });
    }

    // The insert was skipped, so the idempotency key exists.
    let existing: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE idempotency_key = ?1")
        .bind(&job.idempotency_key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Enqueued {
        id: existing,
        created: false,
    })
}
