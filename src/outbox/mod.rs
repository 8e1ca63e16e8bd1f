//! The SQLite outbox: the only module that contains SQL.
//!
//! # Job state machine
//!
//! ```text
//!             claim                 delivered (2xx)
//! pending ───────────▶ in_flight ─────────────────▶ delivered
//!   ▲  ▲                 │  │  │  permanent error, or too old / too many attempts
//!   │  │ retry later,    │  │  └──────────────────▶ failed ──(retry)──▶ pending
//!   │  │ release, lease  │  │ reset above its guard
//!   │  └─────────────────┘  └────────────────────▶ held ──(approve)──▶ pending
//!   │                                               │
//!   └──(cancel from pending, held or failed)──────▶ cancelled ──(retry)──▶ pending
//! ```
//!
//! Invariants:
//! - Every write runs in a `BEGIN IMMEDIATE` transaction on the single writer connection
//!   of this process, and waits up to `database.busy_timeout` for other processes.
//! - A job changes state from `in_flight` only through its lease owner (a run id), except
//!   when the lease has expired or its run is known to be dead, which returns it to
//!   `pending`.
//! - A claim never returns a job while an older job with the same ordering key is
//!   unfinished (pending, in flight or held), and never returns a reset while any older
//!   job is unfinished. Unchecked rows written by other processes are validated first.
//! - Rows are never deleted except by retention, and only when delivered or cancelled.
//!
//! NOTE: only this module knows the storage; a PostgreSQL outbox would implement the
//! same methods.

mod admin;
mod claim;
mod enqueue;
mod finish;
mod report;
mod runs;
mod store;
mod tokens;
mod types;

pub use claim::{ClaimOptions, Claimed, Finish, Transition};
pub use report::KindReport;
pub use runs::{RunGuard, RunState};
pub use store::Outbox;
pub use tokens::StoredTokens;
pub use types::*;

/// Error from the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("failed to apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("failed to prepare database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "database file {path} was removed or replaced while in use; restart ffrelay so that it \
         opens the current file (jobs written to the old file since then are in its inode only)"
    )]
    Replaced { path: String },
    #[error("job {0} not found")]
    NotFound(i64),
    #[error("job {id} is {status}; cannot {action} it ({hint})")]
    InvalidTransition {
        id: i64,
        status: Status,
        action: &'static str,
        hint: &'static str,
    },
}

/// Current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod producer_tests;
