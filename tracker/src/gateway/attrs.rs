//! What a client stores beside an object's bytes, and the ETag S3 clients check: the MD5 of the
//! content, computed as the upload streams in ([`Md5Reader`]) and committed with the object, so
//! an object is never visible without it.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};

use super::GatewayError;

/// The headers stored and returned with an object, and its ETag. Absent fields were not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    /// As S3 gives it, without quotes: the hex MD5 of the content, or `<hex>-<n>` for an object
    /// completed from `n` multipart parts. Absent on objects stored before ETags were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-<name>` pairs, names lowercase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// The `x-amz-checksum-*` sum the client sent and the gateway verified (or the composite
    /// of a multipart upload's part sums); absent when none was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// What must hold of the object now under the key for this one to replace it, checked in
    /// the transaction that commits it (a conditional write); never stored.
    #[serde(skip)]
    pub condition: Option<WriteCondition>,
}

/// A checksum stored with an object or a multipart part, as S3 gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// The algorithm as S3 names it (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`); the
    /// S3 front end owns the names and the hashing, the gateway only keeps them.
    pub algorithm: String,
    /// The base64 of the raw sum; for a composite, of the sum of the parts' raw sums.
    pub value: String,
    /// For a composite sum (a multipart object): how many parts it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

impl Checksum {
    /// The sum as S3 writes it: `<base64>` or, for a composite, `<base64>-<parts>`.
    pub fn text(&self) -> String {
        match self.parts {
            Some(n) => format!("{}-{n}", self.value),
            None => self.value.clone(),
        }
    }
}

/// The verified checksum of an upload, filled in by the reader that checked it once the body
/// ended (empty when no sum was sent, or it did not match and the write failed).
#[derive(Debug, Clone, Default)]
pub struct ChecksumSlot(Arc<Mutex<Option<Checksum>>>);

impl ChecksumSlot {
    pub fn set(&self, sum: Checksum) {
        *self.0.lock().expect("checksum slot") = Some(sum);
    }

    pub fn get(&self) -> Option<Checksum> {
        self.0.lock().expect("checksum slot").clone()
    }
}

/// A conditional write: the object is committed only if, at that moment, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// ... no object has the key (`If-None-Match: *`);
    Absent,
    /// ... the object under the key has this ETag (`If-Match`, without quotes).
    Etag(String),
}

impl WriteCondition {
    /// Whether the condition holds of the object under the key, given by its ETag (stored, or
    /// else its SHA-256 hex), or of no object.
    pub fn holds(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (WriteCondition::Absent, current) => current.is_none(),
            (WriteCondition::Etag(want), Some(etag)) => want == "*" || want == etag,
            (WriteCondition::Etag(_), None) => false,
        }
    }
}

/// Most bytes of headers and metadata one object may carry (S3 allows 2 KiB of user metadata).
pub const MAX_ATTRS_BYTES: usize = 8 << 10;

