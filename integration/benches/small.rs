//! Small objects, packed against unpacked, in one run on one machine.
//!
//! 1,000 objects of 5,000 bytes (just above the 4 KiB inline limit) written by 8 clients to a
//! gateway with 6 nodes in 3 zones, (4, 2) x 2 copies: once with packing off (the baseline: each
//! object its own 6 shard torrents), once with packing on (1 s linger). For each: PUTs/s until
//! acknowledged, seconds until every object is in the swarm, shard torrents per node, the nodes'
//! resident memory, how much the gateway's grew (it runs in this process), and 64 KiB GET p50/p99
//! from the swarm.
//!
//! `cargo bench -p raidtorrent-integration --bench small` (`-- --test` runs 100 objects).

use std::time::{Duration, Instant};

use raidtorrent_integration::TestCloud;
use raidtorrent_testkit::{files_under, random_bytes, wait_until};
use raidtorrent_tracker::gateway::model::Storage;
use raidtorrent_tracker::gateway::{Gateway, PackConfig};

const CLIENTS: usize = 8;
const SIZE: usize = 5_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let count = if quick { 100 } else { 1_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!("small objects: {count} x {SIZE} bytes, {CLIENTS} clients, 6 nodes, (4,2) x 2");
        let off = run(count, None).await;
        let packing = PackConfig {
            linger: Duration::from_secs(1),
            ..PackConfig::default()
        };
        let on = run(count, Some(packing)).await;
        for (name, r) in [("unpacked", &off), ("packed", &on)] {
            println!(
                "  {name:9} {:7.1} PUTs/s, in the swarm after {:6.2} s, {:6.1} torrents/node, \
                 node RSS {:5.1} MiB, gateway RSS +{:6.1} MiB, 64 KiB GET p50 {:.2} ms p99 {:.2} ms",
                r.puts_per_sec,
                r.swarm_secs,
                r.torrents_per_node,
                r.node_rss_mib,
                r.gateway_rss_mib,
                r.get_p50_ms,
                r.get_p99_ms
            );
        }
        println!(
            "  packed / unpacked: {:.1}x PUTs/s, {:.3}x torrents per node",
            on.puts_per_sec / off.puts_per_sec,
            on.torrents_per_node / off.torrents_per_node
        );
    });
}

struct Run {
    puts_per_sec: f64,
    swarm_secs: f64,
    torrents_per_node: f64,
    node_rss_mib: f64,
    gateway_rss_mib: f64,
    get_p50_ms: f64,
    get_p99_ms: f64,
}

async fn run(count: usize, packing: Option<PackConfig>) -> Run {
    let t = TestCloud::start_with(6, 3, |s| {
        if let Some(p) = packing {
            s.gateway.packing = p;
        }
    })
    .await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("bench", None).await.unwrap();
    let rss_before = rss_mib(std::process::id());
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let gw = gw.clone();
            tokio::spawn(async move {
                for i in (c..count).step_by(CLIENTS) {
                    let data = random_bytes(SIZE, i as u64);
                    let key = format!("o{i:05}");
                    gw.put("bench", &key, std::io::Cursor::new(data), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let puts_per_sec = count as f64 / start.elapsed().as_secs_f64();
    wait_until(
        Duration::from_secs(600),
        "every object is in the swarm",
        || async {
            let listing = gw.list("bench", "", None, 1000).await.unwrap();
            listing
                .objects
                .iter()
                .all(|o| o.storage != Storage::Waiting)
        },
    )
    .await;
    let swarm_secs = start.elapsed().as_secs_f64();
    let torrents: usize = t
        .nodes
        .iter()
        .map(|n| files_under(&n.dir.join("shards")).len())
        .sum();
    let rss: Vec<f64> = t
        .nodes
        .iter()
        .filter_map(|n| n.pid())
        .map(rss_mib)
        .collect();
    let (get_p50_ms, get_p99_ms) = small_gets(&gw).await;
    Run {
        puts_per_sec,
        swarm_secs,
        torrents_per_node: torrents as f64 / t.nodes.len() as f64,
        node_rss_mib: rss.iter().sum::<f64>() / rss.len().max(1) as f64,
        gateway_rss_mib: rss_mib(std::process::id()) - rss_before,
        get_p50_ms,
        get_p99_ms,
    }
}

/// A 64 KiB object, in the swarm (packed or not), read 100 times: p50 and p99 in ms.
async fn small_gets(gw: &Gateway) -> (f64, f64) {
    let small = random_bytes(64 << 10, 43);
    gw.put("bench", "small", std::io::Cursor::new(small.clone()), None)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        "the 64 KiB object is in the swarm",
        || async { gw.head("bench", "small").await.unwrap().storage != Storage::Waiting },
    )
    .await;
    let mut ms = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        let (_, mut body) = gw.get("bench", "small", None).await.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = body.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(got == small, "read back differs");
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    (ms[49], ms[98])
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
