//! How many connections the store holds, and which have not yet shown that they are clients
//! (the magic number, and proof of the secret where it asks for one). Those are the first let
//! go when the store runs short of room or of file descriptors: a flood of idle connections
//! then costs the ranks nothing, where it used to stop the store for good.

use super::state::ClientId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// The connections held, at most a fixed number, and those still in their handshake.
pub struct Connections {
    room: Arc<Semaphore>,
    /// In order of arrival: whom to let go first.
    unproven: Mutex<BTreeMap<ClientId, oneshot::Sender<()>>>,
}

/// One connection's place: held until dropped, and in the handshake until admitted.
pub struct Admission {
    id: ClientId,
    connections: Arc<Connections>,
    let_go: oneshot::Receiver<()>,
    _room: OwnedSemaphorePermit,
}

impl Connections {
    /// Room for `max` connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections {
            room: Arc::new(Semaphore::new(max)),
            unproven: Mutex::default(),
        })
    }

    /// Waits for room for one more connection. When none is left, the oldest connection still
    /// in its handshake is let go to make some.
    pub async fn room(&self) -> OwnedSemaphorePermit {
        if let Ok(room) = self.room.clone().try_acquire_owned() {
            return room;
        }
        self.let_go_oldest_unproven();
        self.room
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Enters the connection `id` into its handshake, in the `room` made for it.
    pub fn admit(self: &Arc<Self>, id: ClientId, room: OwnedSemaphorePermit) -> Admission {
        let (tell, let_go) = oneshot::channel();
        self.unproven.lock().unwrap().insert(id, tell);
        Admission {
            id,
            connections: self.clone(),
            let_go,
            _room: room,
        }
    }

    /// Ends the handshake of the connection that has waited longest in it; `false` if none
    /// is in one.
    pub fn let_go_oldest_unproven(&self) -> bool {
        let oldest = self.unproven.lock().unwrap().pop_first();
        oldest.is_some_and(|(_, tell)| tell.send(()).is_ok())
    }
}

impl Admission {
    /// Resolves when the store lets this connection go before its handshake is over.
    pub async fn let_go(&mut self) {
        // A dropped sender (the connection proved itself meanwhile) never resolves this.
        if (&mut self.let_go).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The handshake is over: the connection is a client and is no longer let go.
    pub fn proven(&self) {
        self.connections.unproven.lock().unwrap().remove(&self.id);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.proven();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_capacity_the_oldest_connection_in_its_handshake_is_let_go_for_a_new_one() {
        let connections = Connections::new(2);
        let mut first = connections.admit(1, connections.room().await);
        let second = connections.admit(2, connections.room().await);
        second.proven();

        let third = tokio::spawn({
            let connections = connections.clone();
            async move { connections.room().await }
        });
        // The first, still in its handshake, is let go; ending it makes the room.
        first.let_go().await;
        drop(first);
        let _third = connections.admit(3, third.await.unwrap());
        // The third goes next; the second proved itself and is never let go.
        assert!(connections.let_go_oldest_unproven());
        assert!(!connections.let_go_oldest_unproven());
    }
}
