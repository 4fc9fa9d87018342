//! Reliability records survive a restart of the tracker.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = TestTracker::start_on(test_config(false), &db).await;
    let (id, key) = t.node("steady").await;
    for (i, port) in [(1u8, 7001), (2, 7001), (1, 7002)] {
        let q = announce_query(&[i; 20], b"-rQ0910-steadysteady", port, 0);
        let (_, body) = get(t.http, &format!("/announce/{key}?{q}")).await;
        assert_eq!(decode(&body).failure(), None);
    }
    // Shutdown must write what is still queued (the flush interval is far away).
    t.service.shutdown().await;

    let mut config = test_config(false);
    config.records.flush_interval_ms = 3_600_000;
    let t = TestTracker::start_on(config, &db).await;
    let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
    assert_eq!(r["announces"], 3);
    assert_eq!(r["torrents_seeding"], 2);
    assert_eq!(r["address_changes"], 1);
    assert_eq!(r["addresses"].as_array().unwrap().len(), 2);
    // Scored with it: seen a moment ago, no audits yet, so a new node.
    assert_eq!(r["tier"], "low");
    assert_eq!(r["vetted"], false);
    assert!(r["uptime_window"].as_f64().is_some());
    assert!(r["reasons"].as_array().unwrap().iter().any(|x| x
        .as_str()
        .unwrap()
        .starts_with("new node: 0 of 10 audits passed")));
    // The announce token still works after the restart, and swarms rebuild from new announces.
    let q = announce_query(&[1; 20], b"-rQ0910-steadysteady", 7002, 0);
    let (_, body) = get(t.http, &format!("/announce/{key}?{q}")).await;
    let v = decode(&body);
    assert_eq!(v.failure(), None);
    assert_eq!(v.int("complete"), 1);
    t.service.recorder().flush().await.unwrap();
    let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
    assert_eq!(r["announces"], 4);
    t.service.shutdown().await;
}
