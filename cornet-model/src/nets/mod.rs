//! One module per CORnet graph. R and RT share theirs and differ only in how time unrolls.

pub(crate) mod recurrent;
pub(crate) mod s;
pub(crate) mod z;

use crate::error::Result;
use crate::layers::Pass;
use candle_core::Tensor;

/// A CORnet graph: images in, logits out, taps recorded on the way.
pub(crate) trait Network: Send + Sync {
    fn forward(&self, images: &Tensor, pass: &mut Pass) -> Result<Tensor>;
}
