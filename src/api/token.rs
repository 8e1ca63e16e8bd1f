//! The access token lifecycle: load, refresh ahead of expiry or after a 401, persist, and
//! pick up rotated secret files.
//!
//! Invariants:
//! - Tokens live in [`Secret`] values; nothing here logs or formats one.
//! - Concurrent callers share one refresh: a caller passes the token its request used, and
//!   a refresh is skipped when the current token is already newer.
//! - Operator-supplied tokens (settings or secret files) win over stored ones whenever
//!   they change; otherwise the stored (possibly refreshed) token survives a restart.
//! - ffrelay keeps the refresh token it was given, because creating new ones invalidates
//!   older ones.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::config::ApiSettings;
use crate::outbox::{Outbox, OutboxError, StoredTokens, now_ms};
use crate::secret::Secret;

/// Values of `expires_at` above this are milliseconds, below it seconds (the unit is not
/// documented; 10^11 seconds is the year 5138).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Reason a refresh did not produce a new token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The API rejected the refresh token, or none is configured: an operator must act.
    #[error("token refresh refused: {0}")]
    Refused(String),
    /// The API could not be reached or failed; try again later.
    #[error("token refresh failed: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
struct Tokens {
    access: Secret,
    refresh: Secret,
    expires_at_ms: Option<i64>,
}

/// Current tokens, shared by all requests of a process.
pub struct TokenStore {
    tokens: Mutex<Tokens>,
    refresh_lock: Mutex<()>,
    outbox: Outbox,
    access_file: Option<PathBuf>,
    refresh_file: Option<PathBuf>,
    margin: Duration,
    source_digest: Mutex<String>,
    file_problems: Mutex<FileProblems>,
}

#[derive(Deserialize)]
struct RefreshAnswer {
    tokens: RefreshedTokens,
}

#[derive(Deserialize)]
struct RefreshedTokens {
    access_token: String,
    expires_at: Option<serde_json::Number>,
}

impl TokenStore {
    /// Loads the tokens: the configured ones when they are new, else the stored ones.
    pub async fn load(settings: &ApiSettings, outbox: Outbox) -> Result<TokenStore, OutboxError> {
        let digest = digest(&settings.access_token, &settings.refresh_token);
        let configured = Tokens {
            access: settings.access_token.clone(),
            refresh: settings.refresh_token.clone(),
            expires_at_ms: None,
        };
        let tokens = match outbox.load_tokens().await? {
            Some(stored) if stored.source_digest == digest || settings.access_token.is_empty() => {
                Tokens {
                    access: stored.access_token,
                    refresh: stored.refresh_token,
                    expires_at_ms: stored.expires_at_ms,
                }
            }
            _ => {
                save(&outbox, &configured, &digest).await?;
                configured
            }
        };
        Ok(TokenStore {
            tokens: Mutex::new(tokens),
            refresh_lock: Mutex::new(()),
            outbox,
            access_file: settings.access_token_file.clone(),
            refresh_file: settings.refresh_token_file.clone(),
            margin: settings.token_refresh_margin,
            source_digest: Mutex::new(digest),
            file_problems: Mutex::new(FileProblems::default()),
        })
    }

    /// The access token to send, or `None` when none is configured.
    pub async fn access(&self) -> Option<Secret> {
        let tokens = self.tokens.lock().await;
        (!tokens.access.is_empty()).then(|| tokens.access.clone())
    }

    /// Whether the known expiry of the current token has passed.
    pub async fn is_expired(&self) -> bool {
        let expires = self.tokens.lock().await.expires_at_ms;
        expires.is_some_and(|at| at <= now_ms())
    }

    /// Whether the token expires within the refresh margin.
    pub async fn is_due_for_refresh(&self) -> bool {
        let expires = self.tokens.lock().await.expires_at_ms;
        let margin = self.margin.as_millis() as i64;
        expires.is_some_and(|at| at.saturating_sub(margin) <= now_ms())
    }

    /// Refreshes the token through `POST /auth/validate` unless another caller already
    /// replaced `used` (the token the caller's request carried).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        used: &Secret,
    ) -> Result<(), RefreshError> {
        let _guard = self.refresh_lock.lock().await;
        let current = self.tokens.lock().await.clone();
        if current.access != *used {
            return Ok(());
        }
        if current.refresh.is_empty() {
            return Err(RefreshError::Refused(
                "no refresh token is configured".into(),
            ));
        }
        let (access, expires_at_ms) = request_refresh(http, base_url, &current).await?;
        let updated = Tokens {
            access,
            refresh: current.refresh,
            expires_at_ms,
        };
        let digest = self.source_digest.lock().await.clone();
        if let Err(err) = save(&self.outbox, &updated, &digest).await {
            warn!(error = %err, "failed to store the refreshed token; a restart will refresh again");
        }
        *self.tokens.lock().await = updated;
        info!(expires_at_ms, "access token refreshed");
        Ok(())
    }

    /// Re-reads the secret files; when their content changed, the new tokens replace the
    /// current ones. Returns whether they changed.
    ///
    /// While a configured file is missing, unreadable or empty, the current tokens stay in
    /// use. Each such problem is logged once, when it appears.
    pub async fn reload_files(&self) -> bool {
        if self.access_file.is_none() && self.refresh_file.is_none() {
            return false;
        }
        let access = read_secret(self.access_file.as_ref());
        let refresh = read_secret(self.refresh_file.as_ref());
        let problems: Vec<String> = [&access, &refresh]
            .into_iter()
            .filter_map(|read| read.as_ref().err().cloned())
            .collect();
        self.file_problems.lock().await.report(problems.clone());
        let (Ok(access), Ok(refresh)) = (access, refresh) else {
            return false;
        };
        let current = self.tokens.lock().await.clone();
        let access = access.unwrap_or(current.access.clone());
        let refresh = refresh.unwrap_or(current.refresh.clone());
        let digest = digest(&access, &refresh);
        let mut known = self.source_digest.lock().await;
        if *known == digest {
            return false;
        }
        let updated = Tokens {
            access,
            refresh,
            expires_at_ms: None,
        };
        if let Err(err) = save(&self.outbox, &updated, &digest).await {
            warn!(error = %err, "failed to store tokens read from the secret files");
        }
        *known = digest;
        *self.tokens.lock().await = updated;
        info!("new tokens read from the secret files");
        true
    }
}

