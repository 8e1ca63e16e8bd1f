//! The worker pool: claim, send, record; plus lease renewal, lease recovery, retention
//! and a graceful shutdown.
//!
//! Shutdown sequence: the shutdown signal stops every worker from claiming; in-flight
//! tries get `shutdown_grace` to finish and record their outcome; workers still running
//! after that are aborted, and every job this run still holds is released to pending so
//! that the next start sends it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::breaker::{Breaker, BreakerConfig};
use super::gate::{Admission, Decision, Gate};
use super::rate_limit::RateLimiter;
use super::retry::RetryPolicy;
use super::state::{DeliveryState, Health};
use crate::api::Client;
use crate::config::Settings;
use crate::outbox::{ClaimOptions, Outbox};

/// Settings of the engine, taken from `delivery.*` and `reset.*`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub workers: usize,
    pub max_batch_items: usize,
    pub linger: Duration,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub shutdown_grace: Duration,
    pub reset_max_hits: i64,
    pub rate_limit_per_second: Option<f64>,
    pub burst: u32,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Delivered and cancelled jobs older than this are pruned.
    pub retention: Duration,
    /// How often pruning and the WAL checkpoint run.
    pub maintenance_interval: Duration,
}

impl EngineConfig {
    /// The engine settings of a configuration.
    pub fn from_settings(settings: &Settings) -> EngineConfig {
        let d = &settings.delivery;
        EngineConfig {
            workers: d.workers,
            max_batch_items: d.max_batch_items,
            linger: d.linger,
            poll_interval: d.poll_interval,
            lease: d.lease,
            shutdown_grace: d.shutdown_grace,
            reset_max_hits: settings.reset.max_hits,
            rate_limit_per_second: d.rate_limit_per_second,
            burst: d.burst,
            retry: RetryPolicy {
                initial: d.backoff_initial,
                max: d.backoff_max,
                max_age: d.max_age,
                max_attempts: d.max_attempts,
            },
            breaker: BreakerConfig {
                failure_threshold: d.breaker_failure_ratio,
                initial_cooldown: d.backoff_initial,
                max_cooldown: d.backoff_max,
                ..BreakerConfig::default()
            },
            retention: settings.retention.delivered,
            maintenance_interval: settings.retention.interval,
        }
    }
}

/// State shared by all workers of one engine.
pub(super) struct Shared {
    pub outbox: Outbox,
    pub client: Client,
    pub limiter: RateLimiter,
    pub gate: Gate,
    pub retry: RetryPolicy,
    pub config: EngineConfig,
    pub run_id: String,
    /// The last database problem logged, so that a lasting one is logged once.
    pub last_database_error: std::sync::Mutex<String>,
}

/// Counts reported when the engine stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShutdownReport {
    /// Workers that did not finish within the grace period.
    pub aborted_workers: usize,
    /// Jobs returned to pending at the end.
    pub released_jobs: u64,
}

/// A running worker pool.
pub struct Engine {
    shared: Arc<Shared>,
    workers: JoinSet<()>,
    stop: watch::Sender<bool>,
    state: DeliveryState,
}

