//! Storage quotas of S3 access keys: a write reserves its bytes before it stores them, so writes
//! in progress cannot together take a key past its quota.
//!
//! Invariants:
//! - a key's bytes in use are those of its live objects (read from the metadata store,
//!   `Meta::key_usage`) plus those this gateway holds for its writes in progress;
//! - a write's bytes are held from its reservation until its [`QuotaHold`] is dropped: after
//!   its object is committed (the store counts them from then on) or after it failed;
//! - the store is read outside the lock, so a write may commit and give its hold back while
//!   the read runs. Bytes given back during the read are counted as in use (twice at worst,
//!   never missed); a refusal only they caused is tried once more with a fresh read;
//! - the ledger keeps an entry for each key with a quota that wrote since start, so it is
//!   bounded by the keys the operator made; it is never held across an await.
//!
//! Reservations are this gateway's own: two gateways over one database do not see each other's
//! writes in progress, only their committed objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::meta::Meta;
use super::{ActiveKey, Gateway, GatewayError};

/// One key's writes in progress.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Ledger {
    /// Bytes held by live reservations.
    held: u64,
    /// Bytes given back since the gateway started; only grows.
    released: u64,
}

type Ledgers = Arc<Mutex<HashMap<String, Ledger>>>;

/// The reservations of every key, shared with the holds that give them back.
#[derive(Default)]
pub(super) struct QuotaLedgers(Ledgers);

/// Bytes reserved against an access key's quota for one write; given back when dropped.
#[must_use = "the reservation ends when the hold is dropped"]
pub struct QuotaHold {
    /// The ledgers and key to give the bytes back to; none for a key without a quota.
    owner: Option<(Ledgers, String)>,
    bytes: u64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    /// Bytes taken already.
    in_use: u64,
    /// Refused only because of bytes given back while the store was read, which a fresh read
    /// may show were committed, or not.
    raced: bool,
}

/// Whether `asked` more bytes fit a key's `quota`, given `stored` (its live objects, read after
/// its ledger showed `released_before` given back) and its ledger `now`.
fn judge(
    quota: u64,
    stored: u64,
    now: Ledger,
    released_before: u64,
    asked: u64,
) -> Result<(), Refusal> {
    // In u128, where no sum of four u64 overflows: a total past u64::MAX never fits.
    let settled = u128::from(stored) + u128::from(now.held);
    let in_use = settled + u128::from(now.released.saturating_sub(released_before));
    let (quota, asked) = (u128::from(quota), u128::from(asked));
    if in_use + asked <= quota {
        return Ok(());
    }
    Err(Refusal {
        in_use: u64::try_from(in_use).unwrap_or(u64::MAX),
        raced: settled + asked <= quota,
    })
}

fn lock(ledgers: &Ledgers) -> MutexGuard<'_, HashMap<String, Ledger>> {
    // The map stays consistent whatever panicked while holding it: every update is one step.
    ledgers.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QuotaLedgers {
    /// Bytes `key`'s holds gave back so far.
    fn released(&self, key: &str) -> u64 {
        lock(&self.0).get(key).map_or(0, |l| l.released)
    }

    /// Holds `asked` bytes for `key` if they fit its `quota` (see [`judge`]).
    fn try_hold(
        &self,
        key: &str,
        quota: u64,
        stored: u64,
        released_before: u64,
        asked: u64,
    ) -> Result<QuotaHold, Refusal> {
        let mut map = lock(&self.0);
        let ledger = map.entry(key.to_owned()).or_default();
        judge(quota, stored, *ledger, released_before, asked)?;
        ledger.held += asked;
        Ok(QuotaHold {
            owner: Some((self.0.clone(), key.to_owned())),
            bytes: asked,
        })
    }
}

impl std::fmt::Debug for QuotaHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaHold")
            .field("access_key", &self.owner.as_ref().map(|(_, key)| key))
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl QuotaHold {
    /// The bytes this hold keeps for its write.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for QuotaHold {
    fn drop(&mut self) {
        let Some((ledgers, key)) = &self.owner else {
            return;
        };
        if let Some(l) = lock(ledgers).get_mut(key) {
            l.held = l.held.saturating_sub(self.bytes);
            l.released = l.released.saturating_add(self.bytes);
        }
    }
}

