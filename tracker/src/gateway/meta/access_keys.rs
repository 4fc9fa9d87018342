//! S3 access keys: id, secret sealed under the master key, the buckets the key may use, and
//! whether it was revoked.

use sqlx::Row;

use super::Meta;
use crate::gateway::GatewayError;

/// An access key as stored: the secret still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub access_key: String,
    pub secret_sealed: Vec<u8>,
    pub owner: String,
    /// Bucket names, or `*` for every bucket.
    pub buckets: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Meta {
    pub async fn insert_access_key(&self, k: &StoredKey) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT INTO s3_keys (access_key, secret_sealed, owner, buckets, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&k.access_key)
        .bind(&k.secret_sealed)
        .bind(&k.owner)
        .bind(serde_json::to_string(&k.buckets).expect("names serialise"))
        .bind(k.created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The key `access_key`, revoked or not.
    pub async fn access_key(&self, access_key: &str) -> Result<Option<StoredKey>, GatewayError> {
        let row = sqlx::query(
            "SELECT access_key, secret_sealed, owner, buckets, created_at, revoked_at
             FROM s3_keys WHERE access_key = ?",
        )
        .bind(access_key)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.as_ref().map(key_row))
    }

    pub async fn access_keys(&self) -> Result<Vec<StoredKey>, GatewayError> {
        let rows = sqlx::query(
            "SELECT access_key, secret_sealed, owner, buckets, created_at, revoked_at
             FROM s3_keys ORDER BY created_at, access_key",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    /// Revokes a key; false if there is no such key.
    pub async fn revoke_access_key(
        &self,
        access_key: &str,
        now: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "UPDATE s3_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE access_key = ?",
        )
        .bind(now)
        .bind(access_key)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

fn key_row(r: &sqlx::sqlite::SqliteRow) -> StoredKey {
    let buckets: String = r.get("buckets");
    StoredKey {
        access_key: r.get("access_key"),
        secret_sealed: r.get("secret_sealed"),
        owner: r.get("owner"),
        buckets: serde_json::from_str(&buckets).unwrap_or_default(),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
    }
}
