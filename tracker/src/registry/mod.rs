//! Node registry (who may join the private swarms) and reliability records, in SQLite via sqlx.
//!
//! Invariants:
//! - The schema comes from `tracker/migrations` (`sqlx::migrate!`); the `format` table carries the
//!   version of the records format, and a database written by a newer format is refused rather
//!   than misread.
//! - The announce path never waits on the database: announce tokens are checked against an
//!   in-memory map ([`tokens`]) kept in step with the `nodes` table (every create/revoke goes
//!   through [`Registry`]), and observations go to the [`records::Recorder`] task through a
//!   bounded channel.
//! - A passkey is 32 lowercase hex characters (128 random bits): the node's control credential.
//!   It leaves the registry only for the control listener's proof check; announce URLs and
//!   torrents carry the announce token derived from it.

pub mod control_records;
pub mod db;
pub mod events;
pub mod inspectors;
pub mod records;
pub mod registration;
pub mod report;
#[cfg(test)]
pub(crate) mod test_engines;
pub mod tokens;

pub use db::Db;

use serde::Serialize;
use sqlx::AnyPool;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Row id of a registered node.
pub use crate::ids::NodeId;

/// The records format this build reads and writes.
pub const RECORDS_FORMAT: i64 = 4;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("records format {found} is newer than this tracker understands ({RECORDS_FORMAT})")]
    NewerFormat { found: i64 },
    #[error("no node with id {0}")]
    NoSuchNode(NodeId),
    #[error("node name must be 1 to 64 printable characters")]
    BadName,
    #[error("{0}")]
    BadRegistration(String),
    #[error("could not draw random bytes for a passkey")]
    Random,
}

/// A registered node as shown to operators (the passkey only at creation).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// What the operator assigned: the node's zone and the most capacity it may offer.
    #[serde(flatten)]
    pub registration: Registration,
}

/// A freshly created node and the passkey to give to it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NewNode {
    #[serde(flatten)]
    pub node: Node,
    /// The node's control credential: given to the node, never put in a URL.
    pub passkey: String,
    /// What the node's announce URLs carry (derived from the passkey); a stock client given this
    /// node's identity announces with it.
    pub announce_token: String,
}

pub use registration::Registration;
use registration::{NodeRow, NODE_COLUMNS};
pub use tokens::TokenStatus;

