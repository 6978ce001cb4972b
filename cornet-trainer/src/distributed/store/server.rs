//! A PyTorch TCPStore server, on a tokio runtime of its own thread: what torchrun's agent
//! serves, with the semantics of PyTorch's libuv backend (`TCPStoreLibUvBackend.cpp`), so
//! that PyTorch clients and ours are served alike.

use super::wire::{CheckReply, Command, Message, WaitReply, MAGIC, MAX_KEYS, MAX_STRING_LEN};
use crate::distributed::error::{DistributedError::Rendezvous, Explain, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

/// A running server; dropping it stops it.
pub struct StoreServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoreServer {
    /// Serves on `port` of every interface, as PyTorch's server does (a name such as a
    /// Kubernetes service in `MASTER_ADDR` need not be an address of this host). A port
    /// already in use is an error that says so.
    pub fn start(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("0.0.0.0", port)).explain(Rendezvous, || {
            format!(
                "cannot serve the rendezvous store on port {port} (MASTER_PORT); is the port \
                 in use?"
            )
        })?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .explain(Rendezvous, || "starting the store's runtime".into())?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("rendezvous-store".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = stopped => {}
                    }
                })
            })
            .explain(Rendezvous, || "starting the store's thread".into())?;
        Ok(StoreServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type ClientId = u64;

/// The map, and who waits for which keys.
#[derive(Default)]
struct Store {
    values: HashMap<Vec<u8>, Vec<u8>>,
    /// Key to the clients waiting for it.
    waiters: HashMap<Vec<u8>, Vec<ClientId>>,
    /// Client to the number of its keys still missing.
    missing: HashMap<ClientId, usize>,
    /// Where each client's replies go.
    outboxes: HashMap<ClientId, mpsc::UnboundedSender<Vec<u8>>>,
}

impl Store {
    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.values.insert(key.clone(), value);
        self.wake(&key);
    }

    /// PyTorch's compare-and-set, including its answer for an unset key with a non-empty
    /// `expected`: `expected` itself.
    fn compare_set(&mut self, key: Vec<u8>, expected: Vec<u8>, desired: Vec<u8>) -> Vec<u8> {
        let now = match self.values.get_mut(&key) {
            None if expected.is_empty() => {
                self.values.insert(key.clone(), desired.clone());
                desired
            }
            None => expected,
            Some(held) => {
                if *held == expected {
                    *held = desired;
                }
                held.clone()
            }
        };
        self.wake(&key);
        now
    }

    /// Adds to the decimal integer held at `key`; `None` if what it holds is not one.
    fn add(&mut self, key: Vec<u8>, delta: i64) -> Option<i64> {
        let held = match self.values.get(&key) {
            Some(text) => std::str::from_utf8(text).ok()?.parse::<i64>().ok()?,
            None => 0,
        };
        let sum = held.checked_add(delta)?;
        self.set(key, sum.to_string().into_bytes());
        Some(sum)
    }

    fn append(&mut self, key: Vec<u8>, value: &[u8]) {
        self.values
            .entry(key.clone())
            .or_default()
            .extend_from_slice(value);
        self.wake(&key);
    }

    fn all_present(&self, keys: &[Vec<u8>]) -> bool {
        keys.iter().all(|k| self.values.contains_key(k))
    }

    /// Registers `client` as waiting for the keys not yet set; `true` if none is missing.
    fn wait(&mut self, client: ClientId, keys: Vec<Vec<u8>>) -> bool {
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

    fn forget_wait(&mut self, client: ClientId) {
        if self.missing.remove(&client).is_some() {
            self.waiters.retain(|_, clients| {
                clients.retain(|&c| c != client);
                !clients.is_empty()
            });
        }
    }

    fn reply(&self, client: ClientId, bytes: Vec<u8>) {
        if let Some(outbox) = self.outboxes.get(&client) {
            // A client gone since is unregistered by its own task: nothing to do here.
            let _ = outbox.send(bytes);
        }
    }
}

async fn serve(listener: TcpListener) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let store = Arc::new(Mutex::new(Store::default()));
    let mut next_id: ClientId = 0;
    while let Ok((socket, _)) = listener.accept().await {
        next_id += 1;
        tokio::spawn(serve_client(socket, store.clone(), next_id));
    }
}

