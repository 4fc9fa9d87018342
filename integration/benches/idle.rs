//! The object API under an idle-connection flood, against itself without one, in one run.
//!
//! A gateway with 6 nodes stores a 1 MiB object; a client reads it 200 times in a row over one
//! keep-alive connection: first alone (baseline), then while 2,000 connections from eight other
//! addresses stay open sending one byte each (reopened as soon as the gateway closes them, as a
//! flood would). Prints p50 and p99 of both and the ratio of the p99s.
//!
//! `cargo bench -p raidtorrent-integration --bench idle` (`-- --test` runs a small, quick version).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raidtorrent_integration::TestCloud;
use raidtorrent_testkit::random_bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

const OBJECT: usize = 1 << 20;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (reads, idle) = if quick { (20, 200) } else { (200, 2000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Both ends of every idle connection live in this process.
        raidtorrent_tracker::net::raise_open_file_limit().unwrap();
        let t = TestCloud::start(6, 3).await;
        t.cloud.gateway.create_bucket("bench", None).await.unwrap();
        let data = random_bytes(OBJECT, 3);
        let cursor = std::io::Cursor::new(data.clone());
        let gw = &t.cloud.gateway;
        gw.put("bench", "o", cursor, Some(OBJECT as u64))
            .await
            .unwrap();
        let url = format!("http://{}/bench/o", t.cloud.api_addr);
        let client = reqwest::Client::new();
        let alone = latencies(&client, &url, &data, reads).await;
        let stop = Arc::new(AtomicBool::new(false));
        let flood = tokio::spawn(hold_open(t.cloud.api_addr, idle, stop.clone()));
        let flooded = latencies(&client, &url, &data, reads).await;
        stop.store(true, Ordering::Relaxed);
        let held = flood.await.unwrap();
        println!("object API, 1 MiB GET x {reads}, 6 nodes, (4,2) x 2 copies:");
        print("alone", &alone);
        print(
            &format!("{idle} idle connections ({held} opened)"),
            &flooded,
        );
        println!(
            "  p99 under the flood / p99 alone = {:.2}x",
            p(&flooded, 0.99).as_secs_f64() / p(&alone, 0.99).as_secs_f64()
        );
    });
}

async fn latencies(client: &reqwest::Client, url: &str, data: &[u8], n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        out.push(started.elapsed());
        assert!(body == data, "read back differs");
    }
    out.sort();
    out
}

/// Keeps `n` connections open, each having sent one byte, until `stop`; returns how many it
/// opened in all.
async fn hold_open(api: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> usize {
    let mut opened = 0;
    let mut open = Vec::with_capacity(n);
    while !stop.load(Ordering::Relaxed) {
        // Drop the ones the gateway closed, and open new ones in their place.
        open.retain(|s: &tokio::net::TcpStream| s.peer_addr().is_ok() && !closed(s));
        while open.len() < n {
            let ip = format!("127.0.1.{}:0", 1 + opened % 8);
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(ip.parse().unwrap()).unwrap();
            let Ok(mut s) = sock.connect(api).await else {
                break;
            };
            let _ = s.write_all(b"G").await;
            open.push(s);
            opened += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    opened
}

/// True if the peer closed `s` (a read would return end of file or an error).
fn closed(s: &tokio::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.try_read(&mut b) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn p(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn print(what: &str, sorted: &[Duration]) {
    println!(
        "  {what:<40} p50 {:6.1} ms  p99 {:6.1} ms",
        p(sorted, 0.5).as_secs_f64() * 1e3,
        p(sorted, 0.99).as_secs_f64() * 1e3
    );
}
