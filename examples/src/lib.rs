//! Runnable examples of the identity crate family (see `examples/`).
