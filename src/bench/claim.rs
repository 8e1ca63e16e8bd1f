//! The `claim` measure: the cost of one claim as the outbox grows.
//!
//! One database grows through the configured sizes. At each size, every row is a
//! delivered conversion except a tail of the 1,000 newest rows, which are pending, as in
//! an outbox that keeps a week of history. The rows are generated inside SQLite in large
//! transactions (see `raw`), because enqueueing ten million jobs would take minutes and
//! is measured elsewhere. Each figure is the median of repeated claims of a full batch
//! (500 jobs), each released again before the next claim.
//!
//! Baseline: the median of a plain `SELECT … WHERE status = 'pending' ORDER BY id LIMIT
//! 500` on the same table. "Flat" is judged by the growth row: the claim time at the
//! largest size divided by the time at the smallest, which must stay at most 2.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::SqliteConnection;

use super::report::{Row, Target, number};
use super::{Scale, raw, setup};
use crate::outbox::{ClaimOptions, Outbox};

/// Pending rows at the newest end of the table.
const PENDING: u64 = 1_000;

/// Jobs per claim, as `delivery.max_batch_items` is set.
const CLAIM_JOBS: usize = 500;

/// Lease owner of the benchmark's claims.
const RUN_ID: &str = "bench-claim";

/// Claim and baseline medians at one size, in milliseconds.
struct Sample {
    size: u64,
    claim_ms: f64,
    select_ms: f64,
}

/// Measures each size; returns a row per size and the growth row.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let db = dir.path().join("claim.db");
    let outbox = Outbox::open(&db, Duration::from_secs(60)).await?;
    let mut conn = raw::connect(&db).await?;
    let mut samples = Vec::new();
    let mut rows_now = 0;
    for &size in &scale.claim_sizes {
        grow(&mut conn, rows_now, size).await?;
        rows_now = size;
        samples.push(sample(&outbox, &mut conn, size, scale.claim_repeats).await?);
    }
    outbox.close().await;
    sqlx::Connection::close(conn).await?;
    rows(&samples)
}

fn rows(samples: &[Sample]) -> anyhow::Result<Vec<Row>> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        bail!("no claim sizes to measure");
    };
    let label = "raw SELECT … LIMIT 500";
    let mut rows: Vec<Row> = samples
        .iter()
        .map(|sample| {
            let metric = format!("claim 500 jobs, {} rows", number(sample.size as f64));
            Row::new("claim", metric, sample.claim_ms, "ms").baseline(sample.select_ms, label)
        })
        .collect();
    let sizes = format!(
        "{} vs {} rows",
        number(last.size as f64),
        number(first.size as f64)
    );
    let growth = Row::new(
        "claim",
        format!("claim time growth, {sizes}"),
        last.claim_ms / first.claim_ms,
        "x",
    )
    .baseline(last.select_ms / first.select_ms, "raw SELECT growth")
    .target(Target::AtMost(2.0));
    rows.push(growth);
    Ok(rows)
}

/// Grows the table from `from` to `to` rows: the old pending tail becomes delivered, new
/// delivered rows fill up to the new tail, and the newest `PENDING` rows are pending.
async fn grow(conn: &mut SqliteConnection, from: u64, to: u64) -> anyhow::Result<()> {
    if to < from + PENDING {
        bail!("claim sizes must grow by at least {PENDING} rows: {from} then {to}");
    }
    let template = setup::conversion_job(0)?;
    let batch_key = template
        .batch_key
        .context("conversion jobs have a batch key")?;
    raw::mark_pending_delivered(conn).await?;
    raw::fill_conversions(conn, from, to - PENDING - from, "delivered", &batch_key).await?;
    raw::fill_conversions(conn, to - PENDING, PENDING, "pending", &batch_key).await?;
    Ok(())
}

async fn sample(
    outbox: &Outbox,
    conn: &mut SqliteConnection,
    size: u64,
    repeats: usize,
) -> anyhow::Result<Sample> {
    let mut claims = Vec::with_capacity(repeats);
    let mut selects = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        claims.push(time_claim(outbox).await?);
        selects.push(raw::select_pending(conn, CLAIM_JOBS as i64).await?);
    }
    Ok(Sample {
        size,
        claim_ms: median_ms(claims),
        select_ms: median_ms(selects),
    })
}

/// Times one claim of a full batch, then releases it.
async fn time_claim(outbox: &Outbox) -> anyhow::Result<Duration> {
    let options = ClaimOptions {
        run_id: RUN_ID.to_owned(),
        lease: Duration::from_secs(60),
        max_jobs: CLAIM_JOBS,
    };
    let started = Instant::now();
    let claimed = outbox.claim(&options).await?;
    let elapsed = started.elapsed();
    if claimed.len() != CLAIM_JOBS {
        bail!(
            "expected a claim of {CLAIM_JOBS} jobs, got {}",
            claimed.len()
        );
    }
    outbox.release_run(RUN_ID).await?;
    Ok(elapsed)
}

fn median_ms(durations: Vec<Duration>) -> f64 {
    let mut millis: Vec<f64> = durations
        .into_iter()
        .map(|duration| duration.as_secs_f64() * 1000.0)
        .collect();
    millis.sort_by(f64::total_cmp);
    setup::quantile(&millis, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixture_rows_are_claimable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("claim.db");
        let outbox = Outbox::open(&db, Duration::from_secs(5)).await.unwrap();
        let mut conn = raw::connect(&db).await.unwrap();
        grow(&mut conn, 0, 2_000).await.unwrap();
        let stats = outbox.stats().await.unwrap();
        assert_eq!(stats.count(crate::outbox::Status::Pending), 1_000);
        assert_eq!(stats.count(crate::outbox::Status::Delivered), 1_000);
        time_claim(&outbox).await.unwrap();
    }

    #[tokio::test]
    async fn fixture_keys_match_prepared_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("claim.db");
        let outbox = Outbox::open(&db, Duration::from_secs(5)).await.unwrap();
        let mut conn = raw::connect(&db).await.unwrap();
        grow(&mut conn, 0, 1_000).await.unwrap();
        let filter = crate::outbox::ListFilter {
            limit: 1,
            ..Default::default()
        };
        let newest = outbox.list(&filter).await.unwrap().remove(0);
        let prepared = setup::conversion_job(999).unwrap();
        assert_eq!(newest.ordering_key, prepared.ordering_key);
    }
}
