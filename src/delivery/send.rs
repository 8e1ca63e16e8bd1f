//! One delivery try of a claimed group of jobs: plan the requests, send them, isolate
//! rejected jobs, and turn the answers into each job's next state.
//!
//! Conversion and custom-event jobs with equal options share requests (custom events at
//! most 10 items each). When a request that carries several jobs is rejected as invalid,
//! the jobs are split in halves and sent again until the offending ones are found; only
//! those fail. An authentication pause stops the try, and the unsent jobs are released
//! without losing an attempt.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, error};

use super::engine::Shared;
use crate::api::{Endpoint, Exchange, Outcome};
use crate::outbox::{Attempt, Claimed, Finish, Transition, now_ms};
use crate::telemetry;
use crate::updates::{Kind, halves, pack};

/// Largest excerpt of a response body kept in an attempt row.
const MAX_EXCERPT_CHARS: usize = 2000;

/// A claimed job with its parsed body and what this try did to it.
pub(super) struct Tracked {
    pub claimed: Claimed,
    pub kind: Kind,
    pub body: Value,
    pub attempts: Vec<Attempt>,
    pub result: Option<JobResult>,
}

/// The result of this try for one job, before retry timing is applied.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum JobResult {
    Delivered,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Failed {
        reason: String,
    },
    Held {
        reason: String,
    },
    Release {
        reason: String,
    },
}

impl JobResult {
    /// Severity used when one job was part of several requests: the worst wins.
    fn rank(&self) -> u8 {
        match self {
            JobResult::Delivered => 0,
            JobResult::Retry { .. } => 1,
            JobResult::Failed { .. } | JobResult::Held { .. } => 2,
            JobResult::Release { .. } => 3,
        }
    }
}

impl Tracked {
    pub fn settle(&mut self, result: JobResult) {
        let worse = match &self.result {
            Some(current) => result.rank() > current.rank(),
            None => true,
        };
        if worse {
            self.result = Some(result);
        }
    }
}

impl From<&Outcome> for JobResult {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Delivered => JobResult::Delivered,
            Outcome::Retry { after, reason, .. } => JobResult::Retry {
                after: *after,
                reason: reason.clone(),
            },
            Outcome::RefreshToken { reason } => JobResult::Retry {
                after: None,
                reason: reason.clone(),
            },
            Outcome::Pause { reason } => JobResult::Release {
                reason: reason.clone(),
            },
            Outcome::Failed { reason } => JobResult::Failed {
                reason: reason.clone(),
            },
        }
    }
}

impl Shared {
    /// Delivers one claimed group (a single job, or jobs that may share requests) and
    /// returns each job with the result of this try.
    pub(super) async fn deliver(&self, claimed: Vec<Claimed>) -> Vec<Tracked> {
        let (mut valid, invalid): (Vec<Tracked>, Vec<Tracked>) = claimed
            .into_iter()
            .map(track)
            .partition(|job| job.result.is_none());
        let Some(first) = valid.first() else {
            return invalid;
        };
        match first.kind {
            Kind::Reset => self.deliver_reset(&mut valid[..1]).await,
            Kind::Cost => self.deliver_singly(&mut valid).await,
            Kind::Conversions | Kind::CustomEvents => self.deliver_batch(&mut valid).await,
        }
        valid.extend(invalid);
        valid
    }

    /// Sends one request per job.
    async fn deliver_singly(&self, jobs: &mut [Tracked]) {
        for index in 0..jobs.len() {
            if self.gate.holds_requests() {
                release(
                    jobs,
                    &[index],
                    "delivery paused before this request was sent",
                );
                continue;
            }
            let endpoint = Endpoint::for_kind(jobs[index].kind);
            let body = jobs[index].body.clone();
            let outcome = self.send_request(endpoint, &body, &[index], jobs).await;
            jobs[index].settle(JobResult::from(&outcome));
        }
    }

