//! Admin endpoints: list and show jobs, steer them (retry, cancel, approve), and report
//! queue statistics. Each handler translates one HTTP request into one outbox call.
//!
//! Responses use the same JSON shapes as the `--json` output of the `ffrelay jobs` and
//! `ffrelay stats` commands.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::outbox::{ListFilter, Status};
use crate::updates::Kind;

/// Jobs per page of `GET /v1/jobs` when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// Maximum `limit` of `GET /v1/jobs`.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The query parameters `GET /v1/jobs` takes.
const LIST_PARAMETERS: [&str; 4] = ["status", "kind", "limit", "before"];

/// Lists jobs newest first. `next` is the `before` value of the following page, or null
/// on the last page.
pub async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(parameters) = query
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid query: {err}")))?;
    let mut filter = list_filter(&parameters)?;
    let limit = filter.limit as usize;

    // Fetching one extra row shows whether another page follows.
    filter.limit += 1;
    let mut jobs = state.outbox.list(&filter).await?;
    let next = (jobs.len() > limit).then(|| jobs[limit - 1].id);
    jobs.truncate(limit);
    Ok(Json(json!({ "jobs": jobs, "next": next })))
}

/// Shows one job with its attempts, oldest first.
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (job, attempts) = state.outbox.show(parse_id(&id)?).await?;
    Ok(Json(json!({ "job": job, "attempts": attempts })))
}

/// Requeues a failed or cancelled job.
pub async fn retry(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    state.outbox.retry(id).await?;
    Ok(Json(json!({ "id": id, "status": Status::Pending })))
}

/// Cancels a pending, held or failed job.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    state.outbox.cancel(id).await?;
    Ok(Json(json!({ "id": id, "status": Status::Cancelled })))
}

/// Approves a held reset.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    state.outbox.approve(id).await?;
    let approved = json!({ "id": id, "status": Status::Pending, "approved": true });
    Ok(Json(approved))
}

/// Reports the outbox counts, the delivery health of this process, and the registered
/// runs.
pub async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let stats = state.outbox.stats().await?;
    let runs = state.outbox.run_states().await?;
    let delivery = state.delivery.health();
    Ok(Json(
        json!({ "stats": stats, "delivery": delivery, "runs": runs }),
    ))
}

/// Builds the list filter, rejecting unknown parameters and invalid values by name.
fn list_filter(parameters: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    if let Some(unknown) = parameters
        .keys()
        .find(|name| !LIST_PARAMETERS.contains(&name.as_str()))
    {
        let message =
            format!("unknown query parameter {unknown:?}: expected status, kind, limit or before");
        return Err(ApiError::bad_parameter(unknown, message));
    }
    // An empty value, as in `?status=&kind=` from a form or a template, means the filter
    // is not set.
    let text = |name: &str| {
        parameters
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    };
    Ok(ListFilter {
        status: text("status").map(parse_status).transpose()?,
        kind: text("kind").map(parse_kind).transpose()?,
        limit: text("limit").map_or(Ok(DEFAULT_LIST_LIMIT), parse_limit)?,
        before_id: text("before")
            .map(|before| parse_positive("before", before))
            .transpose()?,
    })
}

fn parse_status(text: &str) -> Result<Status, ApiError> {
    text.parse().map_err(|err: crate::outbox::UnknownStatus| {
        ApiError::bad_parameter("status", err.to_string())
    })
}

fn parse_kind(text: &str) -> Result<String, ApiError> {
    let kind: Kind = text.parse().map_err(|err: crate::updates::UnknownKind| {
        ApiError::bad_parameter("kind", err.to_string())
    })?;
    Ok(kind.as_str().to_owned())
}

fn parse_limit(text: &str) -> Result<u32, ApiError> {
    match text.parse::<u32>() {
        Ok(limit @ 1..=MAX_LIST_LIMIT) => Ok(limit),
        _ => {
            let message = format!("expected limit from 1 to {MAX_LIST_LIMIT}, got {text:?}");
            Err(ApiError::bad_parameter("limit", message))
        }
    }
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    parse_positive("id", text)
}

/// Parses a job id, which is a positive integer. `field` names the parameter at fault.
fn parse_positive(field: &str, text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => {
            let message = format!("expected {field} to be a positive job id, got {text:?}");
            Err(ApiError::bad_parameter(field, message))
        }
    }
}
