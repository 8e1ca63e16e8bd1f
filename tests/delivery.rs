//! The delivery engine in process against the mock API over loopback: retries, rate
//! limits, tokens, batching, ordering and resets.

mod common;

use std::time::Duration;

use ffrelay::api::{Client, TokenStore};
use ffrelay::config::Settings;
use ffrelay::delivery::{DeliveryState, Engine, EngineConfig, Health};
use ffrelay::mock_api::{Faults, MockConfig};
use ffrelay::outbox::{NewJob, Outbox, Status};
use ffrelay::updates::{JobOptions, Kind, prepare};
use serde_json::{Value, json};
use std::sync::Arc;

use common::{TestDb, hit_id, mock, settings, wait_until};

struct Running {
    engine: Engine,
    state: DeliveryState,
}

async fn start(settings: &Settings, outbox: &Outbox) -> Running {
    let tokens = Arc::new(
        TokenStore::load(&settings.api, outbox.clone())
            .await
            .unwrap(),
    );
    let client = Client::new(&settings.api, tokens, settings.delivery.max_retry_after).unwrap();
    let state = DeliveryState::default();
    let run = outbox.register_run().await.unwrap();
    let run_id = run.id().to_owned();
    std::mem::forget(run);
    let config = EngineConfig::from_settings(settings);
    let engine = Engine::start(outbox.clone(), client, config, run_id, state.clone()).await;
    Running { engine, state }
}

fn job(kind: Kind, body: Value) -> NewJob {
    prepare(kind, &body, JobOptions::default()).unwrap()
}

fn conversion(hit: &str, payout: f64) -> NewJob {
    job(
        Kind::Conversions,
        json!({"hits": [{"hitID": hit, "payout": payout}]}),
    )
}

fn cost(n: usize) -> NewJob {
    job(
        Kind::Cost,
        json!({
            "funnelIDs": [], "trafficSourceIDs": [format!("ts{n}")],
            "timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-01T01:00:00Z",
            "costSegments": [{"cost": 1.25}]
        }),
    )
}

fn reset_job(max_hits: Option<i64>) -> NewJob {
    let mut body = json!({"timeStart": "2026-12-01T00:00:00Z", "timeEnd": "2026-12-02T00:00:00Z"});
    if let Some(limit) = max_hits {
        body["maxHits"] = json!(limit);
    }
    job(Kind::Reset, body)
}

async fn count(outbox: &Outbox, status: Status) -> i64 {
    outbox.stats().await.unwrap().count(status)
}

async fn wait_drained(outbox: &Outbox, limit: Duration) {
    wait_until(limit, "the outbox to drain", || async {
        let stats = outbox.stats().await.unwrap();
        stats.count(Status::Pending) == 0 && stats.count(Status::InFlight) == 0
    })
    .await;
}

