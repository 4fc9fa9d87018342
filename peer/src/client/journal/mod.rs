//! The put journal: what an unfinished `put` has begun, so that the same `put` run again after
//! a hard stop (SIGKILL, power loss, a lost terminal) resumes it, and any later `put` cleans up
//! after it instead of leaving its shard folder on disk and its placement pending.
//!
//! Each running `put` has one journal in `puts/` beside the keyring: `<id>.json` and
//! `<id>.lock`. The `put` holds an exclusive `flock` on its lock file while it runs; the kernel
//! releases it when the process ends however it ends, so a lock another `put` can take is a dead
//! put's, and a live put's journal is never taken. The journal grows in three steps, each
//! written through a rename as the keyring is:
//!
//! ```text
//! begun (source, target, gateway, folder) -> encoded (+ capability, shard info dicts)
//!                                          -> placed (+ placement id, listener)
//! ```
//!
//! The capability holds the data key, so the journal is kept as the keyring keeps it (mode 0600,
//! in a directory of mode 0700) and removed, with the shard folder, when its `put` ends. Only a
//! placed journal can be resumed ([`decide`]): the same file (path, size and modification time),
//! the same target and gateway, every shard file there at its length, and the placement still
//! under way at the gateway. The shards' pieces are then checked against their torrents as they
//! are added to the session; a shard that fails sends the `put` back to the start too.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use raidtorrent_codec::{Metainfo, ShardInfo};
use serde::{Deserialize, Serialize};

use super::cap::Capability;

mod store;
pub use store::{Journals, Slot};

/// The journal format this client writes; a journal of another format is not resumed.
pub const FORMAT: u32 = 1;

/// Why the journals could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("put journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("put journal: {0}")]
    Damaged(String),
}

/// A file as it was when put: a different size or modification time is a different object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStamp {
    /// The canonical path.
    pub path: PathBuf,
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub modified_ns: u64,
}

impl SourceStamp {
    pub fn of(path: &Path) -> io::Result<Self> {
        let path = fs::canonicalize(path)?;
        let meta = fs::metadata(&path)?;
        let modified_ns = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(SourceStamp {
            path,
            size: meta.len(),
            modified_ns,
        })
    }
}

/// What a `put` is: its source, where it goes, and through which gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// None for standard input, which cannot be read twice.
    pub source: Option<SourceStamp>,
    pub gateway: String,
    pub bucket: String,
    pub key: String,
}

/// One `put`'s journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub source: Option<SourceStamp>,
    pub gateway: String,
    pub bucket: String,
    pub key: String,
    /// The temporary folder the shards are encoded into and seeded from.
    pub folder: PathBuf,
    #[serde(default)]
    pub encoded: Option<EncodedRecord>,
    #[serde(default)]
    pub placement: Option<String>,
    /// The client's BitTorrent listener when it asked for the placement: the hold directives
    /// name it, so a resumed `put` listens there again when it can.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// The encoded object, as far as finishing its `put` needs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedRecord {
    /// The capability printed once stored (it holds the data key).
    pub cap: String,
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Each shard's info dict, base64, in shard order.
    pub shards: Vec<String>,
}

impl std::fmt::Debug for EncodedRecord {
    /// Leaves the capability out, as [`Capability`]'s own `Debug` leaves out the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedRecord")
            .field("size", &self.size)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// An encoded object ready to be placed: what [`EncodedRecord`] keeps, typed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub cap: Capability,
    pub size: u64,
    pub sha256: [u8; 32],
    pub infos: Vec<ShardInfo>,
}

impl Prepared {
    pub fn record(&self) -> EncodedRecord {
        EncodedRecord {
            cap: self.cap.encode(),
            size: self.size,
            sha256: hex::encode(self.sha256),
            shards: self
                .infos
                .iter()
                .map(|i| B64.encode(i.info_bytes()))
                .collect(),
        }
    }

    pub fn from_record(r: &EncodedRecord) -> Result<Self, JournalError> {
        let damaged = |what: &str| JournalError::Damaged(what.to_owned());
        let cap = Capability::parse(&r.cap).map_err(|_| damaged("its capability"))?;
        let sha256 = hex::decode(&r.sha256)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| damaged("its SHA-256"))?;
        let infos = r
            .shards
            .iter()
            .map(|s| {
                let info = B64.decode(s).map_err(|_| damaged("a shard's info dict"))?;
                let torrent = [&b"d4:info"[..], &info, b"e"].concat();
                Metainfo::parse(&torrent)
                    .and_then(|m| m.shard())
                    .map_err(|_| damaged("a shard's info dict"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            cap,
            size: r.size,
            sha256,
            infos,
        })
    }
}

impl Journal {
    /// A journal for a `put` that is about to encode into `folder`.
    pub fn begin(target: &Target, folder: &Path) -> Self {
        Journal {
            format: FORMAT,
            source: target.source.clone(),
            gateway: target.gateway.clone(),
            bucket: target.bucket.clone(),
            key: target.key.clone(),
            folder: folder.to_owned(),
            encoded: None,
            placement: None,
            listen: None,
        }
    }

