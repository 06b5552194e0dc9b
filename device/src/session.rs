//! Device sessions: opaque rotating bearer tokens, idle and absolute lifetimes.

use core::fmt;

use handoff_core::{UnixTime, b64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::DeviceError;
use super::audit::{AuditEvent, SessionEndReason, SessionRef};
use super::wire::{DeviceId, pae};

/// Prefix of every device session token: never mistaken for a JWT (which starts `ey`).
pub const SESSION_TOKEN_PREFIX: &str = "dvs1.";
/// Exact length of a session token: `dvs1.` + 22 characters of session id + `.` + 43
/// characters of secret.
pub const SESSION_TOKEN_LEN: usize = 71;

/// Identifier of a device session: 128 random bits. Not a credential on its own, but part
/// of the bearer token's lookup path, so audit events carry a hash of it instead
/// ([`SessionId::audit_ref`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// Wraps 16 bytes (for example read back from storage).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Unpadded base64url, for use as a storage key.
    #[must_use]
    pub fn to_base64url(&self) -> String {
        b64::encode(&self.0)
    }

    /// The reference audit events carry: 12 bytes of a domain-separated SHA-256 of the id,
    /// base64url.
    #[must_use]
    pub fn audit_ref(&self) -> SessionRef {
        let h: [u8; 32] =
            Sha256::digest(pae(&[b"identity/device-session/ref", b"v1", &self.0])).into();
        let mut prefix = [0u8; 12];
        prefix.copy_from_slice(&h[..12]);
        SessionRef::from_hash_prefix(&prefix)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(ref {})", self.audit_ref())
    }
}

/// A device session bearer token, as sent to the device. Zeroized on drop, never
/// printed, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionToken(String);

impl SessionToken {
    pub(crate) fn new(session_id: &SessionId, secret: &[u8; 32]) -> Self {
        Self(format!(
            "{SESSION_TOKEN_PREFIX}{}.{}",
            session_id.to_base64url(),
            b64::encode(secret)
        ))
    }

    /// The token text, to send to the device. Handle with care.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for SessionToken {}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken").finish_non_exhaustive()
    }
}

/// A session token presented by a device, parsed: load the session named by
/// [`PresentedToken::session_id`], then call [`super::Gateway::heartbeat`].
#[derive(Clone)]
pub struct PresentedToken {
    session_id: SessionId,
    secret: Zeroizing<[u8; 32]>,
}

impl PresentedToken {
    /// Parses a token, size first.
    ///
    /// # Errors
    /// [`DeviceError::MalformedSessionToken`] when it is not exactly a `dvs1.` token.
    pub fn parse(token: &str) -> Result<Self, DeviceError> {
        if token.len() != SESSION_TOKEN_LEN {
            return Err(DeviceError::MalformedSessionToken(
                "wrong length; a device session token is exactly 71 characters",
            ));
        }
        let rest =
            token
                .strip_prefix(SESSION_TOKEN_PREFIX)
                .ok_or(DeviceError::MalformedSessionToken(
                    "it does not start with dvs1.; this is not a device session token",
                ))?;
        let (sid, secret) = rest
            .split_once('.')
            .ok_or(DeviceError::MalformedSessionToken(
                "the session id and secret are not separated by a dot",
            ))?;
        let sid: [u8; 16] = b64::decode(sid)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(DeviceError::MalformedSessionToken(
                "the session id is not 16 bytes of unpadded base64url",
            ))?;
        let secret = Zeroizing::new(b64::decode(secret).map_err(|_| {
            DeviceError::MalformedSessionToken("the secret is not unpadded base64url")
        })?);
        let secret: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| DeviceError::MalformedSessionToken("the secret is not 32 bytes"))?;
        Ok(Self {
            session_id: SessionId(sid),
            secret: Zeroizing::new(secret),
        })
    }

    /// The session the token names (unauthenticated until checked).
    #[must_use]
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    pub(crate) fn hash(&self) -> [u8; 32] {
        token_hash(&self.session_id, &self.secret)
    }
}

impl fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// The stored hash of a token secret (the only trace of a token kept server side).
pub(crate) fn token_hash(sid: &SessionId, secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(pae(&[
        b"identity/device-session/token",
        b"v1",
        &sid.0,
        secret,
    ]))
    .into()
}

/// Session lifetimes and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Seconds without a heartbeat after which the session ends (1.5 to 3 times the
    /// heartbeat interval). Default 180.
    pub idle_timeout: u64,
    /// Seconds after creation at which the session ends whatever the heartbeats.
    /// Default 86 400 (one day).
    pub max_lifetime: u64,
    /// Seconds after which a heartbeat rotates the token. Default 900.
    pub rotate_after: u64,
    /// Seconds after a rotation during which the previous token still gets the same
    /// successor. Default 30.
    pub overlap: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: 180,
            max_lifetime: 86_400,
            rotate_after: 900,
            overlap: 30,
        }
    }
}

