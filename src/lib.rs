//! ffrelay: a queue-backed relay that delivers pending updates from a SQLite outbox to the
//! FunnelFlux Pro Reporting API.
//!
//! Producers write jobs into the [`outbox`]; the [`delivery`] engine claims them and sends
//! them through the [`api`] client; the [`server`] takes jobs over HTTP and serves the
//! admin, health and metrics endpoints. See `ARCHITECTURE.md` for the flow of a job.

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod mock_api;
pub mod outbox;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod updates;