    /// Whether this journal is of the same `put` as `target` (the source may have changed).
    fn same_put(&self, target: &Target) -> bool {
        let path = |s: &Option<SourceStamp>| s.as_ref().map(|s| s.path.clone());
        self.gateway == target.gateway
            && self.bucket == target.bucket
            && self.key == target.key
            && path(&self.source).is_some()
            && path(&self.source) == path(&target.source)
    }

    /// The shard files this journal names, with their lengths.
    pub fn shard_files(&self) -> Vec<(PathBuf, u64)> {
        let Some(Ok(prepared)) = self.encoded.as_ref().map(Prepared::from_record) else {
            return Vec::new();
        };
        prepared
            .infos
            .iter()
            .map(|i| (self.folder.join(&i.name), i.length))
            .collect()
    }
}

/// A placement's state as the gateway reports it to a `put` that came back for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementSeen {
    /// Under way (or in a state this client does not know, which it keeps following).
    Placing,
    Stored,
    /// Failed, cancelled, or forgotten (`404`: ended long ago, or the gateway restarted).
    Ended,
}

/// What a `put` observed of a dead put's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Every shard file is in the folder at its length.
    pub shards_present: bool,
    /// The placement's state, once asked ([`Decision::AskGateway`]).
    pub placement: Option<PlacementSeen>,
}

/// Why a dead put's journal is cleaned up rather than resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Another object, gateway, or standard input.
    OtherPut,
    /// Another journal format.
    OtherFormat,
    SourceChanged,
    /// It ended before asking for a placement.
    NotPlaced,
    ShardsMissing,
    /// A shard failed its hash check when seeded again.
    ShardsDamaged,
    PlacementEnded,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stale::OtherPut => "another put",
            Stale::OtherFormat => "its journal is of another client version",
            Stale::SourceChanged => "the file changed since",
            Stale::NotPlaced => "it had not asked for a placement yet",
            Stale::ShardsMissing => "its encoded shards are gone",
            Stale::ShardsDamaged => "its encoded shards are damaged",
            Stale::PlacementEnded => "its placement ended",
        })
    }
}

/// What to do with a dead put's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Ask the gateway for the placement's state, then decide again.
    AskGateway,
    /// Seed the encoded shards again and follow the same placement.
    Resume,
    /// The placement was stored: the `put` is done, its capability in the journal.
    Finished,
    /// Cancel its placement, if any, and remove its folder and journal.
    CleanUp(Stale),
}

