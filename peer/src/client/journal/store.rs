//! Where the journals live and who holds them: one `<id>.json` and `<id>.lock` per `put` in
//! `puts/` beside the keyring, the lock held (`flock`) by the running `put`.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::{Journal, JournalError};
use crate::client::keyring::write_private;

/// The journals directory: `puts/` beside the keyring.
#[derive(Debug, Clone)]
pub struct Journals {
    dir: PathBuf,
}

impl Journals {
    pub fn beside(keyring: &Path) -> Self {
        let parent = keyring.parent().unwrap_or(Path::new("."));
        Journals {
            dir: parent.join("puts"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a journal for this process: its lock taken, then `journal` written.
    pub fn begin(&self, journal: &Journal) -> Result<Slot, JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.err(&self.dir, e))?;
        let id = random_id();
        // Locked under a name no sweeper reads, then renamed: a sweeper never sees it unlocked.
        let tmp = self.dir.join(format!(".{id}.lock.tmp"));
        let lock = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(&tmp, e))?;
        if !try_lock(&lock).map_err(|e| self.err(&tmp, e))? {
            return Err(self.err(&tmp, io::Error::other("locked by another process")));
        }
        let slot = Slot {
            dir: self.dir.clone(),
            id,
            folder: Some(journal.folder.clone()),
            _lock: lock,
        };
        fs::rename(&tmp, slot.lock_path()).map_err(|e| self.err(&tmp, e))?;
        slot.write(journal)?;
        Ok(slot)
    }

    /// Takes every journal whose `put` is gone, with its contents (none when it is unreadable
    /// or was never written). Journals of running puts are left alone.
    pub fn dead(&self) -> Result<Vec<(Slot, Option<Journal>)>, JournalError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.err(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".lock").filter(|i| !i.starts_with('.')) else {
                continue;
            };
            if let Some(taken) = self.take(id)? {
                out.push(taken);
            }
        }
        Ok(out)
    }

    /// Takes the journal `id` if its lock is free.
    fn take(&self, id: &str) -> Result<Option<(Slot, Option<Journal>)>, JournalError> {
        let path = self.dir.join(format!("{id}.lock"));
        let lock = match fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            // Removed by another sweeper since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(&path, e)),
        };
        if !try_lock(&lock).map_err(|e| self.err(&path, e))? {
            return Ok(None);
        }
        let mut slot = Slot {
            dir: self.dir.clone(),
            id: id.to_owned(),
            folder: None,
            _lock: lock,
        };
        // A sweeper that removed this journal since removed its contents first.
        let journal = fs::read(slot.journal_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Journal>(&b).ok());
        slot.folder = journal.as_ref().map(|j| j.folder.clone());
        Ok(Some((slot, journal)))
    }

    fn err(&self, path: &Path, source: io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One journal, locked by this process for as long as the value lives.
#[derive(Debug)]
pub struct Slot {
    dir: PathBuf,
    id: String,
    folder: Option<PathBuf>,
    _lock: File,
}

impl Slot {
    /// Replaces the journal's contents.
    pub fn write(&self, journal: &Journal) -> Result<(), JournalError> {
        let bytes =
            serde_json::to_vec_pretty(journal).map_err(|e| JournalError::Damaged(e.to_string()))?;
        let path = self.journal_path();
        write_private(&path, &bytes).map_err(|source| JournalError::Io { path, source })
    }

    /// Removes the shard folder, then the journal, then its lock: a crash half-way leaves a
    /// journal the next `put` still finds.
    pub fn discard(self) {
        if let Some(folder) = &self.folder {
            remove(fs::remove_dir_all(folder), folder);
        }
        remove(fs::remove_file(self.journal_path()), &self.journal_path());
        remove(fs::remove_file(self.lock_path()), &self.lock_path());
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.id))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.id))
    }
}

/// Logs a removal that failed for another reason than the file being gone already.
fn remove(result: io::Result<()>, path: &Path) {
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove");
        }
        _ => {}
    }
}

/// Takes an exclusive `flock` without waiting: false when another open file holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` on a descriptor `file` owns for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        true => Ok(false),
        false => Err(e),
    }
}

fn random_id() -> String {
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .expect("the system random number generator is available");
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::journal::Target;

    fn target() -> Target {
        Target {
            source: None,
            gateway: "http://gw:8080".into(),
            bucket: "photos".into(),
            key: "holiday.mp4".into(),
        }
    }

    #[test]
    fn a_live_puts_journal_is_not_taken_and_a_dead_ones_is() {
        let home = tempfile::tempdir().unwrap();
        let journals = Journals::beside(&home.path().join("keyring"));
        let folder = home.path().join("shards");
        fs::create_dir(&folder).unwrap();
        let slot = journals.begin(&Journal::begin(&target(), &folder)).unwrap();
        let meta = fs::metadata(journals.dir().join(format!("{}.json", slot.id))).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // Its lock is held: another taker (here another open file) finds nothing to take.
        assert!(journals.dead().unwrap().is_empty());
        drop(slot);
        let mut dead = journals.dead().unwrap();
        assert_eq!(dead.len(), 1);
        let (slot, journal) = dead.pop().unwrap();
        assert_eq!(journal.unwrap().folder, folder);
        // Taken: nobody else takes it meanwhile.
        assert!(journals.dead().unwrap().is_empty());
        slot.discard();
        assert!(!folder.exists());
        assert_eq!(fs::read_dir(journals.dir()).unwrap().count(), 0);
    }
}
