//! The client-side rate limit shared by all workers: one token bucket on the tokio clock.
//!
//! The bucket is kept as a generic cell rate algorithm (GCRA): one "theoretical arrival
//! time" stands for the fill level. Each caller reserves the next free send time under a
//! mutex and then sleeps until it, so waiting costs no polling, and callers are served in
//! the order they reserved. A pause (after a 429) delays every caller until it ends, and
//! afterwards the bucket starts empty, so delivery resumes at the steady rate, not with a
//! burst. Because it runs on `tokio::time`, tests can use paused time.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Lowest rate the limiter applies: one request per hour. Lower, zero, negative or NaN
/// rates are raised to it so that a bad value slows delivery instead of lifting the limit.
pub const MIN_RATE_PER_SECOND: f64 = 1.0 / 3600.0;

/// Token bucket shared by all workers. Clones share the same bucket.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    shared: Arc<Mutex<State>>,
    /// Time between two requests at the steady rate, or `None` for no limit.
    interval: Option<Duration>,
    /// How far the schedule may run ahead of the clock: `(burst - 1) * interval`.
    tolerance: Duration,
}

#[derive(Debug)]
struct State {
    /// Time at which the bucket would be full again if nothing more were sent. The next
    /// request may go at `theoretical_arrival - tolerance` at the earliest.
    theoretical_arrival: Instant,
    /// End of the current pause, if one was set.
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// Creates a limiter for `per_second` requests per second (`None` or infinity for no
    /// limit) with up to `burst` requests at once. A `burst` of 0 is treated as 1.
    pub fn new(per_second: Option<f64>, burst: u32) -> Self {
        let interval = per_second.and_then(interval_for_rate);
        let extra_burst = burst.saturating_sub(1);
        let tolerance = interval.map_or(Duration::ZERO, |i| i.saturating_mul(extra_burst));
        let state = State {
            theoretical_arrival: Instant::now(),
            paused_until: None,
        };

        Self {
            shared: Arc::new(Mutex::new(state)),
            interval,
            tolerance,
        }
    }

    /// Waits until the caller may send one request, and returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let start = Instant::now();
        loop {
            let slot = self.reserve(Instant::now());
            if slot > Instant::now() {
                tokio::time::sleep_until(slot).await;
            }

            // A pause set while this caller slept cancels its slot, so it queues again.
            if !self.is_paused_at(Instant::now()) {
                return start.elapsed();
            }
        }
    }

    /// Delays every caller of [`acquire`](Self::acquire) until `until`. A later end extends
    /// the current pause, and an earlier one leaves it as it is.
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        if until <= Instant::now() {
            return;
        }

        state.paused_until = Some(state.paused_until.map_or(until, |old| old.max(until)));

        // Empty the bucket at the end of the pause, so the first request goes at `until`
        // and the next ones follow at the steady rate.
        let empty_at_end = until.checked_add(self.tolerance).unwrap_or(until);
        state.theoretical_arrival = state.theoretical_arrival.max(empty_at_end);
    }

    /// Returns the end of the current pause, or `None` when delivery is not paused.
    pub fn paused_until(&self) -> Option<Instant> {
        let now = Instant::now();
        self.lock().paused_until.filter(|until| *until > now)
    }

    /// Reserves the next send time at or after `now` and returns it.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let start = match state.paused_until {
            Some(until) if until > now => until,
            _ => now,
        };
        let Some(interval) = self.interval else {
            return start;
        };

        let earliest = state.theoretical_arrival.checked_sub(self.tolerance);
        let slot = earliest.map_or(start, |earliest| earliest.max(start));
        state.theoretical_arrival = state.theoretical_arrival.max(start) + interval;
        slot
    }

    fn is_paused_at(&self, now: Instant) -> bool {
        self.lock().paused_until.is_some_and(|until| until > now)
    }

    /// Locks the state, also after a panic elsewhere: nothing that can panic runs between
    /// the assignments made under one lock, so the state is consistent even when poisoned.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Converts a rate to the time between requests, or `None` when the rate means no limit.
