//! Buckets, objects and their redundancy policies as clients see them, and the rules for their
//! names.

use std::io;

use serde::Serialize;

use super::attrs::ObjectAttrs;
use super::GatewayError;

/// A bucket's redundancy policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketPolicy {
    /// Data shards: any `k` of `k + m` rebuild an object.
    pub k: u16,
    /// Parity shards.
    pub m: u16,
    /// Copies of every shard, each on a different node.
    pub copies: u16,
    /// Share of each shard's copies that must sit on high-tier nodes (0.0 ..= 1.0).
    pub high_share: f64,
    /// Objects up to this many bytes are kept in the metadata store instead of the swarm.
    pub inline_max: u64,
}

impl BucketPolicy {
    /// The placement rules this policy asks of every shard.
    pub fn placement(&self) -> crate::placement::Policy {
        crate::placement::Policy {
            k: usize::from(self.k),
            m: usize::from(self.m),
            copies: usize::from(self.copies),
            high_share: self.high_share,
        }
    }

    /// Bytes stored per byte of object: (k + m) / k x copies.
    pub fn expansion(&self) -> f64 {
        (f64::from(self.k) + f64::from(self.m)) / f64::from(self.k) * f64::from(self.copies)
    }

    /// Checks the policy against the operator's `limits` (after [`BucketPolicy::validate`]).
    pub fn within(&self, limits: &PolicyLimits) -> Result<(), GatewayError> {
        let shards = self.k + self.m;
        let why = if shards > limits.max_shards {
            format!(
                "k + m = {shards}; this gateway allows at most {}",
                limits.max_shards
            )
        } else if self.copies > limits.max_copies {
            format!(
                "copies = {}; this gateway allows at most {}",
                self.copies, limits.max_copies
            )
        } else if self.expansion() > limits.max_expansion {
            format!(
                "(k + m) / k x copies = {:.2}; this gateway allows at most {:.2}",
                self.expansion(),
                limits.max_expansion
            )
        } else {
            return Ok(());
        };
        Err(GatewayError::PolicyNotAllowed(why))
    }

    pub fn validate(&self) -> Result<(), GatewayError> {
        let bad = |why: &str| Err(GatewayError::BadRequest(format!("bucket policy: {why}")));
        if self.k == 0 || self.m == 0 || usize::from(self.k) + usize::from(self.m) > 256 {
            return bad("k and m must be at least 1, with k + m at most 256");
        }
        if self.copies == 0 || self.copies > 16 {
            return bad("copies must be between 1 and 16");
        }
        if !(0.0..=1.0).contains(&self.high_share) {
            return bad("high_share must be between 0 and 1");
        }
        if self.inline_max > 1 << 20 {
            return bad("inline_max must be at most 1 MiB");
        }
        Ok(())
    }
}

/// The bucket policies clients may ask for: the operator's bounds on what one bucket makes the
/// cloud store and the gateway compute per byte.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    /// Most shards per object, k + m.
    pub max_shards: u16,
    /// Most copies of a shard.
    pub max_copies: u16,
    /// Most bytes stored per byte of object, (k + m) / k x copies.
    pub max_expansion: f64,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            max_shards: 64,
            max_copies: 4,
            max_expansion: 6.0,
        }
    }
}

impl PolicyLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_shards < 2
            || self.max_copies == 0
            || self.max_expansion.is_nan()
            || self.max_expansion < 1.0
        {
            return Err("max_shards must be at least 2, max_copies at least 1 and \
                        max_expansion at least 1.0"
                .into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub name: String,
    pub policy: BucketPolicy,
    pub created_at: i64,
}

/// An object as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Unix seconds when the object became visible.
    pub created_at: i64,
    /// Kept in the metadata store for good (up to the bucket's `inline_max`).
    pub inline: bool,
    /// Where the bytes are.
    pub storage: Storage,
    /// Headers and metadata stored with it, and its S3 ETag.
    #[serde(skip_serializing_if = "is_default")]
    pub attrs: ObjectAttrs,
}

fn is_default(a: &ObjectAttrs) -> bool {
    *a == ObjectAttrs::default()
}

/// Where an object's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// In the metadata store, for good (small objects).
    Inline,
    /// In the metadata store until the packer writes it into a pack.
    Waiting,
    /// In a pack: one swarm object holding many small ones.
    Packed,
    /// In its own shards in the swarm.
    Swarm,
    /// In parts (groups of segments), each with its own shards in the swarm: large objects.
    Grouped,
}

impl Storage {
    /// The value of the SQL expression [`Storage::SQL`].
    pub fn from_sql(s: &str) -> Storage {
        match s {
            "inline" => Storage::Inline,
            "waiting" => Storage::Waiting,
            "packed" => Storage::Packed,
            "grouped" => Storage::Grouped,
            _ => Storage::Swarm,
        }
    }

    /// An `objects` row's storage, as SQL.
    pub const SQL: &'static str = "CASE WHEN pack_pending = 1 THEN 'waiting' \
        WHEN pack_id IS NOT NULL THEN 'packed' WHEN grouped = 1 THEN 'grouped' \
        WHEN inline_data IS NOT NULL THEN 'inline' ELSE 'swarm' END";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// An object's bytes, streamed: chunks in order, then the channel closes. An `Err` item means the
/// read failed part-way; a client response must be aborted, not completed.
pub type Body = tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>;

/// Bucket names as S3 allows them (a safe subset): 3-63 of `a-z 0-9 - .`, starting and ending with a
/// letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), GatewayError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(GatewayError::InvalidBucketName(name.to_owned()))
    }
}

/// Keys: 1 to 1024 bytes of UTF-8 without control characters.
pub fn check_key(key: &str) -> Result<(), GatewayError> {
    if key.is_empty() {
        return Err(GatewayError::InvalidKey("a key must not be empty"));
    }
    if key.len() > 1024 {
        return Err(GatewayError::InvalidKey("a key is at most 1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(GatewayError::InvalidKey(
            "a key must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(check_bucket_name("photos-2026").is_ok());
        for bad in ["ab", "-ab", "ab-", "Photos", "a_b", &"a".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(check_key("a/b/c.txt").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(1025)).is_err());
    }
}