    /// Sends one request for the given jobs and records an attempt on each of them.
    pub(super) async fn send_request(
        &self,
        endpoint: Endpoint,
        body: &Value,
        members: &[usize],
        jobs: &mut [Tracked],
    ) -> Outcome {
        let waited = self.limiter.acquire().await;
        metrics::histogram!(telemetry::RATE_LIMIT_WAIT).record(waited.as_secs_f64());
        metrics::gauge!(telemetry::REQUESTS_IN_FLIGHT).increment(1.0);
        let exchange = self.client.send(endpoint, body).await;
        metrics::gauge!(telemetry::REQUESTS_IN_FLIGHT).decrement(1.0);
        let kind = jobs
            .get(members[0])
            .map_or("unknown", |job| job.kind.as_str());
        metrics::histogram!(telemetry::REQUEST_DURATION, "kind" => kind)
            .record(exchange.latency.as_secs_f64());

        let request_id = uuid::Uuid::new_v4().simple().to_string();
        for &member in members {
            let attempt = attempt_record(&exchange, &request_id, jobs[member].claimed.id);
            jobs[member].attempts.push(attempt);
        }
        self.observe(&exchange);
        exchange.outcome
    }

    /// Feeds the breaker, the rate limiter and the authentication pause.
    fn observe(&self, exchange: &Exchange) {
        let now = Instant::now();
        let class = telemetry::status_class(exchange.status);
        metrics::counter!(telemetry::ATTEMPTS, "outcome" => outcome_name(&exchange.outcome), "status_class" => class)
            .increment(1);
        match &exchange.outcome {
            Outcome::Delivered | Outcome::Failed { .. } => self.gate.record(now, true, false),
            Outcome::Retry {
                after,
                throttled: true,
                ..
            } => {
                metrics::counter!(telemetry::THROTTLED).increment(1);
                let pause = after.unwrap_or_else(|| self.retry.delay(1, &mut rand::rng()));
                self.limiter.pause_until(now + pause);
                self.gate.record(now, false, false);
            }
            Outcome::Retry { .. } | Outcome::RefreshToken { .. } => {
                self.gate.record(now, false, true)
            }
            Outcome::Pause { reason } => self.gate.pause_auth(reason, now),
        }
    }

    /// Delivers batchable jobs (all of one kind and options) in as few requests as the
    /// item limit allows, splitting rejected requests to find the offending jobs.
    pub(super) async fn deliver_batch(&self, jobs: &mut [Tracked]) {
        let kind = jobs[0].kind;
        let limit = kind
            .max_items_per_request()
            .map_or(self.config.max_batch_items, |max| {
                max.min(self.config.max_batch_items)
            });
        let everyone: Vec<usize> = (0..jobs.len()).collect();
        let mut stack = vec![everyone];
        while let Some(members) = stack.pop() {
            if self.gate.holds_requests() {
                release(
                    jobs,
                    &members,
                    "delivery paused before this request was sent",
                );
                continue;
            }
            for (first, second) in self.deliver_members(kind, limit, &members, jobs).await {
                stack.push(second);
                stack.push(first);
            }
        }
    }

    /// Sends the requests for `members`; returns the halves of rejected multi-job requests.
    async fn deliver_members(
        &self,
        kind: Kind,
        limit: usize,
        members: &[usize],
        jobs: &mut [Tracked],
    ) -> Vec<(Vec<usize>, Vec<usize>)> {
        let bodies: Vec<&Value> = members.iter().map(|&m| &jobs[m].body).collect();
        let chunks = match pack(&bodies, limit) {
            Ok(chunks) => chunks,
            Err(err) => {
                let reason = format!("cannot build the request body: {err}");
                members.iter().for_each(|&m| {
                    jobs[m].settle(JobResult::Failed {
                        reason: reason.clone(),
                    })
                });
                return Vec::new();
            }
        };
        let mut splits = Vec::new();
        for chunk in chunks {
            let ids: Vec<usize> = chunk.members.iter().map(|&i| members[i]).collect();
            if self.gate.holds_requests() {
                release(jobs, &ids, "delivery paused before this request was sent");
                continue;
            }
            let outcome = self
                .send_request(Endpoint::for_kind(kind), &chunk.body, &ids, jobs)
                .await;
            match (&outcome, halves(&ids)) {
                (Outcome::Failed { .. }, Some((first, second))) => {
                    debug!(
                        jobs = ids.len(),
                        "request rejected; splitting it to find the invalid jobs"
                    );
                    splits.push((first.to_vec(), second.to_vec()));
                }
                _ => ids
                    .iter()
                    .for_each(|&m| jobs[m].settle(JobResult::from(&outcome))),
            }
        }
        splits
    }

