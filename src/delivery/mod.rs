//! The delivery engine: workers that claim jobs, send them through the API client, and
//! record each outcome; with the retry policy, the shared rate limit, the circuit breaker
//! and the authentication pause.
//!
//! Retry timing, rate limiting, the breaker and the gate are pure functions of their inputs
//! and the tokio clock, so their tests run on paused time.

pub mod breaker;
mod engine;
mod gate;
pub mod rate_limit;
mod reset;
pub mod retry;
mod send;
mod state;

pub use engine::{Engine, EngineConfig, ShutdownReport};
pub use reset::MAX_HITS_FIELD;
pub use state::{DeliveryState, Health};
