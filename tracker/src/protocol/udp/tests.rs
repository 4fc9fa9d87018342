use super::*;
use crate::protocol::http::tests::{arb_event, corpus};
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).expect("corpus hex")
}

#[test]
fn udp_corpus_gets_exact_answers() {
    let cases = corpus(include_str!("../../../tests/corpus/udp.txt"));
    assert!(cases.len() >= 10);
    for (packet, want) in cases {
        let got = match Request::parse(&unhex(packet)) {
            Ok(r) => format!("accepted: {r:?}"),
            Err(e @ ParseError::NoHeader(_)) => format!("drop: {e}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, want, "packet: {packet}");
    }
}

#[test]
fn url_data_spans_options_and_gives_the_passkey() {
    let a = AnnounceRequest {
        connection_id: 1,
        transaction_id: 2,
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
        downloaded: 0,
        left: 0,
        uploaded: 0,
        event: Event::Started,
        ip: Ipv4Addr::UNSPECIFIED,
        key: 0,
        num_want: None,
        port: 1,
        url_data: Vec::new(),
    };
    let mut b = Vec::new();
    Request::Announce(a).write(&mut b);
    // Two URL-data options with a no-op in between, as BEP 41 allows.
    b.extend_from_slice(b"\x02\x0a/announce/\x01\x02\x04abcd\x00");
    let Request::Announce(got) = Request::parse(&b).unwrap() else {
        panic!("not an announce")
    };
    assert_eq!(got.url_data, b"/announce/abcd");
    assert_eq!(passkey_from_path(&got.url_data), Some(&b"abcd"[..]));
}

#[test]
fn passkey_paths() {
    assert_eq!(passkey_from_path(b"/announce/k1"), Some(&b"k1"[..]));
    assert_eq!(passkey_from_path(b"/scrape/k1?x=1"), Some(&b"k1"[..]));
    assert_eq!(passkey_from_path(b"/announce"), None);
    assert_eq!(passkey_from_path(b"/announce/a/b"), None);
    assert_eq!(passkey_from_path(b"/other/k1"), None);
    assert_eq!(passkey_from_path(b""), None);
}

#[test]
fn too_much_url_data_is_refused() {
    let mut b = vec![0u8; 98];
    b[11] = 1; // announce
    b[97] = 1; // port
    b.extend_from_slice(&[2, 200]);
    b.extend_from_slice(&[b'a'; 200]);
    b.extend_from_slice(&[2, 100]);
    b.extend_from_slice(&[b'a'; 100]);
    assert_eq!(
        Request::parse(&b).unwrap_err().to_string(),
        "malformed BEP 41 option"
    );
}

fn arb_request() -> impl Strategy<Value = Request> {
    let announce = (
        any::<(u64, u32, [u8; 20], [u8; 20])>(),
        any::<(u64, u64, u64, u32, u32)>(),
        arb_event().prop_filter("UDP has no paused", |e| *e != Event::Paused),
        proptest::option::of(0u32..=i32::MAX as u32),
        1u16..,
        proptest::collection::vec(any::<u8>(), 0..=MAX_URL_DATA),
    )
        .prop_map(
            |((cid, tid, ih, pid), (down, left, up, ip, key), event, num_want, port, url_data)| {
                Request::Announce(AnnounceRequest {
                    connection_id: cid,
                    transaction_id: tid,
                    info_hash: InfoHash(ih),
                    peer_id: PeerId(pid),
                    downloaded: down,
                    left,
                    uploaded: up,
                    event,
                    ip: Ipv4Addr::from(ip),
                    key,
                    num_want,
                    port,
                    url_data,
                })
            },
        );
    prop_oneof![
        any::<u32>().prop_map(|transaction_id| Request::Connect { transaction_id }),
        announce,
        (
            any::<(u64, u32)>(),
            proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_SCRAPE_HASHES)
        )
            .prop_map(|((cid, tid), hs)| Request::Scrape {
                connection_id: cid,
                transaction_id: tid,
                info_hashes: hs.into_iter().map(InfoHash).collect(),
            }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in arb_request()) {
        let mut b = Vec::new();
        req.write(&mut b);
        prop_assert_eq!(Request::parse(&b).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(
        tid in any::<u32>(), cid in any::<u64>(), interval in any::<u32>(),
        counts in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..74),
        v4 in proptest::collection::vec(any::<([u8; 4], u16)>(), 0..50),
        v6 in proptest::collection::vec(any::<([u8; 16], u16)>(), 0..50),
        message in "[ -~]{0,80}",
    ) {
        let round = |r: Response<'_>, ipv6: bool| {
            let mut b = Vec::new();
            r.write(&mut b);
            OwnedResponse::parse(&b, ipv6).unwrap()
        };
        prop_assert_eq!(
            round(Response::Connect { transaction_id: tid, connection_id: cid }, false),
            OwnedResponse::Connect { transaction_id: tid, connection_id: cid }
        );
        for (peers, ipv6) in [
            (v4.iter().map(|&p| SocketAddr::from(p)).collect::<Vec<_>>(), false),
            (v6.iter().map(|&p| SocketAddr::from(p)).collect::<Vec<_>>(), true),
        ] {
            let r = Response::Announce { transaction_id: tid, interval, leechers: 3, seeders: 4, peers: &peers };
            prop_assert_eq!(round(r, ipv6), OwnedResponse::Announce {
                transaction_id: tid, interval, leechers: 3, seeders: 4, peers: peers.clone(),
            });
        }
        let counts: Vec<SwarmCounts> = counts.into_iter()
            .map(|(complete, downloaded, incomplete)| SwarmCounts { complete, downloaded, incomplete })
            .collect();
        prop_assert_eq!(
            round(Response::Scrape { transaction_id: tid, counts: &counts }, false),
            OwnedResponse::Scrape { transaction_id: tid, counts }
        );
        prop_assert_eq!(
            round(Response::Error { transaction_id: tid, message: &message }, false),
            OwnedResponse::Error { transaction_id: tid, message: message.clone() }
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = Request::parse(&b);
        let _ = OwnedResponse::parse(&b, false);
        let _ = OwnedResponse::parse(&b, true);
    }
}
