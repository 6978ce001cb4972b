//! A blocking client of a PyTorch TCPStore: torchrun's agent store, our launcher's, or rank 0's.
//! To PyTorch's store it sends exactly what PyTorch's client sends; to ours that asks for the
//! job's secret, it proves it first.

use super::wire::{
    CheckReply, Command, Message, WaitReply, AUTH_ACCEPTED, AUTH_PURPOSE, MAGIC, MAX_KEYS,
    MAX_KEY_LEN, MAX_VALUE_LEN,
};
use crate::distributed::auth::{self, Exchange, Secret, Side, CHALLENGE_LEN, PROOF_LEN};
use crate::distributed::error::{DistributedError::Rendezvous, Explain, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connection to a store. Keys are given without PyTorch's leading `/`, which the client
/// adds as PyTorch's does, so a key reads the same from either.
pub struct StoreClient {
    stream: TcpStream,
    peer: SocketAddr,
}

impl StoreClient {
    /// Connects to the store at `host:port`, retrying until `timeout` (the server may start
    /// after its clients), and checks that it is a TCPStore; with a `secret`, that it is ours
    /// and knows the secret, and proves that this client does too.
    pub fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        secret: Option<&Secret>,
    ) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let peer = super::address::store_address(host, port)?;
        let stream = loop {
            match TcpStream::connect_timeout(&peer, Duration::from_secs(1)) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => {
                    return Err(Rendezvous(
                        format!(
                            "cannot reach the rendezvous store at {peer} (MASTER_ADDR:MASTER_PORT) \
                             within {timeout:?}: {e}"
                        ),
                        None,
                    ))
                }
            }
        };
        stream.set_nodelay(true)?;
        let mut client = StoreClient { stream, peer };
        client
            .stream
            .set_read_timeout(Some(at_least_1ms(timeout)))?;
        client.handshake(secret)?;
        client.stream.set_read_timeout(None)?;
        Ok(client)
    }

    /// `VALIDATE` with the magic number, the proof of `secret` if there is one, then `PING`:
    /// a server that does not echo the nonce is not a TCPStore (or not one we can talk to).
    fn handshake(&mut self, secret: Option<&Secret>) -> Result<()> {
        let mut hello = Message::request(Command::Validate).u32(MAGIC);
        if let Some(secret) = secret {
            self.authenticate(hello, secret)?;
            hello = Message::default();
        }
        let nonce = std::process::id();
        self.send(hello.byte(Command::Ping as u8).u32(nonce))?;
        let mut echo = [0u8; 4];
        self.stream.read_exact(&mut echo).explain(Rendezvous, || {
            format!(
                "{} did not answer as a PyTorch TCPStore (a store of ours that asks for \
                 CORNET_JOB_SECRET closes connections that do not prove it)",
                self.peer
            )
        })?;
        if u32::from_le_bytes(echo) != nonce {
            return Err(Rendezvous(
                format!(
                    "{} answered the handshake wrongly: not a PyTorch TCPStore",
                    self.peer
                ),
                None,
            ));
        }
        Ok(())
    }

    /// `AUTHENTICATE` after `hello`: this client's challenge; the store's challenge and proof,
    /// checked; this client's proof; the store's acceptance.
    fn authenticate(&mut self, hello: Message, secret: &Secret) -> Result<()> {
        let peer = self.peer;
        let challenge = auth::challenge()?;
        self.send(hello.byte(Command::Authenticate as u8).raw(&challenge))?;
        let mut answer = [0u8; CHALLENGE_LEN + PROOF_LEN];
        self.stream
            .read_exact(&mut answer)
            .explain(Rendezvous, || {
                format!(
                    "the rendezvous store at {peer} closed the connection when offered proof of \
                 CORNET_JOB_SECRET: it was started without it (torchrun's store never asks)"
                )
            })?;
        let (acceptor, proof) = answer.split_at(CHALLENGE_LEN);
        let acceptor = acceptor
            .try_into()
            .expect("split at the challenge's length");
        let exchange = Exchange::new(secret, AUTH_PURPOSE, challenge, acceptor);
        if !exchange.verify(Side::Acceptor, proof) {
            return Err(Rendezvous(
                format!(
                    "the rendezvous store at {peer} could not prove it knows CORNET_JOB_SECRET: \
                     it is another job's, or the secrets differ"
                ),
                None,
            ));
        }
        self.send(Message(exchange.proof(Side::Connector).to_vec()))?;
        match self.read_u8() {
            Ok(AUTH_ACCEPTED) => Ok(()),
            _ => Err(Rendezvous(
                format!("the rendezvous store at {peer} refused this client's proof of CORNET_JOB_SECRET"),
                None,
            )),
        }
    }

    /// The address this end connects from: the interface that reaches the store.
    pub fn local_ip(&self) -> Result<IpAddr> {
        Ok(self.stream.local_addr()?.ip())
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.send(
            Message::request(Command::Set)
                .bytes(&slashed(key)?)
                .bytes(within_limit(key, value)?),
        )
    }

    /// The value of `key` once it exists, or `None` if it does not within `timeout`.
    pub fn get(&mut self, key: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
        if !self.wait(&[key], timeout)? {
            return Ok(None);
        }
        self.send(Message::request(Command::Get).bytes(&slashed(key)?))?;
        self.read_bytes().map(Some)
    }

    /// Adds `delta` to the integer held at `key` (0 if unset) and returns the sum.
    pub fn add(&mut self, key: &str, delta: i64) -> Result<i64> {
        self.send(
            Message::request(Command::Add)
                .bytes(&slashed(key)?)
                .i64(delta),
        )?;
        self.read_i64()
    }

    /// Whether every key exists now.
    pub fn check(&mut self, keys: &[&str]) -> Result<bool> {
        self.send(Message::request(Command::Check).list(&slash_all(keys)?))?;
        Ok(self.read_u8()? == CheckReply::Ready as u8)
    }

    /// Sets `key` to `desired` if it holds `expected` (or is unset and `expected` is empty);
    /// returns the value it holds afterwards.
    pub fn compare_set(&mut self, key: &str, expected: &[u8], desired: &[u8]) -> Result<Vec<u8>> {
        let request = Message::request(Command::CompareSet)
            .bytes(&slashed(key)?)
            .bytes(within_limit(key, expected)?)
            .bytes(within_limit(key, desired)?);
        self.send(request)?;
        self.read_bytes()
    }

    /// The values of `keys` once all exist, or `None` if they do not within `timeout`.
    pub fn multi_get(&mut self, keys: &[&str], timeout: Duration) -> Result<Option<Vec<Vec<u8>>>> {
        if !self.wait(keys, timeout)? {
            return Ok(None);
        }
        self.send(Message::request(Command::MultiGet).list(&slash_all(keys)?))?;
        keys.iter()
            .map(|_| self.read_bytes())
            .collect::<Result<_>>()
            .map(Some)
    }

    /// Sets each key to its value.
    pub fn multi_set(&mut self, pairs: &[(&str, &[u8])]) -> Result<()> {
        let mut request = Message::request(Command::MultiSet).count(pairs.len());
        for (key, value) in pairs {
            request = request
                .bytes(&slashed(key)?)
                .bytes(within_limit(key, value)?);
        }
        self.send(request)
    }

    /// How many keys the store holds (all clients', PyTorch's own among them).
    pub fn num_keys(&mut self) -> Result<i64> {
        self.send(Message::request(Command::NumKeys))?;
        self.read_i64()
    }

    /// Deletes `key`; whether it existed.
    pub fn delete_key(&mut self, key: &str) -> Result<bool> {
        self.send(Message::request(Command::DeleteKey).bytes(&slashed(key)?))?;
        Ok(self.read_i64()? == 1)
    }

    /// Appends `value` to the value of `key` (sets it if unset).
    pub fn append(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.send(
            Message::request(Command::Append)
                .bytes(&slashed(key)?)
                .bytes(within_limit(key, value)?),
        )
    }

    /// Waits until every key exists; `false` if they do not within `timeout`. On a timeout
    /// the wait is cancelled on the server, and a wake-up that crossed the cancel still counts.
    pub fn wait(&mut self, keys: &[&str], timeout: Duration) -> Result<bool> {
        self.send(Message::request(Command::Wait).list(&slash_all(keys)?))?;
        self.stream.set_read_timeout(Some(at_least_1ms(timeout)))?;
        let reply = self.read_u8();
        self.stream.set_read_timeout(None)?;
        match reply {
            Ok(byte) if byte == WaitReply::StopWaiting as u8 => Ok(true),
            Ok(byte) => Err(self.unexpected(format!("reply {byte} to WAIT"))),
            Err(e) if is_timeout(&e) => self.cancel_wait(),
            Err(e) => Err(e),
        }
    }

    /// Cancels a wait that timed out; `true` if the keys arrived before the cancel did.
    fn cancel_wait(&mut self) -> Result<bool> {
        self.send(Message::request(Command::CancelWait))?;
        let mut arrived = false;
        loop {
            match self.read_u8()? {
                b if b == WaitReply::StopWaiting as u8 => arrived = true,
                b if b == WaitReply::WaitCanceled as u8 => return Ok(arrived),
                b => return Err(self.unexpected(format!("reply {b} to CANCEL_WAIT"))),
            }
        }
    }

    fn send(&mut self, message: Message) -> Result<()> {
        let peer = self.peer;
        self.stream.write_all(&message.0).explain(Rendezvous, || {
            format!("the rendezvous store at {peer} closed the connection")
        })
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.stream.read_exact(buf).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                let peer = self.peer;
                Rendezvous(
                    format!("the rendezvous store at {peer} closed the connection"),
                    None,
                )
            } else {
                e.into()
            }
        })
    }

    fn read_u8(&mut self) -> Result<u8> {
        let mut byte = [0u8];
        self.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    fn read_i64(&mut self) -> Result<i64> {
        let mut word = [0u8; 8];
        self.read_exact(&mut word)?;
        Ok(i64::from_le_bytes(word))
    }

    fn read_bytes(&mut self) -> Result<Vec<u8>> {
        let len = self.read_i64()? as u64;
        if len > MAX_VALUE_LEN {
            return Err(self.unexpected(format!("a {len}-byte value")));
        }
        let mut bytes = vec![0u8; len as usize];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    fn unexpected(&self, what: String) -> crate::distributed::DistributedError {
        Rendezvous(
            format!("the rendezvous store at {} sent {what}", self.peer),
            None,
        )
    }
}

/// `key` as sent: PyTorch's client prefixes every key with `/`. A key longer than the store
/// takes is refused here, naming it.
fn slashed(key: &str) -> Result<Vec<u8>> {
    let slashed = format!("/{key}").into_bytes();
    at_most(slashed.len(), MAX_KEY_LEN, || {
        format!("the store key {key:?}, in bytes,")
    })?;
    Ok(slashed)
}

fn slash_all(keys: &[&str]) -> Result<Vec<Vec<u8>>> {
    at_most(keys.len(), MAX_KEYS, || {
        "the number of store keys in one request".into()
    })?;
    keys.iter().map(|k| slashed(k)).collect()
}

/// `value`, unless it is longer than the store takes.
fn within_limit<'v>(key: &str, value: &'v [u8]) -> Result<&'v [u8]> {
    at_most(value.len(), MAX_VALUE_LEN, || {
        format!("the value of the store key {key:?}, in bytes,")
    })?;
    Ok(value)
}

/// Refuses a `len` over the store's `limit`, saying `what` it measures.
fn at_most(len: usize, limit: u64, what: impl FnOnce() -> String) -> Result<()> {
    if len as u64 > limit {
        return Err(Rendezvous(
            format!("{} is {len}, over the store's limit of {limit}", what()),
            None,
        ));
    }
    Ok(())
}

/// A zero read timeout means "none" to the OS; the shortest real one is meant instead.
fn at_least_1ms(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

/// Whether a read failed by waiting past its timeout.
fn is_timeout(err: &crate::distributed::DistributedError) -> bool {
    matches!(err, crate::distributed::DistributedError::Io(e) if matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ))
}