async fn request_refresh(
    http: &reqwest::Client,
    base_url: &str,
    current: &Tokens,
) -> Result<(Secret, Option<i64>), RefreshError> {
    let body = serde_json::json!({ "refresh_token": current.refresh.expose() });
    let response = http
        .post(format!("{base_url}/auth/validate"))
        .bearer_auth(current.access.expose())
        .json(&body)
        .send()
        .await
        .map_err(|err| {
            RefreshError::Unavailable(format!("request failed: {}", err.without_url()))
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(RefreshError::Unavailable(format!("status {status}")));
    }
    if !status.is_success() {
        let excerpt: String = text.chars().take(200).collect();
        return Err(RefreshError::Refused(format!("status {status}: {excerpt}")));
    }
    let answer: RefreshAnswer = serde_json::from_str(&text).map_err(|err| {
        RefreshError::Unavailable(format!("unexpected response from /auth/validate: {err}"))
    })?;
    if answer.tokens.access_token.is_empty() {
        return Err(RefreshError::Refused(
            "the response contained an empty access token".into(),
        ));
    }
    let expires_at_ms = answer
        .tokens
        .expires_at
        .and_then(|n| n.as_i64())
        .map(expiry_ms);
    Ok((Secret::new(answer.tokens.access_token), expires_at_ms))
}

/// Converts `expires_at` in seconds or milliseconds to milliseconds.
pub(crate) fn expiry_ms(value: i64) -> i64 {
    if value >= MILLIS_THRESHOLD {
        value
    } else {
        value.saturating_mul(1000)
    }
}

/// Reads a token file: `Ok(None)` when none is configured, or the problem that keeps the
/// current token in use.
fn read_secret(path: Option<&PathBuf>) -> Result<Option<Secret>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim()))),
        Ok(_) => Err(format!("token file {} is empty", path.display())),
        Err(err) => Err(format!("cannot read token file {}: {err}", path.display())),
    }
}

/// The token file problems last logged, so that a problem that lasts is logged once and
/// not at every reload.
#[derive(Debug, Default)]
pub(crate) struct FileProblems {
    logged: Vec<String>,
}

impl FileProblems {
    /// Logs each problem that was not present at the previous reload, and the end of all
    /// problems. Returns the problems it logged as new.
    pub(crate) fn report(&mut self, problems: Vec<String>) -> Vec<String> {
        let new: Vec<String> = problems
            .iter()
            .filter(|problem| !self.logged.contains(problem))
            .cloned()
            .collect();
        for problem in &new {
            warn!(problem = %problem, "token file not usable; keeping the current tokens");
        }
        if problems.is_empty() && !self.logged.is_empty() {
            info!("token files readable again");
        }
        self.logged = problems;
        new
    }
}

fn digest(access: &Secret, refresh: &Secret) -> String {
    let mut hasher = DefaultHasher::new();
    access.expose().hash(&mut hasher);
    refresh.expose().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

async fn save(outbox: &Outbox, tokens: &Tokens, digest: &str) -> Result<(), OutboxError> {
    let stored = StoredTokens {
        access_token: tokens.access.clone(),
        refresh_token: tokens.refresh.clone(),
        expires_at_ms: tokens.expires_at_ms,
        source_digest: digest.to_owned(),
    };
    outbox.save_tokens(&stored).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_problem_is_reported_once_until_it_clears() {
        let mut problems = FileProblems::default();
        let empty = vec!["token file /run/access is empty".to_owned()];
        assert_eq!(problems.report(empty.clone()), empty, "first time");
        assert!(problems.report(empty.clone()).is_empty(), "repeat");
        assert!(problems.report(Vec::new()).is_empty(), "cleared");
        assert_eq!(problems.report(empty.clone()), empty, "back again");
    }

    #[test]
    fn expiry_accepts_seconds_and_milliseconds() {
        assert_eq!(expiry_ms(1_700_000_000), 1_700_000_000_000);
        assert_eq!(expiry_ms(1_700_000_000_000), 1_700_000_000_000);
    }
}
