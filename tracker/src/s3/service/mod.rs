//! Every S3 operation the gateway serves, each mapped onto the [`Gateway`]: the bucket and object
//! ones here, the listings of objects in `listing`, multipart uploads in `multipart`. Operations not
//! here answer `NotImplemented` (s3s's default). With the gateway's data path off, the ones that
//! move object bytes (PutObject, GetObject, CopyObject, CreateMultipartUpload, UploadPart,
//! UploadPartCopy) answer `AccessDenied` before reading anything.

use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

use super::auth::may_use;
use super::checksum;
use super::errors::OrS3;
use super::list;
use super::objects::{self, Conditions, SentHeaders};
use super::sums;
use crate::gateway::{ActiveKey, BucketPolicy, Gateway, GatewayError, ObjectAttrs, PutAttrs};

/// Header carrying a bucket's raidtorrent policy (JSON, as the native API takes it) on
/// CreateBucket.
pub const POLICY_HEADER: &str = "x-raidtorrent-policy";

pub struct Front {
    pub gateway: Gateway,
}

pub(super) type Answer<T> = S3Result<S3Response<T>>;

/// The headers a PUT, a copy with `REPLACE` or a multipart upload sends, as stored.
macro_rules! sent_headers {
    ($i:expr) => {
        SentHeaders {
            content_type: $i.content_type,
            content_encoding: $i.content_encoding,
            cache_control: $i.cache_control,
            content_disposition: $i.content_disposition,
            content_language: $i.content_language,
            expires: $i.expires,
            metadata: $i.metadata,
        }
        .into_attrs()
    };
}

/// The conditional headers of a GET or a HEAD.
macro_rules! conditions {
    ($i:expr) => {
        Conditions {
            if_match: $i.if_match.as_ref(),
            if_none_match: $i.if_none_match.as_ref(),
            if_modified_since: $i.if_modified_since.as_ref(),
            if_unmodified_since: $i.if_unmodified_since.as_ref(),
        }
    };
}

/// The stored headers of an object, as the fields of a GET's or a HEAD's answer.
macro_rules! stored_headers {
    ($info:expr, $output:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let a = &$info.attrs;
        $output {
            $($field: $value,)*
            accept_ranges: Some("bytes".to_owned()),
            e_tag: Some(objects::etag(&$info)),
            last_modified: Some(objects::timestamp($info.created_at)),
            content_type: a.content_type.clone(),
            content_encoding: a.content_encoding.clone(),
            cache_control: a.cache_control.clone(),
            content_disposition: a.content_disposition.clone(),
            content_language: a.content_language.clone(),
            expires: objects::expires(a),
            metadata: objects::metadata(a),
            ..Default::default()
        }
    }};
}

mod listing;
mod multipart;

pub use listing::{decode_token, encode_token};

pub(super) fn ok<T>(output: T) -> Answer<T> {
    Ok(S3Response::new(output))
}

