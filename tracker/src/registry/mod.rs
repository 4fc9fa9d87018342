//! Node registry (who may join the private swarms) and reliability records, in SQLite via sqlx.
//!
//! Invariants:
//! - The schema comes from `tracker/migrations` (`sqlx::migrate!`); the `format` table carries the
//!   version of the records format, and a database written by a newer format is refused rather
//!   than misread.
//! - The announce path never waits on the database: passkeys are checked against an in-memory map
//!   kept in step with the `nodes` table (every create/revoke goes through [`Registry`]), and
//!   observations go to the [`records::Recorder`] task through a bounded channel.
//! - A passkey is 32 lowercase hex characters (128 random bits). Revoked passkeys stay in the map
//!   so the client is told it was revoked rather than unknown.

pub mod control_records;
pub mod db;
pub mod events;
pub mod records;
pub mod report;

pub use db::Db;

use serde::Serialize;
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Row id of a registered node.
pub use crate::ids::NodeId;

/// The records format this build reads and writes.
pub const RECORDS_FORMAT: i64 = 2;

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
}

/// A freshly created node and the passkey to give to it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NewNode {
    #[serde(flatten)]
    pub node: Node,
    pub passkey: String,
}

/// What a passkey says about an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasskeyStatus {
    Valid(NodeId),
    Revoked,
    Unknown,
}

/// Passkey → (node, revoked).
type PasskeyMap = HashMap<Box<[u8]>, (NodeId, bool)>;

/// Handle to the node registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    passkeys: Arc<RwLock<PasskeyMap>>,
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
        sqlx::migrate!("./migrations").run(db.writer()).await?;
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
        let passkeys = rows
            .into_iter()
            .map(|(k, id, revoked)| (k.into_bytes().into_boxed_slice(), (id, revoked.is_some())))
            .collect();
        Ok(Registry {
            db,
            passkeys: Arc::new(RwLock::new(passkeys)),
        })
    }

    /// The database (the gateway's metadata shares it).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Connections for queries that only read.
    pub fn reader(&self) -> &SqlitePool {
        self.db.reader()
    }

    /// The one connection every write goes through.
    pub fn writer(&self) -> &SqlitePool {
        self.db.writer()
    }

    /// Looks a passkey up without touching the database.
    pub fn check_passkey(&self, passkey: &[u8]) -> PasskeyStatus {
        let map = self.passkeys.read().unwrap_or_else(|e| e.into_inner());
        match map.get(passkey) {
            Some(&(id, false)) => PasskeyStatus::Valid(id),
            Some(&(_, true)) => PasskeyStatus::Revoked,
            None => PasskeyStatus::Unknown,
        }
    }

    /// Registers a node and returns it with a new random passkey.
    pub async fn create_node(&self, name: &str) -> Result<NewNode, RegistryError> {
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(RegistryError::BadName);
        }
        let mut raw = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| RegistryError::Random)?;
        let passkey = hex::encode(raw);
        let created_at = unix_now();
        let id: NodeId = sqlx::query_scalar(
            "INSERT INTO nodes (name, passkey, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(&passkey)
        .bind(created_at)
        .fetch_one(self.writer())
        .await?;
        self.passkeys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(passkey.clone().into_bytes().into_boxed_slice(), (id, false));
        Ok(NewNode {
            node: Node {
                id,
                name: name.to_owned(),
                created_at,
                revoked_at: None,
            },
            passkey,
        })
    }

    /// Revokes a node's passkey; revoking twice keeps the first time. Returns the node.
    pub async fn revoke(&self, id: NodeId) -> Result<Node, RegistryError> {
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE nodes SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING passkey",
        )
        .bind(unix_now())
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        let (passkey,) = row.ok_or(RegistryError::NoSuchNode(id))?;
        self.passkeys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(passkey.into_bytes().into_boxed_slice(), (id, true));
        self.node(id).await
    }

    /// One node.
    pub async fn node(&self, id: NodeId) -> Result<Node, RegistryError> {
        sqlx::query_as::<_, (NodeId, String, i64, Option<i64>)>(
            "SELECT id, name, created_at, revoked_at FROM nodes WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        .map(|(id, name, created_at, revoked_at)| Node {
            id,
            name,
            created_at,
            revoked_at,
        })
        .ok_or(RegistryError::NoSuchNode(id))
    }

    /// All nodes, oldest first.
    pub async fn nodes(&self) -> Result<Vec<Node>, RegistryError> {
        let rows: Vec<(NodeId, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT id, name, created_at, revoked_at FROM nodes ORDER BY id")
                .fetch_all(self.reader())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, revoked_at)| Node {
                id,
                name,
                created_at,
                revoked_at,
            })
            .collect())
    }

    /// Closes the database, waiting for connections to finish (checkpointing the WAL).
    pub async fn close(&self) {
        self.db.close().await;
    }
}

#[cfg(test)]
mod tests;
