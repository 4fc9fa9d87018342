//! The errors of the object path, each with the HTTP status and code the object API answers.

use std::io;

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
    #[error("{0}")]
    Busy(String),
    #[error("bucket policy not allowed: {0}")]
    PolicyNotAllowed(String),
    #[error("not enough space on the gateway: {0}")]
    InsufficientStorage(String),
    #[error("the content's MD5 is {got}, not the {expected} the client announced")]
    BadDigest { expected: String, got: String },
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("no such multipart upload: {0}")]
    NoSuchUpload(String),
    #[error(
        "no such placement: {0} (it ended more than 10 minutes ago, or the gateway restarted)"
    )]
    NoSuchPlacement(String),
    #[error("the placement was cancelled by its client")]
    PlacementCancelled,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("the parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes; every part but the last must be at least {min}")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error(
        "this gateway carries no object data: store and read objects with `raidtorrent-peer put` \
         and `raidtorrent-peer get`, which code them on your machine and move them to and from \
         the nodes"
    )]
    DataPathOff,
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("no such access key: {0}")]
    NoSuchAccessKey(String),
    /// A write would take an access key past its quota (`used`: bytes of its live objects and
    /// of its writes in progress).
    #[error(
        "access key {access_key} may store {quota} bytes; {used} are in use, this write needs \
         {asked}"
    )]
    QuotaExceeded {
        access_key: String,
        quota: u64,
        used: u64,
        asked: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status for this error: 4xx for what the client can fix, 5xx for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::NoSuchBucket(_) | GatewayError::NoSuchKey(_) => 404,
            GatewayError::NoSuchUpload(_) | GatewayError::NoSuchPlacement(_) => 404,
            GatewayError::NoSuchAccessKey(_) => 404,
            GatewayError::PreconditionFailed(_) => 412,
            GatewayError::BucketExists(_) | GatewayError::BucketNotEmpty(_) => 409,
            GatewayError::PlacementCancelled => 409,
            GatewayError::InvalidBucketName(_)
            | GatewayError::InvalidKey(_)
            | GatewayError::BadRequest(_)
            | GatewayError::Upload(_)
            | GatewayError::BadDigest { .. }
            | GatewayError::InvalidPart(_)
            | GatewayError::InvalidPartOrder
            | GatewayError::EntityTooSmall { .. } => 400,
            GatewayError::PolicyNotAllowed(_) | GatewayError::DataPathOff => 403,
            GatewayError::QuotaExceeded { .. } | GatewayError::AccessDenied(_) => 403,
            GatewayError::TooLarge { .. } => 413,
            GatewayError::InvalidRange { .. } => 416,
            GatewayError::InsufficientNodes(_)
            | GatewayError::Unavailable(_)
            | GatewayError::Busy(_) => 503,
            GatewayError::InsufficientStorage(_) => 507,
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
            GatewayError::Busy(_) => "SlowDown",
            GatewayError::PolicyNotAllowed(_) => "PolicyNotAllowed",
            GatewayError::InsufficientStorage(_) => "InsufficientStorage",
            GatewayError::BadDigest { .. } => "BadDigest",
            GatewayError::PreconditionFailed(_) => "PreconditionFailed",
            GatewayError::BucketNotEmpty(_) => "BucketNotEmpty",
            GatewayError::NoSuchUpload(_) => "NoSuchUpload",
            GatewayError::NoSuchPlacement(_) => "NoSuchPlacement",
            GatewayError::PlacementCancelled => "PlacementCancelled",
            GatewayError::InvalidPart(_) => "InvalidPart",
            GatewayError::InvalidPartOrder => "InvalidPartOrder",
            GatewayError::EntityTooSmall { .. } => "EntityTooSmall",
            GatewayError::DataPathOff => "DataPathOff",
            GatewayError::NoSuchAccessKey(_) => "NoSuchAccessKey",
            GatewayError::QuotaExceeded { .. } => "QuotaExceeded",
            GatewayError::AccessDenied(_) => "AccessDenied",
            GatewayError::Internal(_) => "InternalError",
        }
    }
}

impl From<sqlx::Error> for GatewayError {
    fn from(e: sqlx::Error) -> Self {
        GatewayError::Internal(format!("metadata store: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_who_can_fix_it() {
        assert_eq!(GatewayError::NoSuchKey("k".into()).http_status(), 404);
        assert_eq!(GatewayError::InvalidRange { size: 3 }.http_status(), 416);
        assert_eq!(
            GatewayError::InsufficientNodes("x".into()).http_status(),
            503
        );
        assert_eq!(GatewayError::Internal("x".into()).http_status(), 500);
        let off = GatewayError::DataPathOff;
        assert_eq!((off.http_status(), off.code()), (403, "DataPathOff"));
        assert!(off.to_string().contains("raidtorrent-peer put"), "{off}");
        let over = GatewayError::QuotaExceeded {
            access_key: "RTA".into(),
            quota: 100,
            used: 60,
            asked: 50,
        };
        assert_eq!((over.http_status(), over.code()), (403, "QuotaExceeded"));
        assert_eq!(
            over.to_string(),
            "access key RTA may store 100 bytes; 60 are in use, this write needs 50"
        );
    }
}
