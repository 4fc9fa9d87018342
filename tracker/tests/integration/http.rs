//! HTTP announce/scrape, refusals, the admin API, node scores in the reports and a burst of
//! announces.

use crate::common::*;
use raidtorrent_tracker::ids::InfoHash;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn private_announce_scrape_and_intervals() {
    let t = TestTracker::start(test_config(false)).await;
    let (_, seeder_key) = t.node("seeder").await;
    let (_, leecher_key) = t.node("leecher").await;
    let ih = [0x11u8; 20];
    let seed_id = *b"-rQ0910-seeder000000";
    let leech_id = *b"-qB4650-leecher00000";
    let (s, body) = get(
        t.http,
        &format!(
            "/announce/{seeder_key}?{}&event=started",
            announce_query(&ih, &seed_id, 7001, 0)
        ),
    )
    .await;
    assert_eq!(s, 200);
    let v = decode(&body);
    assert_eq!(v.failure(), None);
    // A registered node running our software gets the long interval, as its min interval too
    // (librqbit re-announces at the min interval when there is one).
    assert_eq!(v.int("interval"), 600);
    assert_eq!(v.int("min interval"), 600);
    assert_eq!((v.int("complete"), v.int("incomplete")), (1, 0));
    assert!(v.bytes("peers").is_empty());

    let (_, body) = get(
        t.http,
        &format!(
            "/announce/{leecher_key}?{}",
            announce_query(&ih, &leech_id, 7002, 100)
        ),
    )
    .await;
    let v = decode(&body);
    // A stock client, even registered, gets the normal interval.
    assert_eq!(v.int("interval"), 60);
    assert_eq!(v.int("min interval"), 5);
    assert_eq!((v.int("complete"), v.int("incomplete")), (1, 1));
    assert_eq!(
        compact_peers(v.bytes("peers")),
        ["127.0.0.1:7001".parse().unwrap()]
    );

    // compact=0 gets the dictionary form with peer ids.
    let q = announce_query(&ih, &leech_id, 7002, 100).replace("compact=1", "compact=0");
    let (_, body) = get(t.http, &format!("/announce/{leecher_key}?{q}")).await;
    let Some(Value::List(peers)) = decode(&body).get("peers").cloned() else {
        panic!("dict peers expected")
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].bytes("peer id"), seed_id);
    assert_eq!(peers[0].bytes("ip"), b"127.0.0.1");
    assert_eq!(peers[0].int("port"), 7001);

    // Leecher finishes: left=0 makes it a seeder and counts a completion.
    get(
        t.http,
        &format!(
            "/announce/{leecher_key}?{}",
            announce_query(&ih, &leech_id, 7002, 0)
        ),
    )
    .await;
    let unknown = [0x22u8; 20];
    let (_, body) = get(
        t.http,
        &format!(
            "/scrape/{leecher_key}?info_hash={}&info_hash={}",
            enc(&ih),
            enc(&unknown)
        ),
    )
    .await;
    let v = decode(&body);
    let files = v.get("files").unwrap();
    let f = files.get(std::str::from_utf8(&ih).unwrap()).unwrap();
    assert_eq!(
        (f.int("complete"), f.int("incomplete"), f.int("downloaded")),
        (2, 0, 1)
    );
    let u = files.get(std::str::from_utf8(&unknown).unwrap()).unwrap();
    assert_eq!((u.int("complete"), u.int("incomplete")), (0, 0));

    // Stopped leaves the swarm at once.
    get(
        t.http,
        &format!(
            "/announce/{seeder_key}?{}&event=stopped",
            announce_query(&ih, &seed_id, 7001, 0)
        ),
    )
    .await;
    let (_, body) = get(
        t.http,
        &format!("/scrape/{seeder_key}?info_hash={}", enc(&ih)),
    )
    .await;
    let v = decode(&body);
    let f = v
        .get("files")
        .unwrap()
        .get(std::str::from_utf8(&ih).unwrap())
        .unwrap();
    assert_eq!(f.int("complete"), 1);
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_bencoded_failure_reasons() {
    let t = TestTracker::start(test_config(false)).await;
    let (id, key) = t.node("n").await;
    let q = announce_query(&[1; 20], b"-rQ0910-abcdefghijkl", 6881, 0);
    let reason = |body: Vec<u8>| decode(&body).failure().expect("failure reason");
    let (s, body) = get(t.http, &format!("/announce?{q}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        reason(body),
        "this tracker is private: announce to /announce/<token> with your node's announce token"
    );
    let (_, body) = get(
        t.http,
        &format!("/announce/0123456789abcdef0123456789abcdef?{q}"),
    )
    .await;
    assert_eq!(reason(body), "unknown announce token");
    let (_, body) = get(t.http, &format!("/scrape?info_hash={}", enc(&[1; 20]))).await;
    assert_eq!(
        reason(body),
        "this tracker is private: announce to /announce/<token> with your node's announce token"
    );
    let (_, body) = get(t.http, &format!("/announce/{key}/extra?{q}")).await;
    assert_eq!(
        reason(body),
        "tracker paths are /announce/<passkey> and /scrape/<passkey>"
    );

    // Revoke through the admin API: the announce token stops working at once.
    let (s, _) = http(
        t.http,
        "POST",
        &format!("/admin/nodes/{id}/revoke"),
        &[],
        b"",
    )
    .await;
    assert_eq!(s, 401);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (s, body) = http(
        t.http,
        "POST",
        &format!("/admin/nodes/{id}/revoke"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (_, body) = get(t.http, &format!("/announce/{key}?{q}")).await;
    assert_eq!(reason(body), "announce token has been revoked");

    // Every malformed query of the corpus gets its exact reason from the real server.
    let corpus = include_str!("../corpus/http_announce.txt");
    let (_, fresh) = t.node("fresh").await;
    let mut checked = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (query, want) = line.split_once(" => ").unwrap();
        let (s, body) = get(t.http, &format!("/announce/{fresh}?{}", query.trim())).await;
        assert_eq!(s, 200);
        assert_eq!(reason(body), want, "query {query}");
        checked += 1;
    }
    assert!(checked >= 25);
    let huge = "a".repeat(5000);
    let (_, body) = get(t.http, &format!("/announce/{fresh}?{huge}")).await;
    assert_eq!(
        reason(body),
        "query string is 5000 bytes, longer than the limit of 4096"
    );
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inspector_token_gets_peers_for_its_shards_only_and_leaves_no_record() {
    let t = TestTracker::start(test_config(false)).await;
    let (_, seeder_key) = t.node("seeder").await;
    let (mine, other) = ([0x21u8; 20], [0x22u8; 20]);
    for ih in [mine, other] {
        let q = announce_query(&ih, b"-rQ0910-seeder000000", 7101, 0);
        let (_, body) = get(t.http, &format!("/announce/{seeder_key}?{q}")).await;
        assert_eq!(decode(&body).failure(), None);
    }
    let inspector = t
        .registry()
        .issue_inspector("photos/cat.jpg", 600, &[InfoHash(mine)])
        .await
        .unwrap();
    let token = &inspector.token;
    let stock = *b"-lt2080-inspector000";
    let q = announce_query(&mine, &stock, 7102, 1000);
    let (_, body) = get(t.http, &format!("/announce/{token}?{q}")).await;
    let v = decode(&body);
    assert_eq!(v.failure(), None);
    assert_eq!(v.int("interval"), 60, "a stranger's interval, not a node's");
    assert_eq!(
        compact_peers(v.bytes("peers")),
        ["127.0.0.1:7101".parse().unwrap()]
    );
    // Another shard's swarm stays closed to it, for announces and scrapes alike.
    let q = announce_query(&other, &stock, 7102, 1000);
    let (_, body) = get(t.http, &format!("/announce/{token}?{q}")).await;
    assert_eq!(
        decode(&body).failure().as_deref(),
        Some("this inspector token was not issued for this shard")
    );
    let (_, body) = get(
        t.http,
        &format!("/scrape/{token}?info_hash={}", enc(&other)),
    )
    .await;
    assert!(decode(&body).failure().is_some());
    let (_, body) = get(t.http, &format!("/scrape/{token}?info_hash={}", enc(&mine))).await;
    assert_eq!(decode(&body).failure(), None);
    // It is no node: the registry knows only the seeder.
    let nodes = t.registry().nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_creates_nodes_and_reports_them() {
    let t = TestTracker::start(test_config(false)).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (s, _) = http(
        t.http,
        "POST",
        "/admin/nodes",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        br#"{"name":"x"}"#,
    )
    .await;
    assert_eq!(s, 401);
    let (s, body) = http(
        t.http,
        "POST",
        "/admin/nodes",
        &[("Authorization", &auth)],
        b"{}",
    )
    .await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    let (s, body) = http(
        t.http,
        "POST",
        "/admin/nodes",
        &[("Authorization", &auth)],
        br#"{"name":"volunteer-1"}"#,
    )
    .await;
    assert_eq!(s, 201);
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = created["id"].as_i64().unwrap();
    let key = created["announce_token"].as_str().unwrap().to_owned();
    assert_eq!(created["passkey"].as_str().unwrap().len(), 32);
    assert_ne!(created["passkey"], created["announce_token"]);
    assert_eq!(created["name"], "volunteer-1");

    let q = announce_query(&[3; 20], b"-rQ0910-abcdefghijkl", 6881, 0);
    // The passkey is the node's control credential: it opens no announce.
    let passkey = created["passkey"].as_str().unwrap();
    let (_, body) = get(t.http, &format!("/announce/{passkey}?{q}")).await;
    assert_eq!(
        decode(&body).failure().as_deref(),
        Some("unknown announce token")
    );
    let (_, body) = get(t.http, &format!("/announce/{key}?{q}&event=started")).await;
    assert_eq!(decode(&body).failure(), None);
    let report = wait_for(
        Duration::from_secs(10),
        "the announce to be recorded",
        || async {
            let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
            (r["announces"] == 1).then_some(r)
        },
    )
    .await;
    assert_eq!(report["name"], "volunteer-1");
    assert_eq!(report["torrents_seeding"], 1);
    assert_eq!(report["last_addr"], "127.0.0.1:6881");
    assert_eq!(report["torrents"][0]["info_hash"], hex::encode([3u8; 20]));
    assert!(
        report.get("passkey").is_none(),
        "reports never show passkeys"
    );
    let all = admin_json(t.http, "/admin/nodes").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (s, _) = admin_get(t.http, "/admin/nodes/999").await;
    assert_eq!(s, 404);
    // Nothing about the volunteers is public: not without the token, not with a wrong one, not
    // on the old paths.
    for (target, headers, want) in [
        ("/admin/nodes", &[][..], 401),
        (&format!("/admin/nodes/{id}")[..], &[][..], 401),
        (
            "/admin/nodes",
            &[("Authorization", "Bearer not-the-admin-token")][..],
            401,
        ),
        ("/nodes", &[][..], 404),
        (&format!("/nodes/{id}")[..], &[][..], 404),
    ] {
        let (s, body) = http(t.http, "GET", target, headers, b"").await;
        assert_eq!(s, want, "{target}");
        assert!(
            !String::from_utf8_lossy(&body).contains("127.0.0.1"),
            "{target}"
        );
    }
    t.service.shutdown().await;
}

/// `GET /nodes` shows each node's score, tier and reasons; a disqualified node stays so until an
/// operator requalifies it.
#[tokio::test(flavor = "multi_thread")]
async fn node_reports_show_tier_and_reasons() {
    use raidtorrent_tracker::registry::unix_now;
    use raidtorrent_tracker::scoring::AuditOutcome;
    let t = TestTracker::start(test_config(false)).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (fresh, key) = t.node("fresh").await;
    let (cheat, _) = t.node("cheat").await;
    let q = announce_query(&[5; 20], b"-rQ0910-freshfreshfr", 6881, 0);
    let (_, body) = get(t.http, &format!("/announce/{key}?{q}")).await;
    assert_eq!(decode(&body).failure(), None);
    t.service.recorder().flush().await.unwrap();
    let now = unix_now();
    for i in 0..3 {
        t.registry()
            .record_audit(fresh, "aa", AuditOutcome::Pass, "", now - 10 + i)
            .await
            .unwrap();
    }
    for i in 0..25 {
        t.registry()
            .record_audit(
                cheat,
                "bb",
                AuditOutcome::Fail,
                "piece 7 hash mismatch",
                now - 30 + i,
            )
            .await
            .unwrap();
    }
    let all = admin_json(t.http, "/admin/nodes").await;
    let all = all.as_array().unwrap();
    let by_name = |n: &str| all.iter().find(|r| r["name"] == n).unwrap().clone();
    let f = by_name("fresh");
    assert_eq!(f["tier"], "low");
    assert_eq!(f["vetted"], false);
    assert_eq!(f["audit_reputation"], 1.0);
    assert!(f["score"].as_f64().unwrap() > 0.9, "{f}");
    let reasons: Vec<&str> = f["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("new node: 3 of 10 audits passed, ")),
        "{reasons:?}"
    );
    let c = by_name("cheat");
    assert_eq!(c["tier"], "disqualified");
    assert_eq!(c["score"], 0.0);
    assert!(c["disqualified_at"].as_i64().is_some());
    let first = c["reasons"][0].as_str().unwrap();
    assert!(
        first.starts_with("disqualified: failed audits: integrity 0."),
        "{first}"
    );
    assert!(
        c["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "25 failed audits in the last 24 h"),
        "{c}"
    );
    // The single-node report says the same.
    let one = admin_json(t.http, &format!("/admin/nodes/{cheat}")).await;
    assert_eq!(one["tier"], "disqualified");

    // Only an operator can requalify.
    let path = format!("/admin/nodes/{cheat}/requalify");
    let (s, _) = http(t.http, "POST", &path, &[], b"").await;
    assert_eq!(s, 401);
    let (s, body) = http(t.http, "POST", &path, &[("Authorization", &auth)], b"").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["tier"], "low");
    assert_eq!(r["audits"], 0);
    let (s, _) = http(
        t.http,
        "POST",
        "/admin/nodes/999/requalify",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(s, 404);
    t.service.shutdown().await;
}

/// A node starting with 10,000 shard torrents announces them all at once; every announce is
/// answered (the client side caps itself at 4,000 open sockets to stay under the fd limit).
#[tokio::test(flavor = "multi_thread")]
async fn burst_of_ten_thousand_announces() {
    let t = TestTracker::start(test_config(false)).await;
    let (id, key) = t.node("big").await;
    let key = Arc::new(key);
    let gate = Arc::new(tokio::sync::Semaphore::new(4000));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10_000u32 {
        let (key, gate, addr) = (key.clone(), gate.clone(), t.http);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&i.to_be_bytes());
            let q = announce_query(&ih, b"-rQ0910-burstburst00", 6881, 0);
            let (s, body) = get(addr, &format!("/announce/{key}?{q}")).await;
            assert_eq!(s, 200);
            let v = decode(&body);
            assert_eq!(v.failure(), None);
            v.int("complete")
        }));
    }
    let mut ok = 0;
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
        ok += 1;
    }
    assert_eq!(ok, 10_000);
    eprintln!("10,000 announces in {:?}", started.elapsed());
    assert_eq!(t.service.tracker().swarms().size(), (10_000, 10_000));
    let report = wait_for(
        Duration::from_secs(20),
        "all announces recorded",
        || async {
            let r = admin_json(t.http, &format!("/admin/nodes/{id}")).await;
            (r["announces"] == 10_000).then_some(r)
        },
    )
    .await;
    assert_eq!(report["torrents_seeding"], 10_000);
    assert_eq!(t.service.recorder().dropped(), 0);
    t.service.shutdown().await;
}