impl Front {
    /// The access key that signed a request: its writes are recorded as its own and count
    /// against its quota.
    async fn signer(&self, creds: Option<&Credentials>) -> S3Result<Option<ActiveKey>> {
        match creds {
            Some(c) => self
                .gateway
                .access_keys()
                .active(&c.access_key)
                .await
                .or_s3(),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl S3 for Front {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> Answer<ListBucketsOutput> {
        let creds = req.credentials.as_ref();
        let key = self.signer(creds).await?;
        let buckets = self.gateway.buckets().await.or_s3()?;
        let buckets = buckets
            .into_iter()
            .filter(|b| key.as_ref().is_some_and(|k| k.allows(&b.name)))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(objects::timestamp(b.created_at)),
                bucket_region: None,
            })
            .collect();
        ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: creds.map(|c| c.access_key.clone()),
                id: creds.map(|c| c.access_key.clone()),
            }),
            ..Default::default()
        })
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> Answer<CreateBucketOutput> {
        let policy = match req.headers.get(POLICY_HEADER) {
            None => None,
            Some(v) => Some(
                serde_json::from_slice::<BucketPolicy>(v.as_bytes()).map_err(|e| {
                    s3_error!(
                        InvalidArgument,
                        "{POLICY_HEADER} is not a bucket policy: {e}"
                    )
                })?,
            ),
        };
        let bucket = &req.input.bucket;
        self.gateway.create_bucket(bucket, policy).await.or_s3()?;
        ok(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        })
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> Answer<DeleteBucketOutput> {
        self.gateway
            .delete_bucket(&req.input.bucket)
            .await
            .or_s3()?;
        ok(DeleteBucketOutput {})
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> Answer<HeadBucketOutput> {
        self.gateway.bucket(&req.input.bucket).await.or_s3()?;
        ok(HeadBucketOutput::default())
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> Answer<GetBucketLocationOutput> {
        self.gateway.bucket(&req.input.bucket).await.or_s3()?;
        ok(GetBucketLocationOutput::default())
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> Answer<PutObjectOutput> {
        self.gateway.carries_data().or_s3()?;
        let expected = checksum::expected(&req.headers, req.trailing_headers.as_ref())?;
        let i = req.input;
        // Checked when the object is committed, after the body is read: a refusal before it
        // would leave the body on a connection the client goes on using.
        let condition = objects::write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
        let by = self.signer(req.credentials.as_ref()).await?;
        let len = objects::body_len(i.body.as_ref(), i.content_length);
        let hold = self.gateway.reserve_write(by.as_ref(), len).await.or_s3()?;
        let expect_md5 = objects::content_md5(i.content_md5.as_deref())?;
        let attrs = ObjectAttrs {
            condition,
            ..sent_headers!(i)
        };
        let (body, verdict) = objects::request_reader(i.body, expected);
        let put = PutAttrs {
            expect_md5,
            attrs,
            placed_by: by.map(|k| k.access_key),
            checksum: verdict.slot(),
        };
        let (gw, bucket, key) = (self.gateway.clone(), i.bucket, i.key);
        let info = to_the_end(async move {
            let stored = gw.put_with(&bucket, &key, body, len, put).await;
            drop(hold);
            stored
        })
        .await
        .map_err(|e| verdict.error_of(e))?;
        ok(checksum::with_sums!(
            PutObjectOutput {
                e_tag: Some(objects::etag(&info)),
                ..Default::default()
            },
            verdict
        ))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> Answer<GetObjectOutput> {
        self.gateway.carries_data().or_s3()?;
        let i = &req.input;
        let info = self.gateway.head(&i.bucket, &i.key).await.or_s3()?;
        objects::check_conditions(&conditions!(i), &info)?;
        let range = match &i.range {
            Some(r) => Some(r.check(info.size)?),
            None => None,
        };
        let (info, body) = self
            .gateway
            .get(&i.bucket, &i.key, range.clone())
            .await
            .or_s3()?;
        // Checked again against the version being streamed, which may have replaced the one
        // looked up (a ranged download sends If-Match with every range); a failure drops the
        // read.
        objects::check_conditions(&conditions!(i), &info)?;
        let part = range.clone().unwrap_or(0..info.size);
        // A range's bytes are not what the stored sum covers (AWS gives none either).
        let sum = sums::wanted(i.checksum_mode.as_ref(), range.is_none(), &info);
        let range_header = range.map(|r| {
            format!(
                "bytes {}-{}/{}",
                r.start,
                r.end.saturating_sub(1),
                info.size
            )
        });
        let out = stored_headers!(
            info,
            GetObjectOutput {
                body: Some(objects::blob(body)),
                content_length: Some((part.end - part.start) as i64),
                content_range: range_header,
                checksum_type: checksum::stored_type(sum),
            }
        );
        ok(checksum::with_fields!(out, checksum::stored_fields(sum)))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> Answer<HeadObjectOutput> {
        let i = &req.input;
        let info = self.gateway.head(&i.bucket, &i.key).await.or_s3()?;
        objects::check_conditions(&conditions!(i), &info)?;
        let sum = sums::wanted(i.checksum_mode.as_ref(), true, &info);
        let out = stored_headers!(
            info,
            HeadObjectOutput {
                content_length: Some(info.size as i64),
                checksum_type: checksum::stored_type(sum),
            }
        );
        ok(checksum::with_fields!(out, checksum::stored_fields(sum)))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> Answer<DeleteObjectOutput> {
        match self.gateway.delete(&req.input.bucket, &req.input.key).await {
            Ok(()) | Err(GatewayError::NoSuchKey(_)) => ok(DeleteObjectOutput::default()),
            Err(e) => Err(super::errors::s3_error(e)),
        }
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> Answer<DeleteObjectsOutput> {
        let i = req.input;
        if i.delete.objects.len() > list::MAX_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "a batch delete names at most 1,000 keys"
            ));
        }
        self.gateway.bucket(&i.bucket).await.or_s3()?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in i.delete.objects {
            match self.gateway.delete(&i.bucket, &o.key).await {
                Ok(()) | Err(GatewayError::NoSuchKey(_)) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(o.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = super::errors::s3_error(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        message: e.message().map(str::to_owned),
                        key: Some(o.key),
                        version_id: None,
                    });
                }
            }
        }
        ok(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        })
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> Answer<CopyObjectOutput> {
        self.gateway.carries_data().or_s3()?;
        let (src_bucket, src_key) = copy_source(&req.input.copy_source)?;
        may_use(&self.gateway, req.credentials.as_ref(), &src_bucket).await?;
        let i = req.input;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && (src_bucket.as_str(), src_key.as_str()) == (&i.bucket[..], &i.key[..]) {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself changes nothing unless MetadataDirective is REPLACE"
            ));
        }
        let (source, body) = self
            .gateway
            .get(&src_bucket, &src_key, None)
            .await
            .or_s3()?;
        let attrs = if replace {
            sent_headers!(i)
        } else {
            ObjectAttrs {
                etag: None,
                checksum: None,
                ..source.attrs.clone()
            }
        };
        // The copy is a new single-part object: its sum is computed afresh as it streams (in the
        // algorithm asked for, else the source's), never carried over from the source.
        let algorithm = match i.checksum_algorithm.as_ref() {
            Some(a) => Some(sums::algorithm_named(a.as_str())?),
            None => sums::of_object(&source.attrs),
        };
        let by = self.signer(req.credentials.as_ref()).await?;
        let size = Some(source.size);
        let hold = self
            .gateway
            .reserve_write(by.as_ref(), size)
            .await
            .or_s3()?;
        let compute = algorithm.map(checksum::Expected::compute);
        let (reader, verdict) = objects::request_reader(Some(objects::blob(body)), compute);
        let put = PutAttrs {
            attrs,
            expect_md5: None,
            placed_by: by.map(|k| k.access_key),
            checksum: verdict.slot(),
        };
        let (gw, bucket, key) = (self.gateway.clone(), i.bucket, i.key);
        let info = to_the_end(async move {
            let stored = gw.put_with(&bucket, &key, reader, size, put).await;
            drop(hold);
            stored
        })
        .await?;
        let sum = info.attrs.checksum.as_ref();
        let result = CopyObjectResult {
            e_tag: Some(objects::etag(&info)),
            last_modified: Some(objects::timestamp(info.created_at)),
            checksum_type: checksum::stored_type(sum),
            ..Default::default()
        };
        ok(CopyObjectOutput {
            copy_object_result: Some(checksum::with_fields!(result, checksum::stored_fields(sum))),
            ..Default::default()
        })
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> Answer<ListObjectsV2Output> {
        listing::objects_v2(self, req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> Answer<ListObjectsOutput> {
        listing::objects_v1(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> Answer<CreateMultipartUploadOutput> {
        multipart::create(self, req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> Answer<UploadPartOutput> {
        multipart::part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> Answer<UploadPartCopyOutput> {
        multipart::part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> Answer<CompleteMultipartUploadOutput> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> Answer<AbortMultipartUploadOutput> {
        multipart::abort(self, req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> Answer<ListPartsOutput> {
        multipart::parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> Answer<ListMultipartUploadsOutput> {
        multipart::uploads(self, req).await
    }
}

/// Runs a write to its end on a task of its own. A client that goes away makes the server drop
/// the request's future; a write dropped part-way could leave placed part objects that nothing
/// records until the next start. On its own task the write fails (its body ends early) and
/// deletes what it placed, or finishes.
pub(super) async fn to_the_end<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, GatewayError>> + Send + 'static,
) -> S3Result<T> {
    match tokio::spawn(write).await {
        Ok(done) => done.or_s3(),
        Err(e) => Err(s3_error!(InternalError, "a write failed: {e}")),
    }
}

pub(super) fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(NotImplemented, "copy sources are bucket/key")),
    }
}

/// `x-amz-copy-source-range: bytes=a-b`, within an object of `size` bytes.
pub fn copy_range(text: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last"
        )
    };
    let (a, b) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b >= size {
        return Err(s3_error!(
            InvalidRange,
            "the copy range is outside the source object"
        ));
    }
    Ok(a..b + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_are_inside_the_source() {
        assert_eq!(copy_range("bytes=0-9", 10).unwrap(), 0..10);
        assert!(copy_range("bytes=0-10", 10).is_err());
        assert!(copy_range("bytes=5-4", 10).is_err());
        assert!(copy_range("0-4", 10).is_err());
    }
}
