//! One client of the store: its handshake (the magic number, then proof of the job's secret
//! where the store asks for one), then its requests in order. Each request is read within the
//! wire's limits (a key, a value, a whole request), and only while the replies the client has
//! not taken stay under [`REPLY_BACKLOG`]: what a connection holds is bounded, and released
//! when it goes.

use super::admission::Admission;
use super::outbox::{outbox, Outbox};
use super::state::{ClientId, Refused, Store};
use super::wire::{
    CheckReply, Command, Message, WaitReply, AUTH_ACCEPTED, AUTH_PURPOSE, MAGIC, MAX_KEYS,
    MAX_KEY_LEN, MAX_MESSAGE_LEN, MAX_VALUE_LEN,
};
use crate::distributed::auth::{self, Exchange, Secret, Side, CHALLENGE_LEN, PROOF_LEN};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Reply bytes a client may leave unread before its next request waits: a few of the
/// largest replies.
pub const REPLY_BACKLOG: usize = 1 << 20;

/// How long a client may take to read its last replies once it has sent all it will.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// What every session of a server shares.
pub struct Shared {
    pub store: Mutex<Store>,
    /// The secret clients must prove, if the store asks for one.
    pub secret: Option<Secret>,
    /// How long a connection may take to become a client.
    pub handshake_timeout: Duration,
    pub warnings: super::warnings::Warnings,
}

/// Why a connection ended.
enum Ended {
    /// The client left, sent something malformed or a command the store does not serve.
    Closed,
    /// The client is not a TCPStore client of this store (no magic number, no proof, too slow,
    /// or let go to make room); said at most once, in [`Shared::warnings`].
    NotAClient(&'static str, String),
    /// The client asked for more than the store allows.
    Refused(Refused),
}

impl From<std::io::Error> for Ended {
    fn from(_: std::io::Error) -> Self {
        Ended::Closed
    }
}

impl From<Refused> for Ended {
    fn from(refused: Refused) -> Self {
        Ended::Refused(refused)
    }
}

/// Serves the connection `socket` from `peer` until it ends.
pub async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    id: ClientId,
    mut admission: Admission,
    shared: &Shared,
) {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let mut reader = Reader::new(read);
    let handshake = tokio::time::timeout(
        shared.handshake_timeout,
        handshake(&mut reader, &mut write, shared.secret.as_ref()),
    );
    let proven = tokio::select! {
        proven = handshake => proven.unwrap_or_else(|_| Err(Ended::NotAClient(
            "handshake timeout",
            format!("did not complete its handshake within {:?}", shared.handshake_timeout),
        ))),
        () = admission.let_go() => Err(Ended::NotAClient(
            "let go",
            "was let go before its handshake ended, to make room for others".into(),
        )),
    };
    let ended = match proven {
        Ok(()) => {
            admission.proven();
            serve_requests(reader, write, id, shared).await
        }
        Err(ended) => ended,
    };
    match ended {
        Ended::Closed => {}
        Ended::NotAClient(kind, what) => shared.warnings.once(
            kind,
            format!("rendezvous store: the connection from {peer} {what}; closed"),
        ),
        Ended::Refused(Refused(what)) => shared.warnings.once(
            "refused",
            format!("rendezvous store: {peer} sent {what}; its connection is closed"),
        ),
    }
}

/// `VALIDATE` with the magic number, then, where the store has a secret, `AUTHENTICATE`: the
/// store's challenge and proof, the client's proof, and the store's acceptance.
async fn handshake(
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
    secret: Option<&Secret>,
) -> Result<(), Ended> {
    let validated = reader.u8().await? == Command::Validate as u8 && reader.u32().await? == MAGIC;
    if !validated {
        return Err(Ended::NotAClient(
            "not a client",
            "did not open as a TCPStore client".into(),
        ));
    }
    let Some(secret) = secret else {
        return Ok(());
    };
    if reader.u8().await? != Command::Authenticate as u8 {
        return Err(Ended::NotAClient(
            "no proof",
            "did not prove it knows the job's secret (CORNET_JOB_SECRET), which this store asks"
                .into(),
        ));
    }
    let connector = reader.exact::<CHALLENGE_LEN>().await?;
    let acceptor = auth::challenge()
        .map_err(|e| Ended::NotAClient("no randomness", format!("could not be challenged: {e}")))?;
    let exchange = Exchange::new(secret, AUTH_PURPOSE, connector, acceptor);
    write
        .write_all(&[acceptor, exchange.proof(Side::Acceptor)].concat())
        .await?;
    let proof = reader.exact::<PROOF_LEN>().await?;
    if !exchange.verify(Side::Connector, &proof) {
        return Err(Ended::NotAClient(
            "wrong proof",
            "answered with a wrong proof of the job's secret (CORNET_JOB_SECRET differs, or \
             the client belongs to another job)"
                .into(),
        ));
    }
    write.write_all(&[AUTH_ACCEPTED]).await?;
    Ok(())
}

