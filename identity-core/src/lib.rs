#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod alg;
pub mod b64;
mod error;
pub mod keys;
pub mod replay;
mod time;

pub use alg::Algorithm;
pub use error::Error;
pub use keys::{HmacSecret, SigningKey, Thumbprint, VerifyingKey};
pub use time::{BeforeEpoch, UnixTime};

pub use jose_jwk;
