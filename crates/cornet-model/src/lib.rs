//! The CORnet networks.
