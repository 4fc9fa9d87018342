use super::records::{recorder, Observation};
use super::*;
use crate::protocol::InfoHash;
use std::time::Duration;

fn obs(node: NodeId, ih: u8, at: i64, addr: &str) -> Observation {
    Observation {
        node,
        info_hash: InfoHash([ih; 20]),
        addr: addr.parse().unwrap(),
        at,
        seeding: ih % 2 == 0,
        bytes_up: 100,
        bytes_down: 10,
        gap: None,
        expected_interval: 600,
        allowance: 900,
        completed: false,
    }
}

async fn create_check_revoke(db: Registry) {
    let r = db;
    let a = r.create_node("alpha").await.unwrap();
    assert_eq!(a.passkey.len(), 32);
    assert!(a.passkey.bytes().all(|b| b.is_ascii_hexdigit()));
    let b = r.create_node("beta").await.unwrap();
    assert_ne!(a.passkey, b.passkey);
    assert_eq!(
        r.check_token(a.announce_token.as_bytes()),
        TokenStatus::Valid(a.node.id)
    );
    assert_eq!(
        r.announce_token(a.node.id).as_deref(),
        Some(a.announce_token.as_str())
    );
    // The passkey is the control credential, not an announce token.
    assert_eq!(r.check_token(a.passkey.as_bytes()), TokenStatus::Unknown);
    assert_eq!(r.check_token(b"nope"), TokenStatus::Unknown);
    let revoked = r.revoke(a.node.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        r.check_token(a.announce_token.as_bytes()),
        TokenStatus::Revoked
    );
    assert_eq!(r.announce_token(a.node.id), None);
    assert_eq!(
        r.check_token(b.announce_token.as_bytes()),
        TokenStatus::Valid(b.node.id)
    );
    assert!(matches!(
        r.revoke(999).await,
        Err(RegistryError::NoSuchNode(999))
    ));
    assert!(matches!(
        r.create_node("").await,
        Err(RegistryError::BadName)
    ));
    assert!(matches!(
        r.create_node("a\nb").await,
        Err(RegistryError::BadName)
    ));
    let names: Vec<_> = r
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[tokio::test]
async fn records_add_up_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let t0 = 1_700_000_000 - 1_700_000_000 % 86_400; // midnight UTC
    let id;
    {
        let r = Registry::open(&path).await.unwrap();
        id = r.create_node("alpha").await.unwrap().node.id;
        let (rec, h) = recorder(r.clone(), 100, Duration::from_secs(3600))
            .await
            .unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rec.run(async {
            let _ = stop_rx.await;
        }));
        h.observe(obs(id, 1, t0, "127.0.0.2:6881"));
        h.observe(obs(id, 2, t0 + 300, "127.0.0.2:6881"));
        // A gap longer than the allowance: only 900 s of it count as online.
        h.observe(Observation {
            gap: Some(1500),
            ..obs(id, 1, t0 + 1800, "127.0.0.3:6881")
        });
        h.flush().await.unwrap();
        h.observe(Observation {
            gap: Some(600),
            completed: true,
            ..obs(id, 1, t0 + 2400, "127.0.0.3:6881")
        });
        // Shutdown flushes what is queued.
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        r.close().await;
    }
    let r = Registry::open(&path).await.unwrap();
    let rep = r.report(id, t0 + 3600).await.unwrap();
    assert_eq!(rep.first_seen, Some(t0));
    assert_eq!(rep.last_seen, Some(t0 + 2400));
    assert_eq!(rep.announces, 4);
    assert_eq!(rep.online_secs, 300 + 900 + 600);
    assert!(
        (rep.uptime_ratio - 1800.0 / 3600.0).abs() < 1e-9,
        "{}",
        rep.uptime_ratio
    );
    assert_eq!(rep.mean_announce_interval_secs, Some(1050.0));
    assert_eq!(rep.expected_announce_interval_secs, Some(600.0));
    assert_eq!(rep.late_announces, 1);
    assert_eq!((rep.bytes_up, rep.bytes_down), (400, 40));
    assert_eq!(rep.completions, 1);
    assert_eq!(rep.address_changes, 1);
    assert_eq!(rep.last_addr.as_deref(), Some("127.0.0.3:6881"));
    assert_eq!((rep.torrents_seeding, rep.torrents_leeching), (1, 1));
    assert_eq!(rep.torrents.as_ref().unwrap().len(), 2);
    assert_eq!(rep.addresses.as_ref().unwrap().len(), 2);
    // All online time fell in hour 0, of which 3600 s have elapsed.
    assert!((rep.hourly_availability[0] - 0.5).abs() < 1e-9);
    assert!(rep.hourly_availability[1..].iter().all(|&h| h == 0.0));
    // The recorder picks up where it was: the next announce counts from last_seen.
    let (rec, h) = recorder(r.clone(), 10, Duration::from_secs(3600))
        .await
        .unwrap();
    h.observe(obs(id, 1, t0 + 2500, "127.0.0.3:6881"));
    drop(h);
    rec.run(std::future::pending()).await;
    let rep = r.report(id, t0 + 3600).await.unwrap();
    assert_eq!(rep.online_secs, 1900);
    assert_eq!(rep.address_changes, 1);
}

