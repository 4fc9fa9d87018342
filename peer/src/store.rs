//! What the node keeps on disk: shard data under `shards/`, each shard's metainfo under
//! `torrents/<info-hash>.torrent`, and the held set in `held.json` (versioned, replaced atomically),
//! so a restart re-seeds from disk without downloading again.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use raidtorrent_proto::InfoHash;
use serde::{Deserialize, Serialize};

/// Version of `held.json` this code writes and reads.
pub const HELD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredShard {
    /// Info-hash, 40 hex digits.
    pub info_hash: String,
    pub name: String,
    pub length: u64,
    /// Names of the gateways that asked for it.
    pub owners: BTreeSet<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct HeldFile {
    version: u32,
    shards: Vec<StoredShard>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a held set: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: held set version {version}; this node reads version {HELD_VERSION}")]
    Version { path: PathBuf, version: u32 },
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = Store {
            root: root.to_owned(),
        };
        for dir in [store.shards_dir(), store.torrents_dir()] {
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn shards_dir(&self) -> PathBuf {
        self.root.join("shards")
    }
    fn torrents_dir(&self) -> PathBuf {
        self.root.join("torrents")
    }
    fn held_path(&self) -> PathBuf {
        self.root.join("held.json")
    }
    pub fn status_path(&self) -> PathBuf {
        self.root.join("status.json")
    }
    pub fn torrent_path(&self, ih: &InfoHash) -> PathBuf {
        self.torrents_dir().join(format!("{ih}.torrent"))
    }

    /// The held set; empty when the node never held anything.
    pub fn load(&self) -> Result<Vec<StoredShard>, StoreError> {
        let path = self.held_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&path)(e)),
        };
        // Read the version first so a newer file is named as such, not as corrupt.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let corrupt = |source| StoreError::Corrupt {
            path: path.clone(),
            source,
        };
        let v: Versioned = serde_json::from_slice(&text).map_err(corrupt)?;
        if v.version != HELD_VERSION {
            return Err(StoreError::Version {
                path,
                version: v.version,
            });
        }
        let file: HeldFile = serde_json::from_slice(&text).map_err(corrupt)?;
        Ok(file.shards)
    }

    pub fn save(&self, shards: Vec<StoredShard>) -> Result<(), StoreError> {
        let file = HeldFile {
            version: HELD_VERSION,
            shards,
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("the held set serialises");
        write_atomically(&self.held_path(), &bytes)
    }

    pub fn write_torrent(&self, ih: &InfoHash, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomically(&self.torrent_path(ih), bytes)
    }

    pub fn read_torrent(&self, ih: &InfoHash) -> Result<Vec<u8>, StoreError> {
        let path = self.torrent_path(ih);
        std::fs::read(&path).map_err(io_at(&path))
    }

    /// Removes a shard's metainfo and data file; absent files are fine.
    pub fn remove(&self, ih: &InfoHash, name: &str) -> Result<(), StoreError> {
        for path in [self.torrent_path(ih), self.shards_dir().join(name)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        Ok(())
    }

    /// Deletes shard data and metainfo files that belong to no shard in `keep` (left by a fetch that
    /// a crash or restart interrupted); returns how many files went.
    pub fn remove_strays(&self, keep: &[StoredShard]) -> Result<usize, StoreError> {
        let names: BTreeSet<String> = keep.iter().map(|s| s.name.clone()).collect();
        let torrents: BTreeSet<String> = keep
            .iter()
            .map(|s| format!("{}.torrent", s.info_hash))
            .collect();
        Ok(remove_unlisted(&self.shards_dir(), &names)?
            + remove_unlisted(&self.torrents_dir(), &torrents)?)
    }

    /// Bytes the filesystem under the data directory still has free for this user.
    pub fn filesystem_free(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.root.as_os_str().as_bytes()).ok()?;
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `stat` is a valid, writable statvfs.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
        (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
    }
}

fn remove_unlisted(dir: &Path, keep: &BTreeSet<String>) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        if !keep.contains(entry.file_name().to_string_lossy().as_ref()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_set_round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), vec![]);
        let shard = StoredShard {
            info_hash: "ab".repeat(20),
            name: "0".repeat(32),
            length: 42,
            owners: BTreeSet::from(["g".to_owned()]),
        };
        store.save(vec![shard.clone()]).unwrap();
        assert_eq!(store.load().unwrap(), vec![shard]);
        std::fs::write(
            dir.path().join("held.json"),
            br#"{"version": 2, "anything": []}"#,
        )
        .unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::Version { version: 2, .. })
        ));
        std::fs::write(dir.path().join("held.json"), b"{").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        assert!(store.filesystem_free().unwrap() > 0);
    }

    #[test]
    fn strays_go_and_held_shards_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = StoredShard {
            info_hash: "ab".repeat(20),
            name: "1".repeat(32),
            length: 1,
            owners: BTreeSet::new(),
        };
        std::fs::write(store.shards_dir().join(&kept.name), b"x").unwrap();
        std::fs::write(store.torrent_path(&InfoHash([0xab; 20])), b"t").unwrap();
        std::fs::write(store.shards_dir().join("2".repeat(32)), b"half").unwrap();
        std::fs::write(store.torrent_path(&InfoHash([0xcd; 20])), b"t").unwrap();
        assert_eq!(store.remove_strays(std::slice::from_ref(&kept)).unwrap(), 2);
        assert!(store.shards_dir().join(&kept.name).exists());
        assert!(store.torrent_path(&InfoHash([0xab; 20])).exists());
        assert!(!store.shards_dir().join("2".repeat(32)).exists());
    }
}
