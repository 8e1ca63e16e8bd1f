//! Retry timing: the exponential backoff schedule with full jitter, and when to give up.
//!
//! The schedule comes from the `backoff` crate's `ExponentialBackoff` (multiplier 2, no
//! randomization, no elapsed-time limit), so attempt `n` has the ceiling
//! `min(initial * 2^(n-1), max)`. The delay is then drawn uniformly from `[0, ceiling]`
//! ("full jitter"), which spreads retries of many jobs that failed together. Deciding
//! whether an outcome is retryable is not done here but in `api::classify`.

use std::time::Duration;

use backoff::ExponentialBackoffBuilder;
use backoff::backoff::Backoff;
use rand::Rng;

/// Retry schedule and give-up limits for one job.
///
/// A zero `initial` gives zero delays, and an `initial` above `max` is capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the delay before the first retry.
    pub initial: Duration,
    /// Maximum delay between two attempts, including delays the server requests.
    pub max: Duration,
    /// Age after which a job is no longer retried.
    pub max_age: Duration,
    /// Number of attempts after which a job is no longer retried, or `None` for no limit.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// Returns 1 s initial delay, 5 min maximum delay, 7 days maximum age, unlimited attempts.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// Computes the upper bound of the delay before retry number `attempt` (1 is the first
    /// retry, and 0 is treated as 1): `min(initial * 2^(attempt-1), max)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // A zero interval never grows, so the loop below would not end early.
        if self.initial.is_zero() {
            return Duration::ZERO;
        }

        let mut schedule = ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_randomization_factor(0.0)
            .with_multiplier(2.0)
            .with_max_interval(self.max)
            .with_max_elapsed_time(None)
            .build();

        // Once the schedule reaches `max` it stays there, so stepping further is useless.
        let mut ceiling = Duration::ZERO;
        for _ in 0..attempt.max(1) {
            if schedule.current_interval >= self.max {
                return self.max;
            }
            ceiling = schedule.next_backoff().unwrap_or(self.max);
        }
        ceiling.min(self.max)
    }

    /// Draws the delay before retry number `attempt` uniformly from `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling_nanos))
    }

    /// Picks the delay before retry number `attempt`: the server's hint (`Retry-After`)
    /// when given, capped at `max`, else a jittered backoff delay.
    pub fn next_delay(
        &self,
        attempt: u32,
        server_hint: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        match server_hint {
            Some(hint) => hint.min(self.max),
            None => self.delay(attempt, rng),
        }
    }

    /// Returns true when a job that has had `attempts` attempts and is `age` old must fail
    /// for good: its age reached `max_age`, or its attempts reached `max_attempts`.
    pub fn gives_up(&self, attempts: u32, age: Duration) -> bool {
        let too_old = age >= self.max_age;
        let too_many = self.max_attempts.is_some_and(|max| attempts >= max);
        too_old || too_many
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
            max_attempts: Some(5),
        }
    }

    #[test]
    fn delay_never_exceeds_max() {
        let policy = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in [0, 1, 2, 5, 7, 8, 20, 64, 1000, u32::MAX] {
            for _ in 0..200 {
                let delay = policy.delay(attempt, &mut rng);
                assert!(delay <= policy.max, "attempt {attempt}: {delay:?}");
                assert!(
                    delay <= policy.ceiling(attempt),
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn ceilings_double_up_to_max() {
        let policy = policy();
        let expected_millis = [100, 100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000];
        for (attempt, millis) in expected_millis.into_iter().enumerate() {
            let attempt = u32::try_from(attempt).expect("small attempt");
            let expected = Duration::from_millis(millis);
            assert_eq!(policy.ceiling(attempt), expected, "attempt {attempt}");
        }
    }

    #[test]
    fn default_ceilings_reach_five_minutes() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_secs(1));
        assert_eq!(policy.ceiling(9), Duration::from_secs(256));
        assert_eq!(policy.ceiling(10), Duration::from_secs(300));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn initial_above_max_is_capped() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(5),
            ..policy()
        };
        assert_eq!(policy.ceiling(1), Duration::from_secs(5));
    }

    #[test]
    fn zero_initial_gives_zero_delay() {
        let policy = RetryPolicy {
            initial: Duration::ZERO,
            ..policy()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(policy.ceiling(u32::MAX), Duration::ZERO);
        assert_eq!(policy.delay(3, &mut rng), Duration::ZERO);
    }

    #[test]
    fn jitter_spreads_over_whole_range() {
        let policy = policy();
        let mut rng = StdRng::seed_from_u64(11);
        let delays: Vec<Duration> = (0..1000).map(|_| policy.delay(4, &mut rng)).collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(100))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_millis(700))
            .count();
        assert!(low > 50, "only {low} delays below 100 ms");
        assert!(high > 50, "only {high} delays above 700 ms");
    }

    #[test]
    fn server_hint_is_honoured() {
        let policy = policy();
        let mut rng = StdRng::seed_from_u64(3);
        let hint = Duration::from_secs(4);
        assert_eq!(policy.next_delay(1, Some(hint), &mut rng), hint);
        assert_eq!(
            policy.next_delay(1, Some(Duration::ZERO), &mut rng),
            Duration::ZERO
        );
    }

    #[test]
    fn server_hint_capped_at_max() {
        let policy = policy();
        let mut rng = StdRng::seed_from_u64(3);
        let hint = Duration::from_secs(3600);
        assert_eq!(policy.next_delay(1, Some(hint), &mut rng), policy.max);
    }

    #[test]
    fn missing_hint_uses_backoff() {
        let policy = policy();
        let mut rng = StdRng::seed_from_u64(5);
        let delay = policy.next_delay(3, None, &mut rng);
        assert!(delay <= Duration::from_millis(400), "{delay:?}");
    }

    #[test]
    fn gives_up_by_age() {
        let policy = policy();
        assert!(!policy.gives_up(1, Duration::from_secs(3599)));
        assert!(policy.gives_up(1, Duration::from_secs(3600)));
    }

    #[test]
    fn gives_up_by_attempts() {
        let policy = policy();
        assert!(!policy.gives_up(4, Duration::ZERO));
        assert!(policy.gives_up(5, Duration::ZERO));
    }

    #[test]
    fn default_attempts_are_unlimited() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts, None);
        assert!(!policy.gives_up(u32::MAX, Duration::from_secs(6 * 24 * 3600)));
        assert!(policy.gives_up(1, Duration::from_secs(7 * 24 * 3600)));
    }
}
