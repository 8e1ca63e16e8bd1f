//! The raw SQLite baselines and the bulk fixture for the claim measure.
//!
//! This is the only SQL outside `outbox`. It plays the part of code that writes the
//! `jobs` table directly, so each baseline shows what the bare database costs without
//! ffrelay's logic. Connections use the outbox's durability settings (WAL,
//! `synchronous=FULL`), except the bulk fixture, which turns syncing off because its rows
//! are scaffolding and not a measured figure.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use crate::outbox::{NewJob, now_ms};

const INSERT: &str = "INSERT INTO jobs (kind, payload, idempotency_key, ordering_key, batch_key, \
     checked, next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7)";

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
}

/// Opens a pool of one connection: SQLite has one writer at a time, and a single
/// connection queues the writers instead of making them sleep in the busy handler.
pub async fn writer_pool(path: &Path) -> sqlx::Result<SqlitePool> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path))
        .await
}

/// Opens one connection with the outbox's durability settings.
pub async fn connect(path: &Path) -> sqlx::Result<SqliteConnection> {
    SqliteConnection::connect_with(&options(path)).await
}

/// Inserts one job in its own implicit transaction, so the call returns after a commit.
pub async fn insert_one(pool: &SqlitePool, job: &NewJob) -> sqlx::Result<()> {
    bind(sqlx::query(INSERT), job).execute(pool).await?;
    Ok(())
}

/// Inserts `jobs` in one transaction.
pub async fn insert_batch(conn: &mut SqliteConnection, jobs: &[NewJob]) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    for job in jobs {
        bind(sqlx::query(INSERT), job).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    job: &'q NewJob,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(&job.idempotency_key)
        .bind(&job.ordering_key)
        .bind(&job.batch_key)
        .bind(job.not_before_ms.unwrap_or(0))
        .bind(now_ms())
}

/// Times a plain `SELECT … WHERE status = 'pending' ORDER BY id LIMIT n`, reading the
/// columns a claim returns.
pub async fn select_pending(conn: &mut SqliteConnection, limit: i64) -> sqlx::Result<Duration> {
    let started = Instant::now();
    sqlx::query(
        "SELECT id, kind, payload, attempts, created_at, ordering_key, reset_hits, approved \
         FROM jobs WHERE status = 'pending' ORDER BY id LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(started.elapsed())
}

/// Marks every pending row delivered, as if the relay had sent it.
pub async fn mark_pending_delivered(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'delivered', finished_at = ?1, updated_at = ?1 \
         WHERE status = 'pending'",
    )
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends conversion rows with ids `first..first + count` generated inside SQLite, in
/// transactions of up to 500,000 rows. Rows get `status`, the ordering key the outbox
/// derives for a single hit (`hit:` and the hit ID), and `batch_key`.
pub async fn fill_conversions(
    conn: &mut SqliteConnection,
    first: u64,
    count: u64,
    status: &str,
    batch_key: &str,
) -> sqlx::Result<()> {
    const CHUNK: u64 = 500_000;
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut *conn)
        .await?;
    let end = first + count;
    let mut start = first;
    while start < end {
        let stop = (start + CHUNK).min(end);
        fill_chunk(conn, start, stop, status, batch_key).await?;
        start = stop;
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fill_chunk(
    conn: &mut SqliteConnection,
    start: u64,
    stop: u64,
    status: &str,
    batch_key: &str,
) -> sqlx::Result<()> {
    let now = now_ms();
    let finished = (status == "delivered").then_some(now);
    sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?2) \
         INSERT INTO jobs (kind, payload, ordering_key, batch_key, status, checked, attempts, \
         next_attempt_at, created_at, updated_at, finished_at) \
         SELECT 'conversions', \
         printf('{\"hits\":[{\"hitID\":\"bh%022d\",\"payout\":1.25}]}', n), \
         printf('hit:bh%022d', n), ?3, ?4, 1, 0, 0, ?5, ?5, ?6 FROM seq",
    )
    .bind(start as i64)
    .bind(stop as i64)
    .bind(batch_key)
    .bind(status)
    .bind(now)
    .bind(finished)
    .execute(conn)
    .await?;
    Ok(())
}
