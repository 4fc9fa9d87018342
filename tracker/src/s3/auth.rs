//! Who may sign S3 requests, and for which buckets: the gateway's access keys.

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

use super::errors::OrS3;
use crate::gateway::Gateway;

pub struct Keys {
    pub gateway: Gateway,
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self
            .gateway
            .access_keys()
            .active(access_key)
            .await
            .or_s3()?
        {
            Some(key) => Ok(SecretKey::from(key.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key does not exist or was revoked"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Keys {
    /// Signed requests only (the signature was checked before this), each within its key's
    /// buckets; the bucket list is filtered by the operation itself.
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        refuse_weak(cx)?;
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "sign the request with an access key"
            ));
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
        };
        let key = self
            .gateway
            .access_keys()
            .active(&creds.access_key)
            .await
            .or_s3()?;
        match key {
            Some(k) if k.allows(bucket) => Ok(()),
            _ => Err(s3_error!(
                AccessDenied,
                "this access key may not use that bucket"
            )),
        }
    }
}

/// Refuses what s3s would otherwise accept but the gateway will not: Signature Version 2 (it
/// signs neither the body nor, in headers, a time s3s checks, so a captured request could be
/// replayed, even with another body) and browser form uploads (PostObject, which s3s holds
/// whole in memory).
fn refuse_weak(cx: &S3AccessContext<'_>) -> S3Result<()> {
    let header_v2 = cx
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let query_v2 = cx.uri().query().is_some_and(presigned_v2);
    if header_v2 || query_v2 {
        return Err(s3_error!(
            AccessDenied,
            "Signature Version 2 is not accepted; sign requests with Signature Version 4"
        ));
    }
    if cx.s3_op().name() == "PostObject" {
        return Err(s3_error!(
            NotImplemented,
            "browser form uploads (POST Object) are not served; use PUT or a presigned URL"
        ));
    }
    Ok(())
}

/// Whether a query string is a Signature Version 2 presigned URL's: a `Signature` or
/// `AWSAccessKeyId` parameter, however its name is percent-encoded.
pub fn presigned_v2(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        matches!(
            percent_decoded(name).as_deref(),
            Some("Signature" | "AWSAccessKeyId")
        )
    })
}

/// `text` with its `%XX` escapes decoded (`+` is kept: names never hold spaces); `None` if it
/// is not valid UTF-8 then.
pub fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether the signer of a request may use `bucket` (for the source of a copy, which the path
/// does not name).
pub async fn may_use(
    gateway: &Gateway,
    creds: Option<&s3s::auth::Credentials>,
    bucket: &str,
) -> S3Result<()> {
    let Some(creds) = creds else {
        return Err(s3_error!(
            AccessDenied,
            "sign the request with an access key"
        ));
    };
    match gateway
        .access_keys()
        .active(&creds.access_key)
        .await
        .or_s3()?
    {
        Some(k) if k.allows(bucket) => Ok(()),
        _ => Err(s3_error!(
            AccessDenied,
            "this access key may not use that bucket"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_presigned_query_is_known_however_it_is_encoded() {
        assert!(presigned_v2("AWSAccessKeyId=RT1&Expires=1&Signature=x"));
        assert!(presigned_v2("AWS%41ccessKeyId=RT1&Expires=1&Sig%6eature=x"));
        assert!(presigned_v2("Expires=1&%53ignature=x"));
        assert!(!presigned_v2(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab&X-Amz-Credential=c"
        ));
        assert!(!presigned_v2("list-type=2&prefix=Signature"));
        assert_eq!(percent_decoded("a%2Fb%").as_deref(), Some("a/b%"));
    }
}
