use super::*;

const MIB: u64 = 1 << 20;

pub(super) fn node(id: NodeId, zone: &str, tier: NodeTier) -> NodeStatus {
    NodeStatus {
        id,
        zone: zone.into(),
        tier,
        online: true,
        offline_secs: 0,
        free: 100 * MIB,
        capacity: 100 * MIB,
        load: 0,
        backing_off: false,
        poor_hours: 0,
    }
}

/// Six nodes, two per zone, all high tier.
pub(super) fn cluster() -> Vec<NodeStatus> {
    (1..=6)
        .map(|id| node(id, &format!("z{}", (id - 1) / 2), NodeTier::High))
        .collect()
}

pub(super) fn policy(k: usize, m: usize, copies: usize) -> Policy {
    Policy {
        k,
        m,
        copies,
        high_share: 0.0,
    }
}

/// An object whose shard `i` is held by `holders[i]`.
pub(super) fn object(id: i64, p: Policy, holders: &[&[NodeId]]) -> ObjectState {
    ObjectState {
        id,
        policy: p,
        shards: holders
            .iter()
            .enumerate()
            .map(|(i, h)| ShardState {
                idx: i as u32,
                info_hash: test_hash(id as u64, i as u64),
                length: MIB,
                copies: h
                    .iter()
                    .map(|&n| CopyState {
                        node: n,
                        failed_audit: false,
                    })
                    .collect(),
            })
            .collect(),
        read_hours: 0,
    }
}

pub(super) fn offline(nodes: &mut [NodeStatus], id: NodeId, secs: u64) {
    let n = nodes.iter_mut().find(|n| n.id == id).unwrap();
    n.online = false;
    n.offline_secs = secs;
}

pub(super) fn cfg() -> PlanConfig {
    PlanConfig {
        grace_secs: 60,
        ..PlanConfig::default()
    }
}

#[test]
fn classify_follows_status_audit_and_grace() {
    let mut n = node(1, "z", NodeTier::High);
    let good = CopyState {
        node: 1,
        failed_audit: false,
    };
    let bad = CopyState {
        node: 1,
        failed_audit: true,
    };
    assert_eq!(classify(&good, Some(&n), 60), CopyClass::Live);
    assert_eq!(classify(&bad, Some(&n), 60), CopyClass::Bad);
    assert_eq!(classify(&good, None, 60), CopyClass::Lost);
    n.online = false;
    n.offline_secs = 60;
    assert_eq!(classify(&good, Some(&n), 60), CopyClass::Away);
    n.offline_secs = 61;
    assert_eq!(classify(&good, Some(&n), 60), CopyClass::Lost);
    n.tier = NodeTier::Disqualified;
    n.online = true;
    assert_eq!(classify(&good, Some(&n), 60), CopyClass::Bad);
}

#[test]
fn healthy_objects_need_nothing() {
    let nodes = cluster();
    let o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let plan = plan(&[o], &nodes, &cfg());
    assert!(plan.tasks.is_empty(), "{:?}", plan.tasks);
    assert_eq!(plan.health.shards_under, 0);
}

#[test]
fn a_copy_lost_past_grace_is_copied_from_the_survivor() {
    let mut nodes = cluster();
    offline(&mut nodes, 3, 61);
    let o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let plan = plan(&[o], &nodes, &cfg());
    assert_eq!(plan.tasks.len(), 1, "{:?}", plan.tasks);
    let t = &plan.tasks[0];
    assert_eq!(t.why, Why::Repair);
    let Action::Copy {
        shard,
        sources,
        targets,
    } = &t.action
    else {
        panic!("{t:?}")
    };
    assert_eq!(shard.idx, 0);
    assert_eq!(sources, &vec![1]);
    assert_eq!(targets.len(), 1);
    assert!(![1, 3].contains(&targets[0]));
    assert_eq!(plan.health.shards_under, 1);
}

