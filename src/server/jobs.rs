//! `POST /v1/jobs`: parses a job object or an array of them, validates every job, and
//! stores them through the group-commit writer.
//!
//! Invariants: nothing is stored unless every job of the body is valid, and a 202 or 200
//! is sent only after the commit. Unknown top-level fields of a job object are rejected,
//! so a misspelt option is not silently ignored. Fields inside `payload` are kept as sent,
//! because the API's item properties are not all documented.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracing::debug;

use super::error::ApiError;
use super::{AppState, BodyLimit};
use crate::outbox::{Enqueued, NewJob};
use crate::telemetry::JOBS_ENQUEUED;
use crate::updates::{JobOptions, Kind, PayloadError, prepare};

/// Maximum number of jobs in one request body.
pub const MAX_JOBS_PER_REQUEST: usize = 10_000;

/// The fields a job object may have.
const JOB_FIELDS: [&str; 5] = [
    "kind",
    "payload",
    "idempotencyKey",
    "orderingKey",
    "notBefore",
];

/// Time limit for receiving a whole request body, from the end of the headers.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum length of a rejected value quoted in an error message, in characters.
const EXCERPT_CHARS: usize = 60;

/// Stores the jobs of the body and responds with 202 and their ids, or with 200 when every
/// job's idempotency key already existed.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(limit): Extension<BodyLimit>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    check_content_type(&headers)?;
    let body = read_body(request, limit).await?;
    let (kinds, jobs): (Vec<Kind>, Vec<NewJob>) = parse_body(&body)?.into_iter().unzip();

    let stored = state.ingest.submit(jobs).await?;
    count_created(&kinds, &stored);
    Ok(answer(&stored))
}

/// Accepts `application/json` and any `+json` media type, with parameters.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let found = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = found.split(';').next().unwrap_or("").trim();
    let media_type = media_type.to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        return Ok(());
    }
    let message = format!("expected content type application/json, got {found:?}");
    Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message))
}

/// Reads the whole body within `BODY_READ_TIMEOUT`. Without the time limit, a client that
/// sends part of a body and stops would hold its connection, and the graceful shutdown that
/// waits for it, for as long as it stays open.
async fn read_body(request: Request, limit: BodyLimit) -> Result<Bytes, ApiError> {
    let read = Bytes::from_request(request, &());
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(rejection)) => Err(body_error(&rejection, limit)),
        Err(_) => {
            let message = format!(
                "request body not received within {} s; send the whole body without pausing",
                BODY_READ_TIMEOUT.as_secs()
            );
            Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, message))
        }
    }
}

fn body_error(rejection: &BytesRejection, limit: BodyLimit) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let message = format!(
            "request body is larger than the limit of {} bytes (server.max_body_bytes)",
            limit.0
        );
        return ApiError::new(status, message);
    }
    ApiError::new(
        status,
        format!("failed to read the request body: {rejection}"),
    )
}

/// Parses a body that is one job object or an array of 1 to 10,000 of them.
fn parse_body(body: &[u8]) -> Result<Vec<(Kind, NewJob)>, ApiError> {
    let value: Value = crate::updates::parse_strict(body).map_err(|err| {
        let message = format!("request body is not valid JSON: {err}");
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })?;
    match value {
        Value::Array(items) => parse_array(items),
        Value::Object(object) => Ok(vec![parse_job(object)?]),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "expected a job object or an array of job objects, got {}",
                excerpt(&other)
            ),
        )),
    }
}

fn parse_array(items: Vec<Value>) -> Result<Vec<(Kind, NewJob)>, ApiError> {
    if items.is_empty() || items.len() > MAX_JOBS_PER_REQUEST {
        let message = format!(
            "expected 1 to {MAX_JOBS_PER_REQUEST} jobs in the array, got {}",
            items.len()
        );
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message));
    }
    let parse_at = |(index, item): (usize, Value)| match item {
        Value::Object(object) => parse_job(object).map_err(|err| err.at_index(index)),
        other => Err(not_a_job(&other).at_index(index)),
    };
    let jobs: Vec<(Kind, NewJob)> = items
        .into_iter()
        .enumerate()
        .map(parse_at)
        .collect::<Result<_, _>>()?;
    check_unique_keys(&jobs)?;
    Ok(jobs)
}

