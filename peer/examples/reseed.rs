//! Measures what a held set costs: node memory and the time to re-seed it from disk after a restart.
//!
//! `cargo run -p raidtorrent-peer --example reseed -- DIR SHARDS BYTES` fills `DIR` with `SHARDS`
//! shards of `BYTES` each (the first time), starts a node on it, waits until every shard is verified
//! and seeding, and prints the start-up time, the process's resident memory and its open files (all
//! descriptors, and those of shard files). Run it with 0 shards for the baseline of an empty node.
//! Shard files share the node's budget of `limits.open_files` descriptors, so `ulimit -n 1024`
//! does for any number of shards. With `RESEED_ANNOUNCE=1` every shard announces to its
//! (unreachable) tracker, as with the node's `announce_held` option, to compare with the default of
//! announcing nothing. It also prints what building and encoding one report to a gateway costs:
//! the full one that opens a connection, and a later one when nothing changed. Last, with the node
//! stopped, what recording a change to the held set costs: a journal line (what a change costs)
//! and a whole snapshot (what every change cost before the journal).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use raidtorrent_codec::ShardInfo;
use raidtorrent_peer::config::{Config, Limits};
use raidtorrent_peer::fds::{open_files, open_files_under};
use raidtorrent_peer::node::Node;
use raidtorrent_peer::reported::Reported;
use raidtorrent_peer::size::ByteSize;
use raidtorrent_peer::store::{Appended, Entry, Store, StoredShard};
use raidtorrent_peer::RunningNode;
use raidtorrent_proto::{Envelope, InfoHash, Message};
use sha1::{Digest, Sha1};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn fill(store: &Store, shards: usize, bytes: usize) -> anyhow::Result<()> {
    let mut held = Vec::new();
    for i in 0..shards {
        let data: Vec<u8> = (0..bytes)
            .map(|j| (j as u32 ^ (i as u32).wrapping_mul(40503)) as u8)
            .collect();
        let info = ShardInfo {
            name: ShardInfo::random_name(),
            length: bytes as u64,
            piece_length: 16 * 1024,
            pieces: data
                .chunks(16 * 1024)
                .map(|c| Sha1::digest(c).into())
                .collect(),
        };
        let ih = info.info_hash();
        std::fs::write(store.shards_dir().join(&info.name), &data)?;
        store.write_torrent(
            &ih,
            &info.to_torrent(&[vec!["http://127.0.0.1:1/announce/x".into()]]),
        )?;
        held.push(StoredShard {
            info_hash: ih.to_hex(),
            name: info.name,
            length: bytes as u64,
            owners: BTreeSet::from(["bench".to_owned()]),
        });
    }
    store.save(held)?;
    Ok(())
}

/// What the node's reports to a gateway cost once every shard is held: the milliseconds to build
/// and encode one (the median of 21) and its size in bytes, for the full report that opens a
/// connection and for a later one when nothing changed.
fn report_cost(node: &Node) -> [(f64, usize); 2] {
    let measure = |later: bool| {
        let mut times = Vec::new();
        let mut bytes = 0;
        for seq in 0..21 {
            let mut reported = Reported::default();
            if later {
                node.report("bench", &mut reported);
            }
            let started = Instant::now();
            let report = node.report("bench", &mut reported);
            bytes = Envelope::new(seq, Message::Report(report))
                .to_payload()
                .len();
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], bytes)
    };
    [measure(false), measure(true)]
}

/// Milliseconds (median of `n`) of `f`.
fn median_ms(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        f()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[n / 2])
}

/// What recording one change to the held set costs, in milliseconds: `[journal line, snapshot]`.
fn held_set_cost(store: &Store) -> anyhow::Result<[f64; 2]> {
    let held = store.load()?;
    let snapshot = median_ms(5, || Ok(store.save(held.clone())?))?;
    let Some(one) = held.first() else {
        return Ok([0.0, snapshot]);
    };
    let line = median_ms(21, || {
        let appended = store.append(&Entry::Keep(one.clone()))?;
        anyhow::ensure!(appended == Appended::Journaled, "a snapshot was due");
        Ok(())
    })?;
    Ok([line, snapshot])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: reseed DIR SHARDS BYTES";
    let dir = PathBuf::from(args.next().expect(usage));
    let shards: usize = args.next().expect(usage).parse()?;
    let bytes: usize = args.next().expect(usage).parse()?;
    let store = Store::open(&dir)?;
    if store.load()?.len() != shards {
        fill(&store, shards, bytes)?;
    }
    let before = rss_kib();
    let started = Instant::now();
    let node = RunningNode::start(Config {
        data_dir: dir,
        quota: ByteSize(u64::MAX / 2),
        zone: String::new(),
        listen: "127.0.0.4:0".parse()?,
        gateways: Vec::new(),
        limits: Limits::default(),
        announce_held: std::env::var_os("RESEED_ANNOUNCE").is_some(),
    })
    .await?;
    let elapsed = started.elapsed();
    let status = node.node().snapshot_status();
    let held = status.shards.iter().filter(|s| s.state == "held").count();
    anyhow::ensure!(held == shards, "{held} of {shards} shards verified");
    let seeding = status
        .shards
        .iter()
        .filter_map(|s| InfoHash::from_hex(&s.info_hash))
        .filter(|ih| node.node().seeding(ih))
        .count();
    anyhow::ensure!(seeding == shards, "{seeding} of {shards} shards seeding");
    let [(full_ms, full_bytes), (later_ms, later_bytes)] = report_cost(node.node());
    let (shard_files, budget) = node.node().shard_files();
    println!(
        "shards={shards} bytes_each={bytes} reseed_secs={:.2} rss_kib={} rss_before_start_kib={before} \
         open_files={} shard_files_open={} (counted {}) shard_file_budget={budget} \
         full_report_ms={full_ms:.3} full_report_bytes={full_bytes} \
         later_report_ms={later_ms:.3} later_report_bytes={later_bytes}",
        elapsed.as_secs_f64(),
        rss_kib(),
        open_files(),
        shard_files,
        open_files_under(&store.shards_dir()),
    );
    let left = node.shutdown().await;
    anyhow::ensure!(left.is_empty(), "tasks did not stop: {left:?}");
    let [change_ms, snapshot_ms] = held_set_cost(&store)?;
    println!("held_set_change_ms={change_ms:.3} held_set_snapshot_ms={snapshot_ms:.3}");
    Ok(())
}
