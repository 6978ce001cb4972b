//! The rendezvous store, PyTorch's TCPStore: one protocol whoever serves it. Under torchrun
//! (and our own `launch`, which is a torchrun-compatible agent) the agent serves it and the
//! ranks are its clients; under Slurm or a PyTorchJob without an agent, rank 0 serves it.
//! It carries start-up information only (ring addresses, the NCCL unique id), never tensors.

mod client;
mod server;
mod wire;

pub use client::StoreClient;
pub use server::StoreServer;

#[cfg(test)]
mod tests;
