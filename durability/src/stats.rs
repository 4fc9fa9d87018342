//! Confidence intervals over runs.

/// Two-sided 95% Student t quantile for `df` degrees of freedom.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        d if d <= 30 => T[d - 1],
        _ => 1.96,
    }
}

/// Mean and half-width of its 95% t interval.
pub fn mean_ci(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t95(n - 1) * (var / n as f64).sqrt())
}

/// Chi-square quantile (Wilson–Hilferty), for `p` in (0, 1).
fn chi2(p: f64, dof: f64) -> f64 {
    if dof <= 0.0 {
        return 0.0;
    }
    let z = normal_quantile(p);
    let h = 2.0 / (9.0 * dof);
    (dof * (1.0 - h + z * h.sqrt()).powi(3)).max(0.0)
}

/// Standard normal quantile (Acklam's rational approximation).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.696_830_286_653_76,
        220.946_098_424_520_5,
        -275.928_510_446_968_7,
        138.357_751_867_269,
        -30.664_798_066_147_16,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -54.476_098_798_224_06,
        161.585_836_858_040_9,
        -155.698_979_859_886_6,
        66.801_311_887_719_72,
        -13.280_681_552_885_72,
    ];
    const C: [f64; 6] = [
        -0.007_784_894_002_430_293,
        -0.322_396_458_041_136_5,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        0.007_784_695_709_041_462,
        0.322_467_129_070_039_8,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Garwood 95% interval for a Poisson count (`[0, 3.69]` for zero events; the rule of three,
/// 3.0, is the one-sided 95% bound).
pub fn poisson_ci(count: u64) -> (f64, f64) {
    let x = count as f64;
    let lo = if count == 0 {
        0.0
    } else {
        chi2(0.025, 2.0 * x) / 2.0
    };
    (lo, chi2(0.975, 2.0 * x + 2.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_interval_is_close_to_tables() {
        let (lo, hi) = poisson_ci(10);
        assert!(
            (lo - 4.80).abs() < 0.1 && (hi - 18.39).abs() < 0.1,
            "{lo} {hi}"
        );
        let (lo, hi) = poisson_ci(0);
        assert!(lo == 0.0 && (hi - 3.69).abs() < 0.1, "{hi}");
    }

    #[test]
    fn t_interval_of_constant_is_zero() {
        assert_eq!(mean_ci(&[2.0, 2.0, 2.0]), (2.0, 0.0));
    }
}
