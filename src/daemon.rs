//! `ffrelay serve`: wires the outbox, the API client, the delivery engine and the HTTP
//! server together, and runs the shutdown sequence.
//!
//! Shutdown: the first SIGTERM or SIGINT stops the HTTP server from taking new requests
//! and the engine from claiming; in-flight requests get `delivery.shutdown_grace`; what is
//! left is released to pending; the run is unregistered and the process exits 0. A second
//! signal exits at once with status 130; the next start then recovers this run's jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::api::{Client, TokenStore};
use crate::config::Settings;
use crate::delivery::{DeliveryState, Engine, EngineConfig, Health, ShutdownReport};
use crate::outbox::{Outbox, RunGuard};
use crate::server::{self, AppState, Ingest};
use crate::telemetry;
use crate::updates::Kind;

/// Shortest time the HTTP server gets to answer the requests in progress at shutdown.
const MIN_SERVER_GRACE: Duration = Duration::from_secs(1);

/// A running relay: outbox, delivery engine and HTTP server.
pub struct Daemon {
    outbox: Outbox,
    run: RunGuard,
    engine: Engine,
    state: DeliveryState,
    addr: SocketAddr,
    stop_server: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    upkeep: JoinHandle<()>,
    shutdown_grace: Duration,
}

impl Daemon {
    /// Opens the outbox, binds the listener, and starts delivery and the HTTP server.
    pub async fn start(settings: &Settings) -> anyhow::Result<Daemon> {
        let path = &settings.database.path;
        let outbox = Outbox::open(path, settings.database.busy_timeout)
            .await
            .with_context(|| format!("failed to open the outbox {}", path.display()))?;
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("failed to listen on {}", settings.server.listen))?;
        let addr = listener
            .local_addr()
            .context("failed to read the listen address")?;
        let run = outbox
            .register_run()
            .await
            .context("failed to register this run")?;
        log_startup(settings, run.id());

        // The recorder goes first, so that the values the engine sets at its start are kept.
        let metrics = telemetry::prometheus();
        telemetry::publish_initial_values(&Kind::ALL.map(Kind::as_str));
        let tokens = Arc::new(TokenStore::load(&settings.api, outbox.clone()).await?);
        let client = Client::new(&settings.api, tokens, settings.delivery.max_retry_after)?;
        let state = DeliveryState::default();
        let config = EngineConfig::from_settings(settings);
        let run_id = run.id().to_owned();
        let engine = Engine::start(outbox.clone(), client, config, run_id, state.clone()).await;

        let upkeep = tokio::spawn(telemetry::upkeep(metrics.clone()));
        let app = AppState {
            outbox: outbox.clone(),
            ingest: Ingest::start(outbox.clone()),
            delivery: state.clone(),
            ingest_token: settings.server.ingest_token.clone(),
            metrics,
        };
        let router = server::router(app, settings.server.max_body_bytes);
        let (stop_server, server_stopped) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, router, wait_for(server_stopped)));
        info!(listen = %addr, "http server listening");
        Ok(Daemon {
            outbox,
            run,
            engine,
            state,
            addr,
            stop_server,
            server,
            upkeep,
            shutdown_grace: settings.delivery.shutdown_grace,
        })
    }

    /// The address the HTTP server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The outbox this daemon drains.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The delivery health.
    pub fn health(&self) -> Health {
        self.state.health()
    }

    /// Stops the server and the engine, releases what is left and unregisters the run.
    /// The HTTP server gets the same grace as the workers to answer the requests in
    /// progress, but at least `MIN_SERVER_GRACE`; then its connections are closed.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let deadline = Instant::now() + self.shutdown_grace.max(MIN_SERVER_GRACE);
        let _ = self.stop_server.send(true);
        let report = self.engine.shutdown().await;
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.max(MIN_SERVER_GRACE), &mut self.server).await {
            Ok(Ok(Err(err))) => warn!(error = %err, "http server ended with an error"),
            Ok(Err(err)) => warn!(error = %err, "http server task failed"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => {
                warn!(
                    "http requests still open after the shutdown grace; closing their connections"
                );
                self.server.abort();
            }
        }
        self.upkeep.abort();
        if let Err(err) = self.outbox.unregister_run(self.run.id()).await {
            warn!(error = %err, "failed to unregister this run");
        }
        self.outbox.close().await;
        drop(self.run);
        report
    }
}

/// Runs the daemon until a shutdown signal.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Listening before the start means that no signal is missed, whether it arrives once
    // the server responds but before the start returns, or between the first and the
    // second signal.
    let mut signals = Signals::register()?;
    let daemon = Daemon::start(&settings).await?;
    let signal_name = signals.next().await;
    let started = Instant::now();
    info!(
        signal = signal_name,
        "shutting down: no new claims, waiting for requests in flight"
    );
    tokio::spawn(exit_on_second_signal(signals));
    let report = daemon.shutdown().await;
    info!(
        released_jobs = report.released_jobs,
        aborted_workers = report.aborted_workers,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
    Ok(())
}

fn log_startup(settings: &Settings, run_id: &str) {
    let d = &settings.delivery;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        run_id,
        database = %settings.database.path.display(),
        api = %settings.api.base_url,
        workers = d.workers,
        rate_limit_per_second = d.rate_limit_per_second.unwrap_or(0.0),
        max_batch_items = d.max_batch_items,
        "ffrelay starting"
    );
    if settings.api.access_token.is_empty() {
        warn!("no access token configured; delivery stays paused until one is provided");
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// The SIGTERM and SIGINT listeners of the process, registered once.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?,
        })
    }

    /// Waits for the next signal and returns its name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn exit_on_second_signal(mut signals: Signals) {
    signals.next().await;
    error!("second signal: exiting at once; the next start recovers this run's jobs");
    std::process::exit(130);
}
