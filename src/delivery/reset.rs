//! Data resets, which delete data: validate first and record the count; hold the job for
//! approval when the count is above its guard; perform it otherwise or once approved.

use serde_json::Value;
use tracing::{info, warn};

use super::engine::Shared;
use super::send::{JobResult, Tracked};
use crate::api::{Endpoint, Outcome};

/// Field of a reset payload that sets the job's own guard; ffrelay removes it before
/// sending, because it is not part of the API.
pub const MAX_HITS_FIELD: &str = "maxHits";

impl Shared {
    /// Runs one reset job to its result for this try.
    pub(super) async fn deliver_reset(&self, jobs: &mut [Tracked]) {
        let mut body = jobs[0].body.clone();
        let own_limit = body
            .as_object_mut()
            .and_then(|fields| fields.remove(MAX_HITS_FIELD))
            .and_then(|limit| limit.as_i64());
        if !jobs[0].claimed.approved {
            let Some(hits) = self.validate_reset(&body, jobs).await else {
                return;
            };
            let limit = own_limit.unwrap_or(self.config.reset_max_hits);
            if hits > limit {
                let id = jobs[0].claimed.id;
                let reason = format!(
                    "reset would delete {hits} hits, above the limit of {limit}; \
                     approve it with `ffrelay jobs approve {id}`"
                );
                warn!(job_id = id, hits, limit, "reset held for approval");
                jobs[0].settle(JobResult::Held { reason });
                return;
            }
        }
        let outcome = self
            .send_request(Endpoint::PerformReset, &body, &[0], jobs)
            .await;
        if outcome == Outcome::Delivered {
            info!(
                job_id = jobs[0].claimed.id,
                hits = jobs[0].claimed.reset_hits,
                "reset performed"
            );
        }
        jobs[0].settle(JobResult::from(&outcome));
    }

    /// Sends the validation request; returns the count, or settles the job and returns
    /// `None` when validation did not succeed.
    async fn validate_reset(&self, body: &Value, jobs: &mut [Tracked]) -> Option<i64> {
        let outcome = self
            .send_request(Endpoint::ValidateReset, body, &[0], jobs)
            .await;
        if outcome != Outcome::Delivered {
            jobs[0].settle(JobResult::from(&outcome));
            return None;
        }
        let response = jobs[0]
            .attempts
            .last()
            .and_then(|a| a.response.clone())
            .unwrap_or_default();
        let count = serde_json::from_str::<Value>(&response)
            .ok()
            .and_then(|answer| answer.get("value").and_then(Value::as_i64));
        let Some(hits) = count else {
            let reason =
                format!("reset validation answered without an integer \"value\": {response}");
            jobs[0].settle(JobResult::Retry {
                after: None,
                reason,
            });
            return None;
        };
        let id = jobs[0].claimed.id;
        if let Err(err) = self.outbox.set_reset_hits(&self.run_id, id, hits).await {
            warn!(job_id = id, error = %err, "failed to record the reset hit count");
        }
        jobs[0].claimed.reset_hits = Some(hits);
        Some(hits)
    }
}
