//! The CORnet networks (Kubilius, Schrimpf et al., NeurIPS 2019) on Candle.
//!
//! Parameters carry the PyTorch state-dict names, so the published weights load by name;
//! every module call can be tapped by (module, call index), which for an area's `output` is
//! the time step.
//!
//! [`Model`] is the front door: build one from a [`ModelConfig`] or load one from a checkpoint
//! (see [`weights`]), then run [`Model::forward`] or [`Model::forward_with_taps`]. Every
//! fallible call returns this crate's [`Error`], whose message names the file or state-dict
//! key at fault.

#![warn(missing_docs)]

pub mod arch;
pub mod batch_groups;
pub mod error;
mod layers;
mod model;
mod nets;
pub mod ops;
mod store;
pub mod taps;
#[cfg(feature = "testing")]
pub mod testing;
pub mod weights;

pub use arch::{Arch, ModelConfig};
pub use batch_groups::{BatchGroups, BatchStatsGroup};
pub use error::{Error, Result};
pub use layers::Mode;
pub use model::Model;
pub use store::{Entry, ParamStore, Role};
pub use taps::TapFilter;
pub use weights::StateDict;
