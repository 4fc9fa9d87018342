//! S3 access keys, made and kept by the gateway: an id clients send in the clear, a secret they
//! sign with (sealed under the master key at rest, never logged), the owner's name, the
//! buckets the key may use and the most bytes its objects may take (its quota; see `quota`
//! for how writes reserve against it).

use raidtorrent_codec::{sealed, MasterKey};
use serde::Serialize;

use super::meta::{Meta, StoredKey};
use super::model::check_bucket_name;
use super::{Gateway, GatewayError};
use crate::registry::unix_now;

/// Every bucket.
pub const ALL_BUCKETS: &str = "*";

/// An access key as operators see it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessKey {
    pub access_key: String,
    pub owner: String,
    pub buckets: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The most bytes of live objects the key may have stored; none: no limit.
    pub quota_bytes: Option<u64>,
    /// Bytes of the live objects the key stored.
    pub used_bytes: u64,
}

/// A key that may sign requests now.
#[derive(Clone)]
pub struct ActiveKey {
    pub access_key: String,
    pub secret: String,
    pub buckets: Vec<String>,
    /// The most bytes of live objects the key may have stored; none: no limit.
    pub quota_bytes: Option<u64>,
}

impl ActiveKey {
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == ALL_BUCKETS || b == bucket)
    }
}

/// The access keys of a gateway's database, sealed under its master key; usable without a
/// running gateway (the `s3-key` command).
#[derive(Clone)]
pub struct AccessKeys {
    meta: Meta,
    master: MasterKey,
}

impl Gateway {
    pub fn access_keys(&self) -> AccessKeys {
        AccessKeys::new(self.inner.meta.clone(), self.inner.master.clone())
    }
}

impl AccessKeys {
    pub fn new(meta: Meta, master: MasterKey) -> Self {
        AccessKeys { meta, master }
    }

    /// Makes a key for `owner` scoped to `buckets` (`*`: all) that may store `quota_bytes`
    /// (none: no limit): the key and its secret, which is shown this once.
    pub async fn create(
        &self,
        owner: &str,
        buckets: &[String],
        quota_bytes: Option<u64>,
    ) -> Result<(AccessKey, String), GatewayError> {
        check_scope(owner, buckets)?;
        let access_key = format!("RT{}", random_text(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
        let secret = random_text(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        );
        let stored = StoredKey {
            access_key,
            secret_sealed: sealed::seal(&self.master, secret.as_bytes())
                .map_err(|e| GatewayError::Internal(format!("sealing a secret: {e}")))?,
            owner: owner.to_owned(),
            buckets: buckets.to_vec(),
            created_at: unix_now(),
            revoked_at: None,
            quota_bytes,
        };
        self.meta.insert_access_key(&stored).await?;
        Ok((public(&stored, 0), secret))
    }

    /// Every key, revoked ones too, with the bytes its objects take.
    pub async fn list(&self) -> Result<Vec<AccessKey>, GatewayError> {
        let used = self.meta.keys_usage().await?;
        let keys = self.meta.access_keys().await?;
        Ok(keys
            .iter()
            .map(|k| public(k, used.get(&k.access_key).copied().unwrap_or(0)))
            .collect())
    }

    /// Revokes a key: requests it signs are refused from now on.
    pub async fn revoke(&self, access_key: &str) -> Result<(), GatewayError> {
        if self.meta.revoke_access_key(access_key, unix_now()).await? {
            Ok(())
        } else {
            Err(GatewayError::NoSuchAccessKey(access_key.to_owned()))
        }
    }

    /// Sets a key's quota (none: no limit), from its next write on. Objects already stored stay
    /// when the quota falls below what they take; the key then stores nothing more until it
    /// deletes enough.
    pub async fn set_quota(
        &self,
        access_key: &str,
        quota_bytes: Option<u64>,
    ) -> Result<(), GatewayError> {
        if self.meta.set_key_quota(access_key, quota_bytes).await? {
            Ok(())
        } else {
            Err(GatewayError::NoSuchAccessKey(access_key.to_owned()))
        }
    }

    /// Bytes of the live objects `access_key` stored: those a listing shows, overwritten and
    /// deleted ones no longer.
    pub async fn usage(&self, access_key: &str) -> Result<u64, GatewayError> {
        self.meta.key_usage(access_key).await
    }

    /// The secret and scope of a key that is not revoked.
    pub async fn active(&self, access_key: &str) -> Result<Option<ActiveKey>, GatewayError> {
        let Some(k) = self.meta.access_key(access_key).await? else {
            return Ok(None);
        };
        if k.revoked_at.is_some() {
            return Ok(None);
        }
        let secret = sealed::open(&self.master, &k.secret_sealed)
            .map_err(|e| GatewayError::Internal(format!("opening a secret: {e}")))?;
        let secret = String::from_utf8(secret)
            .map_err(|_| GatewayError::Internal("a stored secret is not text".to_owned()))?;
        Ok(Some(ActiveKey {
            access_key: k.access_key,
            secret,
            buckets: k.buckets,
            quota_bytes: k.quota_bytes,
        }))
    }
}

fn check_scope(owner: &str, buckets: &[String]) -> Result<(), GatewayError> {
    if owner.is_empty() || owner.len() > 128 || owner.chars().any(char::is_control) {
        return Err(GatewayError::BadRequest(
            "an owner is 1 to 128 characters without control characters".to_owned(),
        ));
    }
    if buckets.is_empty() {
        return Err(GatewayError::BadRequest(
            "name the buckets the key may use, or * for all".to_owned(),
        ));
    }
    for b in buckets.iter().filter(|b| *b != ALL_BUCKETS) {
        check_bucket_name(b)?;
    }
    Ok(())
}

fn public(k: &StoredKey, used_bytes: u64) -> AccessKey {
    AccessKey {
        access_key: k.access_key.clone(),
        owner: k.owner.clone(),
        buckets: k.buckets.clone(),
        created_at: k.created_at,
        revoked_at: k.revoked_at,
        quota_bytes: k.quota_bytes,
        used_bytes,
    }
}

/// `len` characters drawn uniformly from `alphabet` (64 or 32 symbols) with the system RNG.
fn random_text(len: usize, alphabet: &[u8]) -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_allows_its_buckets_or_all() {
        let k = ActiveKey {
            access_key: "RTA".into(),
            secret: String::new(),
            buckets: vec!["photos".into()],
            quota_bytes: None,
        };
        assert!(k.allows("photos"));
        assert!(!k.allows("docs"));
        let all = ActiveKey {
            buckets: vec![ALL_BUCKETS.into()],
            ..k
        };
        assert!(all.allows("docs"));
        assert!(check_scope("alice", &["Bad_Name".into()]).is_err());
        assert!(check_scope("alice", &[]).is_err());
        assert!(check_scope("alice", &["*".into(), "photos".into()]).is_ok());
    }

    #[test]
    fn random_text_uses_the_alphabet() {
        let t = random_text(40, b"ab");
        assert_eq!(t.len(), 40);
        assert!(t.bytes().all(|b| b == b'a' || b == b'b'));
    }
}
