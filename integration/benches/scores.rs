//! What scoring every node costs the health worker, by fleet size: the gateway's real registry
//! (SQLite on disk, the real migrations) holds a month of records per node — 7 daily uptime
//! rows, 24 hourly ones, 10 audits and 20 transfers — and `Registry::scores` is timed. The first
//! scoring reads every record into the registry's facts book (what every scoring cost before the
//! book: the baseline); later ones score from the book, which writes keep up to date (median of
//! 3, each after 1% of the nodes got an audit). Printed per size: rows read, ms per scoring with
//! its share of a 30 s pass, and the ratio book / records.
//!
//! `cargo bench -p raidtorrent-integration --bench scores` (1,000, 10,000 and 100,000 nodes;
//! `-- --test` runs 1,000).

use std::time::{Duration, Instant};

use raidtorrent_tracker::registry::{unix_now, Registry};
use raidtorrent_tracker::scoring::{AuditOutcome, ScoringConfig};

const PASS_SECS: f64 = 30.0;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let sizes: &[i64] = if quick {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| nodes | records read | scoring from the records | from the book | book / records |"
    );
    println!("|---|---|---|---|---|");
    for &nodes in sizes {
        rt.block_on(run(nodes));
    }
}

async fn run(nodes: i64) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("gateway.db"))
        .await
        .unwrap();
    let now = unix_now();
    let rows = fill(&registry, nodes, now).await;
    let cfg = ScoringConfig::default();
    let started = Instant::now();
    let scores = registry.scores(now, &cfg).await.unwrap();
    let full = started.elapsed().as_secs_f64();
    assert_eq!(scores.len() as i64, nodes, "every node is scored");
    let mut times: Vec<Duration> = Vec::new();
    for round in 0..3 {
        for node in (1..=nodes).step_by(100) {
            registry
                .record_audit(node, "ab", AuditOutcome::Pass, "", now - round)
                .await
                .unwrap();
        }
        let started = Instant::now();
        let scores = registry.scores(now, &cfg).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(scores.len() as i64, nodes, "every node is scored");
    }
    times.sort();
    let book = times[1].as_secs_f64();
    println!(
        "| {nodes} | {rows} | {:.0} ms ({:.1}% of a pass) | {:.0} ms ({:.1}%) | {:.3}x |",
        full * 1e3,
        100.0 * full / PASS_SECS,
        book * 1e3,
        100.0 * book / PASS_SECS,
        book / full,
    );
    registry.close().await;
}

/// A month of records for `nodes` nodes, written by SQLite itself (one statement per table, the
/// integers written into the text); returns the rows scoring reads.
async fn fill(registry: &Registry, nodes: i64, now: i64) -> i64 {
    let day = now.div_euclid(86_400);
    let series = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {nodes})"
    );
    let statements = [
        format!(
            "INSERT INTO nodes (id, name, passkey, created_at, zone)
             {series} SELECT i, 'n' || i, printf('%032x', i), {now} - 2592000, 'z' || (i % 10) FROM n"
        ),
        format!(
            "INSERT INTO node_stats (node_id, first_seen, last_seen)
             {series} SELECT i, {now} - 2592000, {now} FROM n"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {nodes}),
                 d(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM d WHERE j < 6)
             INSERT INTO node_days (node_id, day, online_secs)
             SELECT i, {day} - j, 60000 + (i * 7 + j) % 26000 FROM n, d"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {nodes}),
                 h(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM h WHERE j < 23)
             INSERT INTO node_hours (node_id, hour, online_secs)
             SELECT i, j, 18000 + (i * 13 + j) % 7200 FROM n, h"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {nodes}),
                 a(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM a WHERE j < 9)
             INSERT INTO audit_events (node_id, info_hash, outcome, detail, at)
             SELECT i, printf('%040x', i * 10 + j),
                    CASE WHEN (i + j) % 97 = 0 THEN 'timeout' ELSE 'pass' END, '',
                    {now} - j * 86400 - i % 3600 FROM n, a"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {nodes}),
                 t(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM t WHERE j < 19)
             INSERT INTO transfer_events (node_id, kind, info_hash, ok, bytes, millis, at)
             SELECT i, 'hold', printf('%040x', i * 20 + j), (i + j) % 50 != 0,
                    4194304, 200 + (i * j) % 800, {now} - j * 43200 - i % 3600 FROM n, t"
        ),
        "INSERT INTO node_standing (node_id, audits_passed) SELECT id, 10 FROM nodes".to_owned(),
    ];
    let mut tx = registry.writer().begin().await.unwrap();
    for sql in &statements {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    nodes * (1 + 7 + 24 + 10 + 20 + 1)
}