impl ObjectAttrs {
    /// The JSON stored in the `attrs` column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("attributes serialise")
    }

    /// Reads the `attrs` column; a row without one has no attributes.
    pub fn from_json(json: Option<&str>) -> ObjectAttrs {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// Refuses attributes too large to keep with every object.
    pub fn check(&self) -> Result<(), GatewayError> {
        if self.to_json().len() > MAX_ATTRS_BYTES {
            return Err(GatewayError::BadRequest(format!(
                "headers and metadata stored with an object are at most {MAX_ATTRS_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// What a write stores beside the bytes: the attributes, the MD5 the client announced
/// (`Content-MD5`), and the MD5 of what was actually read.
#[derive(Debug, Clone, Default)]
pub struct PutAttrs {
    pub attrs: ObjectAttrs,
    /// `Content-MD5` as sent: the upload fails with `BadDigest` unless the content matches.
    pub expect_md5: Option<[u8; 16]>,
    /// The access key the object is stored for: it counts against that key's quota.
    pub placed_by: Option<String>,
    /// The verified `x-amz-checksum-*` sum, known once the body was read; stored with the object.
    pub checksum: ChecksumSlot,
}

/// The MD5 of an upload, filled in when its reader reaches the end.
#[derive(Debug, Clone, Default)]
pub(super) struct Md5Slot(Arc<Mutex<Option<[u8; 16]>>>);

impl Md5Slot {
    /// The upload's MD5; an error if the body was not read to its end.
    pub(super) fn get(&self) -> Result<[u8; 16], GatewayError> {
        self.0
            .lock()
            .expect("md5 slot")
            .ok_or_else(|| GatewayError::Internal("the upload's MD5 is not known".to_owned()))
    }
}

impl PutAttrs {
    /// The attributes to commit, with the ETag of content whose MD5 is `md5`; `BadDigest` if
    /// the client announced another.
    pub(super) fn commit(&self, md5: [u8; 16]) -> Result<ObjectAttrs, GatewayError> {
        if let Some(expected) = self.expect_md5.filter(|e| *e != md5) {
            return Err(GatewayError::BadDigest {
                expected: hex::encode(expected),
                got: hex::encode(md5),
            });
        }
        Ok(ObjectAttrs {
            etag: Some(hex::encode(md5)),
            checksum: self.checksum.get(),
            ..self.attrs.clone()
        })
    }
}

/// A write's attributes and the slot its MD5 lands in.
pub(super) struct Tags {
    pub put: PutAttrs,
    pub md5: Md5Slot,
}

impl Tags {
    /// The attributes to commit once the body was read to its end.
    pub(super) fn commit(&self) -> Result<ObjectAttrs, GatewayError> {
        self.put.commit(self.md5.get()?)
    }
}

/// Hashes everything read through it; at the end of the stream, records the MD5 in its slot.
/// Chunks are hashed as they arrive (a network read's worth at a time), never a whole segment
/// on the runtime at once.
pub(super) struct Md5Reader<R> {
    inner: R,
    md5: Option<Md5>,
    slot: Md5Slot,
}

impl<R> Md5Reader<R> {
    pub(super) fn new(inner: R) -> (Self, Md5Slot) {
        let slot = Md5Slot::default();
        let reader = Md5Reader {
            inner,
            md5: Some(Md5::new()),
            slot: slot.clone(),
        };
        (reader, slot)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Reader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                if let Some(md5) = this.md5.take() {
                    *this.slot.0.lock().expect("md5 slot") = Some(md5.finalize().into());
                }
            } else if let Some(md5) = this.md5.as_mut() {
                md5.update(new);
            }
        }
        polled
    }
}

/// The ETag of a multipart object: the MD5 of its parts' MD5s, and their count.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = Md5::new();
    for p in part_md5s {
        md5.update(p);
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_md5s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_md5_is_known_once_the_body_is_read_to_its_end() {
        let data = b"The quick brown fox jumps over the lazy dog".repeat(1000);
        let (mut reader, slot) = Md5Reader::new(&data[..]);
        let mut first = vec![0; 100];
        reader.read_exact(&mut first).await.unwrap();
        assert!(slot.get().is_err(), "not known part-way");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        let want: [u8; 16] = Md5::digest(&data).into();
        assert_eq!(slot.get().unwrap(), want);
    }

    #[test]
    fn content_md5_must_match_and_the_etag_is_the_hex_md5() {
        let md5: [u8; 16] = Md5::digest(b"hello").into();
        let attrs = PutAttrs::default();
        assert_eq!(
            attrs.commit(md5).unwrap().etag.as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        let wrong = PutAttrs {
            expect_md5: Some([0; 16]),
            ..PutAttrs::default()
        };
        assert!(matches!(
            wrong.commit(md5),
            Err(GatewayError::BadDigest { .. })
        ));
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s_and_their_count() {
        let a: [u8; 16] = Md5::digest(b"a").into();
        let b: [u8; 16] = Md5::digest(b"b").into();
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let want = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(multipart_etag(&[a, b]), want);
    }

    #[test]
    fn attributes_round_trip_and_old_rows_have_none() {
        let mut attrs = ObjectAttrs {
            content_type: Some("image/png".to_owned()),
            ..ObjectAttrs::default()
        };
        attrs.meta.insert("colour".to_owned(), "blue".to_owned());
        assert_eq!(ObjectAttrs::from_json(Some(&attrs.to_json())), attrs);
        assert_eq!(ObjectAttrs::from_json(None), ObjectAttrs::default());
    }
}

#[cfg(test)]
mod condition_tests {
    use super::WriteCondition;

    #[test]
    fn a_conditional_write_holds_only_of_what_it_names() {
        assert!(WriteCondition::Absent.holds(None));
        assert!(!WriteCondition::Absent.holds(Some("abc")));
        let e = WriteCondition::Etag("abc".into());
        assert!(e.holds(Some("abc")));
        assert!(!e.holds(Some("abd")));
        assert!(!e.holds(None));
        assert!(WriteCondition::Etag("*".into()).holds(Some("x")));
        assert!(!WriteCondition::Etag("*".into()).holds(None));
    }
}
