use super::*;
use proptest::prelude::*;
use std::collections::HashMap as Map;

fn ann(ih: u8, pid: u8, left: u64, now: u32) -> Announce {
    Announce {
        info_hash: InfoHash([ih; 20]),
        peer_id: PeerId([pid; 20]),
        addr: SocketAddr::from(([127, 0, 0, pid], 6881)),
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::None,
        now,
        ttl: 100,
        numwant: 50,
        family: Family::Any,
    }
}

#[test]
fn seeding_is_inferred_from_left_and_counts_completion_once() {
    let s = Swarms::default();
    let mut out = Vec::new();
    let o = s.announce(&ann(1, 1, 10, 0), &mut out);
    assert_eq!((o.counts.complete, o.counts.incomplete), (0, 1));
    assert!(o.previous.is_none() && !o.completed);
    let o = s.announce(&ann(1, 1, 0, 5), &mut out);
    assert!(o.completed);
    assert_eq!(
        o.counts,
        SwarmCounts {
            complete: 1,
            incomplete: 0,
            downloaded: 1
        }
    );
    assert_eq!(o.previous.unwrap().last_seen, 0);
    let o = s.announce(&ann(1, 1, 0, 9), &mut out);
    assert!(
        !o.completed,
        "a seeder re-announcing is not a new completion"
    );
    assert_eq!(o.counts.downloaded, 1);
    // A seeder that first shows up with `completed` counts; one that just starts seeding does not.
    let o = s.announce(
        &Announce {
            event: Event::Completed,
            ..ann(1, 2, 0, 9)
        },
        &mut out,
    );
    assert!(o.completed);
    let o = s.announce(&ann(1, 3, 0, 9), &mut out);
    assert!(!o.completed);
    assert_eq!(
        s.counts(&InfoHash([1; 20])),
        SwarmCounts {
            complete: 3,
            incomplete: 0,
            downloaded: 2
        }
    );
}

#[test]
fn peers_exclude_self_and_seeders_get_only_leechers() {
    let s = Swarms::default();
    let mut out = Vec::new();
    s.announce(&ann(1, 1, 0, 0), &mut out);
    s.announce(&ann(1, 2, 0, 0), &mut out);
    s.announce(&ann(1, 3, 7, 0), &mut out);
    out.clear();
    s.announce(&ann(1, 4, 7, 0), &mut out);
    let mut ids: Vec<u8> = out.iter().map(|p| p.peer_id.0[0]).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    out.clear();
    s.announce(&ann(1, 1, 0, 1), &mut out);
    let mut ids: Vec<u8> = out.iter().map(|p| p.peer_id.0[0]).collect();
    ids.sort();
    assert_eq!(ids, [3, 4]);
    out.clear();
    s.announce(
        &Announce {
            numwant: 1,
            ..ann(1, 4, 7, 1)
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn family_filter_keeps_udp_answers_single_family() {
    let s = Swarms::default();
    let mut out = Vec::new();
    let v6 = Announce {
        addr: "[::1]:7000".parse().unwrap(),
        ..ann(1, 9, 5, 0)
    };
    s.announce(&v6, &mut out);
    s.announce(&ann(1, 1, 5, 0), &mut out);
    out.clear();
    s.announce(
        &Announce {
            family: Family::V4,
            ..ann(1, 2, 5, 0)
        },
        &mut out,
    );
    assert!(out.iter().all(|p| p.addr.is_ipv4()) && out.len() == 1);
    out.clear();
    s.announce(
        &Announce {
            family: Family::Any,
            ..ann(1, 2, 5, 0)
        },
        &mut out,
    );
    assert_eq!(out.len(), 2);
}

#[test]
fn stopped_removes_and_sweep_expires() {
    let s = Swarms::default();
    let mut out = Vec::new();
    s.announce(&ann(1, 1, 0, 0), &mut out);
    s.announce(
        &Announce {
            ttl: 1000,
            ..ann(1, 2, 5, 0)
        },
        &mut out,
    );
    s.announce(&ann(2, 1, 5, 0), &mut out);
    assert_eq!(s.size(), (2, 3));
    let o = s.announce(
        &Announce {
            event: Event::Stopped,
            ..ann(2, 1, 5, 3)
        },
        &mut out,
    );
    assert!(o.previous.is_some());
    assert_eq!(s.size(), (1, 2), "an emptied swarm is dropped");
    assert_eq!(s.sweep(100), 0, "expiry is inclusive of the last second");
    assert_eq!(s.sweep(101), 1);
    assert_eq!(s.counts(&InfoHash([1; 20])).incomplete, 1);
    assert_eq!(s.sweep(2000), 1);
    assert_eq!(s.size(), (0, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Announce {
        ih: u8,
        pid: u8,
        seeding: bool,
        stop: bool,
    },
    Tick(u32),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..6, any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(ih, pid, seeding, stop)| Op::Announce { ih, pid, seeding, stop }),
        1 => (1u32..150).prop_map(Op::Tick),
    ]
}

proptest! {
    /// The swarm agrees with a naive model (a map per info-hash) after every operation.
    #[test]
    fn matches_a_naive_model(ops in proptest::collection::vec(arb_op(), 1..200)) {
        let s = Swarms::default();
        let mut model: Map<(u8, u8), (bool, u32)> = Map::new();
        let mut completions: Map<u8, u32> = Map::new();
        let mut now = 0u32;
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Tick(d) => {
                    now += d;
                    s.sweep(now);
                    model.retain(|_, (_, exp)| *exp >= now);
                }
                Op::Announce { ih, pid, seeding, stop } => {
                    let a = Announce {
                        event: if stop { Event::Stopped } else { Event::None },
                        ..ann(ih, pid, if seeding { 0 } else { 1 }, now)
                    };
                    out.clear();
                    s.announce(&a, &mut out);
                    if stop {
                        if let Some((false, _)) = model.remove(&(ih, pid)) {
                            if seeding {
                                *completions.entry(ih).or_default() += 1;
                            }
                        }
                    } else {
                        if let Some((was, _)) = model.get(&(ih, pid)) {
                            if seeding && !was {
                                *completions.entry(ih).or_default() += 1;
                            }
                        }
                        model.insert((ih, pid), (seeding, now + 100));
                        let others = model.iter()
                            .filter(|((h, p), (sd, _))| *h == ih && *p != pid && !(seeding && *sd))
                            .count();
                        prop_assert_eq!(out.len(), others);
                    }
                }
            }
            for ih in 0..3u8 {
                let c = s.counts(&InfoHash([ih; 20]));
                let seeders = model.iter().filter(|((h, _), (sd, _))| *h == ih && *sd).count() as u32;
                let all = model.keys().filter(|(h, _)| *h == ih).count() as u32;
                prop_assert_eq!(c.complete, seeders);
                prop_assert_eq!(c.incomplete, all - seeders);
                if all > 0 {
                    prop_assert_eq!(c.downloaded, completions.get(&ih).copied().unwrap_or(0));
                } else {
                    completions.remove(&ih);
                }
            }
        }
    }
}
