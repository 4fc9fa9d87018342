//! Several gateways on one database: who is alive, who may do the cloud-wide work, and whose
//! uploads are gone.
//!
//! - Every gateway writes down that it is alive (`gateways.seen_at`) at least once per lease
//!   renewal; one that has not for a lease's length is gone.
//! - A work lease is one row: the holder and when it expires. Taking it succeeds when nobody
//!   holds it, the taker already does, or the holder's term expired; one statement decides, so
//!   two gateways taking it at once cannot both succeed (the row's conflict is resolved by the
//!   database, on SQLite by its single writer, on PostgreSQL by the row lock of the upsert).
//! - A pending shard names the gateway whose upload began it. At start a gateway abandons its
//!   own (its uploads did not survive the restart), those of gone gateways and unnamed ones; the
//!   lease holder abandons those of gateways that went while it runs. Uploads of gateways still
//!   alive are never touched.
//!
//! Times are Unix seconds of each gateway's clock: gateways sharing a database need clocks
//! that agree to well within a lease's length.

use super::groups::part_bucket_name;
use super::Meta;
use crate::gateway::GatewayError;

/// Whose pending uploads to abandon.
#[derive(Debug, Clone, Copy)]
pub enum Abandon<'a> {
    /// At start: this gateway's own, and those of gateways gone or unnamed.
    AtStart { own: &'a str, alive_since: i64 },
    /// While running: only those of gateways that were alive once and are gone now.
    Gone { alive_since: i64 },
}

impl Meta {
    /// Writes down that gateway `id` (started at `started_at`) is alive at `now`.
    pub async fn gateway_alive(
        &self,
        id: &str,
        started_at: i64,
        now: i64,
    ) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT INTO gateways (id, started_at, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE
             SET started_at = excluded.started_at, seen_at = excluded.seen_at",
        )
        .bind(id)
        .bind(started_at)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Whether a gateway other than `id` has been alive since `since`.
    pub async fn others_alive(&self, id: &str, since: i64) -> Result<bool, GatewayError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM gateways WHERE id <> $1 AND seen_at >= $2")
                .bind(id)
                .bind(since)
                .fetch_one(self.reader())
                .await?;
        Ok(n > 0)
    }

    /// Takes (or renews) lease `name` for `holder` until `now + secs`; returns whether
    /// `holder` has it now.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        secs: i64,
    ) -> Result<bool, GatewayError> {
        let r = sqlx::query(
            "INSERT INTO work_leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
             SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE work_leases.holder = excluded.holder OR work_leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + secs)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives lease `name` up if `holder` has it, so another gateway may take it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), GatewayError> {
        sqlx::query("UPDATE work_leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Who holds lease `name` and until when, if anybody ever took it.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, GatewayError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM work_leases WHERE name = $1")
                .bind(name)
                .fetch_optional(self.reader())
                .await?;
        Ok(row)
    }

    /// Turns the pending shards of the uploads `which` names into orphans; returns how many.
    pub async fn abandon_pending(&self, which: Abandon<'_>) -> Result<u64, GatewayError> {
        let (own, alive_since) = which.params();
        let r = sqlx::query(&format!(
            "UPDATE shards SET state = 'orphan' WHERE state = 'pending' AND {}",
            which.condition("shards")
        ))
        .bind(own)
        .bind(alive_since)
        .execute(self.writer())
        .await?;
        Ok(r.rows_affected())
    }

    /// Deletes the parts no grouped object or multipart upload refers to, of the uploads `which`
    /// names (a part counts as its shards' gateway's; one without shards as nobody's); their
    /// shards become orphans. A running upload's parts are not referred to until it commits,
    /// which is why a part of a gateway still alive is never touched. Returns how many went.
    pub async fn drop_loose_parts(&self, which: Abandon<'_>) -> Result<u64, GatewayError> {
        let mine = match which {
            // Every shard of the part is abandoned (a part without shards too).
            Abandon::AtStart { .. } => format!(
                "NOT EXISTS (SELECT 1 FROM shards s WHERE s.object_id = o.id AND NOT {})",
                which.condition("s")
            ),
            // It has shards, all of gateways gone.
            Abandon::Gone { .. } => format!(
                "EXISTS (SELECT 1 FROM shards s WHERE s.object_id = o.id)
                 AND NOT EXISTS (SELECT 1 FROM shards s WHERE s.object_id = o.id AND NOT {})",
                which.condition("s")
            ),
        };
        let loose = format!(
            "SELECT id FROM objects o
             WHERE substr(o.bucket, 1, length($3)) = $3
               AND NOT EXISTS (SELECT 1 FROM object_groups g WHERE g.part_id = o.id)
               AND NOT EXISTS (SELECT 1 FROM multipart_parts m
                               WHERE substr(o.key, 1, length(m.prefix) + 1) = m.prefix || '/')
               AND {mine}"
        );
        let (own, alive_since) = which.params();
        let mut tx = self.writer().begin().await?;
        let ids: Vec<(i64,)> = sqlx::query_as(&loose)
            .bind(own)
            .bind(alive_since)
            .bind(part_bucket_name(""))
            .fetch_all(&mut *tx)
            .await?;
        for &(id,) in &ids {
            sqlx::query(
                "UPDATE shards SET state = 'orphan', object_id = NULL WHERE object_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM objects WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

impl Abandon<'_> {
    /// `$1` (own id, or one no gateway has) and `$2` (alive since).
    fn params(self) -> (String, i64) {
        match self {
            Abandon::AtStart { own, alive_since } => (own.to_owned(), alive_since),
            Abandon::Gone { alive_since } => (String::new(), alive_since),
        }
    }

    /// Whether the shard row `t` was begun by an upload this abandons.
    fn condition(self, t: &str) -> String {
        let gone = format!(
            "{t}.gateway NOT IN (SELECT id FROM gateways WHERE seen_at >= $2) AND {t}.gateway <> $1"
        );
        match self {
            Abandon::AtStart { .. } => {
                format!("({t}.gateway IS NULL OR {t}.gateway = $1 OR {gone})")
            }
            Abandon::Gone { .. } => format!("({t}.gateway IS NOT NULL AND {gone})"),
        }
    }
}
