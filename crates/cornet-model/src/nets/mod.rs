//! One module per CORnet graph. R and RT share theirs and differ only in how time unrolls.

pub(crate) mod recurrent;
pub(crate) mod s;
pub(crate) mod z;