/// BEP 7: IPv6 announcers are handed out in `peers6` (18-byte entries), not in `peers`.
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_peers_go_in_peers6() {
    use raidtorrent_tracker::registry::Registry;
    use raidtorrent_tracker::server::{bind_tcp, Listeners, Service};
    let Ok(v6) = bind_tcp("[::1]:0".parse().unwrap()) else {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    };
    let registry = Registry::open_in_memory().await.unwrap();
    let key = registry.create_node("dual").await.unwrap().announce_token;
    let config = test_config(false);
    let listeners = Listeners {
        http: Some(v6),
        udp: None,
        tls: None,
    };
    let s = Service::start(&config, registry, listeners).await.unwrap();
    let addr = s.http_addr.unwrap();
    let ih = [0x66u8; 20];
    let q = |pid: &[u8; 20], port| announce_query(&ih, pid, port, 5);
    get(
        addr,
        &format!("/announce/{key}?{}", q(b"-lt20800-six0000000a", 7006)),
    )
    .await;
    let (_, body) = get(
        addr,
        &format!("/announce/{key}?{}", q(b"-lt20800-six0000000b", 7007)),
    )
    .await;
    let v = decode(&body);
    assert!(v.bytes("peers").is_empty(), "{v:?}");
    let p6 = v.bytes("peers6");
    assert_eq!(p6.len(), 18);
    assert_eq!(&p6[..16], &std::net::Ipv6Addr::LOCALHOST.octets());
    assert_eq!(u16::from_be_bytes([p6[16], p6[17]]), 7006);
    s.shutdown().await;
}