impl Gateway {
    /// Reserves `bytes` of `key`'s quota for a write, until the returned hold is dropped: drop
    /// it once the object is committed, or the write failed. `QuotaExceeded` when the key's live
    /// objects, its other writes in progress on this gateway and `bytes` together exceed its
    /// quota. A key without a quota always gets a hold, without reading the store.
    pub async fn reserve_quota(
        &self,
        key: &ActiveKey,
        bytes: u64,
    ) -> Result<QuotaHold, GatewayError> {
        reserve(&self.inner.meta, &self.inner.quotas, key, bytes).await
    }

    /// The hold a write of `size` bytes (None: not announced) by access key `key` needs (None
    /// for the operator's writes). A key with a quota must announce its size.
    pub async fn reserve_write(
        &self,
        key: Option<&ActiveKey>,
        size: Option<u64>,
    ) -> Result<Option<QuotaHold>, GatewayError> {
        let Some(key) = key else {
            return Ok(None);
        };
        let bytes = match (key.quota_bytes, size) {
            (_, Some(size)) => size,
            (None, None) => 0,
            (Some(_), None) => {
                return Err(GatewayError::BadRequest(
                    "a write with an access key that has a quota must announce its size \
                     (Content-Length)"
                        .into(),
                ))
            }
        };
        self.reserve_quota(key, bytes).await.map(Some)
    }
}

async fn reserve(
    meta: &Meta,
    ledgers: &QuotaLedgers,
    key: &ActiveKey,
    bytes: u64,
) -> Result<QuotaHold, GatewayError> {
    let Some(quota) = key.quota_bytes else {
        return Ok(QuotaHold { owner: None, bytes });
    };
    let mut retried = false;
    loop {
        let before = ledgers.released(&key.access_key);
        let stored = meta.key_usage(&key.access_key).await?;
        match ledgers.try_hold(&key.access_key, quota, stored, before, bytes) {
            Ok(hold) => return Ok(hold),
            Err(Refusal { raced: true, .. }) if !retried => retried = true,
            Err(r) => return Err(exceeded(key, quota, r.in_use, bytes)),
        }
    }
}

