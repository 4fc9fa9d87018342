//! Shard torrents as tools nobody here wrote see them: transmission-show reads the metainfo and
//! python3-libtorrent reads it and hash-checks the shard data against it.
//!
//! When a tool is missing the test is skipped with a message, unless `RAIDTORRENT_REQUIRE_TOOLS=1`
//! (set by `.ci/run`, which installs them), where a missing tool fails the test.

use std::path::Path;
use std::process::Command;

use raidtorrent_codec::*;
use raidtorrent_testkit::{python_libtorrent, random_bytes, tool_works};

/// Encodes an object and writes each shard and its .torrent into `dir`.
fn write_shards(dir: &Path, len: usize, k: u16, m: u16) -> Vec<ShardInfo> {
    let object = random_bytes(len, len as u64);
    let geometry = Geometry::choose(k, m, 1 << 20, Some(len as u64)).unwrap();
    let key = DataKey::generate().unwrap();
    let mut shards = vec![Vec::new(); geometry.shard_count()];
    let encoded = encode(geometry, &key, &object[..], &mut shards).unwrap();
    let infos = encoded.shard_infos();
    let trackers = vec![vec!["http://127.0.0.1:1/announce/passkey".to_string()]];
    for (info, data) in infos.iter().zip(&shards) {
        std::fs::write(dir.join(&info.name), data).unwrap();
        std::fs::write(
            dir.join(format!("{}.torrent", info.name)),
            info.to_torrent(&trackers),
        )
        .unwrap();
    }
    infos
}

#[test]
fn transmission_show_reads_shard_torrents() {
    if !tool_works(
        "transmission-show",
        Command::new("transmission-show").arg("--version"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for info in write_shards(dir.path(), 3_000_000, 4, 2) {
        let out = Command::new("transmission-show")
            .arg(dir.path().join(format!("{}.torrent", info.name)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Hash: {}", info.info_hash())),
            "{text}"
        );
        assert!(text.contains(&format!("Name: {}", info.name)), "{text}");
        assert!(text.contains("Privacy: Private torrent"), "{text}");
        assert!(
            text.contains(&format!("Piece Count: {}", info.pieces.len())),
            "{text}"
        );
        let kib = info.piece_length / 1024;
        assert!(
            text.contains(&format!("Piece Size: {kib}.00 KiB")),
            "{text}"
        );
        assert!(
            text.contains("http://127.0.0.1:1/announce/passkey"),
            "{text}"
        );
    }
}

const LIBTORRENT_CHECK: &str = r#"
import sys, time, libtorrent as lt
torrent, save_path = sys.argv[1], sys.argv[2]
ti = lt.torrent_info(torrent)
print("infohash", str(ti.info_hashes().v1))
print("piece_length", ti.piece_length())
print("total_size", ti.total_size())
print("num_pieces", ti.num_pieces())
print("private", int(ti.priv()))
s = lt.session({"enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
                "listen_interfaces": "127.0.0.1:0",
                "alert_mask": lt.alert.category_t.status_notification})
h = s.add_torrent({"ti": ti, "save_path": save_path})
deadline = time.time() + 60
checked = False
while not checked and time.time() < deadline:
    s.wait_for_alert(1000)
    checked = any(isinstance(a, lt.torrent_checked_alert) for a in s.pop_alerts())
assert checked, "libtorrent never finished checking"
print("verified_pieces", h.status().num_pieces)
"#;

#[test]
fn libtorrent_reads_shard_torrents_and_verifies_shard_data() {
    if python_libtorrent().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let infos = write_shards(dir.path(), 2_500_000, 3, 2);
    // Damage one shard: libtorrent must find exactly one bad piece there, as our decoder would.
    let damaged = &infos[4];
    let mut bytes = std::fs::read(dir.path().join(&damaged.name)).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(dir.path().join(&damaged.name), bytes).unwrap();

    for (i, info) in infos.iter().enumerate() {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", LIBTORRENT_CHECK])
            .arg(dir.path().join(format!("{}.torrent", info.name)))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        assert_eq!(field("infohash "), info.info_hash().to_hex());
        assert_eq!(field("piece_length "), info.piece_length.to_string());
        assert_eq!(field("total_size "), info.length.to_string());
        assert_eq!(field("private "), "1");
        let pieces = info.pieces.len();
        let expected = if i == 4 { pieces - 1 } else { pieces };
        assert_eq!(field("verified_pieces "), expected.to_string(), "shard {i}");
    }
}
