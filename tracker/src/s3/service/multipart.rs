//! Multipart uploads: creating one, its parts (sent or copied), completing, aborting and listing.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Result};

use super::listing::{common_prefixes, key_encoding};
use super::{copy_range, copy_source, ok, to_the_end, Answer, Front};
use crate::gateway::{Gateway, PartChecks, Upload};
use crate::s3::auth::may_use;
use crate::s3::checksum;
use crate::s3::composite::Completion;
use crate::s3::errors::OrS3;
use crate::s3::list;
use crate::s3::objects::{self, SentHeaders};
use crate::s3::sums;

pub(super) async fn create(
    front: &Front,
    req: S3Request<CreateMultipartUploadInput>,
) -> Answer<CreateMultipartUploadOutput> {
    front.gateway.carries_data().or_s3()?;
    let i = req.input;
    let sum = sums::of_new_upload(i.checksum_algorithm.as_ref(), i.checksum_type.as_ref())?;
    let attrs = sent_headers!(i);
    let algorithm = sum.map(|(a, _)| a.name().to_owned());
    let kind = sum.map(|(_, k)| k.name().to_owned());
    let id = front
        .gateway
        .create_upload(&i.bucket, &i.key, attrs, algorithm, kind.clone())
        .await
        .or_s3()?;
    ok(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        checksum_algorithm: i.checksum_algorithm,
        checksum_type: kind.map(ChecksumType::from),
        ..Default::default()
    })
}

pub(super) async fn part(
    front: &Front,
    req: S3Request<UploadPartInput>,
) -> Answer<UploadPartOutput> {
    front.gateway.carries_data().or_s3()?;
    let expected = checksum::expected(&req.headers, req.trailing_headers.as_ref())?;
    let i = req.input;
    let upload = check_upload_key(&front.gateway, &i.bucket, &i.upload_id, &i.key).await?;
    let expected = sums::of_part(&upload, expected)?;
    let expect_md5 = objects::content_md5(i.content_md5.as_deref())?;
    let len = objects::body_len(i.body.as_ref(), i.content_length);
    let (body, verdict) = objects::request_reader(i.body, expected);
    let checks = PartChecks {
        expect_md5,
        checksum: verdict.slot(),
    };
    let number = part_number(i.part_number)?;
    let (gw, bucket, id) = (front.gateway.clone(), i.bucket, i.upload_id);
    let part =
        to_the_end(async move { gw.put_part(&bucket, &id, number, body, len, checks).await })
            .await
            .map_err(|e| verdict.error_of(e))?;
    ok(checksum::with_sums!(
        UploadPartOutput {
            e_tag: Some(ETag::Strong(hex::encode(part.md5))),
            ..Default::default()
        },
        verdict
    ))
}

pub(super) async fn part_copy(
    front: &Front,
    req: S3Request<UploadPartCopyInput>,
) -> Answer<UploadPartCopyOutput> {
    front.gateway.carries_data().or_s3()?;
    let (src_bucket, src_key) = copy_source(&req.input.copy_source)?;
    may_use(&front.gateway, req.credentials.as_ref(), &src_bucket).await?;
    let i = req.input;
    let upload = check_upload_key(&front.gateway, &i.bucket, &i.upload_id, &i.key).await?;
    let source = front.gateway.head(&src_bucket, &src_key).await.or_s3()?;
    let range = match i.copy_source_range.as_deref() {
        Some(r) => Some(copy_range(r, source.size)?),
        None => None,
    };
    let (_, body) = front
        .gateway
        .get(&src_bucket, &src_key, range.clone())
        .await
        .or_s3()?;
    let len = range.map_or(source.size, |r| r.end - r.start);
    let number = part_number(i.part_number)?;
    // The part's sum, if the upload names an algorithm, is computed as the range streams.
    let compute = sums::of_part(&upload, None)?;
    let (reader, verdict) = objects::request_reader(Some(objects::blob(body)), compute);
    let checks = PartChecks {
        expect_md5: None,
        checksum: verdict.slot(),
    };
    let (gw, bucket, id) = (front.gateway.clone(), i.bucket, i.upload_id);
    let part = to_the_end(async move {
        gw.put_part(&bucket, &id, number, reader, Some(len), checks)
            .await
    })
    .await?;
    let result = CopyPartResult {
        e_tag: Some(ETag::Strong(hex::encode(part.md5))),
        last_modified: Some(objects::timestamp(part.created_at)),
        ..Default::default()
    };
    let sums = checksum::stored_fields(part.checksum.as_ref());
    ok(UploadPartCopyOutput {
        copy_part_result: Some(checksum::with_fields!(result, sums)),
        ..Default::default()
    })
}

