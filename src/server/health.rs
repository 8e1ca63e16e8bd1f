//! Liveness, readiness and metrics: `GET /healthz`, `GET /readyz` and `GET /metrics`.
//!
//! These routes stay open when `server.ingest_token` is set, because probes and scrapers
//! carry no token, and they reveal neither payloads nor tokens. Rendering `/metrics`
//! first sets the queue gauges from the outbox; the delivery engine sets the others.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::warn;

use super::AppState;
use crate::delivery::Health;
use crate::telemetry::{DATABASE_SIZE, OLDEST_PENDING, QUEUE_DEPTH};

/// Media type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Responds with 200 `ok` while the process serves requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Responds with 200 when the database runs a query and delivery is running, and with
/// 503 and the reason otherwise.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.delivery.health();
    if let Err(err) = state.outbox.ping().await {
        warn!(error = %err, "readiness check failed: database unusable");
        let reason = format!("database error: {err}");
        return not_ready(reason, &health);
    }
    match &health {
        Health::Running => {
            let ready = json!({ "ready": true, "delivery": health });
            (StatusCode::OK, Json(ready)).into_response()
        }
        Health::Paused { reason } => not_ready(format!("delivery paused: {reason}"), &health),
        Health::BreakerOpen { reason } => {
            not_ready(format!("circuit breaker open: {reason}"), &health)
        }
        Health::Stopping => not_ready("shutting down".to_owned(), &health),
    }
}

fn not_ready(reason: String, health: &Health) -> Response {
    let body = json!({ "ready": false, "reason": reason, "delivery": health });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Renders every metric in the Prometheus text format, after refreshing the queue gauges.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Err(err) = set_queue_gauges(&state).await {
        warn!(error = %err, "failed to read queue statistics for /metrics");
    }
    set_file_gauges(&state);
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

/// Sets the job count of every unfinished or failed status and the oldest pending age.
/// Delivered and cancelled jobs are counted by `ffrelay_jobs_delivered_total` instead,
/// because counting them would read the whole table on every scrape.
async fn set_queue_gauges(state: &AppState) -> Result<(), crate::outbox::OutboxError> {
    let depth = state.outbox.queue_depth().await?;
    for (status, count) in &depth.counts {
        metrics::gauge!(QUEUE_DEPTH, "status" => status.as_str()).set(*count as f64);
    }
    let age_ms = depth.oldest_pending_age_ms.unwrap_or(0);
    metrics::gauge!(OLDEST_PENDING).set(age_ms as f64 / 1000.0);
    Ok(())
}

fn set_file_gauges(state: &AppState) {
    let (database, wal) = state.outbox.file_sizes();
    metrics::gauge!(DATABASE_SIZE, "file" => "db").set(database as f64);
    metrics::gauge!(DATABASE_SIZE, "file" => "wal").set(wal as f64);
}
