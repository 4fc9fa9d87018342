//! A gateway among others on one database: its id, its heartbeat, and its term on the
//! cloud-wide work.
//!
//! The health worker, the auditor, the collector and the packer act on every object and node
//! of the cloud, so exactly one gateway runs them at a time: the holder of the work lease
//! (`meta::gateways`). Every gateway renews its heartbeat and tries the lease every third of
//! `lease`; the holder keeps it, the others wait in standby, and when the holder stops
//! renewing (killed, cut off from the database) another takes it once it expires. A holder
//! trusts its lease for two thirds of a lease from the start of its last successful renewal
//! (the database keeps it a whole lease): a renewal that fails, or has not succeeded by then,
//! stops its work before the lease can expire under it. A gateway that stops cleanly gives the
//! lease up so another takes it at its next try.
//!
//! Nodes keep a control connection to every gateway of their cloud, so only the holder counts
//! their online time from those connections (`ControlHub::record_liveness`): no node's time
//! counts twice.
//!
//! Each renewal also reads the nodes revoked since the last one, so a revocation made through
//! any gateway (or the CLI) closes the node's connections to every gateway within a third of
//! a lease.
//!
//! The id is kept in the data directory (`gateway-id`), so a restarted gateway is the same one:
//! it takes its own lease back at once and abandons its own uploads cut short.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;

use super::meta::Meta;
use crate::control::ControlHub;
use crate::registry::unix_now;
use crate::registry::Registry;

/// The lease on the cloud-wide work.
pub(super) const WORK_LEASE: &str = "work";

/// How many leases a gateway may go without a heartbeat before its uploads count as gone. One:
/// a node that was fetching a shard of such an upload from the gone gateway shows it in its
/// reports only while librqbit still lists the gone seeder as a peer, so the sooner the upload
/// is abandoned, the surer that copy is dropped. The price: a live gateway whose heartbeats
/// stall for a lease (its writer busy, a clock ahead) loses its uploads in flight, which then
/// fail cleanly (nothing becomes visible).
const SILENT_LEASES: i64 = 1;

/// The heartbeats older than this (Unix seconds) are of gateways gone, at `now`.
pub(super) fn gone_before(now: i64, lease: Duration) -> i64 {
    now - SILENT_LEASES * lease.as_secs() as i64
}

/// The file in the data directory holding the gateway's id.
const ID_FILE: &str = "gateway-id";

/// The gateway's id: read from its data directory, or made (16 random bytes, hex) and written
/// there (mode 0600) the first time.
pub(super) fn gateway_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if is_id(id.trim()) => return Ok(id.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a gateway id", path.display()),
            ))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| std::io::Error::other("the system RNG failed"))?;
    let id = hex::encode(bytes);
    let mut file = open_new(&path)?;
    file.write_all(format!("{id}\n").as_bytes())?;
    file.sync_all()?;
    Ok(id)
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn open_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Whether this gateway holds the work lease now; cheap to clone.
#[derive(Clone)]
pub(crate) struct Lease {
    held: watch::Receiver<bool>,
}

impl Lease {
    /// A lease that never changes hands (tests of a worker alone).
    #[cfg(test)]
    pub(crate) fn always() -> Lease {
        Lease {
            held: watch::channel(true).1,
        }
    }

    pub(crate) fn held(&self) -> bool {
        *self.held.borrow()
    }

    /// Resolves once the lease is held (at once if it is); never if it can no longer be.
    pub(crate) async fn gained(&mut self) {
        self.until(true).await
    }

    /// Resolves once the lease is lost (at once if it is not held); never if it can no longer
    /// be.
    pub(crate) async fn lost(&mut self) {
        self.until(false).await
    }