fn interval_for_rate(per_second: f64) -> Option<Duration> {
    if per_second == f64::INFINITY {
        return None;
    }

    // `max` returns the other operand for NaN, so NaN becomes the minimum rate.
    let rate = per_second.max(MIN_RATE_PER_SECOND);
    let interval = Duration::from_secs_f64(1.0 / rate);
    if interval.is_zero() {
        None
    } else {
        Some(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acquires repeatedly on `workers` tasks until `span` has passed, and returns the
    /// send times sorted.
    async fn send_times(limiter: &RateLimiter, workers: usize, span: Duration) -> Vec<Instant> {
        let end = Instant::now() + span;
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                loop {
                    limiter.acquire().await;
                    let now = Instant::now();
                    if now > end {
                        return times;
                    }
                    times.push(now);
                }
            }));
        }

        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("worker task"));
        }
        all.sort();
        all
    }

    #[tokio::test(start_paused = true)]
    async fn steady_rate_is_exact() {
        let limiter = RateLimiter::new(Some(50.0), 1);
        let start = Instant::now();
        let times = send_times(&limiter, 1, Duration::from_secs(10)).await;

        // One at the start, then one every 20 ms up to and including 10 s.
        assert_eq!(times.len(), 501);
        assert_eq!(times[0], start);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(20));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn steady_rate_holds_under_contention() {
        let limiter = RateLimiter::new(Some(7.5), 1);
        let start = Instant::now();
        let times = send_times(&limiter, 8, Duration::from_secs(10)).await;

        // 1 + floor(10 s / 133.333333 ms) = 76 sends. The tokio timer wakes sleepers on
        // whole milliseconds, so each send is up to 1 ms after its exact slot, without drift.
        assert_eq!(times.len(), 76);
        for (n, time) in (0u32..).zip(&times) {
            let slot = start + Duration::from_nanos(133_333_333) * n;
            let lateness = *time - slot;
            assert!(
                lateness < Duration::from_millis(1),
                "send {n} is {lateness:?} late"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_goes_at_once() {
        let limiter = RateLimiter::new(Some(10.0), 5);
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        assert_eq!(limiter.acquire().await, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn burst_refills_to_capacity() {
        let limiter = RateLimiter::new(Some(10.0), 5);
        for _ in 0..5 {
            limiter.acquire().await;
        }

        // Ten seconds idle refill the bucket to 5 tokens, not to 100.
        tokio::time::sleep(Duration::from_secs(10)).await;
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        assert_eq!(limiter.acquire().await, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_every_waiter() {
        let limiter = RateLimiter::new(None, 1);
        let start = Instant::now();
        limiter.pause_until(start + Duration::from_secs(2));

        let mut tasks = Vec::new();
        for _ in 0..5 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move { limiter.acquire().await }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("waiter task"), Duration::from_secs(2));
        }
        assert_eq!(limiter.paused_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_reserved_waiter() {
        let limiter = RateLimiter::new(Some(1.0), 1);
        let start = Instant::now();
        limiter.acquire().await;

        // The second caller has reserved the slot at 1 s when a pause until 3 s arrives.
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        limiter.pause_until(start + Duration::from_secs(3));

        assert_eq!(waiter.await.expect("waiter task"), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_resumes_without_burst_after_pause() {
        let limiter = RateLimiter::new(Some(10.0), 5);
        let start = Instant::now();
        limiter.pause_until(start + Duration::from_secs(1));

        let times = send_times(&limiter, 3, Duration::from_millis(1300)).await;
        let expected: Vec<Instant> = (0..4)
            .map(|n| start + Duration::from_millis(1000 + 100 * n))
            .collect();
        assert_eq!(times, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn later_pause_extends() {
        let limiter = RateLimiter::new(None, 1);
        let start = Instant::now();
        limiter.pause_until(start + Duration::from_secs(1));
        limiter.pause_until(start + Duration::from_secs(4));

        assert_eq!(limiter.paused_until(), Some(start + Duration::from_secs(4)));
        assert_eq!(limiter.acquire().await, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_pause_does_not_shorten() {
        let limiter = RateLimiter::new(None, 1);
        let start = Instant::now();
        limiter.pause_until(start + Duration::from_secs(4));
        limiter.pause_until(start + Duration::from_secs(1));

        assert_eq!(limiter.paused_until(), Some(start + Duration::from_secs(4)));
        assert_eq!(limiter.acquire().await, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn past_pause_is_ignored() {
        let limiter = RateLimiter::new(Some(10.0), 3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        limiter.pause_until(Instant::now() - Duration::from_millis(500));

        assert_eq!(limiter.paused_until(), None);
        for _ in 0..3 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let limiter = RateLimiter::new(None, 0);
        let infinite = RateLimiter::new(Some(f64::INFINITY), 1);
        let start = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
            assert_eq!(infinite.acquire().await, Duration::ZERO);
        }
        assert_eq!(Instant::now(), start);
    }

    #[test]
    fn invalid_rates_become_minimum() {
        let slowest = Some(Duration::from_secs(3600));
        for rate in [0.0, -5.0, f64::NAN, 1e-9] {
            assert_eq!(interval_for_rate(rate), slowest, "rate {rate}");
        }
        assert_eq!(interval_for_rate(4.0), Some(Duration::from_millis(250)));
    }
}
