//! The `ingest` measure: durable HTTP ingest, one update per request, from 64 concurrent
//! clients, against the real daemon.
//!
//! Delivery is held off by a rate limit of one request per 1,000 s: each worker claims at
//! most one batch and then waits on the limiter, so the figure is the ingest path (HTTP,
//! validation, group commit) and not a mix with delivery. The clients run in the same
//! process and share the two cores with the server, which the figure includes.
//!
//! Baseline: the same jobs inserted one row per commit (WAL, `synchronous=FULL`) from 64
//! tasks through one sqlx connection, which is what ingest costs without group commit.

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::body::Bytes;
use reqwest::StatusCode;
use serde_json::json;

use super::report::{Row, Target};
use super::{Scale, raw, setup};
use crate::daemon::Daemon;
use crate::mock_api::Faults;
use crate::outbox::Outbox;

/// Concurrent HTTP clients, and tasks of the raw baseline.
const CLIENTS: usize = 64;

/// Runs the relay and the raw baseline and returns one row.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let relay = relay_rate(scale.ingest_requests).await?;
    let raw = raw_rate(scale.ingest_raw_rows).await?;
    let row = Row::new(
        "ingest",
        "POST /v1/jobs, 1 update each, 64 clients",
        relay,
        "req/s",
    )
    .baseline(raw, "raw 1-row commits, 64 tasks")
    .target(Target::AtLeast(10_000.0));
    Ok(vec![row])
}

async fn relay_rate(requests: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let api = setup::mock(Faults::default()).await?;
    let overrides = [
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0.001"),
        ("FFRELAY__DELIVERY__BURST", "1"),
        ("FFRELAY__DELIVERY__SHUTDOWN_GRACE", "0s"),
    ];
    let settings = setup::settings(&dir.path().join("ingest.db"), &api.base_url(), &overrides)?;
    let daemon = Daemon::start(&settings).await?;
    let url = Arc::new(format!("http://{}/v1/jobs", daemon.addr()));
    let bodies = Arc::new(request_bodies(requests));
    let client = setup::http_client(CLIENTS)?;

    let elapsed = setup::run_concurrently(CLIENTS, requests, move |index| {
        let (client, url, bodies) = (client.clone(), Arc::clone(&url), Arc::clone(&bodies));
        async move { post(&client, &url, bodies[index].clone()).await }
    })
    .await?;

    let stored = daemon.outbox().stats().await?;
    let total: i64 = stored.counts.iter().map(|(_, _, count)| count).sum();
    daemon.shutdown().await;
    api.shutdown().await;
    if total != requests as i64 {
        bail!("expected {requests} stored jobs after ingest, found {total}");
    }
    Ok(requests as f64 / elapsed.as_secs_f64())
}

fn request_bodies(count: usize) -> Vec<Bytes> {
    (0..count as u64)
        .map(|n| {
            let job = json!({"kind": "conversions", "payload": setup::conversion_body(n)});
            Bytes::from(job.to_string())
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, body: Bytes) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .context("POST /v1/jobs failed")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status != StatusCode::ACCEPTED {
        bail!("POST /v1/jobs responded with {status}: {text}");
    }
    Ok(())
}

async fn raw_rate(rows: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let path = dir.path().join("raw.db");
    Outbox::open(&path, std::time::Duration::from_secs(5))
        .await?
        .close()
        .await;
    let pool = raw::writer_pool(&path).await?;
    let jobs = Arc::new(setup::jobs(0, rows as u64, setup::conversion_job)?);

    let task_pool = pool.clone();
    let elapsed = setup::run_concurrently(CLIENTS, rows, move |index| {
        let (pool, jobs) = (task_pool.clone(), Arc::clone(&jobs));
        async move { Ok(raw::insert_one(&pool, &jobs[index]).await?) }
    })
    .await?;
    pool.close().await;
    Ok(rows as f64 / elapsed.as_secs_f64())
}
