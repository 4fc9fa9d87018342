//! `raidtorrent-tracker devnet`, as a user runs it: the real binary starts a gateway and three
//! real node processes, prints its commands, stores and serves an object through the nodes, and
//! stops every process it started on SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raidtorrent_testkit::peer_binary;
use reqwest::{header, StatusCode};

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_starts_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raidtorrent-tracker"))
        .args(["devnet", "--nodes", "3", "--api-listen", "127.0.0.1:0"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--peer-bin")
        .arg(peer_binary())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let mut api = None;
    let mut node_pids = Vec::new();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tokio::time::timeout(left, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("devnet not ready; it printed {printed:#?}"))
            .unwrap_or_else(|| panic!("devnet exited; it printed {printed:#?}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["object", "API", url, ..] = words.as_slice() {
            api = Some(url.to_string());
        }
        if let Some(i) = words.iter().position(|w| *w == "pid") {
            node_pids.push(words[i + 1].parse::<i32>().unwrap());
        }
        let done = line.starts_with("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let api = api.expect("the object API's address is printed");
    assert_eq!(node_pids.len(), 3, "{printed:#?}");
    assert!(
        printed.iter().any(|l| l.contains("curl -fsS -T")),
        "{printed:#?}"
    );

    // Larger than what is packed, so the bytes go to the nodes and back.
    let data: Vec<u8> = (0..1_300_007u32)
        .map(|i| (i * 31 + i / 977) as u8)
        .collect();
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{api}/demo/dir/object.bin"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        StatusCode::OK,
        "{}",
        put.text().await.unwrap()
    );
    let info: serde_json::Value = put.json().await.unwrap();
    assert_eq!(info["inline"], false, "{info}");
    assert_eq!(info["storage"], "swarm", "{info}");
    let got = client
        .get(format!("{api}/demo/dir/object.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        got.bytes().await.unwrap() == data,
        "object read back differs"
    );
    let part = client
        .get(format!("{api}/demo/dir/object.bin"))
        .header(header::RANGE, "bytes=131071-196609")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert!(part.bytes().await.unwrap() == data[131_071..196_610]);

    // A small object above the inline limit is acknowledged at once and waits for its pack.
    let small = &data[..5_000];
    let put = client
        .put(format!("{api}/demo/small.bin"))
        .body(small.to_vec())
        .send()
        .await
        .unwrap();
    let info: serde_json::Value = put.json().await.unwrap();
    assert_eq!(info["storage"], "waiting", "{info}");
    let got = client
        .get(format!("{api}/demo/small.bin"))
        .send()
        .await
        .unwrap();
    assert!(got.bytes().await.unwrap() == small);

    // SIGINT, as Ctrl-C sends: the devnet stops its nodes and exits cleanly.
    // SAFETY: the pid of the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "devnet did not stop on SIGINT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
    for pid in node_pids {
        assert!(!alive(pid), "node process {pid} outlived the devnet");
    }
}
