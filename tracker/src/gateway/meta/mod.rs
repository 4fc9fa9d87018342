//! Object metadata in SQLite (sqlx): buckets, objects, shards and the copies nodes confirmed.
//!
//! Invariants:
//! - an `objects` row exists only for a durable object, and is inserted (or replaced) in one
//!   transaction with the shards it references: readers never see a partial object;
//! - every shard the gateway ever handed to a node has a `shards` row from before the first hold
//!   directive, so a failed or interrupted upload leaves orphans for the collector, never leaks;
//! - replacing or deleting an object turns its shards into orphans in the same transaction;
//! - a copy counts only while its shard is pending or live; a copy confirmed after its object
//!   went away is recorded against the orphan, so the collector drops it from its node.
//!
//! Info-hashes are hex text and node ids integers in the database; they are converted to their
//! types here, at the edge, and nowhere else.

mod access_keys;
mod copies;
mod gateways;
mod groups;
#[cfg(test)]
mod key_tests;
mod keys;
mod multipart;
mod packs;
mod snapshot;
#[cfg(test)]
mod tests;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::registry::Db;

pub use access_keys::StoredKey;
pub use copies::{AuditCandidate, ShardRow};
pub use gateways::Abandon;
pub use groups::{part_bucket_name, NewPart, Part};
pub use multipart::{new_parts, PartObject, Upload, UploadPart};
pub use packs::{
    is_internal_bucket, pack_bucket_name, Member, PackMember, PackStats, Waiting, WaitingBucket,
};

use super::attrs::ObjectAttrs;
use super::model::{Bucket, BucketPolicy, ObjectInfo, Storage};
use super::GatewayError;
use raidtorrent_codec::InfoHash;

/// Metadata access; cheap to clone.
#[derive(Clone)]
pub struct Meta {
    db: Db,
    /// The gateway whose uploads this records (see `gateways`); none for the operator's
    /// commands, which upload nothing.
    gateway: Option<std::sync::Arc<str>>,
}

/// An object row.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub id: i64,
    pub info: ObjectInfo,
    pub inline_data: Option<Vec<u8>>,
    /// Whether `inline_data` is sealed under the master key (always, once the gateway started).
    pub inline_sealed: bool,
    pub manifest: Option<Vec<u8>>,
    /// The pack holding the bytes, and where in it they start.
    pub pack: Option<(i64, u64)>,
}

/// An object about to become visible, with where its bytes are.
#[derive(Debug, Clone, Copy)]
pub struct NewObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: u64,
    pub sha256: &'a [u8; 32],
    /// Headers, metadata and ETag stored beside the bytes (none for internal objects).
    pub attrs: Option<&'a ObjectAttrs>,
    pub body: StoredBody<'a>,
    /// The S3 access key storing the object, whose quota it counts against (none for the
    /// operator's writes, API-key writes and internal objects).
    pub placed_by: Option<&'a str>,
}

