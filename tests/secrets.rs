//! Secrets never reach the logs, even at TRACE level, nor `ffrelay config` or `/metrics`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use ffrelay::mock_api::MockConfig;

use common::{TestDb, mock, wait_until};

const ACCESS: &str = "mock-access-0";
const REFRESH: &str = "mock-refresh";
const INGEST: &str = "ingest-secret-7f3a";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ffrelay(db: &std::path::Path, base_url: &str, listen: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ffrelay"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FFRELAY__API__BASE_URL", base_url)
        .env("FFRELAY__API__ACCESS_TOKEN", ACCESS)
        .env("FFRELAY__API__REFRESH_TOKEN", REFRESH)
        .env("FFRELAY__SERVER__INGEST_TOKEN", INGEST)
        .env("FFRELAY__SERVER__LISTEN", listen)
        .env("FFRELAY__DATABASE__PATH", db)
        .env("FFRELAY__DELIVERY__POLL_INTERVAL", "50ms")
        .env("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0");
    command
}

fn assert_no_secret(text: &str, place: &str) {
    // mock-access-1 is the token the refresh returned.
    for secret in [ACCESS, REFRESH, INGEST, "mock-access-1"] {
        assert!(
            !text.contains(secret),
            "{place} contains the secret {secret:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_config_and_metrics_hold_no_secret() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");

    let config = ffrelay(&db.path, &api.base_url(), &listen)
        .arg("config")
        .output()
        .unwrap();
    assert!(config.status.success());
    assert_no_secret(&String::from_utf8_lossy(&config.stdout), "ffrelay config");

    let mut child = ffrelay(&db.path, &api.base_url(), &listen)
        .arg("serve")
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Read stderr all along, so that a full pipe never blocks the daemon.
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "the server", || {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move { http.get(url).send().await.is_ok() }
    })
    .await;

    // A job, an expired token and a second job force a refresh with both tokens on the wire.
    let job = serde_json::json!({"kind": "conversions", "payload": {"hits": [{"hitID": "abc1"}]}});
    let post = |body: serde_json::Value| {
        http.post(format!("{base}/v1/jobs"))
            .bearer_auth(INGEST)
            .json(&body)
            .send()
    };
    assert_eq!(post(job.clone()).await.unwrap().status(), 202);
    wait_until(Duration::from_secs(10), "the first delivery", || async {
        api.stats().accepted_items.conversions == 1
    })
    .await;
    api.expire_access_tokens();
    assert_eq!(post(job).await.unwrap().status(), 202);
    wait_until(Duration::from_secs(10), "a refresh", || async {
        api.stats().refreshes == 1
    })
    .await;
    wait_until(Duration::from_secs(10), "the second delivery", || async {
        api.stats().accepted_items.conversions == 2
    })
    .await;

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_no_secret(&metrics, "/metrics");
    let wrong = http
        .get(format!("{base}/v1/stats"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_no_secret(&wrong.text().await.unwrap(), "a 401 answer");

    send_sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let output = (status, logs.join().unwrap());
    assert!(output.0.success(), "serve exits 0 on SIGTERM");
    assert!(
        output.1.contains("access token refreshed"),
        "the refresh is logged"
    );
    assert!(output.1.lines().count() > 100, "TRACE logging was on");
    assert_no_secret(&output.1, "the TRACE logs");
}

fn send_sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
