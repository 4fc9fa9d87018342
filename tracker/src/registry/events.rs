//! Audit and transfer events, each node's standing, and the scores computed from them.
//!
//! The audit probe and the object path call [`Registry::record_audit`] and
//! [`Registry::record_transfer`]; [`Registry::scores`] gathers every node's facts in a few
//! queries and hands them to the pure [`crate::scoring::score`].
//!
//! Invariants:
//! - Event tables hold at most `scoring.history_secs` of history: every score computation prunes
//!   older rows (and [`Registry::prune_events`] does it on demand). Audit counts in
//!   `node_standing` are never pruned, so a node stays vetted however rarely it is audited.
//! - A disqualification is written the first time a score reaches it, and from then on the node
//!   is disqualified whatever its records say, until [`Registry::requalify`]; that also starts
//!   its audit history afresh (earlier audits no longer count).

use super::{NodeId, Registry, RegistryError};
use crate::scoring::book::FactsBook;
use crate::scoring::{
    AuditEvent, AuditOutcome, Disqualification, NodeFacts, Score, ScoringConfig, TransferEvent,
    TransferKind,
};
use std::collections::HashMap;

/// Standing row: (node, audits passed, disqualified at, reason).
type StandingRow = (NodeId, i64, Option<i64>, Option<String>);

