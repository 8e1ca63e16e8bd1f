//! Admission of workers to send: the authentication pause and the circuit breaker.
//!
//! While delivery is paused for authentication, or the breaker is open, workers do not
//! claim jobs. One worker at a time is admitted as a probe, at growing intervals; its
//! result resumes delivery or extends the pause. Waiting here never costs a job an attempt,
//! because no job is claimed until a worker is admitted.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::breaker::{Breaker, BreakerState, Permit};
use super::state::{DeliveryState, Health};
use crate::telemetry;

/// The kind of admission a worker got: a normal send or a single-job probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Normal sending: claim a full batch.
    Send,
    /// A single-job probe while paused for authentication.
    AuthProbe,
    /// A single-job probe while the breaker is open.
    BreakerProbe,
}

#[derive(Debug)]
struct AuthPause {
    reason: String,
    next_probe: Instant,
    interval: Duration,
    probing: bool,
}

/// Shared admission state of all workers.
pub struct Gate {
    breaker: Mutex<Breaker>,
    auth: Mutex<Option<AuthPause>>,
    state: DeliveryState,
    initial_interval: Duration,
    max_interval: Duration,
}

/// The next step for a worker: send with an admission, or wait.
pub enum Decision {
    Admit(Admission),
    /// Wait this long, or until woken, and ask again.
    Wait(Duration),
}

impl Gate {
    /// A gate with a closed breaker and no pause.
    pub fn new(
        breaker: Breaker,
        state: DeliveryState,
        initial_interval: Duration,
        max_interval: Duration,
    ) -> Gate {
        Gate {
            breaker: Mutex::new(breaker),
            auth: Mutex::new(None),
            state,
            initial_interval,
            max_interval,
        }
    }

    /// Decides whether a worker may send now.
    pub fn decide(&self, now: Instant) -> Decision {
        if let Some(decision) = self.decide_auth(now) {
            return decision;
        }
        let Ok(mut breaker) = self.breaker.lock() else {
            return Decision::Admit(Admission::Send);
        };
        match breaker.permit(now) {
            Permit::Send => Decision::Admit(Admission::Send),
            Permit::Probe => {
                info!("circuit breaker half open: sending one probe request");
                self.publish_breaker(breaker.state());
                Decision::Admit(Admission::BreakerProbe)
            }
            Permit::Wait(delay) => Decision::Wait(delay),
        }
    }

    fn decide_auth(&self, now: Instant) -> Option<Decision> {
        let mut auth = self.auth.lock().ok()?;
        let pause = auth.as_mut()?;
        if pause.probing || now < pause.next_probe {
            let wait = pause.next_probe.saturating_duration_since(now);
            return Some(Decision::Wait(wait.max(Duration::from_millis(50))));
        }
        pause.probing = true;
        Some(Decision::Admit(Admission::AuthProbe))
    }

    /// Hands back an admission that claimed no job.
    pub fn unused(&self, admission: Admission, now: Instant) {
        match admission {
            Admission::Send => {}
            Admission::AuthProbe => {
                if let Ok(mut auth) = self.auth.lock()
                    && let Some(pause) = auth.as_mut()
                {
                    pause.probing = false;
                }
            }
            Admission::BreakerProbe => {
                if let Ok(mut breaker) = self.breaker.lock() {
                    breaker.release_probe(now);
                }
            }
        }
    }

    /// Records the result of one request for the breaker.
    pub fn record(&self, now: Instant, success: bool, retryable_failure: bool) {
        let Ok(mut breaker) = self.breaker.lock() else {
            return;
        };
        let Some(transition) = breaker.record(now, success, retryable_failure) else {
            return;
        };
        match transition.to {
            BreakerState::Open => {
                warn!(from = %transition.from, "circuit breaker open: most recent requests failed, pausing delivery")
            }
            BreakerState::Closed => info!("circuit breaker closed: delivery resumed"),
            BreakerState::HalfOpen => info!("circuit breaker half open"),
        }
        self.publish_breaker(transition.to);
    }

    fn publish_breaker(&self, state: BreakerState) {
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!(telemetry::BREAKER_STATE).set(value);
        if self.is_auth_paused() {
            return;
        }
        let health = match state {
            BreakerState::Closed => Health::Running,
            _ => Health::BreakerOpen {
                reason: "most recent requests to the API failed; probing".into(),
            },
        };
        self.state.set(health);
    }

    /// Pauses delivery for an authentication problem, or extends the pause after a failed
    /// probe with a doubled interval.
    pub fn pause_auth(&self, reason: &str, now: Instant) {
        let Ok(mut auth) = self.auth.lock() else {
            return;
        };
        let interval = match auth.as_ref() {
            Some(pause) => (pause.interval * 2).min(self.max_interval),
            None => self.initial_interval,
        };
        if auth.is_none() {
            error!(
                reason,
                "delivery paused: the API rejected the credentials; provide a new token"
            );
        }
        *auth = Some(AuthPause {
            reason: reason.to_owned(),
            next_probe: now + interval,
            interval,
            probing: false,
        });
        metrics::gauge!(telemetry::AUTH_PAUSED).set(1.0);
        self.state.set(Health::Paused {
            reason: reason.to_owned(),
        });
    }

