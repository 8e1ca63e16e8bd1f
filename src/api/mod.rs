//! Everything that talks to the FunnelFlux Pro API, and the classification of its answers.

pub mod classify;

/// placeholder
pub struct Client;
impl Client {
    /// placeholder
    pub async fn from_settings(
        _: &crate::config::ApiSettings,
        _: crate::outbox::Outbox,
    ) -> anyhow::Result<Client> {
        anyhow::bail!("not built yet")
    }
    /// placeholder
    pub async fn validate_reset(&self, _: &serde_json::Value) -> anyhow::Result<i64> {
        anyhow::bail!("not built yet")
    }
}
