//! The checksum of a multipart object, as S3 makes it: a composite of the parts' sums (the sum
//! of their raw sums joined in part order, in base64, then `-<number of parts>`) or a full-object
//! CRC (of every byte, joined from the parts' CRCs), and the checks CompleteMultipartUpload makes
//! of the sums the client lists with it. Pure: no I/O.

use base64::Engine;

use super::checksum::Algorithm;
use super::crc::Crc;
use crate::gateway::{Checksum, GatewayError, UploadPart};

/// How a multipart object's sum is made from its parts' (S3's `ChecksumType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The sum of the parts' sums, with `-<parts>`.
    #[default]
    Composite,
    /// The CRC of the whole object, as a single PUT of it would have.
    FullObject,
}

impl Kind {
    pub const COMPOSITE: &'static str = "COMPOSITE";
    pub const FULL_OBJECT: &'static str = "FULL_OBJECT";

    /// S3's name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Composite => Self::COMPOSITE,
            Kind::FullObject => Self::FULL_OBJECT,
        }
    }

    /// The kind S3 names `name`, in any letter case.
    pub fn of_name(name: &str) -> Option<Kind> {
        [Kind::Composite, Kind::FullObject]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether sums of `algorithm` can be made this way: S3 composes every algorithm but
    /// CRC64NVME, and makes full-object sums of the CRCs only.
    pub fn takes(self, algorithm: Algorithm) -> bool {
        match self {
            Kind::Composite => algorithm != Algorithm::Crc64Nvme,
            Kind::FullObject => Crc::of(algorithm).is_some(),
        }
    }

    /// The kind an upload naming `algorithm` and no type gets: full-object for CRC64NVME.
    pub fn default_for(algorithm: Algorithm) -> Kind {
        if Kind::Composite.takes(algorithm) {
            Kind::Composite
        } else {
            Kind::FullObject
        }
    }
}

/// The composite sum of parts summed with `algorithm` (base64 sums, in part order); none if
/// one of them is not a sum of that algorithm.
pub fn composite(algorithm: Algorithm, part_sums: &[&str]) -> Option<Checksum> {
    let mut joined = Vec::new();
    for sum in part_sums {
        joined.extend(algorithm.raw(sum)?);
    }
    Some(Checksum {
        algorithm: algorithm.name().to_owned(),
        value: algorithm.sum(&joined),
        parts: Some(part_sums.len() as u32),
    })
}

/// The full-object CRC of parts summed with `algorithm` (base64 sums with the parts' sizes, in
/// part order); none if the algorithm is not a CRC, there are no parts or a sum does not decode.
pub fn full_object(algorithm: Algorithm, parts: &[(&str, u64)]) -> Option<Checksum> {
    let crc = Crc::of(algorithm)?;
    let mut whole = None;
    for (sum, size) in parts {
        let part = crc.read_raw(&algorithm.raw(sum)?)?;
        whole = Some(whole.map_or(part, |w| crc.combine(w, part, *size)));
    }
    Some(Checksum {
        algorithm: algorithm.name().to_owned(),
        value: base64::engine::general_purpose::STANDARD.encode(crc.to_raw(whole?)),
        parts: None,
    })
}

/// A sum a completion request gives, of one part or of the whole object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub algorithm: Algorithm,
    pub value: String,
}

/// What a CompleteMultipartUpload request says about checksums.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The algorithm the upload was created with (its parts are summed with it).
    pub algorithm: Option<Algorithm>,
    /// How the object's sum is made of the parts'.
    pub kind: Kind,
    /// The sum listed with each part, in the order the parts are listed.
    pub parts: Vec<Option<Sent>>,
    /// The whole object's sum (`x-amz-checksum-<algorithm>`): a composite, with or without its
    /// `-<parts>` suffix, or a full-object sum.
    pub whole: Option<Sent>,
}

