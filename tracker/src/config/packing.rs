//! The `[objects.packing]` section: how the gateway packs small objects together (see the packer
//! in `crate::gateway`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gateway::PackConfig;

/// Settings of the packer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackSection {
    /// Objects above their bucket's inline_max and up to this many bytes are packed; 0: none.
    pub max_object_size: u64,
    /// Bytes of waiting objects that make a pack at once.
    pub target_size: u64,
    /// Longest an object waits for its pack, in seconds.
    pub linger_secs: u64,
    /// Most bytes waiting at once.
    pub max_waiting_bytes: u64,
    /// A pack whose live bytes fall below this share of its size is compacted.
    pub compact_below: f64,
}

impl Default for PackSection {
    fn default() -> Self {
        PackSection::from(&PackConfig::default())
    }
}

impl From<&PackConfig> for PackSection {
    fn from(c: &PackConfig) -> Self {
        PackSection {
            max_object_size: c.max_object,
            target_size: c.target,
            linger_secs: c.linger.as_secs(),
            max_waiting_bytes: c.max_waiting,
            compact_below: c.compact_below,
        }
    }
}

impl PackSection {
    /// Checks every field; the message names it.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_object_size > 64 << 20 {
            return Err("objects.packing.max_object_size must be at most 67108864".into());
        }
        if self.max_object_size > 0 && self.target_size < self.max_object_size {
            return Err("objects.packing.target_size must be at least max_object_size".into());
        }
        if self.linger_secs == 0 {
            return Err("objects.packing.linger_secs must be at least 1".into());
        }
        if self.max_waiting_bytes < self.target_size {
            return Err("objects.packing.max_waiting_bytes must be at least target_size".into());
        }
        if !(0.0..1.0).contains(&self.compact_below) {
            return Err("objects.packing.compact_below must be at least 0 and below 1".into());
        }
        Ok(())
    }

    pub fn to_config(&self) -> PackConfig {
        PackConfig {
            max_object: self.max_object_size,
            target: self.target_size,
            linger: Duration::from_secs(self.linger_secs),
            max_waiting: self.max_waiting_bytes,
            compact_below: self.compact_below,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips() {
        let d = PackSection::default();
        d.validate().unwrap();
        let text = toml::to_string(&d).unwrap();
        assert_eq!(toml::from_str::<PackSection>(&text).unwrap(), d);
        assert_eq!(PackSection::from(&d.to_config()), d);
    }

    #[test]
    fn bad_values_name_their_field() {
        let check = |edit: fn(&mut PackSection), needle: &str| {
            let mut c = PackSection::default();
            edit(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        check(|c| c.linger_secs = 0, "linger_secs");
        check(|c| c.target_size = 1, "target_size");
        check(|c| c.max_waiting_bytes = 1, "max_waiting_bytes");
        check(|c| c.compact_below = 1.0, "compact_below");
        check(|c| c.max_object_size = 1 << 30, "max_object_size");
        assert!(toml::from_str::<PackSection>("linger = 3").is_err());
    }
}
