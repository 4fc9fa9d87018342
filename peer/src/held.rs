//! The held set on disk: a snapshot (`held.json`) and a journal of the changes since (`held.log`).
//!
//! A change to the held set costs one appended line and one `fdatasync`, not a rewrite of the
//! whole set (1.9 MB at 10,000 shards). Once the journal has more lines than the snapshot has
//! shards (and at least [`COMPACT_AT_LEAST`]), the node writes a new snapshot and empties the
//! journal: a change stays O(1) amortized, and a start reads at most about twice the set.
//!
//! Journal lines are JSON objects, one per line: `{"keep": <shard>}` (held, with these owners) or
//! `{"forget": "<info-hash>"}`. A line states the shard's whole record, so replaying a journal
//! onto a newer snapshot (a crash between writing the snapshot and emptying the journal) gives
//! each shard the journal touched its last journaled record: it undoes only changes made after
//! that record, whose acks waited for a write still to come, so nothing acked is lost. The last
//! line, when it lacks its newline or is not an entry, is an append a crash cut short: never
//! acked, it is ignored. Any other line that is not an entry is an error.
//!
//! This module is pure: [`replay`] and [`encode`]; `store.rs` does the file work.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Version of `held.json` this code writes. Version 1 (written before the journal existed) is
/// read too; a node of that version refuses version 2, rather than ignore the journal.
pub const HELD_VERSION: u32 = 2;

/// The journal is compacted only past this many lines, however small the held set.
pub const COMPACT_AT_LEAST: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredShard {
    /// Info-hash, 40 hex digits.
    pub info_hash: String,
    pub name: String,
    pub length: u64,
    /// Names of the gateways that asked for it.
    pub owners: BTreeSet<String>,
}

/// The snapshot file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub shards: Vec<StoredShard>,
}

/// One line of the journal: the shard's state after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Held (or parked), with these owners.
    Keep(StoredShard),
    /// Not held any more; the info-hash in hex.
    Forget(String),
}

impl Entry {
    /// The owners this line names for its shard: none for a `forget`.
    pub fn owners(&self) -> Option<&BTreeSet<String>> {
        match self {
            Entry::Keep(s) => Some(&s.owners),
            Entry::Forget(_) => None,
        }
    }
}

/// A complete journal line that is not an entry.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct BadLine {
    pub line: usize,
    pub source: serde_json::Error,
}

/// What the journal adds to a held set.
#[derive(Debug, Default)]
pub struct Replayed {
    pub shards: Vec<StoredShard>,
    /// Complete lines applied.
    pub lines: usize,
    /// Bytes of the last append, cut short by a crash, ignored: after the last newline, or
    /// the whole last line when it is not an entry.
    pub torn: usize,
}

/// Applies the journal `log` to the snapshot's `shards`, in order; the result is sorted by
/// info-hash. Does not panic on any input.
pub fn replay(shards: Vec<StoredShard>, log: &[u8]) -> Result<Replayed, BadLine> {
    let mut set: BTreeMap<String, StoredShard> = shards
        .into_iter()
        .map(|s| (s.info_hash.clone(), s))
        .collect();
    let complete = log.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut torn = log.len() - complete;
    let mut lines = log[..complete].split_inclusive(|b| *b == b'\n').peekable();
    let mut applied = 0;
    while let Some(line) = lines.next() {
        let entry: Entry = match serde_json::from_slice(line) {
            Ok(entry) => entry,
            // The last line may be an append torn below its newline.
            Err(_) if lines.peek().is_none() => {
                torn += line.len();
                break;
            }
            Err(source) => {
                let line = applied + 1;
                return Err(BadLine { line, source });
            }
        };
        applied += 1;
        match entry {
            Entry::Keep(s) => set.insert(s.info_hash.clone(), s),
            Entry::Forget(ih) => set.remove(&ih),
        };
    }
    Ok(Replayed {
        shards: set.into_values().collect(),
        lines: applied,
        torn,
    })
}

/// The journal bytes for `entries`: a line each.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut out, e).expect("an entry serialises");
        out.push(b'\n');
    }
    out
}

