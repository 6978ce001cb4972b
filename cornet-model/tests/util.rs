//! What the integration tests share: the parity fixtures (found through
//! [`cornet_model::testing`]) and models and weights read from them.

use candle_core::Device;
use cornet_model::{weights, Arch, Model, StateDict};

pub use cornet_model::testing::{assert_close, fixture, read_npz};

/// The model of the fixture checkpoint `name` on the CPU, as `arch` where given (else the
/// variant its shapes show).
pub fn checkpoint(name: &str, arch: Option<Arch>) -> Model {
    Model::from_checkpoint(&fixture(name), arch, None, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The tensors and metadata of the fixture checkpoint `name`.
pub fn read_weights(name: &str) -> StateDict {
    weights::read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
