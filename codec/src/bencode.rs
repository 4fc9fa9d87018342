//! A small borrowed bencode tree over bendy's strict decoder.
//!
//! bendy already rejects unsorted or duplicate dictionary keys, leading zeros and `-0`; this module adds
//! what the codec's parsers need on top: a depth and size bound, rejection of trailing bytes, and the
//! raw bytes of every dictionary so an info-hash is taken over the bytes as they arrived (never over a
//! re-serialised dict).

use bendy::decoding::{Decoder, Object};

/// Deepest nesting accepted. Metainfo and manifests nest at most four levels; the margin keeps
/// stock torrents with extension dictionaries readable.
const MAX_DEPTH: usize = 32;

/// Why bytes are not well-formed bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("malformed bencode: {0}")]
    Malformed(String),
    #[error("bencode is empty")]
    Empty,
    #[error("{0} bytes follow the end of the bencoded value")]
    TrailingBytes(usize),
    #[error("integer {0:?} does not fit in 64 bits")]
    IntegerOverflow(String),
}

/// A decoded value that borrows from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A dictionary in key order, with the exact bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    pub entries: Vec<(&'a [u8], Value<'a>)>,
    pub raw: &'a [u8],
}

impl<'a> Dict<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries
            .binary_search_by(|(k, _)| (*k).cmp(key.as_bytes()))
            .ok()
            .map(|i| &self.entries[i].1)
    }
}

/// Decodes exactly one value; anything after it is an error.
pub fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    let mut decoder = Decoder::new(input).with_max_depth(MAX_DEPTH);
    let value = match decoder.next_object().map_err(malformed)? {
        Some(object) => convert(object)?,
        None => return Err(BencodeError::Empty),
    };
    let used = consumed_len(&value, input)?;
    if used != input.len() {
        return Err(BencodeError::TrailingBytes(input.len() - used));
    }
    Ok(value)
}

fn malformed(e: bendy::decoding::Error) -> BencodeError {
    BencodeError::Malformed(e.to_string())
}

fn convert<'a>(object: Object<'_, 'a>) -> Result<Value<'a>, BencodeError> {
    Ok(match object {
        Object::Integer(s) => Value::Int(
            s.parse::<i64>()
                .map_err(|_| BencodeError::IntegerOverflow(s.to_owned()))?,
        ),
        Object::Bytes(b) => Value::Bytes(b),
        Object::List(mut list) => {
            let mut items = Vec::new();
            while let Some(item) = list.next_object().map_err(malformed)? {
                items.push(convert(item)?);
            }
            Value::List(items)
        }
        Object::Dict(mut dict) => {
            let mut entries = Vec::new();
            while let Some((key, item)) = dict.next_pair().map_err(malformed)? {
                entries.push((key, convert(item)?));
            }
            let raw = dict.into_raw().map_err(malformed)?;
            Value::Dict(Dict { entries, raw })
        }
    })
}

/// How many input bytes the top-level value spans. Dicts know their raw span; for the other types the
/// length is recomputed from the value (bendy exposes no offset).
fn consumed_len(value: &Value<'_>, input: &[u8]) -> Result<usize, BencodeError> {
    Ok(match value {
        Value::Dict(d) => d.raw.len(),
        other => encoded_len(other),
    })
    .and_then(|n: usize| {
        if n > input.len() {
            Err(BencodeError::Malformed("value longer than input".into()))
        } else {
            Ok(n)
        }
    })
}

fn encoded_len(value: &Value<'_>) -> usize {
    match value {
        Value::Int(i) => i.to_string().len() + 2,
        Value::Bytes(b) => b.len().to_string().len() + 1 + b.len(),
        Value::List(items) => 2 + items.iter().map(encoded_len).sum::<usize>(),
        Value::Dict(d) => d.raw.len(),
    }
}

/// A field that is absent or of the wrong type; each parser turns it into its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    Missing(&'static str),
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

impl<'a> Value<'a> {
    pub fn int(&self, field: &'static str) -> Result<i64, FieldProblem> {
        match self {
            Value::Int(i) => Ok(*i),
            _ => Err(wrong(field, "integer")),
        }
    }

    pub fn u64(&self, field: &'static str) -> Result<u64, FieldProblem> {
        u64::try_from(self.int(field)?).map_err(|_| wrong(field, "non-negative integer"))
    }

    pub fn bytes(&self, field: &'static str) -> Result<&'a [u8], FieldProblem> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(wrong(field, "byte string")),
        }
    }

    pub fn str(&self, field: &'static str) -> Result<&'a str, FieldProblem> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| wrong(field, "UTF-8 string"))
    }

    pub fn list(&self, field: &'static str) -> Result<&[Value<'a>], FieldProblem> {
        match self {
            Value::List(l) => Ok(l),
            _ => Err(wrong(field, "list")),
        }
    }

    pub fn dict(&self, field: &'static str) -> Result<&Dict<'a>, FieldProblem> {
        match self {
            Value::Dict(d) => Ok(d),
            _ => Err(wrong(field, "dictionary")),
        }
    }
}

impl<'a> Dict<'a> {
    /// A field that must be present.
    pub fn req(&self, field: &'static str) -> Result<&Value<'a>, FieldProblem> {
        self.get(field).ok_or(FieldProblem::Missing(field))
    }
}

fn wrong(field: &'static str, expected: &'static str) -> FieldProblem {
    FieldProblem::WrongType { field, expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_values_and_keeps_raw_dict_bytes() {
        let input = b"d1:ad1:bi-3ee1:cl2:xyi0eee";
        let Value::Dict(d) = decode(input).unwrap() else {
            panic!("not a dict")
        };
        assert_eq!(d.raw, input);
        let Value::Dict(inner) = d.get("a").unwrap() else {
            panic!()
        };
        assert_eq!(inner.raw, b"d1:bi-3ee");
        assert_eq!(inner.get("b"), Some(&Value::Int(-3)));
        assert_eq!(
            d.get("c"),
            Some(&Value::List(vec![Value::Bytes(b"xy"), Value::Int(0)]))
        );
    }

    #[test]
    fn rejects_what_bep3_forbids() {
        for bad in [
            &b"d1:bi1e1:ai2ee"[..], // unsorted keys
            b"d1:ai1e1:ai2ee",      // duplicate key
            b"i01e",                // leading zero
            b"i-0e",                // negative zero
            b"5:abc",               // short string
            b"l",                   // unterminated
            b"x",                   // not bencode
            b"di1ei2ee",            // non-string key
        ] {
            assert!(
                decode(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode(b""), Err(BencodeError::Empty));
        assert_eq!(decode(b"i1ei2e"), Err(BencodeError::TrailingBytes(3)));
        assert_eq!(decode(b"de4:abcd"), Err(BencodeError::TrailingBytes(6)));
        assert!(matches!(
            decode(b"i99999999999999999999e"),
            Err(BencodeError::IntegerOverflow(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut deep = vec![b'l'; 100_000];
        deep.extend(vec![b'e'; 100_000]);
        assert!(decode(&deep).is_err());
    }
}
