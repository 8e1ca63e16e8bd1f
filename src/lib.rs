//! ffrelay: a queue-backed relay that delivers pending updates from a SQLite outbox to the
//! FunnelFlux Pro Reporting API.

pub mod api;
pub mod delivery;
pub mod updates;
