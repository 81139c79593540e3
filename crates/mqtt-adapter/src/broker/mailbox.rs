//! What the router sends one connection: a queue behind a lock, with the waker of the task
//! that reads it. A channel would do, but tokio's allocates a block of 32 slots per channel
//! up front, about 2.5 KiB for each idle connection; an empty `VecDeque` allocates nothing.
//!
//! The router's writes wake no task at once: the wakers wait in [`Wakes`] until the router
//! has drained the broker, and are then woken in an order the adapter picks for its
//! executor, so that the first connection written to (a delivery, before the PUBACK of the
//! PUBLISH it came from) is the first to write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::{ConnCommand, ConnSink};

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<ConnCommand>,
    waker: Option<Waker>,
    /// The router dropped its end.
    closed: bool,
}

/// The connection's end: [`Mailbox::poll_recv`] from its task.
#[derive(Debug, Default)]
pub struct Mailbox {
    inner: Mutex<Inner>,
}

/// The router's end, a [`ConnSink`]; dropping it closes the mailbox.
#[derive(Debug)]
pub struct MailboxSink {
    mailbox: Arc<Mailbox>,
    wakes: Wakes,
}

/// The wake-ups of connection tasks that the router's writes made, held until the router
/// has drained the broker; shared by the router and every [`MailboxSink`].
#[derive(Debug, Clone, Default)]
pub struct Wakes(Arc<Mutex<Vec<Waker>>>);

impl Wakes {
    /// Wakes every held task, the last held first. Under tokio's LIFO slot the task woken
    /// last runs first: so the first held runs first, and the others after it.
    pub fn wake_last_first(&self) {
        for waker in self.held().drain(..).rev() {
            waker.wake();
        }
    }

    /// Wakes every held task in the order held: for executors that run woken tasks in the
    /// order they were woken (smol's).
    pub fn wake_in_order(&self) {
        for waker in self.held().drain(..) {
            waker.wake();
        }
    }

    /// The held wakers, locked. They are woken under the lock, so that the list keeps its
    /// allocation from one router turn to the next; only the router's own sinks take it, and
    /// a wake-up only schedules a task, which never reaches back for it.
    fn held(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold(&self, waker: Waker) {
        self.held().push(waker);
    }
}

impl Mailbox {
    /// A mailbox and the sink that fills it; the sink's wake-ups wait in `wakes`.
    pub fn new(wakes: &Wakes) -> (Arc<Self>, MailboxSink) {
        let mailbox = Arc::new(Self::default());
        let sink = MailboxSink {
            mailbox: mailbox.clone(),
            wakes: wakes.clone(),
        };
        (mailbox, sink)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; if something did, the queue is still whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next command; `None` once the router dropped the sink and the queue is empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<ConnCommand>> {
        let mut inner = self.lock();
        match inner.queue.pop_front() {
            Some(cmd) => {
                // A burst grew the queue: give the memory back once it has drained.
                if inner.queue.is_empty() && inner.queue.capacity() > 64 {
                    inner.queue = VecDeque::new();
                }
                Poll::Ready(Some(cmd))
            }
            None if inner.closed => Poll::Ready(None),
            None => {
                if !inner
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    inner.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// The next command if one is queued.
    pub fn try_recv(&self) -> Option<ConnCommand> {
        self.lock().queue.pop_front()
    }

    /// Waits for the next command (cancel safe: a command is taken only by the poll that
    /// returns it).
    pub async fn recv(&self) -> Option<ConnCommand> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues `cmd` (`None`: closes); returns the task's waker if it waits for one.
    fn push(&self, cmd: Option<ConnCommand>) -> Option<Waker> {
        let mut inner = self.lock();
        match cmd {
            Some(cmd) => inner.queue.push_back(cmd),
            None => inner.closed = true,
        }
        inner.waker.take()
    }
}

impl MailboxSink {
    fn send(&self, cmd: ConnCommand) {
        if let Some(waker) = self.mailbox.push(Some(cmd)) {
            self.wakes.hold(waker);
        }
    }
}

impl ConnSink for MailboxSink {
    fn write(&self, bytes: Bytes, payload: Bytes) {
        self.send(ConnCommand::Write { bytes, payload });
    }

    fn close(&self) {
        self.send(ConnCommand::Close);
    }
}

impl Drop for MailboxSink {
    /// Wakes the task at once: a sink may go where no router turn follows to wake it.
    fn drop(&mut self) {
        if let Some(waker) = self.mailbox.push(None) {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    /// A waker that writes its number down when woken.
    struct Note(usize, Arc<Mutex<Vec<usize>>>);

    impl Wake for Note {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    /// Three mailboxes, each with a task waiting on it; the log of wake-ups.
    fn waiting(wakes: &Wakes) -> (Vec<MailboxSink>, Arc<Mutex<Vec<usize>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sinks = (1..=3)
            .map(|i| {
                let (mailbox, sink) = Mailbox::new(wakes);
                let waker = Waker::from(Arc::new(Note(i, log.clone())));
                let pending = mailbox.poll_recv(&mut Context::from_waker(&waker));
                assert!(pending.is_pending());
                sink
            })
            .collect();
        (sinks, log)
    }

    #[test]
    fn writes_wake_nobody_until_the_router_wakes_them_in_the_order_it_picks() {
        let wakes = Wakes::default();
        let (sinks, log) = waiting(&wakes);
        for i in [1, 0, 2, 1] {
            sinks[i].write(Bytes::from_static(b"x"), Bytes::new());
        }
        assert!(log.lock().unwrap().is_empty());
        wakes.wake_last_first();
        assert_eq!(*log.lock().unwrap(), [3, 1, 2]);

        let (sinks, log) = waiting(&wakes);
        for i in [1, 0, 2] {
            sinks[i].write(Bytes::from_static(b"x"), Bytes::new());
        }
        wakes.wake_in_order();
        assert_eq!(*log.lock().unwrap(), [2, 1, 3]);
    }

    #[test]
    fn a_dropped_sink_wakes_its_task_at_once() {
        let wakes = Wakes::default();
        let (mut sinks, log) = waiting(&wakes);
        drop(sinks.remove(1));
        assert_eq!(*log.lock().unwrap(), [2]);
    }
}
