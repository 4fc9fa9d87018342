//! Read-only inspector credentials: announce tokens an operator issues so that stock BitTorrent
//! clients can fetch exported shards from the swarm and check them. An inspector token is served
//! peers like a node's, for the shards it was issued for only, but it belongs to no node: nothing
//! it announces is recorded, it is never handed a directive, and it never counts as holding a
//! copy. It expires; the database keeps only its SHA-256.

use super::db::Db;
use super::tokens::{inspector_digest, Tokens};
use super::{unix_now, Registry, RegistryError};
use crate::ids::InfoHash;

/// A freshly issued inspector credential.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct Inspector {
    /// What announce URLs carry: `/announce/<token>`. Shown once.
    pub token: String,
    pub expires_at: i64,
}

/// The longest an inspector token lives: a week.
pub const MAX_INSPECTOR_SECS: u64 = 7 * 24 * 3600;

impl Registry {
    /// Issues an inspector token for `shards`, valid for `ttl_secs` (at most
    /// [`MAX_INSPECTOR_SECS`]).
    pub async fn issue_inspector(
        &self,
        label: &str,
        ttl_secs: u64,
        shards: &[InfoHash],
    ) -> Result<Inspector, RegistryError> {
        let mut raw = [0u8; 20];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| RegistryError::Random)?;
        let token = format!("inspect-{}", hex::encode(raw));
        let now = unix_now();
        let expires_at = now + ttl_secs.min(MAX_INSPECTOR_SECS) as i64;
        let digest = inspector_digest(token.as_bytes());
        sqlx::query(
            "INSERT INTO inspector_tokens (token_sha256, label, created_at, expires_at, shards)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&digest[..])
        .bind(label)
        .bind(now)
        .bind(expires_at)
        .bind(shards.iter().map(InfoHash::to_hex).collect::<String>())
        .execute(self.writer())
        .await?;
        let scope = shards.iter().copied().collect();
        self.tokens_mut()
            .insert_inspector(digest, expires_at, scope);
        Ok(Inspector { token, expires_at })
    }

    /// Forgets inspector tokens that expired before now; the number forgotten.
    pub async fn forget_expired_inspectors(&self) -> Result<u64, RegistryError> {
        let now = unix_now();
        let gone = sqlx::query("DELETE FROM inspector_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(self.writer())
            .await?
            .rows_affected();
        self.tokens_mut().forget_inspectors(now);
        Ok(gone)
    }
}

/// Puts the unexpired inspector tokens in the database into `tokens`.
pub(super) async fn load(db: &Db, tokens: &mut Tokens) -> Result<(), RegistryError> {
    let rows: Vec<(Vec<u8>, i64, String)> = sqlx::query_as(
        "SELECT token_sha256, expires_at, shards FROM inspector_tokens WHERE expires_at >= $1",
    )
    .bind(unix_now())
    .fetch_all(db.reader())
    .await?;
    for (digest, expires_at, shards) in rows {
        let scope = shards
            .as_bytes()
            .chunks(40)
            .filter_map(|h| std::str::from_utf8(h).ok().and_then(InfoHash::from_hex))
            .collect();
        if let Ok(digest) = <[u8; 32]>::try_from(digest.as_slice()) {
            tokens.insert_inspector(digest, expires_at, scope);
        }
    }
    Ok(())
}
