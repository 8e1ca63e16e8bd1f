//! The `drain` measure: how fast the daemon empties a full outbox against the mock API.
//!
//! Conversions: single-hit jobs with unique hit IDs, merged into requests of up to 500
//! items. Cost: jobs on distinct segments, one request each. The outbox is filled through
//! `Outbox::enqueue` before the daemon starts, the mock has no limit and keeps no bodies,
//! and the clock runs from `Daemon::start` until the mock has accepted every item.
//!
//! Baseline: a plain reqwest loop that sends the same requests (the same items, 500 per
//! conversions body) to the same mock with as many concurrent tasks as the daemon has
//! workers, with no database at all.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use serde_json::{Value, json};

use super::report::{Row, Target};
use super::{Scale, setup};
use crate::daemon::Daemon;
use crate::mock_api::{Faults, MockApi};
use crate::outbox::{NewJob, Outbox, Status};

/// Items per conversions request, as `delivery.max_batch_items` is set.
const BATCH_ITEMS: usize = 500;

/// Which update a drain run sends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Update {
    Conversions,
    Cost,
}

impl Update {
    fn path(self) -> &'static str {
        match self {
            Update::Conversions => "/reporting/update/conversions/",
            Update::Cost => "/reporting/update/cost/",
        }
    }

    /// Items the mock has accepted on this endpoint so far.
    pub(super) fn accepted(self, api: &MockApi) -> u64 {
        let items = api.stats().accepted_items;
        match self {
            Update::Conversions => items.conversions,
            Update::Cost => items.cost,
        }
    }
}

/// Drains conversions and cost jobs, each beside its baseline; returns two rows.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let api = setup::mock(Faults::default()).await?;
    let conversions = drain(&api, Update::Conversions, scale.drain_conversions).await?;
    let cost = drain(&api, Update::Cost, scale.drain_cost_jobs).await?;
    api.shutdown().await;
    let (count, jobs) = (scale.drain_conversions, scale.drain_cost_jobs);
    Ok(vec![
        Row::new(
            "drain",
            format!("{count} conversions, 500 per request"),
            conversions.0,
            "updates/s",
        )
        .baseline(conversions.1, "reqwest loop, same requests")
        .target(Target::AtLeast(50_000.0)),
        Row::new(
            "drain",
            format!("{jobs} cost jobs, 1 request each"),
            cost.0,
            "jobs/s",
        )
        .baseline(cost.1, "reqwest loop, same requests")
        .target(Target::AtLeast(2_000.0)),
    ])
}

/// Returns (relay items per second, baseline items per second).
async fn drain(api: &MockApi, update: Update, count: u64) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let db = dir.path().join("drain.db");
    let make = match update {
        Update::Conversions => setup::conversion_job,
        Update::Cost => setup::cost_job,
    };
    fill(&db, count, make).await?;
    let settings = setup::settings(&db, &api.base_url(), &[])?;
    let workers = settings.delivery.workers;

    let before = update.accepted(api);
    let started = Instant::now();
    let daemon = Daemon::start(&settings).await?;
    wait_for_items(api, update, before + count).await?;
    // The mock has every item; the clock stops once the outbox has recorded them too.
    let outbox = daemon.outbox().clone();
    let what = format!("{count} jobs recorded as delivered");
    setup::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(5),
        &what,
        || async { Ok(outbox.stats().await?.count(Status::Delivered) >= count as i64) },
    )
    .await?;
    let elapsed = started.elapsed();
    daemon.shutdown().await;

    let baseline = plain_loop(api, update, count, workers).await?;
    Ok((count as f64 / elapsed.as_secs_f64(), baseline))
}

/// Stores `count` jobs made by `make` through `Outbox::enqueue`, 50,000 per transaction.
pub(super) async fn fill(
    db: &Path,
    count: u64,
    make: fn(u64) -> anyhow::Result<NewJob>,
) -> anyhow::Result<()> {
    const CHUNK: u64 = 50_000;
    let outbox = Outbox::open(db, Duration::from_secs(30)).await?;
    let mut first = 0;
    while first < count {
        let size = CHUNK.min(count - first);
        outbox.enqueue(&setup::jobs(first, size, make)?).await?;
        first += size;
    }
    outbox.close().await;
    Ok(())
}

/// Waits until the mock has accepted `total` items on the update's endpoint.
pub(super) async fn wait_for_items(
    api: &MockApi,
    update: Update,
    total: u64,
) -> anyhow::Result<()> {
    let what = format!("the mock to accept {total} items");
    setup::wait_until(
        Duration::from_secs(900),
        Duration::from_millis(10),
        &what,
        || async { Ok(update.accepted(api) >= total) },
    )
    .await
}

/// Sends the same requests with reqwest and returns items per second.
async fn plain_loop(
    api: &MockApi,
    update: Update,
    count: u64,
    tasks: usize,
) -> anyhow::Result<f64> {
    let bodies = Arc::new(request_bodies(update, count));
    let url = Arc::new(format!("{}{}", api.base_url(), update.path()));
    let client = setup::http_client(tasks)?;
    let requests = bodies.len();
    let elapsed = setup::run_concurrently(tasks, requests, move |index| {
        let (client, url, bodies) = (client.clone(), Arc::clone(&url), Arc::clone(&bodies));
        async move { put(&client, &url, bodies[index].clone()).await }
    })
    .await?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

fn request_bodies(update: Update, count: u64) -> Vec<Bytes> {
    match update {
        Update::Cost => (0..count)
            .map(|n| Bytes::from(setup::cost_body(n).to_string()))
            .collect(),
        Update::Conversions => {
            let items: Vec<Value> = (0..count)
                .map(|n| setup::conversion_body(n)["hits"][0].take())
                .collect();
            items
                .chunks(BATCH_ITEMS)
                .map(|hits| Bytes::from(json!({ "hits": hits }).to_string()))
                .collect()
        }
    }
}

async fn put(client: &reqwest::Client, url: &str, body: Bytes) -> anyhow::Result<()> {
    let response = client
        .put(url)
        .bearer_auth(setup::ACCESS_TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("PUT {url} failed"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("PUT {url} responded with {status}: {text}");
    }
    Ok(())
}
