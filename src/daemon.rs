//! placeholder
pub async fn serve(_settings: crate::config::Settings) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
