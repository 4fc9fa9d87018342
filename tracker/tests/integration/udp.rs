//! BEP 15 over a real socket: connect, announce with the BEP 41 announce token, scrape, errors.

use crate::common::*;
use raidtorrent_tracker::protocol::udp::{AnnounceRequest, OwnedResponse, Request};
use raidtorrent_tracker::protocol::{Event, InfoHash, PeerId, SwarmCounts};
use std::net::Ipv4Addr;

fn announce(cid: u64, ih: u8, pid: &[u8; 20], port: u16, left: u64, token: &str) -> Request {
    Request::Announce(AnnounceRequest {
        connection_id: cid,
        transaction_id: u32::from(port),
        info_hash: InfoHash([ih; 20]),
        peer_id: PeerId(*pid),
        downloaded: 0,
        left,
        uploaded: 0,
        event: Event::Started,
        ip: Ipv4Addr::UNSPECIFIED,
        key: 42,
        num_want: None,
        port,
        url_data: if token.is_empty() {
            Vec::new()
        } else {
            format!("/announce/{token}").into_bytes()
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn private_udp_announce_with_bep41_passkey() {
    let t = TestTracker::start(test_config(false)).await;
    let (_, key) = t.node("a").await;
    let seeder = UdpClient::new("127.0.0.2:0", t.udp).await;
    let leecher = UdpClient::new("127.0.0.3:0", t.udp).await;
    let cid = seeder.connect().await;
    let r = seeder
        .request(&announce(cid, 5, b"-rQ0910-udpseeder000", 7001, 0, &key))
        .await;
    assert_eq!(
        r,
        OwnedResponse::Announce {
            transaction_id: 7001,
            interval: 600,
            leechers: 0,
            seeders: 1,
            peers: vec![]
        }
    );
    // A connection id is bound to the address it was given to.
    let r = leecher
        .request(&announce(cid, 5, b"-lt20800-udpleecher0", 7002, 9, &key))
        .await;
    assert_eq!(
        r,
        OwnedResponse::Error {
            transaction_id: 7002,
            message: "connection id expired or invalid".into()
        }
    );
    let cid2 = leecher.connect().await;
    let r = leecher
        .request(&announce(cid2, 5, b"-lt20800-udpleecher0", 7002, 9, &key))
        .await;
    assert_eq!(
        r,
        OwnedResponse::Announce {
            transaction_id: 7002,
            interval: 60,
            leechers: 1,
            seeders: 1,
            peers: vec!["127.0.0.2:7001".parse().unwrap()]
        }
    );
    // No token, a wrong one: refused with an error packet.
    let r = leecher
        .request(&announce(cid2, 5, b"-lt20800-udpleecher0", 7003, 9, ""))
        .await;
    assert_eq!(
        r,
        OwnedResponse::Error {
            transaction_id: 7003,
            message:
                "this tracker is private: announce to /announce/<token> with your node's announce token"
                    .into()
        }
    );
    let r = leecher
        .request(&announce(cid2, 5, b"-lt20800-udpleecher0", 7004, 9, "bad"))
        .await;
    assert!(
        matches!(r, OwnedResponse::Error { message, .. } if message == "unknown announce token")
    );
    // Scrape has no room for a passkey: refused on a private tracker.
    let r = leecher
        .request(&Request::Scrape {
            connection_id: cid2,
            transaction_id: 9,
            info_hashes: vec![InfoHash([5; 20])],
        })
        .await;
    assert_eq!(
        r,
        OwnedResponse::Error {
            transaction_id: 9,
            message: "this tracker is private: scrape over HTTP at /scrape/<passkey>".into()
        }
    );
    t.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn open_udp_scrape_and_garbage() {
    let t = TestTracker::start(test_config(true)).await;
    let c = UdpClient::new("127.0.0.4:0", t.udp).await;
    let cid = c.connect().await;
    c.request(&announce(cid, 6, b"-xx0000-aaaaaaaaaaaa", 7001, 0, ""))
        .await;
    c.request(&announce(cid, 6, b"-xx0000-bbbbbbbbbbbb", 7002, 5, ""))
        .await;
    let r = c
        .request(&Request::Scrape {
            connection_id: cid,
            transaction_id: 3,
            info_hashes: vec![InfoHash([6; 20]), InfoHash([7; 20])],
        })
        .await;
    assert_eq!(
        r,
        OwnedResponse::Scrape {
            transaction_id: 3,
            counts: vec![
                SwarmCounts {
                    complete: 1,
                    incomplete: 1,
                    downloaded: 0
                },
                SwarmCounts::default()
            ]
        }
    );
    // Every malformed packet of the corpus gets its error packet, or no answer. None carries a
    // valid connection id, so no answer is longer than its packet (no amplification of forged
    // datagrams): the message is cut to fit.
    let corpus = include_str!("../corpus/udp.txt");
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (packet, want) = line.split_once(" => ").unwrap();
        let bytes = hex::decode(packet.split_whitespace().collect::<String>()).unwrap();
        c.send_raw(&bytes).await;
        if want.starts_with("drop:") {
            // Nothing comes back: the next answer received is for the next request.
            assert_eq!(
                c.request(&Request::Connect { transaction_id: 99 }).await,
                OwnedResponse::Connect {
                    transaction_id: 99,
                    connection_id: cid
                }
            );
        } else {
            let tid = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
            let fits = want.len().min(bytes.len() - 8);
            assert_eq!(
                c.recv().await,
                OwnedResponse::Error {
                    transaction_id: tid,
                    message: want[..fits].to_owned()
                },
                "packet {packet}"
            );
        }
    }
    t.service.shutdown().await;
}

/// A forged source address gets no more bytes back than were sent from it.
#[tokio::test(flavor = "multi_thread")]
async fn unproven_senders_get_no_larger_answers() {
    let t = TestTracker::start(test_config(false)).await;
    let c = UdpClient::new("127.0.0.5:0", t.udp).await;
    let forged_cid = 0x0123_4567_89ab_cdef;
    let scrape = Request::Scrape {
        connection_id: forged_cid,
        transaction_id: 5,
        info_hashes: vec![InfoHash([1; 20])],
    };
    let packets = [
        scrape,
        announce(forged_cid, 9, b"-xx0000-cccccccccccc", 7003, 0, ""),
        Request::Connect { transaction_id: 6 },
    ];
    for r in packets {
        let mut sent = Vec::new();
        r.write(&mut sent);
        c.send_raw(&sent).await;
        let got = c.recv_raw().await;
        assert!(
            got.len() <= sent.len(),
            "{} bytes answered {} bytes: {r:?}",
            got.len(),
            sent.len()
        );
    }
    t.service.shutdown().await;
}
