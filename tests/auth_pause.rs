//! The authentication pause against the mock API: a 403 pauses delivery, and once the API
//! accepts the credentials again the probe requests resume it without new tokens.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ffrelay::api::{Client, TokenStore};
use ffrelay::delivery::{DeliveryState, Engine, EngineConfig, Health};
use ffrelay::mock_api::{Faults, MockConfig};
use ffrelay::outbox::Status;
use ffrelay::updates::{JobOptions, Kind, prepare};
use serde_json::json;

use common::{TestDb, hit_id, mock, settings, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_resumes_after_403_clears() {
    let api = mock(MockConfig::default()).await;
    let db = TestDb::new();
    let overrides = [("FFRELAY__DELIVERY__BACKOFF_INITIAL", "100ms")];
    let settings = settings(&db.path, &api.base_url(), &overrides);
    let outbox = db.open().await;
    api.set_faults(Faults {
        failure_rate: 1.0,
        failure_status: 403,
        ..Faults::default()
    });
    let jobs: Vec<_> = (0..5)
        .map(|n| {
            let body = json!({"hits": [{"hitID": hit_id(n), "event": 1}]});
            prepare(Kind::CustomEvents, &body, JobOptions::default()).unwrap()
        })
        .collect();
    outbox.enqueue(&jobs).await.unwrap();

    let tokens = Arc::new(
        TokenStore::load(&settings.api, outbox.clone())
            .await
            .unwrap(),
    );
    let client = Client::new(&settings.api, tokens, settings.delivery.max_retry_after).unwrap();
    let state = DeliveryState::default();
    let run = outbox.register_run().await.unwrap();
    let config = EngineConfig::from_settings(&settings);
    let engine = Engine::start(
        outbox.clone(),
        client,
        config,
        run.id().into(),
        state.clone(),
    )
    .await;
    let paused = state.clone();
    wait_until(Duration::from_secs(10), "an auth pause", || {
        let paused = paused.clone();
        async move { matches!(paused.health(), Health::Paused { .. }) }
    })
    .await;

    api.set_faults(Faults::default());
    let drained = outbox.clone();
    wait_until(
        Duration::from_secs(20),
        "delivery after the 403s stop",
        || {
            let drained = drained.clone();
            async move { drained.stats().await.unwrap().count(Status::Delivered) == 5 }
        },
    )
    .await;
    assert_eq!(state.health(), Health::Running);
    engine.shutdown().await;
    assert_eq!(outbox.stats().await.unwrap().count(Status::Failed), 0);
}
