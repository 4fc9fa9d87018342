//! Read capabilities (RT-0004 §4): `rtcap1:` and the base64url (no padding) of a bencoded dict
//! naming the gateway (`g`), bucket (`b`), key (`k`), the manifest's SHA-256 (`m`), the data key
//! (`d`) and a check value (`c`: the first 4 bytes of SHA-256 over the dict without `c`).
//!
//! Pure: strings and bytes in, typed values out. Keys a later version may add are kept under the
//! check and otherwise ignored; a string that is not canonical bencode is refused, so every
//! capability has exactly one spelling.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use raidtorrent_codec::bencode::{self, Value};
use ring::digest::{digest, SHA256};

/// What every capability string starts with.
pub const PREFIX: &str = "rtcap1:";

/// Why a string is not a usable capability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// No `rtcap1:` prefix: something else was pasted.
    #[error("not a raidtorrent capability (it must start with {PREFIX})")]
    Prefix,
    /// The prefix is there but the rest does not decode, or its check value does not match.
    #[error("capability is damaged or truncated: {0}")]
    Damaged(&'static str),
}

/// Everything a reader needs to find, check and decrypt one object.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability {
    /// The gateway's object API URL, e.g. `http://127.0.0.1:8080`.
    pub gateway: String,
    pub bucket: String,
    pub key: String,
    /// SHA-256 of the object's manifest bytes.
    pub manifest_sha256: [u8; 32],
    /// The object's data key.
    pub data_key: [u8; 32],
}

impl std::fmt::Debug for Capability {
    /// Leaves the data key out, so a capability in a log line gives nothing away.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capability")
            .field("gateway", &self.gateway)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("manifest_sha256", &hex::encode(self.manifest_sha256))
            .finish_non_exhaustive()
    }
}

impl Capability {
    /// The capability string.
    pub fn encode(&self) -> String {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b"b", self.bucket.as_bytes()),
            (b"d", &self.data_key),
            (b"g", self.gateway.as_bytes()),
            (b"k", self.key.as_bytes()),
            (b"m", &self.manifest_sha256),
        ];
        let check = check_value(&bencode_dict(&fields));
        fields.insert(1, (b"c", &check));
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bencode_dict(&fields)))
    }

    /// Reads a capability string; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, CapError> {
        let body = s.trim().strip_prefix(PREFIX).ok_or(CapError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CapError::Damaged("not base64url"))?;
        let root = bencode::decode(&bytes).map_err(|_| CapError::Damaged("not bencode"))?;
        let Value::Dict(dict) = root else {
            return Err(CapError::Damaged("not a dictionary"));
        };
        if encode_value(&Value::Dict(dict.clone())) != bytes {
            return Err(CapError::Damaged("not canonical bencode"));
        }
        let c = field(&dict.entries, b"c")?;
        let rest = dict.entries.iter().filter(|(k, _)| *k != b"c").cloned();
        let rest = Value::Dict(bencode::Dict {
            entries: rest.collect(),
            raw: &[],
        });
        if c != check_value(&encode_value(&rest)) {
            return Err(CapError::Damaged("check value does not match"));
        }
        Self::from_fields(&dict.entries)
    }

    fn from_fields(entries: &[(&[u8], Value<'_>)]) -> Result<Self, CapError> {
        let text = |name: &[u8]| {
            String::from_utf8(field(entries, name)?.to_vec())
                .map_err(|_| CapError::Damaged("a text field is not UTF-8"))
        };
        let bytes32 = |name: &[u8]| {
            <[u8; 32]>::try_from(field(entries, name)?)
                .map_err(|_| CapError::Damaged("a hash or key is not 32 bytes"))
        };
        Ok(Capability {
            gateway: text(b"g")?,
            bucket: text(b"b")?,
            key: text(b"k")?,
            manifest_sha256: bytes32(b"m")?,
            data_key: bytes32(b"d")?,
        })
    }
}

/// The byte string under `name`.
fn field<'a>(entries: &[(&[u8], Value<'a>)], name: &[u8]) -> Result<&'a [u8], CapError> {
    match entries.iter().find(|(k, _)| *k == name) {
        Some((_, Value::Bytes(b))) => Ok(b),
        Some(_) => Err(CapError::Damaged("a field is not a byte string")),
        None => Err(CapError::Damaged("a field is missing")),
    }
}

/// The first 4 bytes of SHA-256 of `dict`.
fn check_value(dict: &[u8]) -> [u8; 4] {
    let d = digest(&SHA256, dict);
    d.as_ref()[..4].try_into().expect("SHA-256 is 32 bytes")
}