#[test]
fn a_copy_away_within_grace_still_counts() {
    let mut nodes = cluster();
    offline(&mut nodes, 3, 60);
    let o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    assert!(plan(&[o], &nodes, &cfg()).tasks.is_empty());
}

#[test]
fn a_shard_with_no_copy_is_rebuilt_when_k_shards_survive() {
    let mut nodes = cluster();
    offline(&mut nodes, 1, 1000);
    offline(&mut nodes, 3, 1000);
    let o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let plan = plan(&[o], &nodes, &cfg());
    let rebuilds: Vec<_> = plan
        .tasks
        .iter()
        .filter(|t| t.why == Why::Rebuild)
        .collect();
    assert_eq!(rebuilds.len(), 1, "{:?}", plan.tasks);
    let Action::Rebuild { shards, sources } = &rebuilds[0].action else {
        panic!()
    };
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0].0.idx, 0);
    assert_eq!(shards[0].1.len(), 2, "two new copies");
    assert!(shards[0].1.iter().all(|t| ![1, 3].contains(t)));
    assert_eq!(sources, &vec![(1, vec![2, 5]), (2, vec![4, 6])]);
    assert_eq!(plan.health.shards_without_copy, 1);
    assert_eq!(plan.health.objects_at_risk, 1);
}

#[test]
fn no_rebuild_without_k_live_shards() {
    let mut nodes = cluster();
    for id in [1, 2, 3, 5] {
        offline(&mut nodes, id, 1000);
    }
    let o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let plan = plan(&[o], &nodes, &cfg());
    assert!(
        plan.tasks
            .iter()
            .all(|t| !matches!(t.action, Action::Rebuild { .. })),
        "{:?}",
        plan.tasks
    );
    assert_eq!(plan.health.objects_unreadable, 1);
}

#[test]
fn surplus_drops_the_worst_copy_and_keeps_policy() {
    let mut nodes = cluster();
    nodes[4].tier = NodeTier::Low; // node 5
    let o = object(1, policy(2, 1, 2), &[&[1, 3, 5], &[2, 4], &[3, 6]]);
    let plan = plan(&[o], &nodes, &cfg());
    assert_eq!(plan.tasks.len(), 1, "{:?}", plan.tasks);
    assert_eq!(plan.tasks[0].why, Why::Surplus);
    assert!(matches!(plan.tasks[0].action, Action::Drop { node: 5, .. }));
}

#[test]
fn surplus_waits_while_copies_are_only_away() {
    let mut nodes = cluster();
    offline(&mut nodes, 5, 10);
    // Three counted copies, but only two live: nothing may be dropped.
    let o = object(1, policy(2, 1, 2), &[&[1, 3, 5], &[2, 4], &[3, 6]]);
    assert!(plan(&[o], &nodes, &cfg()).tasks.is_empty());
}

#[test]
fn bad_copies_never_serve_and_go_once_replaced() {
    let nodes = cluster();
    let mut o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    o.shards[0].copies[1].failed_audit = true;
    let first = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert_eq!(first.tasks.len(), 1, "{:?}", first.tasks);
    let Action::Copy {
        sources, targets, ..
    } = &first.tasks[0].action
    else {
        panic!()
    };
    assert_eq!(sources, &vec![1], "the bad copy is no source");
    assert!(!targets.contains(&3), "nor a target");
    // The replacement confirmed: now the bad copy goes.
    o.shards[0].copies.push(CopyState {
        node: targets[0],
        failed_audit: false,
    });
    let second = plan(&[o], &nodes, &cfg());
    assert_eq!(second.tasks.len(), 1, "{:?}", second.tasks);
    assert_eq!(second.tasks[0].why, Why::BadCopy);
    assert!(matches!(
        second.tasks[0].action,
        Action::Drop { node: 3, .. }
    ));
}

