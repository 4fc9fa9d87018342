use super::*;
use bendy::decoding::{Decoder, Object};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A decoded bencode value, read with an independent decoder (bendy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

fn convert(o: Object<'_, '_>) -> Value {
    match o {
        Object::Integer(s) => Value::Int(s.parse().unwrap()),
        Object::Bytes(b) => Value::Bytes(b.to_vec()),
        Object::List(mut l) => {
            let mut v = Vec::new();
            while let Some(item) = l.next_object().unwrap() {
                v.push(convert(item));
            }
            Value::List(v)
        }
        Object::Dict(mut d) => {
            let mut m = BTreeMap::new();
            while let Some((k, item)) = d.next_pair().unwrap() {
                m.insert(k.to_vec(), convert(item));
            }
            Value::Dict(m)
        }
    }
}

/// Decodes strictly (bendy checks key order and trailing bytes).
pub(crate) fn decode(b: &[u8]) -> Value {
    let mut dec = Decoder::new(b);
    let v = convert(dec.next_object().unwrap().unwrap());
    assert!(dec.next_object().unwrap().is_none(), "trailing bytes");
    v
}

pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Dict(m) => m.get(key.as_bytes()),
        _ => None,
    }
}

fn arb_peer() -> impl Strategy<Value = PeerEntry> {
    (
        any::<[u8; 20]>(),
        prop_oneof![
            any::<([u8; 4], u16)>().prop_map(SocketAddr::from),
            any::<([u8; 16], u16)>().prop_map(SocketAddr::from),
        ],
    )
        .prop_map(|(id, addr)| PeerEntry {
            peer_id: PeerId(id),
            addr,
        })
}

fn parse_compact(b: &[u8], size: usize) -> Vec<SocketAddr> {
    assert_eq!(b.len() % size, 0);
    b.chunks(size)
        .map(|c| {
            let port = u16::from_be_bytes([c[size - 2], c[size - 1]]);
            if size == 6 {
                SocketAddr::from((<[u8; 4]>::try_from(&c[..4]).unwrap(), port))
            } else {
                SocketAddr::from((<[u8; 16]>::try_from(&c[..16]).unwrap(), port))
            }
        })
        .collect()
}

#[test]
fn failure_reason_is_a_dict() {
    let mut out = Vec::new();
    write_failure("unknown passkey", &mut out);
    assert_eq!(out, b"d14:failure reason15:unknown passkeye");
}

#[test]
fn scrape_sorts_and_dedups_hashes() {
    let c = SwarmCounts {
        complete: 1,
        incomplete: 2,
        downloaded: 3,
    };
    let mut out = Vec::new();
    write_scrape(
        &[
            (InfoHash([9; 20]), c),
            (InfoHash([1; 20]), c),
            (InfoHash([9; 20]), c),
        ],
        &mut out,
    );
    let v = decode(&out);
    let Some(Value::Dict(files)) = get(&v, "files") else {
        panic!("no files: {v:?}")
    };
    assert_eq!(files.len(), 2);
    let f = &files[&vec![1u8; 20]];
    assert_eq!(get(f, "complete"), Some(&Value::Int(1)));
    assert_eq!(get(f, "incomplete"), Some(&Value::Int(2)));
    assert_eq!(get(f, "downloaded"), Some(&Value::Int(3)));
}

proptest! {
    #[test]
    fn announce_answer_decodes_back(
        peers in proptest::collection::vec(arb_peer(), 0..40),
        interval in any::<u32>(), min_interval in any::<u32>(),
        complete in any::<u32>(), incomplete in any::<u32>(),
        dict in any::<bool>(), no_peer_id in any::<bool>(),
    ) {
        let r = AnnounceResponse {
            interval, min_interval,
            counts: SwarmCounts { complete, incomplete, downloaded: 0 },
            peers: &peers, dict_peers: dict, no_peer_id,
        };
        let mut out = Vec::new();
        r.write(&mut out);
        let v = decode(&out);
        prop_assert_eq!(get(&v, "interval"), Some(&Value::Int(interval.into())));
        prop_assert_eq!(get(&v, "min interval"), Some(&Value::Int(min_interval.into())));
        prop_assert_eq!(get(&v, "complete"), Some(&Value::Int(complete.into())));
        prop_assert_eq!(get(&v, "incomplete"), Some(&Value::Int(incomplete.into())));
        if dict {
            let Some(Value::List(list)) = get(&v, "peers") else { panic!("peers not a list") };
            prop_assert_eq!(list.len(), peers.len());
            for (item, p) in list.iter().zip(&peers) {
                let Some(Value::Bytes(ip)) = get(item, "ip") else { panic!("no ip") };
                prop_assert_eq!(ip.clone(), p.addr.ip().to_string().into_bytes());
                prop_assert_eq!(get(item, "port"), Some(&Value::Int(p.addr.port().into())));
                let id = get(item, "peer id");
                if no_peer_id {
                    prop_assert!(id.is_none());
                } else {
                    prop_assert_eq!(id, Some(&Value::Bytes(p.peer_id.0.to_vec())));
                }
            }
        } else {
            let Some(Value::Bytes(v4)) = get(&v, "peers") else { panic!("peers not bytes") };
            let want4: Vec<_> = peers.iter().map(|p| p.addr).filter(SocketAddr::is_ipv4).collect();
            let want6: Vec<_> = peers.iter().map(|p| p.addr).filter(SocketAddr::is_ipv6).collect();
            prop_assert_eq!(parse_compact(v4, 6), want4);
            match get(&v, "peers6") {
                Some(Value::Bytes(v6)) => prop_assert_eq!(parse_compact(v6, 18), want6),
                None => prop_assert!(want6.is_empty()),
                other => panic!("peers6: {other:?}"),
            }
        }
    }
}
