//! The API tokens in use, kept so that a restart does not need a new token.

use serde::Serialize;
use sqlx::Row;

use super::{Outbox, OutboxError, now_ms};
use crate::secret::Secret;

/// Tokens as stored, with the digest of the configured tokens they came from.
#[derive(Debug, Clone, Serialize)]
pub struct StoredTokens {
    #[serde(skip)]
    pub access_token: Secret,
    #[serde(skip)]
    pub refresh_token: Secret,
    /// Expiry of the access token, Unix milliseconds, when known.
    pub expires_at_ms: Option<i64>,
    pub source_digest: String,
}

impl Outbox {
    /// The stored tokens, if any.
    pub async fn load_tokens(&self) -> Result<Option<StoredTokens>, OutboxError> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, expires_at, source_digest FROM api_tokens WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| StoredTokens {
            access_token: Secret::new(row.get::<String, _>(0)),
            refresh_token: Secret::new(row.get::<String, _>(1)),
            expires_at_ms: row.get(2),
            source_digest: row.get(3),
        }))
    }

    /// Replaces the stored tokens.
    pub async fn save_tokens(&self, tokens: &StoredTokens) -> Result<(), OutboxError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, access_token, refresh_token, expires_at, source_digest, \
             updated_at) VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             expires_at = excluded.expires_at, source_digest = excluded.source_digest, \
             updated_at = excluded.updated_at",
        )
        .bind(tokens.access_token.expose())
        .bind(tokens.refresh_token.expose())
        .bind(tokens.expires_at_ms)
        .bind(&tokens.source_digest)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
