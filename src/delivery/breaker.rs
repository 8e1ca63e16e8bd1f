//! Circuit breaker over the recent results of requests to the API.
//!
//! It is a pure state machine: every method takes the current `tokio::time::Instant`, so
//! tests drive it without a clock. Closed, it counts retryable failures (timeouts, 5xx,
//! 429 and the like) among the last `window` results and opens when they reach
//! `failure_threshold`. Open, it lets one probe request through after a cooldown. A probe
//! success closes it, and a probe failure reopens it with a doubled cooldown, up to
//! `max_cooldown`. Permanent failures (4xx) show that the API responds, so they count as
//! successes here. The breaker does not sleep or log: callers act on [`Permit`] and log
//! the [`Transition`]s it returns.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// Settings of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Number of most recent results the failure share is computed over.
    pub window: usize,
    /// Minimum number of results in the window before the breaker may open.
    pub min_requests: usize,
    /// Share of retryable failures in the window (0 to 1) at which the breaker opens.
    pub failure_threshold: f64,
    /// Cooldown before the first probe after the breaker opens.
    pub initial_cooldown: Duration,
    /// Maximum cooldown, reached by doubling after each failed probe.
    pub max_cooldown: Duration,
    /// Time after which a probe without a recorded result is presumed lost, so that
    /// another caller may probe.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    /// Returns a window of 20, at least 10 results, a threshold of 0.5, cooldowns from 1 s
    /// to 5 min and a probe timeout of 60 s.
    fn default() -> Self {
        Self {
            window: 20,
            min_requests: 10,
            failure_threshold: 0.5,
            initial_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(5 * 60),
            probe_timeout: Duration::from_secs(60),
        }
    }
}

/// State of a [`Breaker`] as callers and metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow normally.
    Closed,
    /// Requests wait for the cooldown to pass.
    Open,
    /// One probe request is in flight and the others wait for its result.
    HalfOpen,
}

impl BreakerState {
    /// Returns the lowercase name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decision on whether a caller may send a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send normally.
    Send,
    /// Send one probe request and record its result. Granting it moves the breaker from
    /// open to half-open, which is the moment to log that transition.
    Probe,
    /// Ask again after this long.
    Wait(Duration),
}

/// Change of state reported by [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before the change.
    pub from: BreakerState,
    /// State after the change.
    pub to: BreakerState,
}

/// Circuit breaker state machine. Workers share one instance, for example behind a mutex.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    phase: Phase,
    /// Recent results while closed, oldest first: `true` for a retryable failure.
    results: VecDeque<bool>,
    /// Cooldown of the current or most recent open period.
    cooldown: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { since: Instant, wait: Duration },
    HalfOpen { probe_since: Instant },
}

impl Breaker {
    /// Creates a closed breaker. The settings are made usable first: `window` and
    /// `min_requests` are at least 1, `min_requests` is at most `window`, the initial
    /// cooldown is at least 1 ms and the maximum cooldown is at least the initial one.
    pub fn new(config: BreakerConfig) -> Self {
        let window = config.window.max(1);
        let initial_cooldown = config.initial_cooldown.max(Duration::from_millis(1));
        let config = BreakerConfig {
            window,
            min_requests: config.min_requests.clamp(1, window),
            initial_cooldown,
            max_cooldown: config.max_cooldown.max(initial_cooldown),
            ..config
        };

        Self {
            config,
            phase: Phase::Closed,
            results: VecDeque::with_capacity(window),
            cooldown: initial_cooldown,
        }
    }

    /// Returns the current state.
    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Decides whether a caller may send at `now`. When open and the cooldown has passed,
    /// it grants one [`Permit::Probe`] and moves to half-open.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.phase {
            Phase::Closed => Permit::Send,
            Phase::Open { since, wait } => {
                let elapsed = now.saturating_duration_since(since);
                if elapsed < wait {
                    return Permit::Wait(wait - elapsed);
                }
                self.phase = Phase::HalfOpen { probe_since: now };
                Permit::Probe
            }
            Phase::HalfOpen { probe_since } => self.permit_half_open(now, probe_since),
        }
    }

    /// Records the result of one request and returns the state change it caused, if any.
    ///
    /// Only `retryable_failure` results with `success` false count as failures. Results
    /// that arrive while open come from requests sent before it opened and are ignored.
    /// While half-open, the next result decides, whether it is the probe's or a late one.
    pub fn record(
        &mut self,
        now: Instant,
        success: bool,
        retryable_failure: bool,
    ) -> Option<Transition> {
        let failed = !success && retryable_failure;
        match self.phase {
            Phase::Closed => self.record_closed(now, failed),
            Phase::Open { .. } => None,
            Phase::HalfOpen { .. } if failed => Some(self.reopen(now)),
            Phase::HalfOpen { .. } => Some(self.close()),
        }
    }

    /// Gives back a probe permit that was not used, for example because no job was
    /// waiting, so that the next caller may probe at once. A half-open breaker goes back
    /// to open without a cooldown. This is not reported as a transition.
    pub fn release_probe(&mut self, now: Instant) {
        if let Phase::HalfOpen { .. } = self.phase {
            self.phase = Phase::Open {
                since: now,
                wait: Duration::ZERO,
            };
        }
    }

    /// While half-open, lets a new probe go when the last one is presumed lost.
    fn permit_half_open(&mut self, now: Instant, probe_since: Instant) -> Permit {
        let elapsed = now.saturating_duration_since(probe_since);
        if elapsed >= self.config.probe_timeout {
            self.phase = Phase::HalfOpen { probe_since: now };
            return Permit::Probe;
        }

        // The probe's result usually arrives well before the timeout, so check again soon.
        let remaining = self.config.probe_timeout - elapsed;
        Permit::Wait(remaining.min(self.config.initial_cooldown))
    }

    fn record_closed(&mut self, now: Instant, failed: bool) -> Option<Transition> {
        if self.results.len() == self.config.window {
            self.results.pop_front();
        }
        self.results.push_back(failed);
        if !self.failure_share_reached() {
            return None;
        }

        self.results.clear();
        self.cooldown = self.config.initial_cooldown;
        self.phase = Phase::Open {
            since: now,
            wait: self.cooldown,
        };
        Some(transition(BreakerState::Closed, BreakerState::Open))
    }

    fn failure_share_reached(&self) -> bool {
        let seen = self.results.len();
        if seen < self.config.min_requests {
            return false;
        }
        let failures = self.results.iter().filter(|failed| **failed).count();
        failures as f64 / seen as f64 >= self.config.failure_threshold
    }

    fn reopen(&mut self, now: Instant) -> Transition {
        self.cooldown = self
            .cooldown
            .saturating_mul(2)
            .min(self.config.max_cooldown);
        self.phase = Phase::Open {
            since: now,
            wait: self.cooldown,
        };
        transition(BreakerState::HalfOpen, BreakerState::Open)
    }

    fn close(&mut self) -> Transition {
        self.results.clear();
        self.cooldown = self.config.initial_cooldown;
        self.phase = Phase::Closed;
        transition(BreakerState::HalfOpen, BreakerState::Closed)
    }
}

fn transition(from: BreakerState, to: BreakerState) -> Transition {
    Transition { from, to }
}

#[cfg(test)]
mod tests;
