//! Everything that talks to the FunnelFlux Pro API, and the classification of its answers.

pub mod classify;
