//! Unit tests of the pure parts; the protocol itself is tested over TCP in
//! `tests/integration/control.rs`.

use super::conn::placement_id;
use super::*;

#[test]
fn later_extended_handshakes_yield_only_the_placement_id() {
    assert_eq!(placement_id(b"d1:md12:rt_placementi9eee"), Some(9));
    assert_eq!(placement_id(b"d1:md12:rt_placementi0eee"), Some(0));
    assert_eq!(placement_id(b"d1:md12:rt_placementi300eee"), None);
    assert_eq!(placement_id(b"d1:md11:ut_metadatai2eee"), None);
    assert_eq!(placement_id(b"d1:pi6881ee"), None);
    assert_eq!(placement_id(b"garbage"), None);
    assert_eq!(placement_id(b""), None);
}

#[test]
fn config_defaults_validate_and_round_trip() {
    let c = ControlConfig::default();
    assert_eq!(c.validate(), Ok(()));
    let text = toml::to_string(&c).unwrap();
    assert_eq!(toml::from_str::<ControlConfig>(&text).unwrap(), c);
    assert_eq!(
        toml::from_str::<ControlConfig>("keepalive_interval_secs = 5").unwrap(),
        ControlConfig {
            keepalive_interval_secs: 5,
            ..c.clone()
        }
    );
    assert!(toml::from_str::<ControlConfig>("keepalive = 5").is_err());
    let bad = [
        ControlConfig {
            keepalive_interval_secs: 0,
            ..c.clone()
        },
        ControlConfig {
            handshake_timeout_ms: 0,
            ..c.clone()
        },
        ControlConfig {
            max_frame: raidtorrent_proto::MAX_FRAME + 1,
            ..c.clone()
        },
        ControlConfig {
            ext_id: 0,
            ..c.clone()
        },
        ControlConfig {
            queue_depth: 0,
            ..c.clone()
        },
    ];
    for b in bad {
        assert!(b.validate().is_err(), "{b:?}");
    }
}
