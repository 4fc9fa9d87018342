//! A small object sealed whole, for a gateway that keeps objects too small for the swarm in its own
//! database: encrypted as the codec encrypts every object, under a fresh data key wrapped by the
//! gateway's master key, so the database holds no plaintext.
//!
//! The object is sealed as the codec seals an object of one chunk: AES-256-GCM under its own data
//! key, nonce `segment 0 || chunk 0`, marked as the last chunk (see [`crate::crypto`]). Layout
//! (bencoded dict, keys sorted):
//!
//! | key | value |
//! |---|---|
//! | `v` | format version, `1` |
//! | `data` | the ciphertext followed by its 16-byte tag |
//! | `key` | the wrapped data key, as in the manifest: `{kind: wrapped, kek, nonce, sealed}` |

use bendy::encoding::Encoder;

use crate::bencode;
use crate::crypto::{CryptoError, DataKey, MasterKey};
use crate::manifest::{emit_key, parse_key, KeyRef, ManifestError};

pub const SEALED_VERSION: u64 = 1;

/// Why a sealed object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    #[error("sealed object: {0}")]
    Format(#[from] ManifestError),
    #[error(
        "sealed object version {0} is not supported (this build reads version {SEALED_VERSION})"
    )]
    UnsupportedVersion(u64),
    #[error("sealed object's key is not wrapped by a gateway master key")]
    NotWrapped,
    #[error("sealed object: {0}")]
    Crypto(#[from] CryptoError),
}

/// Seals `plain` under a fresh data key wrapped by `master`.
pub fn seal(master: &MasterKey, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key = DataKey::generate()?;
    let wrapped = master.wrap(&key)?;
    let mut data = plain.to_vec();
    let tag = key.seal_chunk(0, 0, true, &mut data);
    data.extend_from_slice(&tag);
    let mut e = Encoder::new();
    e.emit_dict(|mut d| {
        d.emit_pair_with(b"data", |e| e.emit_bytes(&data))?;
        d.emit_pair_with(b"key", |e| emit_key(e, &KeyRef::Wrapped(wrapped)))?;
        d.emit_pair(b"v", SEALED_VERSION)
    })
    .expect("keys are emitted in order");
    Ok(e.get_output().expect("one complete dict"))
}

/// Opens what [`seal`] made; any change to it, or another master key, is an error.
pub fn open(master: &MasterKey, sealed: &[u8]) -> Result<Vec<u8>, SealedError> {
    let root = bencode::decode(sealed).map_err(ManifestError::from)?;
    let d = root.dict("(root)").map_err(ManifestError::from)?;
    let version = d.req("v").and_then(|v| v.u64("v"));
    let version = version.map_err(ManifestError::from)?;
    if version != SEALED_VERSION {
        return Err(SealedError::UnsupportedVersion(version));
    }
    let key = d.req("key").and_then(|k| k.dict("key"));
    let KeyRef::Wrapped(wrapped) = parse_key(key.map_err(ManifestError::from)?)? else {
        return Err(SealedError::NotWrapped);
    };
    let data = d.req("data").and_then(|v| v.bytes("data"));
    let mut buf = data.map_err(ManifestError::from)?.to_vec();
    let key = master.unwrap(&wrapped)?;
    let len = key.open_chunk(0, 0, true, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn master() -> MasterKey {
        MasterKey::new("master-1", &[7u8; 32]).unwrap()
    }

    #[test]
    fn seals_and_opens_and_hides_the_plaintext() {
        let plain = b"a small object kept in the gateway's database".to_vec();
        let sealed = seal(&master(), &plain).unwrap();
        assert!(!sealed.windows(plain.len()).any(|w| w == plain));
        assert_eq!(open(&master(), &sealed).unwrap(), plain);
        // A fresh data key per object: the same bytes never seal the same way.
        assert_ne!(seal(&master(), &plain).unwrap(), sealed);
        assert_eq!(
            open(&master(), &seal(&master(), b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn a_wrong_key_or_a_changed_byte_is_an_error() {
        let sealed = seal(&master(), b"secret").unwrap();
        let other = MasterKey::new("master-1", &[8u8; 32]).unwrap();
        assert_eq!(
            open(&other, &sealed),
            Err(SealedError::Crypto(CryptoError::Unauthentic))
        );
        let mut changed = sealed.clone();
        let at = changed.windows(4).position(|w| w == b"data").unwrap() + 7;
        changed[at] ^= 1;
        assert!(open(&master(), &changed).is_err());
        assert_eq!(
            open(&master(), b"d1:vi2ee"),
            Err(SealedError::UnsupportedVersion(2))
        );
    }

    proptest! {
        #[test]
        fn round_trips(plain in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let sealed = seal(&master(), &plain).unwrap();
            prop_assert_eq!(open(&master(), &sealed).unwrap(), plain);
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = open(&master(), &bytes);
        }
    }
}
