//! Pieces of the object operations: stored attributes from and to S3's headers, ETags, times,
//! conditional requests, and bodies both ways.

use std::collections::BTreeMap;

use base64::Engine;
use s3s::dto::{ETag, ETagCondition, Metadata, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Error, S3Result};
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;

use super::checksum;
use crate::gateway::{Body, ObjectAttrs, ObjectInfo, WriteCondition};

/// The ETag S3 clients see: the stored one (MD5, or the multipart form), else — for an object
/// stored before ETags were kept — its SHA-256.
pub fn etag_of(info: &ObjectInfo) -> String {
    info.attrs
        .etag
        .clone()
        .unwrap_or_else(|| info.sha256.clone())
}

pub fn etag(info: &ObjectInfo) -> ETag {
    ETag::Strong(etag_of(info))
}

pub fn timestamp(unix: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

fn unix(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// The metadata pairs as S3 returns them, or none.
pub fn metadata(attrs: &ObjectAttrs) -> Option<Metadata> {
    (!attrs.meta.is_empty()).then(|| attrs.meta.clone().into_iter().collect())
}

/// Headers sent with a PUT, a copy or a multipart upload, as stored.
pub struct SentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

impl SentHeaders {
    pub fn into_attrs(self) -> ObjectAttrs {
        let expires = self.expires.and_then(|t| {
            let mut out = Vec::new();
            t.format(s3s::dto::TimestampFormat::HttpDate, &mut out)
                .ok()?;
            String::from_utf8(out).ok()
        });
        ObjectAttrs {
            etag: None,
            checksum: None,
            condition: None,
            content_type: self.content_type,
            content_encoding: self.content_encoding,
            cache_control: self.cache_control,
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            expires,
            meta: self
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// The stored `Expires`, parsed back.
pub fn expires(attrs: &ObjectAttrs) -> Option<Timestamp> {
    let text = attrs.expires.as_deref()?;
    Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, text).ok()
}

/// `Content-MD5` as sent: base64 of 16 bytes.
pub fn content_md5(header: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(text) = header else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not the base64 of 16 bytes"))
}

/// The condition of a conditional write: `If-None-Match: *` (no object under the key) or
/// `If-Match: <etag>` (that object); S3 takes no other `If-None-Match`.
pub fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    match (if_match, if_none_match) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "a write takes If-Match or If-None-Match, not both"
        )),
        (None, Some(c)) if c.is_any() => Ok(Some(WriteCondition::Absent)),
        (None, Some(_)) => Err(s3_error!(
            NotImplemented,
            "a write's If-None-Match must be *"
        )),
        (Some(c), None) if c.is_any() => Ok(Some(WriteCondition::Etag("*".to_owned()))),
        (Some(c), None) => match c.as_etag() {
            Some(e) => Ok(Some(WriteCondition::Etag(e.value().to_owned()))),
            None => Err(s3_error!(InvalidArgument, "If-Match is not an ETag")),
        },
    }
}

/// What the conditional headers of a GET or HEAD ask for.
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The answer to a conditional request, as RFC 9110 section 13.2.2 orders the checks:
/// `PreconditionFailed` (412), `NotModified` (304), or go on.
pub fn check_conditions(c: &Conditions<'_>, info: &ObjectInfo) -> S3Result<()> {
    let tag = etag_of(info);
    let matches =
        |cond: &ETagCondition| cond.is_any() || cond.as_etag().is_some_and(|e| e.value() == tag);
    if let Some(cond) = c.if_match {
        if !matches(cond) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match does not match the ETag"
            ));
        }
    } else if let Some(t) = c.if_unmodified_since {
        if info.created_at > unix(t) {
            return Err(s3_error!(
                PreconditionFailed,
                "the object was modified since If-Unmodified-Since"
            ));
        }
    }
    if let Some(cond) = c.if_none_match {
        if matches(cond) {
            return Err(not_modified());
        }
    } else if let Some(t) = c.if_modified_since {
        if info.created_at <= unix(t) {
            return Err(not_modified());
        }
    }
    Ok(())
}

fn not_modified() -> S3Error {
    let mut e = S3Error::new(s3s::S3ErrorCode::NotModified);
    e.set_status_code(hyper::StatusCode::NOT_MODIFIED);
    e
}

