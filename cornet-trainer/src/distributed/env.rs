//! torchrun's environment contract: `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`.

use super::error::{DistributedError::RankEnv as Invalid, Explain, Result};
use std::time::Duration;

/// Where this process stands among the ranks and how to reach rank 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankEnv {
    /// `RANK`: this process among all ranks.
    pub rank: usize,
    /// `LOCAL_RANK`: this process among its node's ranks (`RANK` when unset).
    pub local_rank: usize,
    /// `WORLD_SIZE`: the number of ranks.
    pub world_size: usize,
    /// `MASTER_ADDR`: where rank 0 serves the rendezvous store (127.0.0.1 when unset).
    pub master_addr: String,
    /// `MASTER_PORT` (29500 when unset).
    pub master_port: u16,
    /// How long to wait for the other ranks at start-up.
    pub timeout: Duration,
}

/// How long ranks wait for each other at start-up unless `CORNET_RENDEZVOUS_TIMEOUT` (seconds)
/// says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl RankEnv {
    /// Reads the contract from the environment; `None` when `WORLD_SIZE` is unset (one rank).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(world_size) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let number = |name: &str, value: &str| -> Result<usize> {
            value.parse().explain(Invalid, || {
                format!("{name}={value:?} is not a non-negative integer")
            })
        };
        let world_size = number("WORLD_SIZE", &world_size)?;
        let required = |name: &str| {
            get(name).explain(Invalid, || format!("WORLD_SIZE is set but {name} is not"))
        };
        let rank = number("RANK", &required("RANK")?)?;
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => number("LOCAL_RANK", &v)?,
            None => rank,
        };
        if world_size == 0 || rank >= world_size {
            return Err(Invalid(
                format!("RANK={rank} is not below WORLD_SIZE={world_size}"),
                None,
            ));
        }
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port = get("MASTER_PORT").unwrap_or_else(|| "29500".into());
        let master_port = port.parse().explain(Invalid, || {
            format!("MASTER_PORT={port:?} is not a port number")
        })?;
        let timeout = match get("CORNET_RENDEZVOUS_TIMEOUT") {
            Some(v) => Duration::from_secs(number("CORNET_RENDEZVOUS_TIMEOUT", &v)? as u64),
            None => DEFAULT_TIMEOUT,
        };
        Ok(Some(RankEnv {
            rank,
            local_rank,
            world_size,
            master_addr,
            master_port,
            timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankEnv::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn reads_torchrun_variables() {
        assert_eq!(parse(&[]).unwrap(), None);
        let env = parse(&[("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_PORT", "1234")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (env.rank, env.local_rank, env.world_size, env.master_port),
            (1, 1, 2, 1234)
        );
        assert_eq!(env.master_addr, "127.0.0.1");
    }

    #[test]
    fn inconsistent_variables_are_named() {
        let err = |vars: &[(&str, &str)]| parse(vars).unwrap_err().to_string();
        assert_eq!(
            err(&[("WORLD_SIZE", "2")]),
            "WORLD_SIZE is set but RANK is not"
        );
        assert_eq!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "2")]),
            "RANK=2 is not below WORLD_SIZE=2"
        );
        assert!(err(&[("WORLD_SIZE", "two"), ("RANK", "0")]).starts_with("WORLD_SIZE=\"two\""));
        assert!(
            err(&[("WORLD_SIZE", "1"), ("RANK", "0"), ("MASTER_PORT", "99999")])
                .starts_with("MASTER_PORT")
        );
    }
}
