//! Delivery policy: retry timing, the shared rate limit and the circuit breaker.

pub mod breaker;
pub mod rate_limit;
pub mod retry;
