//! The rendezvous store: rank 0 serves a key-value map over TCP (on tokio); every rank sets
//! keys and waits for others' keys. It carries start-up information only (ring addresses, the
//! NCCL unique id), never tensors.
//!
//! Protocol, one line per message: `SET <key> <value>` answered `OK`; `GET <key>` answered
//! `VALUE <value>` as soon as the key exists.

use super::error::{DistributedError, DistributedError::Rendezvous, Explain, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    values: Mutex<HashMap<String, String>>,
    changed: Notify,
}

/// The server; it runs on a background thread for the life of the process.
pub struct StoreServer {
    addr: std::net::SocketAddr,
}

impl StoreServer {
    /// Binds `addr:port` and serves. A port already in use is an error that says so.
    pub fn start(addr: &str, port: u16) -> Result<Self> {
        let listener = TcpListener::bind((addr, port)).explain(Rendezvous, || {
            format!("rank 0 cannot serve the rendezvous store on {addr}:{port} (MASTER_ADDR:MASTER_PORT); is the port in use?")
        })?;
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .explain(Rendezvous, || "starting the store's runtime".into())?;
        std::thread::Builder::new()
            .name("rendezvous-store".into())
            .spawn(move || runtime.block_on(serve(listener)))
            .explain(Rendezvous, || "starting the store's thread".into())?;
        Ok(StoreServer { addr: local })
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

async fn serve(listener: TcpListener) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let shared = Arc::new(Shared::default());
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(handle(socket, shared.clone()));
    }
}

async fn handle(socket: tokio::net::TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = socket.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.split_once(' ') {
            Some(("SET", rest)) => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                shared
                    .values
                    .lock()
                    .unwrap()
                    .insert(key.to_string(), value.to_string());
                shared.changed.notify_waiters();
                "OK".to_string()
            }
            Some(("GET", key)) => loop {
                // Registered before the check, so a SET in between still wakes us.
                let changed = shared.changed.notified();
                if let Some(value) = shared.values.lock().unwrap().get(key) {
                    break format!("VALUE {value}");
                }
                changed.await;
            },
            _ => format!("ERR bad request {line:?}"),
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A rank's connection to the store.
pub struct StoreClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl StoreClient {
    /// Connects to rank 0's store, retrying until `timeout` (rank 0 may start last).
    pub fn connect(addr: &str, port: u16, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let target = (addr, port)
            .to_socket_addrs()
            .explain(Rendezvous, || format!("resolving MASTER_ADDR {addr}"))?
            .next()
            .explain(Rendezvous, || {
                format!("MASTER_ADDR {addr} resolves to nothing")
            })?;
        let stream = loop {
            match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => {
                    return Err(Rendezvous(
                        format!("cannot reach rank 0's rendezvous store at {target} within {timeout:?}: {e}"),
                        None,
                    ))
                }
            }
        };
        stream.set_nodelay(true)?;
        Ok(StoreClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// This end's address as the store sees it: the interface that reaches rank 0.
    pub fn local_ip(&self) -> Result<std::net::IpAddr> {
        Ok(self.writer.local_addr()?.ip())
    }

    /// Sets `key` to `value` (neither may hold a newline, nor the key a space).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if key.contains(' ') || key.contains('\n') || value.contains('\n') {
            return Err(Rendezvous(
                format!("store key {key:?} or value {value:?} has a space or newline"),
                None,
            ));
        }
        let reply = self.request(&format!("SET {key} {value}"), None)?;
        if reply != "OK" {
            return Err(Rendezvous(
                format!("store refused SET {key}: {reply}"),
                None,
            ));
        }
        Ok(())
    }

    /// Waits up to `timeout` for `key` to be set; `None` if it was not.
    pub fn get(&mut self, key: &str, timeout: Duration) -> Result<Option<String>> {
        match self.request(&format!("GET {key}"), Some(timeout)) {
            Ok(reply) => match reply.strip_prefix("VALUE ") {
                Some(value) => Ok(Some(value.to_string())),
                None => Err(Rendezvous(
                    format!("store answered GET {key} with {reply:?}"),
                    None,
                )),
            },
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn request(&mut self, line: &str, timeout: Option<Duration>) -> Result<String> {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .explain(Rendezvous, || {
                "the rendezvous store closed the connection".into()
            })?;
        self.reader.get_ref().set_read_timeout(timeout)?;
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply)?;
        if n == 0 {
            return Err(Rendezvous(
                "the rendezvous store closed the connection".into(),
                None,
            ));
        }
        Ok(reply.trim_end().to_string())
    }
}

/// Whether a request failed by waiting past its read timeout.
fn is_timeout(err: &DistributedError) -> bool {
    matches!(err, DistributedError::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_set_by_one_client_reach_a_waiting_other() {
        let server = StoreServer::start("127.0.0.1", 0).unwrap();
        let port = server.port();
        let waiter = std::thread::spawn(move || {
            let mut client =
                StoreClient::connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
            client.get("ring/1", Duration::from_secs(5)).unwrap()
        });
        let mut setter = StoreClient::connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        setter.set("ring/1", "2 127.0.0.1:4000").unwrap();
        assert_eq!(waiter.join().unwrap().as_deref(), Some("2 127.0.0.1:4000"));
        assert_eq!(
            setter.get("missing", Duration::from_millis(100)).unwrap(),
            None
        );
    }

    #[test]
    fn a_port_in_use_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = StoreServer::start("127.0.0.1", port)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"),
            "{err}"
        );
    }
}