#[test]
fn a_suspended_node_is_drained_by_adding_before_dropping() {
    let mut nodes = cluster();
    nodes[2].tier = NodeTier::Suspended; // node 3
    let mut o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let first = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert_eq!(first.tasks.len(), 1, "{:?}", first.tasks);
    assert_eq!(first.tasks[0].why, Why::Drain);
    let Action::Copy { targets, .. } = &first.tasks[0].action else {
        panic!()
    };
    assert_ne!(targets[0], 3);
    o.shards[0].copies.push(CopyState {
        node: targets[0],
        failed_audit: false,
    });
    let second = plan(&[o], &nodes, &cfg());
    assert_eq!(second.tasks.len(), 1, "{:?}", second.tasks);
    assert!(matches!(
        second.tasks[0].action,
        Action::Drop { node: 3, .. }
    ));
}

#[test]
fn a_bad_copy_on_a_node_that_is_gone_does_not_hold_a_drain_up() {
    let mut nodes = cluster();
    nodes[2].tier = NodeTier::Suspended; // node 3
    let mut o = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    // Node 7 failed an audit of shard 0, then left for good: its copy cannot be dropped.
    nodes.push(node(7, "z3", NodeTier::High));
    offline(&mut nodes, 7, 100_000);
    o.shards[0].copies.push(CopyState {
        node: 7,
        failed_audit: true,
    });
    let p = plan(&[o], &nodes, &cfg());
    assert_eq!(p.tasks.len(), 1, "{:?}", p.tasks);
    assert_eq!(p.tasks[0].why, Why::Drain);
}

#[test]
fn placement_candidates_are_a_sample_of_a_large_fleet_and_still_repair() {
    // 3,000 nodes in 30 zones, 64 candidates: every lost copy still finds a new home, never on
    // a node holding the shard already.
    let mut nodes: Vec<NodeStatus> = (1..=3000)
        .map(|id| node(id, &format!("z{}", id % 30), NodeTier::High))
        .collect();
    let cfg = PlanConfig {
        candidates: 64,
        max_tasks: 1000,
        ..cfg()
    };
    let objects: Vec<ObjectState> = (0..50)
        .map(|i| {
            object(
                i,
                policy(4, 2, 2),
                &[&[1, 2], &[3, 4], &[5, 6], &[7, 8], &[9, 10], &[11, 12]],
            )
        })
        .collect();
    offline(&mut nodes, 1, 100_000);
    let p = plan(&objects, &nodes, &cfg);
    assert_eq!(p.tasks.len(), 50, "{:?}", p.tasks);
    let mut targets = std::collections::HashSet::new();
    for t in &p.tasks {
        let Action::Copy {
            targets: to,
            sources,
            ..
        } = &t.action
        else {
            panic!("{t:?}")
        };
        assert_eq!((sources.as_slice(), to.len()), (&[2][..], 1));
        assert!(to[0] > 12, "a new node: {to:?}");
        targets.insert(to[0]);
    }
    assert!(
        targets.len() > 10,
        "the draw differs per object: {targets:?}"
    );
}

