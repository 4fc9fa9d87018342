//! Lifetime distributions, sampled by inverse CDF.

use rand::Rng;
use serde::{Deserialize, Serialize};

pub const DAY: f64 = 86_400.0;
pub const HOUR: f64 = 3_600.0;
pub const YEAR: f64 = 365.0 * DAY;

/// How long a node stays before leaving for good.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Lifetime {
    Exponential {
        mean_days: f64,
    },
    /// `shape < 1`: many leave early, the rest stay long (volunteers); `shape = 1` is exponential.
    Weibull {
        mean_days: f64,
        shape: f64,
    },
}

impl Lifetime {
    pub fn validate(&self) -> Result<(), String> {
        let ok = match *self {
            Lifetime::Exponential { mean_days } => mean_days > 0.0,
            Lifetime::Weibull { mean_days, shape } => mean_days > 0.0 && shape > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err("fleet.lifetime: mean_days and shape must be positive".into())
        }
    }

    pub fn mean_secs(&self) -> f64 {
        match *self {
            Lifetime::Exponential { mean_days } | Lifetime::Weibull { mean_days, .. } => {
                mean_days * DAY
            }
        }
    }

    /// One lifetime, seconds.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        match *self {
            Lifetime::Exponential { mean_days } => exponential(rng, mean_days * DAY),
            Lifetime::Weibull { mean_days, shape } => {
                let scale = mean_days * DAY / gamma(1.0 + 1.0 / shape);
                scale * (-(1.0 - rng.random::<f64>()).ln()).powf(1.0 / shape)
            }
        }
    }
}

/// An exponential draw of the given mean.
pub fn exponential<R: Rng>(rng: &mut R, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// The gamma function (Lanczos approximation, g = 7), for the Weibull mean.
pub fn gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gamma_matches_factorials() {
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn sample_means_match() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for l in [
            Lifetime::Exponential { mean_days: 90.0 },
            Lifetime::Weibull {
                mean_days: 90.0,
                shape: 0.7,
            },
        ] {
            let n = 200_000;
            let mean = (0..n).map(|_| l.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((mean / l.mean_secs() - 1.0).abs() < 0.02, "{l:?}: {mean}");
        }
    }
}