/// Decides, from a dead put's journal and what was observed of it, whether the `put` of
/// `target` takes it over or cleans up after it.
pub fn decide(journal: &Journal, target: &Target, observed: &Observed) -> Decision {
    let stale = if journal.format != FORMAT {
        Some(Stale::OtherFormat)
    } else if !journal.same_put(target) {
        Some(Stale::OtherPut)
    } else if journal.source != target.source {
        Some(Stale::SourceChanged)
    } else if journal.encoded.is_none() || journal.placement.is_none() {
        Some(Stale::NotPlaced)
    } else if !observed.shards_present {
        Some(Stale::ShardsMissing)
    } else {
        None
    };
    match (stale, observed.placement) {
        (Some(why), _) => Decision::CleanUp(why),
        (None, None) => Decision::AskGateway,
        (None, Some(PlacementSeen::Placing)) => Decision::Resume,
        (None, Some(PlacementSeen::Stored)) => Decision::Finished,
        (None, Some(PlacementSeen::Ended)) => Decision::CleanUp(Stale::PlacementEnded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> SourceStamp {
        SourceStamp {
            path: "/home/u/holiday.mp4".into(),
            size,
            modified_ns: 1_700_000_000_000_000_000,
        }
    }

    fn target() -> Target {
        Target {
            source: Some(stamp(10)),
            gateway: "http://gw:8080".into(),
            bucket: "photos".into(),
            key: "holiday.mp4".into(),
        }
    }

    fn record() -> EncodedRecord {
        EncodedRecord {
            cap: "rtcap1:x".into(),
            size: 10,
            sha256: "00".repeat(32),
            shards: vec![],
        }
    }

    fn placed() -> Journal {
        let mut j = Journal::begin(&target(), Path::new("/tmp/raidtorrent-client-1"));
        j.encoded = Some(record());
        j.placement = Some("ab".repeat(16));
        j
    }

    const PRESENT: Observed = Observed {
        shards_present: true,
        placement: None,
    };

    fn seen(p: PlacementSeen) -> Observed {
        Observed {
            placement: Some(p),
            ..PRESENT
        }
    }

    #[test]
    fn the_same_put_asks_the_gateway_then_follows_its_answer() {
        let (j, t) = (placed(), target());
        assert_eq!(decide(&j, &t, &PRESENT), Decision::AskGateway);
        assert_eq!(
            decide(&j, &t, &seen(PlacementSeen::Placing)),
            Decision::Resume
        );
        assert_eq!(
            decide(&j, &t, &seen(PlacementSeen::Stored)),
            Decision::Finished
        );
        assert_eq!(
            decide(&j, &t, &seen(PlacementSeen::Ended)),
            Decision::CleanUp(Stale::PlacementEnded)
        );
    }

    #[test]
    fn anything_else_is_cleaned_up_without_asking() {
        let t = target();
        let clean = |j: &Journal, t: &Target, o: &Observed| match decide(j, t, o) {
            Decision::CleanUp(why) => why,
            d => panic!("{d:?}"),
        };
        let missing = Observed {
            shards_present: false,
            ..seen(PlacementSeen::Placing)
        };
        assert_eq!(clean(&placed(), &t, &missing), Stale::ShardsMissing);

        let mut changed = t.clone();
        changed.source = Some(stamp(11));
        assert_eq!(clean(&placed(), &changed, &PRESENT), Stale::SourceChanged);
        let mut touched = t.clone();
        touched.source.as_mut().unwrap().modified_ns += 1;
        assert_eq!(clean(&placed(), &touched, &PRESENT), Stale::SourceChanged);

        for other in [
            Target {
                key: "other.mp4".into(),
                ..t.clone()
            },
            Target {
                gateway: "http://elsewhere:8080".into(),
                ..t.clone()
            },
            Target {
                source: Some(SourceStamp {
                    path: "/home/u/other.mp4".into(),
                    ..stamp(10)
                }),
                ..t.clone()
            },
            Target {
                source: None,
                ..t.clone()
            },
        ] {
            assert_eq!(clean(&placed(), &other, &PRESENT), Stale::OtherPut);
        }
        // Standard input is never the same put, even to the same target.
        let mut stdin = placed();
        stdin.source = None;
        let stdin_target = Target {
            source: None,
            ..t.clone()
        };
        assert_eq!(clean(&stdin, &stdin_target, &PRESENT), Stale::OtherPut);

        let mut unplaced = placed();
        unplaced.placement = None;
        assert_eq!(clean(&unplaced, &t, &PRESENT), Stale::NotPlaced);
        unplaced.encoded = None;
        assert_eq!(clean(&unplaced, &t, &PRESENT), Stale::NotPlaced);

        let mut newer = placed();
        newer.format = FORMAT + 1;
        assert_eq!(clean(&newer, &t, &PRESENT), Stale::OtherFormat);
    }

    #[test]
    fn journals_round_trip_and_unknown_fields_are_ignored() {
        let j = placed();
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["later"] = 1.into();
        v.as_object_mut().unwrap().remove("placement");
        let back: Journal = serde_json::from_value(v).unwrap();
        assert_eq!(back.placement, None);
    }

    #[test]
    fn prepared_objects_round_trip_through_their_record() {
        let info = ShardInfo {
            name: ShardInfo::random_name(),
            length: 5,
            piece_length: 16384,
            pieces: vec![[7; 20]],
        };
        let p = Prepared {
            cap: Capability {
                gateway: "http://gw:8080".into(),
                bucket: "b".into(),
                key: "k".into(),
                manifest_sha256: [1; 32],
                data_key: [2; 32],
            },
            size: 5,
            sha256: [3; 32],
            infos: vec![info],
        };
        let back = Prepared::from_record(&p.record()).unwrap();
        assert_eq!(back.cap, p.cap);
        assert_eq!((back.size, back.sha256), (5, [3; 32]));
        assert_eq!(back.infos, p.infos);
        let mut damaged = p.record();
        damaged.shards[0] = "not base64!".into();
        assert!(Prepared::from_record(&damaged).is_err());
        // Debug output never shows the capability.
        assert!(!format!("{:?}", p.record()).contains("rtcap1"));
    }
}
