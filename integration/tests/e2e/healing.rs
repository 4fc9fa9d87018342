//! The cloud heals itself: copies lost with a node are re-made from the surviving copies, copies
//! that come back are trimmed, and a node that serves corrupted pieces is caught by audits,
//! disqualified and drained, while clients keep getting their exact bytes.

use std::time::{Duration, Instant};

use raidtorrent_tracker::cloud::CloudSettings;
use raidtorrent_tracker::gateway::{Body, Gateway, HealthConfig};
use raidtorrent_tracker::repair::PlanConfig;
use raidtorrent_tracker::scoring::{NodeTier, ScoringConfig};

use raidtorrent_integration::*;
use raidtorrent_testkit::{corrupt, random_bytes, wait_until};

pub async fn collect(mut body: Body) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Health settings for tests: passes every 200 ms and a 3 s grace period, so a lost node is
/// re-replicated within seconds; audits as `audit_interval` says. No sweep beyond its daily
/// share: what a pass looks at comes from the marks that changes leave, as in a large cloud.
pub fn quick_health(audit_interval: Duration) -> impl FnOnce(&mut CloudSettings) {
    move |s: &mut CloudSettings| {
        s.gateway.hold_timeout = Duration::from_secs(30);
        s.gateway.fetch_timeout = Duration::from_secs(30);
        s.gateway.health = HealthConfig {
            interval: Duration::from_millis(200),
            plan: PlanConfig {
                grace_secs: 3,
                ..PlanConfig::default()
            },
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            audit_interval,
            audits_per_round: 6,
            audit_timeout: Duration::from_secs(10),
            audit_settle: Duration::from_secs(5),
            scoring: ScoringConfig {
                min_audits: 2,
                ..ScoringConfig::default()
            },
            sweep_min: 0,
            ..HealthConfig::default()
        };
    }
}

/// Whether every shard of every stored object has exactly `copies` copies, all on connected nodes
/// and none failed.
pub async fn settled(t: &TestCloud, copies: usize) -> bool {
    t.unsettled(copies).await.is_empty()
}

/// Copies recorded on `node`.
pub async fn copies_on(gw: &Gateway, node: i64) -> usize {
    let objects = gw.meta().health_snapshot().await.unwrap();
    objects
        .iter()
        .flat_map(|o| &o.shards)
        .flat_map(|s| &s.copies)
        .filter(|c| c.node == node)
        .count()
}

pub async fn get(gw: &Gateway, bucket: &str, key: &str) -> Vec<u8> {
    let (_, body) = gw.get(bucket, key, None).await.unwrap();
    collect(body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_node_is_re_replicated_and_its_copies_trimmed_when_it_returns() {
    let mut t = TestCloud::start_with(6, 3, quick_health(Duration::from_secs(3600))).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("heal", None).await.unwrap();
    let object = random_bytes(6 << 20, 7);
    gw.put(
        "heal",
        "a.bin",
        std::io::Cursor::new(object.clone()),
        Some(object.len() as u64),
    )
    .await
    .unwrap();
    assert!(settled(&t, 2).await);

    let victim = t.nodes[0].id;
    let held = copies_on(&gw, victim).await;
    assert!(held > 0, "the node holds copies");
    let lost_at = Instant::now();
    t.nodes[0].kill();
    assert!(
        t.cloud
            .hub
            .wait_disconnected(victim, Duration::from_secs(60))
            .await
    );
    // Re-replicated after the grace period: every shard has two copies on connected nodes.
    wait_until(
        Duration::from_secs(90),
        "the lost copies are re-made",
        || t.redundant(2),
    )
    .await;
    eprintln!(
        "{held} copies re-made {:.1} s after the node was lost (grace 3 s)",
        lost_at.elapsed().as_secs_f64()
    );
    assert!(get(&gw, "heal", "a.bin").await == object);
    let status = gw.health_status();
    assert!(status.tasks_done >= held as u64, "{status:?}");

    // Back: its copies are surplus now and are trimmed, from the records and from its disk.
    t.nodes[0].restart();
    assert!(
        t.cloud
            .hub
            .wait_connected(victim, Duration::from_secs(60))
            .await
    );
    wait_until(
        Duration::from_secs(90),
        "surplus copies are trimmed",
        || {
            let t = &t;
            async move { settled(t, 2).await }
        },
    )
    .await;
    assert!(get(&gw, "heal", "a.bin").await == object);
    wait_until(
        Duration::from_secs(30),
        "the returning node's files go",
        || {
            let t = &t;
            let gw = &gw;
            async move { t.nodes[0].shard_files().len() == copies_on(gw, victim).await }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_serving_corrupted_pieces_is_caught_disqualified_and_drained() {
    let t = TestCloud::start_with(7, 3, quick_health(Duration::from_secs(3600))).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("heal", None).await.unwrap();
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = random_bytes(3 << 20, 100 + i);
        gw.put(
            "heal",
            &format!("o{i}"),
            std::io::Cursor::new(data.clone()),
            Some(data.len() as u64),
        )
        .await
        .unwrap();
        objects.push(data);
    }
    // The node with the most copies turns bad: every byte it serves is flipped.
    let mut counts = Vec::new();
    for n in &t.nodes {
        counts.push(copies_on(&gw, n.id).await);
    }
    let bad = (0..t.nodes.len()).max_by_key(|&i| counts[i]).unwrap();
    let bad_id = t.nodes[bad].id;
    let files = t.nodes[bad].shard_files();
    assert_eq!(files.len(), counts[bad]);
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len() as usize;
        corrupt(f, 0, len);
    }
    // Reads never return its bytes: librqbit on the gateway drops pieces that fail their hash.
    for (i, data) in objects.iter().enumerate() {
        assert!(get(&gw, "heal", &format!("o{i}")).await == *data);
    }
    // Audit its copies now, as a read that saw its pieces fail would.
    let snapshot = gw.meta().health_snapshot().await.unwrap();
    for s in snapshot.iter().flat_map(|o| &o.shards) {
        if s.copies.iter().any(|c| c.node == bad_id) {
            gw.suspect(bad_id, &s.info_hash);
        }
    }
    wait_until(Duration::from_secs(60), "the node is disqualified", || {
        let gw = &gw;
        async move {
            gw.scores()
                .get(&bad_id)
                .is_some_and(|s| s.tier == NodeTier::Disqualified)
        }
    })
    .await;
    wait_until(
        Duration::from_secs(120),
        "its copies are replaced and dropped",
        || {
            let t = &t;
            let gw = &gw;
            async move { copies_on(gw, bad_id).await == 0 && settled(t, 2).await }
        },
    )
    .await;
    let score = gw.scores()[&bad_id].clone();
    assert!(
        score.reasons.iter().any(|r| r.contains("audit")),
        "{:?}",
        score.reasons
    );
    for (i, data) in objects.iter().enumerate() {
        assert!(get(&gw, "heal", &format!("o{i}")).await == *data);
    }
}
