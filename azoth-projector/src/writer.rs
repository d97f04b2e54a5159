//! The write queue with group commit, leader/follower style (as RocksDB's write thread).
//!
//! A caller queues its request. If no group is in progress it becomes the *leader*: it takes
//! the queued requests (up to the group cap), commits them as one group through the
//! [`GroupCommitter`] — one log block, one sync — and acknowledges each. Callers that arrive
//! while a group is being committed wait as *followers*; when the leader is done it hands the
//! leadership to the first of them, which takes all of them as the next group. So a lone
//! writer commits on its own thread with no hand-over, and under contention many writers
//! share one sync. The queue is bounded: callers wait for room (backpressure).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azoth_core::{AzothError, Key, Operation, OperationId, Result};
use parking_lot::{Condvar, Mutex};

/// One event a request wants logged; ids and the timestamp are given at commit.
#[derive(Debug, Clone)]
pub(crate) enum Draft {
    Write(Operation),
    App { kind: String, payload: Vec<u8> },
    Compaction { level: usize },
    Read { key: Key },
}

/// What one caller asks to commit atomically: its drafts become consecutive events of one
/// block. A transaction's read set comes along; the committer validates it inside the group,
/// before the group's ids are given.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) drafts: Vec<Draft>,
    pub(crate) reads: Option<crate::transaction::ReadSet>,
}

/// The outcome of one request: the ids of its events, in order.
pub(crate) type Outcome = Result<Vec<OperationId>>;

/// Commits a group of requests: one outcome per request, in order. Must not panic.
pub(crate) trait GroupCommitter {
    fn commit_group(&self, group: Vec<Request>) -> Vec<Outcome>;
}

enum WaitState {
    Waiting,
    /// The previous leader handed the leadership to this caller.
    Lead,
    Done(Outcome),
}

struct Waiter {
    state: Mutex<WaitState>,
    wake: Condvar,
}

impl Waiter {
    fn set(&self, state: WaitState) {
        *self.state.lock() = state;
        self.wake.notify_one();
    }
}

struct Pending {
    request: Request,
    waiter: Arc<Waiter>,
}

struct Queue {
    pending: VecDeque<Pending>,
    leader_active: bool,
    closed: bool,
}

/// The bounded queue of write requests and its leadership.
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Signalled when the queue has room, and when the writer goes idle.
    changed: Condvar,
    group_cap: usize,
    capacity: usize,
    groups: AtomicU64,
    requests: AtomicU64,
}

