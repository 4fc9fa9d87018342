//! Copies being changed on nodes right now: the holds in flight, the drops of untracked copies
//! being sent, and the copies of holds that ended without their copy recorded, waiting for the
//! collector to drop them.
//!
//! Rules:
//! - a hold is in flight from before its directive is sent until its copy is recorded or the
//!   hold failed ([`HoldTicket`]); one that ends unrecorded (refused, timed out, node gone, task
//!   cancelled, record failed) queues its copy for the collector, which drops it unless a
//!   holding was recorded meanwhile, and is woken at once;
//! - a drop of an untracked copy ([`DropTicket`]) starts only while no hold of that copy is in
//!   flight, and a hold of a copy being dropped waits until that drop is answered: directives
//!   on one connection are carried out in order, so a hold sent after the drop wins and a drop
//!   can never undo a copy that is being recorded;
//! - a new hold of a queued copy takes it off the queue: that hold decides the copy's fate.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use raidtorrent_codec::InfoHash;
use tokio::sync::watch;

use super::worker::WorkerHandle;
use crate::registry::NodeId;

/// One copy: a shard on a node.
pub(super) type CopyOf = (InfoHash, NodeId);

/// The copies being changed; shared by every clone of `Copies`.
pub(super) struct CopiesInFlight {
    state: Mutex<State>,
    /// Bumped whenever a drop of an untracked copy ends, so holds waiting for it go on.
    drops_ended: watch::Sender<u64>,
    /// The collector, woken when a copy is queued.
    collector: WorkerHandle,
}

#[derive(Default)]
struct State {
    holds: HashMap<CopyOf, usize>,
    dropping: HashSet<CopyOf>,
    queued: HashSet<CopyOf>,
}

impl CopiesInFlight {
    pub(super) fn new(collector: WorkerHandle) -> Arc<Self> {
        Arc::new(CopiesInFlight {
            state: Mutex::new(State::default()),
            drops_ended: watch::channel(0).0,
            collector,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hold of `copy` is about to be sent: waits while a drop of it is being sent.
    pub(super) async fn begin_hold(self: &Arc<Self>, copy: CopyOf) -> HoldTicket {
        loop {
            let mut ended = {
                let mut s = self.state();
                if !s.dropping.contains(&copy) {
                    s.queued.remove(&copy);
                    *s.holds.entry(copy).or_default() += 1;
                    return HoldTicket {
                        owner: self.clone(),
                        copy,
                        recorded: false,
                    };
                }
                self.drops_ended.subscribe()
            };
            // The sender lives as long as `self`.
            let _ = ended.changed().await;
        }
    }

    /// The copies whose holds are in flight now.
    pub(super) fn holds(&self) -> HashSet<CopyOf> {
        self.state().holds.keys().copied().collect()
    }

    /// Takes the copies queued by holds that ended unrecorded.
    pub(super) fn take_queued(&self) -> Vec<CopyOf> {
        self.state().queued.drain().collect()
    }

    /// A drop of an untracked `copy` may be sent: `None` while a hold of it is in flight or it
    /// is being dropped already.
    pub(super) fn begin_drop(self: &Arc<Self>, copy: CopyOf) -> Option<DropTicket> {
        let mut s = self.state();
        if s.holds.contains_key(&copy) || !s.dropping.insert(copy) {
            return None;
        }
        s.queued.remove(&copy);
        Some(DropTicket {
            owner: self.clone(),
            copy,
        })
    }
}

/// A hold in flight; when dropped before [`recorded`](Self::recorded), its copy is queued for
/// the collector to drop.
pub(super) struct HoldTicket {
    owner: Arc<CopiesInFlight>,
    copy: CopyOf,
    recorded: bool,
}

impl HoldTicket {
    /// The copy is recorded (counted, or against its orphan): the gateway tracks it.
    pub(super) fn recorded(mut self) {
        self.recorded = true;
    }
}

impl Drop for HoldTicket {
    fn drop(&mut self) {
        {
            let mut s = self.owner.state();
            if let Some(n) = s.holds.get_mut(&self.copy) {
                *n -= 1;
                if *n == 0 {
                    s.holds.remove(&self.copy);
                }
            }
            if self.recorded {
                return;
            }
            s.queued.insert(self.copy);
        }
        self.owner.collector.wake();
    }
}

/// A drop of an untracked copy being sent; holds of the copy wait until it is dropped.
pub(super) struct DropTicket {
    owner: Arc<CopiesInFlight>,
    copy: CopyOf,
}

impl Drop for DropTicket {
    fn drop(&mut self) {
        self.owner.state().dropping.remove(&self.copy);
        self.owner.drops_ended.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(n: u8, node: NodeId) -> CopyOf {
        (InfoHash([n; 20]), node)
    }

    #[tokio::test]
    async fn an_unrecorded_hold_queues_its_copy_and_a_recorded_one_does_not() {
        let f = CopiesInFlight::new(WorkerHandle::new("collector"));
        let a = f.begin_hold(copy(1, 1)).await;
        let b = f.begin_hold(copy(2, 1)).await;
        assert_eq!(f.holds(), HashSet::from([copy(1, 1), copy(2, 1)]));
        a.recorded();
        drop(b);
        assert!(f.holds().is_empty());
        assert_eq!(f.take_queued(), vec![copy(2, 1)]);
        assert!(f.take_queued().is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_hold_task_queues_its_copy() {
        let f = CopiesInFlight::new(WorkerHandle::new("collector"));
        let task = tokio::spawn({
            let f = f.clone();
            async move {
                let _ticket = f.begin_hold(copy(3, 2)).await;
                std::future::pending::<()>().await;
            }
        });
        while f.holds().is_empty() {
            tokio::task::yield_now().await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(f.take_queued(), vec![copy(3, 2)]);
    }

    #[tokio::test]
    async fn no_drop_while_a_hold_is_in_flight_and_a_new_hold_unqueues() {
        let f = CopiesInFlight::new(WorkerHandle::new("collector"));
        let first = f.begin_hold(copy(1, 1)).await;
        let second = f.begin_hold(copy(1, 1)).await;
        assert!(f.begin_drop(copy(1, 1)).is_none());
        drop(first);
        assert!(
            f.begin_drop(copy(1, 1)).is_none(),
            "one hold still in flight"
        );
        second.recorded();
        let dropping = f.begin_drop(copy(1, 1)).expect("no hold in flight");
        assert!(f.begin_drop(copy(1, 1)).is_none(), "dropped once at a time");
        drop(dropping);
        // A failed hold's copy is queued, and a new hold of it takes it off the queue.
        drop(f.begin_hold(copy(2, 1)).await);
        let again = f.begin_hold(copy(2, 1)).await;
        assert!(f.take_queued().is_empty());
        again.recorded();
    }

    #[tokio::test]
    async fn a_hold_waits_for_the_drop_of_its_copy() {
        let f = CopiesInFlight::new(WorkerHandle::new("collector"));
        let dropping = f.begin_drop(copy(5, 3)).unwrap();
        let hold = tokio::spawn({
            let f = f.clone();
            async move { f.begin_hold(copy(5, 3)).await.recorded() }
        });
        // The test runtime has one thread: each yield lets the hold task run until it blocks.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !hold.is_finished() && f.holds().is_empty(),
            "the hold started"
        );
        drop(dropping);
        hold.await.unwrap();
    }
}
