//! The node's open-file limit and its budget for shard files. Shard data files are opened on
//! demand through one cache of at most `limits.open_files` descriptors (see `files.rs`), so a node
//! needs a fixed number of descriptors however many shards it holds. The binary still raises the
//! soft limit to the hard one at start ([`raise_nofile`]) for peer connections; under a low limit
//! (1,024 is systemd's default soft limit) the shard-file budget shrinks to fit
//! ([`shard_file_budget`]), leaving room for sockets, rather than failing with "Too many open
//! files".

use std::path::{Path, PathBuf};

/// Raises the soft limit on open files to the hard limit; returns `(soft, hard)` afterwards.
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    let mut lim = current()?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit for RLIMIT_NOFILE.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let lim = current()?;
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// The soft limit on open files now in force.
pub fn nofile_limit() -> std::io::Result<u64> {
    Ok(current()?.rlim_cur as u64)
}

fn current() -> std::io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lim)
}

/// How many descriptors shard files may take under an open-file limit of `limit`: a quarter of the
/// limit (at least 64, at most half) is left for peer connections, the tracker and control
/// connections and the node's own files.
pub fn descriptor_budget(limit: u64) -> usize {
    let reserve = (limit / 4).max(64).min(limit / 2);
    usize::try_from(limit - reserve).unwrap_or(usize::MAX)
}

/// The shard-file cache's size: the configured `limits.open_files`, lowered to fit under the
/// open-file limit, and at least one.
pub fn shard_file_budget(configured: usize, limit: u64) -> usize {
    configured.min(descriptor_budget(limit)).max(1)
}

/// The files this process has open under `dir`, from `/proc/self/fd` (sorted; empty where there
/// is no procfs).
pub fn files_open_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut open: Vec<PathBuf> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect();
    open.sort();
    open
}

/// How many files this process has open under `dir`.
pub fn open_files_under(dir: &Path) -> usize {
    files_open_under(dir).len()
}

/// How many descriptors this process has open (entries of `/proc/self/fd`; 0 without procfs).
pub fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_sockets() {
        assert_eq!(descriptor_budget(1024), 768);
        assert_eq!(descriptor_budget(256), 192);
        assert_eq!(descriptor_budget(100), 50);
        assert_eq!(descriptor_budget(0), 0);
        assert_eq!(descriptor_budget(1 << 20), 786_432);
        assert!(descriptor_budget(u64::MAX) > 0);
    }

    #[test]
    fn the_shard_file_budget_is_the_configured_one_unless_the_limit_is_lower() {
        assert_eq!(shard_file_budget(256, 1024), 256);
        assert_eq!(shard_file_budget(256, 256), 192);
        assert_eq!(shard_file_budget(256, 0), 1);
        assert_eq!(shard_file_budget(8, u64::MAX), 8);
    }

    #[test]
    fn open_files_are_counted_under_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let file = std::fs::File::create(&path).unwrap();
        assert_eq!(
            files_open_under(dir.path()),
            vec![path.canonicalize().unwrap()]
        );
        assert!(open_files() >= 1);
        drop(file);
        assert_eq!(open_files_under(dir.path()), 0);
    }

    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let (soft, hard) = raise_nofile().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(nofile_limit().unwrap(), soft);
    }
}