impl Writer {
    pub(crate) fn new(group_cap: usize, capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                leader_active: false,
                closed: false,
            }),
            changed: Condvar::new(),
            group_cap: group_cap.max(1),
            capacity: capacity.max(1),
            groups: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Queues `request`, blocks until its group has committed, and returns its outcome.
    pub(crate) fn submit(&self, request: Request, committer: &dyn GroupCommitter) -> Outcome {
        let mut queue = self.queue.lock();
        while queue.pending.len() >= self.capacity && !queue.closed {
            self.changed.wait(&mut queue);
        }
        if queue.closed {
            return Err(AzothError::Closed);
        }
        if !queue.leader_active && queue.pending.is_empty() {
            // Alone: commit on this thread without queueing or a waiter to wake, the common
            // case of a single writer. Callers arriving meanwhile queue and are led next.
            queue.leader_active = true;
            drop(queue);
            let outcome = committer
                .commit_group(vec![request])
                .into_iter()
                .next()
                .unwrap_or_else(|| {
                    Err(AzothError::Config(
                        "commit group returned too few outcomes".into(),
                    ))
                });
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.pass_leadership();
            return outcome;
        }
        let waiter = Arc::new(Waiter {
            state: Mutex::new(WaitState::Waiting),
            wake: Condvar::new(),
        });
        queue.pending.push_back(Pending {
            request,
            waiter: Arc::clone(&waiter),
        });
        if !queue.leader_active {
            queue.leader_active = true;
            drop(queue);
            return self.lead(&waiter, committer);
        }
        drop(queue);
        let mut state = waiter.state.lock();
        loop {
            match std::mem::replace(&mut *state, WaitState::Waiting) {
                WaitState::Done(outcome) => return outcome,
                WaitState::Lead => {
                    drop(state);
                    return self.lead(&waiter, committer);
                }
                WaitState::Waiting => waiter.wake.wait(&mut state),
            }
        }
    }

    /// Commits groups until this caller's own request is done, then hands the leadership to
    /// the first waiting caller, or leaves the writer idle.
    fn lead(&self, me: &Arc<Waiter>, committer: &dyn GroupCommitter) -> Outcome {
        let mut mine = None;
        loop {
            let (requests, waiters): (Vec<Request>, Vec<Arc<Waiter>>) = {
                let mut queue = self.queue.lock();
                let n = queue.pending.len().min(self.group_cap);
                let taken: Vec<Pending> = queue.pending.drain(..n).collect();
                self.changed.notify_all();
                taken.into_iter().map(|p| (p.request, p.waiter)).unzip()
            };
            let n = requests.len();
            let outcomes = committer.commit_group(requests);
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.requests.fetch_add(n as u64, Ordering::Relaxed);
            let mut outcomes = outcomes.into_iter();
            for waiter in waiters {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(AzothError::Config(
                        "commit group returned too few outcomes".into(),
                    ))
                });
                if Arc::ptr_eq(&waiter, me) {
                    mine = Some(outcome);
                } else {
                    waiter.set(WaitState::Done(outcome));
                }
            }
            if let Some(outcome) = mine.take() {
                self.pass_leadership();
                return outcome;
            }
        }
    }

    /// Called by a leader done with its own request: hands the leadership to the first
    /// waiting caller, or leaves the writer idle.
    fn pass_leadership(&self) {
        let mut queue = self.queue.lock();
        match queue.pending.front() {
            Some(next) => next.waiter.set(WaitState::Lead),
            None => {
                queue.leader_active = false;
                self.changed.notify_all();
            }
        }
    }

    /// Refuses new requests and waits until every queued one is committed.
    pub(crate) fn close(&self) {
        let mut queue = self.queue.lock();
        queue.closed = true;
        self.changed.notify_all();
        while queue.leader_active || !queue.pending.is_empty() {
            self.changed.wait(&mut queue);
        }
    }

    /// Groups committed and requests they held.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.groups.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Gives each draft the next id and records group sizes.
    struct Counter {
        next: AtomicU64,
        max_group: AtomicU64,
    }

    impl GroupCommitter for Counter {
        fn commit_group(&self, group: Vec<Request>) -> Vec<Outcome> {
            self.max_group
                .fetch_max(group.len() as u64, Ordering::Relaxed);
            std::thread::yield_now();
            group
                .into_iter()
                .map(|r| {
                    Ok(r.drafts
                        .iter()
                        .map(|_| OperationId::new(0, self.next.fetch_add(1, Ordering::SeqCst)))
                        .collect())
                })
                .collect()
        }
    }

    fn put() -> Request {
        Request {
            drafts: vec![Draft::Compaction { level: 0 }],
            reads: None,
        }
    }

    #[test]
    fn every_request_gets_its_own_distinct_ids() {
        let writer = Writer::new(8, 16);
        let committer = Counter {
            next: AtomicU64::new(1),
            max_group: AtomicU64::new(0),
        };
        let ids = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let got = writer.submit(put(), &committer).unwrap();
                        assert_eq!(got.len(), 1);
                        ids.lock().push(got[0].sequence);
                    }
                });
            }
        });
        let mut ids = ids.into_inner();
        ids.sort_unstable();
        assert_eq!(ids, (1..=1600).collect::<Vec<_>>());
        assert!(committer.max_group.load(Ordering::Relaxed) <= 8);
        let (groups, requests) = writer.counts();
        assert_eq!(requests, 1600);
        assert!(groups <= 1600);
        writer.close();
        assert!(matches!(
            writer.submit(put(), &committer),
            Err(AzothError::Closed)
        ));
    }
}
