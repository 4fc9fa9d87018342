//! The health worker's work per pass at a million stored shards: a pass over every stored object
//! (the baseline, measured in the same run) against the incremental passes of `repair::dirty`.
//!
//! A gateway's real metadata store (SQLite on disk, the real migrations and triggers) holds
//! objects of (10, 4) x 1 copy spread over 1,000 nodes in 10 zones: 71,429 objects, 10^6 shards
//! and 10^6 recorded copies. Each pass is what the health worker does with the store: read, then
//! plan (`repair::plan`); carrying tasks out is not measured. Printed, each in ms and as a ratio
//! to the full pass:
//! - a calm pass (no change: the sweep's share, at least `sweep_min` objects), median of 3;
//! - a pass after one node is lost (every object it held is read and repaired);
//! - a pass after one copy fails an audit (the database's change log names its object).
//!
//! `cargo bench -p raidtorrent-integration --bench health` (`-- --test` runs 2,000 objects).

use std::time::{Duration, Instant};

use raidtorrent_tracker::gateway::meta::Meta;
use raidtorrent_tracker::gateway::{BucketPolicy, HealthConfig};
use raidtorrent_tracker::registry::{Registration, Registry};
use raidtorrent_tracker::repair::dirty::Tracker;
use raidtorrent_tracker::repair::{self, NodeStatus, PlanConfig};
use raidtorrent_tracker::scoring::NodeTier;

const NODES: usize = 1_000;
const ZONES: usize = 10;
const POLICY: BucketPolicy = BucketPolicy {
    k: 10,
    m: 4,
    copies: 1,
    high_share: 0.0,
    inline_max: 0,
};

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let objects = if quick { 2_000 } else { 71_429 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(objects));
}

async fn run(objects: usize) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("gateway.db"))
        .await
        .unwrap();
    let meta = Meta::new(registry.db().clone());
    let mut nodes = register_nodes(&registry).await;
    let started = Instant::now();
    fill(&registry, &meta, objects, &nodes).await;
    let shards = objects * usize::from(POLICY.k + POLICY.m);
    println!(
        "{objects} objects, {shards} shards and copies on {NODES} nodes, stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let plan_cfg = PlanConfig::default();
    let cfg = HealthConfig::default();

    let (full, _) = timed(|| async {
        let all = meta.health_snapshot().await.unwrap();
        repair::plan(&all, &nodes, &plan_cfg)
    })
    .await;
    println!(
        "full pass (every object read and planned): {:.1} ms",
        ms(full)
    );

    let mut tracker = Tracker::new();
    let (first, _) = timed(|| pass(&meta, &mut tracker, &nodes, &cfg)).await;
    println!(
        "first incremental pass (sweeps everything): {:.1} ms",
        ms(first)
    );
    let mut calm = Vec::new();
    for _ in 0..3 {
        calm.push(timed(|| pass(&meta, &mut tracker, &nodes, &cfg)).await);
    }
    calm.sort_by_key(|(took, _)| *took);
    report("calm pass (median of 3)", full, calm[1]);

    nodes[0].online = false;
    nodes[0].offline_secs = plan_cfg.grace_secs + 1;
    report(
        "pass after a node is lost",
        full,
        timed(|| pass(&meta, &mut tracker, &nodes, &cfg)).await,
    );

    sqlx::query(
        "UPDATE holdings SET failed_at = 1 WHERE rowid = (SELECT MAX(rowid) FROM holdings)",
    )
    .execute(registry.db().writer())
    .await
    .unwrap();
    // The lost node's objects stay marked until repaired; this pass reads them too.
    let (audit, planned) = timed(|| pass(&meta, &mut tracker, &nodes, &cfg)).await;
    report("pass after a failed audit", full, (audit, planned));
}

/// One pass as the health worker makes it; returns the objects planned over.
async fn pass(
    meta: &Meta,
    tracker: &mut Tracker,
    nodes: &[NodeStatus],
    cfg: &HealthConfig,
) -> usize {
    tracker.observe_nodes(nodes, &cfg.plan);
    for id in meta.take_health_changes(100_000).await.unwrap() {
        tracker.mark(id);
    }
    let sweep = cfg.sweep_share(tracker.known());
    let objects = meta
        .load_selected(tracker, cfg.dirty_max, sweep)
        .await
        .unwrap();
    let plan = repair::plan(&objects, nodes, &cfg.plan);
    tracker.assessed(&plan, &[]);
    objects.len()
}

async fn timed<T, F: std::future::Future<Output = T>>(f: impl FnOnce() -> F) -> (Duration, T) {
    let t = Instant::now();
    let out = f().await;
    (t.elapsed(), out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(what: &str, full: Duration, (took, planned): (Duration, usize)) {
    println!(
        "{what}: {:.1} ms over {planned} objects, {:.4}x of the full pass",
        ms(took),
        took.as_secs_f64() / full.as_secs_f64()
    );
}

async fn register_nodes(registry: &Registry) -> Vec<NodeStatus> {
    let mut out = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let zone = format!("z{}", i % ZONES);
        let reg = Registration {
            zone: Some(zone.clone()),
            capacity_limit: None,
        };
        let node = registry
            .register_node(&format!("n{i}"), &reg)
            .await
            .unwrap();
        out.push(NodeStatus {
            id: node.node.id,
            zone,
            tier: NodeTier::High,
            online: true,
            offline_secs: 0,
            free: 1 << 40,
            capacity: 1 << 40,
            load: 0,
            backing_off: false,
            poor_hours: 0,
        });
    }
    out
}

/// Stores `objects` objects with one copy of each shard, shard `i` of object `o` on node
/// `(o * 14 + i) mod NODES`, in one transaction.
async fn fill(registry: &Registry, meta: &Meta, objects: usize, nodes: &[NodeStatus]) {
    meta.create_bucket("bench", &POLICY, 1).await.unwrap();
    let mut tx = registry.db().writer().begin().await.unwrap();
    let per = usize::from(POLICY.k + POLICY.m);
    for o in 0..objects {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO objects (bucket, key, size, sha256, created_at, manifest)
             VALUES ('bench', ?, 0, x'00', 1, x'00') RETURNING id",
        )
        .bind(format!("o{o}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        for i in 0..per {
            let ih = hex_hash(o, i);
            sqlx::query(
                "INSERT INTO shards (info_hash, object_id, idx, length, info, state, created_at)
                 VALUES (?, ?, ?, 1048576, x'00', 'live', 1)",
            )
            .bind(&ih)
            .bind(id)
            .bind(i as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query("INSERT INTO holdings (info_hash, node_id, confirmed_at) VALUES (?, ?, 1)")
                .bind(&ih)
                .bind(nodes[(o * per + i) % NODES].id)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    // Storing is not what is measured: the change log starts empty.
    sqlx::query("DELETE FROM health_changes")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn hex_hash(object: usize, shard: usize) -> String {
    format!("{object:032x}{shard:08x}")
}
