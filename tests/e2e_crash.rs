//! `ffrelay serve` killed with SIGKILL, as a child process against the in-process mock API:
//! while it drains the outbox, and while clients post jobs to its ingest endpoint.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ffrelay::mock_api::{Faults, MockConfig};
use ffrelay::outbox::{ListFilter, Outbox, Status};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use common::process::{Relay, RelayEnv};
use common::{TestDb, accepted_hits, hit_id, mock, wait_until, write_lines};

/// Conversion jobs in the drain test, one hit (and so one ordering key) each.
const JOBS: usize = 5_000;
/// SIGKILLs sent during the drain.
const KILLS: usize = 10;
const WORKERS: usize = 4;
/// Kept small so that the drain takes many requests and every kill lands mid-drain.
const MAX_BATCH_ITEMS: usize = 5;

async fn count(outbox: &Outbox, status: Status) -> i64 {
    outbox.stats().await.unwrap().count(status)
}

/// Lease owners of the jobs in flight now.
async fn in_flight_owners(outbox: &Outbox) -> Vec<String> {
    let filter = ListFilter {
        status: Some(Status::InFlight),
        limit: 100_000,
        ..ListFilter::default()
    };
    let jobs = outbox.list(&filter).await.unwrap();
    jobs.into_iter().filter_map(|job| job.lease_owner).collect()
}

