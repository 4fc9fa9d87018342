use super::*;
use proptest::prelude::*;

const LIBRQBIT_QUERY: &[u8] =
    b"info_hash=%AA%BB%CC%DD%EE%FF%00%11%22%33%44%55%66%77%88%99%AA%BB%CC%DD\
&peer_id=-rQ0910-%01%02%03%04%05%06%07%08%09%0A%0B%0C&event=started&port=4240&uploaded=0\
&downloaded=0&left=1048576&compact=1&no_peer_id=0&numwant=80";

/// Reads `<query> => <reason>` lines of a corpus file.
pub(crate) fn corpus(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (q, r) = l.split_once(" => ").expect("corpus line needs ' => '");
            (q.trim(), r)
        })
        .collect()
}

#[test]
fn parses_a_librqbit_announce() {
    let r = AnnounceRequest::parse(LIBRQBIT_QUERY).unwrap();
    assert_eq!(r.info_hash.0[0], 0xAA);
    assert_eq!(r.info_hash.0[19], 0xDD);
    assert_eq!(&r.peer_id.0[..8], b"-rQ0910-");
    assert_eq!(r.peer_id.0[19], 0x0C);
    assert_eq!(r.event, Event::Started);
    assert_eq!((r.port, r.left, r.numwant), (4240, 1_048_576, Some(80)));
    assert!(r.compact && !r.no_peer_id);
}

#[test]
fn accepts_binary_key_and_ignores_unknown_parameters() {
    // aria2 sends a percent-encoded binary key; libtorrent sends supportcrypto, redundant, ...
    let q = b"info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=-aria2-AAAAAAAAAAAAA&port=6881&uploaded=0\
&downloaded=0&left=5&key=%FF%00%81%7F&supportcrypto=1&redundant=0&ip=10.0.0.1&trackerid=%00&=x&flag";
    let r = AnnounceRequest::parse(q).unwrap();
    assert_eq!(r.port, 6881);
    assert_eq!(r.left, 5);
    assert_eq!(r.numwant, None);
}

#[test]
fn plus_is_a_literal_byte() {
    let q = b"info_hash=+AAAAAAAAAAAAAAAAAA%2B&peer_id=-rQ0910-abcdefghijkl&port=1&uploaded=0&downloaded=0&left=0";
    let r = AnnounceRequest::parse(q).unwrap();
    assert_eq!(r.info_hash.0[0], b'+');
    assert_eq!(r.info_hash.0[19], b'+');
}

#[test]
fn numwant_negative_means_default_and_huge_saturates() {
    let base = "info_hash=AAAAAAAAAAAAAAAAAAAA&peer_id=-rQ0910-abcdefghijkl&port=1&uploaded=0&downloaded=0&left=0";
    let r = AnnounceRequest::parse(format!("{base}&numwant=-1").as_bytes()).unwrap();
    assert_eq!(r.numwant, None);
    let r = AnnounceRequest::parse(format!("{base}&numwant=99999999999").as_bytes()).unwrap();
    assert_eq!(r.numwant, Some(u32::MAX));
    let r = AnnounceRequest::parse(format!("{base}&event=bogus&compact=0").as_bytes()).unwrap();
    assert_eq!(r.event, Event::None);
    assert!(!r.compact);
}

#[test]
fn oversized_query_is_refused_before_parsing() {
    let q = vec![b'a'; MAX_QUERY_LEN + 1];
    let e = AnnounceRequest::parse(&q).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "query string is {} bytes, longer than the limit of {MAX_QUERY_LEN}",
            MAX_QUERY_LEN + 1
        )
    );
    assert!(matches!(parse_scrape(&q), Err(QueryError::TooLong { .. })));
}

#[test]
fn announce_corpus_gets_exact_reasons() {
    let cases = corpus(include_str!("../../../tests/corpus/http_announce.txt"));
    assert!(cases.len() >= 25);
    for (query, reason) in cases {
        let got = AnnounceRequest::parse(query.as_bytes())
            .map(|r| format!("accepted: {r:?}"))
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(got, reason, "query: {query}");
    }
}

#[test]
fn scrape_corpus_gets_exact_reasons() {
    for (query, reason) in corpus(include_str!("../../../tests/corpus/http_scrape.txt")) {
        let got = parse_scrape(query.as_bytes())
            .map(|r| format!("accepted: {r:?}"))
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(got, reason, "query: {query}");
    }
}

#[test]
fn scrape_takes_many_hashes_up_to_the_limit() {
    let one = "info_hash=AAAAAAAAAAAAAAAAAAAA";
    let q = vec![one; MAX_SCRAPE_HASHES].join("&");
    assert_eq!(parse_scrape(q.as_bytes()).unwrap().len(), MAX_SCRAPE_HASHES);
    let q = vec![one; MAX_SCRAPE_HASHES + 3].join("&");
    assert_eq!(
        parse_scrape(q.as_bytes()).unwrap_err().to_string(),
        format!(
            "scrape asks for {} info-hashes, more than the limit of {MAX_SCRAPE_HASHES}",
            MAX_SCRAPE_HASHES + 3
        )
    );
}

pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::None),
        Just(Event::Started),
        Just(Event::Completed),
        Just(Event::Stopped),
        Just(Event::Paused),
    ]
}

fn arb_request() -> impl Strategy<Value = AnnounceRequest> {
    (
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        1u16..,
        any::<(u64, u64, u64)>(),
        arb_event(),
        proptest::option::of(any::<u32>()),
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(ih, pid, port, (uploaded, downloaded, left), event, numwant, (compact, npi))| {
                AnnounceRequest {
                    info_hash: InfoHash(ih),
                    peer_id: PeerId(pid),
                    port,
                    uploaded,
                    downloaded,
                    left,
                    event,
                    numwant,
                    compact,
                    no_peer_id: npi,
                }
            },
        )
}

proptest! {
    #[test]
    fn announce_round_trips(req in arb_request()) {
        let q = req.to_query();
        prop_assert!(q.len() <= MAX_QUERY_LEN);
        prop_assert_eq!(AnnounceRequest::parse(q.as_bytes()).unwrap(), req);
    }

    #[test]
    fn scrape_round_trips(hashes in proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_SCRAPE_HASHES)) {
        let mut q = String::new();
        for h in &hashes {
            q.push_str("&info_hash=");
            percent_encode(h, &mut q);
        }
        let got = parse_scrape(q.as_bytes()).unwrap();
        prop_assert_eq!(got, hashes.into_iter().map(InfoHash).collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_bytes_never_panic(q in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = AnnounceRequest::parse(&q);
        let _ = parse_scrape(&q);
    }
}