/// Where an object's bytes live.
#[derive(Debug, Clone, Copy)]
pub enum StoredBody<'a> {
    /// In the metadata store itself (small objects), sealed under the master key
    /// (`raidtorrent_codec::sealed`).
    Inline(&'a [u8]),
    /// In the metadata store, sealed, until the packer writes it into a pack.
    Waiting(&'a [u8]),
    /// In the swarm: the manifest, and the shards recorded with [`Meta::begin_shards`].
    Swarm {
        manifest: &'a [u8],
        shards: &'a [InfoHash],
    },
    /// In parts, each a swarm object of `part_bucket` committed before, in order.
    Grouped {
        part_bucket: &'a str,
        parts: &'a [NewPart],
    },
}

/// The columns [`object_info`] reads.
const INFO_COLUMNS: &str = "key, size, sha256, created_at, attrs";

fn object_info(bucket: &str, r: &AnyRow) -> ObjectInfo {
    let sha: Vec<u8> = r.get("sha256");
    let storage = Storage::from_sql(r.get("storage"));
    ObjectInfo {
        bucket: bucket.to_owned(),
        key: r.get("key"),
        size: r.get::<i64, _>("size") as u64,
        sha256: hex::encode(sha),
        created_at: r.get("created_at"),
        inline: storage == Storage::Inline,
        storage,
        attrs: ObjectAttrs::from_json(r.get("attrs")),
    }
}

/// An info-hash column, parsed.
fn info_hash_col(r: &AnyRow, col: &str) -> Result<InfoHash, GatewayError> {
    let text: &str = r.get(col);
    InfoHash::from_hex(text)
        .ok_or_else(|| GatewayError::Internal(format!("stored info-hash {text:?} is not hex")))
}

/// A stored bucket policy, parsed.
fn policy_col(r: &AnyRow) -> Result<BucketPolicy, GatewayError> {
    serde_json::from_str(r.get("policy"))
        .map_err(|e| GatewayError::Internal(format!("stored policy: {e}")))
}

impl Meta {
    pub fn new(db: Db) -> Self {
        Meta { db, gateway: None }
    }

    /// The same store, recording the shards it begins as gateway `id`'s.
    pub fn for_gateway(self, id: &str) -> Self {
        Meta {
            gateway: Some(id.into()),
            ..self
        }
    }

    fn reader(&self) -> &AnyPool {
        self.db.reader()
    }

    /// Every write goes here (see [`Db`]: one writer, each commit on disk when it returns).
    fn writer(&self) -> &AnyPool {
        self.db.writer()
    }

    pub async fn create_bucket(
        &self,
        name: &str,
        policy: &BucketPolicy,
        now: i64,
    ) -> Result<Bucket, GatewayError> {
        let json = serde_json::to_string(policy).expect("policy serialises");
        let r = sqlx::query(
            "INSERT INTO buckets (name, policy, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(json)
        .bind(now)
        .execute(self.writer())
        .await?;
        if r.rows_affected() == 0 {
            return Err(GatewayError::BucketExists(name.to_owned()));
        }
        Ok(Bucket {
            name: name.to_owned(),
            policy: *policy,
            created_at: now,
        })
    }

    /// Deletes an empty client bucket: `BucketNotEmpty` while it holds objects or multipart
    /// uploads in progress.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), GatewayError> {
        if is_internal_bucket(name) {
            return Err(GatewayError::NoSuchBucket(name.to_owned()));
        }
        let r = sqlx::query(
            "DELETE FROM buckets WHERE name = $1
               AND NOT EXISTS (SELECT 1 FROM objects WHERE bucket = $1)
               AND NOT EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket = $1)",
        )
        .bind(name)
        .execute(self.writer())
        .await?;
        if r.rows_affected() == 1 {
            return Ok(());
        }
        self.any_bucket(name).await?;
        Err(GatewayError::BucketNotEmpty(name.to_owned()))
    }

    /// A client's bucket: the gateway's own (packs) are not found.
    pub async fn bucket(&self, name: &str) -> Result<Bucket, GatewayError> {
        if is_internal_bucket(name) {
            return Err(GatewayError::NoSuchBucket(name.to_owned()));
        }
        self.any_bucket(name).await
    }

    async fn any_bucket(&self, name: &str) -> Result<Bucket, GatewayError> {
        let row = sqlx::query("SELECT policy, created_at FROM buckets WHERE name = $1")
            .bind(name)
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| GatewayError::NoSuchBucket(name.to_owned()))?;
        Ok(Bucket {
            name: name.to_owned(),
            policy: policy_col(&row)?,
            created_at: row.get("created_at"),
        })
    }

    pub async fn buckets(&self) -> Result<Vec<Bucket>, GatewayError> {
        let rows = sqlx::query(
            "SELECT name, policy, created_at FROM buckets WHERE substr(name, 1, 1) <> '_'
             ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Bucket {
                    name: r.get("name"),
                    policy: policy_col(r)?,
                    created_at: r.get("created_at"),
                })
            })
            .collect()
    }

    pub async fn object(&self, bucket: &str, key: &str) -> Result<ObjectRow, GatewayError> {
        let sql = format!(
            "SELECT id, {INFO_COLUMNS}, {} AS storage, inline_data, inline_sealed, manifest,
                 pack_id, pack_offset
             FROM objects WHERE bucket = $1 AND key = $2",
            Storage::SQL
        );
        let r = sqlx::query(&sql)
            .bind(bucket)
            .bind(key)
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| GatewayError::NoSuchKey(key.to_owned()))?;
        Ok(ObjectRow {
            id: r.get("id"),
            info: object_info(bucket, &r),
            inline_data: r.get("inline_data"),
            inline_sealed: r.get::<i64, _>("inline_sealed") != 0,
            manifest: r.get("manifest"),
            pack: r
                .get::<Option<i64>, _>("pack_id")
                .map(|p| (p, r.get::<i64, _>("pack_offset") as u64)),
        })
    }

    /// An object row by id.
    pub async fn object_by_id(&self, id: i64) -> Result<ObjectRow, GatewayError> {
        let bucket: Option<(String, String)> =
            sqlx::query_as("SELECT bucket, key FROM objects WHERE id = $1")
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        let (bucket, key) =
            bucket.ok_or_else(|| GatewayError::NoSuchKey(format!("object {id}")))?;
        self.object(&bucket, &key).await
    }

    /// Objects whose key starts with `prefix`, after `after`, in key order.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>, GatewayError> {
        // Keys compare as UTF-8 bytes (BINARY collation); the prefix bound is the prefix followed by
        // the largest code point, so no LIKE escaping is needed.
        let upper = format!("{prefix}\u{10FFFF}");
        let sql = format!(
            "SELECT {INFO_COLUMNS}, {} AS storage
             FROM objects WHERE bucket = $1 AND key >= $2 AND key < $3 AND key > $4
             ORDER BY key LIMIT $5",
            Storage::SQL
        );
        let rows = sqlx::query(&sql)
            .bind(bucket)
            .bind(prefix)
            .bind(upper)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(|r| object_info(bucket, r)).collect())
    }

    /// Makes an object visible, replacing any object under the same key (whose shards become
    /// orphans), in one transaction.
    pub async fn commit_object(
        &self,
        o: &NewObject<'_>,
        now: i64,
    ) -> Result<ObjectInfo, GatewayError> {
        let since = std::time::Instant::now();
        let mut tx = self.writer().begin().await?;
        let info = commit_object_in(&mut tx, o, now).await?;
        tx.commit().await?;
        crate::metrics::metrics().db_write(since);
        Ok(info)
    }
}

