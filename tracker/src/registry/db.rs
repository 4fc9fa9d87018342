//! The gateway's database: SQLite in a file (the embedded default for one gateway) or a
//! PostgreSQL server named by a `postgres://` URL. Queries go through sqlx's `Any` driver and
//! are written once, in the SQL both engines read (`$n` parameters, `ON CONFLICT`, no
//! engine-specific functions); the schemas are `tracker/migrations/{sqlite,postgres}`.
//!
//! Invariants:
//! - **One writer.** Every write goes through [`Db::writer`], a pool of exactly one connection,
//!   so writers wait their turn in the pool instead of racing for SQLite's write lock. Two of our
//!   own writers can therefore never meet "database is locked": neither the busy timeout running
//!   out nor a deferred transaction that read before writing and finds its snapshot stale (no
//!   other connection writes in between). On PostgreSQL the same single writer keeps one
//!   gateway's read-then-write transactions from interleaving.
//! - **Readers cannot write.** [`Db::reader`] connections are opened read-only (SQLite's
//!   `mode=ro`, PostgreSQL's `default_transaction_read_only`): a write sent there fails at once,
//!   in every test, instead of competing with the writer.
//! - **Durable commits.** The SQLite writer runs `synchronous = FULL`: SQLite fsyncs the WAL
//!   before a commit returns, so whatever a client was told (a PUT, an overwrite, a DELETE)
//!   survives a power loss. SQLite publishes a commit to other connections (the wal-index
//!   header) only after that fsync, so anything a reader sees can no longer roll back; the
//!   orphan collector relies on this (see `gateway/collect.rs`). PostgreSQL gives the same with
//!   `synchronous_commit = on`, which the writer sets for its session.
//! - **Private files.** The SQLite database is created with mode 0600 (it holds passkeys);
//!   SQLite gives its `-wal` and `-shm` files the database file's mode.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// Read-only connections; reads run concurrently beside the one writer.
const READERS: u32 = 4;

/// How long a connection waits for a lock held outside this process (the `node` command run
/// beside a serving gateway, a backup) before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may wait for the writer connection. Writes are short; only a disk that
/// stopped answering makes one wait this long.
const WRITER_WAIT: Duration = Duration::from_secs(120);

/// How long opening a PostgreSQL database may take before the gateway gives up on the server.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// Which engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The database's connections; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    reader: AnyPool,
    writer: AnyPool,
    engine: Engine,
}

/// Whether `location` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `location` as it may be shown in logs and errors: a URL's password replaced by `***`.
pub fn shown(location: &Path) -> String {
    let text = location.to_string_lossy();
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.into_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => text.into_owned(),
        },
        None => text.into_owned(),
    }
}

impl Db {
    /// Opens the database `location` names: a `postgres://` URL, or else a SQLite file
    /// (created with mode 0600 if needed).
    pub async fn open(location: &Path) -> Result<Self, sqlx::Error> {
        match location.to_str().filter(|l| is_postgres_url(l)) {
            Some(url) => Self::open_postgres(url).await,
            None => Self::open_sqlite(location).await,
        }
    }

    /// Opens (creating with mode 0600 if needed) the SQLite file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        create_private(path)?;
        let file = path
            .to_str()
            .ok_or_else(|| sqlx::Error::Configuration("the database path is not UTF-8".into()))?;
        let url = |mode: &str| format!("sqlite://{}?mode={mode}", encode_path(file));
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_WAIT)
            .after_connect(|c, _| {
                Box::pin(async move {
                    c.execute(
                        sqlite_pragmas("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
                            .as_str(),
                    )
                    .await
                    .map(drop)
                })
            })
            .connect(&url("rw"))
            .await?;
        let reader = AnyPoolOptions::new()
            .max_connections(READERS)
            .after_connect(|c, _| {
                Box::pin(async move { c.execute(sqlite_pragmas("").as_str()).await.map(drop) })
            })
            .connect(&url("ro"))
            .await?;
        Ok(Db {
            reader,
            writer,
            engine: Engine::Sqlite,
        })
    }

    /// Connects to the PostgreSQL server at `url`.
    pub async fn open_postgres(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        // One plain connection first: a server that is down or refuses us is reported as such
        // (a pool would only say it timed out), and without waiting out the writer's patience.
        let probe = tokio::time::timeout(CONNECT_WAIT, AnyConnection::connect(url))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        probe.close().await?;
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_WAIT)
            .after_connect(|c, _| {
                Box::pin(async move { c.execute("SET synchronous_commit = on").await.map(drop) })
            })
            .connect(url)
            .await?;
        let reader = AnyPoolOptions::new()
            .max_connections(READERS)
            .after_connect(|c, _| {
                Box::pin(async move {
                    c.execute("SET default_transaction_read_only = on")
                        .await
                        .map(drop)
                })
            })
            .connect(url)
            .await?;
        Ok(Db {
            reader,
            writer,
            engine: Engine::Postgres,
        })
    }

    /// An in-memory SQLite database: one connection that both reads and writes, gone when
    /// dropped.
    pub async fn open_in_memory() -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|c, _| {
                Box::pin(async move { c.execute(sqlite_pragmas("").as_str()).await.map(drop) })
            })
            .connect("sqlite::memory:")
            .await?;
        Ok(Db {
            reader: pool.clone(),
            writer: pool,
            engine: Engine::Sqlite,
        })
    }

    /// The engine behind the connections.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// For queries that only read.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// For every statement that writes, and every transaction that does.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Closes the readers, then the writer (which checkpoints SQLite's WAL as the last
    /// connection).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The settings every SQLite connection runs with, then `extra`.
fn sqlite_pragmas(extra: &str) -> String {
    format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; {extra}",
        BUSY_TIMEOUT.as_millis()
    )
}

/// A file path as the path of a `sqlite://` URL (sqlx decodes `%XX` back).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
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

    #[test]
    fn a_password_in_a_database_url_is_never_shown() {
        let shown = |l: &str| shown(Path::new(l));
        assert_eq!(
            shown("postgres://gw:s3cret@db.example:5432/raid?sslmode=require"),
            "postgres://gw:***@db.example:5432/raid?sslmode=require"
        );
        assert_eq!(shown("postgres://gw@db/raid"), "postgres://gw@db/raid");
        assert_eq!(shown("/var/lib/raid/gw.db"), "/var/lib/raid/gw.db");
        assert!(is_postgres_url("postgresql://h/d") && !is_postgres_url("gw.db"));
    }

    #[test]
    fn a_file_name_survives_the_trip_through_a_sqlite_url() {
        assert_eq!(encode_path("/var/lib/gw-1.db"), "/var/lib/gw-1.db");
        assert_eq!(encode_path("rel db#1?.db"), "rel%20db%231%3F.db");
        assert_eq!(encode_path("é%"), "%C3%A9%25");
    }

    #[tokio::test]
    async fn a_file_whose_name_needs_escaping_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw #1?.db");
        let db = Db::open(&path).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(db.writer())
            .await
            .unwrap();
        db.close().await;
        assert!(path.exists());
        assert!(!dir.path().join("gw ").exists());
    }

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
