//! Shards fetched for reads and rebuilds, shared by concurrent readers of the same object: a
//! shard's file stays while any reader holds a lease on it, and goes with the last.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use raidtorrent_codec::InfoHash;

use super::session::PeerSession;

#[derive(Default)]
pub(super) struct Leases {
    counts: tokio::sync::Mutex<HashMap<InfoHash, usize>>,
}

impl Leases {
    /// Takes a lease on a shard; returns the folder its file is fetched into.
    pub(super) async fn acquire(&self, ih: InfoHash, data_dir: &Path) -> PathBuf {
        *self.counts.lock().await.entry(ih).or_default() += 1;
        data_dir.join("reads").join(ih.to_hex())
    }

    /// Gives a lease back; the last one stops the session's torrent and deletes the file.
    pub(super) async fn release(&self, session: &PeerSession, ih: InfoHash) {
        let mut counts = self.counts.lock().await;
        let Some(c) = counts.get_mut(&ih) else { return };
        *c -= 1;
        if *c == 0 {
            counts.remove(&ih);
            // Still under the lock, so a new read cannot start on a file being deleted.
            session.forget(ih, true).await;
        }
    }
}
