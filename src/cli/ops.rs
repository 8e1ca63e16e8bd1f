//! Small operational commands: `migrate`, `healthcheck` and `reset validate`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Settings;
use crate::updates::{Kind, validate};

#[derive(Debug, Subcommand)]
pub enum ResetCommand {
    /// Send a reset body to the validate endpoint and print how many hits it would delete.
    Validate {
        /// File with the reset body; standard input when absent or "-".
        file: Option<PathBuf>,
    },
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    let outbox = super::open_outbox(settings).await?;
    outbox.close().await;
    println!("database {} is migrated", settings.database.path.display());
    Ok(ExitCode::SUCCESS)
}

/// Probes `/healthz` on the configured listen address (loopback when it is unspecified).
pub async fn healthcheck(settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut addr = settings.server.listen;
    if addr.ip().is_unspecified() {
        addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .context("failed to build the HTTP client")?;
    let url = format!("http://{addr}/healthz");
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            eprintln!("{url} responded with {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(err) => {
            eprintln!("{url} did not respond: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn reset(command: ResetCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let ResetCommand::Validate { file } = command;
    let mut text = String::new();
    match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("failed to read standard input")?;
        }
    }
    let body: serde_json::Value = crate::updates::parse_strict(text.as_bytes())
        .context("the reset body is not valid JSON")?;
    validate(Kind::Reset, &body)?;

    let outbox = super::open_outbox(settings).await?;
    let client = crate::api::Client::from_settings(&settings.api, outbox.clone()).await?;
    let hits = client.validate_reset(&body).await;
    outbox.close().await;
    let hits = hits.context("reset validation failed")?;
    println!("{hits}");
    Ok(ExitCode::SUCCESS)
}
