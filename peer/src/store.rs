//! What the node keeps on disk: shard data under `shards/`, each shard's metainfo under
//! `torrents/<info-hash>.torrent`, and the held set: a snapshot in `held.json` (versioned,
//! replaced atomically) and the changes since in the journal `held.log` (see `held.rs`), so a
//! restart re-seeds from disk without downloading again.
//!
//! Durability: metainfo and the snapshot are written to a temporary file, fsynced, renamed into
//! place and their folder fsynced (`write_atomically`); a journal append is fsynced before it
//! returns; shard data is fsynced with its folder before the node acks a hold
//! ([`Store::sync_shard`]). So an ack, or a held set on disk, never names data a power loss can
//! take back. While a shard downloads, its pages are pushed toward the disk as they land
//! ([`Store::start_writeback`]), so that fsync waits for little.
//!
//! The snapshot is written at every start, before any shard can arrive; so a data folder with
//! files under `shards/` or `torrents/` and no `held.json` has lost it, and [`Store::load`]
//! refuses to guess (guessing "nothing held" would delete every shard as a leftover).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use raidtorrent_proto::InfoHash;
use serde::Deserialize;

use crate::held::{BadLine, Snapshot, COMPACT_AT_LEAST};
pub use crate::held::{Entry, StoredShard, HELD_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a held set: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Journal { path: PathBuf, source: BadLine },
    #[error("{path}: held set version {version}; this node reads versions 1 to {HELD_VERSION}")]
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

/// Whether [`Store::append`] wrote the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Appended {
    /// Appended to the journal and on disk.
    Journaled,
    /// Nothing written: a snapshot is due (none written since the store was opened, or the
    /// journal has grown as long as the set). The caller saves the whole held set, which holds
    /// these changes too.
    SnapshotDue,
}

/// The journal being appended to, once a snapshot has been written.
#[derive(Debug)]
struct Journal {
    file: File,
    /// Lines in it.
    lines: usize,
    /// Shards in the snapshot it follows.
    snapshot_len: usize,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    journal: Arc<Mutex<Option<Journal>>>,
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
            journal: Arc::default(),
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
    fn journal_path(&self) -> PathBuf {
        self.root.join("held.log")
    }
    pub fn status_path(&self) -> PathBuf {
        self.root.join("status.json")
    }
    pub fn torrent_path(&self, ih: &InfoHash) -> PathBuf {
        self.torrents_dir().join(format!("{ih}.torrent"))
    }

    /// The held set: the snapshot with the journal applied; empty when the node never held
    /// anything. A missing snapshot beside shard files is an error (see the module docs).
    pub fn load(&self) -> Result<Vec<StoredShard>, StoreError> {
        let Some(snapshot) = self.read_snapshot()? else {
            return Ok(Vec::new());
        };
        let path = self.journal_path();
        let log = match std::fs::read(&path) {
            Ok(log) => log,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let replayed = crate::held::replay(snapshot.shards, &log)
            .map_err(|source| StoreError::Journal { path, source })?;
        if replayed.torn > 0 {
            tracing::warn!(
                bytes = replayed.torn,
                "the held set's journal ends in an append a crash cut short; ignored"
            );
        }
        Ok(replayed.shards)
    }

    /// The snapshot; `None` when there is none and no shard files either.
    fn read_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
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
                return Ok(None);
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
        if !(1..=HELD_VERSION).contains(&v.version) {
            return Err(StoreError::Version {
                path,
                version: v.version,
            });
        }
        serde_json::from_slice(&text).map(Some).map_err(corrupt)
    }