#[tokio::test]
async fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let r = Registry::open(&path).await.unwrap();
    sqlx::query("UPDATE format SET version = 99 WHERE name = 'records'")
        .execute(r.writer())
        .await
        .unwrap();
    r.close().await;
    let e = Registry::open(&path).await.err().expect("must refuse");
    assert_eq!(
        e.to_string(),
        format!("records format 99 is newer than this tracker understands ({RECORDS_FORMAT})")
    );
}

/// Two registries on one database, as two gateways have: what one registers the other learns
/// at the node's connection, what one revokes the other learns at its next sync.
async fn two_registries_on_one_database(location: &std::path::Path) {
    let a = Registry::open(location).await.unwrap();
    let b = Registry::open(location).await.unwrap();
    let node = a.create_node("shared").await.unwrap();
    let id = node.node.id;
    assert!(!b.is_valid(id), "registered after b opened");
    b.remember_node(id, &node.passkey);
    assert!(b.is_valid(id));
    let closed = b.revocations();
    assert_eq!(b.sync_revocations(0).await.unwrap(), 0);
    a.revoke(id).await.unwrap();
    assert_eq!(b.sync_revocations(0).await.unwrap(), 1);
    assert!(!b.is_valid(id));
    assert!(
        closed.has_changed().unwrap(),
        "b's sessions of the node close"
    );
    assert_eq!(b.sync_revocations(0).await.unwrap(), 0, "once");
    b.remember_node(id, &node.passkey);
    assert!(
        !b.is_valid(id),
        "a connection in flight does not bring it back"
    );
}

#[tokio::test]
async fn two_registries_share_registrations_and_revocations_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    two_registries_on_one_database(&dir.path().join("t.db")).await;
}

#[tokio::test]
async fn two_registries_share_registrations_and_revocations_on_postgresql() {
    if let Some(url) = raidtorrent_testkit::Postgres::fresh_database() {
        two_registries_on_one_database(std::path::Path::new(&url)).await;
    }
}

crate::registry::test_engines::on_both_engines!(create_check_revoke);

mod scoring {
    use super::*;
    use crate::scoring::{AuditOutcome, NodeTier, ScoringConfig, TransferKind};

    const DAY: i64 = 86_400;

    async fn audits(r: &Registry, id: NodeId, outcome: AuditOutcome, n: i64, from: i64) {
        for i in 0..n {
            r.record_audit(id, "ab", outcome, "piece 3", from + i)
                .await
                .unwrap();
        }
    }