    async fn until(&mut self, held: bool) {
        if self.held.wait_for(|h| *h == held).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Renews the heartbeat and the work lease until `shutdown`; gives the lease up then.
pub(super) struct Term {
    pub meta: Meta,
    /// Learns with every renewal the revocations made elsewhere.
    pub registry: Registry,
    /// Counts the nodes' online time only while this gateway holds the lease.
    pub hub: ControlHub,
    pub id: String,
    pub started_at: i64,
    pub lease: Duration,
    pub held: Arc<watch::Sender<bool>>,
}

impl Term {
    /// The lease as `held` shows it.
    pub(super) fn lease(held: &watch::Sender<bool>) -> Lease {
        Lease {
            held: held.subscribe(),
        }
    }

    pub(super) async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut revoked_since = self.started_at - self.lease.as_secs() as i64;
        // While held: until when this gateway may trust it. The database keeps it until at
        // least a lease after the renewal began; trusting it a third less leaves room for
        // clocks and for the workers to stop.
        let mut trusted_until: Option<Instant> = None;
        loop {
            let began = Instant::now();
            let budget = match trusted_until {
                Some(t) => (self.lease / 3).min(t.saturating_duration_since(began)),
                None => self.lease / 3,
            };
            let held = self.renew(budget).await;
            trusted_until = held.then(|| began + self.lease * 2 / 3);
            self.publish(held);
            let sync = self.sync_revocations(revoked_since);
            if let Ok(next) = tokio::time::timeout(self.lease / 3, sync).await {
                revoked_since = next;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(began + self.lease / 3) => {}
            }
        }
        if *self.held.borrow() {
            self.held.send_replace(false);
            if let Err(e) = self.meta.release_lease(WORK_LEASE, &self.id).await {
                tracing::warn!(error = %e, "the work lease was not given up; it expires instead");
            }
        }
    }

    /// Tells the workers (and the liveness records) whether the lease is held.
    fn publish(&self, held: bool) {
        self.hub.record_liveness(held);
        self.held.send_if_modified(|h| {
            if *h == held {
                return false;
            }
            *h = held;
            match held {
                true => tracing::info!(gateway = %self.id, "work lease taken: this gateway does the cloud-wide work"),
                false => tracing::info!(gateway = %self.id, "standing by: another gateway holds the work lease, or it could not be renewed"),
            }
            true
        });
    }

    /// Revokes here the nodes revoked elsewhere (the CLI, another gateway) since `since`, so
    /// their connections to this gateway close too; returns where the next look starts (a
    /// lease back, for clocks that disagree).
    async fn sync_revocations(&self, since: i64) -> i64 {
        let now = unix_now();
        match self.registry.sync_revocations(since).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(nodes = n, "nodes revoked elsewhere are revoked here too"),
            Err(e) => {
                tracing::warn!(error = %e, "revocations made elsewhere not read; trying again");
                return since;
            }
        }
        now - self.lease.as_secs() as i64
    }

    /// Writes the heartbeat and takes or renews the lease; whether it is held. A failure, or
    /// no answer within `budget` (at most what is left of the trusted term), counts as not
    /// held: the workers stop before the lease can expire in the database.
    async fn renew(&self, budget: Duration) -> bool {
        let now = unix_now();
        let secs = self.lease.as_secs().max(1) as i64;
        let renewed = async {
            self.meta
                .gateway_alive(&self.id, self.started_at, now)
                .await?;
            self.meta.take_lease(WORK_LEASE, &self.id, now, secs).await
        };
        match tokio::time::timeout(budget, renewed).await {
            Ok(Ok(held)) => held,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "heartbeat and work lease not renewed");
                false
            }
            Err(_) => {
                tracing::warn!("heartbeat and work lease not renewed in time");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlConfig;
    use crate::registry::{records, Registry};

    /// A term of gateway `id` on `db`, with a lease of 3 s (renewed every second).
    async fn term(db: &Registry, id: &str) -> (Term, Lease) {
        let (_, recorder) = records::recorder(db.clone(), 16, Duration::from_secs(60))
            .await
            .unwrap();
        let held = Arc::new(watch::channel(false).0);
        let lease = Term::lease(&held);
        let term = Term {
            meta: Meta::new(db.db().clone()),
            registry: db.clone(),
            hub: ControlHub::new(db.clone(), recorder, ControlConfig::default()),
            id: id.into(),
            started_at: 1,
            lease: Duration::from_secs(3),
            held,
        };
        (term, lease)
    }

    async fn until(mut stop: watch::Receiver<bool>) {
        let _ = stop.wait_for(|s| *s).await;
    }

    async fn one_holder_at_a_time_and_a_clean_stop_hands_the_lease_over(db: Registry) {
        let (a, mut held_by_a) = term(&db, "a").await;
        let (stop_a, stopped_a) = watch::channel(false);
        let a = tokio::spawn(a.run(until(stopped_a)));
        held_by_a.gained().await;

        let (b, mut held_by_b) = term(&db, "b").await;
        assert!(!b.renew(Duration::from_secs(1)).await, "a holds it");
        let meta = b.meta.clone();
        assert!(meta.others_alive("b", 0).await.unwrap());
        let (stop_b, stopped_b) = watch::channel(false);
        let b = tokio::spawn(b.run(until(stopped_b)));

        // a stops cleanly: it gives the lease up, and b takes it at its next try.
        stop_a.send(true).unwrap();
        a.await.unwrap();
        assert!(!held_by_a.held());
        held_by_b.gained().await;
        let (holder, _) = meta.lease_holder(WORK_LEASE).await.unwrap().unwrap();
        assert_eq!(holder, "b");

        stop_b.send(true).unwrap();
        b.await.unwrap();
        assert_eq!(meta.lease_holder(WORK_LEASE).await.unwrap().unwrap().1, 0);
    }

    crate::registry::test_engines::on_both_engines!(
        one_holder_at_a_time_and_a_clean_stop_hands_the_lease_over
    );

    #[test]
    fn the_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = gateway_id(dir.path()).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(gateway_id(dir.path()).unwrap(), id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ID_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(gateway_id(other.path()).unwrap(), id);
        std::fs::write(dir.path().join(ID_FILE), "not an id!\n").unwrap();
        let err = gateway_id(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("does not hold a gateway id"),
            "{err}"
        );
    }
}
