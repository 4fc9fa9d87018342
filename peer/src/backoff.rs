//! Reconnect delays: exponential with full jitter (RT-0002 section 6), so a gateway that restarts is
//! not hit by all its nodes at the same instant.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay: `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, uniform in `[0, ceiling]` as chosen by `random`, and one more attempt.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling().as_millis() as u64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(random % (ceiling + 1))
    }

    /// A connection was healthy long enough: start again from the base delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A random 64-bit number for jitter.
pub fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator is available");
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling().as_secs();
                b.next_delay(0);
                c
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        // Very many attempts never overflow.
        for _ in 0..100 {
            b.next_delay(u64::MAX);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
    }

    proptest! {
        #[test]
        fn delays_stay_within_the_ceiling(randoms in proptest::collection::vec(any::<u64>(), 1..20)) {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
            for r in randoms {
                let ceiling = b.ceiling();
                prop_assert!(b.next_delay(r) <= ceiling);
            }
        }
    }
}