impl Registry {
    /// Records the outcome of one audit of `node` (for the shard `info_hash`).
    pub async fn record_audit(
        &self,
        node: NodeId,
        info_hash: &str,
        outcome: AuditOutcome,
        detail: &str,
        at: i64,
    ) -> Result<(), RegistryError> {
        let mut book = self.book.lock().await;
        let mut tx = self.writer().begin().await?;
        ensure_node(&mut tx, node).await?;
        sqlx::query(
            "INSERT INTO audit_events (node_id, info_hash, outcome, detail, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(node)
        .bind(info_hash)
        .bind(outcome.as_str())
        .bind(detail)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let (pass, fail, timeout) = match outcome {
            AuditOutcome::Pass => (1, 0, 0),
            AuditOutcome::Fail => (0, 1, 0),
            AuditOutcome::Timeout => (0, 0, 1),
        };
        sqlx::query(
            "INSERT INTO node_standing (node_id, audits_passed, audits_failed, audits_timed_out)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (node_id) DO UPDATE SET
                 audits_passed = node_standing.audits_passed + excluded.audits_passed,
                 audits_failed = node_standing.audits_failed + excluded.audits_failed,
                 audits_timed_out = node_standing.audits_timed_out + excluded.audits_timed_out",
        )
        .bind(node)
        .bind(pass)
        .bind(fail)
        .bind(timeout)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(book) = book.as_mut() {
            book.audit(node, AuditEvent { at, outcome });
        }
        drop(book);
        if outcome != AuditOutcome::Pass {
            self.standing_changed();
        }
        Ok(())
    }

    /// Records one transfer to or from `node`: whether it succeeded, and its size and duration.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_transfer(
        &self,
        node: NodeId,
        kind: TransferKind,
        info_hash: &str,
        ok: bool,
        bytes: u64,
        millis: u64,
        at: i64,
    ) -> Result<(), RegistryError> {
        let mut book = self.book.lock().await;
        let mut tx = self.writer().begin().await?;
        ensure_node(&mut tx, node).await?;
        sqlx::query(
            "INSERT INTO transfer_events (node_id, kind, info_hash, ok, bytes, millis, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(node)
        .bind(kind.as_str())
        .bind(info_hash)
        .bind(i64::from(ok))
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(i64::try_from(millis).unwrap_or(i64::MAX))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(book) = book.as_mut() {
            let t = TransferEvent {
                at,
                ok,
                bytes,
                millis,
            };
            book.transfer(node, t);
        }
        Ok(())
    }

    /// The latest `limit` audits of `node`, newest first: (at, outcome, info-hash hex, detail).
    pub async fn recent_audits(
        &self,
        node: NodeId,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String)>, RegistryError> {
        Ok(sqlx::query_as(
            "SELECT at, outcome, info_hash, detail FROM audit_events
             WHERE node_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(node)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?)
    }

    /// Deletes audit and transfer events before `before`, per-day online records of days that
    /// ended by then, and the torrents and addresses a node was last seen with before then (who
    /// held what, and from where, is kept no longer than the scores need). Returns the rows
    /// deleted.
    pub async fn prune_events(&self, before: i64) -> Result<u64, RegistryError> {
        let mut tx = self.writer().begin().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM audit_events WHERE at < $1",
            "DELETE FROM transfer_events WHERE at < $1",
            "DELETE FROM node_torrents WHERE last_seen < $1",
            "DELETE FROM node_addresses WHERE last_seen < $1",
        ] {
            n += sqlx::query(sql)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        n += sqlx::query("DELETE FROM node_days WHERE (day + 1) * 86400 <= $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Scores of every unrevoked node.
    pub async fn scores(
        &self,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<HashMap<NodeId, Score>, RegistryError> {
        let revoked: Vec<(NodeId,)> =
            sqlx::query_as("SELECT id FROM nodes WHERE revoked_at IS NOT NULL")
                .fetch_all(self.reader())
                .await?;
        let mut all = self.compute_scores(None, now, cfg).await?;
        for (id,) in revoked {
            all.remove(&id);
        }
        Ok(all)
    }

    /// The score of one node (revoked or not).
    pub async fn score(
        &self,
        node: NodeId,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<Score, RegistryError> {
        self.node(node).await?;
        self.compute_scores(Some(node), now, cfg)
            .await?
            .remove(&node)
            .ok_or(RegistryError::NoSuchNode(node))
    }

    /// Clears a node's disqualification and starts its audit history afresh: earlier audits no
    /// longer count, and it must be vetted again. Returns whether it was disqualified.
    pub async fn requalify(&self, node: NodeId, at: i64) -> Result<bool, RegistryError> {
        let mut book = self.book.lock().await;
        let mut tx = self.writer().begin().await?;
        ensure_node(&mut tx, node).await?;
        let was: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT disqualified_at FROM node_standing WHERE node_id = $1")
                .bind(node)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO node_standing (node_id, requalified_after_audit, requalified_at)
             VALUES ($1, (SELECT coalesce(max(id), 0) FROM audit_events), $2)
             ON CONFLICT (node_id) DO UPDATE SET
                 audits_passed = 0, audits_failed = 0, audits_timed_out = 0,
                 requalified_after_audit = excluded.requalified_after_audit,
                 requalified_at = excluded.requalified_at,
                 disqualified_at = NULL, disqualified_reason = NULL",
        )
        .bind(node)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(book) = book.as_mut() {
            book.requalify(node);
        }
        drop(book);
        self.standing_changed();
        Ok(matches!(was, Some((Some(_),))))
    }

    /// What scoring looks at, for one node or all (revoked included), pruned to the history.
    pub async fn node_facts(
        &self,
        only: Option<NodeId>,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<HashMap<NodeId, NodeFacts>, RegistryError> {
        let pool = self.reader();
        let ids: Vec<(NodeId,)> =
            sqlx::query_as("SELECT id FROM nodes WHERE $1 IS NULL OR id = $1")
                .bind(only)
                .fetch_all(pool)
                .await?;
        let mut facts: HashMap<NodeId, NodeFacts> = ids
            .into_iter()
            .map(|(id,)| (id, NodeFacts::default()))
            .collect();
        let since = self.days_recorded_since().await?;
        let seen: Vec<(NodeId, i64, i64)> = sqlx::query_as(
            "SELECT node_id, first_seen, last_seen FROM node_stats WHERE $1 IS NULL OR node_id = $1",
        )
        .bind(only)
        .fetch_all(pool)
        .await?;
        for (id, first_seen, last_seen) in seen {
            if let Some(f) = facts.get_mut(&id) {
                f.first_seen = Some(first_seen);
                f.last_seen = Some(last_seen);
                f.days_recorded_since = since;
            }
        }
        let from_day = (now - cfg.window_secs).div_euclid(86_400);
        let days: Vec<(NodeId, i64, i64)> = sqlx::query_as(
            "SELECT node_id, day, online_secs FROM node_days
             WHERE day >= $2 AND ($1 IS NULL OR node_id = $1)",
        )
        .bind(only)
        .bind(from_day)
        .fetch_all(pool)
        .await?;
        for (id, day, secs) in days {
            if let Some(f) = facts.get_mut(&id) {
                f.online_days.push((day, secs));
            }
        }
        let hours: Vec<(NodeId, i64, i64)> = sqlx::query_as(
            "SELECT node_id, hour, online_secs FROM node_hours WHERE $1 IS NULL OR node_id = $1",
        )
        .bind(only)
        .fetch_all(pool)
        .await?;
        for (id, hour, secs) in hours {
            if let (Some(f), Ok(h)) = (facts.get_mut(&id), usize::try_from(hour)) {
                if h < 24 {
                    f.hours_online[h] = secs;
                }
            }
        }
        let horizon = now - cfg.history_secs;
        let audits: Vec<(NodeId, i64, String)> = sqlx::query_as(
            "SELECT e.node_id, e.at, e.outcome FROM audit_events e
             LEFT JOIN node_standing s ON s.node_id = e.node_id
             WHERE e.id > coalesce(s.requalified_after_audit, 0) AND e.at >= $2 AND e.at <= $3
               AND ($1 IS NULL OR e.node_id = $1)
             ORDER BY e.node_id, e.at, e.id",
        )
        .bind(only)
        .bind(horizon)
        .bind(now)
        .fetch_all(pool)
        .await?;
        for (id, at, outcome) in audits {
            if let (Some(f), Some(outcome)) = (facts.get_mut(&id), AuditOutcome::parse(&outcome)) {
                f.audits.push(AuditEvent { at, outcome });
            }
        }
        // Only the latest transfers matter to an EWMA: older ones weigh (1 - a)^n together.
        let transfers: Vec<(NodeId, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT node_id, at, ok, bytes, millis FROM (
                 SELECT node_id, at, ok, bytes, millis, id, row_number() OVER (
                     PARTITION BY node_id ORDER BY at DESC, id DESC) AS newest
                 FROM transfer_events
                 WHERE at >= $2 AND at <= $3 AND ($1 IS NULL OR node_id = $1)) AS recent
             WHERE newest <= $4
             ORDER BY node_id, at, id",
        )
        .bind(only)
        .bind(horizon)
        .bind(now)
        .bind(transfers_that_matter(cfg.transfer_alpha))
        .fetch_all(pool)
        .await?;
        for (id, at, ok, bytes, millis) in transfers {
            if let Some(f) = facts.get_mut(&id) {
                f.transfers.push(TransferEvent {
                    at,
                    ok: ok != 0,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    millis: u64::try_from(millis).unwrap_or(0),
                });
            }
        }
        let standing: Vec<StandingRow> = sqlx::query_as(
            "SELECT node_id, audits_passed, disqualified_at, disqualified_reason FROM node_standing
             WHERE $1 IS NULL OR node_id = $1",
        )
        .bind(only)
        .fetch_all(pool)
        .await?;
        for (id, passed, dq_at, reason) in standing {
            if let Some(f) = facts.get_mut(&id) {
                f.audits_passed_total = u64::try_from(passed).unwrap_or(0);
                f.disqualified = dq_at.map(|at| Disqualification {
                    at,
                    reason: reason.unwrap_or_default(),
                });
            }
        }
        Ok(facts)
    }

    /// Drops the facts book, so the next fleet scoring reads every record again: what another
    /// gateway sharing the database recorded is in the records, never in this one's book.
    pub async fn forget_book(&self) {
        *self.book.lock().await = None;
    }

    /// When per-day uptime records began (0 if always).
    async fn days_recorded_since(&self) -> Result<i64, RegistryError> {
        let since: Option<(i64,)> =
            sqlx::query_as("SELECT at FROM record_starts WHERE name = 'node_days'")
                .fetch_optional(self.reader())
                .await?;
        Ok(since.map_or(0, |(at,)| at))
    }

    /// Prunes, scores, and writes down new disqualifications: one node from its records, or
    /// every node from the facts book (loaded from the records the first time).
    pub(super) async fn compute_scores(
        &self,
        only: Option<NodeId>,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<HashMap<NodeId, Score>, RegistryError> {
        self.prune_events(now - cfg.history_secs).await?;
        let keep = usize::try_from(transfers_that_matter(cfg.transfer_alpha)).unwrap_or(1);
        let mut book = self.book.lock().await;
        let scored = match only {
            Some(node) => self.score_one(&mut book, node, keep, now, cfg).await,
            None => self.score_fleet(&mut book, keep, now, cfg).await,
        };
        if scored.is_err() {
            // What the book holds may no longer match the records: load it afresh next time.
            *book = None;
        }
        scored
    }

    /// One node, from the book if it is loaded, else from its records.
    async fn score_one(
        &self,
        book: &mut Option<FactsBook>,
        node: NodeId,
        keep: usize,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<HashMap<NodeId, Score>, RegistryError> {
        let mut alone;
        let book = match book.as_mut() {
            Some(book) => book,
            None => {
                alone = FactsBook::new(self.node_facts(Some(node), now, cfg).await?, 0, keep);
                &mut alone
            }
        };
        book.prune(now, cfg);
        let (scores, newly) = book.score_all(&[node], now, cfg);
        self.write_disqualifications(newly, now).await?;
        Ok(scores)
    }

    async fn score_fleet(
        &self,
        book: &mut Option<FactsBook>,
        keep: usize,
        now: i64,
        cfg: &ScoringConfig,
    ) -> Result<HashMap<NodeId, Score>, RegistryError> {
        if book.is_none() {
            let facts = self.node_facts(None, now, cfg).await?;
            let since = self.days_recorded_since().await?;
            *book = Some(FactsBook::new(facts, since, keep));
        }
        let book = book.as_mut().expect("loaded above");
        book.prune(now, cfg);
        let ids: Vec<NodeId> = sqlx::query_scalar("SELECT id FROM nodes")
            .fetch_all(self.reader())
            .await?;
        book.keep_only(&ids);
        let (scores, newly) = book.score_all(&ids, now, cfg);
        self.write_disqualifications(newly, now).await?;
        Ok(scores)
    }

    async fn write_disqualifications(
        &self,
        newly: Vec<(NodeId, String)>,
        now: i64,
    ) -> Result<(), RegistryError> {
        if newly.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for (id, reason) in &newly {
            sqlx::query(
                "INSERT INTO node_standing (node_id, disqualified_at, disqualified_reason)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (node_id) DO UPDATE SET
                     disqualified_at = coalesce(node_standing.disqualified_at, excluded.disqualified_at),
                     disqualified_reason = coalesce(node_standing.disqualified_reason, excluded.disqualified_reason)",
            )
            .bind(id)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for (id, reason) in newly {
            tracing::warn!(node = id, %reason, "node disqualified");
        }
        Ok(())
    }
}

pub use crate::scoring::book::transfers_that_matter;

async fn ensure_node(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    node: NodeId,
) -> Result<(), RegistryError> {
    let found: Option<(NodeId,)> = sqlx::query_as("SELECT id FROM nodes WHERE id = $1")
        .bind(node)
        .fetch_optional(&mut **tx)
        .await?;
    found.map(|_| ()).ok_or(RegistryError::NoSuchNode(node))
}
