#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod alg;
#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
pub mod b64;
pub mod claims;
#[cfg(feature = "encrypted-keys")]
pub mod encrypted;
mod error;
pub mod jwks;
pub mod jws;
pub mod keys;
pub mod replay;
pub mod replay_async;
mod strict;
mod time;

pub use alg::Algorithm;
pub use claims::{
    Validation, Verified, verify, verify_decoded, verify_decoded_borrowed, verify_decoded_once,
    verify_decoded_once_borrowed, verify_once,
};
pub use error::Error;
pub use jwks::{Jwks, JwksLimits, KeySource};
pub use keys::{HmacSecret, SigningKey, Thumbprint, VerifyingKey};
pub use time::{BeforeEpoch, UnixTime};

pub use jose_jwk;
