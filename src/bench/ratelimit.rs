//! The `ratelimit` measure: fidelity of the client-side rate limit.
//!
//! The relay is set to 50 requests/s with a burst of 1 and drains cost jobs (one request
//! each, enough for the whole span) into a mock that responds with 429 above 50 requests/s with
//! a burst of 50. The achieved rate is taken from the mock's arrival times of the accepted
//! requests: the number of intervals divided by the time from the first to the last. The
//! mock stamps arrivals in whole milliseconds, which bounds the error to about 2 ms over
//! the span.
//!
//! Baseline: the configured rate itself.

use anyhow::{Context, bail};

use super::drain::{self, Update};
use super::report::{Row, Target};
use super::{Scale, setup};
use crate::daemon::Daemon;
use crate::mock_api::{Faults, MockApi};

/// The configured rate of both the relay and the mock, in requests per second.
const RATE: f64 = 50.0;

/// Measures the achieved rate; returns the rate, deviation and 429 rows.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let faults = Faults {
        rate_limit_per_second: Some(RATE),
        rate_limit_burst: 50,
        ..Faults::default()
    };
    let api = setup::mock(faults).await?;
    let jobs = (RATE * scale.ratelimit_span.as_secs_f64()).round() as u64;
    let achieved = achieved_rate(&api, jobs).await?;
    let throttled = api.stats().rate_limited;
    api.shutdown().await;

    let deviation = (achieved - RATE).abs() / RATE * 100.0;
    let metric = format!("{jobs} cost requests at 50/s, burst 1");
    Ok(vec![
        Row::new("ratelimit", metric, achieved, "req/s").baseline(RATE, "configured rate"),
        Row::new(
            "ratelimit",
            "deviation from the configured rate",
            deviation,
            "%",
        )
        .target(Target::AtMost(2.0)),
        Row::new(
            "ratelimit",
            "429 responses from a mock limited to 50/s",
            throttled as f64,
            "",
        )
        .target(Target::AtMost(0.0)),
    ])
}

async fn achieved_rate(api: &MockApi, jobs: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let db = dir.path().join("ratelimit.db");
    drain::fill(&db, jobs, setup::cost_job).await?;
    let rate = RATE.to_string();
    let overrides = [
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", rate.as_str()),
        ("FFRELAY__DELIVERY__BURST", "1"),
    ];
    let settings = setup::settings(&db, &api.base_url(), &overrides)?;
    api.clear_requests();
    let before = Update::Cost.accepted(api);
    let daemon = Daemon::start(&settings).await?;
    drain::wait_for_items(api, Update::Cost, before + jobs).await?;
    daemon.shutdown().await;

    let arrivals: Vec<i64> = api
        .requests()
        .into_iter()
        .filter(|request| (200..300).contains(&request.status))
        .map(|request| request.at_ms)
        .collect();
    let (Some(first), Some(last)) = (arrivals.iter().min(), arrivals.iter().max()) else {
        bail!("the mock recorded no accepted request");
    };
    let span_secs = (last - first) as f64 / 1000.0;
    if arrivals.len() < 2 || span_secs <= 0.0 {
        bail!(
            "too few accepted requests to measure a rate: {}",
            arrivals.len()
        );
    }
    Ok((arrivals.len() - 1) as f64 / span_secs)
}
