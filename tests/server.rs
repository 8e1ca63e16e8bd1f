//! The HTTP server end to end on `127.0.0.1:0`: concurrent ingest, metrics after traffic,
//! the ingest token, graceful shutdown, and the group-commit writer under database errors.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ffrelay::delivery::DeliveryState;
use ffrelay::outbox::{NewJob, Outbox, Status};
use ffrelay::secret::Secret;
use ffrelay::server::{AppState, Ingest, IngestError, router, serve};
use ffrelay::telemetry;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Jobs written by the concurrency test, one per request.
const JOBS: usize = 20_000;

/// Concurrent clients of the concurrency test.
const CLIENTS: usize = 64;

/// A server running on a fresh database.
struct Running {
    _dir: TempDir,
    outbox: Outbox,
    base: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(token: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let state = AppState {
        outbox: outbox.clone(),
        ingest: Ingest::start(outbox.clone()),
        delivery: DeliveryState::default(),
        ingest_token: token.map(Secret::new),
        metrics: telemetry::prometheus(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(listener, router(state, 1 << 20), shutdown));
    Running {
        _dir: dir,
        outbox,
        base: format!("http://{address}"),
        stop,
        task,
    }
}

fn conversion(index: usize) -> serde_json::Value {
    serde_json::json!({
        "kind": "conversions",
        "payload": {"hits": [{"hitID": format!("hit{index}")}]},
        "idempotencyKey": format!("key-{index}"),
    })
}

/// Sends jobs from the shared counter until every index is taken; returns (index, id).
async fn client_loop(base: String, next: Arc<AtomicUsize>) -> Vec<(usize, i64)> {
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/jobs");
    let mut stored = Vec::new();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= JOBS {
            return stored;
        }
        let response = client
            .post(&url)
            .json(&conversion(index))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "job {index}");
        let body: serde_json::Value = response.json().await.unwrap();
        stored.push((index, body["ids"][0].as_i64().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_store_every_job_once() {
    let server = start(None).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client_loop(server.base.clone(), Arc::clone(&next))))
        .collect();
    let mut stored = Vec::with_capacity(JOBS);
    for client in clients {
        stored.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "ingest: {JOBS} jobs, one per request, {CLIENTS} clients, in {:.2} s: {:.0} requests/s",
        elapsed.as_secs_f64(),
        JOBS as f64 / elapsed.as_secs_f64()
    );

    assert_eq!(stored.len(), JOBS);
    let unique: HashSet<i64> = stored.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), JOBS);
    let stats = server.outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Pending), JOBS as i64);

    for (index, id) in stored.iter().step_by(997) {
        let (job, _) = server.outbox.show(*id).await.unwrap();
        assert_eq!(job.idempotency_key, Some(format!("key-{index}")));
        assert_eq!(job.payload["hits"][0]["hitID"], format!("hit{index}"));
    }
}

#[tokio::test]
async fn metrics_name_every_queue_gauge_after_traffic() {
    let server = start(None).await;
    let client = reqwest::Client::new();
    for index in 0..3 {
        let url = format!("{}/v1/jobs", server.base);
        let response = client
            .post(url)
            .json(&conversion(index))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }

    let response = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for name in [
        telemetry::JOBS_ENQUEUED,
        telemetry::QUEUE_DEPTH,
        telemetry::OLDEST_PENDING,
        telemetry::DATABASE_SIZE,
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test]
async fn ingest_token_is_checked_over_http() {
    let server = start(Some("tok-abc-123")).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/jobs", server.base);
    let job = conversion(1);

    let missing = client.post(&url).json(&job).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = client
        .post(&url)
        .bearer_auth("tok-abc-124")
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body = wrong.text().await.unwrap();
    assert!(!body.contains("tok-abc"), "{body}");

    let accepted = client
        .post(&url)
        .bearer_auth("tok-abc-123")
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = start(None).await;
    server.stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server.task).await;
    result.unwrap().unwrap().unwrap();
}

fn job(kind: &str, key: &str) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: r#"{"hits":[{"hitID":"h1"}]}"#.into(),
        idempotency_key: Some(key.into()),
        ordering_key: None,
        batch_key: None,
        not_before_ms: None,
    }
}

/// Opens a second connection to the database, as another process would.
async fn other_connection(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(path);
    SqliteConnection::connect_with(&options).await.unwrap()
}

#[tokio::test]
async fn failed_group_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path, Duration::from_secs(5)).await.unwrap();
    let mut other = other_connection(&path).await;
    let trigger = "CREATE TRIGGER reject_boom BEFORE INSERT ON jobs WHEN NEW.kind = 'boom' \
                   BEGIN SELECT RAISE(ABORT, 'boom rejected'); END";
    sqlx::query(trigger).execute(&mut other).await.unwrap();

    let ingest = Ingest::start(outbox.clone());
    let (good, bad) = tokio::join!(
        ingest.submit(vec![job("conversions", "a")]),
        ingest.submit(vec![job("conversions", "b"), job("boom", "c")]),
    );
    assert!(good.unwrap()[0].created);
    assert!(matches!(bad, Err(IngestError::Store(_))), "{bad:?}");

    let later = ingest.submit(vec![job("conversions", "d")]).await.unwrap();
    assert!(later[0].created);
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.count(Status::Pending), 2);
}

#[tokio::test]
async fn writer_recovers_after_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path, Duration::from_millis(100))
        .await
        .unwrap();
    let ingest = Ingest::start(outbox.clone());

    let mut other = other_connection(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let locked = ingest.submit(vec![job("conversions", "a")]).await;
    let err = locked.unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let stored = ingest.submit(vec![job("conversions", "a")]).await.unwrap();
    assert!(stored[0].created);
}

#[tokio::test]
async fn writer_ends_when_every_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path, Duration::from_secs(5)).await.unwrap();
    let (ingest, task) = Ingest::spawn(outbox);
    let clone = ingest.clone();
    clone.submit(vec![job("conversions", "a")]).await.unwrap();

    drop(ingest);
    drop(clone);
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
    ended.unwrap().unwrap();
}
