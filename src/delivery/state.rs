//! The delivery engine's health as seen by `/readyz`, `/metrics` and `ffrelay stats`.

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Whether delivery is running, and why not when it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Sending normally.
    Running,
    /// Paused for authentication (a refused refresh, a 403, no token); needs an operator
    /// or a successful probe.
    Paused { reason: String },
    /// The circuit breaker stopped sending after repeated retryable failures; probing.
    BreakerOpen { reason: String },
    /// Shutting down; no new claims.
    Stopping,
}

impl Health {
    /// The name stored in `runs.state`.
    pub fn name(&self) -> &'static str {
        match self {
            Health::Running => "running",
            Health::Paused { .. } => "paused",
            Health::BreakerOpen { .. } => "breaker_open",
            Health::Stopping => "stopping",
        }
    }

    /// The reason, for states that have one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Paused { reason } | Health::BreakerOpen { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Shared, cheaply cloned handle to the current [`Health`].
#[derive(Debug, Clone)]
pub struct DeliveryState(Arc<RwLock<Health>>);

impl Default for DeliveryState {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Health::Running)))
    }
}

impl DeliveryState {
    /// The current health.
    pub fn health(&self) -> Health {
        self.0
            .read()
            .map(|health| health.clone())
            .unwrap_or(Health::Running)
    }

    /// Replaces the health; returns whether it changed.
    pub fn set(&self, health: Health) -> bool {
        let Ok(mut current) = self.0.write() else {
            return false;
        };
        let changed = *current != health;
        *current = health;
        changed
    }
}