impl Engine {
    /// Starts the workers for `run_id`, after recovering the leases of dead runs.
    pub async fn start(
        outbox: Outbox,
        client: Client,
        config: EngineConfig,
        run_id: String,
        state: DeliveryState,
    ) -> Engine {
        match outbox.recover_dead_runs(&run_id).await {
            Ok(0) => {}
            Ok(count) => info!(jobs = count, "returned jobs of stopped runs to pending"),
            Err(err) => warn!(error = %err, "failed to recover jobs of stopped runs"),
        }
        metrics::gauge!(crate::telemetry::BREAKER_STATE).set(0.0);
        metrics::gauge!(crate::telemetry::AUTH_PAUSED).set(0.0);
        let breaker = Breaker::new(config.breaker);
        let gate = Gate::new(
            breaker,
            state.clone(),
            config.retry.initial,
            config.retry.max,
        );
        let shared = Arc::new(Shared {
            limiter: RateLimiter::new(config.rate_limit_per_second, config.burst),
            retry: config.retry,
            outbox,
            client,
            gate,
            run_id,
            config,
            last_database_error: std::sync::Mutex::new(String::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        for index in 0..shared.config.workers {
            workers.spawn(worker(Arc::clone(&shared), stopped.clone(), index));
        }
        workers.spawn(housekeeping(Arc::clone(&shared), stopped));
        Engine {
            shared,
            workers,
            stop,
            state,
        }
    }

    /// Stops claiming, waits up to the grace period for in-flight tries, then releases
    /// every job this run still holds.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.state.set(Health::Stopping);
        let _ = self.stop.send(true);
        let grace = self.shared.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        let aborted_workers = if drained.is_err() {
            self.workers.len()
        } else {
            0
        };
        self.workers.shutdown().await;
        let released_jobs = match self.shared.outbox.release_run(&self.shared.run_id).await {
            Ok(count) => count,
            Err(err) => {
                warn!(error = %err, "failed to release jobs at shutdown; they return when their leases expire");
                0
            }
        };
        ShutdownReport {
            aborted_workers,
            released_jobs,
        }
    }
}

/// One worker: wait for admission, claim, deliver, record; until told to stop.
async fn worker(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>, index: usize) {
    let wake = shared.outbox.enqueued();
    while !*stopped.borrow() {
        let admission = match shared.gate.decide(Instant::now()) {
            Decision::Admit(admission) => admission,
            Decision::Wait(delay) => {
                let delay = delay.min(shared.config.poll_interval);
                sleep_or_stop(&mut stopped, delay, None).await;
                continue;
            }
        };
        let delivered_any = match supervised_try(&shared, admission).await {
            Ok(Some(delivered)) => delivered,
            Ok(None) => {
                shared.gate.unused(admission, Instant::now());
                sleep_or_stop(&mut stopped, shared.config.poll_interval, Some(&wake)).await;
                continue;
            }
            Err(err) => {
                shared.gate.unused(admission, Instant::now());
                warn!(worker = index, error = %err, "outbox error; retrying after the poll interval");
                sleep_or_stop(&mut stopped, shared.config.poll_interval, None).await;
                continue;
            }
        };
        if admission == Admission::AuthProbe {
            if delivered_any {
                shared.gate.resume_auth("a probe request succeeded");
            } else {
                shared.gate.unused(admission, Instant::now());
            }
        }
    }
    debug!(worker = index, "worker stopped");
}

/// Runs one try in a task of its own, so that a panic in it (a bug) ends that try only:
/// the worker logs it and goes on, and the try's jobs return when their leases expire.
/// The task is aborted if the worker is, so that it never outlives the shutdown.
async fn supervised_try(
    shared: &Arc<Shared>,
    admission: Admission,
) -> Result<Option<bool>, crate::outbox::OutboxError> {
    struct AbortOnDrop(tokio::task::JoinHandle<Result<Option<bool>, crate::outbox::OutboxError>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    let task = Arc::clone(shared);
    let mut handle = AbortOnDrop(tokio::spawn(async move { task.try_once(admission).await }));
    match (&mut handle.0).await {
        Ok(result) => result,
        Err(err) => {
            tracing::error!(error = %err, "a delivery try panicked; its jobs return to pending when their leases expire");
            Ok(None)
        }
    }
}

/// Sleeps for `delay`, returning early on shutdown or, when given, on a wake-up.
async fn sleep_or_stop(
    stopped: &mut watch::Receiver<bool>,
    delay: Duration,
    wake: Option<&tokio::sync::Notify>,
) {
    let woken = async {
        match wake {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stopped.changed() => {}
        _ = woken => {}
    }
}

impl Shared {
    /// Claims and delivers one group. Returns `None` when nothing was ready, else whether
    /// any request reached the API and was answered with a final outcome.
    async fn try_once(
        &self,
        admission: Admission,
    ) -> Result<Option<bool>, crate::outbox::OutboxError> {
        if admission == Admission::AuthProbe && self.client.tokens().reload_files().await {
            self.gate
                .resume_auth("new tokens read from the secret files");
        }
        if admission == Admission::Send && !self.config.linger.is_zero() {
            tokio::time::sleep(self.config.linger).await;
        }
        let max_jobs = match admission {
            Admission::Send => self.config.max_batch_items,
            Admission::AuthProbe | Admission::BreakerProbe => 1,
        };
        let options = ClaimOptions {
            run_id: self.run_id.clone(),
            lease: self.config.lease,
            max_jobs,
        };
        let claimed = self.outbox.claim(&options).await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let ids: Vec<i64> = claimed.iter().map(|job| job.id).collect();
        let renewal = self.spawn_renewal(ids);
        let tracked = self.deliver(claimed).await;
        renewal.abort();

        let answered = tracked.iter().any(|job| {
            matches!(
                job.result,
                Some(super::send::JobResult::Delivered | super::send::JobResult::Failed { .. })
            )
        });
        let finishes = self.finish_all(tracked);
        let lost = self.outbox.finish(&self.run_id, &finishes).await?;
        if !lost.is_empty() {
            warn!(job_ids = ?lost, "lease lost before the outcome was recorded; the jobs may be sent again");
        }
        Ok(Some(answered))
    }

    /// Keeps the leases of `ids` alive while their requests run.
    fn spawn_renewal(&self, ids: Vec<i64>) -> tokio::task::JoinHandle<()> {
        let outbox = self.outbox.clone();
        let run_id = self.run_id.clone();
        let lease = self.config.lease;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(lease / 3);
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(err) = outbox.renew(&run_id, &ids, lease).await {
                    warn!(error = %err, jobs = ids.len(), "failed to renew leases");
                }
            }
        })
    }
}

/// Periodic work: recover expired leases and dead runs, prune, checkpoint, publish state.
async fn housekeeping(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let recovery_every = (shared.config.lease / 2).min(Duration::from_secs(5));
    let mut last_state = String::new();
    let mut next_maintenance = Instant::now() + shared.config.maintenance_interval;
    while !*stopped.borrow() {
        sleep_or_stop(&mut stopped, recovery_every, None).await;
        if Instant::now() >= next_maintenance {
            shared.maintain().await;
            next_maintenance = Instant::now() + shared.config.maintenance_interval;
        }
        if let Err(err) = shared.outbox.recover_expired().await {
            warn!(error = %err, "failed to recover expired leases");
        }
        if let Err(err) = shared.outbox.recover_dead_runs(&shared.run_id).await {
            warn!(error = %err, "failed to recover jobs of stopped runs");
        }
        if let Err(err) = shared.outbox.ping().await {
            shared.report_database_error(&err);
        }
        if shared.client.tokens().reload_files().await {
            shared
                .gate
                .resume_auth("new tokens read from the secret files");
        }
        last_state = shared.publish_state(last_state).await;
    }
}

impl Shared {
    /// Logs a database problem found by the periodic check, once per distinct message.
    fn report_database_error(&self, err: &crate::outbox::OutboxError) {
        let message = err.to_string();
        let Ok(mut last) = self.last_database_error.lock() else {
            return;
        };
        if *last != message {
            tracing::error!(error = %message, "database check failed");
            *last = message;
        }
    }

    /// Prunes finished jobs past retention and checkpoints the write-ahead log.
    async fn maintain(&self) {
        match self.outbox.prune(self.config.retention).await {
            Ok(0) => {}
            Ok(count) => info!(jobs = count, "pruned finished jobs past retention"),
            Err(err) => warn!(error = %err, "failed to prune finished jobs"),
        }
        if let Err(err) = self.outbox.checkpoint().await {
            warn!(error = %err, "failed to checkpoint the write-ahead log");
        }
    }

    /// Writes the health to the runs table when it changed, for `ffrelay stats`.
    async fn publish_state(&self, last: String) -> String {
        let health = self.gate.health();
        let key = format!("{}:{}", health.name(), health.reason().unwrap_or(""));
        if key == last {
            return last;
        }
        match self
            .outbox
            .set_run_state(&self.run_id, health.name(), health.reason())
            .await
        {
            Ok(()) => key,
            Err(err) => {
                warn!(error = %err, "failed to record the delivery state");
                last
            }
        }
    }
}
