//! The CRC of a whole object from the CRCs of its parts, without reading the parts again: what a
//! multipart upload with a `FULL_OBJECT` checksum needs at its completion. Pure: no I/O.
//!
//! The three CRCs S3 offers (CRC32, CRC32C, CRC64NVME) are reflected, start from all ones and
//! end xored with all ones. For such a CRC, `crc(a ‖ b) = crc(a) · x^(8·|b|) mod P  ⊕  crc(b)`
//! (the all-ones start and end cancel), where the product is taken in the reflected
//! representation: bit `width − 1` holds `x^0`, bit 0 holds `x^(width−1)`.

use super::checksum::Algorithm;

/// One reflected CRC: its width in bits and its polynomial, bit-reversed to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crc {
    width: u32,
    poly: u64,
}

impl Crc {
    pub const CRC32: Crc = Crc {
        width: 32,
        poly: 0x04C1_1DB7_u32.reverse_bits() as u64,
    };
    pub const CRC32C: Crc = Crc {
        width: 32,
        poly: 0x1EDC_6F41_u32.reverse_bits() as u64,
    };
    pub const CRC64NVME: Crc = Crc {
        width: 64,
        poly: 0xAD93_D235_94C9_3659_u64.reverse_bits(),
    };

    /// The CRC behind an S3 checksum algorithm; none for the SHA ones.
    pub fn of(algorithm: Algorithm) -> Option<Crc> {
        match algorithm {
            Algorithm::Crc32 => Some(Crc::CRC32),
            Algorithm::Crc32c => Some(Crc::CRC32C),
            Algorithm::Crc64Nvme => Some(Crc::CRC64NVME),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// Bytes in a raw sum (4 or 8).
    pub fn bytes(self) -> usize {
        self.width as usize / 8
    }

    /// The CRC of `a ‖ b` from `crc(a)`, `crc(b)` and the length of `b` in bytes.
    pub fn combine(self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        let shift = self.x_to_the(u128::from(len_b) * 8);
        self.multiply(shift, crc_a) ^ crc_b
    }

    /// A raw sum (big-endian, as S3 sends it before base64) as a number; none for one of
    /// another length.
    pub fn read_raw(self, raw: &[u8]) -> Option<u64> {
        (raw.len() == self.bytes()).then(|| raw.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
    }

    /// A sum as its raw bytes (big-endian).
    pub fn to_raw(self, crc: u64) -> Vec<u8> {
        crc.to_be_bytes()[8 - self.bytes()..].to_vec()
    }

    /// `x^0`: the top bit of the register.
    fn one(self) -> u64 {
        1 << (self.width - 1)
    }

    /// `a · b mod P`, both in the reflected representation.
    fn multiply(self, a: u64, mut b: u64) -> u64 {
        let mut product = 0;
        let mut bit = self.one();
        while bit != 0 {
            if a & bit != 0 {
                product ^= b;
            }
            // b · x: one step of the register.
            b = if b & 1 != 0 {
                (b >> 1) ^ self.poly
            } else {
                b >> 1
            };
            bit >>= 1;
        }
        product
    }

    /// `x^n mod P`, by squaring.
    fn x_to_the(self, mut n: u128) -> u64 {
        let mut result = self.one();
        let mut square = self.one() >> 1; // x^1
        while n != 0 {
            if n & 1 != 0 {
                result = self.multiply(result, square);
            }
            square = self.multiply(square, square);
            n >>= 1;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The CRC of `data` by the same hashers that check request bodies.
    fn crc(algorithm: Algorithm, data: &[u8]) -> u64 {
        let c = Crc::of(algorithm).unwrap();
        c.read_raw(&algorithm.raw(&algorithm.sum(data)).unwrap())
            .unwrap()
    }

    const CRCS: [Algorithm; 3] = [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme];

    #[test]
    fn the_hashers_give_the_catalogued_check_values() {
        assert_eq!(crc(Algorithm::Crc32, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc(Algorithm::Crc32c, b"123456789"), 0xE306_9283);
        assert_eq!(
            crc(Algorithm::Crc64Nvme, b"123456789"),
            0xAE8B_1486_0A79_9888
        );
    }

    #[test]
    fn an_empty_tail_changes_nothing_and_raw_sums_round_trip() {
        for algorithm in CRCS {
            let c = Crc::of(algorithm).unwrap();
            let a = crc(algorithm, b"hello");
            assert_eq!(c.combine(a, crc(algorithm, b""), 0), a);
            assert_eq!(c.read_raw(&c.to_raw(a)), Some(a));
            assert_eq!(c.read_raw(&[1, 2, 3]), None);
        }
        assert_eq!(Crc::of(Algorithm::Sha256), None);
    }

    proptest! {
        #[test]
        fn combining_two_runs_gives_the_crc_of_both(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let whole = [a.as_slice(), b.as_slice()].concat();
            for algorithm in CRCS {
                let c = Crc::of(algorithm).unwrap();
                let joined = c.combine(crc(algorithm, &a), crc(algorithm, &b), b.len() as u64);
                prop_assert_eq!(joined, crc(algorithm, &whole));
            }
        }
    }
}
