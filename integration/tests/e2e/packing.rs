//! Small objects packed together: many become a few shard torrents on the nodes, read back
//! identical at every stage, and deleted space is reclaimed by compaction without loss.

use std::collections::BTreeMap;
use std::time::Duration;

use raidtorrent_tracker::gateway::meta::pack_bucket_name;
use raidtorrent_tracker::gateway::model::Storage;
use raidtorrent_tracker::gateway::{Body, Gateway, PackConfig};

use raidtorrent_integration::*;
use raidtorrent_testkit::{random_bytes, wait_until, Rng};

const BUCKET: &str = "small";

async fn collect(mut body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn storages(gw: &Gateway) -> Vec<Storage> {
    let listing = gw.list(BUCKET, "", None, 1000).await.unwrap();
    listing.objects.iter().map(|o| o.storage).collect()
}

/// Every object reads back identical, whole and in a range.
async fn all_identical(gw: &Gateway, objects: &BTreeMap<String, Vec<u8>>) {
    for (key, data) in objects {
        let (_, body) = gw.get(BUCKET, key, None).await.unwrap();
        assert!(collect(body).await == *data, "{key} differs");
        let (a, b) = (data.len() as u64 / 3, data.len() as u64 / 2 + 1);
        let (_, body) = gw.get(BUCKET, key, Some(a..b)).await.unwrap();
        assert!(
            collect(body).await[..] == data[a as usize..b as usize],
            "{key} range differs"
        );
    }
}

/// Polls `check` until it says done; a timeout fails with what it said last.
async fn settle<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let mut last = String::new();
    let polled = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let (done, state) = check().await;
            last = state;
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        polled.is_ok(),
        "timed out waiting until {what}; last: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_objects_share_packs_and_deletes_are_compacted_away() {
    let t = TestCloud::start_with(6, 3, |s| {
        s.gateway.packing = PackConfig {
            max_object: 256 << 10,
            target: 2 << 20,
            linger: Duration::from_secs(1),
            max_waiting: 64 << 20,
            compact_below: 0.5,
        }
    })
    .await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket(BUCKET, None).await.unwrap();

    // 300 objects from just above the inline limit to 64 KiB: acknowledged at once, readable
    // while they wait for their pack.
    let mut rng = Rng::new(7);
    let mut objects = BTreeMap::new();
    for i in 0..300u64 {
        let data = random_bytes(4097 + rng.below(60 << 10) as usize, i);
        let key = format!("o/{i:03}");
        let info = gw
            .put(BUCKET, &key, std::io::Cursor::new(data.clone()), None)
            .await
            .unwrap();
        assert_eq!(info.storage, Storage::Waiting);
        objects.insert(key, data);
    }
    let total: usize = objects.values().map(Vec::len).sum();
    all_identical(&gw, &objects).await;

    // Packs written at the linger hold what had arrived by then; small ones merge, so at most
    // a few (fewer than the merge fan-in of 4) are left under half the target.
    let most = total.div_ceil(2 << 20) + 3;
    wait_until(
        Duration::from_secs(120),
        "every object is packed in a few packs",
        || async {
            let packs = gw.meta().packs(&pack_bucket_name(BUCKET)).await.unwrap();
            let packed = storages(&gw).await.iter().all(|s| *s == Storage::Packed);
            packed && packs.len() <= most
        },
    )
    .await;
    let packs = gw.meta().packs(&pack_bucket_name(BUCKET)).await.unwrap();
    // k + m = 6 shards of every pack, two copies each, instead of 6 x 2 per object.
    settle("the nodes hold the packs' copies only", || async {
        let files = t.shard_files();
        (
            files == packs.len() * 12,
            format!("{files} shard files for {} packs", packs.len()),
        )
    })
    .await;
    all_identical(&gw, &objects).await;

    // Delete 70%: the packs fall below half live and are compacted into fewer, fuller ones.
    let keys: Vec<String> = objects.keys().cloned().collect();
    for (i, key) in keys.iter().enumerate() {
        if i % 10 < 7 {
            gw.delete(BUCKET, key).await.unwrap();
            objects.remove(key);
        }
    }
    let pack_bucket = pack_bucket_name(BUCKET);
    settle("deleted space is reclaimed", || async {
        let packs = gw.meta().packs(&pack_bucket).await.unwrap();
        let all_packed = storages(&gw).await.iter().all(|s| *s == Storage::Packed);
        // No pack nobody refers to, none below half live (`compact_below`).
        let done = all_packed && packs.iter().all(|p| p.members > 0 && p.live * 2 >= p.size);
        (done, format!("all packed: {all_packed}, packs: {packs:?}"))
    })
    .await;
    all_identical(&gw, &objects).await;
    let live: u64 = objects.values().map(|d| d.len() as u64).sum();
    let stored: u64 = gw
        .meta()
        .packs(&pack_bucket)
        .await
        .unwrap()
        .iter()
        .map(|p| p.size)
        .sum();
    assert!(
        stored < live * 2,
        "{stored} bytes of packs hold {live} live bytes"
    );
    settle("old packs left the nodes", || async {
        let packs = gw.meta().packs(&pack_bucket).await.unwrap().len();
        let (files, untracked) = (t.shard_files(), t.untracked().await);
        let done = files == packs * 12 && untracked.is_empty();
        (
            done,
            format!("{files} shard files for {packs} packs; untracked: {untracked:?}"),
        )
    })
    .await;
}
