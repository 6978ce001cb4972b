//! A client's replies on their way out. Queuing one never blocks whoever answers (a wake-up
//! comes from another client's request), and the queue is counted, so that the client's own
//! requests are read only while the replies it has not taken stay small: a client that does
//! not read holds its backlog and no more.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};

/// Where replies are queued; clones share the queue.
#[derive(Clone)]
pub struct Outbox {
    sender: mpsc::UnboundedSender<Vec<u8>>,
    queue: Arc<Queue>,
}

/// The writer of an [`Outbox`]'s replies to the client.
pub struct Delivery {
    receiver: mpsc::UnboundedReceiver<Vec<u8>>,
    queue: Arc<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Bytes queued and not yet written.
    bytes: AtomicUsize,
    /// Set when a write failed: the client is gone.
    broken: AtomicBool,
    /// Notified at each write and at the end.
    changed: Notify,
}

/// A new outbox and the delivery that empties it.
pub fn outbox() -> (Outbox, Delivery) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let queue = Arc::new(Queue::default());
    let outbox = Outbox {
        sender,
        queue: queue.clone(),
    };
    (outbox, Delivery { receiver, queue })
}

impl Outbox {
    /// Queues `reply`.
    pub fn send(&self, reply: Vec<u8>) {
        let len = reply.len();
        if self.sender.send(reply).is_ok() {
            self.queue.bytes.fetch_add(len, Ordering::SeqCst);
        }
    }

    /// Returns once at most `backlog` bytes wait to be written: `true`, or `false` if the
    /// client is gone.
    pub async fn drained_to(&self, backlog: usize) -> bool {
        loop {
            // Registered before the check, so that a write between the two still wakes it.
            let changed = self.queue.changed.notified();
            if self.queue.broken.load(Ordering::SeqCst) {
                return false;
            }
            if self.queue.bytes.load(Ordering::SeqCst) <= backlog {
                return true;
            }
            changed.await;
        }
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.bytes.load(Ordering::SeqCst)
    }
}

impl Delivery {
    /// Writes the replies in order until every [`Outbox`] is dropped and the queue is empty, or
    /// the client stops taking them.
    pub async fn run(mut self, mut write: OwnedWriteHalf) {
        while let Some(reply) = self.receiver.recv().await {
            if write.write_all(&reply).await.is_err() {
                break;
            }
            self.queue.bytes.fetch_sub(reply.len(), Ordering::SeqCst);
            self.queue.changed.notify_waiters();
        }
        self.queue.broken.store(true, Ordering::SeqCst);
        self.queue.changed.notify_waiters();
    }
}
