use super::*;

const DAY: i64 = 86_400;
const NOW: i64 = 100 * DAY;

/// A node first seen `age` seconds ago, online `uptime` of every hour since, with `passes`
/// passed audits spread over its life.
fn node(age: i64, uptime: f64, passes: usize) -> NodeFacts {
    let first = NOW - age;
    let mut online_days = Vec::new();
    let mut d = first.div_euclid(DAY);
    while d <= NOW.div_euclid(DAY) {
        let from = (d * DAY).max(first);
        let to = ((d + 1) * DAY).min(NOW);
        online_days.push((d, ((to - from) as f64 * uptime) as i64));
        d += 1;
    }
    let mut hours_online = [0; 24];
    for (h, slot) in hours_online.iter_mut().enumerate() {
        *slot = (hour_exposure(first, NOW, h) as f64 * uptime) as i64;
    }
    let audits = (0..passes)
        .map(|i| AuditEvent {
            at: first + (i as i64 + 1) * age / (passes as i64 + 1),
            outcome: AuditOutcome::Pass,
        })
        .collect();
    NodeFacts {
        first_seen: Some(first),
        online_days,
        hours_online,
        audits,
        audits_passed_total: passes as u64,
        ..NodeFacts::default()
    }
}

fn push_audits(f: &mut NodeFacts, outcome: AuditOutcome, n: usize, at: i64) {
    for _ in 0..n {
        f.audits.push(AuditEvent { at, outcome });
        if outcome == AuditOutcome::Pass {
            f.audits_passed_total += 1;
        }
    }
}

#[test]
fn settled_good_node_is_high_with_no_reasons() {
    let cfg = ScoringConfig::default();
    let s = score(&node(30 * DAY, 0.99, 40), NOW, &cfg);
    assert_eq!(s.tier, NodeTier::High, "{s:?}");
    assert!(s.vetted);
    assert!(s.reasons.is_empty(), "{:?}", s.reasons);
    assert!((s.uptime - 0.99).abs() < 0.01);
    assert_eq!(s.audit_reputation, 1.0);
    assert_eq!(s.transfer_success, 1.0);
    assert_eq!(s.speed_bps, None);
    assert!(s.value > 0.98 && s.value <= 1.0);
    assert_eq!(s.audit_weight(), 1.0);
}

#[test]
fn new_node_is_low_until_vetted_by_time_and_audits() {
    let cfg = ScoringConfig::default();
    let s = score(&node(2 * 3600, 1.0, 3), NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Low);
    assert!(!s.vetted);
    assert!(
        s.reasons
            .contains(&"new node: 3 of 10 audits passed, 2 h of 3 days vetting".to_owned()),
        "{:?}",
        s.reasons
    );
    assert!(s.audit_weight() >= 4.0);
    // Old enough but one audit short; then exactly enough.
    let s = score(&node(cfg.vetting_secs, 1.0, 9), NOW, &cfg);
    assert!(!s.vetted);
    assert_eq!(s.tier, NodeTier::Low);
    let s = score(&node(cfg.vetting_secs, 1.0, 10), NOW, &cfg);
    assert!(s.vetted);
    assert_eq!(s.tier, NodeTier::High);
    // Enough audits, one second too young.
    let s = score(&node(cfg.vetting_secs - 1, 1.0, 10), NOW, &cfg);
    assert!(!s.vetted);
}

#[test]
fn never_seen_node_says_so() {
    let cfg = ScoringConfig::default();
    let s = score(&NodeFacts::default(), NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Low);
    assert_eq!(s.uptime, 0.0);
    assert_eq!(s.reasons[0], "never seen online");
}

#[test]
fn high_threshold_edge() {
    let facts = node(30 * DAY, 1.0, 40);
    let s = score(&facts, NOW, &ScoringConfig::default());
    let at_edge = ScoringConfig {
        high_at_least: s.value,
        ..ScoringConfig::default()
    };
    assert_eq!(score(&facts, NOW, &at_edge).tier, NodeTier::High);
    let above = ScoringConfig {
        high_at_least: s.value + 1e-9,
        ..ScoringConfig::default()
    };
    let low = score(&facts, NOW, &above);
    assert_eq!(low.tier, NodeTier::Low);
    assert_eq!(
        low.reasons,
        [format!(
            "score {:.2} is below {:.2} for tier high",
            low.value, above.high_at_least
        )]
    );
}

