#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! HMAC-SHA256 device handshake, device registry and device sessions (Sans-IO).
//!
//! A device holds an id, a key id and a secret ([`DeviceCredentials`]). It sends a
//! [`HandshakeMessage`]: device id, key id, nonce, timestamp, body hash and a MAC over a
//! length-prefixed canonical encoding ([`handshake_mac_input`]) that starts with a domain
//! tag and a version and also covers the gateway id. The [`Gateway`] checks, in order:
//! size caps, parse, then the MAC (length first, constant time) under the claimed key of
//! the claimed device, so that an unknown device, an unknown key and a bad MAC are one
//! refusal with one audit event that names no device; then device approved, key active or
//! retiring inside its overlap, a symmetric skew window (server time in the refusal), the
//! restart rule, the body hash, the device's share of the nonce store (a per-device
//! quota), and only then reserves the nonce in a
//! [`ReplayLog`](handoff_core::replay::ReplayLog), failing closed when the store is full. On success it issues a device session with an opaque `dvs1.`
//! token; heartbeats extend the idle expiry (never the absolute one) and rotate the token
//! with a short overlap.
//!
//! Session tokens carry a tag under the gateway's session key: a token the gateway never
//! issued for the session (a forged secret next to a known session id) is refused without
//! touching the session; only an authentic stale token (a copied chain) revokes it.
//!
//! Every outcome carries an [`AuditEvent`] for the caller to persist; operator decisions
//! (approve, deny, suspend, resume, revoke, rotate a key) are pure functions on a
//! [`DeviceRecord`] returning a [`Transition`] to write with compare-and-set.
//!
//! ```
//! use handoff_core::replay::InMemoryReplayLog;
//! use handoff_core::{HmacSecret, UnixTime};
//! use handoff_device::*;
//!
//! let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let boot = UnixTime::from_secs(1_700_000_000);
//! let gateway = Gateway::builder(
//!     GatewayId::new("gw-eu-1")?,
//!     boot,
//!     HmacSecret::generate(&mut rng),
//! )
//! .build()?;
//! let registry = InMemoryDeviceRegistry::new(10_000);
//! let nonces = InMemoryReplayLog::new(100_000);
//!
//! // Provisioning: the device asks to pair, an operator approves.
//! let (device_id, key_id) = (DeviceId::new("sensor-42")?, KeyId::new("k1")?);
//! let secret = HmacSecret::generate(&mut rng);
//! let request = DeviceRecord::request_pairing(
//!     device_id.clone(), key_id.clone(), secret.clone(), boot, 3_600,
//! );
//! registry.insert(&request.record)?;
//! let approval = request.record.approve(&OperatorId::new("alice")?, boot.saturating_add(60))?;
//! let _audit: AuditEvent = approval.commit(&registry)?;
//!
//! // Device side: build a handshake; gateway side: verify it and issue a session.
//! let now = boot.saturating_add(120);
//! let creds = DeviceCredentials::new(device_id, key_id, secret);
//! let msg = creds.handshake(gateway.gateway_id(), now, body_hash(b""), &mut rng);
//! let issued = gateway
//!     .handshake(msg.to_wire().as_bytes(), b"", &registry, &nonces, now, &mut rng)
//!     .map_err(|r| r.error)?;
//! assert!(issued.token.expose().starts_with("dvs1."));
//! // persist issued.session and issued.audit, send issued.token to the device
//!
//! // Heartbeat: parse the token, load the session and the device, decide.
//! let presented = PresentedToken::parse(issued.token.expose())?;
//! assert_eq!(presented.session_id(), issued.session.session_id);
//! let device = registry.load(&issued.session.device_id)?.ok_or("device gone")?;
//! match gateway.heartbeat(&issued.session, &device, &presented, now.saturating_add(60)) {
//!     HeartbeatDecision::Extended { update } => assert_eq!(update.expected_version, 0),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `audit-log`: module `audit_log`, an append-only JSON Lines file sink for
//!   audit events (fsync policy, size-based rotation, a reader that skips a torn last
//!   line); the crate's only I/O.
//! - `tracing`: audit events as `tracing` events.
//! - `encrypted-keys`: device secrets as passphrase-encrypted PKCS#8.

