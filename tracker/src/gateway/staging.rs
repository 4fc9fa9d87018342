//! Staging folders: where the write path encodes an object's shards and repair rebuilds lost ones,
//! seeded from the gateway's own session until their nodes confirm copies.
//!
//! Life of a folder: created under `<data_dir>/staging/<random>` → files written on a blocking
//! thread → shards seeded (each hash-checked by librqbit) → [`Staging::finish`], on every path,
//! stops seeding whatever is still seeded and removes the folder. A gateway that stops part-way
//! leaves folders behind; [`wipe_leftovers`] removes them at the next start (the session starts
//! empty, so they are only disk space then).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raidtorrent_codec::{InfoHash, ShardInfo};

use super::local::LocalPeer;
use super::GatewayError;

/// Folders under the data folder that hold nothing worth keeping across a restart: staged
/// shards, and shards fetched for reads.
const LEFTOVERS: [&str; 2] = ["staging", "reads"];

/// Removes what an earlier run left in the staging and read folders.
pub(super) async fn wipe_leftovers(data_dir: &Path) {
    for leftover in LEFTOVERS {
        let dir = data_dir.join(leftover);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "leftovers not removed"),
        }
    }
}

fn staging_err(what: &str) -> impl Fn(std::io::Error) -> GatewayError + '_ {
    move |e| GatewayError::Internal(format!("{what}: {e}"))
}

/// One staging folder and what its session seeds from it.
pub(super) struct Staging {
    dir: PathBuf,
    local: LocalPeer,
    seeded: Vec<InfoHash>,
}

impl Staging {
    /// A new, empty folder.
    pub(super) async fn create(data_dir: &Path, local: &LocalPeer) -> Result<Self, GatewayError> {
        let dir = data_dir.join("staging").join(ShardInfo::random_name());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(staging_err("staging folder"))?;
        Ok(Staging {
            dir,
            local: local.clone(),
            seeded: Vec::new(),
        })
    }

    /// Creates files `names` in the folder and runs `fill` on a blocking thread with a buffered
    /// writer for each; the writers are flushed after it.
    pub(super) async fn write<T, F>(&self, names: Vec<String>, fill: F) -> Result<T, GatewayError>
    where
        T: Send + 'static,
        F: FnOnce(&mut [BufWriter<File>]) -> Result<T, GatewayError> + Send + 'static,
    {
        let mut outs = self.open_files(&names).await?;
        let (made, outs) = blocking(move || Ok((fill(&mut outs)?, outs))).await?;
        self.close_files(outs).await?;
        Ok(made)
    }

    /// Creates files `names` in the folder, each behind a buffered writer, for a caller that
    /// fills them in several blocking steps and then hands them to [`Staging::close_files`].
    pub(super) async fn open_files(
        &self,
        names: &[String],
    ) -> Result<Vec<BufWriter<File>>, GatewayError> {
        let paths: Vec<PathBuf> = names.iter().map(|n| self.dir.join(n)).collect();
        blocking(move || {
            paths
                .iter()
                .map(|p| File::create(p).map(BufWriter::new))
                .collect::<Result<Vec<_>, _>>()
                .map_err(staging_err("staging file"))
        })
        .await
    }

    /// Flushes writers from [`Staging::open_files`].
    pub(super) async fn close_files(&self, outs: Vec<BufWriter<File>>) -> Result<(), GatewayError> {
        blocking(move || {
            for o in outs {
                o.into_inner()
                    .map_err(|e| staging_err("staging file")(e.into_error()))?;
            }
            Ok(())
        })
        .await
    }

    /// Renames a file of the folder.
    pub(super) async fn rename(&self, from: &str, to: &str) -> Result<(), GatewayError> {
        tokio::fs::rename(self.dir.join(from), self.dir.join(to))
            .await
            .map_err(staging_err("staging file"))
    }

    /// Seeds a shard whose file is in the folder; resolves once its pieces checked out.
    pub(super) async fn seed(
        &mut self,
        info: &ShardInfo,
        timeout: Duration,
    ) -> Result<(), GatewayError> {
        let torrent = self.local.torrent(info);
        self.seeded.push(info.info_hash());
        self.local
            .session
            .seed(&self.dir, torrent, timeout)
            .await
            .map_err(|e| GatewayError::Internal(format!("seeding a staged shard: {e:#}")))
    }

    /// Stops seeding a shard and deletes its file.
    pub(super) async fn unseed(&mut self, ih: InfoHash) {
        self.seeded.retain(|s| *s != ih);
        self.local.session.forget(ih, true).await;
    }

    /// Stops seeding everything and removes the folder.
    pub(super) async fn finish(mut self) {
        for ih in std::mem::take(&mut self.seeded) {
            self.local.session.forget(ih, true).await;
        }
        // Forgetting the last shard may already have removed the emptied folder.
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "staging folder not removed")
            }
        }
    }
}

/// Runs `f` on a blocking thread.
pub(super) async fn blocking<T, F>(f: F) -> Result<T, GatewayError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, GatewayError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatewayError::Internal(format!("staging task: {e}")))?
}