#[test]
fn uptime_suspends_after_vetting_period_only() {
    let cfg = ScoringConfig::default();
    let s = score(&node(30 * DAY, 0.55, 40), NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Suspended);
    assert_eq!(
        s.reasons[0],
        "suspended: uptime 55% over 7 days (suspended below 60%)"
    );
    // Same uptime, but still inside the vetting period: low, not suspended.
    let s = score(&node(DAY, 0.55, 3), NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Low);
    assert!(
        s.reasons.contains(&"uptime 55% over 24 h".to_owned()),
        "{:?}",
        s.reasons
    );
    // At the threshold exactly: not suspended.
    let cfg = ScoringConfig {
        suspend_uptime_below: score(&node(30 * DAY, 0.7, 40), NOW, &cfg).uptime,
        ..cfg
    };
    assert_ne!(
        score(&node(30 * DAY, 0.7, 40), NOW, &cfg).tier,
        NodeTier::Suspended
    );
}

#[test]
fn uptime_window_clips_to_age_and_ignores_old_days() {
    let cfg = ScoringConfig::default();
    let mut f = node(20 * DAY, 1.0, 0);
    // Offline for the last 10 days: the window sees nothing online.
    f.online_days.retain(|(d, _)| *d < NOW.div_euclid(DAY) - 10);
    let (u, span) = window_uptime(&f, NOW, &cfg);
    assert_eq!(u, 0.0);
    assert_eq!(span, 7 * DAY);
    // Records kept before per-day records began do not count as offline days.
    let mut upgraded = node(20 * DAY, 1.0, 0);
    upgraded
        .online_days
        .retain(|(d, _)| *d >= NOW.div_euclid(DAY) - 1);
    assert_eq!(window_uptime(&upgraded, NOW, &cfg).0, 1.0 / 7.0);
    upgraded.days_recorded_since = NOW - DAY;
    assert_eq!(window_uptime(&upgraded, NOW, &cfg), (1.0, DAY));
    let young = node(3600, 0.5, 0);
    let (u, span) = window_uptime(&young, NOW, &cfg);
    assert_eq!(span, 3600);
    assert!((u - 0.5).abs() < 0.01);
}

#[test]
fn audit_failures_suspend_then_disqualify_at_their_thresholds() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 40);
    push_audits(&mut f, AuditOutcome::Fail, 2, NOW - 3600);
    let s = score(&f, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::High, "{s:?}");
    assert!(s.audit_reputation < 0.95, "{s:?}");
    assert_eq!(s.reasons[0], "2 failed audits in the last 24 h");
    assert_eq!(s.recent_failed_audits, 2);
    assert!(s.audit_weight() > 5.0);
    push_audits(&mut f, AuditOutcome::Fail, 3, NOW - 60);
    let s = score(&f, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Suspended, "{s:?}");
    assert!(s.reasons[0].starts_with("suspended: audit reputation"));
    push_audits(&mut f, AuditOutcome::Fail, 10, NOW);
    let s = score(&f, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Disqualified);
    assert_eq!(s.value, 0.0);
    assert!(s.reasons[0].starts_with("disqualified: failed audits: integrity"));
    // Thresholds are strict: reputation exactly at them keeps the better tier.
    assert_eq!(s.audit_integrity, s.audit_reputation);
    let rep = s.audit_reputation;
    let edge = ScoringConfig {
        disqualify_below: rep,
        suspend_reputation_below: rep,
        ..ScoringConfig::default()
    };
    assert_eq!(score(&f, NOW, &edge).tier, NodeTier::Low);
}

#[test]
fn reputation_needs_min_audits() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 0);
    f.audits_passed_total = 10;
    push_audits(&mut f, AuditOutcome::Fail, 19, NOW);
    assert_ne!(score(&f, NOW, &cfg).tier, NodeTier::Disqualified);
    push_audits(&mut f, AuditOutcome::Fail, 1, NOW);
    assert_eq!(score(&f, NOW, &cfg).tier, NodeTier::Disqualified);
}

#[test]
fn forgetting_factor_makes_old_failures_fade() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 0);
    push_audits(&mut f, AuditOutcome::Fail, 3, NOW - 20 * DAY);
    push_audits(&mut f, AuditOutcome::Pass, 10, NOW - 10 * DAY);
    let soon = score(&f, NOW, &cfg).audit_reputation;
    push_audits(&mut f, AuditOutcome::Pass, 200, NOW - DAY);
    let later = score(&f, NOW, &cfg).audit_reputation;
    assert!(soon < 0.85, "{soon}");
    assert!(later > 0.99, "{later}");
    // Without forgetting the failures keep weighing the same.
    let keep = ScoringConfig {
        audit_lambda: 1.0,
        ..cfg
    };
    let r = audit_reputation(&f.audits, &keep);
    assert_eq!((r.alpha, r.beta), (211.0, 3.0));
    assert!(r.value < later);
}

