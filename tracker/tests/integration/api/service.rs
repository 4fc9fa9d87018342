//! `raidtorrent-tracker serve` with `[objects]` on: the real binary serves the object API beside
//! the tracker, asks for its keys, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::*;

const SERVICE_KEY: &str = "service-test-key-0123456789";

#[tokio::test]
async fn serve_runs_the_object_api_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let toml = format!(
        "http_listen = \"127.0.0.1:0\"\nudp_listen = \"off\"\ndb = {:?}\n\n[objects]\n\
         api_listen = \"127.0.0.1:0\"\napi_keys = [\"{SERVICE_KEY}\"]\n\
         control_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        dir.path().join("gateway.db"),
        dir.path().join("gateway"),
    );
    std::fs::write(&config, toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raidtorrent-tracker"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let api = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.recv())
            .await
            .expect("the service logs its object API address")
            .expect("the service is running");
        if line.contains("object API serving") {
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("api="))
                .unwrap();
            break format!("http://{addr}");
        }
    };
    let client = reqwest::Client::new();
    let anonymous = client.get(format!("{api}/")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let put = |path: &str, body: &'static [u8]| {
        client
            .put(format!("{api}{path}"))
            .bearer_auth(SERVICE_KEY)
            .body(body)
            .send()
    };
    assert_eq!(put("/served", b"").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        put("/served/hello.txt", b"hello").await.unwrap().status(),
        StatusCode::OK
    );
    let got = client
        .get(format!("{api}/served/hello.txt"))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap(), "hello");

    // SAFETY: the pid of the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
}
