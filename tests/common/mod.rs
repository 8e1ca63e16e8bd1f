//! Shared helpers for the integration tests: a mock API, an outbox on a temporary file,
//! settings built through the real configuration loader, and polling with a deadline.
//! `process` runs the `ffrelay` binary as a child process.

#![allow(dead_code)]

pub mod process;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ffrelay::config::{Settings, Sources};
use ffrelay::mock_api::{MockApi, MockConfig};
use ffrelay::outbox::Outbox;

/// Settings for a test: fast backoff, no rate limit, the given overrides on top.
pub fn settings(db: &std::path::Path, base_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("FFRELAY__API__BASE_URL", base_url),
        ("FFRELAY__API__ACCESS_TOKEN", "mock-access-0"),
        ("FFRELAY__API__REFRESH_TOKEN", "mock-refresh"),
        ("FFRELAY__API__REQUEST_TIMEOUT", "5s"),
        ("FFRELAY__DATABASE__PATH", db.to_str().unwrap()),
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0"),
        ("FFRELAY__DELIVERY__BACKOFF_INITIAL", "20ms"),
        ("FFRELAY__DELIVERY__BACKOFF_MAX", "200ms"),
        ("FFRELAY__DELIVERY__POLL_INTERVAL", "50ms"),
        ("FFRELAY__DELIVERY__LEASE", "10s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in overrides {
        env.insert(key.to_string(), value.to_string());
    }
    Settings::load(&Sources { file: None, env }).expect("test settings are valid")
}

/// A temporary folder with an outbox file in it.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        TestDb { dir, path }
    }

    pub async fn open(&self) -> Outbox {
        Outbox::open(&self.path, Duration::from_secs(5))
            .await
            .unwrap()
    }
}

pub async fn mock(config: MockConfig) -> MockApi {
    MockApi::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A FunnelFlux-style hit id (lowercase alphanumeric, 24 characters).
pub fn hit_id(n: usize) -> String {
    format!("hit{n:021}")
}

/// Writes one manual-upload line (`HIT_ID, PAYOUT`) per hit to `path`.
pub fn write_lines(path: &std::path::Path, hits: &[String]) {
    let lines: Vec<String> = hits.iter().map(|hit| format!("{hit}, 1.5")).collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

/// Collects the hit IDs of every request the mock accepted with a 2xx status, one entry
/// per delivery, so a hit sent twice appears twice. The mock must record bodies.
pub fn accepted_hits(api: &MockApi) -> Vec<String> {
    let mut hits = Vec::new();
    for request in api.requests() {
        if !(200..300).contains(&request.status) {
            continue;
        }
        let Some(items) = request.body["hits"].as_array() else {
            continue;
        };
        hits.extend(
            items
                .iter()
                .map(|item| item["hitID"].as_str().unwrap().to_owned()),
        );
    }
    hits
}
