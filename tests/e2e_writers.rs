//! Concurrent writers from other processes while `ffrelay serve` drains: two
//! `ffrelay enqueue` processes and two Python producers inserting rows with plain SQL.

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
