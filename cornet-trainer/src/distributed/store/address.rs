//! Where the store is: one resolution of `MASTER_ADDR` for the store and its clients.

use crate::distributed::error::{DistributedError::Rendezvous, Explain, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// The address of the store named `host` (`MASTER_ADDR`): the first that `host` resolves to,
/// where clients connect and the store listens, so that both pick the same.
pub(super) fn store_address(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .explain(Rendezvous, || format!("resolving MASTER_ADDR {host}"))?
        .next()
        .explain(Rendezvous, || {
            format!("MASTER_ADDR {host} resolves to nothing")
        })
}
