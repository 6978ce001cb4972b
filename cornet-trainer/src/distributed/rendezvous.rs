//! How ranks meet: through the store at `MASTER_ADDR:MASTER_PORT`, served by the agent
//! (torchrun, our `launch`) or else by rank 0, each attempt of the run under its own keys.

use super::env::RankEnv;
use super::error::Result;
use super::store::{StoreClient, StoreServer};
use std::net::IpAddr;
use std::time::Duration;

/// This rank's connection to the store, and the store itself on rank 0 when no agent serves
/// one (kept for the life of the communicator: other ranks may still be arriving).
pub struct Rendezvous {
    client: StoreClient,
    prefix: String,
    local_addr: Option<IpAddr>,
    _server: Option<StoreServer>,
}

impl Rendezvous {
    /// Serves the store if this rank must, then connects to it.
    pub fn join(env: &RankEnv) -> Result<Self> {
        let server = match env.rank == 0 && !env.agent_store {
            true => Some(StoreServer::start(env.master_port)?),
            false => None,
        };
        let client = StoreClient::connect(&env.master_addr, env.master_port, env.timeout)?;
        Ok(Rendezvous {
            client,
            prefix: env.key_prefix(),
            local_addr: env.local_addr,
            _server: server,
        })
    }

    /// Publishes this attempt's `key`.
    pub fn publish(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.client.set(&format!("{}{key}", self.prefix), value)
    }

    /// This attempt's `key` once another rank publishes it, or `None` after `timeout`.
    pub fn fetch(&mut self, key: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.client.get(&format!("{}{key}", self.prefix), timeout)
    }

    /// The address to accept ring peers on: `CORNET_LOCAL_ADDR`, else the interface that
    /// reaches the store.
    pub fn local_ip(&self) -> Result<IpAddr> {
        match self.local_addr {
            Some(addr) => Ok(addr),
            None => self.client.local_ip(),
        }
    }
}
