//! The demo's closing table.

use crate::outbox::KindReport;

/// Prints one row per kind: outcomes, requests, retries, 429s and latency quantiles.
pub fn print(reports: &[KindReport], refreshes: u64, failed: &[String]) {
    println!();
    println!(
        "{:<14} {:>9} {:>6} {:>5} {:>8} {:>7} {:>5} {:>9} {:>9}",
        "kind", "delivered", "failed", "held", "requests", "retries", "429s", "p50 ms", "p99 ms"
    );
    for report in reports {
        let quantile = |q| {
            report
                .latency_quantile(q)
                .map_or("-".to_owned(), |ms| ms.to_string())
        };
        println!(
            "{:<14} {:>9} {:>6} {:>5} {:>8} {:>7} {:>5} {:>9} {:>9}",
            report.kind,
            report.delivered,
            report.failed,
            report.held,
            report.requests,
            report.retries,
            report.throttled,
            quantile(0.5),
            quantile(0.99)
        );
    }
    println!("token refreshes: {refreshes}");
    println!("latency is enqueue to delivered; it includes the injected faults and backoff.");
    for reason in failed {
        println!("failed {reason}");
    }
    println!();
}
