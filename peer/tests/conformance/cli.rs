//! The binary: `run --print-config` from flags and environment, and `status` of a node's data
//! directory.

use crate::common::*;
use raidtorrent_peer::config::Config;
use raidtorrent_proto::Message;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_raidtorrent-peer");

#[test]
fn print_config_merges_flags_and_environment() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--print-config",
            "--data-dir",
            "/srv/rt",
            "--quota",
            "10GiB",
        ])
        .args(["--gateway", &format!("7:{PASSKEY}@gw.example:7000")])
        .env("RT_ZONE", "eu/paris")
        .env("RT_LISTEN", "127.0.0.5:6881")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Config = toml::from_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    assert_eq!(config.quota.to_string(), "10GiB");
    assert_eq!(config.zone, "eu/paris");
    assert_eq!(config.listen.to_string(), "127.0.0.5:6881");
    assert_eq!(config.gateways[0].control, "gw.example:7000");
    assert_eq!(config.gateways[0].node_id, 7);

    let bad = Command::new(BIN)
        .args([
            "run",
            "--print-config",
            "--data-dir",
            "/srv/rt",
            "--quota",
            "10GiB",
            "--gateway",
            "7:short@gw:1",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("passkey must be 32 lowercase hex digits")
    );
}

#[test]
fn help_never_shows_a_passkey() {
    let out = Command::new(BIN)
        .args(["run", "--help"])
        .env("RT_GATEWAYS", format!("7:{PASSKEY}@gw.example:7000"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--gateway"), "{help}");
    assert!(!help.contains(PASSKEY), "{help}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_shards_space_gateways_and_directives() {
    let gw = TestGateway::bind().await;
    let seeder = Seeder::start().await;
    let s = shard(40_000, 8);
    seeder.seed(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(node_config(dir.path(), gw.addr(), 1 << 20)).await;
    let (mut conn, _) = gw.accept_welcomed().await;
    let seq = conn.send(hold(&s, vec![seeder.addr])).await;
    assert_eq!(conn.answer(seq).await, Message::Ack { re: seq, ih: s.ih });
    let text = wait_for(DEADLINE, "status to show the shard", || {
        let dir = dir.path().to_owned();
        async move {
            let out = Command::new(BIN)
                .arg("status")
                .arg("--data-dir")
                .arg(&dir)
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            // The directive log catches up with the held set within a status interval.
            text.contains(&format!("hold {} -> ack", s.ih))
                .then_some(text)
        }
    })
    .await;
    assert!(
        text.contains("39.1 KiB used of 1.0 MiB quota (1 held, 0 fetching)"),
        "{text}"
    );
    assert!(text.contains("test ("), "{text}");
    assert!(text.contains("connected"), "{text}");
    assert!(text.contains(&format!("hold {} -> ack", s.ih)), "{text}");
    stop_node(node).await;
    seeder.stop().await;
}
