//! `x-amz-checksum-*`: the checksum a client sends with an upload, either as a header or as the
//! trailer of an `aws-chunked` body (boto3 and aws-cli send a CRC32 trailer by default). The
//! body is hashed as it streams to the gateway. If the sum differs at the end, the reader fails
//! instead of reporting the end. The upload is then never committed, and the client gets
//! `BadDigest`, as S3 answers.
//!
//! A sum that agreed is stored with the object or the part (see [`Verdict::slot`]). A multipart
//! object's sum is S3's composite form ([`composite`]): the sum of the parts' raw sums joined
//! in order, in base64, then `-<number of parts>`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use hyper::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{s3_error, S3Error, S3Result};

use crate::gateway::{Checksum as Stored, ChecksumSlot};

/// The checksum algorithms S3 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// The header (or trailer) that carries this algorithm's sum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name S3 gives the algorithm (`x-amz-checksum-algorithm`, `ChecksumAlgorithm`), as
    /// stored.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm of a name S3 gives, in any letter case.
    pub fn of_name(name: &str) -> Option<Algorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The base64 sum of `data`.
    pub(super) fn sum(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        self.value(h.finalize()).unwrap_or_default()
    }

    /// The algorithm named by a checksum header, in any letter case.
    pub fn of_header(name: &str) -> Option<Algorithm> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name))
    }

    /// The length of the raw sum, before base64.
    fn len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn hasher(self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        match self {
            Algorithm::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
            Algorithm::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
            Algorithm::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
            Algorithm::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
            Algorithm::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
        }
        h
    }

    fn value(self, sums: Checksum) -> Option<String> {
        match self {
            Algorithm::Crc32 => sums.checksum_crc32,
            Algorithm::Crc32c => sums.checksum_crc32c,
            Algorithm::Crc64Nvme => sums.checksum_crc64nvme,
            Algorithm::Sha1 => sums.checksum_sha1,
            Algorithm::Sha256 => sums.checksum_sha256,
        }
    }

    /// The raw bytes of a base64 sum of this algorithm, if it is one.
    pub(super) fn raw(self, value: &str) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .filter(|b| b.len() == self.len())
    }

    /// A sum as sent: the base64 of exactly [`Self::len`] bytes.
    fn check_form(self, value: &str) -> S3Result<()> {
        match self.raw(value) {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                InvalidRequest,
                "Value for {} header is invalid.",
                self.header()
            )),
        }
    }
}

/// Where the sum a client announced is found.
#[derive(Debug, Clone)]
enum Source {
    /// In a request header, known before the body.
    Header(String),
    /// In the trailer of an `aws-chunked` body, known once the body has ended.
    Trailer(s3s::TrailingHeaders),
    /// Nowhere: the gateway computes the sum itself (a part of an upload that names an
    /// algorithm but was sent without a sum, or a copy).
    Computed,
}

/// The sum an upload must have.
#[derive(Debug, Clone)]
pub struct Expected {
    algorithm: Algorithm,
    source: Source,
}

