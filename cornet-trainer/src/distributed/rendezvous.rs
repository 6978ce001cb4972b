//! How ranks meet: through the store at `MASTER_ADDR:MASTER_PORT`, served by the agent
//! (torchrun, our `launch`) or else by rank 0, each attempt of the run under its own keys.

use super::env::RankEnv;
use super::error::Result;
use super::store::{ServerLimits, StoreClient, StoreConfig, StoreServer};
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
    /// Serves the store if this rank must, then connects to it. Rank 0's store listens on
    /// `MASTER_ADDR`'s interface and, when the job has a secret, asks every client for proof.
    pub fn join(env: &RankEnv) -> Result<Self> {
        let server = match env.rank == 0 && !env.agent_store {
            true => Some(StoreServer::start(&StoreConfig {
                host: env.master_addr.clone(),
                port: env.master_port,
                other_hosts: env.spans_hosts(),
                secret: env.secret.clone(),
                limits: ServerLimits::default(),
            })?),
            false => None,
        };
        Ok(Rendezvous {
            _server: server,
            ..Self::join_served(env)?
        })
    }

    /// Connects to a store that is served already: by the agent, or by rank 0's first
    /// rendezvous (a second ring joins through this one).
    pub fn join_served(env: &RankEnv) -> Result<Self> {
        let client = StoreClient::connect(
            &env.master_addr,
            env.master_port,
            env.timeout,
            env.store_secret(),
        )?;
        Ok(Rendezvous {
            client,
            prefix: env.key_prefix(),
            local_addr: env.local_addr,
            _server: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent's store outlives the ranks it restarts: the restarted attempt must wait for
    /// its own peers, never read what the failed attempt published (pytorch/pytorch#135712).
    #[test]
    fn a_restarted_attempt_never_reads_the_previous_attempts_keys() {
        let server = StoreServer::start(&StoreConfig::local(0)).unwrap();
        let mut env = RankEnv::on_this_machine(1, 2, server.port());
        env.agent_store = true;
        env.run_id = "job".into();
        let mut first = Rendezvous::join(&env).unwrap();
        first.publish("ring/1", b"2 10.0.0.1:4000").unwrap();
        let short = Duration::from_millis(200);
        assert_eq!(
            first.fetch("ring/1", short).unwrap().as_deref(),
            Some(&b"2 10.0.0.1:4000"[..])
        );

        env.restart_count = 1;
        let mut second = Rendezvous::join(&env).unwrap();
        assert_eq!(second.fetch("ring/1", short).unwrap(), None);
        // Nor does another job sharing the store.
        env.restart_count = 0;
        env.run_id = "other".into();
        assert_eq!(
            Rendezvous::join(&env)
                .unwrap()
                .fetch("ring/1", short)
                .unwrap(),
            None
        );
    }
}
