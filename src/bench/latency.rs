//! The `latency` measure: enqueue-to-delivered time at a steady 100 jobs/s.
//!
//! One conversion job is posted to `POST /v1/jobs` every 10 ms, each from its own task so
//! that a slow response does not delay the next post. Latencies come from
//! `Outbox::report()`: `finished_at - created_at` of each delivered job, which the outbox
//! stores in whole milliseconds, so figures below 1 ms read as 0 or 1.
//!
//! Baseline: the same pace of single-hit `PUT` requests sent straight to the mock API,
//! timed per request. It is the floor that the loopback network and the mock set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::report::{Row, Target};
use super::{Scale, setup};
use crate::daemon::Daemon;
use crate::mock_api::{Faults, MockApi};
use crate::outbox::Status;

/// Interval between two posts: 100 jobs per second.
const INTERVAL: Duration = Duration::from_millis(10);

/// Measures the relay and the baseline; returns the p50 and p99 rows.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let api = setup::mock(Faults::default()).await?;
    let count = (scale.latency_span.as_millis() / INTERVAL.as_millis()) as u64;
    let relay = relay_latencies(&api, count).await?;
    let direct = direct_latencies(&api, count).await?;
    api.shutdown().await;

    let label = "direct PUT to the mock";
    let metric = |q: &str| format!("{q} enqueue to delivered, 100 jobs/s");
    Ok(vec![
        Row::new("latency", metric("p50"), setup::quantile(&relay, 0.5), "ms")
            .baseline(setup::quantile(&direct, 0.5), label)
            .target(Target::Below(10.0)),
        Row::new(
            "latency",
            metric("p99"),
            setup::quantile(&relay, 0.99),
            "ms",
        )
        .baseline(setup::quantile(&direct, 0.99), label)
        .target(Target::Below(50.0)),
    ])
}

/// Posts `count` jobs at the pace and returns their sorted latencies in milliseconds.
async fn relay_latencies(api: &MockApi, count: u64) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let settings = setup::settings(&dir.path().join("latency.db"), &api.base_url(), &[])?;
    let daemon = Daemon::start(&settings).await?;
    let url = Arc::new(format!("http://{}/v1/jobs", daemon.addr()));
    let client = setup::http_client(16)?;

    paced(count, |n| {
        let (client, url) = (client.clone(), Arc::clone(&url));
        let body = json!({"kind": "conversions", "payload": setup::conversion_body(n)});
        async move {
            let response = client.post(url.as_str()).json(&body).send().await?;
            if !response.status().is_success() {
                bail!("POST /v1/jobs responded with {}", response.status());
            }
            Ok(())
        }
    })
    .await?;

    let outbox = daemon.outbox().clone();
    let what = format!("{count} delivered jobs");
    setup::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(20),
        &what,
        || async { Ok(outbox.stats().await?.count(Status::Delivered) >= count as i64) },
    )
    .await?;
    let reports = outbox.report().await?;
    daemon.shutdown().await;
    let latencies = reports
        .into_iter()
        .flat_map(|report| report.latencies_ms)
        .map(|ms| ms as f64)
        .collect();
    Ok(sorted(latencies))
}

/// Sends `count` single-hit requests straight to the mock at the pace; returns their
/// sorted durations in milliseconds.
async fn direct_latencies(api: &MockApi, count: u64) -> anyhow::Result<Vec<f64>> {
    let url = Arc::new(format!("{}/reporting/update/conversions/", api.base_url()));
    let client = setup::http_client(16)?;
    let durations = paced(count, |n| {
        let (client, url) = (client.clone(), Arc::clone(&url));
        // Hit IDs above the relay's range, so the mock receives new hits.
        let body = setup::conversion_body(n + 1_000_000_000);
        async move {
            let started = Instant::now();
            let response = client
                .put(url.as_str())
                .bearer_auth(setup::ACCESS_TOKEN)
                .json(&body)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("PUT {url} responded with {}", response.status());
            }
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
    })
    .await?;
    Ok(sorted(durations))
}

/// Starts `make(n)` for n in `0..count`, one every `INTERVAL`, and collects the results.
async fn paced<T, F, Fut>(count: u64, make: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tasks = JoinSet::new();
    for n in 0..count {
        ticker.tick().await;
        tasks.spawn(make(n));
    }
    let mut results = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.context("a request task panicked")??);
    }
    Ok(results)
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}
