//! The `x-amz-checksum-*` fields of requests as the operations use them: which algorithm an
//! upload's parts are summed with, which sum a part or a completion sends, and whether a read
//! asks for the stored sum (`x-amz-checksum-mode: ENABLED`).

use s3s::dto::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompleteMultipartUploadInput, CompletedPart,
};
use s3s::{s3_error, S3Result};

use super::checksum::{Algorithm, Expected};
use super::composite::{Completion, Kind, Sent};
use crate::gateway::{Checksum, ObjectAttrs, ObjectInfo, Upload};

/// The stored sum a GET or HEAD gives: only when asked for, and only for the whole object.
pub fn wanted<'a>(
    mode: Option<&ChecksumMode>,
    whole: bool,
    info: &'a ObjectInfo,
) -> Option<&'a Checksum> {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    (enabled && whole)
        .then_some(info.attrs.checksum.as_ref())
        .flatten()
}

/// The algorithm S3 names `name`; `InvalidRequest` for another.
pub fn algorithm_named(name: &str) -> S3Result<Algorithm> {
    Algorithm::of_name(name).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "{name} is not a checksum algorithm S3 knows"
        )
    })
}

/// The algorithm of an object's stored sum, if it has one.
pub fn of_object(attrs: &ObjectAttrs) -> Option<Algorithm> {
    stored(attrs.checksum.as_ref().map(|c| c.algorithm.as_str()))
}

/// A stored algorithm name, read back.
pub fn stored(name: Option<&str>) -> Option<Algorithm> {
    name.and_then(Algorithm::of_name)
}

/// The algorithm a new multipart upload sums its parts with, and how its object's sum is made
/// of theirs: composite unless the upload asks for `FULL_OBJECT` (or names CRC64NVME, which S3
/// does not compose). A type S3 does not allow with the algorithm is `InvalidRequest`.
pub fn of_new_upload(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(Algorithm, Kind)>> {
    let kind = match kind {
        Some(k) => Some(Kind::of_name(k.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "x-amz-checksum-type must be COMPOSITE or FULL_OBJECT"
            )
        })?),
        None => None,
    };
    let Some(algorithm) = algorithm else {
        return match kind {
            Some(_) => Err(s3_error!(
                InvalidRequest,
                "x-amz-checksum-type needs x-amz-checksum-algorithm"
            )),
            None => Ok(None),
        };
    };
    let algorithm = algorithm_named(algorithm.as_str())?;
    let kind = kind.unwrap_or(Kind::default_for(algorithm));
    if !kind.takes(algorithm) {
        return Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name()
        ));
    }
    Ok(Some((algorithm, kind)))
}

/// How an upload's object sum is made: as named at its creation (uploads made before types
/// were kept are composite).
pub fn kind_of(upload: &Upload) -> Kind {
    match (
        upload.checksum_type.as_deref(),
        stored(upload.checksum_algorithm.as_deref()),
    ) {
        (Some(name), _) => Kind::of_name(name).unwrap_or_default(),
        (None, Some(algorithm)) => Kind::default_for(algorithm),
        (None, None) => Kind::Composite,
    }
}

/// `ChecksumType` of an upload with an algorithm.
pub fn upload_type(upload: &Upload) -> Option<ChecksumType> {
    upload
        .checksum_algorithm
        .as_ref()
        .map(|_| ChecksumType::from_static(kind_of(upload).name()))
}

/// The sum a part is checked against: the one it sends, which must be of the upload's
/// algorithm if it names one; else that algorithm's, computed as the part streams.
pub fn of_part(upload: &Upload, sent: Option<Expected>) -> S3Result<Option<Expected>> {
    let Some(want) = stored(upload.checksum_algorithm.as_deref()) else {
        return Ok(sent);
    };
    match sent {
        None => Ok(Some(Expected::compute(want))),
        Some(e) if e.algorithm() == want => Ok(Some(e)),
        Some(e) => Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            want.name(),
            e.algorithm().name()
        )),
    }
}

/// The sum a completion lists for one part; `InvalidRequest` if it lists several.
pub fn listed(part: &CompletedPart) -> S3Result<Option<Sent>> {
    one_of([
        (Algorithm::Crc32, &part.checksum_crc32),
        (Algorithm::Crc32c, &part.checksum_crc32c),
        (Algorithm::Crc64Nvme, &part.checksum_crc64nvme),
        (Algorithm::Sha1, &part.checksum_sha1),
        (Algorithm::Sha256, &part.checksum_sha256),
    ])
}

