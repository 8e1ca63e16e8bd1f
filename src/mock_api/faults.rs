//! Injected faults: the `Faults` settings, their live state shared by all handlers, and the
//! token bucket behind the simulated rate limit.
//!
//! Handlers read a snapshot (`Arc<Faults>`) once per request, so the settings lock is held
//! only to clone or swap one pointer. `fail_next` is the only counter that
//! requests consume, and it lives in an atomic beside the snapshot.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

/// Faults the mock injects into its responses. Every field has a default, so a partial JSON
/// object (for example `{"failure_rate": 0.5}`) is a complete setting. The default injects
/// nothing: failures would use 503, expired tokens get 401 and a rate limit, once set,
/// sends `Retry-After: 1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction (0.0 to 1.0) of update requests that get `failure_status`.
    pub failure_rate: f64,
    /// HTTP status of injected failures.
    pub failure_status: u16,
    /// Delay before every `/v1` response. JSON takes milliseconds or a
    /// humantime string such as `"250ms"`, and always returns milliseconds.
    #[serde(with = "latency_serde")]
    pub latency: Duration,
    /// Update requests allowed per second before the mock responds 429. `None` means no limit.
    pub rate_limit_per_second: Option<f64>,
    /// Token bucket capacity of the rate limit, in requests. Values below 1 count as 1.
    pub rate_limit_burst: u32,
    /// Value of the `Retry-After` header on 429 responses, in seconds. `None` sends no header.
    pub retry_after_secs: Option<u64>,
    /// Hit IDs that the API rejects: a request containing one gets 400 naming it.
    pub poison_hits: Vec<String>,
    /// Number of hits returned by `POST /reporting/update/reset/`.
    pub reset_count: i64,
    /// Fraction (0.0 to 1.0) of `/v1` requests held without a response until the mock shuts
    /// down, when they get 503.
    pub hang_rate: f64,
    /// Whether `POST /auth/validate` rejects every refresh token.
    pub refuse_refresh: bool,
    /// HTTP status for an expired access token, 401 by default. The real API may send 400.
    pub expired_status: u16,
    /// Number of upcoming update requests that get `failure_status`, whatever `failure_rate`.
    pub fail_next: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            failure_rate: 0.0,
            failure_status: 503,
            latency: Duration::ZERO,
            rate_limit_per_second: None,
            rate_limit_burst: 1,
            retry_after_secs: Some(1),
            poison_hits: Vec::new(),
            reset_count: 0,
            hang_rate: 0.0,
            refuse_refresh: false,
            expired_status: 401,
            fail_next: 0,
        }
    }
}

/// Live fault state: the current settings, the `fail_next` counter and the rate limiter.
pub(crate) struct FaultState {
    current: Mutex<Arc<Faults>>,
    fail_next: AtomicU32,
    bucket: Mutex<TokenBucket>,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        let state = FaultState {
            current: Mutex::new(Arc::new(Faults::default())),
            fail_next: AtomicU32::new(0),
            bucket: Mutex::new(TokenBucket::full(1)),
        };
        state.set(faults);
        state
    }

    /// Replaces the settings and refills the rate-limit bucket to its new capacity.
    pub(crate) fn set(&self, faults: Faults) {
        self.fail_next.store(faults.fail_next, Ordering::SeqCst);
        *lock(&self.bucket) = TokenBucket::full(faults.rate_limit_burst);
        *lock(&self.current) = Arc::new(faults);
    }

    /// Returns the settings with `fail_next` as it is now.
    pub(crate) fn get(&self) -> Faults {
        let mut faults = Faults::clone(&self.snapshot());
        faults.fail_next = self.fail_next.load(Ordering::SeqCst);
        faults
    }

    /// Returns the current settings without copying them; `fail_next` may be stale.
    pub(crate) fn snapshot(&self) -> Arc<Faults> {
        Arc::clone(&lock(&self.current))
    }

    /// Consumes one unit of `fail_next`, returning whether one was left.
    pub(crate) fn take_fail_next(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Takes one token from the rate-limit bucket, returning false when the request must
    /// get 429. Always true when `faults` sets no limit.
    pub(crate) fn admit(&self, faults: &Faults) -> bool {
        let Some(rate) = faults.rate_limit_per_second else {
            return true;
        };
        lock(&self.bucket).take(rate, faults.rate_limit_burst)
    }
}

/// Locks a mutex, carrying on with the data when another thread panicked while holding it.
/// Every value behind these locks stays consistent after each single assignment.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns true with probability `rate`; rates at or below 0 never fire, at or above 1 always.
pub(crate) fn roll(rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    rate >= 1.0 || rand::random::<f64>() < rate
}

/// Finds the first item of `body.hits` whose `hitID` is in `poison`, returning its index
/// and ID.
pub(crate) fn find_poison_hit<'a>(body: &'a Value, poison: &[String]) -> Option<(usize, &'a str)> {
    if poison.is_empty() {
        return None;
    }
    let hits = body.get("hits")?.as_array()?;
    hits.iter().enumerate().find_map(|(index, hit)| {
        let hit_id = hit.get("hitID")?.as_str()?;
        poison
            .iter()
            .any(|p| p == hit_id)
            .then_some((index, hit_id))
    })
}

/// A token bucket refilled continuously at the configured rate.
struct TokenBucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn full(burst: u32) -> Self {
        TokenBucket {
            tokens: f64::from(burst.max(1)),
            refilled_at: Instant::now(),
        }
    }

    fn take(&mut self, rate: f64, burst: u32) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        let capacity = f64::from(burst.max(1));
        self.tokens = (self.tokens + elapsed * rate.max(0.0)).min(capacity);
        self.refilled_at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Serde for `Faults::latency`: writes milliseconds, reads milliseconds or a humantime string.
mod latency_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Latency {
        Millis(u64),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(latency: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let millis = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        s.serialize_u64(millis)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Latency::deserialize(d)? {
            Latency::Millis(millis) => Ok(Duration::from_millis(millis)),
            Latency::Text(text) => humantime::parse_duration(&text).map_err(|err| {
                D::Error::custom(format!(
                    "invalid latency {text:?}: {err}, expected e.g. \"250ms\""
                ))
            }),
        }
    }
}
