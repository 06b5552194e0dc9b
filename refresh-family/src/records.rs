//! Stored records, the write plans that change them, and audit events.

use core::fmt;

use handoff_core::{Thumbprint, UnixTime};

use crate::token::{FamilyId, SecretHash, TokenId};

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// A used token was presented again outside grace.
    ReuseDetected,
    /// The user logged out.
    Logout,
    /// An administrator revoked it.
    Admin,
    /// A security event (password change, account compromise, revoke-all of a subject).
    SecurityEvent,
}

impl RevocationReason {
    /// Snake-case name, for logs and the `revoked_reason` column.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReuseDetected => "reuse_detected",
            Self::Logout => "logout",
            Self::Admin => "admin",
            Self::SecurityEvent => "security_event",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A family's stored status. Expiry is computed from `absolute_expires_at`, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FamilyStatus {
    /// Live: its head may rotate.
    Active,
    /// Terminal; the row stays as a tombstone until the absolute expiry.
    Revoked {
        /// When.
        at: UnixTime,
        /// Why.
        reason: RevocationReason,
    },
}

/// One refresh-token family (one login of one subject on one client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    /// Its id.
    pub id: FamilyId,
    /// The subject (user) it belongs to.
    pub subject: String,
    /// The OAuth client it was issued to.
    pub client_id: String,
    /// Creation (login) time: anchors the absolute lifetime.
    pub created_at: UnixTime,
    /// `created_at + absolute lifetime`; never moved by rotation.
    pub absolute_expires_at: UnixTime,
    /// The one live token.
    pub head: TokenId,
    /// The token the head was rotated from (the only one grace may accept).
    pub head_parent: Option<TokenId>,
    /// Generation of the head (0 at login).
    pub head_generation: u64,
    /// Compare-and-set version, bumped by every change of head or status.
    pub version: u64,
    /// Active or revoked.
    pub status: FamilyStatus,
    /// The RFC 7638 thumbprint of the DPoP key that obtained the family (RFC 9449
    /// section 5: refresh tokens of public clients are bound to the client's DPoP key), set
    /// once at creation and never changed. `None` for an unbound family. When set, every
    /// rotation must present a DPoP proof made with this key.
    pub dpop_jkt: Option<Thumbprint>,
}

impl FamilyRecord {
    /// Whether the family is terminal at `now` (revoked, or past its absolute expiry).
    #[must_use]
    pub fn is_terminal(&self, now: UnixTime) -> bool {
        !matches!(self.status, FamilyStatus::Active) || now >= self.absolute_expires_at
    }
    /// When a store may delete it and all its tokens: the end of its tombstone, which is
    /// its absolute expiry (a revoked family stays until then, so reuse stays detectable).
    #[must_use]
    pub const fn gc_after(&self) -> UnixTime {
        self.absolute_expires_at
    }
}

/// A token's stored state. Revocation is the family's; expiry is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenState {
    /// The family head, not yet used.
    Active,
    /// Used once: rotated into `successor` at `at` (the grace anchor, never moved).
    Rotated {
        /// The rotation time.
        at: UnixTime,
        /// The successor issued then.
        successor: TokenId,
        /// In-grace replays so far.
        grace_uses: u32,
    },
    /// A head displaced by an in-grace sibling ([`crate::GraceMode::IssueSibling`]).
    Superseded {
        /// When.
        at: UnixTime,
        /// The sibling that replaced it.
        by: TokenId,
    },
}

/// One refresh token's row. The secret is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its family.
    pub family: FamilyId,
    /// Its id.
    pub id: TokenId,
    /// The token it was rotated from (`None` for the login token).
    pub parent: Option<TokenId>,
    /// 0 at login, parent's + 1 after.
    pub generation: u64,
    /// SHA-256 of its secret.
    pub secret_hash: SecretHash,
    /// Issue time: anchors its idle lifetime.
    pub issued_at: UnixTime,
    /// Its state.
    pub state: TokenState,
}

/// What the caller loaded for a presented token: the family row and the token row, each
/// absent if the store has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The family row of the presented token's family id.
    pub family: Option<FamilyRecord>,
    /// The token row of the presented token's (family id, token id).
    pub token: Option<TokenRecord>,
}

/// A condition the store checks, atomically with the writes, before writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Guard {
    /// No family with this id exists.
    FamilyAbsent {
        /// The family.
        family: FamilyId,
    },
    /// The family exists, is `Active` and has exactly this version.
    FamilyVersion {
        /// The family.
        family: FamilyId,
        /// The version loaded.
        version: u64,
    },
    /// The token exists and is `Active`.
    TokenActive {
        /// The family.
        family: FamilyId,
        /// The token.
        token: TokenId,
    },
    /// The token exists, is `Rotated`, and has fewer than `max_uses` in-grace replays.
    TokenGraceBelow {
        /// The family.
        family: FamilyId,
        /// The token.
        token: TokenId,
        /// The cap.
        max_uses: u32,
    },
}

