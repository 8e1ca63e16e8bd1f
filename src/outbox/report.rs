//! Delivery report per kind, for the demo summary and the benchmarks.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::admin::lossy_text;
use super::{Outbox, OutboxError};

/// What happened to the jobs of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub delivered: i64,
    pub failed: i64,
    pub held: i64,
    pub pending: i64,
    /// Distinct HTTP requests sent for jobs of this kind.
    pub requests: i64,
    /// Attempts that ended in a retry (including throttled ones).
    pub retries: i64,
    /// Requests that got a 429 response.
    pub throttled: i64,
    /// Enqueue-to-delivered times of delivered jobs, in milliseconds, sorted.
    pub latencies_ms: Vec<i64>,
}

impl KindReport {
    /// The latency at quantile `q` (0 to 1), or `None` without delivered jobs.
    pub fn latency_quantile(&self, q: f64) -> Option<i64> {
        let last = self.latencies_ms.len().checked_sub(1)?;
        let index = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
        self.latencies_ms.get(index).copied()
    }
}

impl Outbox {
    /// Counts, requests, retries and latencies per kind, over every job in the outbox.
    pub async fn report(&self) -> Result<Vec<KindReport>, OutboxError> {
        let mut kinds: BTreeMap<String, KindReport> = BTreeMap::new();
        let counts = sqlx::query("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")
            .fetch_all(&self.reader)
            .await?;
        for row in counts {
            let entry = entry(&mut kinds, lossy_text(&row, 0).unwrap_or_default());
            let count: i64 = row.get(2);
            match row.get::<String, _>(1).as_str() {
                "delivered" => entry.delivered = count,
                "failed" => entry.failed = count,
                "held" => entry.held = count,
                "pending" | "in_flight" => entry.pending += count,
                _ => {}
            }
        }
        let attempts = sqlx::query(
            "SELECT j.kind, COUNT(DISTINCT a.request_id), \
             SUM(a.outcome IN ('retry', 'throttled', 'refresh')), \
             COUNT(DISTINCT CASE WHEN a.outcome = 'throttled' THEN a.request_id END) \
             FROM attempts a JOIN jobs j ON j.id = a.job_id GROUP BY j.kind",
        )
        .fetch_all(&self.reader)
        .await?;
        for row in attempts {
            let entry = entry(&mut kinds, lossy_text(&row, 0).unwrap_or_default());
            entry.requests = row.get(1);
            entry.retries = row.get::<Option<i64>, _>(2).unwrap_or(0);
            entry.throttled = row.get::<Option<i64>, _>(3).unwrap_or(0);
        }
        let latencies = sqlx::query(
            "SELECT kind, finished_at - created_at FROM jobs WHERE status = 'delivered' \
             ORDER BY kind, finished_at - created_at",
        )
        .fetch_all(&self.reader)
        .await?;
        for row in latencies {
            entry(&mut kinds, lossy_text(&row, 0).unwrap_or_default())
                .latencies_ms
                .push(row.get(1));
        }
        Ok(kinds.into_values().collect())
    }
}

fn entry(kinds: &mut BTreeMap<String, KindReport>, kind: String) -> &mut KindReport {
    kinds.entry(kind.clone()).or_insert_with(|| KindReport {
        kind,
        ..KindReport::default()
    })
}
