//! Large objects as runs of groups: the gateway stages a few groups at a time whatever the
//! object's size, reads cross group boundaries byte-exact, and a failed or deleted object leaves
//! nothing on the nodes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use raidtorrent_tracker::gateway::meta::part_bucket_name;
use raidtorrent_tracker::gateway::model::Storage;
use raidtorrent_tracker::gateway::{Body, BucketPolicy, Gateway};
use tokio::io::{AsyncRead, ReadBuf};

use raidtorrent_integration::*;
use raidtorrent_testkit::{random_bytes, wait_until, Rng};

const BUCKET: &str = "big";
const GROUP: u64 = 1 << 20;
const POLICY: BucketPolicy = BucketPolicy {
    k: 4,
    m: 2,
    copies: 2,
    high_share: 0.0,
    inline_max: 0,
};

async fn read(gw: &Gateway, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let (_, mut body): (_, Body) = gw.get(BUCKET, key, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = body.recv().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Groups of 1 MiB in segments of 256 KiB, two placed while the next is encoded.
async fn cloud() -> TestCloud {
    TestCloud::start_with(6, 3, |s| {
        s.gateway.segment_target = 256 << 10;
        s.gateway.group_size = GROUP;
        s.gateway.groups_in_flight = 2;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_objects_are_staged_a_few_groups_at_a_time_and_read_exactly() {
    let t = cloud().await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket(BUCKET, Some(POLICY)).await.unwrap();

    // 12 MiB and a bit: 13 groups. Staged whole it would take 18 MiB of shards; three groups
    // (two placing, one encoding) take under 5 MiB.
    let size = 12 * GROUP as usize + 54_321;
    let object = random_bytes(size, 11);
    let sampler = PeakSampler::start(t.staging_dir());
    let info = gw
        .put(
            BUCKET,
            "o",
            io::Cursor::new(object.clone()),
            Some(size as u64),
        )
        .await
        .unwrap();
    let peak = sampler.stop().await;
    eprintln!("staging peak: {peak} bytes for a {size}-byte object");
    assert_eq!(info.storage, Storage::Grouped);
    assert_eq!(info.size, size as u64);
    assert_eq!(info.sha256, sha256_hex(&object));
    assert!(peak > 0, "the sampler saw the staging folder");
    assert!(
        peak <= 3 * GROUP * 3 / 2 + (1 << 20),
        "{peak} bytes staged at once"
    );
    // Groups are whole segments, the closest to 1 MiB.
    let row = gw.meta().object(BUCKET, "o").await.unwrap();
    let parts = gw.meta().parts(row.id).await.unwrap();
    assert!(parts.len() >= 12, "{} parts", parts.len());
    assert!(parts[0].size.abs_diff(GROUP) < GROUP / 4, "{parts:?}");

    // Ranges at random offsets and across every group boundary equal the slice.
    assert!(
        read(&gw, "o", None).await == object,
        "the whole object differs"
    );
    let mut ranges: Vec<(u64, u64)> = parts[1..]
        .iter()
        .map(|p| (p.offset - 3, p.offset + 5))
        .collect();
    ranges.push((GROUP - 100_000, 3 * GROUP + 100_000));
    let mut rng = Rng::new(5);
    for _ in 0..12 {
        let len = [1, 1000, 300_000, 2_500_000][rng.below(4) as usize];
        let a = rng.below(size as u64 - len);
        ranges.push((a, a + len));
    }
    for (a, b) in ranges {
        let got = read(&gw, "o", Some(a..b)).await;
        assert!(
            got[..] == object[a as usize..b as usize],
            "{a}..{b} differs"
        );
    }

    // A body of unknown length becomes groups too; one that fits in a group stays one object.
    let streamed = random_bytes(3 * GROUP as usize + 7, 12);
    let info = gw
        .put(BUCKET, "s", io::Cursor::new(streamed.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        (info.storage, info.size),
        (Storage::Grouped, streamed.len() as u64)
    );
    assert!(read(&gw, "s", None).await == streamed);
    let small = random_bytes(GROUP as usize * 3 / 4, 13);
    let info = gw
        .put(BUCKET, "g", io::Cursor::new(small.clone()), None)
        .await
        .unwrap();
    assert_eq!(info.storage, Storage::Swarm);
    assert!(read(&gw, "g", None).await == small);
    assert!(t.redundant(2).await, "every part has its copies");

    // Deleting and replacing take the parts with them, off the nodes too.
    gw.delete(BUCKET, "o").await.unwrap();
    gw.put(BUCKET, "s", io::Cursor::new(b"replaced".repeat(9)), None)
        .await
        .unwrap();
    gw.delete(BUCKET, "g").await.unwrap();
    gw.delete(BUCKET, "s").await.unwrap();
    let parts = part_bucket_name(BUCKET);
    wait_until(
        Duration::from_secs(120),
        "the nodes hold nothing",
        || async {
            let listed = gw.meta().list(&parts, "", "", 10).await.unwrap();
            listed.is_empty() && t.shard_files() == 0 && t.untracked().await.is_empty()
        },
    )
    .await;
}

/// A body that fails after `good` bytes, as a client that goes away mid-upload.
struct FailsAfter {
    data: io::Cursor<Vec<u8>>,
    good: u64,
}

impl AsyncRead for FailsAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.data.position() >= self.good {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the client went away",
            )));
        }
        Pin::new(&mut self.data).poll_read(cx, buf)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_upload_cut_short_leaves_nothing_behind() {
    let t = cloud().await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket(BUCKET, Some(POLICY)).await.unwrap();
    let body = FailsAfter {
        data: io::Cursor::new(random_bytes(8 * GROUP as usize, 21)),
        good: 5 * GROUP + 1000,
    };
    let put = gw.put(BUCKET, "cut", body, Some(8 * GROUP)).await;
    assert!(put.is_err(), "a failed body fails the upload");
    assert!(
        gw.head(BUCKET, "cut").await.is_err(),
        "nothing became visible"
    );
    let parts = part_bucket_name(BUCKET);
    wait_until(Duration::from_secs(120), "the parts are gone", || async {
        let listed = gw.meta().list(&parts, "", "", 10).await.unwrap();
        listed.is_empty() && t.shard_files() == 0 && t.untracked().await.is_empty()
    })
    .await;
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
