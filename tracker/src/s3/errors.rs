//! The gateway's errors as S3 error codes and statuses.

use s3s::{S3Error, S3ErrorCode};
use warp::http::StatusCode;

use crate::gateway::GatewayError;

/// The S3 error a gateway error answers with; the message is the gateway's.
pub fn s3_error(e: GatewayError) -> S3Error {
    let code = match &e {
        GatewayError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        GatewayError::BucketExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
        GatewayError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
        GatewayError::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
        GatewayError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
        GatewayError::NoSuchPlacement(_) => S3ErrorCode::Custom("NoSuchPlacement".into()),
        GatewayError::PlacementCancelled => S3ErrorCode::Custom("PlacementCancelled".into()),
        GatewayError::InvalidBucketName(_) => S3ErrorCode::InvalidBucketName,
        GatewayError::InvalidKey(_) => S3ErrorCode::KeyTooLongError,
        GatewayError::InvalidRange { .. } => S3ErrorCode::InvalidRange,
        GatewayError::BadRequest(_) => S3ErrorCode::InvalidArgument,
        GatewayError::TooLarge { .. } => S3ErrorCode::EntityTooLarge,
        GatewayError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        GatewayError::Upload(_) => S3ErrorCode::IncompleteBody,
        GatewayError::BadDigest { .. } => S3ErrorCode::BadDigest,
        GatewayError::PreconditionFailed(_) => S3ErrorCode::PreconditionFailed,
        GatewayError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        GatewayError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        GatewayError::PolicyNotAllowed(_)
        | GatewayError::DataPathOff
        | GatewayError::AccessDenied(_) => S3ErrorCode::AccessDenied,
        GatewayError::Busy(_) => S3ErrorCode::SlowDown,
        GatewayError::NoSuchAccessKey(_) => S3ErrorCode::InvalidAccessKeyId,
        GatewayError::QuotaExceeded { .. } => S3ErrorCode::Custom("QuotaExceeded".into()),
        GatewayError::InsufficientNodes(_) | GatewayError::Unavailable(_) => {
            S3ErrorCode::ServiceUnavailable
        }
        GatewayError::InsufficientStorage(_) => S3ErrorCode::Custom("InsufficientStorage".into()),
        GatewayError::Internal(_) => S3ErrorCode::InternalError,
    };
    if let GatewayError::Internal(msg) = &e {
        tracing::error!(error = %msg, "S3 request failed inside the gateway");
    }
    let status = match &e {
        GatewayError::InvalidKey(_) => Some(StatusCode::BAD_REQUEST),
        GatewayError::InsufficientStorage(_) => Some(StatusCode::INSUFFICIENT_STORAGE),
        GatewayError::PolicyNotAllowed(_)
        | GatewayError::DataPathOff
        | GatewayError::AccessDenied(_) => Some(StatusCode::FORBIDDEN),
        GatewayError::NoSuchPlacement(_) => Some(StatusCode::NOT_FOUND),
        GatewayError::PlacementCancelled => Some(StatusCode::CONFLICT),
        GatewayError::QuotaExceeded { .. } => Some(StatusCode::FORBIDDEN),
        _ => None,
    };
    let mut err = S3Error::with_message(code, e.to_string());
    if let Some(status) = status {
        err.set_status_code(status);
    }
    err
}

/// Lets `?` turn gateway errors into S3 errors.
pub trait OrS3<T> {
    fn or_s3(self) -> Result<T, S3Error>;
}

impl<T> OrS3<T> for Result<T, GatewayError> {
    fn or_s3(self) -> Result<T, S3Error> {
        self.map_err(s3_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_without_a_data_path_answers_access_denied_and_says_what_to_use() {
        let e = s3_error(GatewayError::DataPathOff);
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        assert_eq!(e.status_code(), Some(StatusCode::FORBIDDEN));
        assert!(e.message().unwrap().contains("raidtorrent-peer get"));
    }
}
