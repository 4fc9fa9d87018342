use super::*;
use proptest::prelude::*;

fn w(gateway: &str, seq: u64) -> Waiter {
    Waiter {
        gateway: gateway.into(),
        conn: 1,
        seq,
    }
}

const A: InfoHash = InfoHash([1; 20]);
const B: InfoHash = InfoHash([2; 20]);

#[test]
fn hold_fetch_hold_again_drop() {
    let mut l = Ledger::new(100);
    assert_eq!(l.hold(w("g", 1), A, "a", 60), HoldDecision::Start);
    assert_eq!(l.hold(w("g", 2), A, "a", 60), HoldDecision::Wait);
    assert_eq!(l.used(), 60);
    assert!(
        l.held_for("g").is_empty(),
        "a fetching shard is not reported held"
    );
    assert!(matches!(
        l.hold(w("g", 3), B, "b", 41),
        HoldDecision::Refuse {
            code: RefuseCode::Quota,
            ..
        }
    ));
    assert_eq!(l.fetched(&A), Some(vec![w("g", 1), w("g", 2)]));
    assert!(l.held_for("g").is_empty(), "reported once on disk");
    assert_eq!(
        l.hold(w("g", 4), A, "a", 60),
        HoldDecision::Ack { saved: false },
        "a hold while the held set is being written waits for it"
    );
    l.on_disk(&A, &BTreeSet::from(["g".into()]));
    assert_eq!(l.held_for("g"), vec![A]);
    assert_eq!(
        l.hold(w("g", 4), A, "a", 60),
        HoldDecision::Ack { saved: true }
    );
    assert_eq!(
        l.hold(w("h", 5), A, "a", 60),
        HoldDecision::Ack { saved: false },
        "a second gateway's hold of a held shard is a change to the held set"
    );
    assert!(l.held_for("h").is_empty());
    l.on_disk(&A, &BTreeSet::from(["g".into(), "h".into()]));
    // While a record without g is being written, g's hold is not acked from memory.
    assert!(!l.drop_shard("g", &A).remove);
    l.writing(&A, &BTreeSet::from(["h".into()]));
    assert_eq!(
        l.hold(w("g", 6), A, "a", 60),
        HoldDecision::Ack { saved: false }
    );
    l.on_disk(&A, &BTreeSet::from(["h".into()]));
    assert!(l.held_for("g").is_empty());
    assert!(!l.drop_shard("h", &A).remove);
    let d = l.drop_shard("g", &A);
    assert_eq!(
        d,
        DropDecision {
            remove: true,
            superseded: vec![]
        }
    );
    assert_eq!(l.used(), 0);
    // Dropping what is not held is acked with nothing to do.
    assert_eq!(
        l.drop_shard("g", &A),
        DropDecision {
            remove: false,
            superseded: vec![]
        }
    );
}

#[test]
fn drop_during_fetch_supersedes_and_a_late_completion_is_ignored() {
    let mut l = Ledger::new(100);
    l.hold(w("g", 1), A, "a", 10);
    let d = l.drop_shard("g", &A);
    assert_eq!(
        d,
        DropDecision {
            remove: true,
            superseded: vec![w("g", 1)]
        }
    );
    assert_eq!(l.fetched(&A), None);
    assert_eq!(l.used(), 0);
}

#[test]
fn a_shard_stays_while_another_gateway_owns_it() {
    let mut l = Ledger::new(100);
    l.hold(w("g1", 1), A, "a", 10);
    l.hold(w("g2", 1), A, "a", 10);
    assert_eq!(l.used(), 10, "one copy counts once");
    let d = l.drop_shard("g1", &A);
    assert_eq!(
        d,
        DropDecision {
            remove: false,
            superseded: vec![w("g1", 1)]
        }
    );
    assert_eq!(l.fetched(&A), Some(vec![w("g2", 1)]));
    l.on_disk(&A, &BTreeSet::from(["g2".into()]));
    assert_eq!(l.held_for("g2"), vec![A]);
    assert!(l.held_for("g1").is_empty());
}