/// One client's requests in order; replies leave through its outbox, which wake-ups from
/// other clients' requests also write to.
async fn serve_client(socket: tokio::net::TcpStream, store: Arc<Mutex<Store>>, id: ClientId) {
    let _ = socket.set_nodelay(true);
    let (read, mut write) = socket.into_split();
    let (outbox, mut replies) = mpsc::unbounded_channel::<Vec<u8>>();
    store.lock().unwrap().outboxes.insert(id, outbox);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = replies.recv().await {
            if write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut reader = Reader(BufReader::new(read));
    // A client that does not open with the magic number is not a TCPStore client.
    if reader.validate().await.unwrap_or(false) {
        // Ends at the client's end of stream, a malformed request, or an unknown command.
        while let Ok(Some(())) = handle(&mut reader, &store, id).await {}
    }
    {
        let mut store = store.lock().unwrap();
        store.forget_wait(id);
        store.outboxes.remove(&id);
    }
    let _ = writer.await;
}

/// Reads and answers one request; `None` for something to close the connection over.
async fn handle(
    reader: &mut Reader,
    store: &Mutex<Store>,
    id: ClientId,
) -> std::io::Result<Option<()>> {
    let Some(command) = Command::from_byte(reader.u8().await?) else {
        return Ok(None);
    };
    let reply = match command {
        Command::Validate => return Ok(None),
        Command::Ping => Some(Message::default().u32(reader.u32().await?)),
        Command::Set => {
            let (key, value) = (reader.string().await?, reader.string().await?);
            store.lock().unwrap().set(key, value);
            None
        }
        Command::CompareSet => {
            let key = reader.string().await?;
            let (expected, desired) = (reader.string().await?, reader.string().await?);
            let now = store.lock().unwrap().compare_set(key, expected, desired);
            Some(Message::default().bytes(&now))
        }
        Command::Get => {
            let key = reader.string().await?;
            let store = store.lock().unwrap();
            // An unset key reads as empty, as in PyTorch (its clients wait first).
            Some(Message::default().bytes(store.values.get(&key).map_or(&[][..], |v| v.as_slice())))
        }
        Command::Add => {
            let (key, delta) = (reader.string().await?, reader.i64().await?);
            let Some(sum) = store.lock().unwrap().add(key, delta) else {
                return Ok(None);
            };
            Some(Message::default().i64(sum))
        }
        Command::Check => {
            let keys = reader.list().await?;
            let ready = store.lock().unwrap().all_present(&keys);
            let answer = if ready {
                CheckReply::Ready
            } else {
                CheckReply::NotReady
            };
            Some(Message::default().byte(answer as u8))
        }
        Command::Wait => {
            let keys = reader.list().await?;
            let ready = store.lock().unwrap().wait(id, keys);
            ready.then(|| Message::default().byte(WaitReply::StopWaiting as u8))
        }
        Command::NumKeys => {
            let count = store.lock().unwrap().values.len();
            Some(Message::default().i64(count as i64))
        }
        Command::DeleteKey => {
            let key = reader.string().await?;
            let deleted = store.lock().unwrap().values.remove(&key).is_some();
            Some(Message::default().i64(i64::from(deleted)))
        }
        Command::Append => {
            let (key, value) = (reader.string().await?, reader.string().await?);
            store.lock().unwrap().append(key, &value);
            None
        }
        Command::MultiGet => {
            let keys = reader.list().await?;
            let store = store.lock().unwrap();
            let values = keys
                .iter()
                .map(|k| store.values.get(k).map_or(&[][..], |v| v.as_slice()));
            Some(values.fold(Message::default(), |m, v| m.bytes(v)))
        }
        Command::MultiSet => {
            let count = reader.count(MAX_KEYS).await?;
            for _ in 0..count {
                let (key, value) = (reader.string().await?, reader.string().await?);
                store.lock().unwrap().set(key, value);
            }
            None
        }
        Command::CancelWait => {
            store.lock().unwrap().forget_wait(id);
            Some(Message::default().byte(WaitReply::WaitCanceled as u8))
        }
    };
    if let Some(reply) = reply {
        store.lock().unwrap().reply(id, reply.0);
    }
    Ok(Some(()))
}

/// Reads the fields of requests, refusing sizes past the wire limits.
struct Reader(BufReader<OwnedReadHalf>);

impl Reader {
    async fn validate(&mut self) -> std::io::Result<bool> {
        Ok(self.u8().await? == Command::Validate as u8 && self.u32().await? == MAGIC)
    }

    async fn u8(&mut self) -> std::io::Result<u8> {
        self.0.read_u8().await
    }

    async fn u32(&mut self) -> std::io::Result<u32> {
        self.0.read_u32_le().await
    }

    async fn i64(&mut self) -> std::io::Result<i64> {
        self.0.read_i64_le().await
    }

    async fn count(&mut self, max: u64) -> std::io::Result<u64> {
        let count = self.0.read_u64_le().await?;
        if count > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{count} is over the limit of {max}"),
            ));
        }
        Ok(count)
    }

    async fn string(&mut self) -> std::io::Result<Vec<u8>> {
        let len = self.count(MAX_STRING_LEN).await?;
        let mut bytes = vec![0u8; len as usize];
        self.0.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    async fn list(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let count = self.count(MAX_KEYS).await?;
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(self.string().await?);
        }
        Ok(items)
    }
}
