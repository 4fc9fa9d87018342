//! Objects through the gateway and the swarm.

use std::time::Duration;

use raidtorrent_tracker::gateway::{Body, BucketPolicy, Gateway, GatewayError};

use raidtorrent_integration::*;
use raidtorrent_testkit::{files_under, random_bytes};

async fn collect(mut body: Body) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn get(gw: &Gateway, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let (_, body) = gw.get("e2e", key, range).await.unwrap();
    collect(body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_survive_the_loss_of_a_zone() {
    let mut t = TestCloud::start(6, 3).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("e2e", None).await.unwrap();

    let object = random_bytes(100 << 20, 1);
    let info = gw
        .put(
            "e2e",
            "big.bin",
            std::io::Cursor::new(object.clone()),
            Some(object.len() as u64),
        )
        .await
        .unwrap();
    assert_eq!(info.size, object.len() as u64);
    assert!(!info.inline);
    assert!(
        get(&gw, "big.bin", None).await == object,
        "read back differs"
    );

    // Odd ranges, decoded from only the pieces they need.
    for (a, b) in [
        (0u64, 1u64),
        (12_345, 6_789_012),
        ((100 << 20) - 7, 100 << 20),
    ] {
        assert!(get(&gw, "big.bin", Some(a..b)).await[..] == object[a as usize..b as usize]);
    }

    // Two groups (64 MiB and the rest), every shard with its two copies on the nodes: 24 shard
    // files holding 1.5 x 2 x the object, and a little for the chunks' tags.
    let shard_files: Vec<u64> = t
        .nodes
        .iter()
        .flat_map(|n| files_under(&n.dir.join("shards")))
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    assert_eq!(shard_files.len(), 24, "{shard_files:?}");
    let stored: u64 = shard_files.iter().sum();
    assert!(
        (300 << 20..302 << 20).contains(&stored),
        "{stored} bytes in {shard_files:?}"
    );

    // Nodes hold ciphertext only: no 4 KiB window of the object appears in any node file.
    let probe = &object[(50 << 20)..(50 << 20) + 4096];
    for node in &t.nodes {
        for f in files_under(&node.dir) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!contains(&bytes, probe), "{} holds plaintext", f.display());
        }
    }

    // Lose a whole zone: every shard still has a copy elsewhere.
    for node in t.nodes.iter_mut().filter(|n| n.zone == "zone-0") {
        node.kill();
        assert!(
            t.cloud
                .hub
                .wait_disconnected(node.id, Duration::from_secs(30))
                .await
        );
    }
    assert!(
        get(&gw, "big.bin", None).await == object,
        "read after losing a zone differs"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_sizes_and_bad_requests() {
    let t = TestCloud::start(4, 2).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("e2e", None).await.unwrap();
    // Empty, one byte, inline limit, one past it (first swarm object), a segment boundary.
    for (i, len) in [0usize, 1, 4096, 4097, 8 * 512 * 65520]
        .into_iter()
        .enumerate()
    {
        let key = format!("k{i}");
        let data = random_bytes(len, i as u64 + 10);
        let info = gw
            .put("e2e", &key, std::io::Cursor::new(data.clone()), None)
            .await
            .unwrap();
        assert_eq!(info.inline, len <= 4096, "{len}");
        assert!(get(&gw, &key, None).await == data, "size {len}");
    }
    assert!(matches!(
        gw.get("e2e", "k1", Some(0..2)).await,
        Err(GatewayError::InvalidRange { size: 1 })
    ));
    assert!(matches!(
        gw.get("e2e", "nope", None).await,
        Err(GatewayError::NoSuchKey(_))
    ));
    assert!(matches!(
        gw.head("nobucket", "k1").await,
        Err(GatewayError::NoSuchBucket(_))
    ));

    // Delete: gone from listings at once, and its shards leave the nodes.
    let row = gw.meta().object("e2e", "k3").await.unwrap();
    let names: Vec<String> = gw
        .meta()
        .shards_of(row.id)
        .await
        .unwrap()
        .iter()
        .map(|s| {
            let torrent = [&b"d4:info"[..], &s.info, b"e"].concat();
            raidtorrent_codec::Metainfo::parse(&torrent)
                .unwrap()
                .info
                .name
        })
        .collect();
    let held = |names: &[String]| {
        t.nodes
            .iter()
            .flat_map(|n| files_under(&n.dir))
            .filter(|f| {
                names
                    .iter()
                    .any(|n| f.file_name().is_some_and(|x| x == n.as_str()))
            })
            .count()
    };
    assert_eq!(
        held(&names),
        2 * names.len(),
        "two copies of each shard before the delete"
    );
    gw.delete("e2e", "k3").await.unwrap();
    assert!(matches!(
        gw.head("e2e", "k3").await,
        Err(GatewayError::NoSuchKey(_))
    ));
    let listing = gw.list("e2e", "k", None, 10).await.unwrap();
    let keys: Vec<_> = listing.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k4"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while held(&names) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "deleted shards still on nodes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_lost_on_every_copy_are_rebuilt_and_concurrent_clients_are_served() {
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
    let object = random_bytes(20 << 20, 7);
    gw.put("single", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();

    // Kill the only holders of data shards 0 and 1: m shards gone entirely, rebuilt from parity.
    let row = gw.meta().object("single", "o").await.unwrap();
    let shards = gw.meta().shards_of(row.id).await.unwrap();
    let mut victims = Vec::new();
    for s in &shards[..2] {
        victims.extend(gw.meta().holders(&s.info_hash).await.unwrap());
    }
    assert_eq!(victims.len(), 2);
    for node in t.nodes.iter_mut().filter(|n| victims.contains(&n.id)) {
        node.kill();
        assert!(
            t.cloud
                .hub
                .wait_disconnected(node.id, Duration::from_secs(30))
                .await
        );
    }
    let (_, body) = gw.get("single", "o", None).await.unwrap();
    assert!(
        collect(body).await.unwrap() == object,
        "rebuilt read differs"
    );

    // Eight clients at once, writing then reading, on the four nodes left.
    gw.create_bucket(
        "e2e",
        Some(BucketPolicy {
            copies: 1,
            ..single
        }),
    )
    .await
    .unwrap();
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let gw = gw.clone();
        puts.spawn(async move {
            let data = random_bytes(3 << 20, 100 + i);
            gw.put(
                "e2e",
                &format!("c{i}"),
                std::io::Cursor::new(data.clone()),
                None,
            )
            .await
            .map(|_| (i, data))
        });
    }
    let mut written = Vec::new();
    while let Some(r) = puts.join_next().await {
        written.push(r.unwrap().unwrap());
    }
    let mut gets = tokio::task::JoinSet::new();
    for (i, data) in written {
        let gw = gw.clone();
        gets.spawn(async move { get(&gw, &format!("c{i}"), None).await == data });
    }
    while let Some(r) = gets.join_next().await {
        assert!(r.unwrap(), "a concurrent read differs");
    }
}