#[test]
fn a_failed_fetch_frees_its_quota() {
    let mut l = Ledger::new(100);
    l.hold(w("g", 1), A, "a", 100);
    assert_eq!(l.failed(&A), vec![w("g", 1)]);
    assert_eq!(l.hold(w("g", 2), B, "b", 100), HoldDecision::Start);
}

#[test]
fn parked_shards_are_kept_and_come_back() {
    let mut l = Ledger::new(1000);
    l.restore(A, "a".into(), 10, BTreeSet::from(["g".into()]), true);
    l.park(B, "b".into(), 10, BTreeSet::from(["g".into()]));
    assert_eq!((l.open(), l.used()), (1, 20));
    assert!(l.held_for("g") == vec![A], "a parked shard is not reported");
    // However many shards are in the session, a new hold within the quota starts.
    let c = InfoHash([3; 20]);
    assert_eq!(l.hold(w("g", 1), c, "c", 10), HoldDecision::Start);
    // A hold of a parked shard is refused (it is not served), and the shard stays parked.
    assert!(matches!(
        l.hold(w("h", 3), B, "b", 10),
        HoldDecision::Refuse {
            code: RefuseCode::Quota,
            ..
        }
    ));
    assert_eq!(l.failed(&B), vec![]);
    assert_eq!(l.fetched(&B), None);
    assert_eq!(l.parked(), vec![B]);
    // Opened again: the parked shard is held, for its owners only (the refused hold made none).
    assert!(l.unpark(&B, true));
    assert!(!l.unpark(&B, true), "only a parked shard is unparked");
    assert_eq!(l.held_for("g"), vec![A, B]);
    assert!(!l.get(&B).unwrap().owners.contains("h"));
    l.drop_shard("g", &c);
    // A drop of a parked shard removes it like any other.
    l.park(c, "c".into(), 10, BTreeSet::from(["g".into()]));
    assert_eq!(l.open(), 2);
    assert!(l.drop_shard("g", &c).remove);
    assert_eq!((l.open(), l.parked().len()), (2, 0));
    // A parked shard replaced by a restore is counted once.
    l.park(c, "c".into(), 10, BTreeSet::from(["g".into()]));
    l.restore(c, "c".into(), 10, BTreeSet::from(["g".into()]), true);
    assert_eq!((l.open(), l.parked().len()), (3, 0));
    l.park(c, "c".into(), 10, BTreeSet::from(["g".into()]));
    l.forget_parked(&c);
    assert_eq!((l.open(), l.parked().len()), (2, 0));
}

#[test]
fn a_shard_fetched_again_after_restart_stays_in_the_held_set() {
    let mut l = Ledger::new(100);
    let g = BTreeSet::from(["g".to_string()]);
    l.park(A, "a".into(), 10, g.clone());
    assert!(l.unpark(&A, false), "pieces missing: fetched again");
    let a = l.get(&A).unwrap();
    assert!(matches!(a.state, ShardState::Fetching { .. }));
    assert!(a.kept(), "its record stays while it is fetched again");
    assert!(l.held_for("g").is_empty(), "but it is not reported held");
    // A new fetch is not in the held set, even once another gateway waits on it too.
    assert_eq!(l.hold(w("g", 1), B, "b", 10), HoldDecision::Start);
    assert_eq!(l.hold(w("h", 2), B, "b", 10), HoldDecision::Wait);
    assert!(!l.get(&B).unwrap().kept());
    // Fetched: held, and kept as any held shard.
    assert_eq!(l.fetched(&A), Some(vec![]));
    assert!(l.get(&A).unwrap().kept());
    // Kept whatever the disk's owners are meanwhile (a write that failed half-way narrows them).
    l.park(A, "a".into(), 10, g.clone());
    l.unpark(&A, false);
    l.writing(&A, &BTreeSet::new());
    assert!(l.get(&A).unwrap().kept());
    // A new fetch stays out, even when a write of an older record of its info-hash (held,
    // then dropped meanwhile) lands after it began.
    l.drop_shard("g", &B);
    l.drop_shard("h", &B);
    assert_eq!(l.hold(w("h", 3), B, "b", 10), HoldDecision::Start);
    l.on_disk(&B, &g);
    assert!(!l.get(&B).unwrap().kept());
}

