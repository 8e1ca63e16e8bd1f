//! The `ffrelay mock-api` command: its options and the loop that serves until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use super::{Faults, MockApi, MockConfig};

/// Options of `ffrelay mock-api`.
#[derive(clap::Args, Debug, Clone)]
pub struct MockApiArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8651")]
    pub listen: SocketAddr,

    /// Access token valid at start.
    #[arg(long, default_value = "mock-access-0")]
    pub access_token: String,

    /// The only refresh token the mock accepts.
    #[arg(long, default_value = "mock-refresh")]
    pub refresh_token: String,

    /// Lifetime of access tokens, such as `72h` or `30s`.
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,

    /// Fraction of update requests (0.0 to 1.0) that get --failure-status.
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,

    /// HTTP status of injected failures.
    #[arg(long, default_value_t = 503)]
    pub failure_status: u16,

    /// Delay before every /v1 response, such as `200ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Update requests per second allowed before responding 429. No limit when absent.
    #[arg(long)]
    pub rate_limit: Option<f64>,

    /// Requests the rate limit lets through at once (token bucket capacity).
    #[arg(long, default_value_t = 1)]
    pub burst: u32,

    /// Value of the Retry-After header on 429 responses, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,

    /// Send 429 responses without a Retry-After header.
    #[arg(long, conflicts_with = "retry_after")]
    pub no_retry_after: bool,

    /// Hit ID whose requests get 400 naming it; repeat for several.
    #[arg(long = "poison-hit", value_name = "HIT_ID")]
    pub poison_hits: Vec<String>,

    /// Value returned by POST /reporting/update/reset/ (hits a reset would delete).
    #[arg(long, default_value_t = 0)]
    pub reset_count: i64,

    /// Fraction of /v1 requests (0.0 to 1.0) held without a response until shutdown.
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,

    /// Reject every token refresh with 401.
    #[arg(long)]
    pub refuse_refresh: bool,

    /// HTTP status for an expired access token (the real API may send 401 or 400).
    #[arg(long, default_value_t = 401)]
    pub expired_status: u16,

    /// Keep request bodies out of the request log, to bound memory in long benchmarks.
    #[arg(long)]
    pub no_record_bodies: bool,
}

impl MockApiArgs {
    /// Builds the mock settings these options describe.
    pub fn to_config(&self) -> MockConfig {
        MockConfig {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            token_ttl: self.token_ttl,
            expires_at_millis: false,
            faults: self.faults(),
            record_bodies: !self.no_record_bodies,
        }
    }

    fn faults(&self) -> Faults {
        Faults {
            failure_rate: self.failure_rate,
            failure_status: self.failure_status,
            latency: self.latency,
            rate_limit_per_second: self.rate_limit,
            rate_limit_burst: self.burst,
            retry_after_secs: (!self.no_retry_after).then_some(self.retry_after),
            poison_hits: self.poison_hits.clone(),
            reset_count: self.reset_count,
            hang_rate: self.hang_rate,
            refuse_refresh: self.refuse_refresh,
            expired_status: self.expired_status,
            fail_next: 0,
        }
    }
}

/// Serves the mock API until SIGINT or SIGTERM, then shuts it down.
pub async fn run(args: MockApiArgs) -> anyhow::Result<()> {
    let mock = MockApi::start(args.listen, args.to_config())
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    tracing::info!(addr = %mock.addr(), base_url = %mock.base_url(), "mock api listening");

    wait_for_signal().await?;

    let stats = mock.stats();
    mock.shutdown().await;
    tracing::info!(
        requests = stats.requests,
        refreshes = stats.refreshes,
        rate_limited = stats.rate_limited,
        "mock api stopped"
    );
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate =
        signal(SignalKind::terminate()).context("failed to install SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to wait for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for ctrl-c")
}
