#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
pub mod audit;
pub mod clock;
mod error;
#[cfg(any(feature = "host_app", feature = "token_issuer"))]
pub mod http;
pub mod narrate;

pub use args::ServeArgs;
pub use audit::{JsonLines, check_json_lines};
pub use clock::SimClock;
pub use error::{During, ExampleError, expect, expect_refused};
pub use narrate::Narrator;

/// The system random number generator, as the examples use it
/// (`rand_core::UnwrapErr(getrandom::SysRng)`).
#[must_use]
pub fn system_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// The repository README's snippets ("Which crate for which job"), compiled and run as doc
/// tests of this package (`cargo test -p examples --doc`); not part of the rendered docs.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;
