//! Image files to normalized batches.
