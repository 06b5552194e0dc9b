#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod dev;
mod error;
pub mod keyring;
pub mod keys;
pub mod mint;
#[cfg(feature = "server")]
pub mod server;

pub use error::Error;
pub use keyring::{JwksResponse, KeyEntry, KeyStatus, Keyring, KeyringChange};
pub use keys::HostIssuerKeys;
pub use mint::{DEFAULT_TTL_SECS, HOST_TOKEN_TYP, HostClaims, MintedHostJwt, mint_host_jwt};

pub use handoff_core::{Algorithm, UnixTime};
