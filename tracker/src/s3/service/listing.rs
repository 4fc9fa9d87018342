//! The listings of a bucket's objects (ListObjectsV2 and ListObjects) and the pieces of a
//! listing every S3 list answer shares.

use base64::Engine;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Result};

use super::{ok, Answer, Front};
use crate::s3::errors::OrS3;
use crate::s3::list;
use crate::s3::objects;

pub(super) async fn objects_v2(
    front: &Front,
    req: S3Request<ListObjectsV2Input>,
) -> Answer<ListObjectsV2Output> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().unwrap_or_default();
    let after = match &i.continuation_token {
        Some(t) => decode_token(t)?,
        None => i.start_after.clone().unwrap_or_default(),
    };
    let max = max_keys(i.max_keys)?;
    let enc = key_encoding(i.encoding_type.as_ref())?;
    let page = list::page(&front.gateway, &i.bucket, &prefix, &delimiter, &after, max)
        .await
        .or_s3()?;
    let count = page.objects.len() + page.prefixes.len();
    let apply = |s: Option<String>| s.map(|s| enc.apply(&s));
    ok(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(enc.apply(&prefix)),
        delimiter: apply(i.delimiter),
        max_keys: Some(max as i32),
        key_count: Some(count as i32),
        continuation_token: i.continuation_token,
        start_after: apply(i.start_after),
        is_truncated: Some(page.next.is_some()),
        next_continuation_token: page.next.as_deref().map(encode_token),
        contents: Some(contents(&page, enc)),
        common_prefixes: Some(common_prefixes(&page, enc)),
        encoding_type: enc.name().map(EncodingType::from_static),
        ..Default::default()
    })
}

pub(super) async fn objects_v1(
    front: &Front,
    req: S3Request<ListObjectsInput>,
) -> Answer<ListObjectsOutput> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().unwrap_or_default();
    let after = i.marker.clone().unwrap_or_default();
    let max = max_keys(i.max_keys)?;
    let enc = key_encoding(i.encoding_type.as_ref())?;
    let page = list::page(&front.gateway, &i.bucket, &prefix, &delimiter, &after, max)
        .await
        .or_s3()?;
    let apply = |s: Option<String>| s.map(|s| enc.apply(&s));
    ok(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(enc.apply(&prefix)),
        delimiter: apply(i.delimiter),
        marker: apply(i.marker),
        max_keys: Some(max as i32),
        is_truncated: Some(page.next.is_some()),
        next_marker: apply(page.next.clone()),
        contents: Some(contents(&page, enc)),
        common_prefixes: Some(common_prefixes(&page, enc)),
        encoding_type: enc.name().map(EncodingType::from_static),
        ..Default::default()
    })
}

fn max_keys(n: Option<i32>) -> S3Result<usize> {
    match n {
        None => Ok(list::MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(list::MAX_KEYS)),
    }
}

pub fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

pub fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "the continuation token is not one this gateway gave"
            )
        })
}

fn contents(page: &list::Page, enc: list::KeyEncoding) -> Vec<Object> {
    page.objects
        .iter()
        .map(|o| Object {
            key: Some(enc.apply(&o.key)),
            size: Some(o.size as i64),
            e_tag: Some(objects::etag(o)),
            last_modified: Some(objects::timestamp(o.created_at)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect()
}

pub(super) fn common_prefixes<T>(
    page: &list::Page<T>,
    enc: list::KeyEncoding,
) -> Vec<CommonPrefix> {
    page.prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.apply(p)),
        })
        .collect()
}

pub(super) fn key_encoding(requested: Option<&EncodingType>) -> S3Result<list::KeyEncoding> {
    list::KeyEncoding::of(requested.map(EncodingType::as_str))
        .ok_or_else(|| s3_error!(InvalidArgument, "encoding-type must be url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_listings_keep_slashes_and_escape_the_rest() {
        let url = list::KeyEncoding::Url;
        assert_eq!(url.apply("a b+c/ü%.txt"), "a%20b%2Bc/%C3%BC%25.txt");
        assert_eq!(list::KeyEncoding::Plain.apply("a b+c"), "a b+c");
        assert_eq!(list::KeyEncoding::of(Some("URL")), Some(url));
        assert_eq!(list::KeyEncoding::of(None), Some(list::KeyEncoding::Plain));
        assert_eq!(list::KeyEncoding::of(Some("base64")), None);
    }

    #[test]
    fn tokens_and_page_sizes() {
        assert_eq!(decode_token(&encode_token("a/ü")).unwrap(), "a/ü");
        assert!(decode_token("!!").is_err());
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert!(max_keys(Some(-1)).is_err());
    }
}
