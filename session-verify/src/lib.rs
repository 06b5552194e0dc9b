//! `session-verify`: verifier policy, session tokens and the HMAC device handshake.
//!
//! See the [`device`] module for the device handshake (client and gateway side),
//! device registry, device sessions and audit events.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod device;
