//! The write queue with group commit, leader/follower style (as RocksDB's write thread).
//!
//! A caller queues its request. If no group is in progress it becomes the *leader*: it takes
//! the queued requests (up to the group cap), commits them as one group through the
//! [`GroupCommitter`] — one log block, one sync — and acknowledges each. Callers that arrive
//! while a group is being committed wait as *followers*; when the leader is done it hands the
//! leadership to the first of them, which takes all of them as the next group. So a lone
//! writer commits on its own thread with no hand-over, and under contention many writers
//! share one sync. The queue is bounded: callers wait for room (backpressure).
//!
//! Async callers hand their request over instead ([`Writer::submit_task`]): it joins the same
//! queue with a oneshot to complete, and the task awaits that. A task never leads (it must not
//! block a runtime thread on an fsync): when a task's request needs a leader, the writer's own
//! thread (the *task leader*, started by the database) leads until the queue is empty.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azoth_core::{AzothError, EventId, Key, Operation, OperationId, Result, Timestamp};
use parking_lot::{Condvar, Mutex};

/// One event a request wants logged; ids and the timestamp are given at commit.
#[derive(Debug, Clone)]
pub(crate) enum Draft {
    Write(Operation),
    App { kind: String, payload: Vec<u8> },
    Compaction { level: usize },
    Read { key: Key },
}

impl Draft {
    /// The bytes the caller gave (keys, values, kinds, payloads): what the draft's event
    /// adds to a log block, less a small encoding overhead.
    fn bytes(&self) -> usize {
        match self {
            Draft::Write(Operation::Put { key, value }) => key.len() + value.len(),
            Draft::Write(Operation::Delete { key }) | Draft::Read { key } => key.len(),
            Draft::App { kind, payload } => kind.len() + payload.len(),
            Draft::Compaction { .. } => 0,
        }
    }
}

/// What one caller asks to commit atomically: its drafts become consecutive events of one
/// block. A transaction's read set comes along; the committer validates it inside the group,
/// before the group's ids are given. The committer takes the drafts and leaves the outcome.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) drafts: Vec<Draft>,
    pub(crate) reads: Option<crate::transaction::ReadSet>,
    pub(crate) outcome: Option<Outcome>,
    /// The drafts' [`Draft::bytes`], summed when the request is made.
    bytes: usize,
}

impl Request {
    pub(crate) fn new(drafts: Vec<Draft>, reads: Option<crate::transaction::ReadSet>) -> Self {
        let bytes = drafts
            .iter()
            .fold(0usize, |sum, d| sum.saturating_add(d.bytes()));
        Self {
            drafts,
            reads,
            outcome: None,
            bytes,
        }
    }

    /// The outcome the committer left, or an error saying it left none.
    fn take_outcome(&mut self) -> Outcome {
        self.outcome.take().unwrap_or_else(|| {
            Err(AzothError::Config(
                "the commit group left a request without an outcome".into(),
            ))
        })
    }
}

/// The ids a request's events were given: consecutive sequences under one commit timestamp
/// (a request is one block). Carried as a range, so that acknowledging a write allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub(crate) timestamp: Timestamp,
    pub(crate) first: EventId,
    pub(crate) count: u64,
}

impl Ids {
    /// The id of the request's first event; `None` for a request of no events.
    pub(crate) fn first(self) -> Option<OperationId> {
        (self.count > 0).then(|| OperationId::new(self.timestamp, self.first))
    }

    /// Every id, in order.
    pub(crate) fn to_vec(self) -> Vec<OperationId> {
        (self.first..self.first + self.count)
            .map(|sequence| OperationId::new(self.timestamp, sequence))
            .collect()
    }
}

/// The outcome of one request: the ids of its events.
pub(crate) type Outcome = Result<Ids>;

