//! `/metrics` of a freshly started daemon: every series that an alert in the README
//! compares exists from the start, before any event.

mod common;

use ffrelay::daemon::Daemon;
use ffrelay::mock_api::MockConfig;

use common::{TestDb, mock, settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_series_exist_at_start() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let overrides = [("FFRELAY__SERVER__LISTEN", "127.0.0.1:0")];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let daemon = Daemon::start(&settings).await.unwrap();

    let url = format!("http://{}/metrics", daemon.addr());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let expected = [
        "ffrelay_auth_paused 0",
        "ffrelay_breaker_state 0",
        "ffrelay_api_throttled_total 0",
        "ffrelay_jobs_failed_total{kind=\"conversions\"} 0",
        "ffrelay_jobs_failed_total{kind=\"reset\"} 0",
        "ffrelay_jobs_delivered_total{kind=\"cost\"} 0",
    ];
    for series in expected {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    daemon.shutdown().await;
}
