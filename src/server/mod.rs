//! The HTTP server: job ingest, admin, health and metrics endpoints.
//!
//! Routes:
//! - `POST /v1/jobs` stores one job or an array of jobs and responds after the commit.
//! - `GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/retry|cancel|approve` and
//!   `GET /v1/stats` inspect and steer the outbox.
//! - `GET /healthz`, `GET /readyz` and `GET /metrics` serve probes and scrapers.
//!
//! Invariants: handlers only translate HTTP into calls on [`AppState`], and never call
//! FunnelFlux. When an ingest token is set, every `/v1` route requires it, and the health,
//! readiness and metrics routes stay open. Every error answer is a JSON object with an
//! `error` message.

mod admin;
mod auth;
mod error;
mod health;
mod ingest;
mod jobs;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::warn;

use crate::delivery::DeliveryState;
use crate::outbox::Outbox;
use crate::secret::Secret;

pub use admin::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use error::ApiError;
pub use ingest::{Ingest, IngestError};
pub use jobs::MAX_JOBS_PER_REQUEST;

/// The shared state that every handler works on.
pub struct AppState {
    /// The job store behind the admin endpoints and readiness.
    pub outbox: Outbox,
    /// The group-commit writer that stores ingested jobs.
    pub ingest: Ingest,
    /// Health of the delivery engine, for readiness and stats.
    pub delivery: DeliveryState,
    /// Bearer token that `/v1` routes require; `None` leaves them open.
    pub ingest_token: Option<Secret>,
    /// The Prometheus recorder rendered by `/metrics`.
    pub metrics: PrometheusHandle,
}

/// Maximum size of a request body in bytes, as configured.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// Builds the router with every route; request bodies above `max_body_bytes` get 413.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let state = Arc::new(state);
    let v1 = Router::new()
        .route("/v1/jobs", post(jobs::create).get(admin::list))
        .route("/v1/jobs/{id}", get(admin::show))
        .route("/v1/jobs/{id}/retry", post(admin::retry))
        .route("/v1/jobs/{id}/cancel", post(admin::cancel))
        .route("/v1/jobs/{id}/approve", post(admin::approve))
        .route("/v1/stats", get(admin::stats))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    v1.merge(open)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting
/// connections and returns once the requests in progress have their responses.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Small responses go out at once instead of waiting for Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            warn!(error = %err, "failed to set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests;
