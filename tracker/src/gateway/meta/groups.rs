//! Grouped objects: a large object written as a run of parts, each an ordinary swarm object of
//! its bucket's part bucket, so that staging holds a few groups at a time whatever the object's
//! size.
//!
//! The parts are committed one by one as each is durable, then the object in one transaction
//! with its list of parts ([`StoredBody::Grouped`](super::StoredBody)). Replacing or deleting the
//! object deletes its parts in the same transaction (`orphan_object`); parts of an upload that
//! failed are deleted by the upload, and those of one a restart cut short by
//! [`Meta::drop_loose_parts`] at the next start.

use sqlx::Row;

use super::packs::INTERNAL_PREFIX;
use super::Meta;
use crate::gateway::model::Bucket;
use crate::gateway::GatewayError;

/// The part bucket of a client's bucket.
pub fn part_bucket_name(bucket: &str) -> String {
    format!("{INTERNAL_PREFIX}part.{bucket}")
}

/// A part of a grouped object about to be committed: its key in the part bucket and where its
/// bytes start in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPart {
    pub key: String,
    pub offset: u64,
}

/// A part of a stored grouped object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The part's own object row.
    pub id: i64,
    /// Where its bytes start in the object.
    pub offset: u64,
    pub size: u64,
}

impl Meta {
    /// The part bucket of `bucket`, created with (or updated to) its policy.
    pub async fn part_bucket(&self, bucket: &Bucket) -> Result<Bucket, GatewayError> {
        self.internal_bucket(&part_bucket_name(&bucket.name), bucket)
            .await
    }

    /// The parts of grouped object `object`, in order.
    pub async fn parts(&self, object: i64) -> Result<Vec<Part>, GatewayError> {
        let rows = sqlx::query(
            "SELECT g.part_id AS id, g.\"offset\" AS part_offset, p.size AS size
             FROM object_groups g JOIN objects p ON p.id = g.part_id
             WHERE g.object_id = $1 ORDER BY g.idx",
        )
        .bind(object)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Part {
                id: r.get("id"),
                offset: r.get::<i64, _>("part_offset") as u64,
                size: r.get::<i64, _>("size") as u64,
            })
            .collect())
    }
}

/// Records the parts of grouped object `object` (just inserted), found by key in `part_bucket`;
/// fails if one is missing or they do not tile the object's `size` bytes.
pub(super) async fn insert_parts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    object: i64,
    size: u64,
    part_bucket: &str,
    parts: &[NewPart],
) -> Result<(), GatewayError> {
    let mut next = 0u64;
    for (idx, p) in parts.iter().enumerate() {
        let part_size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM objects WHERE bucket = $1 AND key = $2")
                .bind(part_bucket)
                .bind(&p.key)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(part_size) = part_size.filter(|_| p.offset == next) else {
            return Err(GatewayError::Internal(format!(
                "part {idx} of a grouped object is missing or out of place"
            )));
        };
        next += part_size as u64;
        sqlx::query(
            "INSERT INTO object_groups (object_id, idx, part_id, \"offset\")
             SELECT $1, $2, id, $3 FROM objects WHERE bucket = $4 AND key = $5",
        )
        .bind(object)
        .bind(idx as i64)
        .bind(p.offset as i64)
        .bind(part_bucket)
        .bind(&p.key)
        .execute(&mut **tx)
        .await?;
    }
    if next != size {
        return Err(GatewayError::Internal(format!(
            "the parts of a grouped object hold {next} bytes, not {size}"
        )));
    }
    Ok(())
}

/// Deletes the parts of the object rows under (bucket, key), orphaning their shards; called by
/// `orphan_object` after its first write, before it deletes the object.
pub(super) async fn drop_parts_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bucket: &str,
    key: &str,
) -> Result<(), GatewayError> {
    let parts: Vec<i64> = sqlx::query_scalar(
        "SELECT part_id FROM object_groups
         WHERE object_id IN (SELECT id FROM objects WHERE bucket = $1 AND key = $2)",
    )
    .bind(bucket)
    .bind(key)
    .fetch_all(&mut **tx)
    .await?;
    if parts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM object_groups
         WHERE object_id IN (SELECT id FROM objects WHERE bucket = $1 AND key = $2)",
    )
    .bind(bucket)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    for part in parts {
        sqlx::query("UPDATE shards SET state = 'orphan', object_id = NULL WHERE object_id = $1")
            .bind(part)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM objects WHERE id = $1")
            .bind(part)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
