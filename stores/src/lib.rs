#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
#[cfg(all(feature = "families", feature = "devices"))]
mod fuzz_rows;
mod pool;
#[cfg(all(feature = "families", feature = "devices"))]
mod rows;
#[cfg(feature = "devices")]
mod seal;

#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "postgres-async")]
pub mod pg_async;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis-async")]
pub mod redis_async;
#[cfg(feature = "redis")]
pub mod redis_ratelimit;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::StoresError;
#[cfg(all(feature = "families", feature = "devices"))]
#[doc(hidden)]
pub use fuzz_rows::{fuzz_decode_rows, fuzz_seed_rows};
pub use pool::PoolConfig;
#[cfg(feature = "devices")]
pub use seal::{AeadSealer, DerivedSecrets, MAX_SEALED_BYTES, SecretSealer};
