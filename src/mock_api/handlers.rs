//! The `/v1` request pipeline: record, hang, latency, then either a token refresh or an
//! update (auth, rate limit, injected failure, validation, poison hits, success).
//!
//! Handlers only translate HTTP into calls on the shared state and back. Every `/v1`
//! request, including 404 and 405, is recorded and counted by status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::auth::{Bearer, RefreshError, unix_time};
use super::endpoint::Endpoint;
use super::faults::{Faults, find_poison_hit, lock, roll};
use super::record::RecordedRequest;
use super::validate::{self, Rejection};

/// Status, body and `Retry-After` of one response, kept apart so the recorder can store them.
struct Reply {
    status: StatusCode,
    body: String,
    retry_after: Option<u64>,
}

impl Reply {
    fn empty(status: StatusCode) -> Self {
        Reply {
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    fn json(status: StatusCode, body: &Value) -> Self {
        Reply {
            body: body.to_string(),
            ..Reply::empty(status)
        }
    }

    fn error(status: StatusCode, message: &str) -> Self {
        Reply::json(status, &json!({ "error": message }))
    }

    fn rejected(rejection: &Rejection) -> Self {
        Reply {
            body: rejection.to_body(),
            ..Reply::empty(StatusCode::BAD_REQUEST)
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.body.is_empty() {
            return (self.status, headers).into_response();
        }
        let json = HeaderValue::from_static("application/json");
        headers.insert(CONTENT_TYPE, json);
        (self.status, headers, self.body).into_response()
    }
}

/// Serves every request under `/v1`.
pub(super) async fn serve_v1(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    let request = RecordedRequest {
        at_ms: chrono::Utc::now().timestamp_millis(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        body: recorded_body(&shared, &parsed, &body),
        status: 0,
        response: String::new(),
    };
    let seq = shared.recorder.begin(request);

    let reply = respond(&shared, &method, uri.path(), &headers, parsed).await;

    let status = reply.status.as_u16();
    if !reply.status.is_success() {
        tracing::debug!(%method, path = uri.path(), status, "mock api rejected request");
    }
    shared.recorder.finish(seq, status, &reply.body);
    shared.counters.count_status(status);
    reply.into_response()
}

fn recorded_body(shared: &Shared, parsed: &Result<Value, serde_json::Error>, raw: &[u8]) -> Value {
    if !shared.recorder.record_bodies {
        return Value::Null;
    }
    match parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(raw).into_owned()),
    }
}

async fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    parsed: Result<Value, serde_json::Error>,
) -> Reply {
    let endpoint = match Endpoint::resolve(method, path) {
        Ok(endpoint) => endpoint,
        Err(status) => return Reply::error(status, &format!("no endpoint {method} {path}")),
    };
    let faults = shared.faults.snapshot();
    if roll(faults.hang_rate) {
        return hang(shared).await;
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if endpoint == Endpoint::AuthValidate {
        return refresh(shared, headers, &parsed, &faults);
    }
    update(shared, endpoint, headers, &parsed, &faults)
}

/// Waits until the mock shuts down, then returns 503 so graceful shutdown can finish.
async fn hang(shared: &Shared) -> Reply {
    shared.counters.hung.fetch_add(1, Ordering::Relaxed);
    let mut stopping = shared.shutdown.subscribe();
    // The sender lives in `shared`, so this only returns once shutdown begins.
    let _ = stopping.wait_for(|is_stopping| *is_stopping).await;
    Reply::error(StatusCode::SERVICE_UNAVAILABLE, "mock api shutting down")
}

fn refresh(
    shared: &Shared,
    headers: &HeaderMap,
    parsed: &Result<Value, serde_json::Error>,
    faults: &Faults,
) -> Reply {
    let body = parsed.as_ref().unwrap_or(&Value::Null);
    let Some(refresh_token) = body.get("refresh_token").and_then(Value::as_str) else {
        let value = body.get("refresh_token").unwrap_or(&Value::Null);
        let error = "missing refresh_token: expected a string";
        return Reply::rejected(&Rejection::new("refresh_token", value, error));
    };
    let result = if faults.refuse_refresh {
        Err(RefreshError::InvalidRefreshToken)
    } else {
        lock(&shared.tokens).refresh(headers, refresh_token)
    };
    match result {
        Ok(issued) => {
            shared.counters.refreshes.fetch_add(1, Ordering::Relaxed);
            let expires_at = unix_time(issued.expires_at, shared.expires_at_millis);
            let tokens = json!({ "access_token": issued.access_token, "expires_at": expires_at });
            Reply::json(StatusCode::OK, &json!({ "tokens": tokens }))
        }
        Err(err) => {
            shared
                .counters
                .refused_refreshes
                .fetch_add(1, Ordering::Relaxed);
            Reply::error(StatusCode::UNAUTHORIZED, &err.to_string())
        }
    }
}

fn update(
    shared: &Shared,
    endpoint: Endpoint,
    headers: &HeaderMap,
    parsed: &Result<Value, serde_json::Error>,
    faults: &Faults,
) -> Reply {
    if let Some(reply) = check_bearer(shared, headers, faults) {
        return reply;
    }
    if !shared.faults.admit(faults) {
        shared.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let reply = Reply::error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        return Reply {
            retry_after: faults.retry_after_secs,
            ..reply
        };
    }
    if shared.faults.take_fail_next() || roll(faults.failure_rate) {
        let status = status_or(faults.failure_status, StatusCode::SERVICE_UNAVAILABLE);
        return Reply::error(status, "injected failure");
    }
    let body = match parsed {
        Ok(body) => body,
        Err(err) => return Reply::error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {err}")),
    };
    accept(shared, endpoint, body, faults)
}

fn check_bearer(shared: &Shared, headers: &HeaderMap, faults: &Faults) -> Option<Reply> {
    let bearer = lock(&shared.tokens).check(headers);
    let (status, message) = match bearer {
        Bearer::Valid => return None,
        Bearer::Missing => (StatusCode::UNAUTHORIZED, "missing bearer token"),
        Bearer::Unknown => (StatusCode::UNAUTHORIZED, "unknown access token"),
        Bearer::Expired => {
            let status = status_or(faults.expired_status, StatusCode::UNAUTHORIZED);
            (status, "access token expired")
        }
    };
    Some(Reply::error(status, message))
}

/// Validates `body`, rejects poison hits, counts the items and returns success.
fn accept(shared: &Shared, endpoint: Endpoint, body: &Value, faults: &Faults) -> Reply {
    let checked = match endpoint {
        Endpoint::Conversions => validate::conversions(body),
        Endpoint::CustomEvents => validate::custom_events(body),
        Endpoint::Cost => validate::cost(body),
        Endpoint::ResetValidate | Endpoint::ResetPerform => validate::reset(body),
        Endpoint::AuthValidate => Ok(0),
    };
    let items = match checked {
        Ok(items) => items,
        Err(rejection) => return Reply::rejected(&rejection),
    };
    if let Some((index, hit_id)) = find_poison_hit(body, &faults.poison_hits) {
        let field = format!("hits[{index}].hitID");
        let error = format!("hit {hit_id} rejected by the API");
        return Reply::rejected(&Rejection::new(field, &json!(hit_id), error));
    }

    shared.counters.count_accepted(endpoint, items);
    if endpoint == Endpoint::ResetValidate {
        return Reply::json(StatusCode::OK, &json!({ "value": faults.reset_count }));
    }
    Reply::empty(StatusCode::OK)
}

fn status_or(code: u16, fallback: StatusCode) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(fallback)
}