impl Completion {
    /// The object's checksum made from `chosen` (the listed parts, in order): `InvalidPart` if
    /// a part's listed sum is not the one it was stored with, `BadDigest` if the whole-object
    /// sum differs from the one made. Uploads created without an algorithm get none.
    pub fn object_sum(&self, chosen: &[&UploadPart]) -> Result<Option<Checksum>, GatewayError> {
        for (part, sent) in chosen.iter().zip(&self.parts) {
            if let Some(sent) = sent {
                check_part(part, sent)?;
            }
        }
        let Some(algorithm) = self.algorithm.filter(|a| self.kind.takes(*a)) else {
            return Ok(None);
        };
        let mut sums = Vec::with_capacity(chosen.len());
        for part in chosen {
            let sum = part
                .checksum
                .as_ref()
                .filter(|c| Algorithm::of_name(&c.algorithm) == Some(algorithm))
                .ok_or_else(|| {
                    GatewayError::InvalidPart(format!(
                        "part {} has no {} checksum",
                        part.part_number,
                        algorithm.name()
                    ))
                })?;
            sums.push((sum.value.as_str(), part.size));
        }
        let made = match self.kind {
            Kind::Composite => {
                let values: Vec<&str> = sums.iter().map(|(v, _)| *v).collect();
                composite(algorithm, &values)
            }
            Kind::FullObject => full_object(algorithm, &sums),
        }
        .ok_or_else(|| GatewayError::Internal("a stored part checksum is not base64".to_owned()))?;
        if let Some(whole) = &self.whole {
            check_whole(&made, whole)?;
        }
        Ok(Some(made))
    }
}

/// The part must have been stored with the sum the completion lists for it.
fn check_part(part: &UploadPart, sent: &Sent) -> Result<(), GatewayError> {
    let stored = part.checksum.as_ref();
    let same = stored.is_some_and(|c| {
        Algorithm::of_name(&c.algorithm) == Some(sent.algorithm) && c.value == sent.value.trim()
    });
    if same {
        return Ok(());
    }
    Err(GatewayError::InvalidPart(format!(
        "part {}'s {} {} is not the one it was uploaded with",
        part.part_number,
        sent.algorithm.name(),
        sent.value
    )))
}

