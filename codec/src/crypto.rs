//! Encryption of objects before they are erasure coded, so every shard a node holds is ciphertext.
//!
//! Each object gets a fresh random 256-bit data key. Chunks are sealed with AES-256-GCM in the STREAM
//! construction: the nonce is `segment (u64 BE) || chunk (u32 BE)`, unique per key because a key
//! seals one object; the associated data says whether the chunk is the object's last. Reordering,
//! dropping, duplicating or truncating chunks therefore fails authentication, and so does any
//! changed byte: tampering is an error, never wrong bytes.
//!
//! The data key is either wrapped by a gateway master key (envelope encryption: the manifest holds the
//! wrapped key) or kept by the client (the manifest holds only a fingerprint, so a wrong key is
//! reported as such before any shard is read).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

const CHUNK_AAD_MIDDLE: &[u8] = b"raidtorrent chunk v1";
const CHUNK_AAD_LAST: &[u8] = b"raidtorrent chunk v1 last";
const WRAP_AAD: &[u8] = b"raidtorrent key wrap v1:";
const FINGERPRINT_DOMAIN: &[u8] = b"raidtorrent key fingerprint v1";
const CHECK_DOMAIN: &[u8] = b"raidtorrent key check v1";

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random number generator failed")]
    Random,
    #[error("authentication failed: wrong key, or the data was altered")]
    Unauthentic,
    #[error("a key must be 32 bytes, got {0}")]
    KeyLength(usize),
}

/// The per-object AES-256-GCM key.
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; 32],
    sealing: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataKey(fingerprint {})",
            hex::encode(self.fingerprint())
        )
    }
}

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CryptoError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
        DataKey {
            bytes,
            sealing: LessSafeKey::new(unbound),
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        Ok(Self::from_bytes(arr))
    }

    /// The raw key, for a client that keeps its own keys.
    pub fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A public, non-secret identifier of this key (16 bytes of a domain-separated SHA-256).
    pub fn fingerprint(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(FINGERPRINT_DOMAIN);
        h.update(self.bytes);
        h.finalize()[..16].try_into().expect("16 of 32 bytes")
    }

    /// Seals `buf` in place and returns the tag.
    pub(crate) fn seal_chunk(
        &self,
        segment: u64,
        chunk: u64,
        last: bool,
        buf: &mut [u8],
    ) -> [u8; 16] {
        let tag = self
            .sealing
            .seal_in_place_separate_tag(chunk_nonce(segment, chunk), chunk_aad(last), buf)
            .expect("chunk sizes are far below the AES-GCM limit");
        tag.as_ref().try_into().expect("GCM tags are 16 bytes")
    }

    /// Opens `buf` (ciphertext followed by its tag) in place; returns the plaintext length.
    pub(crate) fn open_chunk(
        &self,
        segment: u64,
        chunk: u64,
        last: bool,
        buf: &mut [u8],
    ) -> Result<usize, CryptoError> {
        self.sealing
            .open_in_place(chunk_nonce(segment, chunk), chunk_aad(last), buf)
            .map(|plain| plain.len())
            .map_err(|_| CryptoError::Unauthentic)
    }
}

fn chunk_nonce(segment: u64, chunk: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&segment.to_be_bytes());
    // Chunks per segment are bounded by Geometry::validate (a segment is at most 2^40 bytes / 64 KiB).
    n[8..].copy_from_slice(&(chunk as u32).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn chunk_aad(last: bool) -> Aad<&'static [u8]> {
    Aad::from(if last {
        CHUNK_AAD_LAST
    } else {
        CHUNK_AAD_MIDDLE
    })
}

/// A gateway's key-encryption key, named so that it can be rotated.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: LessSafeKey,
    check: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({:?})", self.id)
    }
}

/// A data key sealed under a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which master key sealed it.
    pub kek_id: String,
    pub nonce: [u8; 12],
    /// The sealed 32-byte key followed by its 16-byte tag.
    pub sealed: [u8; 48],
}

impl MasterKey {
    pub fn new(id: impl Into<String>, bytes: &[u8]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        let check = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
            CHECK_DOMAIN,
        );
        Ok(MasterKey {
            id: id.into(),
            key: LessSafeKey::new(unbound),
            check: check.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes"),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of a fixed text under the key: stored beside what the key sealed, it tells
    /// the right key from a wrong one before anything is unsealed, and reveals nothing of it.
    pub fn check_value(&self) -> [u8; 32] {
        self.check
    }

    pub fn wrap(&self, data: &DataKey) -> Result<WrappedKey, CryptoError> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut sealed = [0u8; 48];
        sealed[..32].copy_from_slice(&data.bytes);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(&self.id)),
                &mut sealed[..32],
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        sealed[32..].copy_from_slice(tag.as_ref());
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            nonce,
            sealed,
        })
    }

    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        if wrapped.kek_id != self.id {
            return Err(CryptoError::Unauthentic);
        }
        let mut buf = wrapped.sealed;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(wrapped.nonce),
                Aad::from(wrap_aad(&self.id)),
                &mut buf,
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        DataKey::from_slice(plain)
    }
}

fn wrap_aad(id: &str) -> Vec<u8> {
    [WRAP_AAD, id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trip_and_every_binding_is_checked() {
        let key = DataKey::generate().unwrap();
        let plain = b"the quick brown fox".to_vec();
        let mut buf = plain.clone();
        let tag = key.seal_chunk(7, 3, false, &mut buf);
        assert_ne!(buf, plain);
        let sealed = [buf.clone(), tag.to_vec()].concat();

        let mut ok = sealed.clone();
        assert_eq!(key.open_chunk(7, 3, false, &mut ok), Ok(plain.len()));
        assert_eq!(&ok[..plain.len()], plain);

        for (seg, chunk, last) in [(7, 4, false), (8, 3, false), (7, 3, true)] {
            let mut b = sealed.clone();
            assert_eq!(
                key.open_chunk(seg, chunk, last, &mut b),
                Err(CryptoError::Unauthentic)
            );
        }
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(key.open_chunk(7, 3, false, &mut flipped).is_err());
        let other = DataKey::generate().unwrap();
        assert!(other.open_chunk(7, 3, false, &mut sealed.clone()).is_err());
    }

    #[test]
    fn envelope_round_trip_and_wrong_master_key() {
        let master = MasterKey::new("gw-2026", &[9u8; 32]).unwrap();
        let data = DataKey::generate().unwrap();
        let wrapped = master.wrap(&data).unwrap();
        assert_eq!(master.unwrap(&wrapped).unwrap().expose(), data.expose());

        let other = MasterKey::new("gw-2026", &[8u8; 32]).unwrap();
        assert_eq!(
            other.unwrap(&wrapped).unwrap_err(),
            CryptoError::Unauthentic
        );
        assert_ne!(other.check_value(), master.check_value());
        let again = MasterKey::new("gw-2026", &[9u8; 32]).unwrap();
        assert_eq!(again.check_value(), master.check_value());
        let mut renamed = wrapped.clone();
        renamed.kek_id = "other".into();
        assert!(master.unwrap(&renamed).is_err());
        assert_eq!(
            MasterKey::new("x", &[0; 31]).unwrap_err(),
            CryptoError::KeyLength(31)
        );
    }

    #[test]
    fn fingerprint_names_the_key_without_revealing_it() {
        let a = DataKey::from_bytes([1; 32]);
        assert_eq!(a.fingerprint(), DataKey::from_bytes([1; 32]).fingerprint());
        assert_ne!(a.fingerprint(), DataKey::from_bytes([2; 32]).fingerprint());
        assert!(!format!("{a:?}").contains("0101"));
    }
}