#[test]
fn timeouts_weigh_less_than_failures() {
    let cfg = ScoringConfig::default();
    let mut failing = node(30 * DAY, 1.0, 20);
    let mut slow = failing.clone();
    push_audits(&mut failing, AuditOutcome::Fail, 3, NOW);
    push_audits(&mut slow, AuditOutcome::Timeout, 3, NOW);
    let (f, s) = (score(&failing, NOW, &cfg), score(&slow, NOW, &cfg));
    assert!(s.audit_reputation > f.audit_reputation);
    assert_eq!(s.audit_integrity, 1.0);
    assert!(s
        .reasons
        .contains(&"3 audits timed out in the last 24 h".to_owned()));
    assert_eq!(s.recent_timed_out_audits, 3);
    // Timeouts alone suspend but never disqualify.
    push_audits(&mut slow, AuditOutcome::Timeout, 100, NOW);
    let s = score(&slow, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Suspended);
    assert!(s.audit_reputation < cfg.disqualify_below);
}

#[test]
fn transfers_set_success_and_speed() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 40);
    for i in 0..10 {
        f.transfers.push(TransferEvent {
            at: NOW - 100 + i,
            ok: i % 5 != 0,
            bytes: 1 << 20,
            millis: 4000,
        });
    }
    let s = score(&f, NOW, &cfg);
    assert!(
        s.transfer_success < 0.9 && s.transfer_success > 0.7,
        "{s:?}"
    );
    assert!((s.speed_bps.unwrap() - 262_144.0).abs() < 1.0);
    assert!(s
        .reasons
        .iter()
        .any(|r| r.starts_with("transfers: ") && r.ends_with("% succeeded recently")));
    assert!(s
        .reasons
        .contains(&"slow transfers: 256 KiB/s (full marks from 1.0 MiB/s)".to_owned()));
    for i in 0..20 {
        f.transfers.push(TransferEvent {
            at: NOW - 50 + i,
            ok: false,
            bytes: 0,
            millis: 0,
        });
    }
    let s = score(&f, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Suspended);
    assert!(
        s.reasons[0].starts_with("suspended: transfers: "),
        "{:?}",
        s.reasons
    );
}

#[test]
fn sticky_disqualification_wins() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 40);
    f.disqualified = Some(Disqualification {
        at: NOW - DAY,
        reason: "audit reputation 0.40 after 12 audits (threshold 0.60)".into(),
    });
    let s = score(&f, NOW, &cfg);
    assert_eq!(s.tier, NodeTier::Disqualified);
    assert_eq!(s.disqualified_at, Some(NOW - DAY));
    assert_eq!(
        s.reasons[0],
        "disqualified: audit reputation 0.40 after 12 audits (threshold 0.60)"
    );
}

#[test]
fn poor_hours_are_named() {
    let cfg = ScoringConfig::default();
    let mut f = node(30 * DAY, 1.0, 40);
    for h in 2..5 {
        f.hours_online[h] = 0;
    }
    let s = score(&f, NOW, &cfg);
    assert!(
        s.reasons
            .contains(&"often offline at 02:00-05:00 UTC".to_owned()),
        "{:?}",
        s.reasons
    );
    assert_eq!(s.poor_hours, vec![2, 3, 4]);
    assert_eq!(s.poor_hours_mask(), 0b11100);
    // A young node's profile is too short to judge.
    let mut young = node(DAY, 1.0, 40);
    young.hours_online[3] = 0;
    assert!(score(&young, NOW, &cfg).poor_hours.is_empty());
}

#[test]
fn reasons_come_worst_first() {
    let cfg = ScoringConfig::default();
    let mut f = node(DAY, 0.8, 2);
    push_audits(&mut f, AuditOutcome::Fail, 1, NOW - 10);
    let s = score(&f, NOW, &cfg);
    assert_eq!(
        s.reasons,
        vec![
            "1 failed audit in the last 24 h".to_owned(),
            "audit reputation 0.74 after 3 audits".to_owned(),
            "uptime 80% over 24 h".to_owned(),
            "new node: 2 of 10 audits passed, 24 h of 3 days vetting".to_owned(),
        ]
    );
}

