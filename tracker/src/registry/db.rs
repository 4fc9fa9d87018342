//! The gateway's SQLite database: one writer connection and a few read-only ones.
//!
//! Invariants:
//! - **One writer.** Every write goes through [`Db::writer`], a pool of exactly one connection,
//!   so writers wait their turn in the pool instead of racing for SQLite's write lock. Two of our
//!   own writers can therefore never meet "database is locked": neither the busy timeout running
//!   out nor a deferred transaction that read before writing and finds its snapshot stale (no
//!   other connection writes in between).
//! - **Readers cannot write.** [`Db::reader`] connections are opened read-only: a write sent
//!   there fails at once, in every test, instead of competing with the writer.
//! - **Durable commits.** The writer runs `synchronous = FULL`: SQLite fsyncs the WAL before a
//!   commit returns, so whatever a client was told (a PUT, an overwrite, a DELETE) survives a
//!   power loss. SQLite publishes a commit to other connections (the wal-index header) only
//!   after that fsync, so anything a reader sees can no longer roll back; the orphan collector
//!   relies on this (see `gateway/collect.rs`).
//! - **Private files.** The database is created with mode 0600 (it holds passkeys); SQLite
//!   gives its `-wal` and `-shm` files the database file's mode.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Read-only connections; reads run concurrently beside the one writer (WAL).
const READERS: u32 = 4;

/// How long a connection waits for a lock held outside this process (the `node` command run
/// beside a serving gateway, a backup) before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may wait for the writer connection. Writes are short; only a disk that
/// stopped answering makes one wait this long.
const WRITER_WAIT: Duration = Duration::from_secs(120);

/// The database's connections; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl Db {
    /// Opens (creating with mode 0600 if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_WAIT)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db { reader, writer })
    }

    /// An in-memory database: one connection that both reads and writes, gone when dropped.
    pub async fn open_in_memory() -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(Db {
            reader: pool.clone(),
            writer: pool,
        })
    }

    /// For queries that only read.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// For every statement that writes, and every transaction that does.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Closes the readers, then the writer (which checkpoints the WAL as the last connection).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Creates the database file with mode 0600 if it does not exist; an existing file readable by
/// others is made private, with a warning.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), sqlx::Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the database was readable by other users (it holds passkeys); made it 0600"
        );
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> Result<(), sqlx::Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_durable_writer_and_read_only_readers() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(db.writer())
            .await
            .unwrap();
        // 2 is FULL: every commit is on disk before it returns.
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.writer())
            .await
            .unwrap();
        assert_eq!(sync, 2);
        assert_eq!(db.writer().options().get_max_connections(), 1);
        let refused = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(db.reader())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("readonly"), "{refused}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(db.writer())
            .await
            .unwrap();
        for name in ["t.db", "t.db-wal", "t.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        db.close().await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Db::open(&path).await.unwrap().close().await;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
