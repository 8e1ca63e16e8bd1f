//! Metric names and the process-wide Prometheus recorder.
//!
//! Names follow `ffrelay_<noun>_<unit>`, with `_total` for counters and `_seconds` for
//! durations. Labels have low cardinality: kind, outcome, status class, state; never a
//! job id or a hit id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Jobs stored, by `kind`.
pub const JOBS_ENQUEUED: &str = "ffrelay_jobs_enqueued_total";
/// Jobs delivered, by `kind`.
pub const JOBS_DELIVERED: &str = "ffrelay_jobs_delivered_total";
/// Jobs failed for good, by `kind`.
pub const JOBS_FAILED: &str = "ffrelay_jobs_failed_total";
/// Attempts recorded, by `outcome` and `status_class` (2xx, 4xx, 5xx, transport).
pub const ATTEMPTS: &str = "ffrelay_attempts_total";
/// API request duration, by `kind`.
pub const REQUEST_DURATION: &str = "ffrelay_request_duration_seconds";
/// API requests in flight.
pub const REQUESTS_IN_FLIGHT: &str = "ffrelay_requests_in_flight";
/// Jobs in the outbox, by `status`.
pub const QUEUE_DEPTH: &str = "ffrelay_queue_jobs";
/// Age of the oldest pending job.
pub const OLDEST_PENDING: &str = "ffrelay_oldest_pending_age_seconds";
/// Time each request waited for the rate limiter (a histogram: `_sum` is the total).
pub const RATE_LIMIT_WAIT: &str = "ffrelay_rate_limit_wait_seconds";
/// Circuit breaker state: 0 closed, 1 half open, 2 open.
pub const BREAKER_STATE: &str = "ffrelay_breaker_state";
/// Authentication state: 0 ok, 1 paused.
pub const AUTH_PAUSED: &str = "ffrelay_auth_paused";
/// Token refreshes, by `result` (ok, refused, error).
pub const TOKEN_REFRESHES: &str = "ffrelay_token_refreshes_total";
/// Size of the database file and of its write-ahead log, by `file` (db, wal).
pub const DATABASE_SIZE: &str = "ffrelay_database_size_bytes";
/// Responses with status 429 from the API.
pub const THROTTLED: &str = "ffrelay_api_throttled_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder once and returns its handle for rendering.
/// Later calls return the same handle; if another recorder was installed first, a handle
/// that is not global is returned so that rendering still works.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Publishes every alerting series with its starting value, so that it exists before
/// the first event. Prometheus's `increase()` misses the first event of a counter that
/// appears with the value 1, and `ffrelay_auth_paused == 1` needs a series to compare.
pub fn publish_initial_values(kinds: &[&'static str]) {
    metrics::gauge!(BREAKER_STATE).set(0.0);
    metrics::gauge!(AUTH_PAUSED).set(0.0);
    metrics::counter!(THROTTLED).increment(0);
    for &kind in kinds {
        metrics::counter!(JOBS_FAILED, "kind" => kind).increment(0);
        metrics::counter!(JOBS_DELIVERED, "kind" => kind).increment(0);
    }
}

/// Runs the recorder's periodic upkeep (histogram draining) until the task is dropped.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}

/// Status class label for an attempt: `2xx`, `4xx`, `5xx`, or `transport`.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "transport",
    }
}
