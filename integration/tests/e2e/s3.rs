//! The S3 API driven by clients nobody here wrote — boto3, aws-cli, rclone and s3cmd, through
//! `integration/s3/s3_clients.py` — against a real gateway and real node processes. Each run
//! ends with every bucket it made deleted, so afterwards no shard may be left on any node:
//! deletes, overwrites, aborted multipart uploads and replaced parts all leave the nodes.
//! `tls.rs` runs the script's `tls` section against a gateway serving S3 over HTTPS.

use std::process::Command;
use std::time::Duration;

use raidtorrent_integration::*;
use raidtorrent_testkit::{tool, tool_works, wait_until};
use raidtorrent_tracker::gateway::ALL_BUCKETS;

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/s3/s3_clients.py");

/// The virtual-host domain the test clouds serve (at the S3 listener's port): the script
/// resolves names under it to the endpoint's address itself.
const VHOST_DOMAIN: &str = "s3.test";

/// Whether the clients `sections` need are installed (else skipped, or failed under
/// `RAIDTORRENT_REQUIRE_TOOLS=1`).
pub fn clients_present(sections: &[&str]) -> bool {
    let mut ok = tool_works(
        "python3 with boto3",
        Command::new("python3").args(["-c", "import boto3"]),
    );
    for (section, name, path) in [
        ("awscli", "aws-cli", "aws"),
        ("rclone", "rclone", "rclone"),
        ("s3cmd", "s3cmd", "s3cmd"),
    ] {
        if sections.contains(&section) {
            ok &= tool_works(name, Command::new(path).arg("--version"));
        }
    }
    ok && tool("curl", "/usr/bin/curl").is_some()
}

/// Runs the script's `sections` against `t`'s S3 API with a fresh key (and a revoked one).
async fn run_clients(t: &TestCloud, sections: &[&str]) {
    let keys = t.cloud.gateway.access_keys();
    let every = [ALL_BUCKETS.to_owned()];
    let (key, secret) = keys.create("clients", &every, None).await.unwrap();
    let (revoked, revoked_secret) = keys.create("revoked", &every, None).await.unwrap();
    keys.revoke(&revoked.access_key).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let addr = t.cloud.s3_addr.expect("the S3 API is served");
    let endpoint = format!("http://{addr}");
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT)
        .args(sections)
        .env("S3_ENDPOINT", &endpoint)
        .env("S3_VHOST_DOMAIN", format!("{VHOST_DOMAIN}:{}", addr.port()))
        .env("S3_ACCESS_KEY", &key.access_key)
        .env("S3_SECRET_KEY", &secret)
        .env("S3_REVOKED_ACCESS_KEY", &revoked.access_key)
        .env("S3_REVOKED_SECRET_KEY", &revoked_secret)
        .env("S3_BIG_MIB", "200")
        .env("S3_WORKDIR", work.path());
    // The clients run for minutes on a thread of their own while the gateway serves them.
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .unwrap()
        .expect("python3 runs");
    assert!(
        status.success(),
        "S3 clients failed against {endpoint}: {status}"
    );
}

/// Once the clients deleted everything they made, every shard leaves the nodes.
async fn nothing_left(t: &TestCloud) {
    wait_until(
        Duration::from_secs(120),
        "no shard file is left on any node once every bucket was emptied",
        || async { t.shard_files() == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_aws_cli_use_the_s3_api() {
    let sections = ["boto3", "awscli", "presign", "auth", "vhost"];
    if !clients_present(&sections) {
        return;
    }
    let vhost = |c: &mut raidtorrent_tracker::config::Config| {
        c.objects.s3_domain = VHOST_DOMAIN.to_owned();
    };
    let t = TestCloud::start_custom(6, 3, vhost, |_| {}, &[]).await;
    run_clients(&t, &sections).await;
    nothing_left(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_and_s3cmd_sync_trees_through_the_s3_api() {
    let sections = ["rclone", "s3cmd"];
    if !clients_present(&sections) {
        return;
    }
    let t = TestCloud::start(6, 3).await;
    run_clients(&t, &sections).await;
    nothing_left(&t).await;
}