#[test]
fn default_config_is_valid_and_checked() {
    ScoringConfig::default().validate().unwrap();
    let bad = |edit: fn(&mut ScoringConfig), needle: &str| {
        let mut c = ScoringConfig::default();
        edit(&mut c);
        let e = c.validate().expect_err(needle);
        assert!(e.contains(needle), "{e} should mention {needle}");
    };
    bad(|c| c.audit_lambda = 0.0, "scoring.audit_lambda");
    bad(|c| c.audit_lambda = 1.5, "scoring.audit_lambda");
    bad(|c| c.window_secs = 0, "scoring.window_secs");
    bad(|c| c.history_secs = 10, "scoring.history_secs");
    bad(|c| c.disqualify_below = 0.95, "scoring.disqualify_below");
    bad(|c| c.high_at_least = 2.0, "scoring.high_at_least");
    bad(|c| c.weights.speed = -1.0, "scoring.weights.speed");
    bad(|c| c.timeout_weight = f64::NAN, "scoring.timeout_weight");
    bad(|c| c.good_speed_bps = 0.0, "scoring.good_speed_bps");
}

mod invariants {
    use super::*;
    use proptest::prelude::*;

    fn outcome() -> impl Strategy<Value = AuditOutcome> {
        prop_oneof![
            Just(AuditOutcome::Pass),
            Just(AuditOutcome::Fail),
            Just(AuditOutcome::Timeout)
        ]
    }

    prop_compose! {
        fn facts()(
            age in prop::option::of(0i64..60 * DAY),
            days in prop::collection::vec((0i64..60, 0i64..90_000), 0..60),
            hours in prop::array::uniform24(0i64..300_000),
            audits in prop::collection::vec((0i64..60 * DAY, outcome()), 0..80),
            extra_passes in 0u64..20,
            transfers in prop::collection::vec((0i64..60 * DAY, any::<bool>(), 0u64..1 << 30, 0u64..100_000), 0..80),
            dq in prop::option::of(0i64..DAY),
        ) -> NodeFacts {
            let mut audits: Vec<AuditEvent> = audits
                .into_iter()
                .map(|(ago, outcome)| AuditEvent { at: NOW - ago, outcome })
                .collect();
            audits.sort_by_key(|a| a.at);
            let passed = audits.iter().filter(|a| a.outcome == AuditOutcome::Pass).count() as u64;
            let mut transfers: Vec<TransferEvent> = transfers
                .into_iter()
                .map(|(ago, ok, bytes, millis)| TransferEvent { at: NOW - ago, ok, bytes, millis })
                .collect();
            transfers.sort_by_key(|t| t.at);
            NodeFacts {
                first_seen: age.map(|a| NOW - a),
                last_seen: age.map(|a| NOW - a / 2),
                online_days: days.into_iter().map(|(ago, s)| (NOW / DAY - ago, s)).collect(),
                days_recorded_since: 0,
                hours_online: hours,
                audits,
                audits_passed_total: passed + extra_passes,
                transfers,
                disqualified: dq.map(|ago| Disqualification { at: NOW - ago, reason: "x".into() }),
            }
        }
    }

    proptest! {
        #[test]
        fn scores_keep_their_invariants(f in facts()) {
            let cfg = ScoringConfig::default();
            let s = score(&f, NOW, &cfg);
            for v in [s.value, s.uptime, s.audit_reputation, s.audit_integrity, s.transfer_success] {
                prop_assert!((0.0..=1.0).contains(&v), "{s:?}");
            }
            prop_assert!(s.audit_integrity >= s.audit_reputation);
            prop_assert!(s.vetted || s.tier != NodeTier::High);
            prop_assert_eq!(f.disqualified.is_some(), s.disqualified_at.is_some());
            if f.disqualified.is_some() {
                prop_assert_eq!(s.tier, NodeTier::Disqualified);
            }
            if s.tier == NodeTier::Disqualified {
                prop_assert_eq!(s.value, 0.0);
            }
            if matches!(s.tier, NodeTier::Suspended | NodeTier::Disqualified) {
                prop_assert!(s.reasons[0].starts_with(if s.tier == NodeTier::Suspended {
                    "suspended: "
                } else {
                    "disqualified: "
                }), "{:?}", s.reasons);
            }
            if s.tier != NodeTier::High {
                prop_assert!(!s.reasons.is_empty(), "{s:?}");
            }
            let w = s.audit_weight();
            prop_assert!((1.0..=MAX_AUDIT_WEIGHT).contains(&w));
        }
    }
}
