//! The command-line contract of the binary without a mock API: `enqueue`, `config`,
//! settings validation, `serve` on a public address, `migrate` and `healthcheck`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::process::{Relay, RelayEnv};
use common::{TestDb, hit_id, write_lines};

/// A base URL that nothing in these tests contacts.
const UNUSED_API: &str = "http://127.0.0.1:9/v1";

fn env(db: &TestDb) -> RelayEnv {
    RelayEnv::new(&db.path, UNUSED_API)
}

#[tokio::test]
async fn enqueue_lines_with_bad_line_stores_nothing() {
    let db = TestDb::new();
    let env = env(&db);
    let file = db.dir.path().join("bad.txt");
    let text = format!(
        "{}, 1.5\n{}\nNOT A HIT, 2\n{}\n",
        hit_id(1),
        hit_id(2),
        hit_id(3)
    );
    std::fs::write(&file, text).unwrap();

    let file = file.to_str().unwrap();
    let output = env
        .run(&["enqueue", "conversions", file, "--format", "lines"])
        .await;
    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(
        output.stderr.contains("line 3"),
        "stderr: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("NOT A HIT"),
        "stderr: {}",
        output.stderr
    );

    let counts = env.status_counts().await;
    assert!(counts.is_empty(), "jobs stored: {counts:?}");
}

#[tokio::test]
async fn enqueue_stores_100k_lines() {
    let db = TestDb::new();
    let env = env(&db);
    let file = db.dir.path().join("hits.txt");
    let hits: Vec<String> = (0..100_000).map(hit_id).collect();
    write_lines(&file, &hits);

    let started = Instant::now();
    let file = file.to_str().unwrap();
    let output = env
        .run(&["enqueue", "conversions", file, "--format", "lines"])
        .await;
    eprintln!(
        "ffrelay enqueue of 100,000 lines took {:?}",
        started.elapsed()
    );
    output.assert_success("ffrelay enqueue");
    assert!(
        output
            .stdout
            .contains("stored 100000 new jobs of kind conversions"),
        "stdout: {}",
        output.stdout
    );

    let counts = env.status_counts().await;
    assert_eq!(counts.get("pending"), Some(&100_000), "counts: {counts:?}");
    assert_eq!(counts.len(), 1, "counts: {counts:?}");
}

#[tokio::test]
async fn config_prints_no_secret() {
    let db = TestDb::new();
    let secrets = [
        ("API__ACCESS_TOKEN", "access-e2e-5f2c9d"),
        ("API__REFRESH_TOKEN", "refresh-e2e-8a1b7e"),
        ("SERVER__INGEST_TOKEN", "ingest-e2e-3c6d0f"),
    ];
    let mut env = env(&db);
    for (key, value) in secrets {
        env = env.with(key, value);
    }

    let output = env.run(&["config"]).await;
    output.assert_success("ffrelay config");
    for (key, value) in secrets {
        assert!(
            !output.stdout.contains(value) && !output.stderr.contains(value),
            "{key} printed in clear:\n{}",
            output.stdout
        );
    }
    assert!(output.stdout.contains("[redacted]"), "{}", output.stdout);
    assert!(output.stdout.contains(UNUSED_API), "{}", output.stdout);
}

#[tokio::test]
async fn invalid_settings_exit_2_naming_each_key() {
    let db = TestDb::new();
    let env = env(&db)
        .with("DELIVERY__WORKERS", "many")
        .with("DELIVERY__LEASE", "forever");

    let output = env.run(&["stats"]).await;
    assert_eq!(output.code(), Some(2), "stderr: {}", output.stderr);
    for key in ["delivery.workers", "delivery.lease"] {
        assert!(
            output.stderr.contains(key),
            "{key} not named: {}",
            output.stderr
        );
    }
    assert!(
        !db.path.exists(),
        "the database was created despite invalid settings"
    );
}

#[tokio::test]
async fn serve_on_public_address_needs_ingest_token() {
    let db = TestDb::new();
    let port = common::process::free_port();
    let env = env(&db).with("SERVER__LISTEN", &format!("0.0.0.0:{port}"));

    let run = env.run(&["serve"]);
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("serve kept running on 0.0.0.0 without an ingest token");
    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(
        output.stderr.contains("server.ingest_token"),
        "stderr: {}",
        output.stderr
    );
}

#[tokio::test]
async fn migrate_creates_private_database() {
    let db = TestDb::new();
    let path = db.dir.path().join("data").join("outbox.db");
    let env = RelayEnv::new(&path, UNUSED_API);

    env.run(&["migrate"])
        .await
        .assert_success("ffrelay migrate");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode of {}", path.display());
    let counts = env.status_counts().await;
    assert!(counts.is_empty(), "a new database holds jobs: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_the_server() {
    let db = TestDb::new();
    let env = env(&db);
    let log = db.dir.path().join("serve.log");
    let relay = Relay::start(&env, &log).await;

    let output = env.run(&["healthcheck"]).await;
    output.assert_success("ffrelay healthcheck against a running server");

    relay.kill9().await;
    let output = env.run(&["healthcheck"]).await;
    assert!(
        !output.status.success(),
        "healthcheck passed with no server: {}",
        output.stderr
    );
}

#[tokio::test]
async fn report_to_closed_pipe_does_not_panic() {
    let db = TestDb::new();
    let env = env(&db);
    for args in [&["config"][..], &["stats"][..], &["jobs", "list"][..]] {
        let mut child = env
            .command(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}: {stderr}");
    }
}
