//! Graceful shutdown of `ffrelay serve` as a child process: SIGTERM in the middle of a
//! drain, and a second signal while a request hangs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use ffrelay::mock_api::{Faults, MockConfig};
use ffrelay::outbox::{Outbox, Status};

use common::process::{Relay, RelayEnv};
use common::{TestDb, accepted_hits, hit_id, mock, wait_until, write_lines};

/// Jobs in the SIGTERM test.
const JOBS: usize = 2_000;
/// Time the process gets beyond `delivery.shutdown_grace` before the test gives up on it.
const EXIT_MARGIN: Duration = Duration::from_secs(15);

async fn count(outbox: &Outbox, status: Status) -> i64 {
    outbox.stats().await.unwrap().count(status)
}

/// Enqueues one conversion job per hit through `ffrelay enqueue`.
async fn enqueue(env: &RelayEnv, db: &TestDb, hits: &[String]) {
    let file = db.dir.path().join("hits.txt");
    write_lines(&file, hits);
    env.run(&[
        "enqueue",
        "conversions",
        file.to_str().unwrap(),
        "--format",
        "lines",
    ])
    .await
    .assert_success("ffrelay enqueue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_drain_releases_jobs() {
    let faults = Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let grace = Duration::from_secs(2);
    // With a 60 s lease, only the release at shutdown lets the next start send the jobs
    // at once.
    let env = RelayEnv::new(&db.path, &api.base_url())
        .with("DELIVERY__LEASE", "60s")
        .with("DELIVERY__SHUTDOWN_GRACE", "2s")
        .with("DELIVERY__MAX_BATCH_ITEMS", "5");
    let hits: Vec<String> = (0..JOBS).map(hit_id).collect();
    enqueue(&env, &db, &hits).await;
    let outbox = db.open().await;
    let log = db.dir.path().join("serve.log");

    let mut relay = Relay::start(&env, &log).await;
    wait_until(Duration::from_secs(60), "delivery progress", || async {
        count(&outbox, Status::Delivered).await >= 200
    })
    .await;
    relay.signal("TERM");
    let status = relay.wait_exit(grace + EXIT_MARGIN).await;
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", relay.log()));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(
        relay.log().contains("shutdown complete"),
        "no \"shutdown complete\" in the log:\n{}",
        relay.log()
    );

    let counts = env.status_counts().await;
    eprintln!("after SIGTERM: {counts:?}");
    assert_eq!(counts.get("in_flight"), None, "jobs left in flight");
    let pending = counts.get("pending").copied().unwrap_or(0);
    assert!(pending > 0, "the drain finished before SIGTERM");
    let delivered = counts.get("delivered").copied().unwrap_or(0);
    assert_eq!(pending + delivered, JOBS as i64, "jobs by status");

    let mut relay = Relay::start(&env, &log).await;
    wait_until(
        Duration::from_secs(30),
        "the drain after restart",
        || async { count(&outbox, Status::Delivered).await == JOBS as i64 },
    )
    .await;
    relay.signal("TERM");
    let status = relay.wait_exit(grace + EXIT_MARGIN).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "second run exit");

    let accepted: BTreeSet<String> = accepted_hits(&api).into_iter().collect();
    let missing = hits.iter().filter(|hit| !accepted.contains(*hit)).count();
    assert_eq!(missing, 0, "hits that never reached the mock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_exits_at_once() {
    let faults = Faults {
        hang_rate: 1.0,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    // A grace period far above the test's wait, so only the second signal can end it.
    let env = RelayEnv::new(&db.path, &api.base_url())
        .with("DELIVERY__LEASE", "60s")
        .with("DELIVERY__SHUTDOWN_GRACE", "120s");
    let hits: Vec<String> = (0..20).map(hit_id).collect();
    enqueue(&env, &db, &hits).await;
    let log = db.dir.path().join("serve.log");

    let mut relay = Relay::start(&env, &log).await;
    wait_until(Duration::from_secs(30), "a hanging request", || async {
        api.stats().hung > 0
    })
    .await;
    relay.signal("TERM");
    wait_until(Duration::from_secs(30), "the shutdown log line", || async {
        relay.log().contains("shutting down")
    })
    .await;
    assert_eq!(
        relay.wait_exit(Duration::from_millis(300)).await,
        None,
        "the process exited before the grace period with a request in flight"
    );
    relay.signal("INT");
    let status = relay.wait_exit(EXIT_MARGIN).await;
    let status =
        status.unwrap_or_else(|| panic!("no exit after a second signal:\n{}", relay.log()));
    assert_eq!(
        status.code(),
        Some(130),
        "exit status after a second signal"
    );

    // Nothing was released, so the next start must recover the jobs of the exited run.
    api.set_faults(Faults::default());
    let outbox = db.open().await;
    let relay = Relay::start(&env, &log).await;
    wait_until(
        Duration::from_secs(30),
        "delivery after restart",
        || async { count(&outbox, Status::Delivered).await == hits.len() as i64 },
    )
    .await;
    relay.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_ready_exits_cleanly() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url());
    let log = db.dir.path().join("serve.log");

    let mut relay = Relay::start(&env, &log).await;
    relay.signal("TERM");
    let status = relay.wait_exit(EXIT_MARGIN).await;
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", relay.log()));
    assert_eq!(status.code(), Some(0), "exit status:\n{}", relay.log());
    assert!(relay.log().contains("shutdown complete"), "{}", relay.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_stalled_upload_exits_within_grace() {
    use tokio::io::AsyncWriteExt;

    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let grace = Duration::from_secs(2);
    let env = RelayEnv::new(&db.path, &api.base_url()).with("DELIVERY__SHUTDOWN_GRACE", "2s");
    let log = db.dir.path().join("serve.log");
    let mut relay = Relay::start(&env, &log).await;

    // Headers that announce 1,000 bytes, then a few of them, then nothing.
    let address = format!("127.0.0.1:{}", env.port());
    let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = "POST /v1/jobs HTTP/1.1\r\nHost: relay\r\ncontent-type: application/json\r\n\
                content-length: 1000\r\n\r\n{\"kind\":";
    stalled.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    relay.signal("TERM");
    let status = relay.wait_exit(grace + Duration::from_secs(5)).await;
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", relay.log()));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(relay.log().contains("shutdown complete"), "{}", relay.log());
    drop(stalled);
}