/// Handle to the node registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    tokens: Arc<RwLock<tokens::Tokens>>,
    /// Bumped after every revocation, so live control sessions close at once.
    revocations: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped by every change scores must reflect at once (a node registered, revoked or
    /// requalified, an audit not passed); see [`Registry::standing_version`].
    standing: Arc<AtomicU64>,
    /// Every node's scoring facts, loaded at the first fleet scoring and kept up to date by
    /// every write of records after it (see [`crate::scoring::book`]). A writer takes it before
    /// its transaction and applies its records after the commit, so a load never counts a
    /// write twice or misses it.
    book: Arc<tokio::sync::Mutex<Option<crate::scoring::book::FactsBook>>>,
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Registry {
    /// Opens (creating if needed) the database at `path` and migrates it (see [`db`]).
    pub async fn open(path: &Path) -> Result<Self, RegistryError> {
        Self::from_db(Db::open(path).await?).await
    }

    /// An in-memory database (one connection, gone when dropped), for tests and trials.
    pub async fn open_in_memory() -> Result<Self, RegistryError> {
        Self::from_db(Db::open_in_memory().await?).await
    }

    async fn from_db(db: Db) -> Result<Self, RegistryError> {
        match db.engine() {
            db::Engine::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(db.writer())
                    .await?
            }
            db::Engine::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(db.writer())
                    .await?
            }
        }
        let found: i64 = sqlx::query_scalar("SELECT version FROM format WHERE name = 'records'")
            .fetch_one(db.reader())
            .await?;
        if found > RECORDS_FORMAT {
            return Err(RegistryError::NewerFormat { found });
        }
        let rows: Vec<(String, NodeId, Option<i64>)> =
            sqlx::query_as("SELECT passkey, id, revoked_at FROM nodes")
                .fetch_all(db.reader())
                .await?;
        let mut tokens = tokens::Tokens::default();
        for (passkey, id, revoked) in rows {
            tokens.insert(id, &passkey, revoked.is_some());
        }
        inspectors::load(&db, &mut tokens).await?;
        Ok(Registry {
            db,
            tokens: Arc::new(RwLock::new(tokens)),
            revocations: Arc::new(tokio::sync::watch::channel(0).0),
            standing: Arc::new(AtomicU64::new(0)),
            book: Arc::default(),
        })
    }

    /// The database (the gateway's metadata shares it).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Connections for queries that only read.
    pub fn reader(&self) -> &AnyPool {
        self.db.reader()
    }

    /// The one connection every write goes through.
    pub fn writer(&self) -> &AnyPool {
        self.db.writer()
    }

    fn tokens(&self) -> std::sync::RwLockReadGuard<'_, tokens::Tokens> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens_mut(&self) -> std::sync::RwLockWriteGuard<'_, tokens::Tokens> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks an announce token up without touching the database.
    pub fn check_token(&self, token: &[u8]) -> TokenStatus {
        self.check_token_for(token, &[])
    }

    /// [`Registry::check_token`] for an announce or scrape of `shards` (an inspector token
    /// covers only the shards it was issued for).
    pub fn check_token_for(&self, token: &[u8], shards: &[crate::ids::InfoHash]) -> TokenStatus {
        self.tokens().check(token, unix_now(), shards)
    }

    /// The announce token of a registered, unrevoked node (for the torrents it is handed), from
    /// memory; `None` for an unknown or revoked node.
    pub fn announce_token(&self, id: NodeId) -> Option<String> {
        self.tokens().token_of(id)
    }

    /// Puts node `id`, just authenticated from the database, in the token map: a node
    /// registered after this registry was opened (by `node add`, or by another gateway on the
    /// same database) is known from its first connection on.
    /// A node this registry knows already, even as revoked, is left as it is.
    pub fn remember_node(&self, id: NodeId, passkey: &str) {
        if !self.tokens().knows(id) {
            self.tokens_mut().insert(id, passkey, false);
            self.standing_changed();
        }
    }

    /// Whether node `id` is registered and not revoked, from memory.
    pub fn is_valid(&self, id: NodeId) -> bool {
        self.tokens().token_of(id).is_some()
    }

    /// Changes after every revocation made through this registry (the admin API, tests): a
    /// control session watches it and closes when its node is no longer valid.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Registers a node with no zone or capacity limit assigned and returns it with a new random
    /// passkey ([`Registry::register_node`] assigns them).
    pub async fn create_node(&self, name: &str) -> Result<NewNode, RegistryError> {
        self.register_node(name, &Registration::default()).await
    }

    /// Revokes a node's passkey; revoking twice keeps the first time. Returns the node.
    pub async fn revoke(&self, id: NodeId) -> Result<Node, RegistryError> {
        let row: Option<(NodeId,)> = sqlx::query_as(
            "UPDATE nodes SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 RETURNING id",
        )
        .bind(unix_now())
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        row.ok_or(RegistryError::NoSuchNode(id))?;
        self.tokens_mut().revoke(id);
        self.revocations.send_modify(|n| *n += 1);
        self.standing_changed();
        self.node(id).await
    }

    /// Revokes in memory the nodes the database says were revoked at or after `since` (Unix
    /// seconds) by someone else (the CLI, another gateway on the same database), and closes
    /// their control sessions; returns how many this registry still took for valid.
    pub async fn sync_revocations(&self, since: i64) -> Result<usize, RegistryError> {
        let ids: Vec<(NodeId,)> = sqlx::query_as("SELECT id FROM nodes WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(self.reader())
            .await?;
        let fresh: Vec<NodeId> = ids
            .into_iter()
            .map(|(id,)| id)
            .filter(|id| self.is_valid(*id))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        {
            let mut tokens = self.tokens_mut();
            for id in &fresh {
                tokens.revoke(*id);
            }
        }
        self.revocations.send_modify(|n| *n += 1);
        self.standing_changed();
        Ok(fresh.len())
    }

    /// Counts the changes scores must reflect at once: a node registered, revoked or
    /// requalified, or an audit not passed. Scores computed when it read `v` are stale once it
    /// reads more; other records (uptime, transfers) move scores slowly and may wait.
    pub fn standing_version(&self) -> u64 {
        self.standing.load(Ordering::Acquire)
    }

    fn standing_changed(&self) {
        self.standing.fetch_add(1, Ordering::AcqRel);
    }

    /// One node.
    pub async fn node(&self, id: NodeId) -> Result<Node, RegistryError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1");
        sqlx::query_as::<_, NodeRow>(&sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await?
            .map(Node::from)
            .ok_or(RegistryError::NoSuchNode(id))
    }

    /// All nodes, oldest first.
    pub async fn nodes(&self) -> Result<Vec<Node>, RegistryError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY id");
        let rows: Vec<NodeRow> = sqlx::query_as(&sql).fetch_all(self.reader()).await?;
        Ok(rows.into_iter().map(Node::from).collect())
    }

    /// Closes the database, waiting for connections to finish (checkpointing the WAL).
    pub async fn close(&self) {
        self.db.close().await;
    }
}

#[cfg(test)]
mod tests;
