//! What the router sends one connection: a queue behind a lock, with the waker of the task
//! that reads it. A channel would do, but tokio's allocates a block of 32 slots per channel
//! up front, about 2.5 KiB for each idle connection; an empty `VecDeque` allocates nothing.

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
pub struct MailboxSink(Arc<Mailbox>);

impl Mailbox {
    /// A mailbox and the sink that fills it.
    pub fn new() -> (Arc<Self>, MailboxSink) {
        let mailbox = Arc::new(Self::default());
        (mailbox.clone(), MailboxSink(mailbox))
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

    fn push(&self, cmd: Option<ConnCommand>) {
        let waker = {
            let mut inner = self.lock();
            match cmd {
                Some(cmd) => inner.queue.push_back(cmd),
                None => inner.closed = true,
            }
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl ConnSink for MailboxSink {
    fn write(&self, bytes: Bytes, payload: Bytes) {
        self.0.push(Some(ConnCommand::Write { bytes, payload }));
    }

    fn close(&self) {
        self.0.push(Some(ConnCommand::Close));
    }
}

impl Drop for MailboxSink {
    fn drop(&mut self) {
        self.0.push(None);
    }
}
