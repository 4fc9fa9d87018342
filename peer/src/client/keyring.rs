//! The keyring: a text file of the capabilities this user made, one line per object,
//! `bucket/key<TAB>capability`, readable only by its owner (mode 0600). A re-put replaces the
//! object's line; `rm` removes it. Keys cannot hold tabs or newlines (the gateway refuses
//! control characters), so the format needs no escaping.
//!
//! Every change rewrites the file through a temporary file in the same directory and a rename,
//! so a crash leaves either the old keyring or the new one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the keyring could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no keyring location: set --keyring, XDG_CONFIG_HOME or HOME")]
    NoLocation,
}

/// The keyring file at one path (it need not exist yet).
#[derive(Debug, Clone)]
pub struct Keyring {
    path: PathBuf,
}

impl Keyring {
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Keyring { path: path.into() }
    }

    /// `$XDG_CONFIG_HOME/raidtorrent/keyring`, else `~/.config/raidtorrent/keyring`.
    pub fn default_path() -> Result<PathBuf, KeyringError> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
            .ok_or(KeyringError::NoLocation)?;
        Ok(config.join("raidtorrent").join("keyring"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The capability stored for `name` (`bucket/key`).
    pub fn get(&self, name: &str) -> Result<Option<String>, KeyringError> {
        Ok(self
            .lines()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, cap)| cap))
    }

    /// Every `(bucket/key, capability)` line, in file order.
    pub fn lines(&self) -> Result<Vec<(String, String)>, KeyringError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, c)| (n.to_owned(), c.trim().to_owned()))
            .collect())
    }

    /// Stores `cap` for `name`, replacing an earlier line for it.
    pub fn put(&self, name: &str, cap: &str) -> Result<(), KeyringError> {
        let mut lines = self.lines()?;
        lines.retain(|(n, _)| n != name);
        lines.push((name.to_owned(), cap.to_owned()));
        self.write(&lines)
    }

    /// Removes `name`'s line; true if there was one.
    pub fn remove(&self, name: &str) -> Result<bool, KeyringError> {
        let mut lines = self.lines()?;
        let before = lines.len();
        lines.retain(|(n, _)| n != name);
        if lines.len() == before {
            return Ok(false);
        }
        self.write(&lines)?;
        Ok(true)
    }

    fn write(&self, lines: &[(String, String)]) -> Result<(), KeyringError> {
        let text: String = lines.iter().map(|(n, c)| format!("{n}\t{c}\n")).collect();
        write_private(&self.path, text.as_bytes()).map_err(|e| self.err(e))
    }

    fn err(&self, source: io::Error) -> KeyringError {
        KeyringError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Replaces `path` with `bytes`, readable only by its owner (mode 0600): through a temporary
/// file in the same directory and a rename, so a crash leaves either the old file or the new one.
/// The keyring and the put journals, which hold data keys, are both written this way.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // An existing temporary file keeps its mode through `open`: set it again.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_replace_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::at(dir.path().join("sub/keyring"));
        assert_eq!(ring.get("b/k").unwrap(), None);
        ring.put("b/k", "rtcap1:one").unwrap();
        ring.put("b/other", "rtcap1:two").unwrap();
        ring.put("b/k", "rtcap1:three").unwrap();
        assert_eq!(ring.get("b/k").unwrap().as_deref(), Some("rtcap1:three"));
        assert_eq!(ring.lines().unwrap().len(), 2);
        assert!(ring.remove("b/k").unwrap());
        assert!(!ring.remove("b/k").unwrap());
        assert_eq!(ring.get("b/k").unwrap(), None);
        assert_eq!(ring.get("b/other").unwrap().as_deref(), Some("rtcap1:two"));
    }

    #[test]
    fn file_is_private_and_one_line_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::at(dir.path().join("keyring"));
        ring.put("photos/a b.jpg", "rtcap1:x").unwrap();
        let meta = fs::metadata(ring.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(ring.path()).unwrap();
        assert_eq!(text, "photos/a b.jpg\trtcap1:x\n");
    }

    #[test]
    fn keys_containing_slashes_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::at(dir.path().join("keyring"));
        ring.put("b/dir/k", "rtcap1:a").unwrap();
        ring.put("b/dir", "rtcap1:b").unwrap();
        assert_eq!(ring.get("b/dir/k").unwrap().as_deref(), Some("rtcap1:a"));
        assert_eq!(ring.get("b/dir").unwrap().as_deref(), Some("rtcap1:b"));
    }
}
