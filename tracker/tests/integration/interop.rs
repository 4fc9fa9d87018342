//! Stock BitTorrent clients nobody here wrote, on loopback, each on its own 127.0.0.x with
//! DHT, LSD, UPnP and PEX off, so peers can only come from this tracker.

use crate::common::*;
use raidtorrent_tracker::protocol::InfoHash;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const LT_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/lt_client.py");

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, name }
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn expect(&self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => eprintln!("{}: {line}", self.name),
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {secs} s",
                    self.name
                ),
            }
        }
    }

    /// Waits for the process to exit; returns its success.
    fn wait(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {secs} s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn libtorrent(torrent: &Path, save: &Path, iface: &str, until: &str) -> Proc {
    Proc::spawn(
        "libtorrent",
        Command::new(PYTHON)
            .arg(LT_CLIENT)
            .arg("--torrent")
            .arg(torrent)
            .arg("--save")
            .arg(save)
            .args(["--iface", iface, "--port", &free_port(iface).to_string()])
            .args(["--until", until, "--timeout", "180"]),
    )
}

async fn scrape(t: &TestTracker, key: &str, ih: &[u8; 20]) -> (i64, i64, i64) {
    let (_, body) = get(t.http, &format!("/scrape/{key}?info_hash={}", enc(ih))).await;
    let v = decode(&body);
    let f = v
        .get("files")
        .and_then(|f| f.get(std::str::from_utf8(ih).unwrap_or_default()))
        .cloned();
    match f {
        Some(f) => (f.int("complete"), f.int("incomplete"), f.int("downloaded")),
        None => {
            // Non-UTF-8 info-hash: look the single entry up directly.
            let Some(Value::Dict(files)) = v.get("files") else {
                panic!("scrape: {v:?}")
            };
            let f = files.get(ih.as_slice()).expect("hash in scrape");
            (f.int("complete"), f.int("incomplete"), f.int("downloaded"))
        }
    }
}

/// libtorrent seeds, aria2c downloads through the tracker; scrape counts follow; a client with
/// a wrong announce token is refused.
#[tokio::test(flavor = "multi_thread")]
async fn libtorrent_seeds_aria2_downloads() {
    let Some(aria2) = tool("aria2c", "/usr/bin/aria2c") else {
        return;
    };
    if python_libtorrent().is_none() {
        return;
    }
    let t = TestTracker::start(test_config(false)).await;
    let (_, lt_key) = t.node("libtorrent").await;
    let (aria_id, aria_key) = t.node("aria2").await;
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::create_dir_all(&leech_dir).unwrap();
    let data = random_bytes(2 * 1024 * 1024 + 77, 11);
    std::fs::write(seed_dir.join("object.bin"), &data).unwrap();
    let write_torrent = |name: &str, key: &str| {
        let (bytes, ih) = make_torrent("object.bin", &data, &t.announce_url(key), true);
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (path, ih)
    };
    let (lt_torrent, ih) = write_torrent("lt.torrent", &lt_key);
    let (aria_torrent, _) = write_torrent("aria.torrent", &aria_key);
    let (bad_torrent, _) = write_torrent("bad.torrent", "0000000000000000ffffffffffffffff");

    let seeder = libtorrent(&lt_torrent, &seed_dir, "127.0.0.2", "forever");
    seeder.expect("TRACKER_REPLY", 60);
    let tracker = t.service.tracker().clone();
    wait_until(
        Duration::from_secs(60),
        "libtorrent seeds in the swarm",
        || {
            let tracker = tracker.clone();
            async move { tracker.swarms().counts(&InfoHash(ih)).complete == 1 }
        },
    )
    .await;

    let mut aria = Proc::spawn(
        "aria2c",
        Command::new(aria2)
            .args([
                "--interface=127.0.0.3",
                "--disable-ipv6=true",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--seed-time=0",
                "--summary-interval=0",
                "--console-log-level=warn",
                "--file-allocation=none",
            ])
            .arg(format!("--listen-port={}", free_port("127.0.0.3")))
            .arg(format!("--dir={}", leech_dir.display()))
            .arg(&aria_torrent),
    );
    assert!(aria.wait(150), "aria2c failed to download");
    assert!(
        std::fs::read(leech_dir.join("object.bin")).unwrap() == data,
        "aria2c's copy differs"
    );
    // aria2 finished and left (stopped): one seeder remains, one completed download.
    let counts = wait_for(
        Duration::from_secs(30),
        "aria2's completion in scrape",
        || async {
            let c = scrape(&t, &lt_key, &ih).await;
            (c == (1, 0, 1)).then_some(c)
        },
    )
    .await;
    assert_eq!(counts, (1, 0, 1));
    t.service.recorder().flush().await.unwrap();
    let r = admin_json(t.http, &format!("/admin/nodes/{aria_id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 2, "{r}");
    assert_eq!(
        r["last_addr"].as_str().unwrap().split(':').next(),
        Some("127.0.0.3")
    );

    let refused = libtorrent(&bad_torrent, &leech_dir, "127.0.0.5", "error");
    let line = refused.expect("TRACKER_ERROR", 60);
    assert!(line.contains("unknown announce token"), "{line}");
    drop(seeder);
    t.service.shutdown().await;
}

/// libtorrent announces over UDP with its announce token in BEP 41 URL data.
#[tokio::test(flavor = "multi_thread")]
async fn libtorrent_private_udp_announce() {
    if python_libtorrent().is_none() {
        return;
    }
    let t = TestTracker::start(test_config(false)).await;
    let (id, key) = t.node("lt-udp").await;
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(300_000, 3);
    std::fs::write(dir.path().join("o.bin"), &data).unwrap();
    let url = format!("udp://{}/announce/{key}", t.udp);
    let (bytes, ih) = make_torrent("o.bin", &data, &url, true);
    let torrent = dir.path().join("udp.torrent");
    std::fs::write(&torrent, bytes).unwrap();
    let lt = libtorrent(&torrent, dir.path(), "127.0.0.6", "forever");
    lt.expect("TRACKER_REPLY", 60);
    let tracker = t.service.tracker().clone();
    wait_until(
        Duration::from_secs(60),
        "libtorrent has announced over UDP as a seeder",
        || {
            let tracker = tracker.clone();
            async move { tracker.swarms().counts(&InfoHash(ih)).complete == 1 }
        },
    )
    .await;
    t.service.recorder().flush().await.unwrap();
    let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 1, "{r}");
    assert_eq!(
        r["last_addr"].as_str().unwrap().split(':').next(),
        Some("127.0.0.6")
    );
    drop(lt);
    t.service.shutdown().await;
}

/// transmission-cli announces with its announce token and is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn transmission_announces() {
    let Some(transmission) = tool("transmission-cli", "/usr/bin/transmission-cli") else {
        return;
    };
    let t = TestTracker::start(test_config(false)).await;
    let (id, key) = t.node("transmission").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let download = dir.path().join("download");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&download).unwrap();
    let port = free_port("127.0.0.4");
    std::fs::write(
        config.join("settings.json"),
        format!(
            r#"{{"bind-address-ipv4": "127.0.0.4", "dht-enabled": false, "lpd-enabled": false,
                "pex-enabled": false, "utp-enabled": false, "port-forwarding-enabled": false,
                "peer-port": {port}, "peer-port-random-on-start": false}}"#
        ),
    )
    .unwrap();
    let data = random_bytes(100_000, 5);
    let (bytes, ih) = make_torrent("t.bin", &data, &t.announce_url(&key), true);
    let torrent = dir.path().join("t.torrent");
    std::fs::write(&torrent, bytes).unwrap();
    let _tr = Proc::spawn(
        "transmission-cli",
        Command::new(transmission)
            .arg("-g")
            .arg(&config)
            .arg("-w")
            .arg(&download)
            .arg(&torrent),
    );
    let tracker = t.service.tracker().clone();
    wait_until(
        Duration::from_secs(90),
        "transmission has announced",
        || {
            let tracker = tracker.clone();
            async move { tracker.swarms().counts(&InfoHash(ih)).incomplete == 1 }
        },
    )
    .await;
    t.service.recorder().flush().await.unwrap();
    let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
    assert!(r["announces"].as_i64().unwrap() >= 1, "{r}");
    assert_eq!(r["torrents_leeching"], 1, "{r}");
    t.service.shutdown().await;
}