mod audit;
#[cfg(feature = "audit-log")]
pub mod audit_log;
#[cfg(feature = "tracing")]
pub mod audit_tracing;
mod gateway;
mod quota;
mod registry;
mod registry_async;
mod session;
mod session_store;
mod wire;

use handoff_core::UnixTime;

pub use audit::{AuditEvent, FailureReason, SESSION_REF_LEN, SessionEndReason, SessionRef};
pub use gateway::{
    DEFAULT_SKEW_SECS, Gateway, GatewayBuilder, MAX_NONCE_QUOTA, MAX_SKEW_SECS, NONCE_PURPOSE,
    PendingHandshake, Rejection, VerifiedHandshake,
};
pub use quota::{DEFAULT_NONCE_QUOTA, DEFAULT_QUOTA_DEVICES};
pub use registry::{
    DeviceKey, DeviceRecord, DeviceRegistry, DeviceState, InMemoryDeviceRegistry, KeyStatus,
    MAX_KEYS_PER_DEVICE, PairingRequest, Transition, derive_device_secret,
};
pub use registry_async::AsyncDeviceRegistry;
pub use session::{
    DeviceSession, HeartbeatDecision, IssuedSession, PresentedToken, SESSION_TOKEN_LEN,
    SESSION_TOKEN_PREFIX, SessionId, SessionPolicy, SessionToken, SessionUpdate,
};
pub use session_store::{
    AsyncDeviceSessionStore, DeviceSessionStore, InMemoryDeviceSessionStore,
    MAX_HEARTBEAT_ATTEMPTS, StoredHeartbeat, StoredSession,
};
pub use wire::{
    DeviceCredentials, DeviceId, GatewayId, HANDSHAKE_DOMAIN, HANDSHAKE_PREFIX, HANDSHAKE_VERSION,
    HandshakeMessage, KeyId, MAX_HANDSHAKE_BYTES, MAX_ID_BYTES, MAX_MAC_BYTES, MAX_NONCE_BYTES,
    MIN_NONCE_BYTES, OperatorId, body_hash, handshake_mac_input,
};

