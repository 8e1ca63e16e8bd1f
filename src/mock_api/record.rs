//! The request log and the counters of the mock.
//!
//! Every `/v1` request is logged when it arrives, with status 0, and completed with its
//! status and response body when the response is sent, so a request that hangs stays in
//! the log with status 0. The counters are atomics and survive `clear_requests`, which is what lets
//! a benchmark check totals with bodies switched off.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::endpoint::Endpoint;
use super::faults::lock;

/// One `/v1` request and the response the mock sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Arrival time, Unix milliseconds.
    pub at_ms: i64,
    /// HTTP method, such as `PUT`.
    pub method: String,
    /// Request path, including `/v1`.
    pub path: String,
    /// The body as JSON, a JSON string when it was not valid JSON, or null when the mock
    /// runs with `record_bodies` off.
    pub body: Value,
    /// Status sent, or 0 while no response has been sent.
    pub status: u16,
    /// Response body sent (empty for a successful update).
    pub response: String,
}

/// Counters of the responses the mock sent since it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MockStats {
    /// Requests to `/v1` that got a response.
    pub requests: u64,
    /// Responses to `/v1` requests by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Items accepted per update endpoint: the length of `hits` or `costSegments`, and 1 per
    /// accepted reset request.
    pub accepted_items: EndpointCounts,
    /// Update requests that succeeded, per endpoint.
    pub accepted_requests: EndpointCounts,
    /// Successful token refreshes.
    pub refreshes: u64,
    /// Refresh requests rejected with 401.
    pub refused_refreshes: u64,
    /// Requests rejected with 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests held without a response until shutdown (see `Faults::hang_rate`).
    pub hung: u64,
}

/// One number per update endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCounts {
    /// `PUT /reporting/update/conversions/`
    pub conversions: u64,
    /// `PUT /reporting/update/customevents/`
    pub custom_events: u64,
    /// `PUT /reporting/update/cost/`
    pub cost: u64,
    /// `POST /reporting/update/reset/`
    pub reset_validate: u64,
    /// `DELETE /reporting/update/reset/`
    pub reset_perform: u64,
}

impl EndpointCounts {
    fn load(counters: &[AtomicU64; Endpoint::UPDATES]) -> Self {
        let [
            conversions,
            custom_events,
            cost,
            reset_validate,
            reset_perform,
        ] = counters
            .each_ref()
            .map(|counter| counter.load(Ordering::Relaxed));
        EndpointCounts {
            conversions,
            custom_events,
            cost,
            reset_validate,
            reset_perform,
        }
    }
}

/// Statuses at or above this value share the last slot of `Counters::by_status`.
const STATUS_SLOTS: usize = 600;

/// Lock-free counters behind `MockStats`.
pub(crate) struct Counters {
    by_status: Box<[AtomicU64]>,
    accepted_items: [AtomicU64; Endpoint::UPDATES],
    accepted_requests: [AtomicU64; Endpoint::UPDATES],
    pub(crate) refreshes: AtomicU64,
    pub(crate) refused_refreshes: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) hung: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            accepted_items: Default::default(),
            accepted_requests: Default::default(),
            refreshes: AtomicU64::new(0),
            refused_refreshes: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            hung: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_status(&self, status: u16) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        self.by_status[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted request of `endpoint` carrying `items` items.
    pub(crate) fn count_accepted(&self, endpoint: Endpoint, items: usize) {
        let Some(index) = endpoint.update_index() else {
            return;
        };
        let items = u64::try_from(items).unwrap_or(u64::MAX);
        self.accepted_items[index].fetch_add(items, Ordering::Relaxed);
        self.accepted_requests[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MockStats {
        let by_status: BTreeMap<u16, u64> = (0..STATUS_SLOTS)
            .filter_map(|slot| {
                let count = self.by_status[slot].load(Ordering::Relaxed);
                let status = u16::try_from(slot).ok()?;
                (count > 0).then_some((status, count))
            })
            .collect();
        MockStats {
            requests: by_status.values().sum(),
            by_status,
            accepted_items: EndpointCounts::load(&self.accepted_items),
            accepted_requests: EndpointCounts::load(&self.accepted_requests),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            refused_refreshes: self.refused_refreshes.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            hung: self.hung.load(Ordering::Relaxed),
        }
    }
}

/// The request log. Sequence numbers count every request since start, so a request can be
/// completed after `clear` without touching a newer entry.
pub(crate) struct Recorder {
    log: Mutex<Log>,
    pub(crate) record_bodies: bool,
}

struct Log {
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    entries: Vec<RecordedRequest>,
}

impl Recorder {
    pub(crate) fn new(record_bodies: bool) -> Self {
        let log = Log {
            first_seq: 0,
            entries: Vec::new(),
        };
        Recorder {
            log: Mutex::new(log),
            record_bodies,
        }
    }

    /// Logs an arriving request with status 0 and returns its sequence number.
    pub(crate) fn begin(&self, request: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        let seq = log.first_seq + log.entries.len() as u64;
        log.entries.push(request);
        seq
    }

    /// Stores the response of request `seq`, unless `clear` removed it meanwhile.
    pub(crate) fn finish(&self, seq: u64, status: u16, response: &str) {
        let mut log = lock(&self.log);
        let Some(index) = seq.checked_sub(log.first_seq) else {
            return;
        };
        if let Some(entry) = log.entries.get_mut(index as usize) {
            entry.status = status;
            entry.response = response.to_owned();
        }
    }

    /// Returns copies of the entries from index `since` on (0 for all).
    pub(crate) fn entries(&self, since: usize) -> Vec<RecordedRequest> {
        let log = lock(&self.log);
        log.entries.get(since..).unwrap_or_default().to_vec()
    }

    pub(crate) fn clear(&self) {
        let mut log = lock(&self.log);
        log.first_seq += log.entries.len() as u64;
        log.entries = Vec::new();
    }
}