fn exceeded(key: &ActiveKey, quota: u64, used: u64, asked: u64) -> GatewayError {
    GatewayError::QuotaExceeded {
        access_key: key.access_key.clone(),
        quota,
        used,
        asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::meta::{NewObject, StoredBody};
    use crate::registry::Registry;

    const IDLE: Ledger = Ledger {
        held: 0,
        released: 0,
    };

    fn held(held: u64) -> Ledger {
        Ledger { held, released: 0 }
    }

    #[test]
    fn a_write_fits_up_to_the_quota_exactly() {
        assert_eq!(judge(100, 60, IDLE, 0, 40), Ok(()));
        let over = judge(100, 60, IDLE, 0, 41).unwrap_err();
        assert_eq!((over.in_use, over.raced), (60, false));
        assert_eq!(judge(0, 0, IDLE, 0, 0), Ok(()));
        assert!(judge(0, 0, IDLE, 0, 1).is_err());
    }

    #[test]
    fn writes_in_progress_count_as_used() {
        assert_eq!(judge(100, 30, held(30), 0, 40), Ok(()));
        let over = judge(100, 30, held(31), 0, 40).unwrap_err();
        assert_eq!((over.in_use, over.raced), (61, false));
    }

    #[test]
    fn bytes_given_back_during_the_read_count_until_read_again() {
        // 50 bytes were given back while the store was read: perhaps committed, perhaps not.
        let now = Ledger {
            held: 0,
            released: 70,
        };
        assert_eq!(judge(100, 20, now, 20, 30), Ok(()));
        let raced = judge(100, 20, now, 20, 31).unwrap_err();
        assert_eq!((raced.in_use, raced.raced), (70, true));
        // Over even without them: no second read helps.
        assert!(!judge(100, 20, now, 20, 81).unwrap_err().raced);
        // Bytes given back before the read began are in the store's answer, or gone.
        assert_eq!(judge(100, 20, now, 70, 80), Ok(()));
    }

    #[test]
    fn sums_past_u64_do_not_wrap_or_fit() {
        let full = Ledger {
            held: u64::MAX,
            released: u64::MAX,
        };
        let over = judge(u64::MAX, u64::MAX, full, 0, u64::MAX).unwrap_err();
        assert_eq!(over.in_use, u64::MAX);
        assert_eq!(judge(u64::MAX, 0, IDLE, 0, u64::MAX), Ok(()));
        assert!(judge(u64::MAX, 1, IDLE, 0, u64::MAX).is_err());
        assert!(judge(u64::MAX, 0, held(1), 0, u64::MAX).is_err());
    }

    #[test]
    fn a_hold_gives_its_bytes_back_when_dropped() {
        let ledgers = QuotaLedgers::default();
        let a = ledgers.try_hold("RTA", 100, 0, 0, 60).unwrap();
        assert_eq!(a.bytes(), 60);
        let refused = ledgers.try_hold("RTA", 100, 0, 0, 41).unwrap_err();
        assert_eq!(refused.in_use, 60);
        // Another key's quota is its own.
        let _b = ledgers.try_hold("RTB", 100, 0, 0, 100).unwrap();
        drop(a);
        assert_eq!(ledgers.released("RTA"), 60);
        assert_eq!(lock(&ledgers.0)["RTA"].held, 0);
        let _c = ledgers.try_hold("RTA", 100, 0, 60, 100).unwrap();
        assert_eq!(ledgers.released("RTB"), 0);
    }

    fn key(quota_bytes: Option<u64>) -> ActiveKey {
        ActiveKey {
            access_key: "RTQUOTA".into(),
            secret: String::new(),
            buckets: vec![super::super::ALL_BUCKETS.into()],
            quota_bytes,
        }
    }

    #[tokio::test]
    async fn reservations_count_each_other() {
        let registry = Registry::open_in_memory().await.unwrap();
        let meta = Meta::new(registry.db().clone());
        let ledgers = QuotaLedgers::default();
        let limited = key(Some(100));
        let first = reserve(&meta, &ledgers, &limited, 70).await.unwrap();
        let err = reserve(&meta, &ledgers, &limited, 31).await.err().unwrap();
        assert!(
            matches!(
                err,
                GatewayError::QuotaExceeded {
                    quota: 100,
                    used: 70,
                    asked: 31,
                    ..
                }
            ),
            "{err}"
        );
        let second = reserve(&meta, &ledgers, &limited, 30).await.unwrap();
        drop((first, second));
        assert!(reserve(&meta, &ledgers, &limited, 100).await.is_ok());
        // No quota: any size, nothing held.
        let free = reserve(&meta, &ledgers, &key(None), u64::MAX)
            .await
            .unwrap();
        assert_eq!(free.bytes(), u64::MAX);
        assert_eq!(lock(&ledgers.0)["RTQUOTA"].held, 0);
    }

    #[tokio::test]
    async fn reservations_count_the_keys_live_objects() {
        let registry = Registry::open_in_memory().await.unwrap();
        let meta = Meta::new(registry.db().clone());
        let ledgers = QuotaLedgers::default();
        let limited = key(Some(100));
        let policy = crate::gateway::BucketPolicy {
            k: 2,
            m: 1,
            copies: 1,
            high_share: 0.0,
            inline_max: 4096,
        };
        meta.create_bucket("photos", &policy, 1).await.unwrap();
        let object = NewObject {
            bucket: "photos",
            key: "a",
            size: 60,
            sha256: &[0; 32],
            attrs: None,
            body: StoredBody::Inline(b"sealed bytes"),
            placed_by: Some("RTQUOTA"),
        };
        meta.commit_object(&object, 1).await.unwrap();
        let held = reserve(&meta, &ledgers, &limited, 30).await.unwrap();
        let err = reserve(&meta, &ledgers, &limited, 11).await.err().unwrap();
        assert!(
            matches!(err, GatewayError::QuotaExceeded { used: 90, .. }),
            "{err}"
        );
        drop(held);
        assert!(reserve(&meta, &ledgers, &limited, 40).await.is_ok());
    }
}
