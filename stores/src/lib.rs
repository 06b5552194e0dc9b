#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod pool;

#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod redis_ratelimit;

pub use error::StoresError;
#[cfg(any(feature = "redis", feature = "postgres"))]
pub use pool::PoolConfig;
