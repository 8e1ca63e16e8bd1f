//! Control endpoints under `/_mock`, outside the mocked API: read and change the faults,
//! read and clear the request log, read the counters and expire or rotate tokens. These
//! requests are neither recorded nor counted.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::Shared;
use super::faults::{Faults, lock};
use super::record::{MockStats, RecordedRequest};

/// Builds the `/_mock` routes.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_mock/faults", get(get_faults).put(put_faults))
        .route("/_mock/requests", get(get_requests).delete(delete_requests))
        .route("/_mock/stats", get(get_stats))
        .route("/_mock/expire-tokens", post(expire_tokens))
        .route("/_mock/tokens", put(put_tokens))
}

/// Query of `GET /_mock/requests`: the index of the first entry to return.
#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: usize,
}

/// Body of `PUT /_mock/tokens`: the new valid token pair.
#[derive(Deserialize)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.faults.get())
}

async fn put_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Json<Faults> {
    shared.faults.set(faults);
    Json(shared.faults.get())
}

async fn get_requests(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Since>,
) -> Json<Vec<RecordedRequest>> {
    Json(shared.recorder.entries(query.since))
}

async fn delete_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.recorder.clear();
    StatusCode::NO_CONTENT
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Json<MockStats> {
    Json(shared.counters.snapshot())
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.tokens).expire_all();
    StatusCode::NO_CONTENT
}

async fn put_tokens(State(shared): State<Arc<Shared>>, Json(pair): Json<TokenPair>) -> StatusCode {
    lock(&shared.tokens).set_tokens(&pair.access_token, &pair.refresh_token);
    StatusCode::NO_CONTENT
}
