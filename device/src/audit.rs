//! Audit events: values the caller writes (for example as JSON lines, see the `audit-log`
//! feature). They never contain secrets, session tokens, token hashes or MACs, by
//! construction: every field is an identifier type that validates its text (1 to 64 of
//! `A-Z a-z 0-9 - _ :`, too short and too narrow for a 32-byte secret in base64url), a
//! time, a closed enum, or a [`SessionRef`], which only a hash of a session id can make.

use core::fmt;

use handoff_core::UnixTime;
use serde::{Deserialize, Serialize};

use super::wire::{DeviceId, KeyId, OperatorId};

/// How audit events name a session: 12 bytes of a domain-separated SHA-256 of the session
/// id, unpadded base64url (16 characters). Made only by
/// [`SessionId::audit_ref`](super::SessionId::audit_ref) (or read back from a log, where
/// the text is checked to have that shape), so it can never carry a token or a secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionRef(String);

/// Length of a [`SessionRef`] in characters.
pub const SESSION_REF_LEN: usize = 16;

impl SessionRef {
    pub(crate) fn from_hash_prefix(prefix: &[u8; 12]) -> Self {
        Self(handoff_core::b64::encode(prefix))
    }

    /// The reference text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionRef {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == SESSION_REF_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Self(s))
        } else {
            Err("a session reference is 16 characters of unpadded base64url")
        }
    }
}

impl From<SessionRef> for String {
    fn from(r: SessionRef) -> String {
        r.0
    }
}

impl fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionRef({})", self.0)
    }
}

impl fmt::Display for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a handshake was refused, as recorded in the audit log. The device itself only ever
/// learns [`super::DeviceError::Unauthorized`] for unauthenticated, not approved and
/// inactive-key refusals.
///
/// Before the MAC verifies, nothing is known about the sender: every such refusal is
/// [`FailureReason::Unauthenticated`] with no device or key id, whether the claimed
/// device exists or not. The gateway no longer emits `UnknownDevice`, `UnknownKey` or
/// `BadMac` (kept so stored logs still deserialize in readers that match on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureReason {
    /// The message was too large or malformed.
    Malformed,
    /// Unknown device, unknown key, or a MAC that does not verify: deliberately one
    /// reason, recorded without the claimed ids.
    Unauthenticated,
    /// The authenticated device holds its whole share of the nonce store.
    QuotaExceeded,
    /// No longer emitted (see [`FailureReason::Unauthenticated`]).
    UnknownDevice,
    /// No longer emitted (see [`FailureReason::Unauthenticated`]).
    UnknownKey,
    /// The device is pending, denied, expired, suspended or revoked.
    NotApproved,
    /// The key is retiring and its overlap has ended.
    KeyInactive,
    /// The timestamp lies outside the skew window.
    Skew,
    /// The timestamp predates the gateway's restart (the nonce store was empty then).
    BeforeRestart,
    /// The body hash in the message differs from the hash of the body received.
    BodyMismatch,
    /// No longer emitted (see [`FailureReason::Unauthenticated`]).
    BadMac,
    /// The nonce was already used.
    Replay,
    /// The nonce store is full of live entries (failed closed).
    StoreFull,
    /// The device registry or the nonce store could not answer (failed closed).
    StoreUnavailable,
}

/// Why a device session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEndReason {
    /// A token older than the previous one, or the previous one after its overlap, was
    /// presented: the token chain was copied.
    TokenReuse,
    /// The device is no longer approved (suspended, revoked).
    DeviceNotApproved,
    /// The caller ended it (logout, operator action).
    Explicit,
}

