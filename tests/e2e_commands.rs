//! Commands that work with delivered jobs or the API: `jobs list|show|retry|cancel|approve`
//! after a real delivery, `reset validate` against the mock API, and `ffrelay mock-api`
//! running as its own process.

mod common;

use std::time::Duration;

use ffrelay::mock_api::{Faults, MockConfig};
use ffrelay::outbox::Status;
use serde_json::{Value, json};

use common::process::{Output, Relay, RelayEnv, free_port};
use common::{TestDb, hit_id, mock, wait_until, write_lines};

fn parse_json(output: &Output, what: &str) -> Value {
    output.assert_success(what);
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|err| panic!("{what} printed invalid JSON ({err}):\n{}", output.stdout))
}

/// The `--json` view of one job from `ffrelay jobs show ID --json`.
async fn show(env: &RelayEnv, id: i64) -> Value {
    let output = env.run(&["jobs", "show", &id.to_string(), "--json"]).await;
    parse_json(&output, "ffrelay jobs show")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_commands_steer_a_failed_job() {
    let poisoned = hit_id(1);
    let faults = Faults {
        poison_hits: vec![poisoned.clone()],
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url());
    let file = db.dir.path().join("hits.txt");
    write_lines(&file, &[hit_id(0), poisoned.clone(), hit_id(2)]);
    env.run(&[
        "enqueue",
        "conversions",
        file.to_str().unwrap(),
        "--format",
        "lines",
    ])
    .await
    .assert_success("ffrelay enqueue");

    // Deliver two jobs and fail the poisoned one, then stop the daemon.
    let log = db.dir.path().join("serve.log");
    let mut relay = Relay::start(&env, &log).await;
    let outbox = db.open().await;
    wait_until(
        Duration::from_secs(30),
        "two delivered, one failed",
        || async {
            let stats = outbox.stats().await.unwrap();
            stats.count(Status::Delivered) == 2 && stats.count(Status::Failed) == 1
        },
    )
    .await;
    relay.signal("TERM");
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "serve exit status");

    let output = env.run(&["jobs", "list", "--json"]).await;
    let jobs = parse_json(&output, "ffrelay jobs list");
    assert_eq!(jobs.as_array().unwrap().len(), 3, "jobs: {jobs}");
    let output = env
        .run(&["jobs", "list", "--status", "failed", "--json"])
        .await;
    let failed = parse_json(&output, "ffrelay jobs list --status failed");
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1, "failed jobs: {failed:?}");
    assert_eq!(failed[0]["payload"]["hits"][0]["hitID"], json!(poisoned));
    let failed_id = failed[0]["id"].as_i64().unwrap();

    let shown = show(&env, failed_id).await;
    assert_eq!(shown["job"]["status"], "failed", "{shown}");
    let attempts = shown["attempts"].as_array().unwrap();
    assert!(!attempts.is_empty(), "no attempts recorded: {shown}");
    assert_eq!(attempts.last().unwrap()["http_status"], 400, "{shown}");

    let output = env
        .run(&["jobs", "retry", "--status", "failed", "--json"])
        .await;
    let retried = parse_json(&output, "ffrelay jobs retry --status failed");
    assert_eq!(retried["requeued"], 1, "{retried}");
    assert_eq!(show(&env, failed_id).await["job"]["status"], "pending");

    let id = failed_id.to_string();
    let output = env.run(&["jobs", "cancel", &id, "--json"]).await;
    output.assert_success("ffrelay jobs cancel");
    assert_eq!(show(&env, failed_id).await["job"]["status"], "cancelled");

    let delivered_id = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["status"] == "delivered")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let output = env
        .run(&["jobs", "approve", &delivered_id.to_string()])
        .await;
    assert!(
        !output.status.success(),
        "approve of a delivered job passed"
    );
    let expected = format!("job {delivered_id} is delivered; cannot approve it");
    assert!(
        output.stderr.contains(&expected),
        "stderr: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("only held resets can be approved"),
        "stderr: {}",
        output.stderr
    );

    let output = env.run(&["jobs", "show", "999999", "--json"]).await;
    assert!(!output.status.success(), "show of a missing job passed");
    assert!(
        output.stderr.contains("job 999999 not found"),
        "stderr: {}",
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_validate_prints_the_hit_count() {
    let faults = Faults {
        reset_count: 4242,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url());
    let file = db.dir.path().join("reset.json");
    let body = json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"});
    std::fs::write(&file, body.to_string()).unwrap();

    let output = env
        .run(&["reset", "validate", file.to_str().unwrap()])
        .await;
    output.assert_success("ffrelay reset validate");
    assert_eq!(output.stdout.trim(), "4242", "stdout: {}", output.stdout);

    let accepted = api.stats().accepted_items;
    assert_eq!(accepted.reset_validate, 1, "validate requests");
    assert_eq!(accepted.reset_perform, 0, "a reset was performed");
}

/// Sends a one-hit conversions update to a mock API with `token` as bearer.
async fn put_conversion(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Result<u16> {
    let url = format!("{base}/reporting/update/conversions/");
    let body = json!({"hits": [{"hitID": hit_id(7), "payout": 3.5}]});
    let response = client
        .put(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_api_process_accepts_its_token() {
    let db = TestDb::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = RelayEnv::new(&db.path, "http://127.0.0.1:9/v1");
    let log = db.dir.path().join("mock.log");
    let mut process = Relay::spawn_command(&env, &["mock-api", "--listen", &listen], &log);

    let base = format!("http://{listen}/v1");
    let client = reqwest::Client::new();
    wait_until(
        Duration::from_secs(30),
        "the mock api to listen",
        || async {
            put_conversion(&client, &base, "mock-access-0")
                .await
                .is_ok()
        },
    )
    .await;
    let status = put_conversion(&client, &base, "mock-access-0")
        .await
        .unwrap();
    assert!(
        (200..300).contains(&status),
        "status with the token: {status}"
    );
    let status = put_conversion(&client, &base, "wrong-token").await.unwrap();
    assert_eq!(status, 401, "status with a wrong token");

    process.signal("TERM");
    let status = process.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", process.log());
}