/// Commits a group of requests, leaving each its outcome. Must not panic.
pub(crate) trait GroupCommitter {
    fn commit_group(&self, group: &mut [Request]);
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

/// How a queued caller learns its outcome.
enum Notify {
    /// A blocking caller on its own thread; it may be asked to lead.
    Thread(Arc<Waiter>),
    /// An async caller awaiting the receiver; it never leads.
    Task(tokio::sync::oneshot::Sender<Outcome>),
}

impl Notify {
    fn done(self, outcome: Outcome) {
        match self {
            Notify::Thread(waiter) => waiter.set(WaitState::Done(outcome)),
            // A task that stopped awaiting has nobody to tell; its write stands.
            Notify::Task(tx) => drop(tx.send(outcome)),
        }
    }
}

struct Pending {
    request: Request,
    notify: Notify,
}

/// What [`Writer::submit_task`] did with a request.
pub(crate) enum Submitted {
    /// Queued: the receiver completes with the outcome.
    Queued(tokio::sync::oneshot::Receiver<Outcome>),
    /// The queue is full, or no task leader runs: the caller submits some other way (from
    /// the blocking pool).
    Full(Request),
    /// Refused (the writer is closed).
    Refused(AzothError),
}

struct Queue {
    pending: VecDeque<Pending>,
    leader_active: bool,
    closed: bool,
}

/// A group takes no more requests once they hold this many bytes ([`Draft::bytes`]), though
/// always the first. A group is one log block, and blocks have a size limit (4 GiB in the
/// file log): requests that each fit must not fail together for having been grouped. Far
/// above what a group needs to share its sync (a thousand 100-byte puts are 100 KB).
const GROUP_BYTES: usize = 64 << 20;

/// The bounded queue of write requests and its leadership.
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Signalled when the queue has room, and when the writer goes idle.
    changed: Condvar,
    group_cap: usize,
    /// [`GROUP_BYTES`], smaller in tests.
    group_bytes: usize,
    capacity: usize,
    groups: AtomicU64,
    requests: AtomicU64,
    /// Wakes the task leader (see the module doc); `None` until it starts and after it stops.
    task_leader: Mutex<Option<crossbeam_channel::Sender<()>>>,
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
            group_bytes: GROUP_BYTES,
            capacity: capacity.max(1),
            groups: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            task_leader: Mutex::new(None),
        }
    }

    /// Installs (or with `None` removes) the channel that wakes the task leader thread.
    pub(crate) fn set_task_leader(&self, wake: Option<crossbeam_channel::Sender<()>>) {
        *self.task_leader.lock() = wake;
    }

    /// Asks the task leader to lead; false if there is none.
    fn wake_task_leader(&self) -> bool {
        self.task_leader
            .lock()
            .as_ref()
            .is_some_and(|tx| tx.send(()).is_ok())
    }

    /// Queues `request` for an async caller without blocking: the returned receiver completes
    /// with its outcome. If no group is in progress the task leader is woken to lead.
    pub(crate) fn submit_task(&self, request: Request) -> Submitted {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Submitted::Refused(AzothError::Closed);
        }
        if queue.pending.len() >= self.capacity {
            return Submitted::Full(request);
        }
        if !queue.leader_active {
            if !self.wake_task_leader() {
                return Submitted::Full(request);
            }
            queue.leader_active = true;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        queue.pending.push_back(Pending {
            request,
            notify: Notify::Task(tx),
        });
        Submitted::Queued(rx)
    }

    /// The task leader's work once woken: commits groups until the queue is empty, then
    /// leaves the writer idle.
    pub(crate) fn lead_tasks(&self, committer: &dyn GroupCommitter) {
        while self.commit_next_group(committer, None).is_some() {}
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
            let mut request = request;
            committer.commit_group(std::slice::from_mut(&mut request));
            let outcome = request.take_outcome();
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.pass_leadership(committer);
            return outcome;
        }
        let waiter = Arc::new(Waiter {
            state: Mutex::new(WaitState::Waiting),
            wake: Condvar::new(),
        });
        queue.pending.push_back(Pending {
            request,
            notify: Notify::Thread(Arc::clone(&waiter)),
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
        loop {
            match self.commit_next_group(committer, Some(me)) {
                Some(Some(outcome)) => return outcome,
                Some(None) => {}
                None => {
                    return Err(AzothError::Config("the write queue lost a request".into()));
                }
            }
        }
    }

    /// Commits the next group. Returns `None` if the queue was empty (the leadership is then
    /// given up), else `Some` of `me`'s outcome if `me` was in the group (the leadership is
    /// then passed on), or `Some(None)` to go on leading.
    fn commit_next_group(
        &self,
        committer: &dyn GroupCommitter,
        me: Option<&Arc<Waiter>>,
    ) -> Option<Option<Outcome>> {
        let taken: Vec<Pending> = {
            let mut queue = self.queue.lock();
            let mut bytes = 0usize;
            let n = queue
                .pending
                .iter()
                .take(self.group_cap)
                .enumerate()
                .take_while(|(i, p)| {
                    bytes = bytes.saturating_add(p.request.bytes);
                    *i == 0 || bytes <= self.group_bytes
                })
                .count();
            if n == 0 {
                queue.leader_active = false;
                self.changed.notify_all();
                return None;
            }
            let taken = queue.pending.drain(..n).collect();
            self.changed.notify_all();
            taken
        };
        let n = taken.len();
        let (mut requests, notifies): (Vec<Request>, Vec<Notify>) =
            taken.into_iter().map(|p| (p.request, p.notify)).unzip();
        committer.commit_group(&mut requests);
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(n as u64, Ordering::Relaxed);
        let mut mine = None;
        for (request, notify) in requests.iter_mut().zip(notifies) {
            let outcome = request.take_outcome();
            match notify {
                Notify::Thread(waiter) if me.is_some_and(|me| Arc::ptr_eq(&waiter, me)) => {
                    mine = Some(outcome);
                }
                other => other.done(outcome),
            }
        }
        if mine.is_some() {
            self.pass_leadership(committer);
        }
        Some(mine)
    }

    /// Called by a thread leader done with its own request: hands the leadership to the
    /// first waiting caller (the task leader for a task), or leaves the writer idle.
    fn pass_leadership(&self, committer: &dyn GroupCommitter) {
        let mut queue = self.queue.lock();
        let lead_on = match queue.pending.front() {
            Some(Pending {
                notify: Notify::Thread(next),
                ..
            }) => {
                next.set(WaitState::Lead);
                false
            }
            Some(Pending {
                notify: Notify::Task(_),
                ..
            }) => !self.wake_task_leader(),
            None => {
                queue.leader_active = false;
                self.changed.notify_all();
                false
            }
        };
        drop(queue);
        if lead_on {
            // No task leader (it stopped): this thread, which may block, finishes the queue.
            self.lead_tasks(committer);
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
        fn commit_group(&self, group: &mut [Request]) {
            self.max_group
                .fetch_max(group.len() as u64, Ordering::Relaxed);
            std::thread::yield_now();
            give_ids(group, &self.next);
        }
    }

    /// Acknowledges every request of `group` with the next ids from `next`.
    fn give_ids(group: &mut [Request], next: &AtomicU64) {
        for r in group {
            let count = r.drafts.len() as u64;
            r.outcome = Some(Ok(Ids {
                timestamp: 0,
                first: next.fetch_add(count, Ordering::SeqCst),
                count,
            }));
        }
    }

    fn put() -> Request {
        Request::new(vec![Draft::Compaction { level: 0 }], None)
    }

    #[test]
    fn ids_are_consecutive_under_one_timestamp() {
        let ids = Ids {
            timestamp: 7,
            first: 10,
            count: 3,
        };
        assert_eq!(ids.first(), Some(OperationId::new(7, 10)));
        assert_eq!(
            ids.to_vec(),
            vec![
                OperationId::new(7, 10),
                OperationId::new(7, 11),
                OperationId::new(7, 12)
            ]
        );
        let none = Ids { count: 0, ..ids };
        assert_eq!(none.first(), None);
        assert!(none.to_vec().is_empty());
    }

    #[test]
    fn tasks_and_threads_share_the_queue_and_every_request_completes() {
        let writer = Arc::new(Writer::new(8, 16));
        let committer = Arc::new(Counter {
            next: AtomicU64::new(1),
            max_group: AtomicU64::new(0),
        });
        let (wake_tx, wake_rx) = crossbeam_channel::unbounded::<()>();
        writer.set_task_leader(Some(wake_tx));
        let leader = {
            let (writer, committer) = (Arc::clone(&writer), Arc::clone(&committer));
            std::thread::spawn(move || {
                while wake_rx.recv().is_ok() {
                    writer.lead_tasks(&*committer);
                }
            })
        };
        let ids = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (writer, committer, ids) = (&writer, &committer, &ids);
                s.spawn(move || {
                    for _ in 0..200 {
                        let got = if t % 2 == 0 {
                            writer.submit(put(), &**committer).unwrap()
                        } else {
                            match writer.submit_task(put()) {
                                Submitted::Queued(rx) => rx.blocking_recv().unwrap().unwrap(),
                                // Full: the async path's fallback is a blocking submit.
                                Submitted::Full(r) => writer.submit(r, &**committer).unwrap(),
                                Submitted::Refused(e) => panic!("refused: {e}"),
                            }
                        };
                        ids.lock().push(got.first);
                    }
                });
            }
        });
        let mut ids = ids.into_inner();
        ids.sort_unstable();
        assert_eq!(ids, (1..=1600).collect::<Vec<_>>());
        writer.close();
        assert!(matches!(writer.submit_task(put()), Submitted::Refused(_)));
        writer.set_task_leader(None);
        leader.join().unwrap();
    }

    #[test]
    fn a_group_stops_at_its_byte_budget_but_takes_at_least_one_request() {
        /// Records the most bytes a group held, and any group of several requests over
        /// the budget.
        struct Sizes {
            next: AtomicU64,
            most_bytes: AtomicU64,
            over_budget: AtomicU64,
        }
        impl GroupCommitter for Sizes {
            fn commit_group(&self, group: &mut [Request]) {
                let bytes = group.iter().map(|r| r.bytes).sum::<usize>() as u64;
                self.most_bytes.fetch_max(bytes, Ordering::Relaxed);
                if group.len() > 1 && bytes > 250 {
                    self.over_budget.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::yield_now();
                give_ids(group, &self.next);
            }
        }
        let mut writer = Writer::new(64, 64);
        writer.group_bytes = 250;
        let committer = Sizes {
            next: AtomicU64::new(1),
            most_bytes: AtomicU64::new(0),
            over_budget: AtomicU64::new(0),
        };
        let put = |value_len: usize| {
            Request::new(
                vec![Draft::Write(Operation::Put {
                    key: b"key".to_vec(),
                    value: vec![0; value_len],
                })],
                None,
            )
        };
        std::thread::scope(|s| {
            for t in 0..8 {
                let (writer, committer) = (&writer, &committer);
                s.spawn(move || {
                    for _ in 0..100 {
                        // One thread's requests are over the budget on their own.
                        let len = if t == 0 { 400 } else { 97 };
                        writer.submit(put(len), committer).unwrap();
                    }
                });
            }
        });
        assert_eq!(committer.over_budget.load(Ordering::Relaxed), 0);
        // The requests over the budget were committed, each in a group of its own.
        assert_eq!(committer.most_bytes.load(Ordering::Relaxed), 403);
        assert_eq!(writer.counts().1, 800);
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
                        assert_eq!(got.count, 1);
                        ids.lock().push(got.first);
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
