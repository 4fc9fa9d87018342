//! What the database knows of the master key: its check value, and whether anything is sealed
//! under it (objects); and the sealing of small objects written before they were sealed.

use sqlx::Row;

use super::Meta;
use crate::gateway::GatewayError;
use raidtorrent_codec::MasterKey;

impl Meta {
    /// The check value recorded for master key `id` (hex), if any.
    pub async fn master_key_check(&self, id: &str) -> Result<Option<String>, GatewayError> {
        let found = sqlx::query_scalar("SELECT check_value FROM master_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        Ok(found)
    }

    /// Records master key `id`'s check value; one already recorded is kept.
    pub async fn record_master_key(
        &self,
        id: &str,
        check_value: &str,
        now: i64,
    ) -> Result<(), GatewayError> {
        sqlx::query(
            "INSERT INTO master_keys (id, check_value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(check_value)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Whether any object is stored (so a master key already sealed something).
    pub async fn has_objects(&self) -> Result<bool, GatewayError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM objects LIMIT 1")
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    /// Seals the small objects a gateway wrote before small objects were sealed; returns how
    /// many it sealed.
    pub async fn seal_plain_inline(&self, master: &MasterKey) -> Result<u64, GatewayError> {
        let rows = sqlx::query(
            "SELECT id, inline_data FROM objects
             WHERE inline_data IS NOT NULL AND inline_sealed = 0",
        )
        .fetch_all(self.reader())
        .await?;
        let mut sealed = 0;
        for r in rows {
            let plain: Vec<u8> = r.get("inline_data");
            let data = raidtorrent_codec::sealed::seal(master, &plain)
                .map_err(|e| GatewayError::Internal(format!("sealing a small object: {e}")))?;
            sealed += sqlx::query(
                "UPDATE objects SET inline_data = $1, inline_sealed = 1
                 WHERE id = $2 AND inline_sealed = 0",
            )
            .bind(data)
            .bind(r.get::<i64, _>("id"))
            .execute(self.writer())
            .await?
            .rows_affected();
        }
        Ok(sealed)
    }
}