/// A held shard for tests: info-hash and name made from `i`.
#[cfg(test)]
pub(crate) fn sample(i: u8, owners: &[&str]) -> StoredShard {
    StoredShard {
        info_hash: format!("{i:02x}").repeat(20),
        name: format!("{i:032x}"),
        length: u64::from(i) + 1,
        owners: owners.iter().map(|o| o.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use super::sample as shard;

    /// The held set after `entries`, applied one by one to a map, without `replay`.
    fn model(entries: &[Entry]) -> Vec<StoredShard> {
        let mut set = BTreeMap::new();
        for e in entries {
            match e {
                Entry::Keep(s) => set.insert(s.info_hash.clone(), s.clone()),
                Entry::Forget(ih) => set.remove(ih),
            };
        }
        set.into_values().collect()
    }

    #[test]
    fn a_journal_changes_the_snapshot_line_by_line() {
        let snapshot = vec![shard(1, &["a"]), shard(2, &["a"])];
        let log = encode(&[
            Entry::Keep(shard(3, &["b"])),
            Entry::Forget(shard(1, &[]).info_hash),
            Entry::Keep(shard(2, &["a", "b"])),
        ]);
        let r = replay(snapshot, &log).unwrap();
        assert_eq!(r.shards, vec![shard(2, &["a", "b"]), shard(3, &["b"])]);
        assert_eq!((r.lines, r.torn), (3, 0));
    }

    #[test]
    fn an_append_cut_short_is_ignored_and_a_bad_line_before_others_is_an_error() {
        let mut log = encode(&[Entry::Keep(shard(1, &["a"]))]);
        let next = encode(&[Entry::Keep(shard(2, &["a"]))]);
        log.extend_from_slice(&next[..next.len() - 1]);
        let r = replay(Vec::new(), &log).unwrap();
        assert_eq!(r.shards, vec![shard(1, &["a"])]);
        assert_eq!(r.torn, next.len() - 1);

        // Torn below its newline: the sectors before it never reached the disk.
        let mut zeros = encode(&[Entry::Keep(shard(1, &["a"]))]);
        zeros.extend_from_slice(&[0; 40]);
        zeros.extend_from_slice(b"\"]}}\n");
        let r = replay(Vec::new(), &zeros).unwrap();
        assert_eq!((r.shards, r.lines, r.torn), (vec![shard(1, &["a"])], 1, 45));

        let mut bad = encode(&[Entry::Keep(shard(1, &["a"]))]);
        bad.extend_from_slice(b"{\"keep\": 1}\n");
        bad.extend_from_slice(&encode(&[Entry::Forget("00".into())]));
        let e = replay(Vec::new(), &bad).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        let owners = proptest::sample::subsequence(vec!["a", "b", "c"], 0..=3);
        let keep = (0u8..8, owners).prop_map(|(i, o)| Entry::Keep(shard(i, &o)));
        let forget = (0u8..8).prop_map(|i| Entry::Forget(shard(i, &[]).info_hash));
        proptest::collection::vec(prop_oneof![keep, forget], 0..40)
    }

    proptest! {
        /// Whichever snapshot a journal lands on, from the one it was started after to any later
        /// one (a crash between a new snapshot and the emptied journal), and whatever part of a
        /// last append a crash left, the replayed set is the one the acked changes made.
        #[test]
        fn replay_gives_the_set_the_changes_made(
            entries in entries(),
            since in any::<prop::sample::Index>(),
            later in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let since = since.index(entries.len() + 1);
            let later = since + later.index(entries.len() - since + 1);
            let snapshot = model(&entries[..later]);
            let mut log = encode(&entries[since..]);
            let extra = encode(&[Entry::Keep(shard(9, &["z"]))]);
            log.extend_from_slice(&extra[..cut.index(extra.len())]);
            let r = replay(snapshot, &log).unwrap();
            prop_assert_eq!(r.shards, model(&entries));
            prop_assert_eq!(r.lines, entries.len() - since);
        }

        /// A crash after a new snapshot, before its journal is emptied: the snapshot has every
        /// journaled change and some not yet acked (`unacked`, the change whose write was the
        /// snapshot, or others waiting for it). Every shard keeps what was acked for it, or,
        /// when an unacked change touched it, that change; nothing else.
        #[test]
        fn an_old_journal_on_a_newer_snapshot_loses_nothing_acked(
            entries in entries(),
            unacked in entries(),
            since in any::<prop::sample::Index>(),
        ) {
            let since = since.index(entries.len() + 1);
            let all: Vec<Entry> = entries.iter().chain(&unacked).cloned().collect();
            let r = replay(model(&all), &encode(&entries[since..])).unwrap();
            let acked: BTreeMap<_, _> =
                model(&entries).into_iter().map(|s| (s.info_hash.clone(), s)).collect();
            let newer: BTreeMap<_, _> =
                model(&all).into_iter().map(|s| (s.info_hash.clone(), s)).collect();
            let got: BTreeMap<_, _> =
                r.shards.into_iter().map(|s| (s.info_hash.clone(), s)).collect();
            let touched: BTreeSet<String> = unacked
                .iter()
                .map(|e| match e {
                    Entry::Keep(s) => s.info_hash.clone(),
                    Entry::Forget(ih) => ih.clone(),
                })
                .collect();
            for i in 0u8..8 {
                let ih = shard(i, &[]).info_hash;
                let ok = got.get(&ih) == acked.get(&ih)
                    || (touched.contains(&ih) && got.get(&ih) == newer.get(&ih));
                prop_assert!(ok, "{}: {:?}", ih, got.get(&ih));
            }
        }

        #[test]
        fn any_bytes_give_a_set_or_an_error(
            log in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = replay(vec![shard(1, &["a"])], &log);
        }
    }
}
