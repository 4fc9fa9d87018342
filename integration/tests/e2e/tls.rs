//! A gateway serving TLS on its control listener, tracker, object API and S3 API (a certificate
//! it created itself), nodes pinning that certificate, and curl and boto3 as the clients: objects
//! go in and come back over HTTPS, the nodes' librqbit sessions announce over HTTPS (asked to announce what
//! they hold, since by default they announce nothing they were given peers for), and a node
//! pinning another certificate never gets in.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use raidtorrent_integration::process::{GatewayProcess, ProcessNode, API_KEY};
use raidtorrent_testkit::{free_port, random_bytes, tool, wait_until};
use raidtorrent_tracker::net::TlsIdentity;

/// `curl` trusting only `cert`, with the API key; the exit status and the body.
fn curl(cert: &Path, args: &[&str]) -> (bool, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "60"])
        .arg("--cacert")
        .arg(cert)
        .args(["-H", &format!("Authorization: Bearer {API_KEY}")])
        .args(args)
        .output()
        .expect("curl runs");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), out.stdout)
}

/// boto3 against the S3 listener over HTTPS, trusting only the gateway's certificate
/// (`s3_clients.py tls`); skipped without boto3, failed then under `RAIDTORRENT_REQUIRE_TOOLS=1`.
async fn s3_over_tls(gw: &GatewayProcess, cert: &Path) {
    if !crate::s3::clients_present(&["tls"]) {
        return;
    }
    let made = gw.s3_key(&["add", "tls-client"]);
    let work = tempfile::tempdir().unwrap();
    let endpoint = format!("https://{}", gw.config.objects.s3_listen);
    let mut cmd = Command::new("python3");
    cmd.arg(crate::s3::SCRIPT)
        .arg("tls")
        .env("S3_ENDPOINT", &endpoint)
        .env("S3_ACCESS_KEY", made["access_key"].as_str().unwrap())
        .env("S3_SECRET_KEY", made["secret_key"].as_str().unwrap())
        .env("S3_CA_BUNDLE", cert)
        .env("S3_WORKDIR", work.path());
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .unwrap()
        .expect("python3 runs");
    assert!(status.success(), "boto3 over TLS failed against {endpoint}");
}

/// How many torrents the gateway's records show `node` announcing.
async fn announced(gw: &GatewayProcess, node: i64) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&gw.config.db)
        .read_only(true);
    let Ok(pool) = sqlx::SqlitePool::connect_with(options).await else {
        return 0;
    };
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM node_torrents WHERE node_id = ?")
        .bind(node)
        .fetch_one(&pool)
        .await
        .unwrap_or((0,));
    pool.close().await;
    n.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_cloud_stores_and_serves_and_refuses_a_wrongly_pinned_node() {
    if tool("curl", "/usr/bin/curl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::new(dir.path(), |c| {
        c.tls.enabled = true;
        c.objects.s3_listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        c.objects.default_policy.k = 2;
        c.objects.default_policy.m = 1;
        c.objects.default_policy.copies = 1;
        c.objects.default_policy.inline_max = 0;
    });
    let nodes: Vec<ProcessNode> = (0..3)
        .map(|i| {
            let (name, zone) = (format!("node-{i}"), format!("zone-{i}"));
            let cert = gw.tls_cert();
            ProcessNode::start_pinned(&gw, &name, &zone, cert.as_deref(), &["--announce-held"])
        })
        .collect();
    let other = dir.path().join("other");
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    TlsIdentity::load_or_create(&other.join("cert.pem"), &other.join("key.pem"), &names).unwrap();
    let impostor = ProcessNode::start_pinned(
        &gw,
        "wrong-pin",
        "zone-x",
        Some(&other.join("cert.pem")),
        &[],
    );
    gw.start().await;
    let cert = gw.tls_cert().unwrap();
    let nodes = &nodes;
    wait_until(
        Duration::from_secs(60),
        "every pinned node connected",
        || async move { nodes.iter().all(|n| n.connected().is_some()) },
    )
    .await;

    let api = format!("https://{}", gw.api_addr);
    let body = random_bytes(300 << 10, 11);
    let file = dir.path().join("object.bin");
    std::fs::write(&file, &body).unwrap();
    let (ok, _) = curl(&cert, &["-X", "PUT", &format!("{api}/tls")]);
    assert!(ok, "bucket created over HTTPS");
    let upload = format!("@{}", file.display());
    let (ok, _) = curl(
        &cert,
        &[
            "--data-binary",
            &upload,
            "-X",
            "PUT",
            &format!("{api}/tls/a"),
        ],
    );
    assert!(ok, "object stored over HTTPS");
    let (ok, got) = curl(&cert, &[&format!("{api}/tls/a")]);
    assert!(ok && got == body, "object read back over HTTPS");
    s3_over_tls(&gw, &cert).await;

    // The shards went to the pinned nodes, whose sessions announced them over HTTPS.
    let gw = &gw;
    wait_until(
        Duration::from_secs(60),
        "the nodes announced over HTTPS",
        || async move {
            let mut total = 0;
            for n in nodes {
                total += announced(gw, n.id).await;
            }
            total >= 3
        },
    )
    .await;

    // Plain HTTP gets no answer from the TLS listener; curl without the certificate refuses it.
    let plain = Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "10",
            &format!("http://{}/tls/a", gw.api_addr),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP answered");
    let untrusted = Command::new("curl")
        .args(["--silent", "--max-time", "10", &format!("{api}/_health")])
        .env("SSL_CERT_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "an unknown certificate was trusted"
    );

    // The node pinning another certificate is told why and never connects.
    let impostor = &impostor;
    wait_until(
        Duration::from_secs(30),
        "the wrong pin is reported",
        || async move {
            let status = impostor.status().unwrap_or_default();
            let error = status["gateways"][0]["last_error"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            error.contains("pinned")
        },
    )
    .await;
    assert!(impostor.connected().is_none());
    assert_eq!(announced(gw, impostor.id).await, 0);
}
