//! Multipart uploads (S3's CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload): each part is encoded and placed as it arrives, as part objects of the
//! bucket's part bucket (`groups::store_run`), never buffered whole on the gateway; completing
//! commits a grouped object made of the listed parts' part objects. See `meta::multipart` for
//! what is recorded when.

use raidtorrent_codec::ShardInfo;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use super::attrs::{
    multipart_etag, Checksum, ChecksumSlot, Md5Reader, ObjectAttrs, WriteCondition,
};
use super::meta::{new_parts, part_bucket_name, NewObject, StoredBody, Upload, UploadPart};
use super::model::{check_key, ObjectInfo};
use super::upload;
use super::write::{self, GroupReader, Source};
use super::{groups, ActiveKey, Gateway, GatewayError};
use crate::metrics::metrics;
use crate::registry::unix_now;

/// Smallest part S3 allows but for the last one.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Largest part S3 allows.
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// Part numbers run from 1 to this.
pub const MAX_PART_NUMBER: u32 = 10_000;

impl Gateway {
    /// Starts a multipart upload of `bucket`/`key`; the attributes go with the object once it
    /// is completed, and every part is summed with `checksum_algorithm` (S3's name) if one is
    /// given, the object's sum being of `checksum_type` (S3's name). Returns the upload id.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        attrs: ObjectAttrs,
        checksum_algorithm: Option<String>,
        checksum_type: Option<String>,
    ) -> Result<String, GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        check_key(key)?;
        attrs.check()?;
        let upload = Upload {
            upload_id: ShardInfo::random_name(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            attrs,
            checksum_algorithm,
            checksum_type,
            created_at: unix_now(),
        };
        self.inner.meta.create_upload(&upload).await?;
        Ok(upload.upload_id)
    }

    pub async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Upload, GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        self.inner.meta.upload(bucket, upload_id).await
    }

    /// Stores part `number` of an upload, replacing an earlier part of that number: encoded and
    /// placed as it streams in. Fails with `BadDigest` (storing nothing) if `checks` expects an
    /// MD5 and the content's differs; records the checksum `checks` holds once the body ended.
    pub async fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        number: u32,
        body: impl AsyncRead + Send + Unpin + 'static,
        size_hint: Option<u64>,
        checks: PartChecks,
    ) -> Result<UploadPart, GatewayError> {
        let b = self.inner.meta.bucket(bucket).await?;
        self.inner.meta.upload(bucket, upload_id).await?;
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(GatewayError::BadRequest(format!(
                "part numbers run from 1 to {MAX_PART_NUMBER}, not {number}"
            )));
        }
        let max = MAX_PART_SIZE.min(self.inner.config.max_object_size);
        if let Some(size) = size_hint.filter(|s| *s > max) {
            return Err(GatewayError::TooLarge { size, max });
        }
        let _turn = self.inner.admission.put().await?;
        let (body, md5) = Md5Reader::new(body);
        let mut upload = upload::Upload::new(body, self.inner.config.body_timeout, max, |max| {
            GatewayError::TooLarge { size: max + 1, max }
        });
        let head = upload.head(1).await?;
        let prefix = ShardInfo::random_name();
        let (size, sha256) = if head.is_empty() {
            (0, Sha256::digest(b"").into())
        } else {
            let source = Source {
                head,
                body: upload.into_body(),
                size_hint,
            };
            self.store_part(&b, &prefix, source).await?
        };
        let part = UploadPart {
            part_number: number,
            prefix: prefix.clone(),
            size,
            md5: md5.get()?,
            sha256,
            checksum: checks.checksum.get(),
            created_at: unix_now(),
        };
        let recorded = match checks.expect_md5.filter(|e| *e != part.md5) {
            Some(expected) => Err(GatewayError::BadDigest {
                expected: hex::encode(expected),
                got: hex::encode(part.md5),
            }),
            None => self.inner.meta.record_part(bucket, upload_id, &part).await,
        };
        if let Err(e) = recorded {
            if let Err(dropped) = self.inner.meta.drop_part_objects(bucket, &prefix).await {
                tracing::warn!(error = %dropped, "a refused part's objects stay until the next start");
            }
            self.wake_collector();
            return Err(e);
        }
        // The part it replaced, if any, is now orphaned.
        self.wake_collector();
        metrics().bytes("in", part.size);
        Ok(part)
    }

    /// Encodes and places a part's bytes as part objects under `prefix`: their size and SHA-256.
    async fn store_part<B>(
        &self,
        bucket: &super::Bucket,
        prefix: &str,
        source: Source<B>,
    ) -> Result<(u64, [u8; 32]), GatewayError>
    where
        B: AsyncRead + Send + Unpin + 'static,
    {
        let mut reader = GroupReader::new(self, bucket, source);
        let first = write::encode_group(self, &mut reader).await?;
        let single = reader.ended().then(|| first.sha256());
        groups::store_run(self, bucket, prefix.to_owned(), &mut reader, first).await?;
        let sha256 = single.unwrap_or_else(|| reader.sha256());
        Ok((reader.read(), sha256))
    }

    /// The parts recorded for an upload, in part-number order.
    pub async fn upload_parts(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadPart>, GatewayError> {
        self.upload(bucket, upload_id).await?;
        self.inner.meta.upload_parts(upload_id).await
    }

    /// Uploads in progress in `bucket` with keys starting with `prefix`, after `after`.
    pub async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<Upload>, GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        self.inner
            .meta
            .uploads(bucket, prefix, after, limit.clamp(1, 1000))
            .await
    }

    /// Completes an upload from the `listed` parts (number, ETag), which must name recorded
    /// parts in ascending order, each but the last at least [`MIN_PART_SIZE`]. `checksum` sees
    /// the upload and the chosen parts and gives the object's checksum, or refuses. The object
    /// becomes visible in the same transaction that ends the upload; parts not listed go.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        listed: &[(u32, String)],
        condition: Option<WriteCondition>,
        by: Option<&ActiveKey>,
        checksum: impl FnOnce(&Upload, &[&UploadPart]) -> Result<Option<Checksum>, GatewayError>,
    ) -> Result<ObjectInfo, GatewayError> {
        let upload = self.upload(bucket, upload_id).await?;
        let recorded = self.inner.meta.upload_parts(upload_id).await?;
        let chosen = choose_parts(&recorded, listed)?;
        let sum = checksum(&upload, &chosen)?;
        let size: u64 = chosen.iter().map(|p| p.size).sum();
        let max = self.inner.config.max_object_size;
        if size > max {
            return Err(GatewayError::TooLarge { size, max });
        }
        let _quota = self.reserve_write(by, Some(size)).await?;
        let mut objects = Vec::new();
        for p in &chosen {
            objects.extend(self.inner.meta.part_objects(bucket, &p.prefix).await?);
        }
        let prefixes: Vec<String> = chosen.iter().map(|p| p.prefix.clone()).collect();
        let mut whole = Sha256::new();
        for p in &chosen {
            whole.update(p.sha256);
        }
        let md5s: Vec<[u8; 16]> = chosen.iter().map(|p| p.md5).collect();
        let attrs = ObjectAttrs {
            etag: Some(multipart_etag(&md5s)),
            checksum: sum,
            condition,
            ..upload.attrs.clone()
        };
        let parts = new_parts(&objects);
        let part_bucket = part_bucket_name(bucket);
        let object = NewObject {
            bucket,
            key: &upload.key,
            size,
            sha256: &whole.finalize().into(),
            attrs: Some(&attrs),
            body: StoredBody::Grouped {
                part_bucket: &part_bucket,
                parts: &parts,
            },
            placed_by: by.map(|k| k.access_key.as_str()),
        };
        let check = |now: &[UploadPart]| {
            let again = choose_parts(now, listed)?;
            if again.iter().map(|p| &p.prefix).ne(prefixes.iter()) {
                return Err(GatewayError::InvalidPart(
                    "a part was sent again while the upload was being completed".to_owned(),
                ));
            }
            Ok(prefixes.clone())
        };
        let info = self
            .inner
            .meta
            .complete_upload(upload_id, &object, unix_now(), check)
            .await?;
        self.wake_collector();
        Ok(info)
    }

    /// Aborts an upload: its parts leave the nodes at the collector's next pass.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), GatewayError> {
        self.inner.meta.bucket(bucket).await?;
        self.inner.meta.abort_upload(bucket, upload_id).await?;
        self.wake_collector();
        Ok(())
    }

    /// Aborts the uploads left unfinished longer than `upload_expiry`; how many.
    pub(super) async fn expire_uploads(&self) -> Result<usize, GatewayError> {
        let expiry = self.inner.config.upload_expiry.as_secs() as i64;
        let old = self
            .inner
            .meta
            .uploads_started_before(unix_now() - expiry)
            .await?;
        for u in &old {
            match self.inner.meta.abort_upload(&u.bucket, &u.upload_id).await {
                Ok(()) | Err(GatewayError::NoSuchUpload(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(old.len())
    }
}

/// What a part is checked against besides its own bytes.
#[derive(Debug, Clone, Default)]
pub struct PartChecks {
    /// `Content-MD5` as sent: the part is refused with `BadDigest` unless the content matches.
    pub expect_md5: Option<[u8; 16]>,
    /// The verified `x-amz-checksum-*` sum, filled in by the body's reader; recorded with the part.
    pub checksum: ChecksumSlot,
}

/// The recorded parts a completion lists, checked as S3 checks them: ascending part numbers,
/// each recorded with the ETag given (quotes optional), each but the last at least
/// [`MIN_PART_SIZE`].
pub(super) fn choose_parts<'a>(
    recorded: &'a [UploadPart],
    listed: &[(u32, String)],
) -> Result<Vec<&'a UploadPart>, GatewayError> {
    if listed.is_empty() {
        return Err(GatewayError::BadRequest(
            "a completion must list at least one part".to_owned(),
        ));
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(GatewayError::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (number, etag) in listed {
        let want = etag.trim().trim_matches('"').to_ascii_lowercase();
        let part = recorded
            .iter()
            .find(|p| p.part_number == *number && hex::encode(p.md5) == want)
            .ok_or_else(|| {
                GatewayError::InvalidPart(format!(
                    "part {number} with ETag {etag} was not uploaded"
                ))
            })?;
        chosen.push(part);
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(GatewayError::EntityTooSmall {
            part: small.part_number,
            size: small.size,
            min: MIN_PART_SIZE,
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, size: u64, md5: u8) -> UploadPart {
        UploadPart {
            part_number: number,
            prefix: format!("p{number}"),
            size,
            md5: [md5; 16],
            sha256: [0; 32],
            checksum: None,
            created_at: 0,
        }
    }

    fn etag(md5: u8) -> String {
        format!("\"{}\"", hex::encode([md5; 16]))
    }

    #[test]
    fn a_completion_names_recorded_parts_in_order_all_but_the_last_big_enough() {
        let recorded = [
            part(1, MIN_PART_SIZE, 1),
            part(2, MIN_PART_SIZE, 2),
            part(3, 10, 3),
        ];
        let ok = choose_parts(&recorded, &[(1, etag(1)), (3, etag(3))]).unwrap();
        assert_eq!(ok.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 3]);
        assert!(matches!(
            choose_parts(&recorded, &[(2, etag(2)), (1, etag(1))]),
            Err(GatewayError::InvalidPartOrder)
        ));
        assert!(matches!(
            choose_parts(&recorded, &[(1, etag(1)), (1, etag(1))]),
            Err(GatewayError::InvalidPartOrder)
        ));
        assert!(matches!(
            choose_parts(&recorded, &[(1, etag(9))]),
            Err(GatewayError::InvalidPart(_))
        ));
        assert!(matches!(
            choose_parts(&recorded, &[(4, etag(3))]),
            Err(GatewayError::InvalidPart(_))
        ));
        assert!(matches!(
            choose_parts(&recorded, &[(3, etag(3)), (4, etag(1))]),
            Err(GatewayError::InvalidPart(_))
        ));
        assert!(matches!(
            choose_parts(&recorded, &[(1, etag(1)), (3, etag(3)), (5, etag(5))]),
            Err(GatewayError::InvalidPart(_))
        ));
        let small = [part(1, 10, 1), part(2, 10, 2)];
        assert!(matches!(
            choose_parts(&small, &[(1, etag(1)), (2, etag(2))]),
            Err(GatewayError::EntityTooSmall { part: 1, .. })
        ));
        assert!(choose_parts(&small, &[(2, etag(2))]).is_ok());
        assert!(choose_parts(&small, &[]).is_err());
    }
}
