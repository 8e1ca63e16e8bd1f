//! The `enqueue` measure: batched enqueue of single-hit conversions.
//!
//! Two figures: `Outbox::enqueue` with 10,000 prepared jobs per call (one transaction
//! each), and the `ffrelay enqueue conversions --format lines` command run as a child
//! process on a file, which adds process start, parsing and validation.
//!
//! Baseline: the same prepared jobs inserted with plain `INSERT` statements, 10,000 per
//! transaction, on one connection with the same sync settings.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::{Row, Target};
use super::{Scale, raw, setup};
use crate::outbox::Outbox;

/// Jobs per transaction, in the relay and in the baseline.
const BATCH: usize = 10_000;

/// Runs the library path, the command and the raw baseline; returns two rows.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let library = library_rate(&dir.path().join("library.db"), scale.enqueue_jobs).await?;
    let command = command_rate(dir.path(), scale.enqueue_jobs).await?;
    let raw = raw_rate(&dir.path().join("raw.db"), scale.enqueue_jobs).await?;
    let label = "raw INSERTs, 10,000 per transaction";
    let target = Target::AtLeast(100_000.0);
    Ok(vec![
        Row::new(
            "enqueue",
            "Outbox::enqueue, 10,000 per call",
            library,
            "updates/s",
        )
        .baseline(raw, label)
        .target(target),
        Row::new(
            "enqueue",
            "`ffrelay enqueue --format lines`",
            command,
            "updates/s",
        )
        .baseline(raw, label)
        .target(target),
    ])
}

async fn open(path: &Path) -> anyhow::Result<Outbox> {
    Ok(Outbox::open(path, Duration::from_secs(30)).await?)
}

async fn library_rate(path: &Path, count: u64) -> anyhow::Result<f64> {
    let outbox = open(path).await?;
    let jobs = setup::jobs(0, count, setup::conversion_job)?;
    let started = Instant::now();
    for chunk in jobs.chunks(BATCH) {
        outbox.enqueue(chunk).await?;
    }
    let elapsed = started.elapsed();
    outbox.close().await;
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Runs this binary's `enqueue` command on a lines file and times the whole process.
async fn command_rate(dir: &Path, count: u64) -> anyhow::Result<f64> {
    let db = dir.join("command.db");
    open(&db).await?.close().await;
    let file = dir.join("conversions.txt");
    let lines: String = (0..count)
        .map(|n| format!("{}:tx{n}, 1.25\n", setup::hit_id(n)))
        .collect();
    std::fs::write(&file, lines).context("failed to write the conversions file")?;
    let exe = std::env::current_exe().context("cannot find the ffrelay binary")?;

    let started = Instant::now();
    let output = tokio::process::Command::new(exe)
        .args(["enqueue", "conversions", "--format", "lines"])
        .arg(&file)
        .env("FFRELAY__DATABASE__PATH", &db)
        .env("FFRELAY__LOG__LEVEL", "error")
        .env_remove("FFRELAY_CONFIG")
        .output()
        .await
        .context("failed to run `ffrelay enqueue`")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("`ffrelay enqueue` failed: {}", stderr.trim());
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

async fn raw_rate(path: &Path, count: u64) -> anyhow::Result<f64> {
    open(path).await?.close().await;
    let mut conn = raw::connect(path).await?;
    let jobs = setup::jobs(0, count, setup::conversion_job)?;
    let started = Instant::now();
    for chunk in jobs.chunks(BATCH) {
        raw::insert_batch(&mut conn, chunk).await?;
    }
    let elapsed = started.elapsed();
    sqlx::Connection::close(conn).await?;
    Ok(count as f64 / elapsed.as_secs_f64())
}
