//! The delivery engine: workers that claim jobs, send them through the API client, and
//! record each outcome; with the retry policy, the shared rate limit and the breaker.

pub mod breaker;
pub mod rate_limit;
pub mod retry;
mod state;

pub use state::{DeliveryState, Health};