pub(super) async fn complete(
    front: &Front,
    req: S3Request<CompleteMultipartUploadInput>,
) -> Answer<CompleteMultipartUploadOutput> {
    let i = req.input;
    let upload = check_upload_key(&front.gateway, &i.bucket, &i.upload_id, &i.key).await?;
    let parts = i
        .multipart_upload
        .clone()
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let mut listed = Vec::with_capacity(parts.len());
    let mut check = Completion {
        algorithm: sums::stored(upload.checksum_algorithm.as_deref()),
        kind: sums::kind_of(&upload),
        ..Completion::default()
    };
    for p in parts {
        let number = part_number(p.part_number.unwrap_or(0))?;
        check.parts.push(sums::listed(&p)?);
        let etag = p
            .e_tag
            .map(|e| e.value().to_owned())
            .ok_or_else(|| s3_error!(InvalidPart, "part {number} has no ETag"))?;
        listed.push((number, etag));
    }
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "the completion lists no parts"));
    }
    check.whole = sums::whole(&check, &i)?;
    let condition = objects::write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    let by = front.signer(req.credentials.as_ref()).await?;
    let info = front
        .gateway
        .complete_upload(
            &i.bucket,
            &i.upload_id,
            &listed,
            condition,
            by.as_ref(),
            |_: &Upload, chosen: &[&crate::gateway::UploadPart]| check.object_sum(chosen),
        )
        .await
        .or_s3()?;
    let sum = info.attrs.checksum.as_ref();
    let out = CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(objects::etag(&info)),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        checksum_type: checksum::stored_type(sum),
        ..Default::default()
    };
    ok(checksum::with_fields!(out, checksum::stored_fields(sum)))
}

pub(super) async fn abort(
    front: &Front,
    req: S3Request<AbortMultipartUploadInput>,
) -> Answer<AbortMultipartUploadOutput> {
    let i = req.input;
    check_upload_key(&front.gateway, &i.bucket, &i.upload_id, &i.key).await?;
    front
        .gateway
        .abort_upload(&i.bucket, &i.upload_id)
        .await
        .or_s3()?;
    ok(AbortMultipartUploadOutput::default())
}

pub(super) async fn parts(
    front: &Front,
    req: S3Request<ListPartsInput>,
) -> Answer<ListPartsOutput> {
    let i = req.input;
    let upload = check_upload_key(&front.gateway, &i.bucket, &i.upload_id, &i.key).await?;
    let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
    let max = i.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
    let all = front
        .gateway
        .upload_parts(&i.bucket, &i.upload_id)
        .await
        .or_s3()?;
    let mut after: Vec<_> = all.into_iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max;
    after.truncate(max);
    let next = after.last().map(|p| p.part_number as i32);
    let parts = after
        .into_iter()
        .map(|p| {
            let part = Part {
                part_number: Some(p.part_number as i32),
                size: Some(p.size as i64),
                e_tag: Some(ETag::Strong(hex::encode(p.md5))),
                last_modified: Some(objects::timestamp(p.created_at)),
                ..Default::default()
            };
            checksum::with_fields!(part, checksum::stored_fields(p.checksum.as_ref()))
        })
        .collect();
    ok(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        checksum_algorithm: upload
            .checksum_algorithm
            .clone()
            .map(ChecksumAlgorithm::from),
        checksum_type: sums::upload_type(&upload),
        ..Default::default()
    })
}

pub(super) async fn uploads(
    front: &Front,
    req: S3Request<ListMultipartUploadsInput>,
) -> Answer<ListMultipartUploadsOutput> {
    let i = req.input;
    let enc = key_encoding(i.encoding_type.as_ref())?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delimiter = i.delimiter.clone().unwrap_or_default();
    let key_marker = i.key_marker.clone().unwrap_or_default();
    let id_marker = i.upload_id_marker.clone().unwrap_or_default();
    let max = i.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
    let keys = list::Keys {
        prefix: &prefix,
        delimiter: &delimiter,
    };
    let page = list::uploads_page(
        &front.gateway,
        &i.bucket,
        keys,
        (key_marker, id_marker),
        max,
    )
    .await
    .or_s3()?;
    // The next page starts after the last entry: an upload (its key and id) or a common
    // prefix (no id). A key never equals a common prefix: it would have rolled up into it.
    let next_id = page
        .objects
        .last()
        .filter(|u| page.next.as_deref() == Some(u.key.as_str()))
        .map(|u| u.upload_id.clone());
    let list = page
        .objects
        .iter()
        .map(|u| MultipartUpload {
            key: Some(enc.apply(&u.key)),
            upload_id: Some(u.upload_id.clone()),
            initiated: Some(objects::timestamp(u.created_at)),
            checksum_algorithm: u.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
            checksum_type: sums::upload_type(u),
            ..Default::default()
        })
        .collect();
    let apply = |s: Option<String>| s.map(|s| enc.apply(&s));
    ok(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: apply(i.prefix),
        delimiter: apply(i.delimiter),
        key_marker: apply(i.key_marker),
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(page.next.is_some()),
        encoding_type: enc.name().map(EncodingType::from_static),
        next_key_marker: apply(page.next.clone()),
        next_upload_id_marker: next_id.filter(|_| page.next.is_some()),
        uploads: Some(list),
        common_prefixes: Some(common_prefixes(&page, enc)),
        ..Default::default()
    })
}

/// The upload, which must be of this key (S3 names both in the path).
async fn check_upload_key(
    gw: &Gateway,
    bucket: &str,
    upload_id: &str,
    key: &str,
) -> S3Result<Upload> {
    let upload = gw.upload(bucket, upload_id).await.or_s3()?;
    if upload.key != key {
        return Err(s3_error!(
            NoSuchUpload,
            "upload {upload_id} is not of key {key}"
        ));
    }
    Ok(upload)
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=crate::gateway::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part numbers run from 1 to 10000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_run_from_one_to_ten_thousand() {
        assert!(part_number(0).is_err());
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        assert!(part_number(10_001).is_err());
    }
}
