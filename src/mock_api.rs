//! placeholder
#[derive(Debug, clap::Args)]
pub struct MockApiArgs {}
pub async fn run(_args: MockApiArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
