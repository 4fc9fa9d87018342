//! A stock BitTorrent client nobody here wrote (python3-libtorrent) dialling the control port.

use super::node::*;
use crate::common::*;
use raidtorrent_proto::CONTROL_INFO_HASH;
use std::net::SocketAddr;

/// Runs python3-libtorrent dialling the gateway; returns its event lines.
async fn libtorrent_dials(
    python: &std::path::Path,
    gw: SocketAddr,
    iface: &str,
    encryption: &str,
) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/lt_control.py");
    let port = free_port(iface);
    let run = || {
        let mut cmd = std::process::Command::new(python);
        cmd.args([script, "--iface", iface, "--port", &port.to_string()])
            .args(["--gateway", &gw.to_string()])
            .args(["--info-hash", &hex::encode(CONTROL_INFO_HASH)])
            .args(["--encryption", encryption, "--timeout", "60"]);
        // The script exits by itself within its 60 s timeout.
        cmd.output().unwrap()
    };
    let mut out = tokio::task::block_in_place(run);
    // python3-libtorrent 2.0.8 has been seen to die by a signal, silently, inside its encrypted
    // handshake (once, in a loaded CI run). That says nothing about the gateway: such a run is
    // tried once more, and a second death fails the test.
    if std::os::unix::process::ExitStatusExt::signal(&out.status).is_some() {
        eprintln!("libtorrent died ({}); once more", out.status);
        out = tokio::task::block_in_place(run);
    }
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "libtorrent did not connect and get closed: {}",
        out.status
    );
    log
}

/// python3-libtorrent dials the control port: in plain text it gets our BEP 3 handshake and BEP 10
/// extended handshake, then a clean close when the gateway learns it is no node; with its
/// encrypted handshake (MSE, which the control port does not speak) it gets a clean close. A node
/// still gets in afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_gets_a_valid_handshake_and_nothing_breaks() {
    let Some(python) = python_libtorrent() else {
        return;
    };
    let gw = Gateway::start(quick()).await;
    let log = libtorrent_dials(&python, gw.addr, "127.0.0.41", "disabled").await;
    // libtorrent accepted our handshake (the control info-hash, our peer id `-RG0100-`) ...
    assert!(log.contains("info_hash received"), "handshake not accepted");
    assert!(
        log.contains("received peer_id: 2d5247303130302d"),
        "our peer id not seen"
    );
    assert!(log.contains("connection ready"), "handshake not completed");
    // ... and parsed our extended handshake ...
    assert!(
        log.contains("'rt_placement': 3"),
        "extended handshake not parsed"
    );
    // ... and the gateway closed with a FIN, not a reset.
    let closed = log.lines().find(|l| l.starts_with("DISCONNECTED")).unwrap();
    assert!(closed.contains("End of file"), "{closed}");
    assert!(gw.hub.connected().is_empty());

    let log = libtorrent_dials(&python, gw.addr, "127.0.0.42", "enabled").await;
    assert!(log.contains("initiating encrypted handshake"));
    let closed = log.lines().find(|l| l.starts_with("DISCONNECTED")).unwrap();
    assert!(closed.contains("End of file"), "{closed}");

    // The listener still serves nodes.
    let (id, key) = gw.node("alpha").await;
    let mut node = RawNode::connect(gw.addr, id, &key).await;
    node.ping().await;
    gw.shutdown().await;
}