/// A bencoded dict of byte strings; `fields` are already in key order.
fn bencode_dict(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![b'd'];
    for (k, v) in fields {
        put_bytes(&mut out, k);
        put_bytes(&mut out, v);
    }
    out.push(b'e');
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("{}:", b.len()).as_bytes());
    out.extend_from_slice(b);
}

/// The canonical bencoding of a decoded value (entries are kept in the order they came in).
fn encode_value(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, v);
    out
}

fn encode_into(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Value::Bytes(b) => put_bytes(out, b),
        Value::List(items) => {
            out.push(b'l');
            items.iter().for_each(|i| encode_into(out, i));
            out.push(b'e');
        }
        Value::Dict(d) => {
            out.push(b'd');
            for (k, v) in &d.entries {
                put_bytes(out, k);
                encode_into(out, v);
            }
            out.push(b'e');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Capability {
        Capability {
            gateway: "http://127.0.0.1:8080".into(),
            bucket: "photos".into(),
            key: "2026/cat.jpg".into(),
            manifest_sha256: [7; 32],
            data_key: [9; 32],
        }
    }

    #[test]
    fn round_trip() {
        let cap = sample();
        let s = cap.encode();
        assert!(s.starts_with(PREFIX));
        assert_eq!(Capability::parse(&s).unwrap(), cap);
        assert_eq!(Capability::parse(&format!(" {s}\n")).unwrap(), cap);
    }

    #[test]
    fn wrong_prefix_is_refused() {
        let s = sample().encode();
        let body = s.strip_prefix(PREFIX).unwrap();
        for bad in [
            body.to_owned(),
            format!("rtcap2:{body}"),
            format!("RTCAP1:{body}"),
        ] {
            assert_eq!(Capability::parse(&bad), Err(CapError::Prefix), "{bad}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let s = sample().encode();
        for len in 0..s.len() {
            assert!(Capability::parse(&s[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn unknown_fields_are_kept_under_the_check() {
        let cap = sample();
        let fields: Vec<(&[u8], &[u8])> = vec![
            (b"b", cap.bucket.as_bytes()),
            (b"d", &cap.data_key),
            (b"g", cap.gateway.as_bytes()),
            (b"k", cap.key.as_bytes()),
            (b"m", &cap.manifest_sha256),
            (b"x", b"later"),
        ];
        let check = check_value(&bencode_dict(&fields));
        let mut with_c = fields.clone();
        with_c.insert(1, (b"c", &check));
        let s = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bencode_dict(&with_c)));
        assert_eq!(Capability::parse(&s).unwrap(), cap);
        // The same string with the unknown field changed no longer matches its check.
        let altered = s.replace(
            &URL_SAFE_NO_PAD.encode(b"later")[..4],
            &URL_SAFE_NO_PAD.encode(b"LATER")[..4],
        );
        assert_ne!(altered, s);
        assert!(Capability::parse(&altered).is_err());
    }

    #[test]
    fn debug_hides_the_data_key() {
        let text = format!("{:?}", sample());
        assert!(!text.contains(&hex::encode([9u8; 32])));
    }

    fn capability() -> impl Strategy<Value = Capability> {
        (
            "https?://[a-z0-9.]{1,20}(:[0-9]{1,5})?",
            "[a-z0-9.-]{3,63}",
            "\\PC{1,40}",
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(gateway, bucket, key, m, d)| Capability {
                gateway,
                bucket,
                key,
                manifest_sha256: m,
                data_key: d,
            })
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(cap in capability()) {
            prop_assert_eq!(Capability::parse(&cap.encode()).unwrap(), cap);
        }

        #[test]
        fn every_truncation_and_byte_change_is_refused(
            cap in capability(),
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
        ) {
            let s = cap.encode();
            for len in 0..s.len() {
                prop_assert!(Capability::parse(&s[..len]).is_err());
            }
            let mut bytes = s.into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != to);
            bytes[i] = to;
            // A byte that is not UTF-8 cannot even be typed in; the rest must be refused.
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(Capability::parse(&changed).is_err(), "{}", changed);
            }
        }
    }

    #[test]
    fn every_single_byte_change_of_one_capability_is_refused() {
        let s = sample().encode();
        for i in 0..s.len() {
            for to in 0u8..128 {
                let mut bytes = s.clone().into_bytes();
                if bytes[i] == to {
                    continue;
                }
                bytes[i] = to;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(Capability::parse(&changed).is_err(), "{changed}");
            }
        }
    }
}
