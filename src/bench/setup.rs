//! Fixtures shared by the measures: the mock API, relay settings, generated jobs and
//! polling with a deadline.
//!
//! Every server a measure starts listens on 127.0.0.1 with an ephemeral port, and every
//! database lives in a temporary folder that is removed when the measure ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{Settings, Sources};
use crate::mock_api::{Faults, MockApi, MockConfig};
use crate::outbox::NewJob;
use crate::updates::{JobOptions, Kind, prepare};

/// Access token the mock accepts at start.
pub const ACCESS_TOKEN: &str = "mock-access-0";

/// Starts the mock API on an ephemeral loopback port without a body log, so that millions
/// of items do not fill memory.
pub async fn mock(faults: Faults) -> anyhow::Result<MockApi> {
    let config = MockConfig {
        access_token: ACCESS_TOKEN.to_owned(),
        faults,
        record_bodies: false,
        ..MockConfig::default()
    };
    let listen = "127.0.0.1:0".parse().context("loopback address")?;
    MockApi::start(listen, config)
        .await
        .context("failed to start the mock API")
}

/// Relay settings for `db` and the API at `base_url`: an ephemeral loopback listener, no
/// rate limit, batches of 500 items, quiet logs; `overrides` are `FFRELAY__…` pairs on top.
pub fn settings(db: &Path, base_url: &str, overrides: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let path = db.to_str().context("database path is not UTF-8")?;
    let mut env: HashMap<String, String> = [
        ("FFRELAY__API__BASE_URL", base_url),
        ("FFRELAY__API__ACCESS_TOKEN", ACCESS_TOKEN),
        ("FFRELAY__API__REFRESH_TOKEN", "mock-refresh"),
        ("FFRELAY__DATABASE__PATH", path),
        ("FFRELAY__SERVER__LISTEN", "127.0.0.1:0"),
        ("FFRELAY__SERVER__MAX_BODY_BYTES", "67108864"),
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0"),
        ("FFRELAY__DELIVERY__MAX_BATCH_ITEMS", "500"),
        ("FFRELAY__DELIVERY__SHUTDOWN_GRACE", "5s"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    for (key, value) in overrides {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    Ok(Settings::load(&Sources { file: None, env })?)
}

/// Returns a FunnelFlux-style hit ID: 24 lowercase alphanumeric characters, unique per `n`.
pub fn hit_id(n: u64) -> String {
    format!("bh{n:022}")
}

/// Builds a conversions body about one hit.
pub fn conversion_body(n: u64) -> Value {
    json!({"hits": [{"hitID": hit_id(n), "transactionID": format!("tx{n}"), "payout": 1.25}]})
}

/// Builds a cost body for a segment of its own, so that cost jobs are not ordered after each
/// other and may be sent in parallel.
pub fn cost_body(n: u64) -> Value {
    json!({
        "funnelIDs": ["funnel-bench"],
        "trafficSourceIDs": [format!("ts-bench-{n}")],
        "timeStart": "2026-12-03T00:00:00Z",
        "timeEnd": "2026-12-03T00:59:59Z",
        "costSegments": [{"campaignID": "camp-bench", "cost": 1.25}]
    })
}

/// Prepares a conversion job for hit `n`, as `ffrelay enqueue` and ingest do.
pub fn conversion_job(n: u64) -> anyhow::Result<NewJob> {
    Ok(prepare(
        Kind::Conversions,
        &conversion_body(n),
        JobOptions::default(),
    )?)
}

/// Prepares a cost job for segment `n`.
pub fn cost_job(n: u64) -> anyhow::Result<NewJob> {
    Ok(prepare(Kind::Cost, &cost_body(n), JobOptions::default())?)
}

/// Prepares jobs `first..first + count` with `make`.
pub fn jobs(
    first: u64,
    count: u64,
    make: fn(u64) -> anyhow::Result<NewJob>,
) -> anyhow::Result<Vec<NewJob>> {
    (first..first + count).map(make).collect()
}

/// Returns the value at quantile `q` (0 to 1) of sorted values, by the nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let index = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    sorted[index.min(last)]
}

/// Polls `check` every `every` until it returns true; fails naming `what` after `limit`.
pub async fn wait_until<F, Fut>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !check().await? {
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", limit.as_secs());
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// Runs `work(0)` to `work(count - 1)` on `tasks` concurrent tasks, each task taking the
/// next index when it is free, and returns the elapsed time. The first error ends the run.
pub async fn run_concurrently<F, Fut>(
    tasks: usize,
    count: usize,
    work: F,
) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (work, next) = (Arc::clone(&work), Arc::clone(&next));
        set.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(());
                }
                work(index).await?;
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.context("a benchmark task panicked")??;
    }
    Ok(started.elapsed())
}

/// Builds a reqwest client for loopback benchmarks, with a connection pool large enough for
/// `connections` concurrent requests.
pub fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .context("failed to build the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_picks_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&values, 0.5), 3.0);
        assert_eq!(quantile(&values, 1.0), 5.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn generated_jobs_are_valid() {
        let conversion = conversion_job(7).unwrap();
        assert_eq!(conversion.ordering_key, Some(format!("hit:{}", hit_id(7))));
        assert!(conversion.batch_key.is_some());
        assert!(cost_job(7).is_ok());
    }
}