/// Rejects two jobs of one body with the same idempotency key. The outbox would store the
/// first and return its id for the second, so the second job's payload would be lost.
fn check_unique_keys(jobs: &[(Kind, NewJob)]) -> Result<(), ApiError> {
    let mut first_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, (_, job)) in jobs.iter().enumerate() {
        let Some(key) = job.idempotency_key.as_deref() else {
            continue;
        };
        if let Some(first) = first_index.insert(key, index) {
            let message = format!(
                "duplicate idempotencyKey {}: jobs {first} and {index} of the array use it; give each job its own key",
                excerpt(&Value::from(key))
            );
            return Err(ApiError::invalid_field("idempotencyKey", message).at_index(index));
        }
    }
    Ok(())
}

fn not_a_job(value: &Value) -> ApiError {
    let message = format!("expected a job object, got {}", excerpt(value));
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Checks one job object's fields and prepares the job to store.
fn parse_job(mut object: Map<String, Value>) -> Result<(Kind, NewJob), ApiError> {
    reject_unknown_fields(&object)?;
    let kind = parse_kind(object.get("kind"))?;
    let payload = object.remove("payload").ok_or_else(|| missing("payload"))?;
    let options = JobOptions {
        idempotency_key: optional_string(&object, "idempotencyKey")?,
        ordering_key: optional_string(&object, "orderingKey")?,
        not_before: not_before(object.get("notBefore"))?,
    };
    let job = prepare(kind, &payload, options).map_err(payload_error)?;
    Ok((kind, job))
}

fn reject_unknown_fields(object: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(unknown) = object
        .keys()
        .find(|key| !JOB_FIELDS.contains(&key.as_str()))
    else {
        return Ok(());
    };
    let message = format!(
        "unknown field {unknown:?}: a job has kind, payload, idempotencyKey, orderingKey \
         and notBefore, and the update itself belongs in payload"
    );
    Err(ApiError::invalid_field(unknown.as_str(), message))
}

fn parse_kind(value: Option<&Value>) -> Result<Kind, ApiError> {
    let value = value.ok_or_else(|| missing("kind"))?;
    let Some(name) = value.as_str() else {
        let message = format!("expected a kind name string, got {}", excerpt(value));
        return Err(ApiError::invalid_field("kind", message));
    };
    name.parse().map_err(|err: crate::updates::UnknownKind| {
        ApiError::invalid_field("kind", err.to_string())
    })
}

fn optional_string(object: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => {
            let message = format!("expected a string, got {}", excerpt(other));
            Err(ApiError::invalid_field(field, message))
        }
    }
}

/// Takes `notBefore` as RFC 3339 text or as Unix seconds, in a string or a number.
fn not_before(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(seconds)) if seconds.is_i64() => Ok(Some(seconds.to_string())),
        Some(other) => {
            let message = format!(
                "expected an RFC 3339 time or whole Unix seconds, got {}",
                excerpt(other)
            );
            Err(ApiError::invalid_field("notBefore", message))
        }
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid_field(field, format!("missing field {field:?}"))
}

/// Names a payload field by its path from the job object, such as `payload.hits[3]`.
/// The job options that `prepare` checks keep their own names.
fn payload_error(err: PayloadError) -> ApiError {
    let field = match err.field.as_str() {
        "" => "payload".to_owned(),
        option @ ("idempotencyKey" | "orderingKey" | "notBefore") => option.to_owned(),
        inner => format!("payload.{inner}"),
    };
    let message = format!("invalid field {field:?}: {}", err.message);
    ApiError::invalid_field(field, message)
}

/// Formats a value for an error message, cut to `EXCERPT_CHARS` characters.
fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= EXCERPT_CHARS {
        return text;
    }
    let head: String = text.chars().take(EXCERPT_CHARS).collect();
    format!("{head}...")
}

fn count_created(kinds: &[Kind], stored: &[Enqueued]) {
    let mut created: BTreeMap<Kind, u64> = BTreeMap::new();
    for (kind, job) in kinds.iter().zip(stored) {
        if job.created {
            *created.entry(*kind).or_default() += 1;
        }
    }
    for (kind, count) in created {
        metrics::counter!(JOBS_ENQUEUED, "kind" => kind.as_str()).increment(count);
    }
}

/// 202 when at least one job was stored now, 200 when every job already existed.
fn answer(stored: &[Enqueued]) -> Response {
    let ids: Vec<i64> = stored.iter().map(|job| job.id).collect();
    let any_created = stored.iter().any(|job| job.created);
    debug!(jobs = ids.len(), any_created, "stored ingested jobs");

    let status = if any_created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(json!({ "ids": ids }))).into_response()
}
