//! A mock of the FunnelFlux Pro Reporting API: a real HTTP server for tests, benchmarks,
//! the demo and operators (`ffrelay mock-api`).
//!
//! It serves the update endpoints and `POST /auth/validate` under `/v1`, validates bodies
//! against the mock's assumed field names, injects faults (latency, hangs, failures, rate
//! limits, poison hits, expired tokens), records every `/v1` request and counts accepted
//! items per endpoint. The `/_mock` endpoints change faults and read the record over HTTP.
//! State is shared behind `std::sync::Mutex` and atomics, and no lock is held across an
//! await. The mock never contacts anything itself.

mod auth;
mod cli;
mod control;
mod endpoint;
mod faults;
mod handlers;
mod record;
mod validate;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use cli::{MockApiArgs, run};
pub use faults::Faults;
pub use record::{EndpointCounts, MockStats, RecordedRequest};

use auth::TokenBook;
use faults::{FaultState, lock};
use record::{Counters, Recorder};

/// Largest request body the mock reads, in bytes. Larger bodies get 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Time `shutdown` waits for open requests (such as ones in a latency delay) before it
/// aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of a mock instance.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// The access token valid at start.
    pub access_token: String,
    /// The only refresh token `POST /auth/validate` accepts.
    pub refresh_token: String,
    /// Lifetime of every access token, the start token included.
    pub token_ttl: Duration,
    /// Whether `expires_at` of a refresh is in Unix milliseconds instead of seconds.
    pub expires_at_millis: bool,
    /// Faults injected from the start.
    pub faults: Faults,
    /// Whether the request log keeps bodies. Off, each entry keeps everything else and
    /// `body` is null, which bounds memory for benchmarks with millions of items.
    pub record_bodies: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            access_token: "mock-access-0".to_owned(),
            refresh_token: "mock-refresh".to_owned(),
            token_ttl: Duration::from_secs(72 * 3600),
            expires_at_millis: false,
            faults: Faults::default(),
            record_bodies: true,
        }
    }
}

/// State shared by every handler of one mock instance.
pub(crate) struct Shared {
    faults: FaultState,
    tokens: Mutex<TokenBook>,
    recorder: Recorder,
    counters: Counters,
    expires_at_millis: bool,
    /// Becomes true when shutdown begins. Hanging requests wait for it.
    shutdown: watch::Sender<bool>,
}

/// A running mock server. Dropping it begins shutdown without waiting for it.
pub struct MockApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl MockApi {
    /// Binds `listen` (port 0 picks a free port) and serves in a spawned task.
    pub async fn start(listen: SocketAddr, config: MockConfig) -> std::io::Result<MockApi> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = router(Arc::clone(&shared));

        let mut stopping = shared.shutdown.subscribe();
        let stopped = async move {
            let _ = stopping.wait_for(|is_stopping| *is_stopping).await;
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(stopped);
        let server = tokio::spawn(server.into_future());
        Ok(MockApi {
            addr,
            shared,
            server: Some(server),
        })
    }

    /// Returns the bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the API base URL, such as `http://127.0.0.1:8651/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the faults, refills the rate-limit bucket and resets `fail_next`.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.faults.set(faults);
    }

    /// Returns the faults in effect, with the remaining `fail_next` count.
    pub fn faults(&self) -> Faults {
        self.shared.faults.get()
    }

    /// Returns a copy of the request log.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.entries(0)
    }

    /// Empties the request log. Counters are kept.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Returns the counters.
    pub fn stats(&self) -> MockStats {
        self.shared.counters.snapshot()
    }

    /// Makes every access token issued so far expire now. Refreshing still works.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    /// Makes `access` and `refresh` the only valid tokens; every earlier token becomes
    /// unknown.
    pub fn set_tokens(&self, access: &str, refresh: &str) {
        lock(&self.shared.tokens).set_tokens(access, refresh);
    }

    /// Stops accepting connections, sends 503 to hanging requests and waits up to five
    /// seconds for open requests before aborting the server.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        let Some(mut server) = self.server.take() else {
            return;
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "mock api server failed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "mock api server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "mock api shutdown timed out"
                );
                server.abort();
            }
        }
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Shared {
    fn new(config: MockConfig) -> Self {
        let tokens = TokenBook::new(
            &config.access_token,
            &config.refresh_token,
            config.token_ttl,
        );
        Shared {
            faults: FaultState::new(config.faults),
            tokens: Mutex::new(tokens),
            recorder: Recorder::new(config.record_bodies),
            counters: Counters::new(),
            expires_at_millis: config.expires_at_millis,
            shutdown: watch::Sender::new(false),
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1", any(handlers::serve_v1))
        .route("/v1/{*path}", any(handlers::serve_v1))
        .merge(control::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}
