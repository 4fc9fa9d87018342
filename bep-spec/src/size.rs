//! Byte sizes as people write them in configs and flags: `10GiB`, `500 MB`, `1048576`, and `none`
//! for a limit that is lifted. One table of units for the node's `--quota` and the gateway's
//! per-key quotas, so a size reads the same on both sides.

use std::fmt;
use std::str::FromStr;

/// A number of bytes that reads and writes in human units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{0:?} is not a size: write a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")]
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

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, SizeError> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let n: u64 = digits.parse().map_err(|_| SizeError::Syntax(s.into()))?;
        let (_, mult) = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(|| SizeError::Syntax(s.into()))?;
        n.checked_mul(*mult)
            .map(ByteSize)
            .ok_or_else(|| SizeError::Overflow(s.into()))
    }
}

/// A number of bytes with an optional unit, case-insensitive, space allowed before the unit.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    text.parse::<ByteSize>().map(|s| s.0)
}

/// A size, or `none` (no limit).
pub fn parse_limit(text: &str) -> Result<Option<u64>, SizeError> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    parse_size(text).map(Some)
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly, so the text parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, mult) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= mult && self.0 % mult == 0 {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl ByteSize {
    /// An approximate reading for people (`1.5 GiB`), not for configs.
    pub fn human(&self) -> String {
        let mut v = self.0 as f64;
        for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
            if v < 1024.0 || unit == "TiB" {
                return if unit == "B" {
                    format!("{} B", self.0)
                } else {
                    format!("{v:.1} {unit}")
                };
            }
            v /= 1024.0;
        }
        unreachable!()
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_people_write() {
        assert_eq!("10GiB".parse(), Ok(ByteSize(10 << 30)));
        assert_eq!("500 MB".parse(), Ok(ByteSize(500_000_000)));
        assert_eq!("1048576".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("2tib".parse(), Ok(ByteSize(2 << 40)));
        assert!(matches!(
            "ten GiB".parse::<ByteSize>(),
            Err(SizeError::Syntax(_))
        ));
        assert!(matches!(
            "10 PiB".parse::<ByteSize>(),
            Err(SizeError::Syntax(_))
        ));
        assert!(matches!(
            "99999999999TiB".parse::<ByteSize>(),
            Err(SizeError::Overflow(_))
        ));
        assert_eq!(ByteSize(10 << 30).to_string(), "10GiB");
        assert_eq!(ByteSize(1536).human(), "1.5 KiB");
    }

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

        #[test]
        fn text_round_trips(n: u64) {
            prop_assert_eq!(ByteSize(n).to_string().parse(), Ok(ByteSize(n)));
        }
    }
}
