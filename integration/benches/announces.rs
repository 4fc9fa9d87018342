//! The announces a tracker must carry for the copies its nodes hold, with nodes that announce
//! every shard they hold (the baseline: `--announce-held`, as plain BitTorrent clients do)
//! against nodes that announce nothing they hold and are named from their reports (the default,
//! BEP RT-0002 "Peers from reports"), in one run.
//!
//! For each: a gateway with 6 nodes in 3 zones stores objects of (4, 2) x 2 copies; the tracker
//! asks nodes to announce every `INTERVAL` seconds; the announces it answers are counted while the
//! objects are stored and over the next `WINDOW` seconds. A stock client then asks the tracker for
//! one shard's peers, to show that the holders are still named. Prints announces per held copy
//! per hour and what that means for 100,000 nodes holding 10,000 shards each at the default
//! two-hour node interval.
//!
//! `cargo bench -p raidtorrent-integration --bench announces` (`-- --test` runs a small, quick
//! version).

use std::time::{Duration, Instant};

use raidtorrent_integration::TestCloud;
use raidtorrent_testkit::random_bytes;
use raidtorrent_tracker::gateway::BucketPolicy;
use raidtorrent_tracker::metrics::metrics;
use raidtorrent_tracker::protocol::{Event, PeerId};
use raidtorrent_tracker::swarm::Family;
use raidtorrent_tracker::tracker::AnnounceInput;

/// The node interval (and min interval) the tracker asks for, in seconds.
const INTERVAL: u32 = 5;
/// The default node interval, for the extrapolation.
const DEFAULT_INTERVAL: f64 = 7200.0;
/// Copies held at the scale the extrapolation is for: 100,000 nodes x 10,000 shards.
const AT_SCALE: f64 = 1e9;

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (objects, window) = if quick {
        (3, 2 * INTERVAL)
    } else {
        (30, 6 * INTERVAL)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!(
            "announces: 6 nodes, {objects} objects of (4,2) x 2, node interval {INTERVAL} s, \
             counted while storing and for {window} s after"
        );
        let baseline = run(objects, window, &["--announce-held"]).await;
        let reports = run(objects, window, &[]).await;
        for (name, r) in [
            ("every held shard announced", &baseline),
            ("named from reports", &reports),
        ] {
            println!(
                "  {name:27} {:6} copies, {:6} announces storing, {:6} in the window \
                 ({:8.2} per copy per hour); a stranger gets {} peer(s) of a shard",
                r.copies, r.storing, r.window, r.per_copy_hour, r.named
            );
            println!(
                "  {:27} at 100,000 nodes x 10,000 shards, {DEFAULT_INTERVAL} s interval: \
                 {:.0} announces/s",
                "",
                r.per_copy_hour * f64::from(INTERVAL) / DEFAULT_INTERVAL * AT_SCALE / 3600.0
            );
        }
        let ratio = reports.per_copy_hour / baseline.per_copy_hour.max(f64::MIN_POSITIVE);
        println!("  announce rate from reports / baseline = {ratio:.3}x");
        // Both must still name every holder of a shard (two copies) to a stranger.
        assert!(
            baseline.named >= 2 && reports.named >= 2,
            "holders not named"
        );
    });
}

struct Run {
    copies: usize,
    storing: u64,
    window: u64,
    per_copy_hour: f64,
    named: usize,
}

async fn run(objects: usize, window: u32, node_args: &[&str]) -> Run {
    let t = TestCloud::start_custom(
        6,
        3,
        |c| {
            // Strangers are served without a token, so the bench can ask as one.
            c.open = true;
            c.announce.node_interval_secs = INTERVAL;
            c.announce.min_interval_secs = INTERVAL;
        },
        |_| {},
        node_args,
    )
    .await;
    let gw = t.cloud.gateway.clone();
    let policy = BucketPolicy {
        k: 4,
        m: 2,
        copies: 2,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("bench", Some(policy)).await.unwrap();
    let announces = || metrics().announces.total();
    let before = announces();
    for i in 0..objects {
        let data = random_bytes(1 << 20, i as u64);
        let key = format!("o{i}");
        gw.put("bench", &key, std::io::Cursor::new(data), None)
            .await
            .unwrap();
    }
    let stored = announces();
    // Measuring a rate takes the time it measures.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(window.into())).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = announces();
    let mut copies = 0;
    let first = gw.meta().object("bench", "o0").await.unwrap();
    let shards = gw.meta().shards_of(first.id).await.unwrap();
    for i in 0..objects {
        let row = gw.meta().object("bench", &format!("o{i}")).await.unwrap();
        for s in gw.meta().shards_of(row.id).await.unwrap() {
            copies += gw.meta().holders(&s.info_hash).await.unwrap().len();
        }
    }
    let named = stranger_peers(&t, shards[0].info_hash);
    let window = after - stored;
    Run {
        copies,
        storing: stored - before,
        window,
        per_copy_hour: window as f64 / copies.max(1) as f64 / elapsed * 3600.0,
        named,
    }
}

/// How many peers a stock client's announce for `ih` is given.
fn stranger_peers(t: &TestCloud, ih: raidtorrent_codec::InfoHash) -> usize {
    let tracker = t.cloud.service.tracker();
    let req = AnnounceInput {
        passkey: None,
        info_hash: ih,
        peer_id: PeerId(*b"-TR3000-benchmark000"),
        addr: "127.0.0.99:7000".parse().unwrap(),
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        numwant: None,
        family: Family::Any,
    };
    let mut out = Vec::new();
    match tracker.announce(&req, &mut out) {
        Ok(_) => out.len(),
        Err(e) => panic!("the tracker refused a stranger: {e}"),
    }
}
