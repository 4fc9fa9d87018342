//! Seeded pseudo-random numbers for tests: the same seed gives the same data and the same choices,
//! so a failure replays. Not for secrets.

/// A xorshift64 generator (shifts 13, 7, 17) started from a spread-out seed.
///
/// The stream is part of what tests rely on: simulations tune their thresholds to it and data
/// written by one run is compared with data made again from the same seed, so the algorithm and
/// the seeding must not change.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`. The seed is multiplied by the 64-bit golden ratio, so nearby seeds
    /// start far apart, and made odd, so the state is never zero.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is negligible for the small `n` of tests.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A float in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// `len` bytes that do not compress and do not repeat: each step's 64 bits, little-endian.
    /// `bytes(n)` is a prefix of `bytes(n + k)` from the same state.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// `len` reproducible bytes for `seed`: `Rng::new(seed).bytes(len)`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_pinned() {
        // Seed 1 starts at the golden ratio itself; benches and simulations depend on this stream.
        let mut r = Rng::new(1);
        assert_eq!(r.0, 0x9E37_79B9_7F4A_7C15);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(r.next_u64(), x);
        }
        assert_eq!(
            random_bytes(8, 1),
            Rng::new(1).next_u64().to_le_bytes().to_vec()
        );
    }

    #[test]
    fn same_seed_same_bytes_and_prefixes_agree() {
        assert_eq!(random_bytes(1000, 5), random_bytes(1000, 5));
        assert_ne!(random_bytes(1000, 5), random_bytes(1000, 6));
        assert_eq!(random_bytes(13, 9)[..5], random_bytes(5, 9)[..]);
        assert!(random_bytes(0, 9).is_empty());
        // Seed 0 is not a stuck generator.
        assert!(random_bytes(64, 0).iter().any(|&b| b != 0));
    }

    #[test]
    fn numbers_are_roughly_uniform() {
        let mut r = Rng::new(42);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        let mean = (0..100_000).map(|_| r.unit()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((0..1000).all(|_| (2.0..3.0).contains(&r.range(2.0, 3.0))));
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
    }
}
