//! The gateway's metadata on PostgreSQL against SQLite, in one run on one machine.
//!
//! The same cloud twice (an in-process gateway with 6 node processes in 3 zones, (4, 2) x 2),
//! first on its SQLite file (the baseline), then on a PostgreSQL server this run starts
//! (`testkit::Postgres`, on loopback). One client, one request at a time, so each figure is a
//! latency: PUT and GET of 1 MiB objects (the swarm path: shards placed on nodes, the metadata a
//! few rows), PUT of 1 KiB objects stored inline (the metadata store is the whole work), HEAD,
//! and a listing of 100 keys. Prints p50 and p99 per operation and the PostgreSQL / SQLite
//! ratio of the p50s.
//!
//! `cargo bench -p raidtorrent-integration --bench engines` (`-- --test`: a few of each).

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use raidtorrent_integration::TestCloud;
use raidtorrent_testkit::{random_bytes, Postgres};
use raidtorrent_tracker::gateway::{BucketPolicy, Gateway};

const OPERATIONS: [&str; 5] = [
    "PUT 1 MiB",
    "GET 1 MiB",
    "PUT 1 KiB inline",
    "HEAD",
    "LIST 100",
];

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (large, small) = if quick { (3, 10) } else { (40, 300) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!("metadata engines: {large} x 1 MiB, {small} x 1 KiB, 6 nodes, (4,2) x 2");
        let sqlite = run(None, large, small).await;
        let Some(url) = Postgres::fresh_database() else {
            return;
        };
        let postgres = run(Some(url), large, small).await;
        for (i, op) in OPERATIONS.iter().enumerate() {
            let (s, p) = (&sqlite[i], &postgres[i]);
            println!(
                "  {op:17} SQLite p50 {:7.2} ms p99 {:7.2} ms | PostgreSQL p50 {:7.2} ms \
                 p99 {:7.2} ms | {:.2}x",
                s.0,
                s.1,
                p.0,
                p.1,
                p.0 / s.0
            );
        }
    });
}

/// p50 and p99 in ms of each of [`OPERATIONS`], on the database `url` names (SQLite if none).
async fn run(url: Option<String>, large: usize, small: usize) -> Vec<(f64, f64)> {
    let t = TestCloud::start_custom(
        6,
        3,
        |c| {
            if let Some(url) = url {
                c.db = PathBuf::from(url);
            }
        },
        |s| s.gateway.packing.max_object = 0,
        &[],
    )
    .await;
    let gw = t.cloud.gateway.clone();
    let swarm = BucketPolicy {
        k: 4,
        m: 2,
        copies: 2,
        high_share: 0.0,
        inline_max: 0,
    };
    let inline = BucketPolicy {
        inline_max: 4096,
        ..swarm
    };
    gw.create_bucket("bench", Some(swarm)).await.unwrap();
    gw.create_bucket("inline", Some(inline)).await.unwrap();
    let mb = random_bytes(1 << 20, 1);
    let kb = random_bytes(1 << 10, 2);
    vec![
        timed(large, |i| put(&gw, "bench", format!("l{i:04}"), mb.clone())).await,
        timed(large, |i| get(&gw, format!("l{i:04}"), mb.len())).await,
        timed(small, |i| {
            put(&gw, "inline", format!("s{i:04}"), kb.clone())
        })
        .await,
        timed(small, |i| head(&gw, format!("s{i:04}"))).await,
        timed(small, |_| list(&gw)).await,
    ]
}

/// Runs `op(0..n)` one after the other: p50 and p99 in ms.
async fn timed<F, Fut>(n: usize, mut op: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        op(i).await;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.99))
}

async fn put(gw: &Gateway, bucket: &str, key: String, data: Vec<u8>) {
    gw.put(bucket, &key, std::io::Cursor::new(data), None)
        .await
        .unwrap();
}

async fn get(gw: &Gateway, key: String, len: usize) {
    let (_, mut body) = gw.get("bench", &key, None).await.unwrap();
    let mut got = 0;
    while let Some(chunk) = body.recv().await {
        got += chunk.unwrap().len();
    }
    assert_eq!(got, len, "{key} read back short");
}

async fn head(gw: &Gateway, key: String) {
    gw.head("inline", &key).await.unwrap();
}

async fn list(gw: &Gateway) {
    let listing = gw.list("inline", "s", None, 100).await.unwrap();
    assert!(!listing.objects.is_empty());
}
