#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
#[cfg(all(feature = "families", feature = "devices"))]
mod fuzz_rows;
mod pool;
// The SQL engines (which enable `families` and `devices`) and the Redis session store.
#[cfg(all(feature = "devices", any(feature = "families", feature = "redis")))]
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
#[cfg(feature = "redis")]
pub mod redis_sessions;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::StoresError;
#[cfg(all(feature = "families", feature = "devices"))]
#[doc(hidden)]
pub use fuzz_rows::{fuzz_decode_rows, fuzz_seed_rows};
pub use pool::PoolConfig;
#[cfg(feature = "devices")]
pub use seal::{AeadSealer, DerivedSecrets, MAX_SEALED_BYTES, SecretSealer};
