#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
mod pool;
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
pub use pool::PoolConfig;
#[cfg(feature = "devices")]
pub use seal::{AeadSealer, DerivedSecrets, MAX_SEALED_BYTES, SecretSealer};