/// The client's requests in order; replies leave through its outbox, which wake-ups from
/// other clients' requests also write to.
async fn serve_requests(
    mut reader: Reader,
    write: OwnedWriteHalf,
    id: ClientId,
    shared: &Shared,
) -> Ended {
    let (outbox, delivery) = outbox();
    let mut delivery = tokio::spawn(delivery.run(write));
    shared.store.lock().unwrap().connect(id, outbox.clone());
    let ended = loop {
        // A client that does not read its replies is not read either.
        if !outbox.drained_to(REPLY_BACKLOG).await {
            break Ended::Closed;
        }
        if let Err(ended) = handle(&mut reader, shared, id, &outbox).await {
            break ended;
        }
    };
    shared.store.lock().unwrap().disconnect(id);
    drop(outbox);
    // Every outbox is gone: the delivery ends once the queue is written, or is ended.
    if tokio::time::timeout(FLUSH_GRACE, &mut delivery)
        .await
        .is_err()
    {
        delivery.abort();
    }
    ended
}

/// Reads and answers one request.
async fn handle(
    reader: &mut Reader,
    shared: &Shared,
    id: ClientId,
    outbox: &Outbox,
) -> Result<(), Ended> {
    let store = &shared.store;
    reader.start_request();
    let Some(command) = Command::from_byte(reader.u8().await?) else {
        return Err(Ended::Closed);
    };
    let reply = match command {
        Command::Validate => return Err(Ended::Closed),
        Command::Authenticate => {
            let what = match shared.secret {
                None => "offered proof of a secret, but this store was started without one",
                Some(_) => "offered proof of the secret a second time",
            };
            return Err(Ended::NotAClient("proof unasked", what.into()));
        }
        Command::Ping => Some(Message::default().u32(reader.u32().await?)),
        Command::Set => {
            let (key, value) = (reader.key().await?, reader.value().await?);
            store.lock().unwrap().set(key, value)?;
            None
        }
        Command::CompareSet => {
            let key = reader.key().await?;
            let (expected, desired) = (reader.value().await?, reader.value().await?);
            let now = store.lock().unwrap().compare_set(key, expected, desired)?;
            Some(Message::default().bytes(&now))
        }
        Command::Get => {
            let key = reader.key().await?;
            Some(Message::default().bytes(store.lock().unwrap().get(&key)))
        }
        Command::Add => {
            let (key, delta) = (reader.key().await?, reader.i64().await?);
            let Some(sum) = store.lock().unwrap().add(key, delta)? else {
                return Err(Ended::Closed);
            };
            Some(Message::default().i64(sum))
        }
        Command::Check => {
            let keys = reader.keys().await?;
            let answer = match store.lock().unwrap().all_present(&keys) {
                true => CheckReply::Ready,
                false => CheckReply::NotReady,
            };
            Some(Message::default().byte(answer as u8))
        }
        Command::Wait => {
            let keys = reader.keys().await?;
            let ready = store.lock().unwrap().wait(id, keys);
            ready.then(|| Message::default().byte(WaitReply::StopWaiting as u8))
        }
        Command::NumKeys => {
            let count = store.lock().unwrap().num_keys();
            Some(Message::default().i64(count as i64))
        }
        Command::DeleteKey => {
            let key = reader.key().await?;
            let deleted = store.lock().unwrap().delete(&key);
            Some(Message::default().i64(i64::from(deleted)))
        }
        Command::Append => {
            let (key, value) = (reader.key().await?, reader.value().await?);
            store.lock().unwrap().append(key, &value)?;
            None
        }
        Command::MultiGet => {
            let keys = reader.keys().await?;
            let store = store.lock().unwrap();
            let reply = keys
                .iter()
                .fold(Message::default(), |m, k| m.bytes(store.get(k)));
            if reply.0.len() as u64 > MAX_MESSAGE_LEN {
                return Err(Refused(format!(
                    "a MULTI_GET whose reply would be {} bytes, over the limit of \
                     {MAX_MESSAGE_LEN}",
                    reply.0.len()
                ))
                .into());
            }
            Some(reply)
        }
        Command::MultiSet => {
            let count = reader.count("key-value pairs", MAX_KEYS).await?;
            for _ in 0..count {
                let (key, value) = (reader.key().await?, reader.value().await?);
                store.lock().unwrap().set(key, value)?;
            }
            None
        }
        Command::CancelWait => {
            store.lock().unwrap().forget_wait(id);
            Some(Message::default().byte(WaitReply::WaitCanceled as u8))
        }
    };
    if let Some(reply) = reply {
        outbox.send(reply.0);
    }
    Ok(())
}

