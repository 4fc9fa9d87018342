//! The operator view against a real gateway and real node processes, driven by tools nobody here
//! wrote: the dashboard in headless Chromium (Playwright), `/metrics` read with the Prometheus
//! client library's own parser, and an object's exported shards fetched from the nodes through
//! the tracker and hash-checked by libtorrent and aria2c, and parsed by transmission-show.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use raidtorrent_integration::*;
use raidtorrent_testkit::{
    python_libtorrent, random_bytes, tool, tool_works, wait_until, workspace_binary,
};
use raidtorrent_tracker::gateway::BucketPolicy;

const OPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ops");

fn script(name: &str) -> String {
    format!("{OPS}/{name}")
}

fn policy() -> BucketPolicy {
    BucketPolicy {
        k: 2,
        m: 1,
        copies: 2,
        high_share: 0.0,
        inline_max: 0,
    }
}

/// Stores `object` at `ops/o` through the native object API, as a client would.
async fn put_through_api(t: &TestCloud, key: &str, object: Vec<u8>) {
    let url = format!("http://{}/ops/{key}", t.cloud.api_addr);
    let res = reqwest::Client::new()
        .put(&url)
        .body(object)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "PUT {url}: {}", res.status());
}

async fn admin_json(t: &TestCloud, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}{path}", t.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn run(cmd: &mut Command, what: &str) {
    let out = tokio::task::block_in_place(|| cmd.output()).expect("the check runs");
    eprintln!(
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {}", out.status);
}

fn snapshot(t: &TestCloud, out: &Path) {
    let url = format!("{}/metrics", t.admin_url());
    run(
        Command::new("python3")
            .arg(script("metrics_check.py"))
            .args(["snapshot", "--url", &url, "--token", ADMIN_TOKEN, "--out"])
            .arg(out),
        "metrics snapshot",
    );
}

fn playwright_present() -> bool {
    tool("chromium", "/usr/bin/chromium").is_some()
        && tool_works(
            "python3 with playwright and prometheus_client",
            Command::new("python3").args(["-c", "import playwright, prometheus_client"]),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_metrics_show_the_cloud_and_follow_it() {
    if !playwright_present() {
        return;
    }
    let mut t = TestCloud::start(4, 2).await;
    t.cloud
        .gateway
        .create_bucket("ops", Some(policy()))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (before, after) = (
        work.path().join("before.json"),
        work.path().join("after.json"),
    );
    snapshot(&t, &before);
    put_through_api(&t, "photos/cat.jpg", random_bytes(3 << 20, 11)).await;
    let got = reqwest::get(format!("http://{}/ops/photos/cat.jpg", t.cloud.api_addr))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), 3 << 20);
    wait_until(
        Duration::from_secs(60),
        "the health pass counts the object",
        || async { admin_json(&t, "/admin/cloud").await["objects"]["total"] == 1 },
    )
    .await;
    snapshot(&t, &after);
    run(
        Command::new("python3")
            .arg(script("metrics_check.py"))
            .args(["moved", "--before"])
            .arg(&before)
            .arg("--after")
            .arg(&after)
            .args([
                "--expect",
                "raidtorrent_api_requests{api=native,route=put_object,status=200}>=1",
                "--expect",
                "raidtorrent_api_requests{api=native,route=get_object,status=200}>=1",
                &format!(
                    "--expect=raidtorrent_object_bytes{{direction=in}}>={}",
                    3 << 20
                ),
                &format!(
                    "--expect=raidtorrent_object_bytes{{direction=out}}>={}",
                    3 << 20
                ),
                // No announce: nodes fetch from the peers a hold names and announce nothing
                // (RT-0002), so only another test's stock clients could move that counter here.
            ]),
        "metrics moved",
    );
    drive_dashboard(&mut t).await;
}

/// Runs the browser check; when it is ready, kills the node it names and tells it so.
async fn drive_dashboard(t: &mut TestCloud) {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let url = t.admin_url();
    let mut child = Command::new("python3")
        .arg(script("dashboard_check.py"))
        .args([
            "--url",
            &url,
            "--token",
            ADMIN_TOKEN,
            "--object",
            "ops/photos/cat.jpg",
        ])
        .args(["--nodes", &t.nodes.len().to_string(), "--screenshots"])
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    tokio::task::block_in_place(|| {
        for line in stdout.lines() {
            let line = line.unwrap();
            eprintln!("dashboard: {line}");
            if let Some(id) = line.strip_prefix("READY-TO-KILL ") {
                let id: i64 = id.trim().parse().expect("a node id");
                let node = t
                    .nodes
                    .iter_mut()
                    .find(|n| n.id == id)
                    .expect("one of ours");
                node.kill();
                writeln!(stdin, "killed").unwrap();
                stdin.flush().unwrap();
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "the dashboard check failed: {status}");
    });
    eprintln!("dashboard screenshots in {}", shots.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_shards_are_fetched_and_checked_by_stock_clients() {
    let Some(python) = python_libtorrent() else {
        return;
    };
    if tool("aria2c", "/usr/bin/aria2c").is_none()
        || tool("transmission-show", "/usr/bin/transmission-show").is_none()
    {
        return;
    }
    let t = TestCloud::start(3, 3).await;
    t.cloud
        .gateway
        .create_bucket("ops", Some(policy()))
        .await
        .unwrap();
    put_through_api(&t, "dir/report 1.pdf", random_bytes(5 << 20, 12)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("torrents");
    run(
        Command::new(workspace_binary(
            "raidtorrent-tracker",
            "raidtorrent-tracker",
        ))
        .args(["shards", "ops/dir/report 1.pdf", "--ttl", "600", "--out"])
        .arg(&out)
        .args(["--gateway", &t.admin_url(), "--admin-token", ADMIN_TOKEN]),
        "raidtorrent-tracker shards",
    );
    let torrents = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(torrents, 3, "one torrent per shard (k + m = 3)");
    run(
        Command::new(python)
            .arg(script("inspect_shards.py"))
            .arg("--dir")
            .arg(&out)
            .arg("--work")
            .arg(dir.path().join("work"))
            .args(["--timeout", "90", "--client", "all"]),
        "stock clients on the exported shards",
    );
    // The inspector fetched as a stranger: no node record was made for it.
    let fleet = admin_json(&t, "/admin/fleet").await;
    assert_eq!(fleet["nodes"].as_array().unwrap().len(), 3);
}