    /// Turns each job's result into its next state, applying the retry schedule and the
    /// give-up limits, and logs and counts the final outcomes.
    pub(super) fn finish_all(&self, jobs: Vec<Tracked>) -> Vec<Finish> {
        jobs.into_iter().map(|job| self.finish_one(job)).collect()
    }

    fn finish_one(&self, job: Tracked) -> Finish {
        let id = job.claimed.id;
        let kind = job.kind.as_str();
        let result = job.result.unwrap_or(JobResult::Release {
            reason: "not sent".into(),
        });
        let transition = match result {
            JobResult::Delivered => {
                metrics::counter!(telemetry::JOBS_DELIVERED, "kind" => kind).increment(1);
                debug!(job_id = id, kind, "delivered");
                Transition::Delivered
            }
            JobResult::Failed { reason } => self.fail(id, kind, reason),
            JobResult::Held { reason } => Transition::Held { reason },
            JobResult::Release { .. } => Transition::Release,
            JobResult::Retry { after, reason } => {
                let attempts = u32::try_from(job.claimed.attempts + 1).unwrap_or(u32::MAX);
                let age_ms = (now_ms() - job.claimed.created_at).max(0) as u64;
                if self.retry.gives_up(attempts, Duration::from_millis(age_ms)) {
                    let reason = format!("gave up after {attempts} attempts: {reason}");
                    self.fail(id, kind, reason)
                } else {
                    let delay = self.retry.next_delay(attempts, after, &mut rand::rng());
                    debug!(
                        job_id = id,
                        kind,
                        attempts,
                        delay_ms = delay.as_millis() as u64,
                        reason,
                        "will retry"
                    );
                    let at_ms = now_ms().saturating_add(delay.as_millis() as i64);
                    Transition::Retry { at_ms, reason }
                }
            }
        };
        Finish {
            job_id: id,
            attempts: job.attempts,
            transition,
        }
    }

    fn fail(&self, id: i64, kind: &'static str, reason: String) -> Transition {
        metrics::counter!(telemetry::JOBS_FAILED, "kind" => kind).increment(1);
        error!(job_id = id, kind, reason, "job failed for good");
        Transition::Failed { reason }
    }
}

/// Parses a claimed row; a row that no longer parses is settled as failed at once.
fn track(claimed: Claimed) -> Tracked {
    let kind = claimed.kind.parse::<Kind>();
    let body = serde_json::from_str::<Value>(&claimed.payload);
    let result = match (&kind, &body) {
        (Ok(_), Ok(_)) => None,
        (Err(err), _) => Some(JobResult::Failed {
            reason: err.to_string(),
        }),
        (_, Err(err)) => Some(JobResult::Failed {
            reason: format!("payload is not valid JSON: {err}"),
        }),
    };
    Tracked {
        kind: kind.unwrap_or(Kind::Conversions),
        body: body.unwrap_or(Value::Null),
        claimed,
        attempts: Vec::new(),
        result,
    }
}

fn release(jobs: &mut [Tracked], members: &[usize], reason: &str) {
    for &member in members {
        jobs[member].settle(JobResult::Release {
            reason: reason.to_owned(),
        });
    }
}

fn attempt_record(exchange: &Exchange, request_id: &str, job_id: i64) -> Attempt {
    let latency_ms = exchange.latency.as_millis() as i64;
    let response = (!exchange.body.is_empty())
        .then(|| exchange.body.chars().take(MAX_EXCERPT_CHARS).collect());
    Attempt {
        job_id,
        request_id: request_id.to_owned(),
        started_at: exchange.started_at_ms,
        finished_at: exchange.started_at_ms + latency_ms,
        http_status: exchange.status.map(i64::from),
        error: exchange.error.clone(),
        response,
        latency_ms,
        outcome: outcome_name(&exchange.outcome).to_owned(),
    }
}

/// The attempt outcome names stored in `attempts.outcome`.
pub(super) fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry {
            throttled: true, ..
        } => "throttled",
        Outcome::Retry { .. } => "retry",
        Outcome::RefreshToken { .. } => "refresh",
        Outcome::Pause { .. } => "paused",
        Outcome::Failed { .. } => "failed",
    }
}
