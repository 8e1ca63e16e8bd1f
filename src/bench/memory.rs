//! The `memory` measure: resident memory of `ffrelay serve` in a child process, so that
//! the figures are the daemon's own and not the benchmark's.
//!
//! Idle: `VmRSS` from `/proc/PID/status` once the daemon responds to `/healthz` on an empty
//! outbox and has settled. Draining: `VmHWM` (the peak resident size) after the daemon
//! has drained an outbox filled beforehand with single-hit conversion jobs into the
//! in-process mock API.
//!
//! Baseline: `VmRSS` of an idle `ffrelay mock-api` child, a tokio and axum process from
//! the same binary with no database, which is the floor a daemon of this binary starts
//! from. The draining row uses the daemon's own idle figure as its baseline.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::drain::{self, Update};
use super::report::{Row, Target};
use super::{Scale, setup};
use crate::mock_api::{Faults, MockApi};

/// Measures idle and draining memory; returns two rows.
pub async fn run(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let settle = if scale.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let floor = mock_api_rss(settle).await?;
    let api = setup::mock(Faults::default()).await?;
    let dir = tempfile::tempdir().context("failed to create a temporary folder")?;
    let idle = idle_rss(&api, &dir.path().join("idle.db"), settle).await?;
    let jobs = scale.memory_jobs;
    let peak = draining_peak(&api, &dir.path().join("drain.db"), jobs).await?;
    api.shutdown().await;

    Ok(vec![
        Row::new("memory", "VmRSS of `ffrelay serve`, idle", idle, "MB")
            .baseline(floor, "idle `ffrelay mock-api`")
            .target(Target::Below(40.0)),
        Row::new(
            "memory",
            format!("VmHWM while draining {jobs} jobs"),
            peak,
            "MB",
        )
        .baseline(idle, "the daemon idle")
        .target(Target::Below(100.0)),
    ])
}

async fn mock_api_rss(settle: Duration) -> anyhow::Result<f64> {
    let mut child = spawn(["mock-api", "--listen", "127.0.0.1:0"], &[])?;
    tokio::time::sleep(settle).await;
    let rss = status_mb(&child, "VmRSS");
    stop(&mut child).await;
    rss
}

async fn idle_rss(api: &MockApi, db: &Path, settle: Duration) -> anyhow::Result<f64> {
    let mut child = start_daemon(api, db).await?;
    tokio::time::sleep(settle).await;
    let rss = status_mb(&child, "VmRSS");
    stop(&mut child).await;
    rss
}

async fn draining_peak(api: &MockApi, db: &Path, jobs: u64) -> anyhow::Result<f64> {
    drain::fill(db, jobs, setup::conversion_job).await?;
    let before = Update::Conversions.accepted(api);
    let mut child = start_daemon(api, db).await?;
    let drained = drain::wait_for_items(api, Update::Conversions, before + jobs).await;
    let peak = status_mb(&child, "VmHWM");
    stop(&mut child).await;
    drained?;
    peak
}

/// Starts `ffrelay serve` on `db` against the mock and waits until it responds to `/healthz`.
async fn start_daemon(api: &MockApi, db: &Path) -> anyhow::Result<Child> {
    let listen = free_loopback_addr()?;
    let db = db.to_str().context("database path is not UTF-8")?;
    let base_url = api.base_url();
    let env = [
        ("FFRELAY__DATABASE__PATH", db),
        ("FFRELAY__API__BASE_URL", base_url.as_str()),
        ("FFRELAY__API__ACCESS_TOKEN", setup::ACCESS_TOKEN),
        ("FFRELAY__API__REFRESH_TOKEN", "mock-refresh"),
        ("FFRELAY__SERVER__LISTEN", listen.as_str()),
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0"),
        ("FFRELAY__DELIVERY__MAX_BATCH_ITEMS", "500"),
        ("FFRELAY__LOG__LEVEL", "error"),
    ];
    let mut child = spawn(["serve"], &env)?;
    if let Err(err) = wait_ready(&mut child, &listen).await {
        stop(&mut child).await;
        return Err(err);
    }
    Ok(child)
}

/// Polls `/healthz` every 20 ms for up to 30 s; fails early when the child exits.
async fn wait_ready(child: &mut Child, listen: &str) -> anyhow::Result<()> {
    let url = format!("http://{listen}/healthz");
    let client = setup::http_client(1)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("ffrelay serve exited early with {status}");
        }
        let answer = client.get(&url).send().await;
        if answer.is_ok_and(|response| response.status().is_success()) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("ffrelay serve did not respond to {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs this binary with `args`, without the caller's configuration file and with the
/// given `FFRELAY__` variables replacing any of the caller's.
fn spawn<const N: usize>(args: [&str; N], env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the ffrelay binary")?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .env_remove("FFRELAY_CONFIG")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FFRELAY__")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
        .spawn()
        .context("failed to start a child ffrelay process")
}

/// Binds an ephemeral loopback port and releases it for the child to bind.
fn free_loopback_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("failed to bind a port")?;
    Ok(listener.local_addr()?.to_string())
}

/// Reads a field such as `VmRSS` from the child's `/proc` status, in megabytes of
/// 1,000,000 bytes; the kernel writes it in units of 1,024 bytes.
fn status_mb(child: &Child, field: &str) -> anyhow::Result<f64> {
    let pid = child.id().context("the child process has already exited")?;
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    let kilobytes: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path} has no {field} field"))?;
    Ok(kilobytes * 1024.0 / 1e6)
}

/// Kills the child; its outbox is temporary, so a graceful stop would only cost time.
async fn stop(child: &mut Child) {
    if let Err(err) = child.kill().await {
        tracing::warn!(error = %err, "failed to stop a child ffrelay process");
    }
}
