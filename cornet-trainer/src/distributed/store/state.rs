//! What the store holds: the values, who waits for which keys, and where each client's replies
//! go; with the semantics of PyTorch's libuv backend (`TCPStoreLibUvBackend.cpp`). What it
//! holds is bounded ([`MAX_STORED_BYTES`]), so that no client can fill the memory of the
//! process that serves it.

use super::outbox::Outbox;
use super::wire::{WaitReply, MAX_VALUE_LEN};
use std::collections::HashMap;

/// Identifies a connection for as long as it is open.
pub type ClientId = u64;

/// The most bytes of keys and values the store holds: a job's start-up needs kilobytes.
pub const MAX_STORED_BYTES: usize = 64 << 20;

/// Why a request was refused; the connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The map, and who waits for which keys.
#[derive(Default)]
pub struct Store {
    values: HashMap<Vec<u8>, Vec<u8>>,
    /// Bytes of the keys and values in `values`.
    stored: usize,
    /// Key to the clients waiting for it.
    waiters: HashMap<Vec<u8>, Vec<ClientId>>,
    /// Client to the number of its keys still missing.
    missing: HashMap<ClientId, usize>,
    /// Where each client's replies go.
    outboxes: HashMap<ClientId, Outbox>,
}

impl Store {
    /// Takes replies for `client` from now on.
    pub fn connect(&mut self, client: ClientId, outbox: Outbox) {
        self.outboxes.insert(client, outbox);
    }

    /// Forgets `client`: its wait, and its outbox.
    pub fn disconnect(&mut self, client: ClientId) {
        self.forget_wait(client);
        self.outboxes.remove(&client);
    }

    /// The value at `key`; an unset key reads as empty, as in PyTorch (its clients wait
    /// first).
    pub fn get(&self, key: &[u8]) -> &[u8] {
        self.values.get(key).map_or(&[][..], |v| v.as_slice())
    }

    /// How many keys are set.
    pub fn num_keys(&self) -> usize {
        self.values.len()
    }

    /// Sets `key` to `value`; the clients waiting for it are told.
    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Refused> {
        self.put(key.clone(), value)?;
        self.wake(&key);
        Ok(())
    }

    /// PyTorch's compare-and-set, including its answer for an unset key with a non-empty
    /// `expected`: `expected` itself.
    pub fn compare_set(
        &mut self,
        key: Vec<u8>,
        expected: Vec<u8>,
        desired: Vec<u8>,
    ) -> Result<Vec<u8>, Refused> {
        let now = match self.values.get(&key) {
            None if expected.is_empty() => desired,
            None => return Ok(expected),
            Some(held) if *held == expected => desired,
            Some(held) => return Ok(held.clone()),
        };
        self.set(key, now.clone())?;
        Ok(now)
    }

    /// Adds to the decimal integer held at `key`; `None` if what it holds is not one.
    pub fn add(&mut self, key: Vec<u8>, delta: i64) -> Result<Option<i64>, Refused> {
        let held = match self.values.get(&key) {
            Some(text) => match std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                Some(number) => number,
                None => return Ok(None),
            },
            None => 0i64,
        };
        let Some(sum) = held.checked_add(delta) else {
            return Ok(None);
        };
        self.set(key, sum.to_string().into_bytes())?;
        Ok(Some(sum))
    }

    /// Appends `value` to what `key` holds (nothing, if unset), within [`MAX_VALUE_LEN`].
    pub fn append(&mut self, key: Vec<u8>, value: &[u8]) -> Result<(), Refused> {
        let mut whole = self.get(&key).to_vec();
        whole.extend_from_slice(value);
        if whole.len() as u64 > MAX_VALUE_LEN {
            return Err(Refused(format!(
                "an append that makes a value of {} bytes, over the limit of {MAX_VALUE_LEN}",
                whole.len()
            )));
        }
        self.set(key, whole)
    }

    /// Deletes `key`; whether it was set.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let Some(value) = self.values.remove(key) else {
            return false;
        };
        self.stored -= key.len() + value.len();
        true
    }

    /// Whether every key is set.
    pub fn all_present(&self, keys: &[Vec<u8>]) -> bool {
        keys.iter().all(|k| self.values.contains_key(k))
    }

    /// Registers `client` as waiting for the keys not yet set; `true` if none is missing.
    pub fn wait(&mut self, client: ClientId, keys: Vec<Vec<u8>>) -> bool {
        if self.all_present(&keys) {
            return true;
        }
        let mut missing = 0;
        for key in keys {
            if !self.values.contains_key(&key) {
                self.waiters.entry(key).or_default().push(client);
                missing += 1;
            }
        }
        self.missing.insert(client, missing);
        false
    }

    /// Ends `client`'s wait, if it has one.
    pub fn forget_wait(&mut self, client: ClientId) {
        if self.missing.remove(&client).is_some() {
            self.waiters.retain(|_, clients| {
                clients.retain(|&c| c != client);
                !clients.is_empty()
            });
        }
    }

    /// Queues `bytes` for `client`, if it is still connected.
    pub fn reply(&self, client: ClientId, bytes: Vec<u8>) {
        if let Some(outbox) = self.outboxes.get(&client) {
            outbox.send(bytes);
        }
    }

    /// Bytes of replies queued for clients that have not read them yet.
    #[cfg(test)]
    pub fn queued_reply_bytes(&self) -> usize {
        self.outboxes.values().map(Outbox::queued).sum()
    }

    /// Sets `key` to `value` within [`MAX_STORED_BYTES`].
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Refused> {
        let old = self.values.get(&key).map_or(0, |v| key.len() + v.len());
        let new = key.len() + value.len();
        let stored = self.stored - old + new;
        if new > old && stored > MAX_STORED_BYTES {
            return Err(Refused(format!(
                "a value that would make the store hold {stored} bytes, over its limit of \
                 {MAX_STORED_BYTES}"
            )));
        }
        self.stored = stored;
        self.values.insert(key, value);
        Ok(())
    }

    /// Counts `key` as arrived for each client waiting for it; those with nothing left
    /// missing are told to stop waiting.
    fn wake(&mut self, key: &[u8]) {
        let Some(clients) = self.waiters.remove(key) else {
            return;
        };
        for client in clients {
            let Some(missing) = self.missing.get_mut(&client) else {
                continue;
            };
            *missing -= 1;
            if *missing == 0 {
                self.missing.remove(&client);
                self.reply(client, vec![WaitReply::StopWaiting as u8]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_store_holds_is_bounded_and_counted_back_on_delete() {
        let mut store = Store::default();
        let big = vec![0u8; MAX_VALUE_LEN as usize];
        let mut keys = 0;
        let refused = loop {
            match store.set(format!("k{keys}").into_bytes(), big.clone()) {
                Ok(()) => keys += 1,
                Err(refused) => break refused,
            }
        };
        assert_eq!(keys, MAX_STORED_BYTES / big.len() - 1, "{refused:?}");
        assert!(refused.0.contains("over its limit"), "{refused:?}");
        // Replacing a value by a shorter one, and deleting, make room again.
        store.set(b"k0".to_vec(), Vec::new()).unwrap();
        assert!(store.delete(b"k1"));
        store.set(b"new".to_vec(), big.clone()).unwrap();
        store.set(b"newer".to_vec(), big[..1000].to_vec()).unwrap();
        assert!(
            store.append(b"new".to_vec(), b"x").is_err(),
            "over the value limit"
        );
    }
}
