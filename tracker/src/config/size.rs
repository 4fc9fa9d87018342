//! Byte sizes as operators write them in flags: `10GiB`, `500 MB`, `1048576`, and `none` for
//! a limit that is lifted. The units are those of the node's `--quota`
//! (`peer/src/size.rs`), so one size reads the same on both sides.

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "{0:?} is not a size: write a number with an optional unit (B, KB, KiB, MB, MiB, GB, \
         GiB, TB, TiB)"
    )]
    Syntax(String),
    #[error("{0:?} is larger than 16 EiB")]
    Overflow(String),
}

/// Units, lowercase: decimal (KB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB).
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("tib", 1 << 40),
];

/// A number of bytes with an optional unit, case-insensitive, space allowed before the unit.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let n: u64 = digits.parse().map_err(|_| SizeError::Syntax(text.into()))?;
    let (_, mult) = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .ok_or_else(|| SizeError::Syntax(text.into()))?;
    n.checked_mul(*mult)
        .ok_or_else(|| SizeError::Overflow(text.into()))
}

/// A size, or `none` (no limit).
pub fn parse_limit(text: &str) -> Result<Option<u64>, SizeError> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_size(text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_operators_write() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_size("2tib"), Ok(2 << 40));
        assert_eq!(parse_size("3KB"), Ok(3_000));
        assert_eq!(parse_size("3KiB"), Ok(3_072));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "GiB", "ten GiB", "10 PiB", "-1", "1.5GB", "10 G iB"] {
            assert!(
                matches!(parse_size(bad), Err(SizeError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn none_lifts_a_limit() {
        assert_eq!(parse_limit("none"), Ok(None));
        assert_eq!(parse_limit("NONE"), Ok(None));
        assert_eq!(parse_limit("5GB"), Ok(Some(5_000_000_000)));
        assert!(parse_limit("nothing").is_err());
    }

    proptest! {
        #[test]
        fn a_unit_multiplies_the_number(n in 0u64..(1 << 23), unit in 0usize..UNITS.len()) {
            let (name, mult) = UNITS[unit];
            prop_assert_eq!(parse_size(&format!("{n}{}", name.to_uppercase())), Ok(n * mult));
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }
    }
}
