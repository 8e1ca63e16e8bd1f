//! Opening the database: file permissions, connection pools, pragmas and migrations.

use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::Notify;

use super::OutboxError;

/// Embedded migrations from `migrations/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Page cache of the write connection, in KiB as SQLite reads a negative `cache_size`.
/// SQLite's default of 2 MiB keeps too few index pages of a large outbox in memory, so
/// claims and outcomes of a long queue read pages back from the OS on every batch.
const WRITER_CACHE: &str = "-32768";

/// Handle to the outbox database; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    pub(super) path: PathBuf,
    /// Device and inode of the file when it was opened, to notice a removed or replaced file.
    identity: (u64, u64),
    enqueued: Arc<Notify>,
}

impl Outbox {
    /// Opens (creating with mode 0600 when missing) and migrates the database at `path`.
    pub async fn open(path: &Path, busy_timeout: Duration) -> Result<Outbox, OutboxError> {
        create_private_file(path)?;
        let options = connect_options(path, busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone().pragma("cache_size", WRITER_CACHE))
            .await?;
        migrate(path, &writer).await?;
        let identity = file_identity(path).map_err(|source| OutboxError::File {
            path: path.display().to_string(),
            source,
        })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Outbox {
            writer,
            reader,
            path: path.to_path_buf(),
            identity,
            enqueued: Arc::new(Notify::new()),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signalled after every commit that stored new jobs in this process.
    pub fn enqueued(&self) -> Arc<Notify> {
        Arc::clone(&self.enqueued)
    }

    pub(super) fn wake_workers(&self) {
        self.enqueued.notify_waiters();
        self.enqueued.notify_one();
    }

    /// Starts a write transaction that takes the database write lock at once, so that it
    /// waits on `busy_timeout` instead of failing on a lock upgrade.
    pub(super) async fn write(&self) -> Result<Transaction<'static, Sqlite>, OutboxError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Checks that the database file is still the one opened and that it answers a query.
    ///
    /// A removed or replaced file is an error: this process would keep writing to the old
    /// inode while producers write to the new file, and neither would see the other's jobs.
    pub async fn ping(&self) -> Result<(), OutboxError> {
        let current = file_identity(&self.path).ok();
        if current != Some(self.identity) {
            return Err(OutboxError::Replaced {
                path: self.path.display().to_string(),
            });
        }
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Copies the write-ahead log into the database file and truncates it.
    pub async fn checkpoint(&self) -> Result<(), OutboxError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Sizes in bytes of the database file and of its write-ahead log.
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        (size(&self.path), size(Path::new(&wal)))
    }

    /// Closes both pools, waiting for open transactions.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The path of a file next to the database: its name with `suffix` appended.
pub(super) fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens (creating with mode 0600) a lock file; the caller takes the `flock`.
pub(super) fn open_lock_file(path: &Path) -> Result<std::fs::File, OutboxError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| OutboxError::File {
            path: path.display().to_string(),
            source,
        })
}

fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

/// Creates the database file with mode 0600 when it is missing. An existing file is not
/// opened: closing any descriptor of the database drops every POSIX lock this process
/// holds on it, including the locks of open SQLite connections.
fn create_private_file(path: &Path) -> Result<(), OutboxError> {
    let file_error = |source| OutboxError::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(file_error)?;
    }
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(file_error(err)),
    }
}

fn connect_options(path: &Path, busy_timeout: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy_timeout)
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", "1000")
}

/// Applies pending migrations, holding an exclusive `flock` on `<db>-migrate.lock` so that
/// processes starting together do not apply the same migration twice. The lock is on a
/// separate file because closing a descriptor of the database itself would drop the
/// POSIX locks of this process's SQLite connections, and another process could then
/// checkpoint and delete the write-ahead log under them.
async fn migrate(path: &Path, writer: &SqlitePool) -> Result<(), OutboxError> {
    let lock_path = beside(path, "-migrate.lock");
    let file_error = |source| OutboxError::File {
        path: lock_path.display().to_string(),
        source,
    };
    let lock_file = open_lock_file(&lock_path)?;
    let locked = tokio::task::spawn_blocking(move || lock_file.lock().map(|()| lock_file))
        .await
        .map_err(|err| file_error(std::io::Error::other(err)))?
        .map_err(file_error)?;
    let result = MIGRATOR.run(writer).await;
    drop(locked);
    Ok(result?)
}