    /// Writes the whole held set as the new snapshot, then empties the journal.
    pub fn save(&self, shards: Vec<StoredShard>) -> Result<(), StoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        // Until this succeeds, no line goes to a journal that may follow another snapshot.
        *journal = None;
        let snapshot_len = shards.len();
        let file = Snapshot {
            version: HELD_VERSION,
            shards,
        };
        let bytes = serde_json::to_vec(&file).expect("the held set serialises");
        write_atomically(&self.held_path(), &bytes)?;
        let path = self.journal_path();
        let file = File::create(&path)
            .and_then(|f| f.sync_all().map(|()| f))
            .map_err(io_at(&path))?;
        sync_dir(&self.root)?;
        *journal = Some(Journal {
            file,
            lines: 0,
            snapshot_len,
        });
        Ok(())
    }

    /// Appends one change to the held set's journal and puts it on disk, unless a snapshot is
    /// due (see [`Appended`]). One line per append, so an append a crash tore is always the
    /// journal's last line.
    pub fn append(&self, entry: &Entry) -> Result<Appended, StoreError> {
        use std::io::Write;
        let mut guard = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let Some(journal) = guard.as_mut() else {
            return Ok(Appended::SnapshotDue);
        };
        let lines = journal.lines + 1;
        if lines > journal.snapshot_len.max(COMPACT_AT_LEAST) {
            return Ok(Appended::SnapshotDue);
        }
        let path = self.journal_path();
        let written = journal
            .file
            .write_all(&crate::held::encode(std::slice::from_ref(entry)))
            .and_then(|()| journal.file.sync_data());
        if let Err(e) = written {
            // What was written of it is unknown: no more appends until a snapshot.
            *guard = None;
            return Err(io_at(&path)(e));
        }
        journal.lines = lines;
        Ok(Appended::Journaled)
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
    use crate::held::sample as stored;

    #[test]
    fn held_set_round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), vec![]);
        let shard = stored(0xab, &["g"]);
        store.save(vec![shard.clone()]).unwrap();
        assert_eq!(store.load().unwrap(), vec![shard.clone()]);
        // A held set written before the journal existed is read as it is.
        std::fs::remove_file(dir.path().join("held.log")).unwrap();
        let v1 = format!(
            r#"{{"version": 1, "shards": [{}]}}"#,
            serde_json::to_string(&shard).unwrap()
        );
        std::fs::write(dir.path().join("held.json"), v1).unwrap();
        assert_eq!(store.load().unwrap(), vec![shard]);
        std::fs::write(
            dir.path().join("held.json"),
            br#"{"version": 3, "anything": []}"#,
        )
        .unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::Version { version: 3, .. })
        ));
        std::fs::write(dir.path().join("held.json"), b"{").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        assert!(store.filesystem_free().unwrap() > 0);
    }

    #[test]
    fn changes_are_journaled_after_a_snapshot_until_it_is_due_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keep = |i| Entry::Keep(stored(i, &["g"]));
        // No snapshot written by this process yet: the journal may end in a torn append.
        assert_eq!(store.append(&keep(1)).unwrap(), Appended::SnapshotDue);
        store.save(vec![stored(1, &["g"])]).unwrap();
        let snapshot = std::fs::read(dir.path().join("held.json")).unwrap();
        assert_eq!(store.append(&keep(2)).unwrap(), Appended::Journaled);
        let forget = Entry::Forget(stored(1, &[]).info_hash);
        assert_eq!(store.append(&forget).unwrap(), Appended::Journaled);
        assert_eq!(
            std::fs::read(dir.path().join("held.json")).unwrap(),
            snapshot
        );
        assert_eq!(store.load().unwrap(), vec![stored(2, &["g"])]);
        // A second store on the folder (a restart) reads the same, and must snapshot first.
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.load().unwrap(), vec![stored(2, &["g"])]);
        assert_eq!(again.append(&keep(3)).unwrap(), Appended::SnapshotDue);
        // The journal is let grow to as many lines as the set has, and at least a floor.
        for _ in 0..COMPACT_AT_LEAST - 2 {
            assert_eq!(store.append(&keep(2)).unwrap(), Appended::Journaled);
        }
        assert_eq!(store.append(&keep(4)).unwrap(), Appended::SnapshotDue);
        store
            .save(vec![stored(2, &["g"]), stored(4, &["g"])])
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("held.log"))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(store.append(&keep(4)).unwrap(), Appended::Journaled);
    }

    #[test]
    fn a_bad_journal_line_is_an_error_naming_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save(vec![stored(1, &["g"])]).unwrap();
        let lines = b"{\"keep\": 7}\n{\"forget\": \"00\"}\n";
        std::fs::write(dir.path().join("held.log"), lines).unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, StoreError::Journal { .. }), "{e}");
        assert!(e.to_string().contains("held.log: line 1"), "{e}");
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
        let kept = stored(0xab, &[]);
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