#[derive(Debug, Clone)]
enum Op {
    Hold(usize, usize, u64),
    Fetched(usize),
    Failed(usize),
    Drop(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..4usize, 1..60u64).prop_map(|(g, s, len)| Op::Hold(g, s, len)),
        (0..4usize).prop_map(Op::Fetched),
        (0..4usize).prop_map(Op::Failed),
        (0..2usize, 0..4usize).prop_map(|(g, s)| Op::Drop(g, s)),
    ]
}

proptest! {
    /// Against a naive oracle: every directive is answered exactly once, quota is never exceeded, and
    /// `used` is the sum over shards.
    #[test]
    fn every_directive_is_answered_once_and_quota_holds(ops in proptest::collection::vec(op(), 1..60)) {
        let gws = ["g0", "g1"];
        let mut l = Ledger::new(100);
        // Lengths are fixed per shard, as an info-hash fixes its length.
        let len_of = |s: usize, len: u64| if s == 0 { len } else { 10 * s as u64 };
        let mut fixed_len: BTreeMap<usize, u64> = BTreeMap::new();
        let mut asked = BTreeSet::new();
        let mut answered: Vec<u64> = Vec::new();
        let mut seq = 0;
        for op in ops {
            match op {
                Op::Hold(g, s, len) => {
                    seq += 1;
                    asked.insert(seq);
                    let len = *fixed_len.entry(s).or_insert(len_of(s, len));
                    match l.hold(w(gws[g], seq), InfoHash([s as u8; 20]), "x", len) {
                        HoldDecision::Ack { .. } | HoldDecision::Refuse { .. } => answered.push(seq),
                        HoldDecision::Wait | HoldDecision::Start => {}
                    }
                }
                Op::Fetched(s) => {
                    answered.extend(l.fetched(&InfoHash([s as u8; 20])).unwrap_or_default().iter().map(|w| w.seq));
                }
                Op::Failed(s) => {
                    answered.extend(l.failed(&InfoHash([s as u8; 20])).iter().map(|w| w.seq));
                }
                Op::Drop(g, s) => {
                    seq += 1;
                    asked.insert(seq);
                    let d = l.drop_shard(gws[g], &InfoHash([s as u8; 20]));
                    answered.extend(d.superseded.iter().map(|w| w.seq));
                    answered.push(seq);
                }
            }
            prop_assert!(l.used() <= l.capacity());
            prop_assert_eq!(l.open(), l.shards().filter(|(_, s)| s.state != ShardState::Parked).count());
            prop_assert_eq!(l.used(), l.shards().map(|(_, s)| s.length).sum::<u64>());
            for (_, s) in l.shards() {
                prop_assert!(!s.owners.is_empty(), "a shard nobody owns is kept");
            }
        }
        // Everything still waiting is in a Fetching shard.
        let waiting: Vec<u64> = l.shards().flat_map(|(_, s)| match &s.state {
            ShardState::Fetching { waiters, .. } => waiters.iter().map(|w| w.seq).collect(),
            ShardState::Held | ShardState::Parked => Vec::new(),
        }).collect();
        let mut all = answered.clone();
        all.extend(&waiting);
        all.sort();
        let dedup: BTreeSet<u64> = all.iter().copied().collect();
        prop_assert_eq!(all.len(), dedup.len(), "a directive answered twice");
        prop_assert_eq!(dedup, asked);
    }
}
