//! Chaos: 12 nodes in 3 zones; objects are written and read while nodes are killed and restarted
//! at random. At the end every object reads back byte-identical and every shard is back to its
//! copies. Runs `RAIDTORRENT_CHAOS_SECS` seconds of chaos (20 by default; `scripts/chaos.sh` runs
//! longer ones). The gateway's records must keep up throughout: any record the database failed to
//! write (a "database is locked", a transfer or reliability record not written) fails the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raidtorrent_tracker::gateway::GatewayError;

use super::healing::{collect, quick_health};
use raidtorrent_integration::*;
use raidtorrent_testkit::{random_bytes, wait_until, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_survive_nodes_dying_and_returning_at_random() {
    let secs: u64 = std::env::var("RAIDTORRENT_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("RAIDTORRENT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos for {secs} s, seed {seed}");
    let mut t = TestCloud::start_with(12, 3, quick_health(Duration::from_secs(1))).await;
    let gw = t.cloud.gateway.clone();
    gw.create_bucket("chaos", None).await.unwrap();

    let stored: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stats: Arc<Mutex<[u64; 4]>> = Arc::default(); // puts ok, puts refused, gets ok, gets unavailable

    // Writer: objects of 0.5 to 4 MiB, one after another.
    let writer = {
        let (gw, stored, stop, stats) = (gw.clone(), stored.clone(), stop.clone(), stats.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let len = (512 << 10) + (i * 977_231 % (7 << 19)) as usize;
                let data = random_bytes(len, seed ^ i);
                let key = format!("k{i}");
                match gw
                    .put(
                        "chaos",
                        &key,
                        std::io::Cursor::new(data.clone()),
                        Some(len as u64),
                    )
                    .await
                {
                    Ok(_) => {
                        stored.lock().unwrap().insert(key, data);
                        stats.lock().unwrap()[0] += 1;
                    }
                    // Too few nodes connected for a moment: refused whole, nothing visible.
                    Err(GatewayError::InsufficientNodes(_)) => {
                        stats.lock().unwrap()[1] += 1;
                        assert!(gw.head("chaos", &key).await.is_err());
                    }
                    Err(e) => panic!("put {key}: {e}"),
                }
                i += 1;
            }
        })
    };
    // Reader: random stored objects; a read may find too few shards online for a moment, but
    // never returns wrong bytes.
    let reader = {
        let (gw, stored, stop, stats) = (gw.clone(), stored.clone(), stop.clone(), stats.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(seed.rotate_left(7));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pick = {
                    let s = stored.lock().unwrap();
                    if s.is_empty() {
                        None
                    } else {
                        let n = rng.below(s.len() as u64) as usize;
                        s.iter().nth(n).map(|(k, v)| (k.clone(), v.clone()))
                    }
                };
                let Some((key, want)) = pick else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                match gw.get("chaos", &key, None).await {
                    Ok((_, body)) => match collect(body).await {
                        Ok(got) => {
                            assert!(got == want, "{key} read back different bytes");
                            stats.lock().unwrap()[2] += 1;
                        }
                        Err(_) => stats.lock().unwrap()[3] += 1,
                    },
                    Err(GatewayError::Unavailable(_)) => stats.lock().unwrap()[3] += 1,
                    Err(e) => panic!("get {key}: {e}"),
                }
            }
        })
    };

    // Chaos: at most two nodes down at a time (m = 2), each for 1 to 8 s.
    let mut rng = Rng::new(seed);
    let mut down: Vec<(usize, Instant)> = Vec::new();
    let (mut kills, mut restarts) = (0, 0);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let now = Instant::now();
        if let Some(pos) = down.iter().position(|(_, back)| *back <= now) {
            let (i, _) = down.swap_remove(pos);
            t.nodes[i].restart();
            restarts += 1;
        } else if down.len() < 2 && rng.below(3) == 0 {
            let i = rng.below(t.nodes.len() as u64) as usize;
            if !down.iter().any(|(d, _)| *d == i) {
                t.nodes[i].kill();
                kills += 1;
                down.push((i, now + Duration::from_millis(1000 + rng.below(7000))));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    reader.await.unwrap();
    for (i, _) in down.drain(..) {
        t.nodes[i].restart();
        restarts += 1;
    }
    for n in &t.nodes {
        assert!(
            t.cloud
                .hub
                .wait_connected(n.id, Duration::from_secs(60))
                .await
        );
    }
    let s = *stats.lock().unwrap();
    eprintln!(
        "{kills} kills, {restarts} restarts; puts {} ok, {} refused; gets {} ok, {} unavailable",
        s[0], s[1], s[2], s[3]
    );
    assert!(s[0] > 0 && s[2] > 0, "the cloud served through the chaos");

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = t.unsettled(2).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} shards not back to two copies after 180 s; first: {:#?}\nhealth: {:?}",
            left.len(),
            &left[..left.len().min(8)],
            gw.health_status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = stored.lock().unwrap().clone();
    for (key, want) in &stored {
        let (_, body) = gw.get("chaos", key, None).await.unwrap();
        assert!(
            collect(body).await.unwrap() == *want,
            "{key} differs at the end"
        );
    }
    let tc = &t;
    wait_until(
        Duration::from_secs(60),
        "no node keeps a copy the gateway does not record",
        || async move { tc.untracked().await.is_empty() },
    )
    .await;
    eprintln!("health at the end: {:?}", gw.health_status());
    records_were_all_written();
}

/// What the gateway logs when a record does not reach the database.
const RECORD_FAILURES: &[&str] = &[
    "database is locked",
    "database table is locked",
    "transfer outcome not recorded",
    "writing reliability records failed",
];

fn records_were_all_written() {
    assert!(logs::capture(), "the gateway's warnings were not captured");
    let mut failures = std::collections::BTreeSet::new();
    for pattern in RECORD_FAILURES {
        let found = logs::matching(pattern);
        eprintln!("records: {} warnings with {pattern:?}", found.len());
        failures.extend(found);
    }
    let failures: Vec<String> = failures.into_iter().collect();
    assert!(
        failures.is_empty(),
        "{} records not written; first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