/// Returns the delivered-job counts at which the kills happen, sorted and spread over the
/// drain.
fn kill_points() -> Vec<i64> {
    let mut rng = rand::rng();
    let mut points: Vec<i64> = (0..KILLS).map(|_| rng.random_range(50..4_000)).collect();
    points.sort_unstable();
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_draining_loses_nothing() {
    let faults = Faults {
        latency: Duration::from_millis(2),
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    // With a 60 s lease, jobs of a killed run return within the test only through the
    // recovery of dead runs, not through lease expiry.
    let env = RelayEnv::new(&db.path, &api.base_url())
        .with("DELIVERY__LEASE", "60s")
        .with("DELIVERY__WORKERS", &WORKERS.to_string())
        .with("DELIVERY__MAX_BATCH_ITEMS", &MAX_BATCH_ITEMS.to_string());
    let hits: Vec<String> = (0..JOBS).map(hit_id).collect();
    let file = db.dir.path().join("hits.txt");
    write_lines(&file, &hits);
    let file = file.to_str().unwrap();
    env.run(&["enqueue", "conversions", file, "--format", "lines"])
        .await
        .assert_success("ffrelay enqueue");
    let outbox = db.open().await;
    let log = db.dir.path().join("serve.log");

    let mut dead_runs: HashSet<String> = HashSet::new();
    let mut in_flight_at_kills = 0;
    for (kill, point) in kill_points().into_iter().enumerate() {
        let relay = Relay::start(&env, &log).await;

        // The server responds only after the engine recovered dead runs, so no job may
        // still be leased to a run killed earlier.
        let stale: Vec<String> = in_flight_owners(&outbox)
            .await
            .into_iter()
            .filter(|owner| dead_runs.contains(owner))
            .collect();
        assert!(
            stale.is_empty(),
            "after restart {kill}, {} jobs are still leased to killed runs",
            stale.len()
        );

        wait_until(Duration::from_secs(60), "delivery progress", || async {
            count(&outbox, Status::Delivered).await >= point
        })
        .await;
        let jitter = rand::rng().random_range(0..20);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        relay.kill9().await;

        let owners = in_flight_owners(&outbox).await;
        let delivered = count(&outbox, Status::Delivered).await;
        eprintln!(
            "kill {kill}: {delivered} delivered, {} in flight",
            owners.len()
        );
        assert!(
            delivered < JOBS as i64,
            "kill {kill} came after the drain finished"
        );
        in_flight_at_kills += owners.len();
        dead_runs.extend(owners);
    }
    assert!(
        in_flight_at_kills > 0,
        "no kill left a job in flight, so recovery was not exercised"
    );

    // Jobs left in flight by the last kill must be sent well before their 60 s lease ends.
    let started = Instant::now();
    let relay = Relay::start(&env, &log).await;
    wait_until(
        Duration::from_secs(30),
        "the drain after the last kill",
        || async { count(&outbox, Status::Delivered).await == JOBS as i64 },
    )
    .await;
    eprintln!("final drain took {:?}", started.elapsed());
    relay.kill9().await;

    let stats = outbox.stats().await.unwrap();
    for status in [Status::Pending, Status::InFlight, Status::Failed] {
        assert_eq!(stats.count(status), 0, "jobs left {status}");
    }

    let accepted = accepted_hits(&api);
    let distinct: BTreeSet<&String> = accepted.iter().collect();
    let missing: Vec<&String> = hits.iter().filter(|h| !distinct.contains(h)).collect();
    assert!(
        missing.is_empty(),
        "{} hits never reached the mock",
        missing.len()
    );

    // Only a job in flight at a kill can be sent twice, and a kill repeats at most the
    // batches in flight, which is one per worker.
    let accepted_items = api.stats().accepted_items.conversions as usize;
    let duplicates = accepted_items - JOBS;
    eprintln!("{accepted_items} items accepted, {duplicates} duplicates");
    assert!(
        duplicates <= in_flight_at_kills,
        "{duplicates} duplicates exceed the {in_flight_at_kills} jobs in flight at the kills"
    );
    assert!(
        duplicates <= KILLS * WORKERS * MAX_BATCH_ITEMS,
        "{duplicates} duplicates exceed {KILLS} kills x {WORKERS} workers x {MAX_BATCH_ITEMS} items"
    );
}

/// One ingested job that the server acknowledged with 202.
struct Acknowledged {
    id: i64,
    hit: String,
}

/// Posts single conversion jobs until a request fails, recording every 202.
async fn post_until_error(
    url: String,
    client_index: usize,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    count: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
) {
    let client = reqwest::Client::new();
    for n in 0.. {
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let hit = hit_id(client_index * 1_000_000 + n);
        let job =
            json!({"kind": "conversions", "payload": {"hits": [{"hitID": hit, "payout": 2}]}});
        let Ok(response) = client.post(&url).json(&job).send().await else {
            return;
        };
        if response.status() != reqwest::StatusCode::ACCEPTED {
            return;
        }
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        let id = body["ids"][0].as_i64().unwrap();
        acknowledged.lock().await.push(Acknowledged { id, hit });
        count.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_ingest_keeps_acknowledged_jobs() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let env = RelayEnv::new(&db.path, &api.base_url());
    let log = db.dir.path().join("serve.log");
    let relay = Relay::start(&env, &log).await;

    let url = format!("{}/v1/jobs", env.server_url());
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|index| {
            tokio::spawn(post_until_error(
                url.clone(),
                index,
                Arc::clone(&acknowledged),
                Arc::clone(&count),
                Arc::clone(&stopped),
            ))
        })
        .collect();

    let target = rand::rng().random_range(300..1_500);
    wait_until(Duration::from_secs(60), "acknowledged jobs", || async {
        count.load(Ordering::SeqCst) >= target
    })
    .await;
    relay.kill9().await;
    let at_kill = count.load(Ordering::SeqCst);
    // Clients stop on their first failed request, and the flag stops any that did not fail.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stopped.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await;
    eprintln!(
        "{at_kill} jobs acknowledged at the kill, {} in all",
        acknowledged.len()
    );

    let relay = Relay::start(&env, &log).await;
    let outbox = db.open().await;
    for job in acknowledged.iter() {
        let (stored, _) = outbox
            .show(job.id)
            .await
            .unwrap_or_else(|err| panic!("acknowledged job {} is missing: {err}", job.id));
        let stored_hit = &stored.payload["hits"][0]["hitID"];
        assert_eq!(stored_hit, &json!(job.hit), "job {} payload", job.id);
    }
    relay.kill9().await;
}
