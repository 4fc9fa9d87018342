//! Shard data files for the BitTorrent session, under one open-file budget for the whole node.
//!
//! librqbit's own storage keeps every shard's data file open for as long as the shard is in the
//! session, so a volunteer's node holding thousands of shards needed thousands of descriptors, and
//! past its open-file limit it could not serve them all. Here a shard's file is opened when a peer
//! reads it or a fetch writes it, and kept in one node-wide least-recently-used cache of at most
//! `limits.open_files` descriptors ([`FileCache`]). Every held shard stays in the session and is
//! served; only the files in use recently stay open.
//!
//! All I/O is positional (`pread`/`pwrite`), so threads sharing a descriptor never race on a file
//! offset. A file the cache evicts while another thread reads it stays open until that read ends
//! (each user holds an [`Arc`]), and the budget counts it until then: the node never has more
//! than the budget of shard files open, even for a moment.
//!
//! The on-disk layout is librqbit's: a file's path is the session's output folder joined with the
//! torrent's relative file name, so data written by earlier versions of the node is found as is.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};

use crate::node::lock;

/// Why a shard's file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the torrent has no file {0}")]
    NoSuchFile(usize),
    #[error("this storage was handed over to another state of the torrent")]
    Retired,
}

/// How many shard files are open, and a wake-up for threads waiting for one to close.
#[derive(Default)]
struct Tally {
    open: AtomicUsize,
    gate: Mutex<()>,
    closed: Condvar,
}

