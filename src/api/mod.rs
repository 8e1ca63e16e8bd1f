//! Everything that talks to the FunnelFlux Pro API: the HTTP client, the token lifecycle,
//! and the classification of answers. No other module sends requests to FunnelFlux.

pub mod classify;
mod client;
mod token;

pub use classify::{Outcome, TransportError};
pub use client::{Client, Endpoint, Exchange};
pub use token::{RefreshError, TokenStore};

/// Error from the API client outside of a delivery attempt.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("failed to build the HTTP client: {0}")]
    Build(String),
    #[error("token store: {0}")]
    Store(#[from] crate::outbox::OutboxError),
    #[error("{endpoint} request failed: {reason}")]
    Request {
        endpoint: &'static str,
        reason: String,
    },
    #[error("{endpoint} answered with an unexpected body: {reason}")]
    Body {
        endpoint: &'static str,
        reason: String,
    },
}
