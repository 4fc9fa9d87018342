//! The cloud against the plain BitTorrent transfer it is built on, in one run on one machine.
//!
//! 1. baseline: one 256 MiB torrent moved between two librqbit sessions on loopback;
//! 2. PUT of the same bytes to a gateway with 6 nodes in 3 zones, (k, m) = (4, 2), 2 copies, until
//!    durable (every copy confirmed), in four groups (each placed while the next is encoded), with
//!    the most the staging folder held; and GET of it back.
//!
//! Prints MB/s and the ratios: GET / baseline, and PUT / (baseline / expansion), where expansion is
//! copies × (k + m) / k, the bytes a durable PUT must move per object byte.
//!
//! 3. a 1-byte ranged GET of the big object: time and bytes fetched from nodes;
//! 4. a 64 KiB object read 100 times in a row: p50 and p99 latency.
//!
//! `cargo bench -p raidtorrent-integration --bench cloud` (`-- --test` runs a small, quick version).

use std::time::Instant;

use raidtorrent_integration::baseline::plain_transfer;
use raidtorrent_integration::{PeakSampler, TestCloud};
use raidtorrent_testkit::random_bytes;
use raidtorrent_tracker::gateway::Gateway;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let size: usize = if quick { 8 << 20 } else { 256 << 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let data = random_bytes(size, 42);
        let mb = size as f64 / 1e6;
        let plain = plain_transfer(&data).await;

        // Groups of a quarter of the object: placed while the next is encoded.
        let group = size as u64 / 4;
        let t = TestCloud::start_with(6, 3, |s| {
            s.gateway.group_size = group;
            s.gateway.segment_target = s.gateway.segment_target.min(group / 2);
        })
        .await;
        let gw = t.cloud.gateway.clone();
        gw.create_bucket("bench", None).await.unwrap();
        let sampler = PeakSampler::start(t.staging_dir());
        let start = Instant::now();
        gw.put(
            "bench",
            "o",
            std::io::Cursor::new(data.clone()),
            Some(size as u64),
        )
        .await
        .unwrap();
        let put = start.elapsed().as_secs_f64();
        let staged = sampler.stop().await;
        let start = Instant::now();
        let got = read(&gw, "o", None).await;
        let get = start.elapsed().as_secs_f64();
        assert!(got == data, "read back differs");
        let expansion = 2.0 * 6.0 / 4.0;
        println!(
            "cloud benchmark, {} MiB object, 6 nodes in 3 zones, (4,2) x 2 copies:",
            size >> 20
        );
        println!("  plain torrent  {:8.1} MB/s", mb / plain);
        println!(
            "  PUT (durable)  {:8.1} MB/s  = {:.2}x plain/expansion ({expansion:.1}x bytes moved)",
            mb / put,
            plain * expansion / put
        );
        println!(
            "  PUT staging    {:8.1} MiB at most, for {:.1} MiB of shards ({} groups)",
            staged as f64 / (1 << 20) as f64,
            size as f64 * expansion / 2.0 / (1 << 20) as f64,
            size as u64 / group
        );
        println!(
            "  GET            {:8.1} MB/s  = {:.2}x plain",
            mb / get,
            plain / get
        );
        let before = gw.piece_bytes_fetched();
        let start = Instant::now();
        let one = read(&gw, "o", Some(12_345..12_346)).await;
        assert_eq!(one, data[12_345..12_346]);
        println!(
            "  1-byte range   {:8.2} ms, {} bytes fetched from nodes",
            start.elapsed().as_secs_f64() * 1e3,
            gw.piece_bytes_fetched() - before
        );
        let small = random_bytes(64 << 10, 43);
        gw.put("bench", "small", std::io::Cursor::new(small.clone()), None)
            .await
            .unwrap();
        let mut ms = Vec::new();
        for _ in 0..100 {
            let start = Instant::now();
            assert!(read(&gw, "small", None).await == small);
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  64 KiB GET x100: p50 {:.2} ms, p99 {:.2} ms",
            ms[49], ms[98]
        );
    });
}

async fn read(gw: &Gateway, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let (_, mut body) = gw.get("bench", key, range).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = body.recv().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    got
}
