//! Which holdings to audit next: pure, deterministic in a seed.
//!
//! Each draw picks a node with probability proportional to its weight times the number of its
//! holdings still eligible (so every holding is drawn in proportion to its node's weight, and a
//! node holding ten times as much is audited ten times as often), then takes that node's stalest
//! holding: never audited first, then audited longest ago. A node leaves the draw once it has
//! given `per_node` holdings or has none left.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use raidtorrent_codec::InfoHash;

use super::rng::XorShift;

/// One shard held by one node, as the gateway's records know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: i64,
    pub info_hash: InfoHash,
    /// When this holding was last audited (seconds, the clock of `now`), if ever.
    pub last_audit: Option<i64>,
}

/// Up to `budget` candidates, each drawn with probability proportional to its node's weight
/// (weights come from scoring: new and suspicious nodes weigh more; a node missing from
/// `weights` weighs 1.0), preferring holdings never audited or audited longest ago, at most
/// `per_node` per node, deterministic in `seed`.
///
/// Returns indices into `cands` in the order drawn, without repeats. A weight that is zero,
/// negative or not finite keeps the node out of the draw; when no eligible node has weight left,
/// fewer than `budget` come back. An audit time after `now` counts as just audited.
pub fn pick(
    cands: &[Candidate],
    weights: &HashMap<i64, f64>,
    budget: usize,
    per_node: usize,
    now: i64,
    seed: u64,
) -> Vec<usize> {
    let mut rng = XorShift::new(seed);
    // A BTreeMap so that the draw does not depend on hash order.
    let mut by_node: BTreeMap<i64, Vec<(Reverse<i64>, u64, usize)>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        let age = match c.last_audit {
            None => i64::MAX,
            Some(t) => now.saturating_sub(t).max(0),
        };
        // A random tie-break, so equally stale holdings are not always taken in input order.
        by_node
            .entry(c.node)
            .or_default()
            .push((Reverse(age), rng.next_u64(), i));
    }
    let node_weights: Vec<f64> = by_node
        .keys()
        .map(|node| weights.get(node).copied().unwrap_or(1.0))
        .collect();
    // Per node: weight, holdings not yet drawn (its mass counts all of them, not only the
    // `per_node` it can still give), and the queue it gives from.
    let mut nodes: Vec<(f64, usize, Vec<usize>)> = by_node
        .into_values()
        .zip(node_weights)
        .filter(|(_, w)| w.is_finite() && *w > 0.0 && per_node > 0)
        .map(|(mut held, w)| {
            held.sort_unstable();
            let count = held.len();
            // Stalest last, so taking one is a pop; only `per_node` can ever be taken.
            let mut queue: Vec<usize> = held.into_iter().take(per_node).map(|h| h.2).collect();
            queue.reverse();
            (w, count, queue)
        })
        .collect();
    let mut out = Vec::with_capacity(budget.min(cands.len()));
    while out.len() < budget {
        let mass = |(w, count, queue): &(f64, usize, Vec<usize>)| {
            if queue.is_empty() {
                0.0
            } else {
                w * *count as f64
            }
        };
        let total: f64 = nodes.iter().map(mass).sum();
        if !(total > 0.0 && total.is_finite()) {
            break;
        }
        let mut r = rng.unit() * total;
        let mut chosen = None;
        for (n, node) in nodes.iter().enumerate() {
            let m = mass(node);
            if m > 0.0 {
                chosen = Some(n);
                r -= m;
                if r < 0.0 {
                    break;
                }
            }
        }
        let Some(n) = chosen else { break };
        let (_, count, queue) = &mut nodes[n];
        out.push(
            queue
                .pop()
                .expect("only nodes with holdings left are drawn"),
        );
        *count -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(node: i64, tag: u8, last_audit: Option<i64>) -> Candidate {
        Candidate {
            node,
            info_hash: InfoHash([tag; 20]),
            last_audit,
        }
    }

    /// How often each node comes first over many seeds, against the naive oracle
    /// `weight × holdings / Σ`.
    #[test]
    fn weights_are_honoured_over_many_draws() {
        let cands: Vec<Candidate> = [(1, 1), (2, 1), (3, 4), (4, 2), (5, 3)]
            .iter()
            .flat_map(|&(node, n)| (0..n).map(move |i| cand(node, i as u8, None)))
            .collect();
        let weights: HashMap<i64, f64> = [(1, 1.0), (2, 3.0), (3, 0.5), (5, 2.0)].into();
        // Node 4 is missing from the map: weight 1.
        let mass = |node: i64, n: usize| weights.get(&node).copied().unwrap_or(1.0) * n as f64;
        let masses = [mass(1, 1), mass(2, 1), mass(3, 4), mass(4, 2), mass(5, 3)];
        let total: f64 = masses.iter().sum();
        let draws = 40_000;
        let mut firsts = [0u32; 5];
        for seed in 0..draws {
            let got = pick(&cands, &weights, 1, 10, 1_000, seed);
            assert_eq!(got.len(), 1);
            firsts[(cands[got[0]].node - 1) as usize] += 1;
        }
        for (i, m) in masses.iter().enumerate() {
            let want = m / total;
            let seen = firsts[i] as f64 / draws as f64;
            assert!(
                (seen - want).abs() < 0.01,
                "node {}: {seen} vs {want}",
                i + 1
            );
        }
    }

    #[test]
    fn per_node_cap_and_no_duplicates() {
        let cands: Vec<Candidate> = (0..40).map(|i| cand(i % 4, i as u8, None)).collect();
        for seed in 0..50 {
            let got = pick(&cands, &HashMap::new(), 100, 3, 0, seed);
            assert_eq!(got.len(), 12, "4 nodes × 3");
            let mut seen = got.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), got.len());
            for node in 0..4 {
                assert_eq!(got.iter().filter(|&&i| cands[i].node == node).count(), 3);
            }
            assert_eq!(got, pick(&cands, &HashMap::new(), 100, 3, 0, seed));
        }
        assert!(pick(&cands, &HashMap::new(), 100, 0, 0, 1).is_empty());
        assert_eq!(pick(&cands, &HashMap::new(), 5, 3, 0, 1).len(), 5);
    }

    #[test]
    fn empty_input_and_zero_weights() {
        assert!(pick(&[], &HashMap::new(), 10, 10, 0, 1).is_empty());
        let cands = vec![cand(1, 1, None), cand(2, 2, None), cand(3, 3, None)];
        let zero: HashMap<i64, f64> = [(1, 0.0), (2, f64::NAN), (3, -1.0)].into();
        assert!(pick(&cands, &zero, 10, 10, 0, 1).is_empty());
        let some: HashMap<i64, f64> = [(1, 0.0), (2, f64::INFINITY)].into();
        for seed in 0..100 {
            assert_eq!(
                pick(&cands, &some, 10, 10, 0, seed),
                vec![2],
                "only node 3 weighs"
            );
        }
        assert!(pick(&cands, &HashMap::new(), 0, 10, 0, 1).is_empty());
    }

    #[test]
    fn stalest_holdings_go_first() {
        let cands = vec![
            cand(1, 0, Some(900)),
            cand(1, 1, Some(100)),
            cand(1, 2, None),
            cand(1, 3, Some(2_000)), // after `now`: counts as just audited
            cand(1, 4, Some(500)),
        ];
        for seed in 0..20 {
            let got = pick(&cands, &HashMap::new(), 5, 5, 1_000, seed);
            assert_eq!(&got[..3], &[2, 1, 4], "never, then oldest");
            assert_eq!(got.len(), 5);
        }
        // Equally stale holdings are taken in a seed-dependent order, not always the first.
        let same: Vec<Candidate> = (0..8).map(|i| cand(1, i, None)).collect();
        let firsts: std::collections::HashSet<usize> = (0..50)
            .map(|seed| pick(&same, &HashMap::new(), 1, 1, 0, seed)[0])
            .collect();
        assert!(firsts.len() > 4, "{firsts:?}");
    }
}
