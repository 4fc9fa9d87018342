//! S3 access keys: id, secret sealed under the master key, the buckets the key may use, its
//! storage quota, and whether it was revoked; and the bytes each key's objects take.

use std::collections::HashMap;

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
    /// The most bytes of live objects the key may have stored; none: no limit.
    pub quota_bytes: Option<u64>,
}

/// The columns [`key_row`] reads.
const KEY_COLUMNS: &str = "access_key, secret_sealed, owner, buckets, created_at, revoked_at, \
                           quota_bytes";

/// The live objects a key placed: those of client buckets (internal part and pack objects are
/// never a key's own), which a listing shows. Overwritten and deleted objects have no row.
const PLACED_BY: &str = "FROM objects WHERE placed_by IS NOT NULL AND substr(bucket, 1, 1) <> '_'";

impl Meta {
    pub async fn insert_access_key(&self, k: &StoredKey) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT INTO s3_keys
                 (access_key, secret_sealed, owner, buckets, created_at, quota_bytes)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.access_key)
        .bind(&k.secret_sealed)
        .bind(&k.owner)
        .bind(serde_json::to_string(&k.buckets).expect("names serialise"))
        .bind(k.created_at)
        .bind(quota_col(k.quota_bytes)?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The key `access_key`, revoked or not.
    pub async fn access_key(&self, access_key: &str) -> Result<Option<StoredKey>, GatewayError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM s3_keys WHERE access_key = $1");
        let row = sqlx::query(&sql)
            .bind(access_key)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.as_ref().map(key_row))
    }

    pub async fn access_keys(&self) -> Result<Vec<StoredKey>, GatewayError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM s3_keys ORDER BY created_at, access_key");
        let rows = sqlx::query(&sql).fetch_all(self.reader()).await?;
        Ok(rows.iter().map(key_row).collect())
    }

    /// Revokes a key; false if there is no such key.
    pub async fn revoke_access_key(
        &self,
        access_key: &str,
        now: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "UPDATE s3_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE access_key = $2",
        )
        .bind(now)
        .bind(access_key)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets (or, with none, lifts) a key's quota; false if there is no such key.
    pub async fn set_key_quota(
        &self,
        access_key: &str,
        quota_bytes: Option<u64>,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query("UPDATE s3_keys SET quota_bytes = $1 WHERE access_key = $2")
            .bind(quota_col(quota_bytes)?)
            .bind(access_key)
            .execute(self.writer())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Bytes of the live objects `access_key` placed (0 for a key that placed none).
    pub async fn key_usage(&self, access_key: &str) -> Result<u64, GatewayError> {
        let sql =
            format!("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) {PLACED_BY} AND placed_by = $1");
        let used: i64 = sqlx::query_scalar(&sql)
            .bind(access_key)
            .fetch_one(self.reader())
            .await?;
        Ok(used as u64)
    }

    /// [`Meta::key_usage`] of every key that placed a live object, in one query.
    pub async fn keys_usage(&self) -> Result<HashMap<String, u64>, GatewayError> {
        let sql = format!(
            "SELECT placed_by, CAST(SUM(size) AS BIGINT) AS used {PLACED_BY} GROUP BY placed_by"
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(&sql).fetch_all(self.reader()).await?;
        Ok(rows.into_iter().map(|(k, used)| (k, used as u64)).collect())
    }
}

/// A quota as stored: SQLite integers are signed 64-bit.
fn quota_col(quota: Option<u64>) -> Result<Option<i64>, GatewayError> {
    quota
        .map(|q| {
            i64::try_from(q).map_err(|_| {
                GatewayError::BadRequest(format!("a quota is at most {} bytes", i64::MAX))
            })
        })
        .transpose()
}

fn key_row(r: &sqlx::any::AnyRow) -> StoredKey {
    let buckets: String = r.get("buckets");
    StoredKey {
        access_key: r.get("access_key"),
        secret_sealed: r.get("secret_sealed"),
        owner: r.get("owner"),
        buckets: serde_json::from_str(&buckets).unwrap_or_default(),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
        quota_bytes: r
            .get::<Option<i64>, _>("quota_bytes")
            .map(|q| q.max(0) as u64),
    }
}
