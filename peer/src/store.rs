//! What the node keeps on disk: shard data under `shards/`, each shard's metainfo under
//! `torrents/<info-hash>.torrent`, and the held set in `held.json` (versioned, replaced atomically),
//! so a restart re-seeds from disk without downloading again.
//!
//! Durability: metainfo and the held set are written to a temporary file, fsynced, renamed into
//! place and their folder fsynced (`write_atomically`); shard data is fsynced with its folder
//! before the node acks a hold ([`Store::sync_shard`]). So an ack, or a held set on disk, never
//! names data a power loss can take back. While a shard downloads, its pages are pushed toward
//! the disk as they land ([`Store::start_writeback`]), so that fsync waits for little.
//!
//! The held set is written at every start, before any shard can arrive; so a data folder with
//! files under `shards/` or `torrents/` and no `held.json` has lost it, and [`Store::load`]
//! refuses to guess (guessing "nothing held" would delete every shard as a leftover).

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
    #[error(
        "{path} is missing, but {files} shard files are in {shards} and {torrents}: the list of \
         shards this node holds is gone, and without it the node cannot tell held shards from \
         leftovers. Nothing was deleted. Restore held.json from a backup; or, to give the space \
         back and start empty, delete {shards} and {torrents} (the gateways make their copies \
         elsewhere)"
    )]
    HeldSetMissing {
        path: PathBuf,
        files: usize,
        shards: PathBuf,
        torrents: PathBuf,
    },
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

    /// The held set; empty when the node never held anything. A missing held set beside shard
    /// files is an error (see the module docs).
    pub fn load(&self) -> Result<Vec<StoredShard>, StoreError> {
        let path = self.held_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let files = count_files(&self.shards_dir())? + count_files(&self.torrents_dir())?;
                if files > 0 {
                    return Err(StoreError::HeldSetMissing {
                        path,
                        files,
                        shards: self.shards_dir(),
                        torrents: self.torrents_dir(),
                    });
                }
                return Ok(Vec::new());
            }
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

    /// A shard's metainfo; `Ok(None)` only when there is no such file. Any other failure (too
    /// many open files, an I/O error, permissions) is an error, never "missing".
    pub fn read_torrent(&self, ih: &InfoHash) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.torrent_path(ih);
        match std::fs::read(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Puts a shard's data on disk for good (the file, then its folder's entry), before the
    /// node acks the hold.
    pub fn sync_shard(&self, name: &str) -> Result<(), StoreError> {
        let path = self.shards_dir().join(name);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io_at(&path))?;
        sync_dir(&self.shards_dir())
    }

    /// Asks the kernel to start writing a shard's dirty pages to disk now, without waiting for
    /// them, so the fsync before the ack finds little left to write. Only a head start: a
    /// missing file or an error is no matter, [`Store::sync_shard`] is the promise.
    pub fn start_writeback(&self, name: &str) {
        use std::os::fd::AsRawFd;
        if let Ok(file) = std::fs::File::open(self.shards_dir().join(name)) {
            // SAFETY: the descriptor is open for the duration of the call; the flag only starts
            // writeback of the whole file and touches no memory of ours.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
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

fn count_files(dir: &Path) -> Result<usize, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.count()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// Replaces `path` with `bytes` so that a crash or power loss leaves either the old file or the
/// new one, and the new one is on disk when this returns: a temporary file written and fsynced,
/// renamed over `path`, the folder fsynced.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io_at(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_at(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
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
    fn a_lost_held_set_beside_shard_files_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(store.shards_dir().join("1".repeat(32)), b"data").unwrap();
        let e = store.load().unwrap_err();
        assert!(
            matches!(e, StoreError::HeldSetMissing { files: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("Nothing was deleted"), "{e}");
        assert!(store.shards_dir().join("1".repeat(32)).exists());
    }

    #[test]
    fn a_transient_error_reading_metainfo_is_not_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ih = InfoHash([0xab; 20]);
        assert_eq!(store.read_torrent(&ih).unwrap(), None);
        store.write_torrent(&ih, b"t").unwrap();
        assert_eq!(store.read_torrent(&ih).unwrap(), Some(b"t".to_vec()));
        // A path that cannot be read (here: a folder where the file should be) is an error.
        std::fs::remove_file(store.torrent_path(&ih)).unwrap();
        std::fs::create_dir(store.torrent_path(&ih)).unwrap();
        assert!(store.read_torrent(&ih).is_err());
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