impl Expected {
    /// No sum to check: `algorithm`'s sum is computed as the body streams, to be stored.
    pub fn compute(algorithm: Algorithm) -> Expected {
        Expected {
            algorithm,
            source: Source::Computed,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The sum a request announces, from its headers: one `x-amz-checksum-*` header, or an
/// `x-amz-trailer` naming one that the body's trailer carries. None when it announces none.
pub fn expected(
    headers: &HeaderMap,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<Option<Expected>> {
    let mut sent = Algorithm::ALL.into_iter().filter_map(|a| {
        let value = headers.get(a.header())?;
        Some((a, value.to_str().unwrap_or("")))
    });
    if let Some((algorithm, value)) = sent.next() {
        if sent.next().is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        algorithm.check_form(value)?;
        let source = Source::Header(value.trim().to_owned());
        return Ok(Some(Expected { algorithm, source }));
    }
    let Some(trailer) = headers.get("x-amz-trailer") else {
        return Ok(None);
    };
    let name = trailer.to_str().unwrap_or("");
    let Some(algorithm) = Algorithm::of_header(name) else {
        return Err(s3_error!(
            InvalidRequest,
            "x-amz-trailer names {name:?}, which is not a checksum S3 knows"
        ));
    };
    let Some(trailers) = trailers else {
        return Err(s3_error!(
            InvalidRequest,
            "x-amz-trailer is only valid with an aws-chunked body"
        ));
    };
    let source = Source::Trailer(trailers.clone());
    Ok(Some(Expected { algorithm, source }))
}

/// How the check of an upload's sum ended, read by the operation once the write returns; the
/// agreed sum also lands in [`Verdict::slot`], where the gateway takes it to store.
#[derive(Debug, Clone, Default)]
pub struct Verdict(Arc<Mutex<Outcome>>, ChecksumSlot);

#[derive(Debug, Default)]
enum Outcome {
    /// The body has not ended, or nothing was announced.
    #[default]
    Open,
    /// The sums agreed: the algorithm and the base64 sum, for the response.
    Agreed(Algorithm, String),
    /// The body did not match, or the trailer never came; the S3 error to answer with.
    Refused(S3Error),
}

impl Verdict {
    /// The error a failed write answers with: the checksum's refusal when there was one (the
    /// write failed because the reader did), else the write's own.
    pub fn error_of(&self, write_error: S3Error) -> S3Error {
        match &*self.0.lock().expect("verdict lock") {
            Outcome::Refused(e) => S3Error::with_message(
                e.code().clone(),
                e.message().unwrap_or("checksum mismatch").to_owned(),
            ),
            _ => write_error,
        }
    }

    /// The sum that was checked, to return with a successful write.
    pub fn agreed(&self) -> Option<(Algorithm, String)> {
        match &*self.0.lock().expect("verdict lock") {
            Outcome::Agreed(a, v) => Some((*a, v.clone())),
            _ => None,
        }
    }

    /// Where the agreed sum is put, for the gateway to store once the body ended.
    pub fn slot(&self) -> ChecksumSlot {
        self.1.clone()
    }

    fn settle(&self, outcome: Outcome) {
        if let Outcome::Agreed(algorithm, value) = &outcome {
            self.1.set(Stored {
                algorithm: algorithm.name().to_owned(),
                value: value.clone(),
                parts: None,
            });
        }
        *self.0.lock().expect("verdict lock") = outcome;
    }
}

/// Sets the checksum fields of an upload's response.
pub fn answer(verdict: &Verdict) -> Checksum {
    fields(verdict.agreed())
}

/// The checksum fields of a response giving a stored sum (in its S3 text form).
pub fn stored_fields(sum: Option<&Stored>) -> Checksum {
    let sum = sum.and_then(|s| Some((Algorithm::of_name(&s.algorithm)?, s.text())));
    fields(sum)
}

/// `ChecksumType` of a stored sum: `COMPOSITE` for a multipart object's, else `FULL_OBJECT`.
pub fn stored_type(sum: Option<&Stored>) -> Option<s3s::dto::ChecksumType> {
    use s3s::dto::ChecksumType;
    sum.map(|s| match s.parts {
        Some(_) => ChecksumType::from_static(ChecksumType::COMPOSITE),
        None => ChecksumType::from_static(ChecksumType::FULL_OBJECT),
    })
}

fn fields(sum: Option<(Algorithm, String)>) -> Checksum {
    let mut sums = Checksum::default();
    if let Some((algorithm, value)) = sum {
        let field = match algorithm {
            Algorithm::Crc32 => &mut sums.checksum_crc32,
            Algorithm::Crc32c => &mut sums.checksum_crc32c,
            Algorithm::Crc64Nvme => &mut sums.checksum_crc64nvme,
            Algorithm::Sha1 => &mut sums.checksum_sha1,
            Algorithm::Sha256 => &mut sums.checksum_sha256,
        };
        *field = Some(value);
    }
    sums
}

/// An upload's response (`PutObjectOutput`, `UploadPartOutput`) with the checked sum set.
macro_rules! with_sums {
    ($out:expr, $verdict:expr) => {{
        $crate::s3::checksum::with_fields!($out, $crate::s3::checksum::answer(&$verdict))
    }};
}
pub(crate) use with_sums;

/// Any output with the five `checksum_*` fields, set from an [`s3s::dto::Checksum`].
macro_rules! with_fields {
    ($out:expr, $sums:expr) => {{
        let mut out = $out;
        let sums: s3s::dto::Checksum = $sums;
        out.checksum_crc32 = sums.checksum_crc32;
        out.checksum_crc32c = sums.checksum_crc32c;
        out.checksum_crc64nvme = sums.checksum_crc64nvme;
        out.checksum_sha1 = sums.checksum_sha1;
        out.checksum_sha256 = sums.checksum_sha256;
        out
    }};
}
pub(crate) use with_fields;

type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A request body that checks the announced sum at its end: the stream fails there instead of
/// ending when the sum differs.
pub struct Checked {
    inner: ByteStream,
    check: Option<(Expected, ChecksumHasher)>,
    verdict: Verdict,
}

impl Checked {
    pub fn new(body: Option<StreamingBlob>, expected: Option<Expected>) -> (Self, Verdict) {
        use futures_util::StreamExt;
        let inner: ByteStream = match body {
            Some(b) => Box::pin(b.map(|chunk| chunk.map_err(io::Error::other))),
            None => Box::pin(futures_util::stream::empty()),
        };
        let verdict = Verdict::default();
        let check = expected.map(|e| {
            let hasher = e.algorithm.hasher();
            (e, hasher)
        });
        let body = Checked {
            inner,
            check,
            verdict: verdict.clone(),
        };
        (body, verdict)
    }

    /// At the end of the body: compares the sums; an error when they differ.
    fn finish(&mut self) -> Option<io::Error> {
        let (expected, hasher) = self.check.take()?;
        let algorithm = expected.algorithm;
        let got = algorithm.value(hasher.finalize()).unwrap_or_default();
        let outcome = match announced(&expected) {
            Ok(_) if matches!(expected.source, Source::Computed) => Outcome::Agreed(algorithm, got),
            Ok(sent) if sent == got => Outcome::Agreed(algorithm, got),
            Ok(sent) => Outcome::Refused(s3_error!(
                BadDigest,
                "The {} you specified ({sent}) did not match the calculated checksum ({got}).",
                algorithm.header()
            )),
            Err(e) => Outcome::Refused(e),
        };
        let failed = matches!(outcome, Outcome::Refused(_));
        self.verdict.settle(outcome);
        failed.then(|| io::Error::new(io::ErrorKind::InvalidData, "checksum mismatch"))
    }
}

/// The sum the client sent, once the body has ended (so its trailer has been read).
fn announced(expected: &Expected) -> S3Result<String> {
    let name = expected.algorithm.header();
    let value = match &expected.source {
        Source::Header(v) => return Ok(v.clone()),
        Source::Computed => return Ok(String::new()),
        Source::Trailer(t) => t
            .read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned))
            .flatten(),
    };
    let Some(value) = value else {
        return Err(s3_error!(
            IncompleteBody,
            "x-amz-trailer announced {name}, but the body's trailer did not carry it"
        ));
    };
    expected.algorithm.check_form(&value)?;
    Ok(value.trim().to_owned())
}

impl Stream for Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some((_, hasher)) = this.check.as_mut() {
                    hasher.update(bytes);
                }
            }
            Poll::Ready(None) => {
                if let Some(e) = this.finish() {
                    return Poll::Ready(Some(Err(e)));
                }
            }
            _ => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn blob(parts: &[&'static [u8]]) -> StreamingBlob {
        let chunks: Vec<Result<Bytes, io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        StreamingBlob::wrap(futures_util::stream::iter(chunks))
    }

    async fn drain(mut body: Checked) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    // CRC32 (ISO-HDLC) of "hello world" is 0x0d4a1185.
    const HELLO_CRC32: &str = "DUoRhQ==";

    #[tokio::test]
    async fn a_matching_header_sum_passes_and_is_returned() {
        let h = headers(&[("x-amz-checksum-crc32", HELLO_CRC32)]);
        let expected = expected(&h, None).unwrap();
        let (body, verdict) = Checked::new(Some(blob(&[b"hello ", b"world"])), expected);
        assert_eq!(drain(body).await.unwrap(), b"hello world");
        assert_eq!(
            verdict.agreed(),
            Some((Algorithm::Crc32, HELLO_CRC32.to_owned()))
        );
        assert_eq!(
            answer(&verdict).checksum_crc32.as_deref(),
            Some(HELLO_CRC32)
        );
    }

    #[tokio::test]
    async fn a_differing_sum_fails_the_body_at_its_end_with_bad_digest() {
        let h = headers(&[("x-amz-checksum-crc32", "AAAAAA==")]);
        let expected = expected(&h, None).unwrap();
        let (body, verdict) = Checked::new(Some(blob(&[b"hello world"])), expected);
        assert!(drain(body).await.is_err());
        let e = verdict.error_of(s3_error!(IncompleteBody));
        assert_eq!(e.code().as_str(), "BadDigest");
    }

    #[tokio::test]
    async fn every_algorithm_agrees_with_its_own_sum() {
        for a in Algorithm::ALL {
            let mut hasher = a.hasher();
            hasher.update(b"hello world");
            let sum = a.value(hasher.finalize()).unwrap();
            let h = headers(&[(a.header(), &sum)]);
            let (body, verdict) = Checked::new(
                Some(blob(&[b"hello", b" ", b"world"])),
                expected(&h, None).unwrap(),
            );
            drain(body).await.unwrap();
            assert_eq!(verdict.agreed(), Some((a, sum)), "{a:?}");
        }
    }

    #[test]
    fn malformed_or_several_sums_are_refused_before_the_body() {
        let bad = headers(&[("x-amz-checksum-sha256", "DUoRhQ==")]);
        assert!(expected(&bad, None).is_err());
        let two = headers(&[
            ("x-amz-checksum-crc32", HELLO_CRC32),
            ("x-amz-checksum-crc32c", HELLO_CRC32),
        ]);
        assert!(expected(&two, None).is_err());
        let unknown = headers(&[("x-amz-trailer", "x-amz-checksum-md4")]);
        assert!(expected(&unknown, None).is_err());
        let not_chunked = headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]);
        assert!(expected(&not_chunked, None).is_err());
        assert!(expected(&HeaderMap::new(), None).unwrap().is_none());
    }

    #[tokio::test]
    async fn nothing_announced_checks_nothing() {
        let (body, verdict) = Checked::new(Some(blob(&[b"x"])), None);
        assert_eq!(drain(body).await.unwrap(), b"x");
        assert!(verdict.agreed().is_none());
        let e = verdict.error_of(s3_error!(IncompleteBody));
        assert_eq!(e.code().as_str(), "IncompleteBody");
    }
}