/// [`Meta::commit_object`] inside a transaction of the caller's.
pub(super) async fn commit_object_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    o: &NewObject<'_>,
    now: i64,
) -> Result<ObjectInfo, GatewayError> {
    if let Some(condition) = o.attrs.and_then(|a| a.condition.as_ref()) {
        check_condition(tx, o.bucket, o.key, condition).await?;
    }
    let (inline_data, manifest, shards, storage) = match o.body {
        StoredBody::Inline(data) => (Some(data), None, &[][..], Storage::Inline),
        StoredBody::Waiting(data) => (Some(data), None, &[][..], Storage::Waiting),
        StoredBody::Swarm { manifest, shards } => (None, Some(manifest), shards, Storage::Swarm),
        StoredBody::Grouped { .. } => (None, None, &[][..], Storage::Grouped),
    };
    orphan_object(tx, o.bucket, o.key).await?;
    let id: i64 = sqlx::query(
        "INSERT INTO objects
                 (bucket, key, size, sha256, created_at, inline_data, inline_sealed, manifest,
                  pack_pending, grouped, attrs, placed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(o.bucket)
    .bind(o.key)
    .bind(o.size as i64)
    .bind(&o.sha256[..])
    .bind(now)
    .bind(inline_data)
    .bind(i64::from(inline_data.is_some()))
    .bind(manifest)
    .bind(i64::from(storage == Storage::Waiting))
    .bind(i64::from(storage == Storage::Grouped))
    .bind(o.attrs.map(ObjectAttrs::to_json))
    .bind(o.placed_by)
    .fetch_one(&mut **tx)
    .await?
    .get("id");
    if let StoredBody::Grouped { part_bucket, parts } = o.body {
        groups::insert_parts(tx, id, o.size, part_bucket, parts).await?;
    }
    for ih in shards {
        let r = sqlx::query(
                "UPDATE shards SET state = 'live', object_id = $1 WHERE info_hash = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(ih.to_hex())
            .execute(&mut **tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(GatewayError::Internal(format!(
                "shard {ih} was not pending"
            )));
        }
    }
    Ok(ObjectInfo {
        bucket: o.bucket.to_owned(),
        key: o.key.to_owned(),
        size: o.size,
        sha256: hex::encode(o.sha256),
        created_at: now,
        inline: storage == Storage::Inline,
        storage,
        attrs: o.attrs.cloned().unwrap_or_default(),
    })
}

impl Meta {
    /// Removes an object; its shards become orphans.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), GatewayError> {
        let mut tx = self.writer().begin().await?;
        if !orphan_object(&mut tx, bucket, key).await? {
            return Err(GatewayError::NoSuchKey(key.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Notes that an object was read at UTC hour `hour` (0-23). Only the first read in an hour
    /// writes: the others match no row and commit nothing.
    pub async fn note_read(&self, object: i64, hour: u32) -> Result<(), GatewayError> {
        sqlx::query(
            "UPDATE objects SET read_hours = read_hours | $1 WHERE id = $2 AND read_hours & $1 = 0",
        )
        .bind(i64::from(1u32 << (hour % 24)))
        .bind(object)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

/// Fails with `PreconditionFailed` unless `condition` holds of the object now under (bucket,
/// key). Its first statement writes (see [`orphan_object`]), so nothing changes the object
/// between the check and the commit.
async fn check_condition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bucket: &str,
    key: &str,
    condition: &super::attrs::WriteCondition,
) -> Result<(), GatewayError> {
    let current = sqlx::query(
        "UPDATE objects SET id = id WHERE bucket = $1 AND key = $2 RETURNING attrs, sha256",
    )
    .bind(bucket)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    let etag = current.map(|r| {
        let sha: Vec<u8> = r.get("sha256");
        ObjectAttrs::from_json(r.get("attrs"))
            .etag
            .unwrap_or_else(|| hex::encode(sha))
    });
    if condition.holds(etag.as_deref()) {
        Ok(())
    } else {
        Err(GatewayError::PreconditionFailed(match condition {
            super::attrs::WriteCondition::Absent => format!("{key} exists (If-None-Match: *)"),
            super::attrs::WriteCondition::Etag(e) => {
                format!("{key} does not have the ETag {e} (If-Match)")
            }
        }))
    }
}

/// Deletes the object row under (bucket, key), if any, and orphans its shards (and deletes its
/// parts, if grouped). Returns whether there was one. Writes come first in every transaction: in
/// WAL mode a transaction that read before writing can fail with a stale snapshot when another
/// writer got in between.
async fn orphan_object(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bucket: &str,
    key: &str,
) -> Result<bool, GatewayError> {
    sqlx::query(
        "UPDATE shards SET state = 'orphan', object_id = NULL
         WHERE object_id IN (SELECT id FROM objects WHERE bucket = $1 AND key = $2)",
    )
    .bind(bucket)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    groups::drop_parts_of(tx, bucket, key).await?;
    let deleted = sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
        .bind(bucket)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
