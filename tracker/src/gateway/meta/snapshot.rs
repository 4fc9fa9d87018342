//! What the health worker plans over: stored objects with their shards and their copies, all of
//! them or those a pass selects (`crate::repair::dirty`), and the change log that selects them.

use raidtorrent_codec::InfoHash;
use sqlx::Row;

use super::{info_hash_col, policy_col, Meta};
use crate::gateway::GatewayError;
use crate::repair::dirty::{Tracker, Window};
use crate::repair::{CopyState, ObjectState, ShardState};

impl Meta {
    /// Every stored (not inline) object with its shards and their confirmed copies, for planning.
    pub async fn health_snapshot(&self) -> Result<Vec<ObjectState>, GatewayError> {
        let rows = sqlx::query(&snapshot_sql(""))
            .fetch_all(self.reader())
            .await?;
        fold(rows)
    }

    /// One stored object with its shards and copies, as [`Meta::health_snapshot`] has it;
    /// `None` for an object without shards of its own (inline, waiting, packed, grouped).
    pub async fn object_state(&self, object: i64) -> Result<Option<ObjectState>, GatewayError> {
        let rows = sqlx::query(&snapshot_sql("WHERE o.id = $1"))
            .bind(object)
            .fetch_all(self.reader())
            .await?;
        Ok(fold(rows)?.pop())
    }
}

/// Objects read per query when a pass loads a selection.
const LOAD_CHUNK: usize = 500;

impl Meta {
    /// Takes (and deletes) up to `limit` entries of the change log the database's triggers
    /// write: objects whose recorded copies changed. Returns their ids, each once.
    pub async fn take_health_changes(&self, limit: usize) -> Result<Vec<i64>, GatewayError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM health_changes WHERE seq IN
               (SELECT seq FROM health_changes ORDER BY seq LIMIT $1)
             RETURNING object_id",
        )
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(self.writer())
        .await?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The objects the live shards among `shards` belong to, each once.
    pub async fn objects_of_shards(&self, shards: &[InfoHash]) -> Result<Vec<i64>, GatewayError> {
        let mut ids = Vec::new();
        for chunk in shards.chunks(LOAD_CHUNK) {
            let marks = numbered(chunk.len());
            let sql = format!(
                "SELECT object_id FROM shards
                 WHERE state = 'live' AND object_id IS NOT NULL AND info_hash IN ({marks})"
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for ih in chunk {
                q = q.bind(ih.to_hex());
            }
            ids.extend(q.fetch_all(self.reader()).await?);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Ids of the next `limit` objects above `after` with stored shards, in order.
    pub async fn stored_object_ids_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<i64>, GatewayError> {
        Ok(sqlx::query_scalar(
            "SELECT o.id FROM objects o
             WHERE o.id > $1 AND EXISTS
               (SELECT 1 FROM shards s WHERE s.object_id = o.id AND s.state = 'live')
             ORDER BY o.id LIMIT $2",
        )
        .bind(after)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(self.reader())
        .await?)
    }

    /// Loads what `tracker` selects (at most `dirty_max` marked objects and the sweep's next
    /// `sweep` objects) and hands it to the tracker; returns the objects, for planning.
    pub async fn load_selected(
        &self,
        tracker: &mut Tracker,
        dirty_max: usize,
        sweep: usize,
    ) -> Result<Vec<ObjectState>, GatewayError> {
        let sel = tracker.select(dirty_max, sweep);
        if sel.sweep == Some(Window::ALL) {
            // Everything: one ordered scan beats reading it back by id, chunk by chunk.
            let objects = self.health_snapshot().await?;
            let window: Vec<i64> = objects.iter().map(|o| o.id).collect();
            tracker.loaded(&sel, &window, &objects);
            return Ok(objects);
        }
        let window = match sel.sweep {
            Some(w) => self.stored_object_ids_after(w.after, w.limit).await?,
            None => Vec::new(),
        };
        let mut ids: Vec<i64> = sel.dirty.iter().chain(&window).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let objects = self.objects_state(&ids).await?;
        tracker.loaded(&sel, &window, &objects);
        Ok(objects)
    }

    /// The objects among `ids` that have stored shards, as [`Meta::health_snapshot`] has them.
    pub async fn objects_state(&self, ids: &[i64]) -> Result<Vec<ObjectState>, GatewayError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOAD_CHUNK) {
            let marks = numbered(chunk.len());
            let sql = snapshot_sql(&format!("WHERE o.id IN ({marks})"));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(fold(q.fetch_all(self.reader()).await?)?);
        }
        Ok(out)
    }
}

/// `$1, $2, .., $n`: parameters as both SQLite and PostgreSQL number them.
fn numbered(n: usize) -> String {
    let marks: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    marks.join(", ")
}

/// The snapshot query, for every object (`filter` empty) or those `filter` names by id. With
/// a filter, the shard's state is compared as an expression (`s.state || ''`), which keeps it
/// off its index, or SQLite would walk every live shard to find the few objects named.
fn snapshot_sql(filter: &str) -> String {
    let state = if filter.is_empty() {
        "s.state"
    } else {
        "(s.state || '')"
    };
    format!(
        "SELECT o.id AS object_id, o.read_hours AS read_hours, b.policy AS policy, s.idx AS idx,
                s.info_hash AS info_hash,
                s.length AS length, h.node_id AS node_id, h.failed_at AS failed_at
         FROM objects o
         JOIN buckets b ON b.name = o.bucket
         JOIN shards s ON s.object_id = o.id AND {state} = 'live'
         LEFT JOIN holdings h ON h.info_hash = s.info_hash
         {filter}
         ORDER BY o.id, s.idx, h.node_id"
    )
}

/// Rows ordered by object, shard and node, folded into objects.
fn fold(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<ObjectState>, GatewayError> {
    let mut out: Vec<ObjectState> = Vec::new();
    for r in rows {
        let object: i64 = r.get("object_id");
        if out.last().map_or(true, |o| o.id != object) {
            out.push(ObjectState {
                id: object,
                policy: policy_col(&r)?.placement(),
                shards: Vec::new(),
                read_hours: r.get::<i64, _>("read_hours") as u32,
            });
        }
        let o = out.last_mut().expect("pushed above");
        let idx = r.get::<i64, _>("idx") as u32;
        if o.shards.last().map_or(true, |s| s.idx != idx) {
            o.shards.push(ShardState {
                idx,
                info_hash: info_hash_col(&r, "info_hash")?,
                length: r.get::<i64, _>("length") as u64,
                copies: Vec::new(),
            });
        }
        if let Some(node) = r.get::<Option<i64>, _>("node_id") {
            let copy = CopyState {
                node,
                failed_audit: r.get::<Option<i64>, _>("failed_at").is_some(),
            };
            o.shards.last_mut().expect("pushed above").copies.push(copy);
        }
    }
    Ok(out)
}

impl Meta {
    /// Copies of stored objects' shards, and their bytes, per node (copies that failed an audit
    /// and shards being written or orphaned are not counted).
    pub async fn held_by_node(&self) -> Result<Vec<(i64, u64, u64)>, GatewayError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT h.node_id, COUNT(*), CAST(COALESCE(SUM(s.length), 0) AS BIGINT)
             FROM holdings h JOIN shards s ON s.info_hash = h.info_hash
             WHERE s.state = 'live' AND h.failed_at IS NULL
             GROUP BY h.node_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(n, c, b)| (n, c as u64, b as u64))
            .collect())
    }
}
