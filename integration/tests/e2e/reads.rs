//! Piece reads: exact slices at random offsets, only the pieces they need, holders dying
//! mid-read, and reads right after every node restarted.

use std::time::Duration;

use raidtorrent_codec::Geometry;
use raidtorrent_tracker::gateway::{Body, BucketPolicy, Gateway};

use raidtorrent_integration::*;
use raidtorrent_testkit::{random_bytes, Rng};

async fn read(gw: &Gateway, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let (_, mut body): (_, Body) = gw.get("reads", key, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

const POLICY: BucketPolicy = BucketPolicy {
    k: 4,
    m: 2,
    copies: 2,
    high_share: 0.0,
    inline_max: 0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranged_reads_equal_the_slice_and_fetch_only_the_pieces_they_need() {
    // Segments of about 1 MiB, so a 5 MiB object has six and ranges cross their boundaries.
    let t = TestCloud::start_with(6, 3, |s| s.gateway.segment_target = 1 << 20).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("reads", Some(POLICY)).await.unwrap();
    let size = (5 << 20) + 12_345;
    let object = random_bytes(size, 7);
    gw.put(
        "reads",
        "o",
        std::io::Cursor::new(object.clone()),
        Some(size as u64),
    )
    .await
    .unwrap();
    let g = Geometry::choose(4, 2, 1 << 20, Some(size as u64)).unwrap();
    let seg = g.segment_size;

    let mut ranges = vec![(0, size as u64)];
    for s in 1..(size as u64).div_ceil(seg) {
        ranges.push((s * seg - 1, s * seg + 1));
        ranges.push((s * seg - 70_000, s * seg + 70_000));
    }
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..24 {
        let len = [1, 100, 65_520, 300_000, 1_500_000][rng.below(5) as usize];
        let a = rng.below(size as u64 - len);
        ranges.push((a, a + len));
    }
    for (a, b) in ranges {
        let b = b.min(size as u64);
        let before = gw.piece_bytes_fetched();
        let got = read(&gw, "o", Some(a..b)).await;
        assert!(
            got[..] == object[a as usize..b as usize],
            "{a}..{b} differs"
        );
        let fetched = gw.piece_bytes_fetched() - before;
        eprintln!("{a}..{b}: {fetched} bytes fetched for {} bytes", b - a);
        if b - a <= 100 {
            // At most two 64 KiB chunks, each widened to whole pieces, plus the peer-wire
            // framing: far below one shard (1.3 MiB), let alone k of them.
            assert!(
                fetched <= 2 * (64 << 10) + 4 * g.piece_length + (16 << 10),
                "{a}..{b}: {fetched} bytes fetched for {} bytes",
                b - a
            );
        }
        // Every 64 KiB chunk the range touches, framing (under 1%), and a few pieces of slack
        // for hedges of late pieces on a loaded machine: no shard fetched beyond the range.
        let chunks = (b - a).div_ceil(65_520) + 2;
        assert!(
            fetched <= chunks * (64 << 10) * 101 / 100 + 8 * g.piece_length,
            "{a}..{b}: {fetched} bytes fetched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_stays_exact_while_holders_die_under_it() {
    let mut t = TestCloud::start_with(6, 3, |s| s.gateway.segment_target = 2 << 20).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("reads", Some(POLICY)).await.unwrap();
    let object = random_bytes(24 << 20, 8);
    gw.put("reads", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();

    let (_, mut body) = gw.get("reads", "o", None).await.unwrap();
    let mut got = body.recv().await.unwrap().unwrap().to_vec();
    // A zone's nodes die with most of the object still to come; every shard keeps a copy in
    // another zone.
    for node in t.nodes.iter_mut().filter(|n| n.zone == "zone-0") {
        node.kill();
    }
    while let Some(chunk) = body.recv().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == object, "the read under dying holders differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_right_after_every_node_restarts_wait_for_the_holders() {
    let mut t = TestCloud::start(6, 3).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("reads", Some(POLICY)).await.unwrap();
    let objects: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(3 << 20, 20 + i)).collect();
    for (i, o) in objects.iter().enumerate() {
        gw.put(
            "reads",
            &format!("o{i}"),
            std::io::Cursor::new(o.clone()),
            None,
        )
        .await
        .unwrap();
    }
    for node in &mut t.nodes {
        node.restart();
    }
    for node in &t.nodes {
        assert!(
            t.cloud
                .hub
                .wait_connected(node.id, Duration::from_secs(60))
                .await
        );
    }
    // At once: the nodes may still be checking their files.
    for (i, o) in objects.iter().enumerate() {
        assert!(
            read(&gw, &format!("o{i}"), None).await == *o,
            "o{i} differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_share_the_gateway_memory_and_wait_for_their_share() {
    // 1 MiB segments: a whole read of 8 MiB reserves about 6.5 MiB, a 64 KiB read under 2 MiB.
    let t = TestCloud::start_with(6, 3, |s| {
        s.gateway.segment_target = 1 << 20;
        s.gateway.read_memory = 10 << 20;
        s.gateway.queue_timeout = Duration::from_millis(500);
    })
    .await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("reads", Some(POLICY)).await.unwrap();
    let object = random_bytes(8 << 20, 30);
    gw.put("reads", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();

    // A client that stops reading keeps its read's memory ...
    let (_, held) = gw.get("reads", "o", None).await.unwrap();
    // ... so a second whole read waits for it, then is told to come back ...
    let e = gw.get("reads", "o", None).await.err().unwrap();
    assert_eq!(e.http_status(), 503, "{e}");
    assert!(e.to_string().contains("memory for reads"), "{e}");
    // ... while a small read fits beside it.
    let a = 5_000_000;
    assert!(
        read(&gw, "o", Some(a..a + 65_536)).await[..] == object[a as usize..a as usize + 65_536]
    );
    // Once the first client goes, its memory is free again.
    drop(held);
    let whole = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match gw.get("reads", "o", None).await {
                Ok((_, mut body)) => {
                    let mut out = Vec::new();
                    while let Some(chunk) = body.recv().await {
                        out.extend_from_slice(&chunk.unwrap());
                    }
                    return out;
                }
                // The dropped read's decoder lets go at its next chunk.
                Err(e) => assert_eq!(e.http_status(), 503, "{e}"),
            }
        }
    })
    .await
    .expect("a whole read got its memory back");
    assert!(whole == object);
}
