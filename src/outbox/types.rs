//! Values that cross the outbox boundary.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Status of a job; the names are those of the `jobs.status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InFlight,
    Delivered,
    Failed,
    Held,
    Cancelled,
}

impl Status {
    /// Every status, in the order of the state machine.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::InFlight,
        Status::Delivered,
        Status::Failed,
        Status::Held,
        Status::Cancelled,
    ];

    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in_flight",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Held => "held",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not be sent again without an operator.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a status name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job status {0:?}: expected pending, in_flight, delivered, failed, held or cancelled"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| UnknownStatus(name.to_owned()))
    }
}

/// A job to store, already validated and keyed by `updates::prepare`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    /// The request body, as JSON text.
    pub payload: String,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
    /// Key shared by jobs that may be merged into one request.
    pub batch_key: Option<String>,
    /// Earliest send time, Unix milliseconds.
    pub not_before_ms: Option<i64>,
}

/// The result of storing one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: i64,
    /// False when the idempotency key already existed and nothing was stored.
    pub created: bool,
}

/// A stored job, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub payload: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub reset_hits: Option<i64>,
    pub approved: bool,
}

/// One try of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub job_id: i64,
    /// Names the HTTP request; jobs merged into one request share it.
    pub request_id: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub http_status: Option<i64>,
    /// Transport error, when no HTTP answer arrived.
    pub error: Option<String>,
    /// Bounded excerpt of the response body.
    pub response: Option<String>,
    pub latency_ms: i64,
    /// `delivered`, `retry`, `failed`, `refresh`, `paused` or `held`.
    pub outcome: String,
}

/// Filter for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub kind: Option<String>,
    pub limit: u32,
    /// Return jobs with an id below this one (newest first); a cursor for paging.
    pub before_id: Option<i64>,
}

/// Queue counts for `ffrelay stats` and `/v1/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// `(status, kind, count)` for every combination present.
    pub counts: Vec<(String, String, i64)>,
    /// Age of the oldest pending job, in milliseconds.
    pub oldest_pending_age_ms: Option<i64>,
    /// `(outcome, count)` of attempts that finished in the last hour, among the newest
    /// 100,000 attempts.
    pub recent_outcomes: Vec<(String, i64)>,
}

impl Stats {
    /// Total jobs with a status.
    pub fn count(&self, status: Status) -> i64 {
        self.counts
            .iter()
            .filter(|(s, _, _)| s == status.as_str())
            .map(|(_, _, n)| n)
            .sum()
    }
}

/// Jobs per status that metrics report; delivered and cancelled jobs are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueDepth {
    pub counts: Vec<(Status, i64)>,
    /// Age of the oldest pending job, in milliseconds.
    pub oldest_pending_age_ms: Option<i64>,
}
