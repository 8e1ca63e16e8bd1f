//! Access and refresh tokens of the mock: which tokens it has issued, when each expires,
//! and the one refresh token it accepts.
//!
//! Invariants: an access token the mock never issued is unknown, even after it expires an
//! issued token stays known (so `POST /auth/validate` accepts it as bearer), and
//! `set_tokens` drops every earlier token.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Classification of the bearer token in a request's `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bearer {
    /// An issued access token that has not expired.
    Valid,
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token the mock never issued, or one forgotten by `set_tokens`.
    Unknown,
    /// An issued access token past its expiry.
    Expired,
}

/// Reason `POST /auth/validate` rejected a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RefreshError {
    #[error("missing bearer token")]
    MissingBearer,
    #[error("unknown access token")]
    UnknownBearer,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
}

/// A freshly issued access token and its expiry.
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_at: SystemTime,
}

/// The issued access tokens with their expiry, and the accepted refresh token.
pub(crate) struct TokenBook {
    issued: HashMap<String, SystemTime>,
    refresh_token: String,
    ttl: Duration,
    serial: u64,
}

impl TokenBook {
    /// Creates a book where `access` is valid for `ttl` from now.
    pub(crate) fn new(access: &str, refresh: &str, ttl: Duration) -> Self {
        let mut book = TokenBook {
            issued: HashMap::new(),
            refresh_token: String::new(),
            ttl,
            serial: 0,
        };
        book.set_tokens(access, refresh);
        book
    }

    /// Classifies the bearer token in `headers`.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Bearer {
        let Some(token) = bearer_token(headers) else {
            return Bearer::Missing;
        };
        match self.issued.get(token) {
            None => Bearer::Unknown,
            Some(expires) if SystemTime::now() >= *expires => Bearer::Expired,
            Some(_) => Bearer::Valid,
        }
    }

    /// Issues `mock-access-N` when the bearer is a token this book issued (expired or not)
    /// and `refresh_token` is the accepted one. Earlier access tokens stay valid until
    /// they expire.
    pub(crate) fn refresh(
        &mut self,
        headers: &HeaderMap,
        refresh_token: &str,
    ) -> Result<Issued, RefreshError> {
        let token = bearer_token(headers).ok_or(RefreshError::MissingBearer)?;
        if !self.issued.contains_key(token) {
            return Err(RefreshError::UnknownBearer);
        }
        if refresh_token != self.refresh_token {
            return Err(RefreshError::InvalidRefreshToken);
        }
        self.serial += 1;
        let access_token = format!("mock-access-{}", self.serial);
        let expires_at = SystemTime::now() + self.ttl;
        self.issued.insert(access_token.clone(), expires_at);
        Ok(Issued {
            access_token,
            expires_at,
        })
    }

    /// Makes every issued access token expire now.
    pub(crate) fn expire_all(&mut self) {
        let now = SystemTime::now();
        self.issued.values_mut().for_each(|expires| *expires = now);
    }

    /// Replaces the valid pair: `access` becomes the only known access token, valid for the
    /// configured TTL, and `refresh` the only accepted refresh token.
    pub(crate) fn set_tokens(&mut self, access: &str, refresh: &str) {
        self.issued.clear();
        self.issued
            .insert(access.to_owned(), SystemTime::now() + self.ttl);
        self.refresh_token = refresh.to_owned();
    }
}

/// Returns `expires_at` as Unix time in seconds, or in milliseconds when `millis` is set.
pub(crate) fn unix_time(expires_at: SystemTime, millis: bool) -> i64 {
    let since_epoch = expires_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let value = if millis {
        since_epoch.as_millis()
    } else {
        u128::from(since_epoch.as_secs())
    };
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {token}").parse().unwrap();
        headers.insert(AUTHORIZATION, value);
        headers
    }

    #[test]
    fn expired_token_still_refreshes() {
        let mut book = TokenBook::new("a", "r", Duration::from_secs(60));
        book.expire_all();
        assert_eq!(book.check(&with_bearer("a")), Bearer::Expired);

        let issued = book.refresh(&with_bearer("a"), "r").unwrap();
        assert_eq!(issued.access_token, "mock-access-1");
        assert_eq!(book.check(&with_bearer("mock-access-1")), Bearer::Valid);
    }

    #[test]
    fn set_tokens_forgets_old_pair() {
        let mut book = TokenBook::new("a", "r", Duration::from_secs(60));
        book.set_tokens("b", "s");
        assert_eq!(book.check(&with_bearer("a")), Bearer::Unknown);
        assert_eq!(book.check(&HeaderMap::new()), Bearer::Missing);
        let refused = book.refresh(&with_bearer("b"), "r");
        assert_eq!(refused.err(), Some(RefreshError::InvalidRefreshToken));
    }
}
