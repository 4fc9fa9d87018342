//! The cloud against the plain BitTorrent transfer it is built on, in one run on one machine.
//!
//! 1. baseline: one 256 MiB torrent moved between two librqbit sessions on loopback;
//! 2. PUT of the same bytes to a gateway with 6 nodes in 3 zones, (k, m) = (4, 2), 2 copies, until
//!    durable (every copy confirmed), and GET of it back.
//!
//! Prints MB/s and the ratios: GET / baseline, and PUT / (baseline / expansion), where expansion is
//! copies × (k + m) / k, the bytes a durable PUT must move per object byte.
//!
//! `cargo bench -p raidtorrent-integration --bench cloud` (`-- --test` runs a small, quick version).

use std::time::Instant;

use raidtorrent_integration::baseline::plain_transfer;
use raidtorrent_integration::TestCloud;
use raidtorrent_testkit::random_bytes;

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

        let t = TestCloud::start(6, 3).await;
        let gw = t.cloud.gateway.clone();
        gw.create_bucket("bench", None).await.unwrap();
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
        let start = Instant::now();
        let (_, mut body) = gw.get("bench", "o", None).await.unwrap();
        let mut got = Vec::with_capacity(size);
        while let Some(chunk) = body.recv().await {
            got.extend_from_slice(&chunk.unwrap());
        }
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
            "  GET            {:8.1} MB/s  = {:.2}x plain",
            mb / get,
            plain / get
        );
    });
}
