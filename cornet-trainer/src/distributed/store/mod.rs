//! The rendezvous store, PyTorch's TCPStore: one protocol whoever serves it. Under torchrun
//! (and our own `launch`, which is a torchrun-compatible agent) the agent serves it and the
//! ranks are its clients; under Slurm or a PyTorchJob without an agent, rank 0 serves it.
//! It carries start-up information only (ring addresses, the NCCL unique id), never tensors.
//!
//! Ours ([`StoreServer`]) adds to PyTorch's what a store reachable by others needs: bounds on
//! connections ([`admission`]) and on what each may hold ([`session`], [`state`]), and, given
//! the job's secret, proof of it from every client (`wire`'s `AUTHENTICATE`).

mod address;
mod admission;
mod client;
mod outbox;
mod server;
mod session;
mod state;
mod warnings;
mod wire;

pub use client::StoreClient;
pub use server::{ServerLimits, StoreConfig, StoreServer};

#[cfg(test)]
mod tests;
