use super::records::{recorder, Observation};
use super::*;
use crate::protocol::InfoHash;
use std::time::Duration;

fn obs(node: NodeId, ih: u8, at: i64, addr: &str) -> Observation {
    Observation {
        node,
        info_hash: InfoHash([ih; 20]),
        addr: addr.parse().unwrap(),
        at,
        seeding: ih % 2 == 0,
        bytes_up: 100,
        bytes_down: 10,
        gap: None,
        expected_interval: 600,
        allowance: 900,
        completed: false,
    }
}

#[tokio::test]
async fn create_check_revoke() {
    let r = Registry::open_in_memory().await.unwrap();
    let a = r.create_node("alpha").await.unwrap();
    assert_eq!(a.passkey.len(), 32);
    assert!(a.passkey.bytes().all(|b| b.is_ascii_hexdigit()));
    let b = r.create_node("beta").await.unwrap();
    assert_ne!(a.passkey, b.passkey);
    assert_eq!(
        r.check_passkey(a.passkey.as_bytes()),
        PasskeyStatus::Valid(a.node.id)
    );
    assert_eq!(r.check_passkey(b"nope"), PasskeyStatus::Unknown);
    let revoked = r.revoke(a.node.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        r.check_passkey(a.passkey.as_bytes()),
        PasskeyStatus::Revoked
    );
    assert_eq!(
        r.check_passkey(b.passkey.as_bytes()),
        PasskeyStatus::Valid(b.node.id)
    );
    assert!(matches!(
        r.revoke(999).await,
        Err(RegistryError::NoSuchNode(999))
    ));
    assert!(matches!(
        r.create_node("").await,
        Err(RegistryError::BadName)
    ));
    assert!(matches!(
        r.create_node("a\nb").await,
        Err(RegistryError::BadName)
    ));
    let names: Vec<_> = r
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[tokio::test]
async fn records_add_up_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let t0 = 1_700_000_000 - 1_700_000_000 % 86_400; // midnight UTC
    let id;
    {
        let r = Registry::open(&path).await.unwrap();
        id = r.create_node("alpha").await.unwrap().node.id;
        let (rec, h) = recorder(r.clone(), 100, Duration::from_secs(3600))
            .await
            .unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rec.run(async {
            let _ = stop_rx.await;
        }));
        h.observe(obs(id, 1, t0, "127.0.0.2:6881"));
        h.observe(obs(id, 2, t0 + 300, "127.0.0.2:6881"));
        // A gap longer than the allowance: only 900 s of it count as online.
        h.observe(Observation {
            gap: Some(1500),
            ..obs(id, 1, t0 + 1800, "127.0.0.3:6881")
        });
        h.flush().await.unwrap();
        h.observe(Observation {
            gap: Some(600),
            completed: true,
            ..obs(id, 1, t0 + 2400, "127.0.0.3:6881")
        });
        // Shutdown flushes what is queued.
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        r.close().await;
    }
    let r = Registry::open(&path).await.unwrap();
    let rep = r.report(id, t0 + 3600).await.unwrap();
    assert_eq!(rep.first_seen, Some(t0));
    assert_eq!(rep.last_seen, Some(t0 + 2400));
    assert_eq!(rep.announces, 4);
    assert_eq!(rep.online_secs, 300 + 900 + 600);
    assert!(
        (rep.uptime_ratio - 1800.0 / 3600.0).abs() < 1e-9,
        "{}",
        rep.uptime_ratio
    );
    assert_eq!(rep.mean_announce_interval_secs, Some(1050.0));
    assert_eq!(rep.expected_announce_interval_secs, Some(600.0));
    assert_eq!(rep.late_announces, 1);
    assert_eq!((rep.bytes_up, rep.bytes_down), (400, 40));
    assert_eq!(rep.completions, 1);
    assert_eq!(rep.address_changes, 1);
    assert_eq!(rep.last_addr.as_deref(), Some("127.0.0.3:6881"));
    assert_eq!((rep.torrents_seeding, rep.torrents_leeching), (1, 1));
    assert_eq!(rep.torrents.as_ref().unwrap().len(), 2);
    assert_eq!(rep.addresses.as_ref().unwrap().len(), 2);
    // All online time fell in hour 0, of which 3600 s have elapsed.
    assert!((rep.hourly_availability[0] - 0.5).abs() < 1e-9);
    assert!(rep.hourly_availability[1..].iter().all(|&h| h == 0.0));
    // The recorder picks up where it was: the next announce counts from last_seen.
    let (rec, h) = recorder(r.clone(), 10, Duration::from_secs(3600))
        .await
        .unwrap();
    h.observe(obs(id, 1, t0 + 2500, "127.0.0.3:6881"));
    drop(h);
    rec.run(std::future::pending()).await;
    let rep = r.report(id, t0 + 3600).await.unwrap();
    assert_eq!(rep.online_secs, 1900);
    assert_eq!(rep.address_changes, 1);
}

#[tokio::test]
async fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let r = Registry::open(&path).await.unwrap();
    sqlx::query("UPDATE format SET version = 99 WHERE name = 'records'")
        .execute(r.pool())
        .await
        .unwrap();
    r.close().await;
    let e = Registry::open(&path).await.err().expect("must refuse");
    assert_eq!(
        e.to_string(),
        "records format 99 is newer than this tracker understands (1)"
    );
}

#[test]
fn hour_exposure_counts_partial_hours() {
    use super::report::hour_exposure;
    assert_eq!(hour_exposure(0, 3600, 0), 3600);
    assert_eq!(hour_exposure(1800, 5400, 0), 1800);
    assert_eq!(hour_exposure(1800, 5400, 1), 1800);
    assert_eq!(hour_exposure(0, 86_400 * 2 + 10, 0), 7210);
    assert_eq!(hour_exposure(0, 86_400 * 2 + 10, 5), 7200);
    assert_eq!(hour_exposure(10, 5, 0), 0);
}