    /// Ends an authentication pause; returns whether one was active.
    pub fn resume_auth(&self, why: &str) -> bool {
        let Ok(mut auth) = self.auth.lock() else {
            return false;
        };
        let Some(pause) = auth.take() else {
            return false;
        };
        info!(why, previous_reason = %pause.reason, "delivery resumed");
        metrics::gauge!(telemetry::AUTH_PAUSED).set(0.0);
        let breaker_state = self
            .breaker
            .lock()
            .map(|b| b.state())
            .unwrap_or(BreakerState::Closed);
        drop(auth);
        self.publish_breaker(breaker_state);
        true
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.state.health()
    }

    /// Whether delivery is paused for authentication.
    pub fn is_auth_paused(&self) -> bool {
        self.auth.lock().map(|auth| auth.is_some()).unwrap_or(false)
    }

    /// Whether a worker must release its jobs instead of sending the next request: delivery
    /// is paused for authentication and no probe is admitted, or the breaker is open. The
    /// admitted probe sends, because its response is what ends or extends the pause; a
    /// breaker probe is sent while the breaker is half open, so it is not held either.
    pub fn holds_requests(&self) -> bool {
        let auth_held = self
            .auth
            .lock()
            .map(|auth| auth.as_ref().is_some_and(|pause| !pause.probing))
            .unwrap_or(false);
        let breaker_open = self
            .breaker
            .lock()
            .map(|breaker| breaker.state() == BreakerState::Open)
            .unwrap_or(false);
        auth_held || breaker_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::breaker::BreakerConfig;

    fn gate() -> (Gate, DeliveryState) {
        let state = DeliveryState::default();
        let breaker = Breaker::new(BreakerConfig::default());
        let gate = Gate::new(
            breaker,
            state.clone(),
            Duration::from_secs(1),
            Duration::from_secs(8),
        );
        (gate, state)
    }

    fn admitted(decision: Decision) -> Option<Admission> {
        match decision {
            Decision::Admit(admission) => Some(admission),
            Decision::Wait(_) => None,
        }
    }

    #[test]
    fn auth_pause_admits_one_probe_after_interval() {
        let (gate, state) = gate();
        let start = Instant::now();
        gate.pause_auth("status 403", start);
        assert!(matches!(state.health(), Health::Paused { .. }));
        assert_eq!(admitted(gate.decide(start)), None);
        let later = start + Duration::from_secs(1);
        assert_eq!(admitted(gate.decide(later)), Some(Admission::AuthProbe));
        assert_eq!(admitted(gate.decide(later)), None, "one probe at a time");
    }

    #[test]
    fn auth_pause_holds_requests_except_probe() {
        let (gate, _) = gate();
        let start = Instant::now();
        assert!(!gate.holds_requests(), "no pause");
        gate.pause_auth("status 403", start);
        assert!(gate.holds_requests(), "paused, no probe admitted");
        let later = start + Duration::from_secs(1);
        assert_eq!(admitted(gate.decide(later)), Some(Admission::AuthProbe));
        assert!(!gate.holds_requests(), "the admitted probe sends");
        gate.pause_auth("status 403", later);
        assert!(gate.holds_requests(), "a failed probe extends the pause");
    }

    #[test]
    fn open_breaker_holds_requests_until_half_open() {
        let (gate, _) = gate();
        let start = Instant::now();
        for _ in 0..10 {
            gate.record(start, false, true);
        }
        assert!(gate.holds_requests(), "open breaker");
        let later = start + Duration::from_secs(5);
        assert_eq!(admitted(gate.decide(later)), Some(Admission::BreakerProbe));
        assert!(!gate.holds_requests(), "the probe may send while half open");
        gate.record(later, true, false);
        assert!(!gate.holds_requests(), "closed again");
    }

    #[test]
    fn failed_probes_double_the_interval_up_to_max() {
        let (gate, _) = gate();
        let start = Instant::now();
        gate.pause_auth("403", start);
        let mut intervals = Vec::new();
        for _ in 0..5 {
            gate.pause_auth("403", start);
            intervals.push(
                gate.auth
                    .lock()
                    .unwrap()
                    .as_ref()
                    .unwrap()
                    .interval
                    .as_secs(),
            );
        }
        assert_eq!(intervals, vec![2, 4, 8, 8, 8]);
    }

    #[test]
    fn resume_restores_running() {
        let (gate, state) = gate();
        gate.pause_auth("403", Instant::now());
        assert!(gate.resume_auth("probe delivered"));
        assert_eq!(state.health(), Health::Running);
        assert!(!gate.resume_auth("again"));
        assert_eq!(admitted(gate.decide(Instant::now())), Some(Admission::Send));
    }

    #[test]
    fn unused_probe_lets_next_worker_probe() {
        let (gate, _) = gate();
        let start = Instant::now();
        gate.pause_auth("403", start);
        let later = start + Duration::from_secs(2);
        assert_eq!(admitted(gate.decide(later)), Some(Admission::AuthProbe));
        gate.unused(Admission::AuthProbe, later);
        assert_eq!(admitted(gate.decide(later)), Some(Admission::AuthProbe));
    }
}
