//! Other processes writing the outbox while `ffrelay serve` drains it: two `ffrelay
//! enqueue` processes and two Python producers inserting rows with plain SQL, malformed
//! SQL rows, and a second daemon on the same database.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ffrelay::mock_api::MockConfig;
use ffrelay::outbox::Status;
use serde_json::json;
use tokio::process::Command;

use common::process::{Output, Relay, RelayEnv};
use common::{TestDb, accepted_hits, hit_id, mock, wait_until};

/// Jobs written by each of the four writers.
const PER_WRITER: usize = 2_500;
const WRITERS: usize = 4;

/// A producer that writes the minimal documented insert, ten rows per transaction.
const SQL_WRITER: &str = r#"
import json, sqlite3, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path, timeout=30, isolation_level=None)
for start in range(first, first + count, 10):
    db.execute("BEGIN IMMEDIATE")
    for n in range(start, min(start + 10, first + count)):
        body = json.dumps({"hits": [{"hitID": "hit%021d" % n, "payout": 1.5}]})
        db.execute("INSERT INTO jobs (kind, payload) VALUES ('conversions', ?)", (body,))
    db.execute("COMMIT")
db.close()
"#;

/// Writes an ndjson file of one conversion body per hit.
fn write_ndjson(path: &Path, hits: std::ops::Range<usize>) {
    let lines: Vec<String> = hits
        .map(|n| json!({"hits": [{"hitID": hit_id(n), "payout": 1.5}]}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

async fn run_sql_writer(db: &Path, first: usize) -> Output {
    let output = Command::new("python3")
        .args(["-c", SQL_WRITER, db.to_str().unwrap()])
        .args([first.to_string(), PER_WRITER.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    Output::from(output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_while_draining_lose_nothing() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url()).with("DELIVERY__MAX_BATCH_ITEMS", "50");
    let log = db.dir.path().join("serve.log");
    let mut relay = Relay::start(&env, &log).await;

    let files: Vec<_> = (0..2)
        .map(|writer| {
            let path = db.dir.path().join(format!("writer{writer}.ndjson"));
            let first = writer * PER_WRITER;
            write_ndjson(&path, first..first + PER_WRITER);
            path
        })
        .collect();
    let enqueue = |path: &Path| {
        let path = path.to_str().unwrap().to_owned();
        let env = env.clone();
        async move {
            env.run(&["enqueue", "conversions", &path, "--format", "ndjson"])
                .await
        }
    };
    let outputs = tokio::join!(
        enqueue(&files[0]),
        enqueue(&files[1]),
        run_sql_writer(&db.path, 2 * PER_WRITER),
        run_sql_writer(&db.path, 3 * PER_WRITER),
    );
    let outputs = [outputs.0, outputs.1, outputs.2, outputs.3];
    for (writer, output) in outputs.iter().enumerate() {
        output.assert_success(&format!("writer {writer}"));
        let text = format!("{}{}", output.stdout, output.stderr);
        assert!(
            !text.contains("database is locked"),
            "writer {writer} hit a locked database:\n{text}"
        );
    }

    let total = (WRITERS * PER_WRITER) as i64;
    let outbox = db.open().await;
    wait_until(Duration::from_secs(60), "every job delivered", || async {
        outbox.stats().await.unwrap().count(Status::Delivered) == total
    })
    .await;
    let stats = outbox.stats().await.unwrap();
    for status in [Status::Pending, Status::InFlight, Status::Failed] {
        assert_eq!(stats.count(status), 0, "jobs left {status}");
    }

    let accepted: BTreeSet<String> = accepted_hits(&api).into_iter().collect();
    let missing = (0..WRITERS * PER_WRITER)
        .filter(|&n| !accepted.contains(&hit_id(n)))
        .count();
    assert_eq!(missing, 0, "hits that never reached the mock");

    relay.signal("TERM");
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "serve exit status");
    assert!(
        !relay.log().contains("database is locked"),
        "serve hit a locked database:\n{}",
        relay.log()
    );
}

/// Rows a careless producer might write: an unknown kind, a payload that is not JSON, and
/// a conversions body without an item array.
const MALFORMED_ROWS: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
rows = [("nope", '{"hits": [{"hitID": "abc", "payout": 1}]}'),
        ("conversions", "not json at all"),
        ("conversions", '{"payout": 1}'),
        ("conversions", '{"hits": [{"hitID": "hit000000000000000000042", "payout": 1}]}')]
db.execute("BEGIN IMMEDIATE")
for kind, payload in rows:
    db.execute("INSERT INTO jobs (kind, payload) VALUES (?, ?)", (kind, payload))
db.execute("COMMIT")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sql_rows_fail_with_reason() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url());
    let log = db.dir.path().join("serve.log");
    let mut relay = Relay::start(&env, &log).await;

    let output = Command::new("python3")
        .args(["-c", MALFORMED_ROWS, db.path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Output::from(output).assert_success("the malformed-row producer");

    let outbox = db.open().await;
    wait_until(Duration::from_secs(30), "every row to be final", || async {
        let stats = outbox.stats().await.unwrap();
        stats.count(Status::Failed) + stats.count(Status::Delivered) == 4
    })
    .await;
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Failed), 3, "failed rows");
    assert_eq!(stats.count(Status::Delivered), 1, "delivered rows");
    assert!(
        accepted_hits(&api).contains(&hit_id(42)),
        "the valid row never reached the mock"
    );
    for id in 1..=3 {
        let (job, _) = outbox.show(id).await.unwrap();
        let reason = job.last_error.unwrap_or_default();
        assert!(!reason.is_empty(), "job {id} failed without a reason");
    }

    relay.signal("TERM");
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", relay.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_outbox_without_duplicates() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let jobs = 4_000;
    let env = RelayEnv::new(&db.path, &api.base_url()).with("DELIVERY__MAX_BATCH_ITEMS", "5");
    let file = db.dir.path().join("jobs.ndjson");
    write_ndjson(&file, 0..jobs);
    env.run(&[
        "enqueue",
        "conversions",
        file.to_str().unwrap(),
        "--format",
        "ndjson",
    ])
    .await
    .assert_success("ffrelay enqueue");

    let other = RelayEnv::new(&db.path, &api.base_url()).with("DELIVERY__MAX_BATCH_ITEMS", "5");
    let first = Relay::start(&env, &db.dir.path().join("first.log")).await;
    let second = Relay::start(&other, &db.dir.path().join("second.log")).await;
    let outbox = db.open().await;
    wait_until(Duration::from_secs(60), "every job delivered", || async {
        outbox.stats().await.unwrap().count(Status::Delivered) == jobs as i64
    })
    .await;
    first.kill9().await;
    second.kill9().await;

    let accepted = accepted_hits(&api);
    let distinct: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(distinct.len(), jobs, "distinct hits delivered");
    assert_eq!(accepted.len(), jobs, "deliveries, duplicates included");
}