/// One audit event. Serialize it (it is `serde::Serialize`, internally tagged by `event`)
/// and persist it; nothing in it is secret.
///
/// Sessions are named by `session_ref`, a hash of the session id: the session id is part
/// of the bearer token's lookup path and is kept out of logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A device asked to be paired; an operator must decide before it expires.
    PairingRequested {
        /// The device.
        device_id: DeviceId,
        /// Its first key.
        key_id: KeyId,
        /// When.
        at: UnixTime,
        /// When the request expires unless approved.
        expires_at: UnixTime,
    },
    /// An operator approved a pending device.
    Approved {
        /// The device.
        device_id: DeviceId,
        /// The operator.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// An operator denied a pending device.
    Denied {
        /// The device.
        device_id: DeviceId,
        /// The operator.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// A pending request passed its expiry.
    PairingExpired {
        /// The device.
        device_id: DeviceId,
        /// When the expiry was recorded.
        at: UnixTime,
    },
    /// An operator suspended an approved device.
    Suspended {
        /// The device.
        device_id: DeviceId,
        /// The operator.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// An operator resumed a suspended device.
    Resumed {
        /// The device.
        device_id: DeviceId,
        /// The operator.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// An operator revoked a device (terminal; its sessions end at their next heartbeat).
    Revoked {
        /// The device.
        device_id: DeviceId,
        /// The operator.
        by: OperatorId,
        /// When.
        at: UnixTime,
    },
    /// A new key was added; the previous active key is retiring until `old_key_until`.
    KeyRotated {
        /// The device.
        device_id: DeviceId,
        /// The new active key.
        new_key_id: KeyId,
        /// The key now retiring, if there was an active one.
        old_key_id: Option<KeyId>,
        /// End of the retiring key's overlap.
        old_key_until: UnixTime,
        /// When.
        at: UnixTime,
    },
    /// A handshake was accepted.
    HandshakeOk {
        /// The device.
        device_id: DeviceId,
        /// The key that authenticated it.
        key_id: KeyId,
        /// Gateway time.
        at: UnixTime,
    },
    /// A handshake was refused.
    HandshakeFailed {
        /// The claimed device id, when the message parsed.
        device_id: Option<DeviceId>,
        /// The claimed key id, when the message parsed.
        key_id: Option<KeyId>,
        /// Why.
        reason: FailureReason,
        /// Gateway time.
        at: UnixTime,
    },
    /// A device session was issued after a handshake.
    SessionIssued {
        /// The device.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// When the session expires unless refreshed (never after its absolute end).
        expires_at: UnixTime,
        /// When.
        at: UnixTime,
    },
    /// A heartbeat extended the idle part of a session.
    SessionExtended {
        /// The device.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// New expiry.
        expires_at: UnixTime,
        /// When.
        at: UnixTime,
    },
    /// A heartbeat rotated the session token (or repeated the rotation inside the overlap).
    SessionRotated {
        /// The device.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// Generation of the token now current.
        generation: u64,
        /// Whether this answered the previous token inside the overlap (same successor).
        repeated: bool,
        /// When.
        at: UnixTime,
    },
    /// A heartbeat arrived after the session had expired.
    SessionExpired {
        /// The device.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// When it expired.
        expired_at: UnixTime,
        /// When the heartbeat arrived.
        at: UnixTime,
    },
    /// A heartbeat was refused without changing the session: it was already revoked, or
    /// the token named another session or device.
    SessionRefused {
        /// The device of the session.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// When.
        at: UnixTime,
    },
    /// A session was revoked.
    SessionRevoked {
        /// The device.
        device_id: DeviceId,
        /// Hash reference of the session.
        session_ref: SessionRef,
        /// Why.
        reason: SessionEndReason,
        /// When.
        at: UnixTime,
    },
}

impl AuditEvent {
    /// The event's name as serialized in the `event` member (`"handshake_failed"`, ...).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::PairingRequested { .. } => "pairing_requested",
            Self::Approved { .. } => "approved",
            Self::Denied { .. } => "denied",
            Self::PairingExpired { .. } => "pairing_expired",
            Self::Suspended { .. } => "suspended",
            Self::Resumed { .. } => "resumed",
            Self::Revoked { .. } => "revoked",
            Self::KeyRotated { .. } => "key_rotated",
            Self::HandshakeOk { .. } => "handshake_ok",
            Self::HandshakeFailed { .. } => "handshake_failed",
            Self::SessionIssued { .. } => "session_issued",
            Self::SessionExtended { .. } => "session_extended",
            Self::SessionRotated { .. } => "session_rotated",
            Self::SessionExpired { .. } => "session_expired",
            Self::SessionRefused { .. } => "session_refused",
            Self::SessionRevoked { .. } => "session_revoked",
        }
    }

    /// Whether the event records a refusal or a revocation (worth a warning in logs).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::HandshakeFailed { .. }
                | Self::SessionExpired { .. }
                | Self::SessionRefused { .. }
                | Self::SessionRevoked { .. }
                | Self::Denied { .. }
                | Self::Revoked { .. }
        )
    }

    /// The device the event is about, when it names one.
    #[must_use]
    pub fn device_id(&self) -> Option<&DeviceId> {
        match self {
            Self::HandshakeFailed { device_id, .. } => device_id.as_ref(),
            Self::PairingRequested { device_id, .. }
            | Self::Approved { device_id, .. }
            | Self::Denied { device_id, .. }
            | Self::PairingExpired { device_id, .. }
            | Self::Suspended { device_id, .. }
            | Self::Resumed { device_id, .. }
            | Self::Revoked { device_id, .. }
            | Self::KeyRotated { device_id, .. }
            | Self::HandshakeOk { device_id, .. }
            | Self::SessionIssued { device_id, .. }
            | Self::SessionExtended { device_id, .. }
            | Self::SessionRotated { device_id, .. }
            | Self::SessionExpired { device_id, .. }
            | Self::SessionRefused { device_id, .. }
            | Self::SessionRevoked { device_id, .. } => Some(device_id),
        }
    }
}
