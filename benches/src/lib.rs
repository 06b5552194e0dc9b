//! Benchmarks of the identity crate family (criterion).