/// A gateway body as the stream an S3 response sends; an error part-way cuts the response
/// short of its Content-Length.
pub fn blob(body: Body) -> StreamingBlob {
    let stream = futures_util::stream::unfold(body, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    StreamingBlob::wrap(stream)
}

/// A request body as a reader that checks the sum the client announced when the body ends,
/// and the verdict of that check.
pub fn request_reader(
    body: Option<StreamingBlob>,
    expected: Option<checksum::Expected>,
) -> (impl AsyncRead + Send + Unpin + 'static, checksum::Verdict) {
    let (checked, verdict) = checksum::Checked::new(body, expected);
    (StreamReader::new(checked), verdict)
}

/// The length of a request body when known (for `aws-chunked` bodies, the decoded length).
pub fn body_len(body: Option<&StreamingBlob>, content_length: Option<i64>) -> Option<u64> {
    match body {
        Some(b) => s3s::stream::ByteStream::remaining_length(b)
            .exact()
            .map(|n| n as u64)
            .or_else(|| content_length.and_then(|n| u64::try_from(n).ok())),
        None => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::model::Storage;

    fn info(etag: &str, at: i64) -> ObjectInfo {
        ObjectInfo {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            sha256: "00".repeat(32),
            created_at: at,
            inline: true,
            storage: Storage::Inline,
            attrs: ObjectAttrs {
                etag: Some(etag.into()),
                ..ObjectAttrs::default()
            },
        }
    }

    fn cond(s: &str) -> ETagCondition {
        s.parse().unwrap()
    }

    fn code(r: S3Result<()>) -> String {
        r.err()
            .map(|e| e.code().as_str().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn conditions_are_checked_in_the_order_http_gives() {
        let o = info("abc", 1000);
        let none = Conditions {
            if_match: None,
            if_none_match: None,
            if_modified_since: None,
            if_unmodified_since: None,
        };
        assert!(check_conditions(&none, &o).is_ok());
        let (right, wrong) = (cond("\"abc\""), cond("\"xyz\""));
        let (before, after) = (timestamp(500), timestamp(2000));
        let c = |m, n, ms, us| Conditions {
            if_match: m,
            if_none_match: n,
            if_modified_since: ms,
            if_unmodified_since: us,
        };
        assert_eq!(
            code(check_conditions(&c(Some(&right), None, None, None), &o)),
            ""
        );
        assert_eq!(
            code(check_conditions(&c(Some(&wrong), None, None, None), &o)),
            "PreconditionFailed"
        );
        assert_eq!(
            code(check_conditions(&c(None, Some(&right), None, None), &o)),
            "NotModified"
        );
        assert_eq!(
            code(check_conditions(&c(None, Some(&wrong), None, None), &o)),
            ""
        );
        assert_eq!(
            code(check_conditions(&c(None, None, Some(&after), None), &o)),
            "NotModified"
        );
        assert_eq!(
            code(check_conditions(&c(None, None, Some(&before), None), &o)),
            ""
        );
        assert_eq!(
            code(check_conditions(&c(None, None, None, Some(&before)), &o)),
            "PreconditionFailed"
        );
        // If-Match decides over If-Unmodified-Since; If-None-Match over If-Modified-Since.
        assert_eq!(
            code(check_conditions(
                &c(Some(&right), None, None, Some(&before)),
                &o
            )),
            ""
        );
        assert_eq!(
            code(check_conditions(
                &c(None, Some(&wrong), Some(&after), None),
                &o
            )),
            ""
        );
        assert_eq!(
            code(check_conditions(&c(Some(&cond("*")), None, None, None), &o)),
            ""
        );
    }

    #[test]
    fn content_md5_is_base64_of_16_bytes() {
        assert_eq!(
            content_md5(Some("XUFAKrxLKna5cZ2REBfFkg==")).unwrap(),
            Some(
                <[u8; 16]>::try_from(hex::decode("5d41402abc4b2a76b9719d911017c592").unwrap())
                    .unwrap()
            )
        );
        assert!(content_md5(Some("nope")).is_err());
        assert!(content_md5(None).unwrap().is_none());
    }
}