/// Everything that can go wrong in the device handshake, registry and sessions.
///
/// What the device learns is deliberately coarse where detail would help an attacker:
/// unknown device, unknown key, device not approved, inactive key and a bad MAC all read
/// [`DeviceError::Unauthorized`]; the [`AuditEvent`] tells the operator which it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The handshake message is over the size cap; nothing was parsed.
    #[error(
        "handshake message is {len} bytes, over the {max}-byte cap; send a well-formed dvh1 message"
    )]
    MessageTooLarge {
        /// Length received.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The handshake message is malformed.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// An identifier is empty, too long or has disallowed characters.
    #[error("invalid {0}: use 1 to 64 characters among A-Z a-z 0-9 - _ :")]
    InvalidId(&'static str),
    /// The device is not authorized (unknown device or key, not approved, inactive key or
    /// bad MAC). Deliberately uniform.
    #[error("device not authorized; check its id, key and approval with the operator")]
    Unauthorized,
    /// The timestamp lies outside the skew window; the server time is given so the
    /// device can correct its clock.
    #[error(
        "timestamp {device_time} is more than {max_skew} s from the server time {server_time}; correct the device clock and sign a new handshake"
    )]
    ClockSkew {
        /// The gateway clock.
        server_time: UnixTime,
        /// The device's timestamp.
        device_time: UnixTime,
        /// The window in force.
        max_skew: u64,
    },
    /// The timestamp predates the gateway's restart.
    #[error(
        "timestamp precedes the gateway restart at {not_before} (server time {server_time}); sign a new handshake with the current time"
    )]
    BeforeRestart {
        /// The first timestamp accepted.
        not_before: UnixTime,
        /// The gateway clock.
        server_time: UnixTime,
    },
    /// The message's body hash differs from the hash of the body received.
    #[error(
        "the handshake covers another body than the one received; sign the handshake over the body you send"
    )]
    BodyMismatch,
    /// The nonce was already used.
    #[error("nonce already used; sign a new handshake with a fresh random nonce")]
    Replayed,
    /// The authenticated device holds its whole share of the nonce store (too many
    /// handshakes, or handshakes dated ahead of the server clock).
    #[error(
        "this device holds its whole share of handshake nonces; retry at {retry_at} and handshake less often"
    )]
    NonceQuotaExceeded {
        /// When the device's oldest nonce slot frees.
        retry_at: UnixTime,
    },
    /// The nonce store is full of live entries; refused to stay safe.
    #[error("nonce store at capacity: handshake refused to stay safe; retry later")]
    NonceStoreFull,
    /// The nonce store could not answer.
    #[error("nonce store unavailable: {0}; retry later")]
    NonceStoreUnavailable(String),
    /// A device record is inconsistent, or a key change would make it so.
    #[error("invalid device record: {0}")]
    InvalidRecord(&'static str),
    /// The operator action is not allowed from the device's state.
    #[error("cannot {action} a device that is {from}")]
    InvalidTransition {
        /// The current state.
        from: &'static str,
        /// The action attempted.
        action: &'static str,
    },
    /// The pairing request expired before approval.
    #[error(
        "the pairing request expired at {expired_at}; record the expiry and ask the device to request pairing again"
    )]
    PairingExpired {
        /// When it expired.
        expired_at: UnixTime,
    },
    /// The stored record changed since it was loaded.
    #[error("the stored record changed since it was loaded; reload it and decide again")]
    VersionConflict,
    /// A record with this device id already exists.
    #[error("a device with this id is already registered")]
    AlreadyRegistered,
    /// The in-memory registry is full.
    #[error(
        "device registry full ({capacity} records); purge stale requests or raise the capacity"
    )]
    RegistryFull {
        /// The capacity.
        capacity: usize,
    },
    /// The registry could not answer.
    #[error("device registry unavailable: {0}; retry later")]
    RegistryUnavailable(String),
    /// The gateway configuration is out of bounds.
    #[error("invalid gateway configuration: {0}")]
    Config(&'static str),
    /// The presented session token is malformed.
    #[error("malformed device session token: {0}")]
    MalformedSessionToken(&'static str),
    /// The token names another session or device than the records passed in.
    #[error(
        "the token does not belong to this session; look the session up by the token's session id"
    )]
    WrongSession,
    /// The session has expired (idle or absolute).
    #[error("device session expired at {expired_at}; perform a new handshake")]
    SessionExpired {
        /// When it expired.
        expired_at: UnixTime,
    },
    /// The session was revoked.
    #[error("device session revoked; perform a new handshake")]
    SessionRevoked,
    /// The presented token is not one this gateway issued for the session (a wrong or
    /// forged secret): refused, the session is left as it was.
    #[error(
        "device session token not recognised; present the token the gateway issued last, or perform a new handshake"
    )]
    SessionTokenUnrecognised,
    /// No stored session has the token's session id (it ended and was purged, or was
    /// never stored).
    #[error(
        "device session not found (ended and purged, or never issued); perform a new handshake"
    )]
    SessionNotFound,
    /// A session with this id is already stored.
    #[error("a device session with this id is already stored; issue a new session")]
    SessionExists,
    /// The in-memory session store is full.
    #[error(
        "device session store full ({capacity} sessions); purge ended sessions or raise the capacity"
    )]
    SessionStoreFull {
        /// The capacity.
        capacity: usize,
    },
    /// The session store could not answer.
    #[error("device session store unavailable: {0}; retry later")]
    SessionStoreUnavailable(String),
    /// An old session token was presented: the session is now revoked.
    #[error(
        "stale device session token presented; the session is revoked, perform a new handshake"
    )]
    SessionTokenReused,
}

/// Fuzzing entry point: parses a handshake message and a session token from arbitrary
/// bytes. Never panics.
#[doc(hidden)]
pub fn fuzz_parse_handshake(bytes: &[u8]) {
    if let Ok(msg) = HandshakeMessage::parse(bytes) {
        let again = HandshakeMessage::parse(msg.to_wire().as_bytes());
        debug_assert!(again.as_ref().is_ok_and(|m| m == &msg));
    }
    if let Ok(text) = core::str::from_utf8(bytes) {
        let _ = PresentedToken::parse(text);
    }
}
