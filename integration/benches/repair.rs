//! Time from a node's loss to full redundancy, against moving the same bytes over loopback, in one
//! run on one machine.
//!
//! A gateway with 7 nodes in 3 zones stores objects with (k, m) = (4, 2) and 2 copies; one node is
//! killed; the health worker (grace period 0, a pass every 100 ms, 8 repairs at once) has every
//! shard it held copied from the surviving copies onto other nodes. X is the bytes the lost node
//! held. Printed: the repair time, and its ratio to X / (raw TCP loopback bandwidth) and to a plain
//! librqbit transfer of X bytes, both measured in the same run.
//!
//! `cargo bench -p raidtorrent-integration --bench repair` (`-- --test` runs a small, quick version).

use std::time::{Duration, Instant};

use raidtorrent_integration::baseline::plain_transfer;
use raidtorrent_integration::{loopback_bandwidth, TestCloud};
use raidtorrent_testkit::{random_bytes, wait_until};
use raidtorrent_tracker::gateway::HealthConfig;
use raidtorrent_tracker::repair::PlanConfig;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (objects, size): (usize, usize) = if quick { (2, 4 << 20) } else { (8, 64 << 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut t = TestCloud::start_with(7, 3, |s| {
            s.gateway.health = HealthConfig {
                interval: Duration::from_millis(100),
                plan: PlanConfig {
                    grace_secs: 0,
                    max_tasks: 256,
                    ..PlanConfig::default()
                },
                concurrency: 8,
                audit_interval: Duration::from_secs(3600),
                ..HealthConfig::default()
            };
        })
        .await;
        let gw = t.cloud.gateway.clone();
        gw.create_bucket("bench", None).await.unwrap();
        for i in 0..objects {
            let data = random_bytes(size, 1000 + i as u64);
            gw.put(
                "bench",
                &format!("o{i}"),
                std::io::Cursor::new(data),
                Some(size as u64),
            )
            .await
            .unwrap();
        }
        let victim = t.nodes[0].id;
        let snapshot = gw.meta().health_snapshot().await.unwrap();
        let held: u64 = snapshot
            .iter()
            .flat_map(|o| &o.shards)
            .filter(|s| s.copies.iter().any(|c| c.node == victim))
            .map(|s| s.length)
            .sum();
        let copies = snapshot
            .iter()
            .flat_map(|o| &o.shards)
            .filter(|s| s.copies.iter().any(|c| c.node == victim))
            .count();

        let lost = Instant::now();
        t.nodes[0].kill();
        assert!(
            t.cloud
                .hub
                .wait_disconnected(victim, Duration::from_secs(60))
                .await
        );
        wait_until(Duration::from_secs(900), "full redundancy again", || {
            t.redundant(2)
        })
        .await;
        let repair = lost.elapsed().as_secs_f64();

        let tcp = loopback_bandwidth(held as usize);
        let plain = plain_transfer(&random_bytes(held as usize, 5)).await;
        let x_mb = held as f64 / 1e6;
        println!(
            "repair benchmark, 7 nodes in 3 zones, (4,2) x 2 copies, {objects} objects of {} MiB:",
            size >> 20
        );
        println!("  lost node held X = {x_mb:.1} MB in {copies} shard copies");
        println!(
            "  repair to full redundancy   {repair:8.2} s  ({:.1} MB/s)",
            x_mb / repair
        );
        println!(
            "  X / loopback TCP            {:8.3} s  ({:.0} MB/s)  -> repair = {:.1}x",
            held as f64 / tcp,
            tcp / 1e6,
            repair / (held as f64 / tcp)
        );
        println!(
            "  X as one plain torrent      {plain:8.2} s  ({:.1} MB/s)  -> repair = {:.2}x",
            x_mb / plain,
            repair / plain
        );
        println!("  health: {:?}", gw.health_status());
    });
}