/// The whole-object sum sent must be the composite, its `-<parts>` suffix (if any) the count.
fn check_whole(made: &Checksum, sent: &Sent) -> Result<(), GatewayError> {
    let text = sent.value.trim();
    let (value, count) = match text.split_once('-') {
        Some((v, n)) => (v, n.parse::<u32>().ok()),
        None => (text, made.parts),
    };
    if value == made.value && count == made.parts {
        return Ok(());
    }
    Err(GatewayError::BadDigest {
        expected: text.to_owned(),
        got: made.text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(raw: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    fn part(number: u32, sum: Option<(&str, &str)>) -> UploadPart {
        UploadPart {
            part_number: number,
            prefix: format!("p{number}"),
            size: 1,
            md5: [0; 16],
            sha256: [0; 32],
            checksum: sum.map(|(a, v)| Checksum {
                algorithm: a.to_owned(),
                value: v.to_owned(),
                parts: None,
            }),
            created_at: 0,
        }
    }

    // CRC32 of "hello" and of "world".
    const HELLO: &str = "NhCmhg==";
    const WORLD: &str = "OncRQw==";

    #[test]
    fn a_composite_is_the_sum_of_the_joined_raw_part_sums_and_their_count() {
        let c = composite(Algorithm::Crc32, &[HELLO, WORLD]).unwrap();
        let mut joined = Algorithm::Crc32.raw(HELLO).unwrap();
        joined.extend(Algorithm::Crc32.raw(WORLD).unwrap());
        assert_eq!(c.value, Algorithm::Crc32.sum(&joined));
        assert_eq!(c.text(), format!("{}-2", c.value));
        assert_eq!(c.algorithm, "CRC32");
        // SHA-256 of two SHA-256 sums, computed independently.
        use sha2::{Digest, Sha256};
        let (a, b) = (Sha256::digest(b"a"), Sha256::digest(b"b"));
        let want = b64(&Sha256::digest([a.as_slice(), b.as_slice()].concat()));
        let got = composite(Algorithm::Sha256, &[&b64(&a), &b64(&b)]).unwrap();
        assert_eq!(got.value, want);
        assert!(composite(Algorithm::Sha256, &[HELLO]).is_none());
    }

    /// A CRC32 sum as a client sends it.
    fn crc32_sent(value: &str) -> Sent {
        Sent {
            algorithm: Algorithm::Crc32,
            value: value.to_owned(),
        }
    }

    #[test]
    fn the_crc32_of_hello_and_world_are_what_the_tests_say() {
        assert_eq!(Algorithm::Crc32.sum(b"hello"), HELLO);
        assert_eq!(Algorithm::Crc32.sum(b"world"), WORLD);
    }

    #[test]
    fn a_completion_checks_listed_part_sums_and_the_whole_object_sum() {
        let parts = [
            part(1, Some(("CRC32", HELLO))),
            part(2, Some(("CRC32", WORLD))),
        ];
        let chosen: Vec<&UploadPart> = parts.iter().collect();
        let made = composite(Algorithm::Crc32, &[HELLO, WORLD]).unwrap();
        let mut c = Completion {
            algorithm: Some(Algorithm::Crc32),
            parts: vec![Some(crc32_sent(HELLO)), None],
            ..Completion::default()
        };
        assert_eq!(c.object_sum(&chosen).unwrap(), Some(made.clone()));
        c.whole = Some(crc32_sent(&made.text()));
        assert!(c.object_sum(&chosen).is_ok());
        c.whole = Some(crc32_sent(&made.value));
        assert!(c.object_sum(&chosen).is_ok(), "the suffix is optional");
        c.whole = Some(crc32_sent(&format!("{}-3", made.value)));
        assert!(matches!(
            c.object_sum(&chosen),
            Err(GatewayError::BadDigest { .. })
        ));
        c.whole = Some(crc32_sent(HELLO));
        assert!(matches!(
            c.object_sum(&chosen),
            Err(GatewayError::BadDigest { .. })
        ));
        c.whole = None;
        c.parts = vec![Some(crc32_sent(WORLD)), None];
        assert!(matches!(
            c.object_sum(&chosen),
            Err(GatewayError::InvalidPart(_))
        ));
        // A part stored without a sum cannot match one listed, nor make a composite.
        let bare = [part(1, None)];
        let bare: Vec<&UploadPart> = bare.iter().collect();
        c.parts = vec![Some(crc32_sent(HELLO))];
        assert!(c.object_sum(&bare).is_err());
        c.parts = vec![None];
        assert!(matches!(
            c.object_sum(&bare),
            Err(GatewayError::InvalidPart(_))
        ));
        // Without an algorithm the object gets no sum; listed part sums are still checked.
        c.algorithm = None;
        assert_eq!(c.object_sum(&chosen).unwrap(), None);
        c.parts = vec![Some(crc32_sent(WORLD)), None];
        assert!(c.object_sum(&chosen).is_err());
    }

    #[test]
    fn a_full_object_sum_is_the_crc_of_every_byte_and_is_checked_without_a_suffix() {
        let (hello, world) = (
            part(1, Some(("CRC32", HELLO))),
            part(2, Some(("CRC32", WORLD))),
        );
        let (hello, world) = (
            UploadPart { size: 5, ..hello },
            UploadPart { size: 5, ..world },
        );
        let chosen = [&hello, &world];
        let want = Algorithm::Crc32.sum(b"helloworld");
        let mut c = Completion {
            algorithm: Some(Algorithm::Crc32),
            kind: Kind::FullObject,
            parts: vec![None, None],
            whole: Some(crc32_sent(&want)),
        };
        let made = c.object_sum(&chosen).unwrap().unwrap();
        assert_eq!((made.value.as_str(), made.parts), (want.as_str(), None));
        assert_eq!(made.text(), want);
        c.whole = Some(crc32_sent(&format!("{want}-2")));
        assert!(matches!(
            c.object_sum(&chosen),
            Err(GatewayError::BadDigest { .. })
        ));
        c.whole = Some(crc32_sent(HELLO));
        assert!(matches!(
            c.object_sum(&chosen),
            Err(GatewayError::BadDigest { .. })
        ));
        assert!(full_object(Algorithm::Sha256, &[(HELLO, 5)]).is_none());
        assert!(full_object(Algorithm::Crc32, &[]).is_none());
    }

    #[test]
    fn kinds_take_the_algorithms_s3_allows() {
        assert_eq!(Kind::default_for(Algorithm::Crc32), Kind::Composite);
        assert_eq!(Kind::default_for(Algorithm::Sha256), Kind::Composite);
        assert_eq!(Kind::default_for(Algorithm::Crc64Nvme), Kind::FullObject);
        assert!(!Kind::FullObject.takes(Algorithm::Sha1));
        assert!(Kind::FullObject.takes(Algorithm::Crc32c));
        assert!(!Kind::Composite.takes(Algorithm::Crc64Nvme));
        assert_eq!(Kind::of_name("full_object"), Some(Kind::FullObject));
        assert_eq!(Kind::of_name("other"), None);
    }
}
