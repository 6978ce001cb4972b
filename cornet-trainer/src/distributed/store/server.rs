//! A PyTorch TCPStore server, on a tokio runtime of its own thread: what torchrun's agent
//! serves, with the semantics of PyTorch's libuv backend ([`super::state`]), so that PyTorch
//! clients and ours are served alike; and, unlike PyTorch's, bounded ([`super::admission`],
//! [`super::session`]) and, given the job's secret, only to clients that prove they know it.

use super::admission::Connections;
use super::session::{self, Shared};
use super::state::ClientId;
use super::warnings::Warnings;
use crate::distributed::auth::Secret;
use crate::distributed::error::{DistributedError::Rendezvous, Explain, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Where a store listens and whom it serves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `MASTER_ADDR`: the store listens on the interface of its address.
    pub host: String,
    /// `MASTER_PORT` (0: any free port).
    pub port: u16,
    /// Whether clients on other hosts must reach it: a `host` that is a loopback address then
    /// names this host only from its own point of view (as Kubeflow's `localhost` for the
    /// master pod), and the store listens on every interface.
    pub other_hosts: bool,
    /// The secret clients must prove (`CORNET_JOB_SECRET`); none: every client is served, as
    /// PyTorch's store serves them.
    pub secret: Option<Secret>,
    /// How many connections it holds, and how long one may take to become a client.
    pub limits: ServerLimits,
}

/// What a store holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections held at once (a job holds about two per rank).
    pub max_connections: usize,
    /// How long a connection may take to send the magic number (and its proof).
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl StoreConfig {
    /// A store on `port` of 127.0.0.1, for this host's clients, with no secret.
    pub fn local(port: u16) -> Self {
        StoreConfig {
            host: "127.0.0.1".into(),
            port,
            other_hosts: false,
            secret: None,
            limits: ServerLimits::default(),
        }
    }
}

/// A running server; dropping it stops it.
pub struct StoreServer {
    addr: SocketAddr,
    #[cfg(test)]
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoreServer {
    /// Serves as `config` says. A port already in use is an error that says so.
    pub fn start(config: &StoreConfig) -> Result<Self> {
        let listener = listen(config)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .explain(Rendezvous, || "starting the store's runtime".into())?;
        let shared = Arc::new(Shared {
            store: Default::default(),
            secret: config.secret.clone(),
            handshake_timeout: config.limits.handshake_timeout,
            warnings: Warnings::default(),
        });
        let connections = Connections::new(config.limits.max_connections.min(descriptor_share()));
        let (stop, stopped) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rendezvous-store".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        _ = serve(listener, connections, serving) => {}
                        _ = stopped => {}
                    }
                })
            })
            .explain(Rendezvous, || "starting the store's thread".into())?;
        Ok(StoreServer {
            addr,
            #[cfg(test)]
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes of replies queued for clients that have not read them yet.
    #[cfg(test)]
    pub fn queued_reply_bytes(&self) -> usize {
        self.shared.store.lock().unwrap().queued_reply_bytes()
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

/// Binds the interface of `config.host` (the first address it resolves to, as clients
/// connect to), or every interface where that address does not reach the clients: a
/// loopback address for clients on other hosts, or an address that is not this host's own
/// (a Kubernetes service in front of the pod, a NAT).
fn listen(config: &StoreConfig) -> Result<TcpListener> {
    let StoreConfig { host, port, .. } = config;
    let named = super::address::store_address(host, *port)?;
    let everywhere = SocketAddr::new(unspecified(named.ip()), *port);
    let bound = if named.ip().is_loopback() && config.other_hosts {
        tracing::info!(
            "MASTER_ADDR {host} is a loopback address, and ranks on other hosts must reach the \
             store: it listens on every interface"
        );
        TcpListener::bind(everywhere)
    } else {
        match TcpListener::bind(named) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::info!(
                    "MASTER_ADDR {host} ({}) is not an address of this host (a service or a \
                     NAT in front of it): the store listens on every interface",
                    named.ip()
                );
                TcpListener::bind(everywhere)
            }
            bound => bound,
        }
    };
    let listener = bound.explain(Rendezvous, || {
        format!(
            "cannot serve the rendezvous store on port {port} (MASTER_PORT); is the port in use?"
        )
    })?;
    tracing::debug!("the rendezvous store listens on {}", listener.local_addr()?);
    Ok(listener)
}

/// The address of every interface of `ip`'s family.
fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Accepts connections for as long as the server lives, whatever fails: a connection that
/// broke before it was accepted is skipped, and when the process runs out of file descriptors
/// the connections still in their handshake are let go and accepting resumes after a pause.
async fn serve(listener: TcpListener, connections: Arc<Connections>, shared: Arc<Shared>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut next_id: ClientId = 0;
    let mut pause = MIN_PAUSE;
    loop {
        let room = connections.room().await;
        match listener.accept().await {
            Ok((socket, peer)) => {
                pause = MIN_PAUSE;
                next_id += 1;
                let admission = connections.admit(next_id, room);
                let (shared, id) = (shared.clone(), next_id);
                tokio::spawn(async move {
                    session::serve(socket, peer, id, admission, &shared).await;
                });
            }
            Err(e) if out_of_descriptors(&e) => {
                shared.warnings.once(
                    "descriptors",
                    format!(
                        "rendezvous store: out of file descriptors ({e}; raise `ulimit -n`): \
                         closing connections that are not yet clients, and accepting again \
                         in {pause:?}"
                    ),
                );
                connections.let_go_oldest_unproven();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            // A connection reset or aborted before its accept: nothing to serve.
            Err(e) => tracing::debug!("rendezvous store: accept failed: {e}"),
        }
    }
}

/// How many connections the store may hold without taking the file descriptors that the rest
/// of its process needs (a launcher's pipes to its ranks, a rank's data files): half of those
/// left when it starts, at least a few. A flood of connections then costs the process nothing
/// but the store's own room.
fn descriptor_share() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return usize::MAX;
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count());
    let left = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(open);
    (left / 2).max(MIN_CONNECTIONS)
}

/// What the store holds however few descriptors are left: a job's own handful of clients.
const MIN_CONNECTIONS: usize = 8;

/// The pause after running out of file descriptors, doubled while it lasts.
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// EMFILE (this process's limit) or ENFILE (the system's).
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    )
}
