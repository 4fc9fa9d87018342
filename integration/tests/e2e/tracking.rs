//! No copy stays on a node unless the gateway records it: a hold that times out is dropped, even
//! when the node finishes it later.

use std::time::Duration;

use raidtorrent_tracker::gateway::BucketPolicy;

use raidtorrent_integration::*;
use raidtorrent_testkit::{random_bytes, wait_until};

/// The directives a node's status file lists among its recent ones, as (directive, outcome).
fn recent_directives(node: &Node) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(node.dir.join("status.json")) else {
        return Vec::new();
    };
    let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    status["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (field("directive"), field("outcome"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_that_timed_out_is_dropped_from_its_node() {
    // Reconciliation waits an hour here: only the drop of the timed-out hold can clean up.
    let t = TestCloud::start_with(3, 3, |s| {
        s.gateway.hold_timeout = Duration::from_secs(3);
        s.gateway.reconcile_settle = Duration::from_secs(3600);
    })
    .await;
    let gw = t.cloud.gateway.clone();
    let policy = BucketPolicy {
        k: 2,
        m: 1,
        copies: 1,
        high_share: 0.0,
        inline_max: 0,
    };
    gw.create_bucket("tracked", Some(policy)).await.unwrap();
    // Node 2 answers nothing: its hold times out and the upload places that shard elsewhere.
    let frozen = &t.nodes[2];
    frozen.pause();
    let object = random_bytes(2 << 20, 11);
    gw.put("tracked", "o", std::io::Cursor::new(object.clone()), None)
        .await
        .unwrap();
    frozen.resume();
    // It then gets the hold, and the drop that cancels it.
    wait_until(
        Duration::from_secs(60),
        "the frozen node was told to hold a shard, then to drop it",
        || async move {
            let recent = recent_directives(frozen);
            let held = recent.iter().position(|(d, _)| d == "hold");
            let dropped = recent.iter().rposition(|(d, o)| d == "drop" && o == "ack");
            matches!((held, dropped), (Some(h), Some(d)) if h < d)
        },
    )
    .await;
    let tr = &t;
    wait_until(
        Duration::from_secs(60),
        "no node keeps a copy the gateway does not record",
        || async move { tr.untracked().await.is_empty() },
    )
    .await;
    let (_, mut body) = gw.get("tracked", "o", None).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = body.recv().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == object, "the object does not read back");
}