    async fn transfer_outcomes_ride_the_recorders_batches(db: Registry) {
        use super::records::TransferOutcome;
        let r = db;
        let id = r.create_node("alpha").await.unwrap().node.id;
        let (rec, h) = recorder(r.clone(), 100, Duration::from_secs(3600))
            .await
            .unwrap();
        let task = tokio::spawn(rec.run(std::future::pending()));
        let now = 1_700_000_000;
        let outcome = |node, ok| TransferOutcome {
            node,
            kind: TransferKind::Hold,
            info_hash: InfoHash([7; 20]),
            ok,
            bytes: 1 << 20,
            millis: 100,
            at: now,
        };
        h.transfer(outcome(id, true)).await.unwrap();
        h.transfer(outcome(id, false)).await.unwrap();
        // A node no longer registered: skipped, without failing the batch.
        h.transfer(outcome(id + 1, true)).await.unwrap();
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transfer_events")
                .fetch_one(r.reader())
                .await
                .unwrap()
        };
        assert_eq!(
            count().await,
            0,
            "written with the next batch, not one by one"
        );
        h.flush().await.unwrap();
        assert_eq!(count().await, 2);
        let s = r.score(id, now, &ScoringConfig::default()).await.unwrap();
        assert!(
            s.transfer_success > 0.0 && s.transfer_success < 1.0,
            "{s:?}"
        );
        task.abort();
    }

    async fn recorder_keeps_online_time_per_day(db: Registry) {
        let r = db;
        let id = r.create_node("alpha").await.unwrap().node.id;
        let (rec, h) = recorder(r.clone(), 100, Duration::from_secs(3600))
            .await
            .unwrap();
        let midnight = 1_700_000_000 - 1_700_000_000 % DAY;
        // Announces every 600 s from 1 h before midnight to 1 h after; the first only starts the
        // clock, and each later one credits its 600 s gap to its own UTC day.
        for k in 0..=12 {
            h.observe(obs(id, 1, midnight - 3600 + k * 600, "127.0.0.2:6881"));
        }
        drop(h);
        rec.run(std::future::pending()).await;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT day, online_secs FROM node_days WHERE node_id = $1 ORDER BY day",
        )
        .bind(id)
        .fetch_all(r.reader())
        .await
        .unwrap();
        let d = midnight / DAY;
        assert_eq!(rows, [(d - 1, 3000), (d, 4200)]);
        // Silent since, for longer than the allowance: that much of the silence counts.
        let cfg = ScoringConfig::default();
        let now = midnight + 3600 + 10_000;
        let s = r.score(id, now, &cfg).await.unwrap();
        let online = 7200 + cfg.online_allowance_secs;
        assert!((s.uptime - online as f64 / 17_200.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.age_secs, 17_200);
        assert!(!s.vetted);
    }

    #[tokio::test]
    async fn events_score_and_disqualification_sticks_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let cfg = ScoringConfig::default();
        let t0 = 1_700_000_000;
        let (id, other);
        {
            let r = Registry::open(&path).await.unwrap();
            id = r.create_node("alpha").await.unwrap().node.id;
            other = r.create_node("beta").await.unwrap().node.id;
            audits(&r, id, AuditOutcome::Pass, 10, t0).await;
            audits(&r, other, AuditOutcome::Pass, 3, t0).await;
            r.record_transfer(other, TransferKind::Hold, "ab", true, 1 << 20, 500, t0)
                .await
                .unwrap();
            r.record_transfer(other, TransferKind::Fetch, "ab", false, 0, 0, t0 + 1)
                .await
                .unwrap();
            let s = r.score(other, t0 + 10, &cfg).await.unwrap();
            assert_eq!(s.audits, 3);
            assert_eq!(s.audits_passed, 3);
            assert!((s.transfer_success - 0.9).abs() < 1e-9, "{s:?}");
            assert_eq!(s.speed_bps, Some(2_097_152.0));
            assert_eq!(
                r.score(id, t0 + 10, &cfg).await.unwrap().tier,
                NodeTier::Low
            );
            audits(&r, id, AuditOutcome::Fail, 20, t0 + 100).await;
            let all = r.scores(t0 + 200, &cfg).await.unwrap();
            assert_eq!(all.len(), 2);
            let s = &all[&id];
            assert_eq!(s.tier, NodeTier::Disqualified);
            assert_eq!(s.disqualified_at, Some(t0 + 200));
            assert!(
                s.reasons[0].starts_with("disqualified: failed audits: integrity"),
                "{:?}",
                s.reasons
            );
            assert_eq!(all[&other].tier, NodeTier::Low);
            r.close().await;
        }
        let r = Registry::open(&path).await.unwrap();
        // Good audits afterwards do not undo it.
        audits(&r, id, AuditOutcome::Pass, 200, t0 + 300).await;
        let s = r.score(id, t0 + 1000, &cfg).await.unwrap();
        assert!(s.audit_integrity > cfg.disqualify_below, "{s:?}");
        assert_eq!(s.tier, NodeTier::Disqualified);
        assert_eq!(s.disqualified_at, Some(t0 + 200));
        let report = r.report_scored(id, t0 + 1000, &cfg).await.unwrap();
        assert_eq!(report.score.tier, NodeTier::Disqualified);
        // An operator requalifies it: earlier audits no longer count, it must be vetted again.
        assert!(r.requalify(id, t0 + 1000).await.unwrap());
        assert!(!r.requalify(id, t0 + 1001).await.unwrap());
        let s = r.score(id, t0 + 1002, &cfg).await.unwrap();
        assert_eq!(s.tier, NodeTier::Low);
        assert_eq!((s.audits, s.audits_passed), (0, 0));
        assert_eq!(s.disqualified_at, None);
        // A revoked node has no score in the list, but its own is still there.
        r.revoke(other).await.unwrap();
        let all = r.scores(t0 + 1002, &cfg).await.unwrap();
        assert!(all.contains_key(&id) && !all.contains_key(&other));
        assert!(r.score(other, t0 + 1002, &cfg).await.is_ok());
        assert!(matches!(
            r.score(999, t0, &cfg).await,
            Err(RegistryError::NoSuchNode(999))
        ));
        assert!(matches!(
            r.record_audit(999, "ab", AuditOutcome::Pass, "", t0).await,
            Err(RegistryError::NoSuchNode(999))
        ));
    }

    async fn scores_from_the_book_match_scores_from_the_records(db: Registry) {
        use super::records::TransferOutcome;
        let r = db;
        let cfg = ScoringConfig::default();
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(r.create_node(name).await.unwrap().node.id);
        }
        let (rec, h) = recorder(r.clone(), 10_000, Duration::from_secs(3600))
            .await
            .unwrap();
        let task = tokio::spawn(rec.run(std::future::pending()));
        let t0 = 1_700_000_000;
        let announce = |node: NodeId, from: i64, hours: i64| {
            for k in 0..hours * 6 {
                h.observe(obs(node, 2, from + k * 600, "127.0.0.2:6881"));
            }
        };
        let transfer = |node, ok, at| TransferOutcome {
            node,
            kind: TransferKind::Fetch,
            info_hash: InfoHash([3; 20]),
            ok,
            bytes: 4 << 20,
            millis: if ok { 800 } else { 5_000 },
            at,
        };
        announce(ids[0], t0, 30);
        announce(ids[1], t0 + 3 * 3600, 12);
        h.transfer(transfer(ids[0], true, t0 + 10)).await.unwrap();
        h.flush().await.unwrap();
        audits(&r, ids[0], AuditOutcome::Pass, 12, t0 + 100).await;
        audits(&r, ids[2], AuditOutcome::Pass, 5, t0 + 100).await;
        let first = r.scores(t0 + DAY, &cfg).await.unwrap();
        assert_eq!(first.len(), 3);

        // After the book is loaded: more uptime (some on later days), transfers by both paths,
        // audits that disqualify one node, a requalification, and a node registered late.
        let late = r.create_node("d").await.unwrap().node.id;
        announce(ids[0], t0 + 2 * DAY, 20);
        announce(late, t0 + 2 * DAY, 5);
        for i in 0..80 {
            h.transfer(transfer(ids[1], i % 3 != 0, t0 + DAY + i))
                .await
                .unwrap();
        }
        h.flush().await.unwrap();
        r.record_transfer(
            ids[2],
            TransferKind::Hold,
            "cd",
            true,
            1 << 20,
            300,
            t0 + DAY,
        )
        .await
        .unwrap();
        audits(&r, ids[2], AuditOutcome::Fail, 30, t0 + DAY).await;
        audits(&r, ids[0], AuditOutcome::Timeout, 2, t0 + DAY).await;
        audits(&r, ids[1], AuditOutcome::Pass, 3, t0 + DAY).await;
        r.requalify(ids[1], t0 + DAY + 500).await.unwrap();
        audits(&r, ids[1], AuditOutcome::Pass, 2, t0 + DAY + 600).await;
        for now in [t0 + 3 * DAY, t0 + 9 * DAY, t0 + 40 * DAY] {
            let from_book = r.scores(now, &cfg).await.unwrap();
            r.forget_book().await;
            let from_records = r.scores(now, &cfg).await.unwrap();
            assert_eq!(from_book, from_records, "at {now}");
            assert_eq!(from_book.len(), 4);
            if now == t0 + 3 * DAY {
                assert_eq!(from_book[&ids[2]].tier, NodeTier::Disqualified);
                assert_eq!(from_book[&ids[1]].audits, 2);
                assert!(from_book[&late].uptime > 0.0);
            }
        }
        task.abort();
    }

    async fn events_are_pruned_past_the_history(db: Registry) {
        let r = db;
        let id = r.create_node("alpha").await.unwrap().node.id;
        let cfg = ScoringConfig::default();
        let now = 1_700_000_000;
        let old = now - cfg.history_secs - 10;
        audits(&r, id, AuditOutcome::Fail, 5, old).await;
        audits(&r, id, AuditOutcome::Pass, 5, now - 100).await;
        r.record_transfer(id, TransferKind::Repair, "ab", false, 0, 0, old)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO node_days (node_id, day, online_secs) VALUES ($1, $2, 60), ($3, $4, 60)",
        )
        .bind(id)
        .bind(old / DAY - 1)
        .bind(id)
        .bind(now / DAY)
        .execute(r.writer())
        .await
        .unwrap();
        // One stale and one recent torrent and address each.
        for (hash, addr, last_seen) in [("aa", "192.0.2.1:1", old), ("bb", "192.0.2.1:2", now)] {
            sqlx::query(
                "INSERT INTO node_torrents (node_id, info_hash, seeding, first_seen, last_seen)
                 VALUES ($1, $2, 1, $3, $4)",
            )
            .bind(id)
            .bind(hash)
            .bind(last_seen)
            .bind(last_seen)
            .execute(r.writer())
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO node_addresses (node_id, addr, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(addr)
            .bind(last_seen)
            .bind(last_seen)
            .execute(r.writer())
            .await
            .unwrap();
        }
        assert_eq!(r.prune_events(now - cfg.history_secs).await.unwrap(), 9);
        assert_eq!(r.prune_events(now - cfg.history_secs).await.unwrap(), 0);
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM node_torrents) + (SELECT count(*) FROM node_addresses)",
        )
        .fetch_one(r.writer())
        .await
        .unwrap();
        assert_eq!(left, 2, "what was seen within the window stays");
        let s = r.score(id, now, &cfg).await.unwrap();
        assert_eq!(s.audits, 5);
        assert_eq!(s.audit_reputation, 1.0);
        assert_eq!(s.transfer_success, 1.0);
        // Lifetime counts stay: pruning never unvets a node.
        assert_eq!(s.audits_passed, 5);
        // Scoring prunes by itself too.
        audits(&r, id, AuditOutcome::Fail, 3, old).await;
        r.scores(now, &cfg).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
            .fetch_one(r.reader())
            .await
            .unwrap();
        assert_eq!(left, 5);
    }

    async fn transfer_ewma_from_the_latest_transfers_matches_the_whole_history(db: Registry) {
        use crate::registry::events::transfers_that_matter;
        use crate::scoring::{transfer_ewma, TransferEvent};
        assert_eq!(transfers_that_matter(0.1), 66);
        assert_eq!(transfers_that_matter(1.0), 1);
        let r = db;
        let id = r.create_node("alpha").await.unwrap().node.id;
        let cfg = ScoringConfig::default();
        let now = 1_700_000_000;
        let mut all = Vec::new();
        for i in 0..200 {
            let (ok, at) = (i >= 150 || i % 3 == 0, now - 1000 + i);
            let (bytes, millis) = if ok {
                (1000 * (i as u64 + 1), 100)
            } else {
                (0, 0)
            };
            r.record_transfer(id, TransferKind::Fetch, "ab", ok, bytes, millis, at)
                .await
                .unwrap();
            all.push(TransferEvent {
                at,
                ok,
                bytes,
                millis,
            });
        }
        let (success, speed) = transfer_ewma(&all, &cfg);
        let s = r.score(id, now, &cfg).await.unwrap();
        assert!(
            (s.transfer_success - success).abs() < 1e-3,
            "{s:?} vs {success}"
        );
        let (a, b) = (s.speed_bps.unwrap(), speed.unwrap());
        assert!((a - b).abs() / b < 1e-3, "{a} vs {b}");
        assert!(s.transfer_success < 1.0);
    }

    crate::registry::test_engines::on_both_engines!(
        transfer_outcomes_ride_the_recorders_batches,
        recorder_keeps_online_time_per_day,
        scores_from_the_book_match_scores_from_the_records,
        events_are_pruned_past_the_history,
        transfer_ewma_from_the_latest_transfers_matches_the_whole_history,
    );
}
