//! Nodes that crash, come back, and serve corrupted pieces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use raidtorrent_codec::InfoHash;
use raidtorrent_tracker::gateway::{Body, BucketPolicy, Gateway};
use raidtorrent_tracker::registry::{unix_now, NodeId};

use raidtorrent_integration::*;
use raidtorrent_testkit::{corrupt, random_bytes, wait_until};

async fn read(gw: &Gateway, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let (_, mut body): (_, Body) = gw.get(bucket, key, None).await?;
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Shard index → info-hash and the nodes holding it, for one object.
async fn placement(
    gw: &Gateway,
    bucket: &str,
    key: &str,
) -> BTreeMap<usize, (InfoHash, BTreeSet<NodeId>)> {
    let row = gw.meta().object(bucket, key).await.unwrap();
    let mut out = BTreeMap::new();
    for s in gw.meta().shards_of(row.id).await.unwrap() {
        let holders = gw.meta().holders(&s.info_hash).await.unwrap();
        out.insert(s.idx as usize, (s.info_hash, holders.into_iter().collect()));
    }
    out
}

/// Whether the node's latest report (over its current control connection) lists `info_hash` held.
fn reports_held(t: &TestCloud, node: NodeId, info_hash: &InfoHash) -> bool {
    t.cloud
        .hub
        .node(node)
        .and_then(|c| c.held)
        .is_some_and(|held| held.contains(info_hash))
}

/// The shards of `shards` any node announced to the tracker, by the records its announces left.
async fn announced(
    t: &TestCloud,
    shards: &BTreeMap<usize, (InfoHash, BTreeSet<NodeId>)>,
) -> Vec<String> {
    let service = &t.cloud.service;
    service.recorder().flush().await.unwrap();
    let registry = service.tracker().registry();
    let ours: BTreeSet<String> = shards.values().map(|(ih, _)| ih.to_hex()).collect();
    let mut seen = Vec::new();
    for node in &t.nodes {
        let report = registry.report(node.id, unix_now()).await.unwrap();
        let torrents = report.torrents.unwrap_or_default().into_iter();
        seen.extend(
            torrents
                .filter(|r| ours.contains(&r.info_hash))
                .map(|r| r.info_hash),
        );
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_reconnects_and_seeds_what_it_held_from_disk() {
    let mut t = TestCloud::start(6, 3).await;
    let gw = t.cloud.gateway.clone();
    let single = BucketPolicy {
        k: 4,
        m: 2,
        copies: 1,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("single", Some(single)).await.unwrap();
    let object = random_bytes(12 << 20, 21);
    gw.put("single", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();
    let shards = placement(&gw, "single", "o").await;
    let (ih0, holders0) = &shards[&0];
    assert_eq!(holders0.len(), 1, "one copy of each shard");
    // Nodes fetch from the peers their directives name and announce nothing (RT-0002 "Peers
    // from reports"); the tracker names them from their reports.
    assert_eq!(announced(&t, &shards).await, Vec::<String>::new());
    let first = *holders0.first().unwrap();
    let holder = t.cloud.hub.node(first).unwrap().data_addr.unwrap();
    let hub = &t.cloud.hub;
    wait_until(
        Duration::from_secs(30),
        "the tracker names shard 0's holder from its report",
        || async move { hub.holders_of(ih0).contains(&holder) },
    )
    .await;
    let x = *holders0.first().unwrap();
    let xi = t.nodes.iter().position(|n| n.id == x).unwrap();
    let files = t.nodes[xi].shard_files();
    assert!(!files.is_empty(), "the holder of shard 0 has shard files");
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    // Crash and come back on the same data folder and identity.
    t.nodes[xi].kill();
    assert!(!t.nodes[xi].is_running());
    assert!(
        t.cloud
            .hub
            .wait_disconnected(x, Duration::from_secs(30))
            .await
    );
    t.nodes[xi].restart();
    assert!(t.nodes[xi].is_running());
    assert!(
        t.cloud.hub.wait_connected(x, Duration::from_secs(60)).await,
        "the restarted node did not reconnect"
    );
    let tc = &t;
    wait_until(
        Duration::from_secs(30),
        "the restarted node reports shard 0 held",
        || async move { reports_held(tc, x, ih0) },
    )
    .await;
    // Re-seeded from disk: with one copy and the gateway's staging copy gone, nobody else could
    // have sent it the shard again. (librqbit sets the file length when it opens a torrent, so the
    // modification time changes; the bytes do not.)
    assert_eq!(t.nodes[xi].shard_files(), files);
    assert_eq!(
        announced(&t, &shards).await,
        Vec::<String>::new(),
        "a node seeding from disk announces nothing"
    );
    for (f, bytes) in files.iter().zip(&before) {
        assert!(
            std::fs::read(f).unwrap() == *bytes,
            "{} changed",
            f.display()
        );
    }

    // Leave exactly k shards with a live holder, shard 0 among them: the read needs the node that
    // restarted.
    let k = usize::from(single.k);
    let mut dead: BTreeSet<NodeId> = BTreeSet::new();
    let alive = |dead: &BTreeSet<NodeId>| {
        shards
            .values()
            .filter(|(_, h)| h.iter().any(|n| !dead.contains(n)))
            .count()
    };
    for (_, holders) in shards.values().skip(1) {
        let mut more = dead.clone();
        more.extend(holders.iter().filter(|&&n| n != x));
        if alive(&more) >= k {
            dead = more;
        }
        if alive(&dead) == k {
            break;
        }
    }
    assert_eq!(alive(&dead), k, "placement {shards:?}");
    for node in t.nodes.iter_mut().filter(|n| dead.contains(&n.id)) {
        node.kill();
        assert!(
            t.cloud
                .hub
                .wait_disconnected(node.id, Duration::from_secs(30))
                .await
        );
    }
    assert!(
        read(&gw, "single", "o").await.unwrap() == object,
        "read through the restarted node differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupted_pieces_are_refused_and_the_read_uses_the_good_copy() {
    // Two nodes, two copies: each node holds every shard. Fetches that fail give up quickly, and
    // nodes report every second.
    let mut t = TestCloud::start_with(2, 2, |s| {
        s.gateway.fetch_timeout = Duration::from_secs(15);
        s.control.report_interval_secs = 1;
    })
    .await;
    let gw = t.cloud.gateway.clone();
    let policy = BucketPolicy {
        k: 4,
        m: 2,
        copies: 2,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("two", Some(policy)).await.unwrap();
    let object = random_bytes(6 << 20, 22);
    gw.put("two", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();
    let shards = placement(&gw, "two", "o").await;
    assert!(shards.values().all(|(_, h)| h.len() == 2), "{shards:?}");

    // Node 0 now holds a bad byte in every 16 KiB, so in every piece of every shard it holds.
    let files = t.nodes[0].shard_files();
    assert_eq!(files.len(), shards.len());
    let stride = 16 * 1024;
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        for at in (0..len).step_by(stride) {
            corrupt(f, at + (len - at).min(stride as u64) / 2, 1);
        }
    }

    // With only the corrupted copies online, the read fails: nothing wrong is returned.
    t.nodes[1].kill();
    let good = t.nodes[1].id;
    assert!(
        t.cloud
            .hub
            .wait_disconnected(good, Duration::from_secs(30))
            .await
    );
    assert!(
        read(&gw, "two", "o").await.is_err(),
        "a read from corrupted copies only must fail"
    );

    // With the good copies back, the read returns the object although the corrupted node is still
    // asked for pieces: the gateway's client drops every piece that fails its hash.
    t.nodes[1].restart();
    assert!(
        t.cloud
            .hub
            .wait_connected(good, Duration::from_secs(60))
            .await
    );
    let (tc, sh) = (&t, &shards);
    wait_until(
        Duration::from_secs(30),
        "the restarted good node reports its shards held",
        || async move { sh.values().all(|(ih, _)| reports_held(tc, good, ih)) },
    )
    .await;
    assert!(
        read(&gw, "two", "o").await.unwrap() == object,
        "read beside a corrupted copy differs"
    );
    // The node that served a bad piece is named to the audit worker.
    assert!(
        !logs::matching("a read got a bad piece").is_empty(),
        "the corrupted node was not reported"
    );
}

/// Revoking a node with a live control session closes the session at once, its process (still
/// running) is not let back in, and uploads go to the other nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_node_is_cut_off_at_once_and_uploads_go_to_the_others() {
    let mut t = TestCloud::start(5, 3).await;
    let gw = t.cloud.gateway.clone();
    let revoked = t.nodes[0].id;
    let registry = t.cloud.service.tracker().registry().clone();
    registry.revoke(revoked).await.unwrap();
    assert!(
        t.cloud
            .hub
            .wait_disconnected(revoked, Duration::from_secs(10))
            .await,
        "the revoked node's session is still up"
    );
    let policy = BucketPolicy {
        k: 2,
        m: 2,
        copies: 1,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("after", Some(policy)).await.unwrap();
    let object = random_bytes(6 << 20, 33);
    gw.put("after", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();
    let holders: BTreeSet<NodeId> = placement(&gw, "after", "o")
        .await
        .into_values()
        .flat_map(|(_, h)| h)
        .collect();
    assert_eq!(holders.len(), 4, "one shard on each of the other nodes");
    assert!(!holders.contains(&revoked), "{holders:?}");
    assert_eq!(read(&gw, "after", "o").await.unwrap(), object);
    assert!(t.nodes[0].is_running());
    assert!(t.cloud.hub.node(revoked).is_none(), "let back in");
}
