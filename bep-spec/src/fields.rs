//! Reading typed fields out of a decoded dictionary, with errors that name the field.

use raidtorrent_codec::bencode::{Dict, FieldProblem, Value};
use raidtorrent_codec::InfoHash;

/// A required key that is absent, of the wrong type or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("missing key {0:?}")]
    Missing(&'static str),
    #[error("key {field:?} must be a {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("key {field:?} is {actual} bytes, not {expected}")]
    WrongLength {
        field: &'static str,
        expected: &'static str,
        actual: usize,
    },
    #[error("key {field:?} is out of range")]
    OutOfRange { field: &'static str },
    #[error("exactly one of {0:?} must be present")]
    OneOf(&'static str),
}

impl From<FieldProblem> for FieldError {
    fn from(p: FieldProblem) -> Self {
        match p {
            FieldProblem::Missing(f) => FieldError::Missing(f),
            FieldProblem::WrongType { field, expected } => {
                FieldError::WrongType { field, expected }
            }
        }
    }
}

pub(crate) fn u64_of(d: &Dict<'_>, key: &'static str) -> Result<u64, FieldError> {
    Ok(d.req(key)?.u64(key)?)
}

pub(crate) fn opt_u64(d: &Dict<'_>, key: &'static str) -> Result<Option<u64>, FieldError> {
    d.get(key)
        .map(|v| v.u64(key))
        .transpose()
        .map_err(Into::into)
}

pub(crate) fn string(d: &Dict<'_>, key: &'static str) -> Result<String, FieldError> {
    Ok(d.req(key)?.str(key)?.to_owned())
}

pub(crate) fn opt_string(d: &Dict<'_>, key: &'static str) -> Result<Option<String>, FieldError> {
    Ok(d.get(key)
        .map(|v| v.str(key))
        .transpose()?
        .map(str::to_owned))
}

pub(crate) fn fixed<const N: usize>(
    d: &Dict<'_>,
    key: &'static str,
) -> Result<[u8; N], FieldError> {
    let b = d.req(key)?.bytes(key)?;
    b.try_into().map_err(|_| FieldError::WrongLength {
        field: key,
        expected: match N {
            20 => "20",
            32 => "32",
            _ => "a fixed length",
        },
        actual: b.len(),
    })
}

pub(crate) fn info_hash(d: &Dict<'_>, key: &'static str) -> Result<InfoHash, FieldError> {
    fixed::<20>(d, key).map(InfoHash)
}

/// Concatenated 20-byte info-hashes; an absent key is an empty list.
pub(crate) fn info_hashes(d: &Dict<'_>, key: &'static str) -> Result<Vec<InfoHash>, FieldError> {
    let Some(v) = d.get(key) else {
        return Ok(Vec::new());
    };
    let b = v.bytes(key)?;
    if b.len() % 20 != 0 {
        return Err(FieldError::WrongLength {
            field: key,
            expected: "a multiple of 20",
            actual: b.len(),
        });
    }
    Ok(b.chunks_exact(20)
        .map(|c| InfoHash(c.try_into().expect("20 bytes")))
        .collect())
}

pub(crate) fn as_dict<'v, 'a>(v: &'v Value<'a>) -> Option<&'v Dict<'a>> {
    match v {
        Value::Dict(d) => Some(d),
        _ => None,
    }
}