fn hits_of(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| h["hitID"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_delivered_under_injected_503s() {
    let faults = Faults {
        failure_rate: 0.3,
        failure_status: 503,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        record_bodies: false,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let overrides = [
        ("FFRELAY__DELIVERY__MAX_BATCH_ITEMS", "200"),
        ("FFRELAY__DELIVERY__BREAKER_FAILURE_RATIO", "1"),
    ];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let outbox = db.open().await;

    let mut jobs: Vec<NewJob> = (0..10_000).map(|n| conversion(&hit_id(n), 2.5)).collect();
    for n in 0..300 {
        let event = json!({"hits": [{"hitID": hit_id(20_000 + n), "event": 1 + n % 10}]});
        jobs.push(job(Kind::CustomEvents, event));
    }
    jobs.extend((0..100).map(cost));
    outbox.enqueue(&jobs).await.unwrap();

    let running = start(&settings, &outbox).await;
    wait_drained(&outbox, Duration::from_secs(120)).await;
    running.engine.shutdown().await;

    assert_eq!(count(&outbox, Status::Delivered).await, 10_400);
    assert_eq!(count(&outbox, Status::Failed).await, 0);
    let stats = api.stats();
    assert_eq!(
        stats.accepted_items.conversions, 10_000,
        "every conversion accepted once or more"
    );
    assert!(stats.accepted_items.custom_events >= 300);
    assert!(stats.accepted_requests.cost >= 100);
    assert!(
        stats.by_status.get(&503).copied().unwrap_or(0) > 0,
        "faults were injected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let faults = Faults {
        rate_limit_per_second: Some(0.25),
        rate_limit_burst: 1,
        retry_after_secs: Some(2),
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), &[]);
    let outbox = db.open().await;
    outbox.enqueue(&[cost(1), cost(2)]).await.unwrap();

    let running = start(&settings, &outbox).await;
    wait_until(Duration::from_secs(10), "a 429", || async {
        api.requests().iter().any(|r| r.status == 429)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.engine.shutdown().await;

    let requests = api.requests();
    let throttled = requests.iter().find(|r| r.status == 429).unwrap();
    let next = requests
        .iter()
        .find(|r| r.at_ms > throttled.at_ms)
        .expect("a request after the 429");
    let gap = next.at_ms - throttled.at_ms;
    assert!(
        gap >= 1990,
        "request {gap} ms after a 429 with Retry-After: 2"
    );
    let after: Vec<_> = requests
        .iter()
        .filter(|r| r.at_ms > throttled.at_ms && r.at_ms < throttled.at_ms + 1990)
        .collect();
    assert!(
        after.is_empty(),
        "requests inside the Retry-After window: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_within_five_percent() {
    let api = mock(MockConfig {
        record_bodies: false,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let overrides = [
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "40"),
        ("FFRELAY__DELIVERY__BURST", "1"),
    ];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let outbox = db.open().await;
    let jobs: Vec<NewJob> = (0..1000).map(cost).collect();
    outbox.enqueue(&jobs).await.unwrap();

    let running = start(&settings, &outbox).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = api.stats().requests;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let sent = api.stats().requests - before;
    running.engine.shutdown().await;

    let rate = sent as f64 / 10.0;
    eprintln!("measured {rate:.1} requests/s at a limit of 40");
    assert!(
        (38.0..=42.0).contains(&rate),
        "rate {rate} is not within 5 % of 40"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_token_is_refreshed_without_failures() {
    let config = MockConfig {
        token_ttl: Duration::from_millis(400),
        ..MockConfig::default()
    };
    let api = mock(config).await;
    let db = TestDb::new();
    let overrides = [("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "100")];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let outbox = db.open().await;
    let running = start(&settings, &outbox).await;

    for n in 0..150 {
        outbox.enqueue(&[cost(n)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(&outbox, Duration::from_secs(30)).await;
    running.engine.shutdown().await;

    assert_eq!(count(&outbox, Status::Delivered).await, 150);
    assert_eq!(count(&outbox, Status::Failed).await, 0);
    assert!(api.stats().refreshes >= 1, "the token was refreshed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refresh_pauses_until_new_token_file() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let token_file = db.dir.path().join("access-token");
    std::fs::write(&token_file, "mock-access-0\n").unwrap();
    let overrides = [
        ("FFRELAY__API__ACCESS_TOKEN", ""),
        (
            "FFRELAY__API__ACCESS_TOKEN_FILE",
            token_file.to_str().unwrap(),
        ),
        ("FFRELAY__DELIVERY__BACKOFF_INITIAL", "100ms"),
    ];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let outbox = db.open().await;
    api.set_faults(Faults {
        refuse_refresh: true,
        ..Faults::default()
    });
    api.expire_access_tokens();
    outbox.enqueue(&[cost(1), cost(2), cost(3)]).await.unwrap();

    let running = start(&settings, &outbox).await;
    let state = running.state.clone();
    wait_until(Duration::from_secs(10), "an auth pause", || {
        let state = state.clone();
        async move { matches!(state.health(), Health::Paused { .. }) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&outbox, Status::Failed).await,
        0,
        "a pause never fails a job"
    );
    assert_eq!(count(&outbox, Status::Delivered).await, 0);

    api.set_tokens("rotated-access", "mock-refresh");
    std::fs::write(&token_file, "rotated-access\n").unwrap();
    wait_drained(&outbox, Duration::from_secs(20)).await;
    assert_eq!(running.state.health(), Health::Running);
    running.engine.shutdown().await;
    assert_eq!(count(&outbox, Status::Delivered).await, 3);
    let (job, _) = outbox.show(1).await.unwrap();
    assert!(
        job.attempts <= 1,
        "paused tries used no attempts, got {}",
        job.attempts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_hit_fails_alone_in_a_batch() {
    let poison = hit_id(42);
    let faults = Faults {
        poison_hits: vec![poison.clone()],
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let settings = settings(
        &db.path,
        &api.base_url(),
        &[("FFRELAY__DELIVERY__WORKERS", "1")],
    );
    let outbox = db.open().await;
    let jobs: Vec<NewJob> = (0..100).map(|n| conversion(&hit_id(n), 1.0)).collect();
    let stored = outbox.enqueue(&jobs).await.unwrap();

    let running = start(&settings, &outbox).await;
    wait_drained(&outbox, Duration::from_secs(20)).await;
    running.engine.shutdown().await;

    assert_eq!(count(&outbox, Status::Delivered).await, 99);
    assert_eq!(count(&outbox, Status::Failed).await, 1);
    let (failed, attempts) = outbox.show(stored[42].id).await.unwrap();
    assert_eq!(failed.status, "failed");
    let reason = failed.last_error.unwrap();
    assert!(
        reason.contains(&poison),
        "the API's message names the hit: {reason}"
    );
    assert!(attempts.iter().all(|a| a.http_status == Some(400)));
    assert_eq!(api.stats().accepted_items.conversions, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_then_delete_arrive_in_order_despite_503() {
    let faults = Faults {
        fail_next: 1,
        failure_status: 503,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), &[]);
    let outbox = db.open().await;
    let hit = hit_id(7);
    outbox
        .enqueue(&[conversion(&hit, 12.0), conversion(&hit, -1.0)])
        .await
        .unwrap();

    let running = start(&settings, &outbox).await;
    wait_drained(&outbox, Duration::from_secs(20)).await;
    running.engine.shutdown().await;

    let payouts: Vec<(u16, f64)> = api
        .requests()
        .iter()
        .filter(|r| hits_of(&r.body).contains(&hit))
        .map(|r| (r.status, r.body["hits"][0]["payout"].as_f64().unwrap()))
        .collect();
    assert_eq!(payouts, vec![(503, 12.0), (200, 12.0), (200, -1.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_above_limit_is_held_then_performed() {
    let faults = Faults {
        reset_count: 5000,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let settings = settings(
        &db.path,
        &api.base_url(),
        &[("FFRELAY__RESET__MAX_HITS", "1000")],
    );
    let outbox = db.open().await;
    let stored = outbox
        .enqueue(&[
            conversion(&hit_id(1), 3.0),
            reset_job(None),
            reset_job(Some(10_000)),
        ])
        .await
        .unwrap();

    let running = start(&settings, &outbox).await;
    wait_until(Duration::from_secs(20), "the reset to be held", || async {
        outbox.show(stored[1].id).await.unwrap().0.status == "held"
    })
    .await;
    let (held, _) = outbox.show(stored[1].id).await.unwrap();
    assert_eq!(held.reset_hits, Some(5000));
    assert!(held.last_error.unwrap().contains("ffrelay jobs approve"));
    assert_eq!(
        api.stats().accepted_requests.reset_perform,
        0,
        "nothing deleted before approval"
    );

    outbox.approve(stored[1].id).await.unwrap();
    wait_drained(&outbox, Duration::from_secs(20)).await;
    running.engine.shutdown().await;
    assert_eq!(
        count(&outbox, Status::Delivered).await,
        3,
        "own maxHits lets the second reset through"
    );
    assert_eq!(api.stats().accepted_requests.reset_perform, 2);
    let performed = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect::<Vec<_>>();
    assert!(
        performed.iter().all(|r| r.body.get("maxHits").is_none()),
        "maxHits is not sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_events_never_exceed_ten_items() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), &[]);
    let outbox = db.open().await;
    let big: Vec<Value> = (0..25)
        .map(|n| json!({"hitID": hit_id(n), "event": 2}))
        .collect();
    let mut jobs = vec![job(Kind::CustomEvents, json!({"hits": big}))];
    jobs.extend((100..107).map(|n| {
        job(
            Kind::CustomEvents,
            json!({"hits": [{"hitID": hit_id(n), "event": 1}]}),
        )
    }));
    outbox.enqueue(&jobs).await.unwrap();

    let running = start(&settings, &outbox).await;
    wait_drained(&outbox, Duration::from_secs(20)).await;
    running.engine.shutdown().await;

    let requests = api.requests();
    assert!(requests.iter().all(|r| hits_of(&r.body).len() <= 10));
    assert_eq!(api.stats().accepted_items.custom_events, 32);
    assert_eq!(count(&outbox, Status::Delivered).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_row_from_sql_fails_and_others_deliver() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let settings = settings(&db.path, &api.base_url(), &[]);
    let outbox = db.open().await;
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.path.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('conversions', '{\"hits\":[{\"hitID\":\"abc1\"}]}'), ('refunds', '{}'), ('cost', '[1,2]')")
        .execute(&raw)
        .await
        .unwrap();

    let running = start(&settings, &outbox).await;
    wait_drained(&outbox, Duration::from_secs(20)).await;
    running.engine.shutdown().await;
    assert_eq!(count(&outbox, Status::Delivered).await, 1);
    assert_eq!(count(&outbox, Status::Failed).await, 2);
    let (refund, _) = outbox.show(2).await.unwrap();
    assert!(refund.last_error.unwrap().contains("refunds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_during_outage_and_closes_after() {
    let faults = Faults {
        failure_rate: 1.0,
        failure_status: 503,
        ..Faults::default()
    };
    let api = mock(MockConfig {
        faults,
        ..MockConfig::default()
    })
    .await;
    let db = TestDb::new();
    let settings = settings(
        &db.path,
        &api.base_url(),
        &[("FFRELAY__DELIVERY__BACKOFF_MAX", "300ms")],
    );
    let outbox = db.open().await;
    let jobs: Vec<NewJob> = (0..50).map(cost).collect();
    outbox.enqueue(&jobs).await.unwrap();

    let running = start(&settings, &outbox).await;
    let state = running.state.clone();
    wait_until(Duration::from_secs(10), "the breaker to open", || {
        let state = state.clone();
        async move { matches!(state.health(), Health::BreakerOpen { .. }) }
    })
    .await;
    let opened_at = api.stats().requests;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during_outage = api.stats().requests - opened_at;
    assert!(
        during_outage <= 20,
        "{during_outage} requests in 3 s with the breaker open"
    );

    api.set_faults(Faults::default());
    wait_drained(&outbox, Duration::from_secs(20)).await;
    assert_eq!(running.state.health(), Health::Running);
    running.engine.shutdown().await;
    assert_eq!(count(&outbox, Status::Delivered).await, 50);
    assert_eq!(count(&outbox, Status::Failed).await, 0);
}
