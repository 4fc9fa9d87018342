//! Client placements (RT-0004) cancelled by their client: nodes written from the wire crate
//! alone take the holds; one shard's copy is refused and never made elsewhere, so the placement
//! is still under way, with copies of the other shards recorded, when the client cancels it.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use raidtorrent_codec::{encode, DataKey, Geometry, InfoHash, KeyRef, ShardInfo};
use raidtorrent_proto::{Message, RefuseCode};
use tokio::sync::mpsc;

use super::*;
use crate::common::ADMIN_TOKEN;
use crate::control::node::RawNode;

/// What the test nodes saw: the copies they confirmed, and every drop they were sent.
struct Seen {
    confirmed: mpsc::UnboundedReceiver<InfoHash>,
    dropped: mpsc::UnboundedReceiver<InfoHash>,
}

/// Connects `n` registered nodes to the gateway. The first hold any of them receives is refused
/// and every later hold of that shard left unanswered; every other hold and every drop is
/// confirmed.
async fn nodes(t: &TestApi, n: usize) -> Seen {
    let admin = format!("http://{}/admin/nodes", t.cloud.service.http_addr.unwrap());
    let (confirmed_tx, confirmed) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let refused: Arc<Mutex<Option<InfoHash>>> = Arc::default();
    for i in 0..n {
        // Registered as an operator does, in the zone the test node claims.
        let added: Value = t
            .client
            .post(&admin)
            .bearer_auth(ADMIN_TOKEN)
            .body(json!({"name": format!("node-{i}"), "zone": "eu/paris"}).to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (id, passkey) = (
            added["id"].as_i64().unwrap(),
            added["passkey"].as_str().unwrap(),
        );
        let mut raw = RawNode::connect(t.cloud.control_addr, id, passkey).await;
        assert!(
            t.cloud
                .hub
                .wait_connected(id, Duration::from_secs(10))
                .await
        );
        let (refused, confirmed_tx, dropped_tx) =
            (refused.clone(), confirmed_tx.clone(), dropped_tx.clone());
        tokio::spawn(async move {
            while let Some(env) = raw.message().await {
                match env.body {
                    Message::Hold(h) => {
                        let answer = {
                            let mut refused = refused.lock().unwrap();
                            match *refused {
                                None => {
                                    *refused = Some(h.ih);
                                    Some(false)
                                }
                                Some(r) if r == h.ih => None,
                                Some(_) => Some(true),
                            }
                        };
                        match answer {
                            Some(true) => {
                                raw.send(Message::Ack {
                                    re: env.seq,
                                    ih: h.ih,
                                })
                                .await;
                                let _ = confirmed_tx.send(h.ih);
                            }
                            Some(false) => {
                                let refusal = Message::Refuse {
                                    re: env.seq,
                                    ih: Some(h.ih),
                                    code: RefuseCode::Io,
                                    text: "disk full".into(),
                                };
                                raw.send(refusal).await;
                            }
                            None => {}
                        }
                    }
                    Message::Drop { ih } => {
                        raw.send(Message::Ack { re: env.seq, ih }).await;
                        let _ = dropped_tx.send(ih);
                    }
                    _ => {}
                }
            }
        });
    }
    Seen { confirmed, dropped }
}

/// A placement request for a 100 kB object coded here as k + m shards, and its shards.
fn placement_body(k: u16, m: u16) -> (Value, Vec<ShardInfo>) {
    let data = random_bytes(100_000, 9);
    let g = Geometry::choose(k, m, 1 << 16, Some(data.len() as u64)).unwrap();
    let key = DataKey::generate().unwrap();
    let mut outs = vec![Vec::new(); g.shard_count()];
    let encoded = encode(g, &key, &data[..], &mut outs).unwrap();
    let infos = encoded.shard_infos();
    let manifest = encoded.manifest(
        KeyRef::Client {
            fingerprint: key.fingerprint(),
        },
        &infos,
    );
    let body = json!({
        "manifest": STANDARD.encode(manifest.to_bytes()),
        "shards": infos.iter().map(|i| STANDARD.encode(i.info_bytes())).collect::<Vec<_>>(),
    });
    (body, infos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_placement_leaves_nothing_visible_and_its_copies_are_dropped() {
    let t = TestApi::start_with(ApiAuth::open(), |c| {
        c.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let mut seen = nodes(&t, 3).await;
    t.json(t.req(Method::PUT, "/bkt"), StatusCode::OK).await;
    let (body, infos) = placement_body(2, 1);
    let placed = t
        .json(
            t.req(Method::POST, "/_place/bkt/k").body(body.to_string()),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = placed["placement"].as_str().unwrap().to_owned();

    // Two shards' copies made and recorded, the third's asked for again and never made.
    let mut kept = Vec::new();
    for _ in 0..2 {
        let ih = tokio::time::timeout(Duration::from_secs(10), seen.confirmed.recv())
            .await
            .expect("nodes are asked to hold the shards")
            .unwrap();
        assert!(infos.iter().any(|i| i.info_hash() == ih));
        kept.push(ih);
    }
    let confirmed = |s: &Value| -> u64 {
        let shards = s["shards"].as_array().unwrap();
        shards
            .iter()
            .map(|x| x["confirmed"].as_u64().unwrap())
            .sum()
    };
    let mut status = Value::Null;
    for _ in 0..10 {
        let follow = t.req(Method::GET, &format!("/_place/{id}?wait=1"));
        status = t.json(follow, StatusCode::OK).await;
        if confirmed(&status) == 2 {
            break;
        }
    }
    assert_eq!(status["state"], "placing", "{status}");
    assert_eq!(confirmed(&status), 2, "{status}");

    let cancelled = t
        .json(
            t.req(Method::DELETE, &format!("/_place/{id}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(cancelled["state"], "failed", "{cancelled}");
    assert!(
        cancelled["error"].as_str().unwrap().contains("cancelled"),
        "{cancelled}"
    );
    // Nothing became visible, and a second cancel answers the same.
    assert_eq!(
        t.send(t.req(Method::HEAD, "/bkt/k")).await.0,
        StatusCode::NOT_FOUND
    );
    let listing = t.json(t.req(Method::GET, "/bkt"), StatusCode::OK).await;
    assert_eq!(listing["objects"].as_array().unwrap().len(), 0, "{listing}");
    let again = t
        .json(
            t.req(Method::DELETE, &format!("/_place/{id}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(again["state"], "failed");

    // The copies made do not leak: the collector drops them from their nodes.
    let dropped = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ih) = seen.dropped.recv().await {
            kept.retain(|k| *k != ih);
            if kept.is_empty() {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(dropped, Ok(true), "copies not dropped: {kept:?}");
    t.stop().await;
}
