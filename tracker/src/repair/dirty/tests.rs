use super::*;
use crate::repair::tests::{cfg, cluster, object, offline, policy};
use crate::repair::{plan, NodeTier};

/// Runs one pass as the gateway does over `all` (the recorded objects) and returns the ids it
/// loaded.
fn pass(t: &mut Tracker, all: &[ObjectState], nodes: &[NodeStatus], sweep: usize) -> Vec<i64> {
    t.observe_nodes(nodes, &cfg());
    let sel = t.select(usize::MAX, sweep);
    let window: Vec<i64> = sel.sweep.map_or(Vec::new(), |w| {
        let after = all.iter().filter(|o| o.id > w.after).map(|o| o.id);
        after.take(w.limit).collect()
    });
    let chosen: Vec<ObjectState> = all
        .iter()
        .filter(|o| sel.dirty.contains(&o.id) || window.contains(&o.id))
        .cloned()
        .collect();
    t.loaded(&sel, &window, &chosen);
    t.assessed(&plan(&chosen, nodes, &cfg()), &[]);
    chosen.iter().map(|o| o.id).collect()
}

/// Three objects of (2,1) x 1: object 1 on nodes 1, 3, 5; 2 on 2, 4, 6; 3 on 1, 4, 6.
fn world() -> Vec<ObjectState> {
    let p = policy(2, 1, 1);
    vec![
        object(1, p, &[&[1], &[3], &[5]]),
        object(2, p, &[&[2], &[4], &[6]]),
        object(3, p, &[&[1], &[4], &[6]]),
    ]
}

#[test]
fn the_first_pass_loads_everything_then_a_calm_pass_nothing() {
    let (all, nodes) = (world(), cluster());
    let mut t = Tracker::new();
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 2, 3]);
    assert_eq!(t.known(), 3);
    assert_eq!(t.health(), &plan(&all, &nodes, &cfg()).health);
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
}

#[test]
fn a_node_change_marks_only_the_objects_it_holds() {
    let (all, mut nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    // Away within grace: the live counts change, so the figures must follow.
    offline(&mut nodes, 1, 10);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
    // Still away: nothing new.
    offline(&mut nodes, 1, 20);
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
    // Past grace: lost, and the objects stay marked while they lack a copy.
    offline(&mut nodes, 1, 600);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
    assert_eq!(t.health(), &plan(&all, &nodes, &cfg()).health);
    // A tier change of node 2 marks object 2 (1 and 3 are marked while they lack a copy).
    nodes[1].tier = NodeTier::Low;
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 2, 3]);
}

#[test]
fn without_away_marks_only_crossing_the_grace_period_marks() {
    let (all, mut nodes) = (world(), cluster());
    let mut t = Tracker::new().away_marks(false);
    pass(&mut t, &all, &nodes, 0);
    // Away within grace, and back: a plan over everything has nothing to do, so nothing loads.
    offline(&mut nodes, 1, 10);
    assert!(plan(&all, &nodes, &cfg()).tasks.is_empty());
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
    nodes[0].online = true;
    nodes[0].offline_secs = 0;
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
    // Past grace: its objects are marked as with away marks, and stay marked while they lack a
    // copy.
    offline(&mut nodes, 1, 600);
    assert!(!plan(&all, &nodes, &cfg()).tasks.is_empty());
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
    assert_eq!(t.health(), &plan(&all, &nodes, &cfg()).health);
    // Back from past grace: marked again (surplus copies may follow).
    nodes[0].online = true;
    nodes[0].offline_secs = 0;
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 3]);
}

#[test]
fn a_node_that_leaves_the_list_marks_its_objects() {
    let (all, mut nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    nodes.retain(|n| n.id != 5);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1]);
}

#[test]
fn marks_are_taken_once_oldest_first_within_the_budget() {
    let (all, nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    for id in [3, 1, 3, 2, 1] {
        t.mark(id);
    }
    assert_eq!(t.dirty(), 3);
    assert_eq!(t.select(2, 0).dirty, vec![3, 1]);
    assert_eq!(t.select(2, 0).dirty, vec![2]);
    assert_eq!(t.select(2, 0), Selection::default());
}

#[test]
fn the_sweep_walks_every_object_and_forgets_deleted_ones() {
    let (mut all, nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    // Object 2 is deleted without any mark.
    all.remove(1);
    assert_eq!(pass(&mut t, &all, &nodes, 1), vec![1]);
    assert_eq!(t.known(), 3);
    // The next window holds object 3: object 2, between the windows, is forgotten.
    assert_eq!(pass(&mut t, &all, &nodes, 1), vec![3]);
    assert_eq!(t.known(), 2);
    assert_eq!(t.health(), &plan(&all, &nodes, &cfg()).health);
    // Past the last object the sweep starts over.
    assert!(pass(&mut t, &all, &nodes, 1).is_empty());
    assert_eq!(pass(&mut t, &all, &nodes, 1), vec![1]);
}

#[test]
fn a_marked_object_that_is_gone_leaves_the_index_and_the_totals() {
    let (mut all, nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    all.remove(0);
    t.mark(1);
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
    assert_eq!(t.known(), 2);
    assert_eq!(t.health(), &plan(&all, &nodes, &cfg()).health);
    // Its nodes no longer lead to it.
    t.mark_node(5);
    assert_eq!(t.dirty(), 0);
}

#[test]
fn a_fleet_that_offers_a_new_zone_asks_for_a_full_sweep() {
    let (all, mut nodes) = (world(), cluster());
    let mut t = Tracker::new();
    pass(&mut t, &all, &nodes, 0);
    // Losing what was offered (zone z0 backs off) changes nothing the sweep must look at.
    nodes[0].backing_off = true;
    nodes[1].backing_off = true;
    assert!(pass(&mut t, &all, &nodes, 0).is_empty());
    let mut fresh = cluster()[0].clone();
    fresh.id = 9;
    fresh.zone = "z9".into();
    nodes.push(fresh);
    assert_eq!(pass(&mut t, &all, &nodes, 0), vec![1, 2, 3]);
}