impl Tally {
    /// Blocks until fewer than `budget` files are open.
    fn wait_below(&self, budget: usize) {
        let mut gate = lock(&self.gate);
        while self.open.load(Ordering::Acquire) >= budget {
            gate = self.closed.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One open shard file; counted in the budget until dropped, and closed before it stops counting.
pub struct OpenFile {
    file: Option<File>,
    path: PathBuf,
    tally: Arc<Tally>,
}

impl OpenFile {
    fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("an OpenFile is open until dropped")
    }

    fn io(&self, source: std::io::Error) -> FileError {
        FileError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), FileError> {
        self.file()
            .read_exact_at(buf, offset)
            .map_err(|e| self.io(e))
    }

    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), FileError> {
        self.file()
            .write_all_at(buf, offset)
            .map_err(|e| self.io(e))
    }

    /// Sets the file's length unless it already has it (so a held shard's mtime is left alone).
    pub fn ensure_len(&self, len: u64) -> Result<(), FileError> {
        let file = self.file();
        let now = file.metadata().map_err(|e| self.io(e))?.len();
        if now != len {
            file.set_len(len).map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        drop(self.file.take());
        self.tally.open.fetch_sub(1, Ordering::AcqRel);
        let _gate = lock(&self.tally.gate);
        self.tally.closed.notify_all();
    }
}

/// The cached files, least recently used first in `order`.
#[derive(Default)]
struct Lru {
    files: HashMap<PathBuf, (Arc<OpenFile>, u64)>,
    order: BTreeMap<u64, PathBuf>,
    clock: u64,
}

impl Lru {
    fn touch(&mut self, path: &Path) -> Option<Arc<OpenFile>> {
        self.clock += 1;
        let (file, used) = self.files.get_mut(path)?;
        let path = self
            .order
            .remove(used)
            .expect("every cached file is in the order");
        *used = self.clock;
        self.order.insert(self.clock, path);
        Some(file.clone())
    }

    fn insert(&mut self, path: PathBuf, file: Arc<OpenFile>) {
        self.clock += 1;
        self.order.insert(self.clock, path.clone());
        self.files.insert(path, (file, self.clock));
    }

    fn remove(&mut self, path: &Path) -> Option<Arc<OpenFile>> {
        let (file, used) = self.files.remove(path)?;
        self.order.remove(&used);
        Some(file)
    }

    fn evict_oldest(&mut self) -> Option<Arc<OpenFile>> {
        let (_, path) = self.order.pop_first()?;
        self.files.remove(&path).map(|(file, _)| file)
    }
}

/// The node's open shard files: at most `budget` at once, the least recently used closed first.
pub struct FileCache {
    budget: usize,
    lru: Mutex<Lru>,
    tally: Arc<Tally>,
}

impl FileCache {
    /// A cache keeping at most `budget` files open (at least one).
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(FileCache {
            budget: budget.max(1),
            lru: Mutex::default(),
            tally: Arc::default(),
        })
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Shard files open now, cached or still in use after eviction.
    pub fn open_files(&self) -> usize {
        self.tally.open.load(Ordering::Acquire)
    }

    /// The file at `path`, opened for reading and writing (and created when `create`), from the
    /// cache when it is there. Waits while the budget is taken by files other threads are using.
    pub fn get(&self, path: &Path, create: bool) -> Result<Arc<OpenFile>, FileError> {
        loop {
            let mut lru = lock(&self.lru);
            if let Some(file) = lru.touch(path) {
                return Ok(file);
            }
            while self.open_files() >= self.budget {
                if lru.evict_oldest().is_none() {
                    break;
                }
            }
            if self.open_files() < self.budget {
                let file = self.open(path, create)?;
                lru.insert(path.to_owned(), file.clone());
                return Ok(file);
            }
            drop(lru);
            tracing::debug!(
                budget = self.budget,
                "every shard file descriptor is in use; waiting"
            );
            self.tally.wait_below(self.budget);
        }
    }

    /// Opens a file, counted in the budget. Called with the cache locked, so the count checked
    /// before cannot be raised by another opener meanwhile.
    fn open(&self, path: &Path, create: bool) -> Result<Arc<OpenFile>, FileError> {
        self.tally.open.fetch_add(1, Ordering::AcqRel);
        // Counted from here: dropping it on failure gives its place in the budget back.
        let mut file = OpenFile {
            file: None,
            path: path.to_owned(),
            tally: self.tally.clone(),
        };
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path);
        match opened {
            Ok(f) => {
                file.file = Some(f);
                Ok(Arc::new(file))
            }
            Err(source) => Err(FileError::Open {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Takes a file out of the cache; it closes once its last user is done. For a file about to be
    /// deleted, or one whose shard left the session.
    pub fn forget(&self, path: &Path) {
        let file = lock(&self.lru).remove(path);
        drop(file);
    }
}

/// Makes a [`CachedFiles`] storage for every shard torrent the node adds to its session.
#[derive(Clone)]
pub struct CachedFilesFactory {
    cache: Arc<FileCache>,
    /// The session's output folder (`shards/`): shard torrents are added without their own.
    folder: PathBuf,
}

impl CachedFilesFactory {
    pub fn new(cache: Arc<FileCache>, folder: PathBuf) -> Self {
        CachedFilesFactory { cache, folder }
    }
}

impl StorageFactory for CachedFilesFactory {
    type Storage = CachedFiles;

    fn create(
        &self,
        _shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<CachedFiles> {
        let paths = metadata
            .file_infos
            .iter()
            .map(|f| (!f.attrs.padding).then(|| self.folder.join(&f.relative_filename)))
            .collect();
        Ok(CachedFiles {
            cache: self.cache.clone(),
            folder: self.folder.clone(),
            paths,
            retired: AtomicBool::new(false),
        })
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

/// One shard torrent's files, opened through the node's [`FileCache`].
pub struct CachedFiles {
    cache: Arc<FileCache>,
    folder: PathBuf,
    /// By librqbit's file id; `None` for padding files, which have no data on disk.
    paths: Vec<Option<PathBuf>>,
    /// Set by [`TorrentStorage::take`]: librqbit moved on to the storage it returned.
    retired: AtomicBool,
}

impl CachedFiles {
    fn path(&self, file_id: usize) -> Result<&Path, FileError> {
        if self.retired.load(Ordering::Acquire) {
            return Err(FileError::Retired);
        }
        self.paths
            .get(file_id)
            .and_then(|p| p.as_deref())
            .ok_or(FileError::NoSuchFile(file_id))
    }

    fn file(&self, file_id: usize) -> Result<Arc<OpenFile>, FileError> {
        self.cache.get(self.path(file_id)?, false)
    }
}

impl TorrentStorage for CachedFiles {
    /// Creates missing files (a shard being fetched) and their folders; leaves existing ones as
    /// they are.
    fn init(
        &mut self,
        _shared: &ManagedTorrentShared,
        _metadata: &TorrentMetadata,
    ) -> anyhow::Result<()> {
        for path in self.paths.iter().flatten() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| FileError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            self.cache.get(path, true)?;
        }
        Ok(())
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        Ok(self.file(file_id)?.read_exact_at(buf, offset)?)
    }

    fn pwrite_all(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        Ok(self.file(file_id)?.write_all_at(buf, offset)?)
    }

    fn pwrite_all_vectored(
        &self,
        file_id: usize,
        offset: u64,
        bufs: [IoSlice<'_>; 2],
    ) -> anyhow::Result<usize> {
        let file = self.file(file_id)?;
        file.write_all_at(&bufs[0], offset)?;
        file.write_all_at(&bufs[1], offset + bufs[0].len() as u64)?;
        Ok(bufs[0].len() + bufs[1].len())
    }

    fn remove_file(&self, _file_id: usize, filename: &Path) -> anyhow::Result<()> {
        let path = self.folder.join(filename);
        self.cache.forget(&path);
        std::fs::remove_file(&path).map_err(|source| FileError::Io { path, source })?;
        Ok(())
    }

    fn remove_directory_if_empty(&self, path: &Path) -> anyhow::Result<()> {
        let path = self.folder.join(path);
        let empty = std::fs::read_dir(&path)
            .map_err(|source| FileError::Io {
                path: path.clone(),
                source,
            })?
            .next()
            .is_none();
        if empty {
            std::fs::remove_dir(&path).map_err(|source| FileError::Io { path, source })?;
        }
        Ok(())
    }

    fn ensure_file_length(&self, file_id: usize, length: u64) -> anyhow::Result<()> {
        Ok(self.file(file_id)?.ensure_len(length)?)
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        self.retired.store(true, Ordering::Release);
        Ok(Box::new(CachedFiles {
            cache: self.cache.clone(),
            folder: self.folder.clone(),
            paths: self.paths.clone(),
            retired: AtomicBool::new(false),
        }))
    }
}

impl Drop for CachedFiles {
    /// The storage in use is dropped when its shard leaves the session: its files need no
    /// descriptor any more.
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Acquire) {
            for path in self.paths.iter().flatten() {
                self.cache.forget(path);
            }
        }
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