#[test]
fn zone_spread_moves_only_toward_an_empty_zone_and_settles() {
    // Both copies of shard 0 in zone z0; zone z3 has nodes holding nothing of the object.
    let nodes: Vec<NodeStatus> = (1..=8)
        .map(|id| node(id, &format!("z{}", (id - 1) / 2), NodeTier::High))
        .collect();
    let mut o = object(1, policy(2, 1, 2), &[&[1, 2], &[3, 5], &[4, 6]]);
    let first = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert_eq!(first.tasks.len(), 1, "{:?}", first.tasks);
    assert_eq!(first.tasks[0].why, Why::ZoneSpread);
    let Action::Copy { targets, .. } = &first.tasks[0].action else {
        panic!()
    };
    assert!([7, 8].contains(&targets[0]), "{targets:?}");
    o.shards[0].copies.push(CopyState {
        node: targets[0],
        failed_audit: false,
    });
    let second = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert_eq!(second.tasks.len(), 1, "{:?}", second.tasks);
    let Action::Drop { node: gone, .. } = second.tasks[0].action else {
        panic!()
    };
    assert!([1, 2].contains(&gone));
    o.shards[0].copies.retain(|c| c.node != gone);
    assert!(plan(&[o], &nodes, &cfg()).tasks.is_empty(), "settled");

    // Every other node already holds a shard of the object: moving would give up node spread,
    // which placement values above zone spread, so nothing moves.
    let o = object(3, policy(2, 1, 2), &[&[1, 2], &[3, 5], &[4, 6]]);
    assert!(plan(&[o], &cluster(), &cfg()).tasks.is_empty());

    // One zone only: nothing to gain, nothing moves.
    let flat: Vec<NodeStatus> = (1..=4).map(|id| node(id, "z", NodeTier::High)).collect();
    let o = object(2, policy(1, 1, 2), &[&[1, 2], &[3, 4]]);
    assert!(plan(&[o], &flat, &cfg()).tasks.is_empty());
}

#[test]
fn riskiest_object_first_and_task_budget_honoured() {
    let mut nodes = cluster();
    offline(&mut nodes, 1, 1000);
    // Object 1 lost one copy of one shard; object 2 lost every copy of two shards... margin 1 vs 0.
    let calm = object(1, policy(2, 1, 2), &[&[1, 3], &[2, 5], &[4, 6]]);
    let risky = object(2, policy(2, 1, 2), &[&[1], &[2, 4], &[6, 3]]);
    let mut c = cfg();
    c.max_tasks = 1;
    let plan = plan(&[calm, risky], &nodes, &c);
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].object, 2);
    assert_eq!(plan.tasks[0].why, Why::Rebuild);
}

#[test]
fn capacity_promised_to_one_task_is_not_promised_again() {
    let mut nodes: Vec<NodeStatus> = (1..=3).map(|id| node(id, "z", NodeTier::High)).collect();
    nodes[2].free = MIB; // node 3 has room for one shard
    offline(&mut nodes, 2, 1000);
    let a = object(1, policy(1, 0, 2), &[&[1, 2]]);
    let b = object(2, policy(1, 0, 2), &[&[1, 2]]);
    let plan = plan(&[a, b], &nodes, &cfg());
    let copies = plan
        .tasks
        .iter()
        .filter(|t| matches!(t.action, Action::Copy { .. }))
        .count();
    assert_eq!(copies, 1, "{:?}", plan.tasks);
}

#[test]
fn tier_share_moves_a_copy_to_a_high_node() {
    let mut nodes = cluster();
    for n in nodes.iter_mut().filter(|n| n.id <= 4) {
        n.tier = NodeTier::Low;
    }
    let mut p = policy(1, 1, 2);
    p.high_share = 0.5;
    let o = object(1, p, &[&[1, 3], &[2, 4]]);
    let plan = plan(&[o], &nodes, &cfg());
    assert_eq!(
        plan.tasks.len(),
        1,
        "one move per object per plan: {:?}",
        plan.tasks
    );
    assert_eq!(plan.tasks[0].why, Why::TierShare);
    assert!(matches!(
        &plan.tasks[0].action,
        Action::Copy { targets, .. } if targets[0] == 5 || targets[0] == 6
    ));
}