/// The one sum of a request's five `checksum_*` fields, if any.
fn one_of(fields: [(Algorithm, &Option<String>); 5]) -> S3Result<Option<Sent>> {
    let mut given = fields.into_iter().filter_map(|(algorithm, value)| {
        let value = value.clone()?;
        Some(Sent { algorithm, value })
    });
    let first = given.next();
    if given.next().is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single checksum. Multiple checksum Types are not allowed."
        ));
    }
    Ok(first)
}

/// The whole-object sum a completion sends (`x-amz-checksum-<algorithm>`): it must be of the
/// upload's algorithm, and a type the completion names must be the upload's.
pub fn whole(sums: &Completion, input: &CompleteMultipartUploadInput) -> S3Result<Option<Sent>> {
    let named = input
        .checksum_type
        .as_ref()
        .map(|k| Kind::of_name(k.as_str()));
    if named.is_some_and(|k| k != Some(sums.kind)) {
        return Err(s3_error!(
            InvalidRequest,
            "the upload's checksum type is {}",
            sums.kind.name()
        ));
    }
    let header = one_of([
        (Algorithm::Crc32, &input.checksum_crc32),
        (Algorithm::Crc32c, &input.checksum_crc32c),
        (Algorithm::Crc64Nvme, &input.checksum_crc64nvme),
        (Algorithm::Sha1, &input.checksum_sha1),
        (Algorithm::Sha256, &input.checksum_sha256),
    ])?;
    let Some(sent) = header else {
        return Ok(None);
    };
    match sums.algorithm {
        Some(a) if a == sent.algorithm => Ok(Some(sent)),
        Some(a) => Err(s3_error!(
            InvalidRequest,
            "The upload was created using a {} checksum. The complete request must use the same \
             checksum algorithm.",
            a.name()
        )),
        None => Err(s3_error!(
            InvalidRequest,
            "The upload was created without a checksum algorithm, so the completion cannot \
             carry {}",
            sent.algorithm.header()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(algorithm: Option<&str>) -> Upload {
        Upload {
            upload_id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            attrs: ObjectAttrs::default(),
            checksum_algorithm: algorithm.map(str::to_owned),
            checksum_type: None,
            created_at: 0,
        }
    }

    #[test]
    fn a_part_is_summed_with_its_uploads_algorithm() {
        let crc = Expected::compute(Algorithm::Crc32);
        let sha = Expected::compute(Algorithm::Sha256);
        assert!(of_part(&upload(None), None).unwrap().is_none());
        let got = of_part(&upload(Some("CRC32")), None).unwrap().unwrap();
        assert_eq!(got.algorithm(), Algorithm::Crc32);
        assert!(of_part(&upload(Some("CRC32")), Some(crc.clone())).is_ok());
        assert!(of_part(&upload(Some("CRC32")), Some(sha.clone())).is_err());
        assert!(of_part(&upload(None), Some(sha)).unwrap().is_some());
    }

    #[test]
    fn uploads_take_the_sum_types_s3_allows() {
        let name = |n: &str| ChecksumAlgorithm::from(n.to_owned());
        let kind = |k: &'static str| ChecksumType::from_static(k);
        let (crc, nvme, sha) = (name("CRC32"), name("CRC64NVME"), name("SHA256"));
        let full = kind(ChecksumType::FULL_OBJECT);
        let composite = kind(ChecksumType::COMPOSITE);
        let new = |a, k| of_new_upload(a, k).map_err(|e| e.code().as_str().to_owned());
        assert_eq!(
            new(Some(&crc), None),
            Ok(Some((Algorithm::Crc32, Kind::Composite)))
        );
        assert_eq!(new(None, None), Ok(None));
        assert_eq!(
            new(Some(&nvme), None),
            Ok(Some((Algorithm::Crc64Nvme, Kind::FullObject)))
        );
        assert_eq!(
            new(Some(&crc), Some(&full)),
            Ok(Some((Algorithm::Crc32, Kind::FullObject)))
        );
        assert_eq!(new(Some(&sha), Some(&full)).unwrap_err(), "InvalidRequest");
        assert_eq!(
            new(Some(&nvme), Some(&composite)).unwrap_err(),
            "InvalidRequest"
        );
        assert_eq!(new(None, Some(&full)).unwrap_err(), "InvalidRequest");
        assert_eq!(
            new(Some(&crc), Some(&kind("PARTIAL"))).unwrap_err(),
            "InvalidRequest"
        );
    }

    #[test]
    fn an_uploads_kind_is_the_one_it_was_made_with() {
        let mut u = upload(Some("CRC32"));
        assert_eq!(kind_of(&u), Kind::Composite);
        u.checksum_type = Some("FULL_OBJECT".into());
        assert_eq!(kind_of(&u), Kind::FullObject);
        assert_eq!(kind_of(&upload(Some("CRC64NVME"))), Kind::FullObject);
        assert_eq!(upload_type(&upload(None)), None);
    }
}
