//! Process runs that own leases, and recovery of the leases of runs that died.
//!
//! Each `ffrelay serve` run registers a row in `runs` and holds an exclusive `flock` on a
//! lock file beside the database, `<db>-run-<run id>.lock`. The kernel drops that lock when
//! the process dies, even by kill -9, so the next start can tell a dead run from a live
//! one at once and return its jobs to pending without waiting for the leases to expire.
//! NOTE: `flock` is only trusted on a local filesystem; on a network volume shared by
//! several hosts a run may look alive after it died, and its jobs return when their
//! leases expire instead.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use sqlx::Row;
use tracing::{info, warn};

use super::store::{beside, open_lock_file};
use super::{Outbox, OutboxError, claim::release_where_owner, now_ms};

/// A registered run; dropping it releases the lock file.
pub struct RunGuard {
    id: String,
    lock_path: PathBuf,
    _lock: File,
}

impl RunGuard {
    /// The run id that owns this process's leases.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

fn lock_path(db: &Path, run_id: &str) -> PathBuf {
    beside(db, &format!("-run-{run_id}.lock"))
}

impl Outbox {
    /// Registers a new run with a fresh id and takes its lock.
    pub async fn register_run(&self) -> Result<RunGuard, OutboxError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lock_path = lock_path(&self.path, &id);
        let lock = open_lock_file(&lock_path)?;
        lock.try_lock().map_err(|err| OutboxError::File {
            path: lock_path.display().to_string(),
            source: std::io::Error::other(err.to_string()),
        })?;

        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO runs (id, pid, started_at) VALUES (?1, ?2, ?3)")
            .bind(&id)
            .bind(i64::from(std::process::id()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RunGuard {
            id,
            lock_path,
            _lock: lock,
        })
    }

    /// Finds runs whose process is gone and returns their jobs to pending. Returns the
    /// number of jobs recovered.
    pub async fn recover_dead_runs(&self, own_run: &str) -> Result<u64, OutboxError> {
        let runs: Vec<String> = sqlx::query("SELECT id FROM runs WHERE id <> ?1")
            .bind(own_run)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut recovered = 0;
        for run in runs {
            if !self.is_run_dead(&run) {
                continue;
            }
            let mut tx = self.write().await?;
            let released = release_where_owner(&mut tx, &run).await?;
            sqlx::query("DELETE FROM runs WHERE id = ?1")
                .bind(&run)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let _ = std::fs::remove_file(lock_path(&self.path, &run));
            if released > 0 {
                info!(run_id = %run, jobs = released, "recovered jobs of a run that stopped");
            }
            recovered += released;
        }
        Ok(recovered)
    }

    /// Removes this run's row after its leases were released.
    pub async fn unregister_run(&self, run_id: &str) -> Result<(), OutboxError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM runs WHERE id = ?1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A run is dead when its lock file is missing or can be locked by us.
    fn is_run_dead(&self, run_id: &str) -> bool {
        let path = lock_path(&self.path, run_id);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return true,
            Err(err) => {
                warn!(run_id, path = %path.display(), error = %err, "cannot check whether a run is alive");
                return false;
            }
        };
        file.try_lock().is_ok()
    }
}

/// The delivery state a run reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunState {
    pub run_id: String,
    pub pid: i64,
    pub started_at: i64,
    pub state: String,
    pub reason: Option<String>,
    pub updated_at: i64,
    /// Whether the run's process still holds its lock; a stopped run's jobs are recovered
    /// by the next `serve`.
    pub alive: bool,
}

impl Outbox {
    /// Records this run's delivery state, for `ffrelay stats` in another process.
    pub async fn set_run_state(
        &self,
        run_id: &str,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), OutboxError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE runs SET state = ?1, state_reason = ?2, updated_at = ?3 WHERE id = ?4")
            .bind(state)
            .bind(reason)
            .bind(now_ms())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The runs registered in the database and their reported states.
    pub async fn run_states(&self) -> Result<Vec<RunState>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, pid, started_at, state, state_reason, updated_at FROM runs ORDER BY started_at",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| RunState {
                run_id: row.get(0),
                pid: row.get(1),
                started_at: row.get(2),
                state: row.get(3),
                reason: row.get(4),
                updated_at: row.get(5),
                alive: !self.is_run_dead(&row.get::<String, _>(0)),
            })
            .collect())
    }
}