#[test]
fn a_shard_read_when_its_nodes_sleep_gets_a_copy_on_a_node_awake_then() {
    const EVENING: u32 = 0b1111 << 18; // read 18:00-22:00 UTC
    let mut nodes = cluster();
    for n in &mut nodes {
        n.poor_hours = EVENING; // every node is often offline in the evening...
    }
    nodes[5].poor_hours = 0b1111; // ...except node 6, offline early in the morning
    let mut o = object(1, policy(1, 1, 2), &[&[1, 3], &[2, 4]]);
    // Never read: nothing to do.
    assert!(plan(std::slice::from_ref(&o), &nodes, &cfg())
        .tasks
        .is_empty());
    o.read_hours = EVENING;
    let first = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert_eq!(first.tasks.len(), 1, "{:?}", first.tasks);
    assert_eq!(first.tasks[0].why, Why::ReadHours);
    let Action::Copy { shard, targets, .. } = &first.tasks[0].action else {
        panic!()
    };
    assert_eq!(targets, &vec![6]);
    let s = shard.idx as usize;
    o.shards[s].copies.push(CopyState {
        node: 6,
        failed_audit: false,
    });
    // The trim keeps node 6, the only copy online in the evening, and drops a sleeping one.
    let second = plan(std::slice::from_ref(&o), &nodes, &cfg());
    let drops: Vec<NodeId> = second
        .tasks
        .iter()
        .filter_map(|t| match t.action {
            Action::Drop { node, .. } => Some(node),
            _ => None,
        })
        .collect();
    assert_eq!(drops.len(), 1, "{:?}", second.tasks);
    assert_ne!(drops[0], 6);
    o.shards[s].copies.retain(|c| c.node != drops[0]);
    // The other shard's nodes all sleep in the evening too, but the only node awake then already
    // holds this object's other shard: a move would give up node spread, so none is made, and the
    // plan settles.
    let third = plan(std::slice::from_ref(&o), &nodes, &cfg());
    assert!(third.tasks.is_empty(), "{:?}", third.tasks);
}

#[test]
fn assess_classes_copies_and_ranks_redundancy_as_the_plan_counts_it() {
    let mut nodes = cluster();
    let p = policy(2, 1, 2);
    let healthy = object(1, p, &[&[1, 2], &[3, 4], &[5, 6]]);
    let a = assess(&healthy, &nodes, 60);
    assert_eq!(a.redundancy, Redundancy::Healthy);
    assert!(a
        .copies
        .iter()
        .flatten()
        .all(|(_, c)| *c == CopyClass::Live));
    // Node 6 gone past the grace period: shard 2 is one copy short, nothing else.
    nodes[5].online = false;
    nodes[5].offline_secs = 3600;
    let a = assess(&healthy, &nodes, 60);
    assert_eq!(a.redundancy, Redundancy::Degraded);
    assert_eq!(
        a.copies[2],
        vec![(5, CopyClass::Live), (6, CopyClass::Lost)]
    );
    // Shard 2 loses its last live copy: k = 2 shards live, no margin left.
    nodes[4].online = false;
    nodes[4].offline_secs = 10;
    assert_eq!(assess(&healthy, &nodes, 60).redundancy, Redundancy::AtRisk);
    // Shards 1 and 2 gone for good: fewer than k reachable.
    for n in &mut nodes[2..] {
        n.online = false;
        n.offline_secs = 3600;
    }
    assert_eq!(
        assess(&healthy, &nodes, 60).redundancy,
        Redundancy::Unreadable
    );
    // The plan counts the same objects the same way.
    let plan = plan(&[healthy], &cluster(), &PlanConfig::default());
    assert_eq!(plan.health.objects_degraded, 0);
    assert_eq!(plan.health.shards_by_live_copies, vec![0, 0, 3]);
}

#[test]
fn the_live_copy_histogram_caps_its_last_bucket() {
    let nodes: Vec<NodeStatus> = (1..=10).map(|id| node(id, "z", NodeTier::High)).collect();
    let p = policy(1, 1, 1);
    let every: Vec<NodeId> = (1..=10).collect();
    let o = object(1, p, &[&every, &[1]]);
    let plan = plan(&[o], &nodes, &PlanConfig::default());
    let h = &plan.health.shards_by_live_copies;
    assert_eq!(h.len(), LIVE_COPIES_SHOWN + 1);
    assert_eq!(h[1], 1);
    assert_eq!(h[LIVE_COPIES_SHOWN], 1);
}
