//! Unit tests of the pure parts; the protocol itself is tested over TCP in
//! `tests/integration/control.rs`.

use super::conn::{apply_report, placement_id, HeldChange};
use super::*;

fn ih(b: u8) -> InfoHash {
    InfoHash([b; 20])
}

fn report(full: bool, held: &[u8], gone: &[u8]) -> Report {
    Report {
        full,
        held: held.iter().copied().map(ih).collect(),
        gone: gone.iter().copied().map(ih).collect(),
        ..Report::default()
    }
}

fn sorted(mut v: Vec<InfoHash>) -> Vec<InfoHash> {
    v.sort();
    v
}

fn held(set: &HashSet<InfoHash>) -> Vec<InfoHash> {
    sorted(set.iter().copied().collect())
}

#[test]
fn reports_build_up_the_held_set() {
    let mut set = HashSet::new();
    let c = apply_report(&mut set, &report(true, &[1, 2, 2, 3], &[]));
    assert_eq!(held(&set), vec![ih(1), ih(2), ih(3)], "duplicates dropped");
    assert_eq!(
        (sorted(c.added), c.removed),
        (vec![ih(1), ih(2), ih(3)], vec![])
    );
    let c = apply_report(&mut set, &report(false, &[4, 1], &[2, 9]));
    assert_eq!(held(&set), vec![ih(1), ih(3), ih(4)]);
    assert_eq!(
        (c.added, c.removed),
        (vec![ih(4)], vec![ih(2)]),
        "only real changes"
    );
    // A shard gone and back in the same delta is held, and nothing changed.
    let c = apply_report(&mut set, &report(false, &[3], &[3]));
    assert_eq!(held(&set), vec![ih(1), ih(3), ih(4)]);
    assert_eq!(c, HeldChange::default());
    // A full report replaces everything.
    let c = apply_report(&mut set, &report(true, &[4, 5], &[]));
    assert_eq!(held(&set), vec![ih(4), ih(5)]);
    assert_eq!(
        (c.added, sorted(c.removed)),
        (vec![ih(5)], vec![ih(1), ih(3)])
    );
}

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
