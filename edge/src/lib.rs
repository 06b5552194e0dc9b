#![doc = include_str!("../README.md")]
//!
//! `handoff-edge`: the async edge of the handoff family on tokio, axum/tower and reqwest
//! (rustls). The Sans-IO crates decide; this crate performs the I/O they ask for.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod auth;
pub mod client;
mod clock;
#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "device")]
mod device_client;
mod error;
mod extract;
#[doc(hidden)]
pub mod fuzz;
pub mod jwks;
mod layer;
pub mod token_service;

pub use auth::{
    AccessRevocation, AuthRejection, DpopAccess, EdgeAuth, EdgeAuthBuilder, Keys,
    MAX_AUTHORIZATION_BYTES,
};
pub use client::{ClientResponse, DpopClient};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::EdgeError;
pub use extract::{Access, Dpop, Host, RequiredScopes, Service};
pub use jwks::{FetchFailure, FetchStatus, RemoteJwks, RemoteJwksBuilder};
pub use layer::{EdgeAuthLayer, EdgeAuthService, Require};

/// The operating system's random number generator, as every part of the edge uses it.
pub(crate) fn system_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// The headers of a JSON answer that must not be cached (tokens, refusals):
/// `Content-Type: application/json`, `Cache-Control: no-store`.
pub(crate) fn json_no_store() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h
}
