//! ffrelay: a queue-backed relay that delivers pending updates from a SQLite outbox to the
//! FunnelFlux Pro Reporting API.

pub mod mock_api;
pub mod updates;
