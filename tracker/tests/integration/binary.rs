//! The `raidtorrent-tracker` binary: --print-config, operator node commands, and a SIGTERM that
//! writes the last records before exit.

use crate::common::*;
use raidtorrent_tracker::config::Config;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raidtorrent-tracker");

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn print_config_is_the_commented_default() {
    let out = Command::new(BIN).arg("--print-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# Address for HTTP announce/scrape"));
    assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
}

#[test]
fn bad_config_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[announce]\nmax_numwant = 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("announce.max_numwant must be in 1..=1000"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_and_sigterm_flush() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let db_s = db.to_str().unwrap();
    let added = run(&["node", "add", "alpha", "--db", db_s]);
    let id = added["id"].as_i64().unwrap();
    let key = added["announce_token"].as_str().unwrap().to_owned();

    // Records are flushed only at shutdown in this run: the SIGTERM path must write them.
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "http_listen = \"127.0.0.1:0\"\nudp_listen = \"127.0.0.1:0\"\n[records]\nflush_interval_ms = 3600000\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--db", db_s])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let http: std::net::SocketAddr = loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("no 'tracker serving' log line within 30 s");
            }
        };
        if let Some(i) = line.find("http_addr=Some(") {
            let rest = &line[i + "http_addr=Some(".len()..];
            break rest[..rest.find(')').unwrap()].parse().unwrap();
        }
    };
    let q = announce_query(&[9; 20], b"-rQ0910-binarybinary", 6881, 0);
    let (_, body) = get(http, &format!("/announce/{key}?{q}")).await;
    assert_eq!(decode(&body).failure(), None);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tracker did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");

    let list = run(&["node", "list", "--db", db_s]);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["announces"], 1, "{list}");
    assert_eq!(list[0]["torrents_seeding"], 1, "{list}");
    let revoked = run(&["node", "revoke", &id.to_string(), "--db", db_s]);
    assert!(revoked["revoked_at"].is_i64());
}
