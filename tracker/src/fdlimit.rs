//! The gateway's open-file limit, raised at start. Every client connection, node control
//! connection, tracker request, staged shard and librqbit torrent takes a descriptor; under
//! systemd's default soft limit (1,024) a busy gateway runs out and fails requests with "Too
//! many open files". The soft limit goes up to the hard limit, which the operator sets
//! (`LimitNOFILE=` in the unit, `ulimit -Hn`). The node has the same function
//! (`raidtorrent_peer::fds`): the two crates share no code but the pure ones.

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

/// Raises the limit and logs the budget the gateway runs with.
pub fn raise_and_log() {
    match raise_nofile() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit"),
        Err(e) => tracing::warn!("raising the open-file limit: {e}"),
    }
}