impl SessionPolicy {
    pub(crate) fn check(&self) -> Result<(), DeviceError> {
        if self.idle_timeout == 0 || self.max_lifetime == 0 || self.rotate_after == 0 {
            return Err(DeviceError::Config(
                "session idle timeout, max lifetime and rotate_after must be positive",
            ));
        }
        if self.idle_timeout > self.max_lifetime {
            return Err(DeviceError::Config(
                "session idle timeout exceeds the max lifetime; lower it",
            ));
        }
        if self.overlap >= self.rotate_after || self.overlap > 300 {
            return Err(DeviceError::Config(
                "session overlap must be shorter than rotate_after and at most 300 s",
            ));
        }
        Ok(())
    }
}

/// A device session record: what the caller stores (serde-serializable) and passes back
/// on each heartbeat. It holds token hashes only, never a token.
///
/// Write updates with compare-and-set on `version` (`UPDATE device_sessions SET ...
/// WHERE session_id = $1 AND version = $2`), so two concurrent heartbeats cannot both
/// rotate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSession {
    /// The session id (storage key).
    pub session_id: SessionId,
    /// The device it belongs to.
    pub device_id: DeviceId,
    /// Creation time; the absolute lifetime counts from here and is never re-anchored.
    pub created_at: UnixTime,
    /// Last accepted heartbeat (or creation).
    pub last_seen: UnixTime,
    /// Idle timeout in seconds, fixed at creation.
    pub idle_timeout: u64,
    /// Absolute lifetime in seconds, fixed at creation.
    pub max_lifetime: u64,
    /// When the current token was issued.
    pub rotated_at: UnixTime,
    /// Hash of the current token.
    pub current_hash: [u8; 32],
    /// Hash of the previous token, accepted through `overlap_until`.
    pub previous_hash: Option<[u8; 32]>,
    /// End of the previous token's overlap (inclusive).
    pub overlap_until: UnixTime,
    /// Generation of the current token (0 for the first).
    pub generation: u64,
    /// Set when the session was revoked (terminal).
    pub revoked_at: Option<UnixTime>,
    /// Incremented on every write, for compare-and-set.
    pub version: u64,
}

impl DeviceSession {
    /// `min(last_seen + idle_timeout, created_at + max_lifetime)`; the session is valid
    /// strictly before this instant.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.last_seen
            .saturating_add(self.idle_timeout)
            .min(self.absolute_expiry())
    }

    /// `created_at + max_lifetime`, which no heartbeat extends.
    #[must_use]
    pub fn absolute_expiry(&self) -> UnixTime {
        self.created_at.saturating_add(self.max_lifetime)
    }

    /// Revokes the session (logout, operator action).
    pub fn revoke(&self, now: UnixTime) -> SessionUpdate {
        self.revoked(now, SessionEndReason::Explicit)
    }

    pub(crate) fn revoked(&self, now: UnixTime, reason: SessionEndReason) -> SessionUpdate {
        let mut session = self.clone();
        session.revoked_at = Some(now);
        session.version = self.version.saturating_add(1);
        SessionUpdate {
            audit: AuditEvent::SessionRevoked {
                device_id: self.device_id.clone(),
                session_ref: self.session_id.audit_ref(),
                reason,
                at: now,
            },
            expected_version: self.version,
            session,
        }
    }
}

impl fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSession")
            .field("session_id", &self.session_id)
            .field("device_id", &self.device_id)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("generation", &self.generation)
            .field("revoked_at", &self.revoked_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A session record to write with compare-and-set, and its audit event.
#[must_use = "the session update must be persisted"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    /// The record to write.
    pub session: DeviceSession,
    /// The version the stored record must still have.
    pub expected_version: u64,
    /// The audit event to persist.
    pub audit: AuditEvent,
}

/// What a heartbeat decided.
#[must_use = "a heartbeat decision carries a record to persist and an audit event"]
#[derive(Debug)]
#[non_exhaustive]
pub enum HeartbeatDecision {
    /// Valid; the idle expiry moved forward (never past the absolute one). Persist
    /// `update`; the device keeps its token.
    Extended {
        /// Record, expected version and audit event.
        update: SessionUpdate,
    },
    /// Valid; the device must use `token` from now on. Persist `update`. Inside the
    /// overlap, the previous token gets this same token again.
    Rotated {
        /// Record, expected version and audit event.
        update: SessionUpdate,
        /// The successor token to send.
        token: SessionToken,
    },
    /// Refused. Persist `update` when present (the session was revoked now), and write
    /// `audit`.
    Refused {
        /// What to tell the device.
        error: DeviceError,
        /// A revoked record to write, when this heartbeat revoked the session.
        update: Option<SessionUpdate>,
        /// The audit event (the same as `update.audit` when there is an update).
        audit: AuditEvent,
    },
}

/// A freshly issued session: the token to send and the record to insert.
#[must_use = "the session record must be stored and the token sent"]
#[derive(Debug)]
pub struct IssuedSession {
    /// The bearer token for the device.
    pub token: SessionToken,
    /// The record to insert (by `session.session_id`).
    pub session: DeviceSession,
    /// `HandshakeOk` then `SessionIssued`.
    pub audit: [AuditEvent; 2],
}