/// Reads the fields of requests, each within its limit and every request within
/// [`MAX_MESSAGE_LEN`]. A string is read as it arrives, never allocated at the length it
/// announces: a client that announces a large value and sends a little holds a little.
struct Reader {
    inner: BufReader<OwnedReadHalf>,
    /// Bytes of strings the current request may still carry.
    budget: u64,
}

impl Reader {
    fn new(read: OwnedReadHalf) -> Self {
        Reader {
            inner: BufReader::new(read),
            budget: MAX_MESSAGE_LEN,
        }
    }

    fn start_request(&mut self) {
        self.budget = MAX_MESSAGE_LEN;
    }

    async fn u8(&mut self) -> std::io::Result<u8> {
        self.inner.read_u8().await
    }

    async fn u32(&mut self) -> std::io::Result<u32> {
        self.inner.read_u32_le().await
    }

    async fn i64(&mut self) -> std::io::Result<i64> {
        self.inner.read_i64_le().await
    }

    async fn exact<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.inner.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    /// The count of a list: keys, or key-value pairs.
    async fn count(&mut self, what: &str, max: u64) -> Result<u64, Ended> {
        let count = self.inner.read_u64_le().await?;
        if count > max {
            let refused = format!("a request of {count} {what}, over the limit of {max}");
            return Err(Refused(refused).into());
        }
        Ok(count)
    }

    async fn key(&mut self) -> Result<Vec<u8>, Ended> {
        self.string("key", MAX_KEY_LEN).await
    }

    async fn value(&mut self) -> Result<Vec<u8>, Ended> {
        self.string("value", MAX_VALUE_LEN).await
    }

    async fn keys(&mut self) -> Result<Vec<Vec<u8>>, Ended> {
        let count = self.count("keys", MAX_KEYS).await?;
        let mut keys = Vec::new();
        for _ in 0..count {
            keys.push(self.key().await?);
        }
        Ok(keys)
    }

    async fn string(&mut self, what: &str, max: u64) -> Result<Vec<u8>, Ended> {
        let len = self.inner.read_u64_le().await?;
        if len > max {
            let refused = format!("a {len}-byte {what}, over the limit of {max} bytes");
            return Err(Refused(refused).into());
        }
        if len > self.budget {
            return Err(Refused(format!(
                "a request of more than {MAX_MESSAGE_LEN} bytes of keys and values"
            ))
            .into());
        }
        self.budget -= len;
        read_as_it_arrives(&mut self.inner, len).await
    }
}

/// `len` bytes from `source`, the buffer growing with what arrives.
async fn read_as_it_arrives(
    source: &mut (impl AsyncRead + Unpin),
    len: u64,
) -> Result<Vec<u8>, Ended> {
    let mut bytes = Vec::new();
    source.take(len).read_to_end(&mut bytes).await?;
    if (bytes.len() as u64) < len {
        return Err(Ended::Closed);
    }
    Ok(bytes)
}
