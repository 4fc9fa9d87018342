//! Which shards a read fetches next, as a pure state machine.
//!
//! A read needs any `k` shards of its object. It starts `k + hedge` fetches from the candidates
//! (data shards first: they need no decoding work; then parity), keeps the first `k` that
//! complete, and replaces each failed fetch with the next candidate. It has failed as soon as
//! the shards done, in flight and left to try cannot make `k` any more.

use std::collections::VecDeque;

/// The fetches of one read.
#[derive(Debug, Clone)]
pub(super) struct FetchPlan {
    k: usize,
    width: usize,
    queue: VecDeque<usize>,
    running: Vec<usize>,
    done: Vec<usize>,
    failures: Vec<String>,
}

/// Where a read stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Progress {
    /// Fetches are in flight.
    Running,
    /// `k` shards are in.
    Done,
    /// `k` shards cannot be had: what went wrong.
    Failed(String),
}

impl FetchPlan {
    /// A read of `k` shards from `candidates` (shard indices, in the order to try them), with
    /// `hedge` fetches beyond `k` in flight. Fails when there are fewer than `k` candidates.
    pub(super) fn new(candidates: Vec<usize>, k: usize, hedge: usize) -> Result<Self, String> {
        if candidates.len() < k {
            return Err(format!(
                "{} of the {k} shards needed have a holder online",
                candidates.len()
            ));
        }
        Ok(FetchPlan {
            k,
            width: k + hedge,
            queue: candidates.into(),
            running: Vec::new(),
            done: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// The shards to start fetching now.
    pub(super) fn start(&mut self) -> Vec<usize> {
        let mut started = Vec::new();
        while self.done.len() < self.k && self.running.len() + self.done.len() < self.width {
            let Some(i) = self.queue.pop_front() else {
                break;
            };
            self.running.push(i);
            started.push(i);
        }
        started
    }

    /// Shard `i` is in and verified.
    pub(super) fn completed(&mut self, i: usize) {
        if let Some(p) = self.running.iter().position(|r| *r == i) {
            self.running.swap_remove(p);
            self.done.push(i);
        }
    }

    /// Fetching shard `i` failed.
    pub(super) fn failed(&mut self, i: usize, why: String) {
        if let Some(p) = self.running.iter().position(|r| *r == i) {
            self.running.swap_remove(p);
        }
        self.failures.push(why);
    }

    pub(super) fn progress(&self) -> Progress {
        if self.done.len() >= self.k {
            return Progress::Done;
        }
        if self.done.len() + self.running.len() + self.queue.len() < self.k {
            return Progress::Failed(format!(
                "only {} of {} shards could be fetched: {}",
                self.done.len(),
                self.k,
                self.failures.join("; ")
            ));
        }
        Progress::Running
    }

    /// The shards fetched so far, in the order they completed.
    pub(super) fn done(&self) -> &[usize] {
        &self.done
    }

    /// Fetches still in flight (to stop once the read is done or failed).
    pub(super) fn running(&self) -> &[usize] {
        &self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_k_plus_hedge_and_keeps_the_first_k() {
        let mut p = FetchPlan::new(vec![0, 1, 2, 3, 4, 5], 4, 1).unwrap();
        assert_eq!(p.start(), vec![0, 1, 2, 3, 4]);
        for i in [2, 0, 4, 1] {
            assert_eq!(p.progress(), Progress::Running);
            p.completed(i);
            assert!(p.start().is_empty(), "a success starts nothing");
        }
        assert_eq!(p.progress(), Progress::Done);
        assert_eq!(p.done(), &[2, 0, 4, 1]);
        assert_eq!(p.running(), &[3]);
    }

    #[test]
    fn a_failure_is_replaced_by_the_next_candidate() {
        let mut p = FetchPlan::new(vec![0, 1, 2, 3], 2, 0).unwrap();
        assert_eq!(p.start(), vec![0, 1]);
        p.failed(1, "shard 1: timed out".into());
        assert_eq!(p.start(), vec![2]);
        p.completed(0);
        p.failed(2, "shard 2: refused".into());
        assert_eq!(p.start(), vec![3]);
        p.completed(3);
        assert_eq!(p.progress(), Progress::Done);
    }

    #[test]
    fn it_fails_as_soon_as_k_cannot_be_reached_and_says_why() {
        let mut p = FetchPlan::new(vec![0, 1, 2], 2, 1).unwrap();
        assert_eq!(p.start(), vec![0, 1, 2]);
        p.failed(0, "shard 0: gone".into());
        assert_eq!(p.progress(), Progress::Running, "1 and 2 can still make k");
        p.failed(2, "shard 2: bad piece".into());
        match p.progress() {
            Progress::Failed(why) => {
                assert!(why.starts_with("only 0 of 2"), "{why}");
                assert!(why.contains("gone") && why.contains("bad piece"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.running(), &[1]);
    }

    #[test]
    fn too_few_candidates_is_refused_up_front() {
        let e = FetchPlan::new(vec![3], 2, 1).unwrap_err();
        assert_eq!(e, "1 of the 2 shards needed have a holder online");
    }

    #[test]
    fn never_more_than_k_plus_hedge_in_flight_or_done() {
        // Every interleaving of successes and failures over a few candidates keeps the bound
        // and ends Done or Failed once nothing is running.
        for outcomes in 0u32..(1 << 8) {
            let mut p = FetchPlan::new((0..8).collect(), 3, 2).unwrap();
            let mut step = 0;
            loop {
                p.start();
                assert!(p.running().len() + p.done().len() <= 5);
                if p.progress() != Progress::Running {
                    break;
                }
                let i = p.running()[0];
                if outcomes >> (step % 8) & 1 == 1 {
                    p.completed(i);
                } else {
                    p.failed(i, format!("shard {i}"));
                }
                step += 1;
            }
            match p.progress() {
                Progress::Done => assert_eq!(p.done().len(), 3),
                Progress::Failed(_) => assert!(p.done().len() < 3),
                Progress::Running => unreachable!(),
            }
        }
    }
}
