//! The node's open-file budget. librqbit keeps every shard's data file open while the shard is in
//! the session, so a node under a low `RLIMIT_NOFILE` (1,024 is systemd's default soft limit) runs
//! out of descriptors once it holds about that many shards, and every later file or socket fails
//! with "Too many open files". The binary raises the soft limit to the hard one at start
//! ([`raise_nofile`]); the node keeps the shards in its session within [`torrent_budget`] of the
//! limit, and parks the rest on disk (see `STATE.md`), so the shortage never turns into a copy
//! forgotten or deleted.

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

/// How many shards may be in the session under an open-file limit of `limit`: one descriptor
/// each, leaving a quarter of the limit (at least 64, at most half) for peer connections, the
/// tracker and control connections and the node's own files.
pub fn torrent_budget(limit: u64) -> usize {
    let reserve = (limit / 4).max(64).min(limit / 2);
    usize::try_from(limit - reserve).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_sockets() {
        assert_eq!(torrent_budget(1024), 768);
        assert_eq!(torrent_budget(256), 192);
        assert_eq!(torrent_budget(100), 50);
        assert_eq!(torrent_budget(0), 0);
        assert_eq!(torrent_budget(1 << 20), 786_432);
        assert!(torrent_budget(u64::MAX) > 0);
    }

    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let (soft, hard) = raise_nofile().unwrap();
        assert_eq!(soft, hard);
        assert_eq!(nofile_limit().unwrap(), soft);
    }
}