/// One write. A store applies all of a plan's writes or none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Write {
    /// Insert a new family row (guarded by [`Guard::FamilyAbsent`]).
    InsertFamily(FamilyRecord),
    /// Insert a new token row; an existing row with the same ids is a conflict.
    InsertToken(TokenRecord),
    /// Mark an active token rotated.
    MarkRotated {
        /// The family.
        family: FamilyId,
        /// The token.
        token: TokenId,
        /// Rotation time.
        at: UnixTime,
        /// The successor.
        successor: TokenId,
    },
    /// Add one to a rotated token's in-grace replays.
    IncrementGraceUses {
        /// The family.
        family: FamilyId,
        /// The token.
        token: TokenId,
    },
    /// Mark a head displaced by a sibling.
    MarkSuperseded {
        /// The family.
        family: FamilyId,
        /// The displaced token.
        token: TokenId,
        /// When.
        at: UnixTime,
        /// The sibling.
        by: TokenId,
    },
    /// Move the family head and set the version (the guard's version + 1).
    SetHead {
        /// The family.
        family: FamilyId,
        /// New head.
        head: TokenId,
        /// Its parent.
        head_parent: Option<TokenId>,
        /// Its generation.
        head_generation: u64,
        /// The new version.
        version: u64,
    },
    /// Delete every token row of the family whose id is not in `keep`. Never a conflict
    /// (it may delete nothing); the engine puts it last in a plan that inserts a token, so
    /// that a family holds at most [`MAX_TOKEN_ROWS_PER_FAMILY`] token rows whatever its
    /// rotations. A token whose row is gone still counts as reuse when presented.
    RetainTokens {
        /// The family.
        family: FamilyId,
        /// The rows to keep (at most [`MAX_TOKEN_ROWS_PER_FAMILY`]).
        keep: Vec<TokenId>,
    },
    /// Revoke the family and set the version (the guard's version + 1).
    RevokeFamily {
        /// The family.
        family: FamilyId,
        /// When.
        at: UnixTime,
        /// Why.
        reason: RevocationReason,
        /// The new version.
        version: u64,
    },
}

/// Everything one decision must persist, applied atomically by
/// [`crate::FamilyStore::apply`]: every guard holds and every write is made, or nothing
/// is written. Also lists the families whose access tokens the caller must revoke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct WritePlan {
    /// Conditions checked first.
    pub guards: Vec<Guard>,
    /// Writes, in order.
    pub writes: Vec<Write>,
    /// Families every access token of which the caller must revoke (after the plan applied).
    pub revoke_access_tokens: Vec<FamilyId>,
}

impl WritePlan {
    /// Whether there is nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// The most token rows a family holds in any store after any plan of this crate: the
/// head, its immediate predecessor (for grace and precise reuse reports) and, in
/// [`crate::GraceMode::IssueSibling`], the head the last sibling displaced. Every plan
/// that inserts a token ends with [`Write::RetainTokens`] naming exactly these.
pub const MAX_TOKEN_ROWS_PER_FAMILY: usize = 3;

/// Which kind of reuse was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReuseKind {
    /// A rotated token that is not the head's immediate predecessor.
    OlderToken,
    /// The immediate predecessor, but grace is off or its window is over.
    OutsideGrace,
    /// The immediate predecessor within its window, but over the use cap.
    GraceUsesExhausted,
    /// A head displaced by an in-grace sibling.
    Superseded,
    /// An authentic token whose row is gone in a live family: superseded rows are deleted
    /// as the family rotates (at most [`MAX_TOKEN_ROWS_PER_FAMILY`] are kept), so an
    /// older token of a live family lands here.
    UnknownToken,
}

/// An audit event, as a value the caller writes. Never contains a token or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A login started a family.
    FamilyStarted {
        /// The family.
        family: FamilyId,
        /// The subject.
        subject: String,
        /// The client.
        client_id: String,
        /// When.
        at: UnixTime,
    },
    /// The head rotated.
    Rotated {
        /// The family.
        family: FamilyId,
        /// The token used.
        from: TokenId,
        /// The new head.
        to: TokenId,
        /// The new head's generation.
        generation: u64,
        /// When.
        at: UnixTime,
    },
    /// The head's immediate predecessor was replayed within grace.
    GraceReplay {
        /// The family.
        family: FamilyId,
        /// The replayed token.
        token: TokenId,
        /// The token handed out (same successor, or a new sibling).
        issued: TokenId,
        /// The replay's use count (1 for the first replay).
        uses: u32,
        /// When.
        at: UnixTime,
    },
    /// Reuse was detected; a [`AuditEvent::FamilyRevoked`] follows.
    ReuseDetected {
        /// The family.
        family: FamilyId,
        /// The token presented.
        token: TokenId,
        /// What kind of reuse.
        kind: ReuseKind,
        /// When.
        at: UnixTime,
    },
    /// A family was revoked.
    FamilyRevoked {
        /// The family.
        family: FamilyId,
        /// Its subject.
        subject: String,
        /// Why.
        reason: RevocationReason,
        /// When.
        at: UnixTime,
    },
    /// A presentation was refused without writes.
    Refused {
        /// The family, when known.
        family: Option<FamilyId>,
        /// The token, when known.
        token: Option<TokenId>,
        /// [`crate::RefreshError::reason`].
        reason: &'static str,
        /// When.
        at: UnixTime,
    },
}
