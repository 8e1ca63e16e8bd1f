//! Bearer-token check for the `/v1` routes when `server.ingest_token` is set.
//!
//! The comparison runs in constant time for tokens of equal length, so response timing
//! does not reveal how much of a guess was right. NOTE: a guess of a different length is
//! rejected at once, which reveals the token's length but nothing of its content.
//! Neither the expected nor the offered token is ever logged or put in a response.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Passes the request on when no token is configured or the request carries it, and
/// responds with 401 otherwise.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.ingest_token else {
        return Ok(next.run(request).await);
    };
    match bearer_token(request.headers()) {
        Some(offered) if is_same_token(offered, expected.expose()) => Ok(next.run(request).await),
        Some(_) => Err(unauthorized("invalid bearer token")),
        None => Err(unauthorized(
            "missing bearer token: send the header Authorization: Bearer <server.ingest_token>",
        )),
    }
}

/// Extracts the token of an `Authorization: Bearer` header. The scheme name is
/// case-insensitive, and an empty token counts as missing.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

fn is_same_token(offered: &str, expected: &str) -> bool {
    offered.as_bytes().ct_eq(expected.as_bytes()).into()
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&headers_with("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers_with("Bearer abc")), Some("abc"));
    }

    #[test]
    fn other_schemes_carry_no_token() {
        assert_eq!(bearer_token(&headers_with("Basic abc")), None);
        assert_eq!(bearer_token(&headers_with("Bearer")), None);
        assert_eq!(bearer_token(&headers_with("Bearer  ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(is_same_token("secret-1", "secret-1"));
        assert!(!is_same_token("secret-2", "secret-1"));
        assert!(!is_same_token("secret", "secret-1"));
        assert!(!is_same_token("", "secret-1"));
    }
}
