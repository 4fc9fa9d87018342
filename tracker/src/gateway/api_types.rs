//! What the object path offers the HTTP front, and the errors it answers with.

use std::io;

use serde::Serialize;

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
    /// Kept in the metadata store rather than in the swarm.
    pub inline: bool,
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

/// Every way the object path can fail, shaped by what the HTTP front answers.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    #[error("bucket already exists: {0}")]
    BucketExists(String),
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("invalid bucket name {0:?}: 3 to 63 characters of a-z, 0-9, '-' and '.'")]
    InvalidBucketName(String),
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("{0}")]
    BadRequest(String),
    #[error("object of {size} bytes is larger than the {max} allowed")]
    TooLarge { size: u64, max: u64 },
    #[error("the upload body failed: {0}")]
    Upload(#[source] io::Error),
    #[error("not enough nodes can hold the object now: {0}")]
    InsufficientNodes(String),
    #[error("the object cannot be read now: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status for this error: 4xx for what the client can fix, 5xx for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::NoSuchBucket(_) | GatewayError::NoSuchKey(_) => 404,
            GatewayError::BucketExists(_) => 409,
            GatewayError::InvalidBucketName(_)
            | GatewayError::InvalidKey(_)
            | GatewayError::BadRequest(_)
            | GatewayError::Upload(_) => 400,
            GatewayError::TooLarge { .. } => 413,
            GatewayError::InvalidRange { .. } => 416,
            GatewayError::InsufficientNodes(_) | GatewayError::Unavailable(_) => 503,
            GatewayError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NoSuchBucket(_) => "NoSuchBucket",
            GatewayError::BucketExists(_) => "BucketAlreadyExists",
            GatewayError::NoSuchKey(_) => "NoSuchKey",
            GatewayError::InvalidBucketName(_) => "InvalidBucketName",
            GatewayError::InvalidKey(_) => "InvalidKey",
            GatewayError::InvalidRange { .. } => "InvalidRange",
            GatewayError::BadRequest(_) => "BadRequest",
            GatewayError::TooLarge { .. } => "EntityTooLarge",
            GatewayError::Upload(_) => "IncompleteBody",
            GatewayError::InsufficientNodes(_) => "InsufficientNodes",
            GatewayError::Unavailable(_) => "ServiceUnavailable",
            GatewayError::Internal(_) => "InternalError",
        }
    }
}

impl From<sqlx::Error> for GatewayError {
    fn from(e: sqlx::Error) -> Self {
        GatewayError::Internal(format!("metadata store: {e}"))
    }
}

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

    #[test]
    fn statuses_follow_who_can_fix_it() {
        assert_eq!(GatewayError::NoSuchKey("k".into()).http_status(), 404);
        assert_eq!(GatewayError::InvalidRange { size: 3 }.http_status(), 416);
        assert_eq!(
            GatewayError::InsufficientNodes("x".into()).http_status(),
            503
        );
        assert_eq!(GatewayError::Internal("x".into()).http_status(), 500);
    }
}
