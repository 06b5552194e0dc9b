//! Stored rows, engine-neutral: what a row of each table holds ([`FamilyColumns`],
//! [`TokenColumns`], [`DeviceColumns`], [`KeyColumns`], [`SessionColumns`]), one decoder
//! per record type and its inverse.
//!
//! Rows read back are untrusted input: the database may be shared with other software,
//! a row may be corrupted or tampered with. The SQLite and PostgreSQL adapters only copy
//! the columns out of their engine's row into these structs (text as raw bytes, so the
//! UTF-8 check happens here too); every rule about what a column may hold lives here,
//! once. A decoder never panics and allocates only what the row already holds (text is
//! length-checked before it becomes a `String`); what it refuses is a [`RowError`] naming
//! the column and what was wrong with it.
//!
//! The decoders accept exactly what the adapters write: a family, token, device or device
//! session row that decodes re-encodes to the same columns (the fuzz target
//! `stores_row_decode` checks it), so columns that the record's state has no use for must
//! be NULL (or 0 for `grace_uses`), and a session's stored `expires_at` must be the one
//! its other columns make. Key rows must come in strictly increasing positions 0 to 3; gaps are
//! accepted (the adapters write 0, 1, ...; the order is what the record keeps).
//!
//! The Redis device session store (`crate::redis_sessions`) keeps the same session
//! columns, as the fields of one value, and reads them back through the same
//! [`decode_session`]. It needs only the session part: the family, token and device
//! registry parts are compiled with `families`, which every SQL engine enables.

use core::fmt;

#[cfg(feature = "families")]
use handoff_core::Thumbprint;
use handoff_core::UnixTime;
#[cfg(feature = "devices")]
use handoff_device::{DeviceError, DeviceId, DeviceSession, SessionId};
#[cfg(all(feature = "devices", feature = "families"))]
use handoff_device::{
    DeviceKey, DeviceRecord, DeviceState, KeyId, KeyStatus, MAX_KEYS_PER_DEVICE, OperatorId,
};
#[cfg(feature = "families")]
use handoff_refresh::{
    FamilyId, FamilyRecord, FamilyStatus, MAX_NAME_BYTES, RefreshError, RevocationReason,
    SecretHash, TokenId, TokenRecord, TokenState,
};

#[cfg(all(feature = "devices", feature = "families"))]
use crate::seal::{MAX_SEALED_BYTES, SecretSealer};

/// What was wrong with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// NULL where the record needs a value.
    #[cfg_attr(not(feature = "families"), allow(dead_code))]
    Null,
    /// The engine holds another type than the schema's (an adapter-side check).
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code)
    )]
    Type,
    /// A byte length the schema does not allow (ids, hashes, names, sealed secrets).
    Length,
    /// A negative time, generation, version or count.
    Negative,
    /// A number beyond what the record can hold (grace uses, key position).
    OutOfRange,
    /// A status, state or reason code this crate does not know.
    #[cfg_attr(not(feature = "families"), allow(dead_code))]
    UnknownCode,
    /// Text that is not UTF-8.
    Utf8,
    /// A value where the record's state has none (the adapters write NULL or 0 there).
    #[cfg_attr(not(feature = "families"), allow(dead_code))]
    Unexpected,
    /// An identifier its type refuses (device, key and operator ids).
    Invalid,
    /// Key rows repeated or out of position order.
    #[cfg_attr(not(feature = "families"), allow(dead_code))]
    Order,
    /// More key rows than a device may hold.
    #[cfg_attr(not(feature = "families"), allow(dead_code))]
    TooMany,
    /// A derived column that is not what the record's other columns make (a session's
    /// `expires_at`).
    Mismatch,
}

const PROBLEMS: usize = 12;

impl Problem {
    const fn index(self) -> usize {
        match self {
            Self::Null => 0,
            Self::Type => 1,
            Self::Length => 2,
            Self::Negative => 3,
            Self::OutOfRange => 4,
            Self::UnknownCode => 5,
            Self::Utf8 => 6,
            Self::Unexpected => 7,
            Self::Invalid => 8,
            Self::Order => 9,
            Self::TooMany => 10,
            Self::Mismatch => 11,
        }
    }
}

/// A column of a table: its name and, made at compile time, the message of each
/// [`Problem`] it can have (the refresh error carries a `&'static str`).
#[derive(Debug)]
pub(crate) struct Col {
    pub(crate) name: &'static str,
    messages: [&'static str; PROBLEMS],
}

macro_rules! col {
    ($name:literal) => {
        Col {
            name: $name,
            messages: [
                concat!($name, " is NULL"),
                concat!($name, " has an unexpected type"),
                concat!($name, " has a length the schema does not allow"),
                concat!($name, " is negative"),
                concat!($name, " is out of range"),
                concat!($name, " holds an unknown code"),
                concat!($name, " is not valid UTF-8"),
                concat!($name, " is set where the record's state has no value"),
                concat!($name, " is not a valid identifier"),
                concat!($name, " is repeated or out of order"),
                concat!($name, ": more key rows than a device may hold"),
                concat!($name, " does not match the record's other columns"),
            ],
        }
    };
}

impl Col {
    /// The error of this column with `problem`.
    pub(crate) const fn err(&self, problem: Problem) -> RowError {
        RowError {
            column: self.name,
            problem,
            message: self.messages[problem.index()],
        }
    }
}

/// A stored row that does not decode: which column, what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowError {
    /// `table.column`.
    pub(crate) column: &'static str,
    /// What was wrong.
    pub(crate) problem: Problem,
    /// `table.column` and the problem, in words.
    pub(crate) message: &'static str,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

#[cfg(feature = "families")]
impl From<RowError> for RefreshError {
    fn from(e: RowError) -> Self {
        Self::Inconsistent(e.message)
    }
}

/// Every column the decoders know, `table.column`.
pub(crate) mod cols {
    use super::Col;

    #[cfg(feature = "families")]
    pub(crate) use registry::*;

    /// The refresh and device registry tables (every SQL engine; not the Redis
    /// session store).
    #[cfg(feature = "families")]
    mod registry {
        use super::Col;

        pub(crate) const F_ID: Col = col!("refresh_families.id");
        pub(crate) const F_SUBJECT: Col = col!("refresh_families.subject");
        pub(crate) const F_CLIENT_ID: Col = col!("refresh_families.client_id");
        pub(crate) const F_CREATED_AT: Col = col!("refresh_families.created_at");
        pub(crate) const F_ABSOLUTE_EXPIRES_AT: Col = col!("refresh_families.absolute_expires_at");
        pub(crate) const F_HEAD: Col = col!("refresh_families.head");
        pub(crate) const F_HEAD_PARENT: Col = col!("refresh_families.head_parent");
        pub(crate) const F_HEAD_GENERATION: Col = col!("refresh_families.head_generation");
        pub(crate) const F_VERSION: Col = col!("refresh_families.version");
        pub(crate) const F_STATUS: Col = col!("refresh_families.status");
        pub(crate) const F_REVOKED_AT: Col = col!("refresh_families.revoked_at");
        pub(crate) const F_REVOKED_REASON: Col = col!("refresh_families.revoked_reason");
        pub(crate) const F_DPOP_JKT: Col = col!("refresh_families.dpop_jkt");

        pub(crate) const T_FAMILY_ID: Col = col!("refresh_tokens.family_id");
        pub(crate) const T_ID: Col = col!("refresh_tokens.id");
        pub(crate) const T_PARENT: Col = col!("refresh_tokens.parent");
        pub(crate) const T_GENERATION: Col = col!("refresh_tokens.generation");
        pub(crate) const T_SECRET_HASH: Col = col!("refresh_tokens.secret_hash");
        pub(crate) const T_ISSUED_AT: Col = col!("refresh_tokens.issued_at");
        pub(crate) const T_STATE: Col = col!("refresh_tokens.state");
        pub(crate) const T_STATE_AT: Col = col!("refresh_tokens.state_at");
        pub(crate) const T_SUCCESSOR: Col = col!("refresh_tokens.successor");
        pub(crate) const T_GRACE_USES: Col = col!("refresh_tokens.grace_uses");

        pub(crate) const D_DEVICE_ID: Col = col!("devices.device_id");
        pub(crate) const D_STATE: Col = col!("devices.state");
        pub(crate) const D_STATE_BY: Col = col!("devices.state_by");
        pub(crate) const D_STATE_AT: Col = col!("devices.state_at");
        pub(crate) const D_EXPIRES_AT: Col = col!("devices.expires_at");
        pub(crate) const D_VERSION: Col = col!("devices.version");

        pub(crate) const K_KEY_ID: Col = col!("device_keys.key_id");
        pub(crate) const K_POSITION: Col = col!("device_keys.position");
        pub(crate) const K_STATUS: Col = col!("device_keys.status");
        pub(crate) const K_RETIRING_UNTIL: Col = col!("device_keys.retiring_until");
        pub(crate) const K_SEALED_SECRET: Col = col!("device_keys.sealed_secret");
    }

    pub(crate) const S_SESSION_ID: Col = col!("device_sessions.session_id");
    pub(crate) const S_DEVICE_ID: Col = col!("device_sessions.device_id");
    pub(crate) const S_CREATED_AT: Col = col!("device_sessions.created_at");
    pub(crate) const S_LAST_SEEN: Col = col!("device_sessions.last_seen");
    pub(crate) const S_IDLE_TIMEOUT: Col = col!("device_sessions.idle_timeout");
    pub(crate) const S_MAX_LIFETIME: Col = col!("device_sessions.max_lifetime");
    pub(crate) const S_ROTATED_AT: Col = col!("device_sessions.rotated_at");
    pub(crate) const S_CURRENT_HASH: Col = col!("device_sessions.current_hash");
    pub(crate) const S_PREVIOUS_HASH: Col = col!("device_sessions.previous_hash");
    pub(crate) const S_OVERLAP_UNTIL: Col = col!("device_sessions.overlap_until");
    pub(crate) const S_GENERATION: Col = col!("device_sessions.generation");
    pub(crate) const S_REVOKED_AT: Col = col!("device_sessions.revoked_at");
    pub(crate) const S_VERSION: Col = col!("device_sessions.version");
    pub(crate) const S_EXPIRES_AT: Col = col!("device_sessions.expires_at");
}

use cols::*;

// ---- column rules, shared by every decoder ----

/// A NULL-able column the record needs.
#[cfg(feature = "families")]
fn required<T>(v: Option<T>, c: &Col) -> Result<T, RowError> {
    v.ok_or(c.err(Problem::Null))
}

/// A column the record's state has no use for: must be NULL.
#[cfg(feature = "families")]
fn absent<T>(v: Option<&T>, c: &Col) -> Result<(), RowError> {
    match v {
        None => Ok(()),
        Some(_) => Err(c.err(Problem::Unexpected)),
    }
}

fn unsigned(v: i64, c: &Col) -> Result<u64, RowError> {
    u64::try_from(v).map_err(|_| c.err(Problem::Negative))
}

fn time(v: i64, c: &Col) -> Result<UnixTime, RowError> {
    unsigned(v, c).map(UnixTime::from_secs)
}

fn fixed<const N: usize>(v: &[u8], c: &Col) -> Result<[u8; N], RowError> {
    v.try_into().map_err(|_| c.err(Problem::Length))
}

/// Text of 1 to `max` bytes, UTF-8 (length first: nothing is copied before it holds).
fn text(v: &[u8], max: usize, c: &Col) -> Result<String, RowError> {
    if v.is_empty() || v.len() > max {
        return Err(c.err(Problem::Length));
    }
    core::str::from_utf8(v)
        .map(str::to_owned)
        .map_err(|_| c.err(Problem::Utf8))
}

/// A code column (status, state, reason): compared as bytes, never copied.
#[cfg(feature = "families")]
fn code<'a>(v: &'a [u8], c: &Col) -> Result<&'a str, RowError> {
    core::str::from_utf8(v).map_err(|_| c.err(Problem::UnknownCode))
}

/// An `i64` column from a `u64` value (`None` beyond `i64::MAX`).
fn big(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

/// A record value the columns cannot hold (a number beyond `i64::MAX`, a variant this
/// crate does not know). Only records made outside the engine can have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncodeError(pub(crate) &'static str);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A text column the encoders made from a `&str`, back as a `String` for binding.
///
/// # Errors
/// [`EncodeError`] if it is not UTF-8 (never: the encoder made it from a `&str`).
#[cfg(all(feature = "families", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn text_column(v: Vec<u8>) -> Result<String, EncodeError> {
    String::from_utf8(v).map_err(|_| EncodeError("an encoded text column is not UTF-8"))
}

/// An adapter that cannot encode a record writes nothing and reports the store as
/// unavailable (the record came from the engine, so this is the adapter's limit).
#[cfg(feature = "families")]
impl From<EncodeError> for RefreshError {
    fn from(e: EncodeError) -> Self {
        Self::StoreUnavailable(e.0.to_owned())
    }
}

#[cfg(feature = "families")]
fn enc_time(t: UnixTime) -> Result<i64, EncodeError> {
    big(t.as_secs()).ok_or(EncodeError("a time beyond the 64-bit signed range"))
}

#[cfg(feature = "families")]
fn enc_big(v: u64) -> Result<i64, EncodeError> {
    big(v).ok_or(EncodeError("a number beyond the 64-bit signed range"))
}

// ---- refresh families and tokens ----

/// A row of `refresh_families`, column for column (text as raw bytes).
#[cfg(feature = "families")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FamilyColumns {
    pub(crate) id: Vec<u8>,
    pub(crate) subject: Vec<u8>,
    pub(crate) client_id: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) absolute_expires_at: i64,
    pub(crate) head: Vec<u8>,
    pub(crate) head_parent: Option<Vec<u8>>,
    pub(crate) head_generation: i64,
    pub(crate) version: i64,
    pub(crate) status: Vec<u8>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) revoked_reason: Option<Vec<u8>>,
    pub(crate) dpop_jkt: Option<Vec<u8>>,
}

/// A row of `refresh_tokens`, column for column (text as raw bytes).
#[cfg(feature = "families")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenColumns {
    pub(crate) family_id: Vec<u8>,
    pub(crate) id: Vec<u8>,
    pub(crate) parent: Option<Vec<u8>>,
    pub(crate) generation: i64,
    pub(crate) secret_hash: Vec<u8>,
    pub(crate) issued_at: i64,
    pub(crate) state: Vec<u8>,
    pub(crate) state_at: Option<i64>,
    pub(crate) successor: Option<Vec<u8>>,
    /// `INTEGER` in SQLite, `integer` (32 bits) in PostgreSQL.
    pub(crate) grace_uses: i64,
}

#[cfg(feature = "families")]
fn token_id(v: &[u8], c: &Col) -> Result<TokenId, RowError> {
    fixed(v, c).map(TokenId::from_bytes)
}

#[cfg(feature = "families")]
fn reason_from(v: &[u8]) -> Result<RevocationReason, RowError> {
    Ok(match code(v, &F_REVOKED_REASON)? {
        "reuse_detected" => RevocationReason::ReuseDetected,
        "logout" => RevocationReason::Logout,
        "admin" => RevocationReason::Admin,
        "security_event" => RevocationReason::SecurityEvent,
        _ => return Err(F_REVOKED_REASON.err(Problem::UnknownCode)),
    })
}

/// Decodes a `refresh_families` row.
///
/// # Errors
/// [`RowError`] naming the first column that breaks a rule.
#[cfg(feature = "families")]
pub(crate) fn decode_family(c: &FamilyColumns) -> Result<FamilyRecord, RowError> {
    let status = match code(&c.status, &F_STATUS)? {
        "active" => {
            absent(c.revoked_at.as_ref(), &F_REVOKED_AT)?;
            absent(c.revoked_reason.as_ref(), &F_REVOKED_REASON)?;
            FamilyStatus::Active
        }
        "revoked" => FamilyStatus::Revoked {
            at: time(required(c.revoked_at, &F_REVOKED_AT)?, &F_REVOKED_AT)?,
            reason: reason_from(required(c.revoked_reason.as_deref(), &F_REVOKED_REASON)?)?,
        },
        _ => return Err(F_STATUS.err(Problem::UnknownCode)),
    };
    Ok(FamilyRecord {
        id: fixed(&c.id, &F_ID).map(FamilyId::from_bytes)?,
        subject: text(&c.subject, MAX_NAME_BYTES, &F_SUBJECT)?,
        client_id: text(&c.client_id, MAX_NAME_BYTES, &F_CLIENT_ID)?,
        created_at: time(c.created_at, &F_CREATED_AT)?,
        absolute_expires_at: time(c.absolute_expires_at, &F_ABSOLUTE_EXPIRES_AT)?,
        head: token_id(&c.head, &F_HEAD)?,
        head_parent: c
            .head_parent
            .as_deref()
            .map(|v| token_id(v, &F_HEAD_PARENT))
            .transpose()?,
        head_generation: unsigned(c.head_generation, &F_HEAD_GENERATION)?,
        version: unsigned(c.version, &F_VERSION)?,
        status,
        dpop_jkt: c
            .dpop_jkt
            .as_deref()
            .map(|v| fixed(v, &F_DPOP_JKT).map(Thumbprint::from_bytes))
            .transpose()?,
    })
}

/// The columns the adapters write for `f`.
///
/// # Errors
/// [`EncodeError`] for a number beyond `i64::MAX` or a status this crate does not know.
#[cfg(feature = "families")]
pub(crate) fn encode_family(f: &FamilyRecord) -> Result<FamilyColumns, EncodeError> {
    let (status, revoked_at, revoked_reason) = match f.status {
        FamilyStatus::Active => ("active", None, None),
        FamilyStatus::Revoked { at, reason } => (
            "revoked",
            Some(enc_time(at)?),
            Some(reason.as_str().as_bytes().to_vec()),
        ),
        _ => return Err(EncodeError("a family status this crate does not know")),
    };
    Ok(FamilyColumns {
        id: f.id.as_bytes().to_vec(),
        subject: f.subject.as_bytes().to_vec(),
        client_id: f.client_id.as_bytes().to_vec(),
        created_at: enc_time(f.created_at)?,
        absolute_expires_at: enc_time(f.absolute_expires_at)?,
        head: f.head.as_bytes().to_vec(),
        head_parent: f.head_parent.map(|p| p.as_bytes().to_vec()),
        head_generation: enc_big(f.head_generation)?,
        version: enc_big(f.version)?,
        status: status.as_bytes().to_vec(),
        revoked_at,
        revoked_reason,
        dpop_jkt: f.dpop_jkt.map(|k| k.as_bytes().to_vec()),
    })
}

/// Decodes a `refresh_tokens` row.
///
/// # Errors
/// [`RowError`] naming the first column that breaks a rule.
#[cfg(feature = "families")]
pub(crate) fn decode_token(c: &TokenColumns) -> Result<TokenRecord, RowError> {
    let state = match code(&c.state, &T_STATE)? {
        "active" => {
            absent(c.state_at.as_ref(), &T_STATE_AT)?;
            absent(c.successor.as_ref(), &T_SUCCESSOR)?;
            no_grace_uses(c.grace_uses)?;
            TokenState::Active
        }
        "rotated" => TokenState::Rotated {
            at: time(required(c.state_at, &T_STATE_AT)?, &T_STATE_AT)?,
            successor: token_id(
                required(c.successor.as_deref(), &T_SUCCESSOR)?,
                &T_SUCCESSOR,
            )?,
            grace_uses: u32::try_from(unsigned(c.grace_uses, &T_GRACE_USES)?)
                .map_err(|_| T_GRACE_USES.err(Problem::OutOfRange))?,
        },
        "superseded" => {
            no_grace_uses(c.grace_uses)?;
            TokenState::Superseded {
                at: time(required(c.state_at, &T_STATE_AT)?, &T_STATE_AT)?,
                by: token_id(
                    required(c.successor.as_deref(), &T_SUCCESSOR)?,
                    &T_SUCCESSOR,
                )?,
            }
        }
        _ => return Err(T_STATE.err(Problem::UnknownCode)),
    };
    Ok(TokenRecord {
        family: fixed(&c.family_id, &T_FAMILY_ID).map(FamilyId::from_bytes)?,
        id: token_id(&c.id, &T_ID)?,
        parent: c
            .parent
            .as_deref()
            .map(|v| token_id(v, &T_PARENT))
            .transpose()?,
        generation: unsigned(c.generation, &T_GENERATION)?,
        secret_hash: fixed(&c.secret_hash, &T_SECRET_HASH).map(SecretHash::from_bytes)?,
        issued_at: time(c.issued_at, &T_ISSUED_AT)?,
        state,
    })
}

/// Only a rotated token counts grace uses; the adapters write 0 otherwise.
#[cfg(feature = "families")]
fn no_grace_uses(v: i64) -> Result<(), RowError> {
    match v {
        0 => Ok(()),
        n if n < 0 => Err(T_GRACE_USES.err(Problem::Negative)),
        _ => Err(T_GRACE_USES.err(Problem::Unexpected)),
    }
}

/// The columns the adapters write for `t`.
///
/// # Errors
/// [`EncodeError`] for a number beyond `i64::MAX` or a state this crate does not know.
#[cfg(feature = "families")]
pub(crate) fn encode_token(t: &TokenRecord) -> Result<TokenColumns, EncodeError> {
    let (state, state_at, successor, grace_uses) = match t.state {
        TokenState::Active => ("active", None, None, 0),
        TokenState::Rotated {
            at,
            successor,
            grace_uses,
        } => (
            "rotated",
            Some(enc_time(at)?),
            Some(successor.as_bytes().to_vec()),
            i64::from(grace_uses),
        ),
        TokenState::Superseded { at, by } => (
            "superseded",
            Some(enc_time(at)?),
            Some(by.as_bytes().to_vec()),
            0,
        ),
        _ => return Err(EncodeError("a token state this crate does not know")),
    };
    Ok(TokenColumns {
        family_id: t.family.as_bytes().to_vec(),
        id: t.id.as_bytes().to_vec(),
        parent: t.parent.map(|p| p.as_bytes().to_vec()),
        generation: enc_big(t.generation)?,
        secret_hash: t.secret_hash.as_bytes().to_vec(),
        issued_at: enc_time(t.issued_at)?,
        state: state.as_bytes().to_vec(),
        state_at,
        successor,
        grace_uses,
    })
}

// ---- devices ----

/// A row of `devices`, column for column (text as raw bytes).
#[cfg(all(feature = "devices", feature = "families"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceColumns {
    pub(crate) device_id: Vec<u8>,
    pub(crate) state: Vec<u8>,
    pub(crate) state_by: Option<Vec<u8>>,
    pub(crate) state_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) version: i64,
}

/// A row of `device_keys` (its `device_id` is the device's), column for column.
#[cfg(all(feature = "devices", feature = "families"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyColumns {
    pub(crate) key_id: Vec<u8>,
    /// `INTEGER` in SQLite, `smallint` in PostgreSQL.
    pub(crate) position: i64,
    pub(crate) status: Vec<u8>,
    pub(crate) retiring_until: Option<i64>,
    pub(crate) sealed_secret: Vec<u8>,
}

/// Why device rows do not decode.
#[cfg(all(feature = "devices", feature = "families"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceRowError {
    /// A column breaks a rule.
    Row(RowError),
    /// A sealed secret did not open (altered, moved, or another key-encryption key).
    Seal,
    /// The columns decode but do not make a record (no key, two active keys, a key id
    /// twice): the device crate's own error.
    Record(DeviceError),
}

#[cfg(all(feature = "devices", feature = "families"))]
impl From<RowError> for DeviceRowError {
    fn from(e: RowError) -> Self {
        Self::Row(e)
    }
}

#[cfg(all(feature = "devices", feature = "families"))]
impl From<DeviceRowError> for DeviceError {
    fn from(e: DeviceRowError) -> Self {
        match e {
            DeviceRowError::Row(e) => DeviceError::RegistryUnavailable(format!(
                "stored device row does not decode: {e}; check what else writes to these tables"
            )),
            DeviceRowError::Seal => DeviceError::RegistryUnavailable(
                "a sealed device secret did not open; check the key-encryption key".into(),
            ),
            DeviceRowError::Record(e) => e,
        }
    }
}

/// An identifier column: 1 to 64 bytes of UTF-8, then its type's own rules.
#[cfg(feature = "devices")]
fn ident<T>(
    v: &[u8],
    c: &Col,
    make: impl FnOnce(String) -> Result<T, DeviceError>,
) -> Result<T, RowError> {
    make(text(v, handoff_device::MAX_ID_BYTES, c)?).map_err(|_| c.err(Problem::Invalid))
}

#[cfg(all(feature = "devices", feature = "families"))]
fn device_state(c: &DeviceColumns) -> Result<DeviceState, RowError> {
    let at = || time(required(c.state_at, &D_STATE_AT)?, &D_STATE_AT);
    let by = || {
        ident(
            required(c.state_by.as_deref(), &D_STATE_BY)?,
            &D_STATE_BY,
            OperatorId::new,
        )
    };
    let state = code(&c.state, &D_STATE)?;
    if !matches!(
        state,
        "pending" | "approved" | "suspended" | "revoked" | "denied" | "expired"
    ) {
        return Err(D_STATE.err(Problem::UnknownCode));
    }
    if state != "pending" {
        absent(c.expires_at.as_ref(), &D_EXPIRES_AT)?;
    }
    if matches!(state, "pending" | "expired") {
        absent(c.state_by.as_ref(), &D_STATE_BY)?;
    }
    Ok(match state {
        "pending" => DeviceState::Pending {
            requested_at: at()?,
            expires_at: time(required(c.expires_at, &D_EXPIRES_AT)?, &D_EXPIRES_AT)?,
        },
        "approved" => DeviceState::Approved {
            by: by()?,
            at: at()?,
        },
        "suspended" => DeviceState::Suspended {
            by: by()?,
            at: at()?,
        },
        "revoked" => DeviceState::Revoked {
            by: by()?,
            at: at()?,
        },
        "denied" => DeviceState::Denied {
            by: by()?,
            at: at()?,
        },
        "expired" => DeviceState::Expired { at: at()? },
        _ => return Err(D_STATE.err(Problem::UnknownCode)),
    })
}

/// Decodes a `devices` row and its `device_keys` rows (in position order), opening each
/// sealed secret with `sealer`.
///
/// # Errors
/// [`DeviceRowError`]: the first column that breaks a rule, a secret that does not open,
/// or rows that do not make a record.
#[cfg(all(feature = "devices", feature = "families"))]
pub(crate) fn decode_device<S: SecretSealer + ?Sized>(
    d: &DeviceColumns,
    keys: &[KeyColumns],
    sealer: &S,
) -> Result<DeviceRecord, DeviceRowError> {
    if keys.len() > MAX_KEYS_PER_DEVICE {
        return Err(K_KEY_ID.err(Problem::TooMany).into());
    }
    let device_id = ident(&d.device_id, &D_DEVICE_ID, DeviceId::new)?;
    let state = device_state(d)?;
    let version = unsigned(d.version, &D_VERSION)?;
    let mut out = Vec::with_capacity(keys.len());
    let mut last_position: Option<i64> = None;
    for k in keys {
        let max = i64::try_from(MAX_KEYS_PER_DEVICE).unwrap_or(i64::MAX);
        if k.position < 0 {
            return Err(K_POSITION.err(Problem::Negative).into());
        }
        if k.position >= max {
            return Err(K_POSITION.err(Problem::OutOfRange).into());
        }
        if last_position.is_some_and(|p| p >= k.position) {
            return Err(K_POSITION.err(Problem::Order).into());
        }
        last_position = Some(k.position);
        let key_id = ident(&k.key_id, &K_KEY_ID, KeyId::new)?;
        let status = match code(&k.status, &K_STATUS)? {
            "active" => {
                absent(k.retiring_until.as_ref(), &K_RETIRING_UNTIL)?;
                KeyStatus::Active
            }
            "retiring" => KeyStatus::Retiring {
                until: time(
                    required(k.retiring_until, &K_RETIRING_UNTIL)?,
                    &K_RETIRING_UNTIL,
                )?,
            },
            _ => return Err(K_STATUS.err(Problem::UnknownCode).into()),
        };
        if k.sealed_secret.len() > MAX_SEALED_BYTES {
            return Err(K_SEALED_SECRET.err(Problem::Length).into());
        }
        let secret = sealer
            .open(&device_id, &key_id, &k.sealed_secret)
            .map_err(|_| DeviceRowError::Seal)?;
        out.push(DeviceKey::new(key_id, status, secret));
    }
    DeviceRecord::from_parts(device_id, state, out, version).map_err(DeviceRowError::Record)
}

/// The `devices` columns the adapters write for `r` (its keys: [`encode_keys`]).
///
/// # Errors
/// [`EncodeError`] for a number beyond `i64::MAX` or a state this crate does not know.
#[cfg(all(feature = "devices", feature = "families"))]
pub(crate) fn encode_device(r: &DeviceRecord) -> Result<DeviceColumns, EncodeError> {
    let by = |o: &OperatorId| Some(o.as_str().as_bytes().to_vec());
    let (state, state_by, state_at, expires_at) = match r.state() {
        DeviceState::Pending {
            requested_at,
            expires_at,
        } => (
            "pending",
            None,
            enc_time(*requested_at)?,
            Some(enc_time(*expires_at)?),
        ),
        DeviceState::Approved { by: o, at } => ("approved", by(o), enc_time(*at)?, None),
        DeviceState::Suspended { by: o, at } => ("suspended", by(o), enc_time(*at)?, None),
        DeviceState::Revoked { by: o, at } => ("revoked", by(o), enc_time(*at)?, None),
        DeviceState::Denied { by: o, at } => ("denied", by(o), enc_time(*at)?, None),
        DeviceState::Expired { at } => ("expired", None, enc_time(*at)?, None),
        _ => return Err(EncodeError("a device state this crate does not know")),
    };
    Ok(DeviceColumns {
        device_id: r.device_id().as_str().as_bytes().to_vec(),
        state: state.as_bytes().to_vec(),
        state_by,
        state_at: Some(state_at),
        expires_at,
        version: enc_big(r.version())?,
    })
}

/// The `device_keys` rows the adapters write for `r`, each secret sealed by `sealer`.
///
/// # Errors
/// [`crate::StoresError`] from the sealer ([`crate::StoresError::Config`] when it refuses
/// the secret), or [`crate::StoresError::Config`] for a time beyond `i64::MAX` or a status
/// this crate does not know.
#[cfg(all(feature = "devices", feature = "families"))]
pub(crate) fn encode_keys<S: SecretSealer + ?Sized>(
    r: &DeviceRecord,
    sealer: &S,
) -> Result<Vec<KeyColumns>, crate::StoresError> {
    let mut out = Vec::with_capacity(r.keys().len());
    for (position, k) in (0i64..).zip(r.keys()) {
        let (status, retiring_until) = match k.status() {
            KeyStatus::Active => ("active", None),
            KeyStatus::Retiring { until } => (
                "retiring",
                Some(enc_time(until).map_err(|e| crate::StoresError::Config(e.0))?),
            ),
            _ => {
                return Err(crate::StoresError::Config(
                    "a key status this crate does not know",
                ));
            }
        };
        out.push(KeyColumns {
            key_id: k.key_id().as_str().as_bytes().to_vec(),
            position,
            status: status.as_bytes().to_vec(),
            retiring_until,
            sealed_secret: sealer.seal(r.device_id(), k.key_id(), k.secret())?,
        });
    }
    Ok(out)
}

/// What an adapter binds to write a device: the `devices` columns ([`encode_device`]) and
/// the `device_keys` rows ([`encode_keys`], secrets sealed), made before any transaction
/// starts (no crypto while holding locks). Every engine's write path goes through here, so
/// the encoders the row fuzzer round-trips are the ones that write.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) struct DeviceWrite {
    device: DeviceColumns,
    keys: Vec<KeyColumns>,
}

/// The `devices` parameters of a [`DeviceWrite`], text as `&str`.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) struct DeviceParams<'a> {
    pub(crate) device_id: &'a str,
    pub(crate) state: &'a str,
    pub(crate) state_by: Option<&'a str>,
    pub(crate) state_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) version: i64,
}

/// One `device_keys` row's parameters of a [`DeviceWrite`] (its `device_id` is the
/// device's).
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) struct KeyParams<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) position: i64,
    pub(crate) status: &'a str,
    pub(crate) retiring_until: Option<i64>,
    pub(crate) sealed_secret: &'a [u8],
}

/// A text column the encoders made from a `&str`, back as one for binding.
///
/// # Errors
/// [`EncodeError`] if it is not UTF-8 (never: the encoder made it from a `&str`).
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
fn bound_text(b: &[u8]) -> Result<&str, EncodeError> {
    core::str::from_utf8(b).map_err(|_| EncodeError("an encoded text column is not UTF-8"))
}

/// [`bound_text`] for the device registry's statements.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
fn registry_text(b: &[u8]) -> Result<&str, DeviceError> {
    bound_text(b).map_err(|e| DeviceError::RegistryUnavailable(e.0.into()))
}

#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
impl DeviceWrite {
    /// Encodes `r` and seals its secrets with `sealer`.
    ///
    /// # Errors
    /// [`DeviceError::InvalidRecord`] when the sealer refuses a secret or a time is beyond
    /// the 64-bit range; [`DeviceError::RegistryUnavailable`] for a sealer failure or a
    /// state this crate does not know.
    pub(crate) fn new<S: SecretSealer + ?Sized>(
        r: &DeviceRecord,
        sealer: &S,
    ) -> Result<Self, DeviceError> {
        let device = encode_device(r).map_err(|e| DeviceError::RegistryUnavailable(e.0.into()))?;
        let keys = encode_keys(r, sealer).map_err(|e| match e {
            crate::StoresError::Config(msg) => DeviceError::InvalidRecord(msg),
            other => DeviceError::RegistryUnavailable(other.to_string()),
        })?;
        Ok(Self { device, keys })
    }

    /// The `devices` parameters.
    ///
    /// # Errors
    /// [`DeviceError::RegistryUnavailable`] if a text column is not UTF-8 (never: the
    /// encoder made it from a `&str`).
    pub(crate) fn device(&self) -> Result<DeviceParams<'_>, DeviceError> {
        let d = &self.device;
        Ok(DeviceParams {
            device_id: registry_text(&d.device_id)?,
            state: registry_text(&d.state)?,
            state_by: d.state_by.as_deref().map(registry_text).transpose()?,
            state_at: d.state_at,
            expires_at: d.expires_at,
            version: d.version,
        })
    }

    /// The `device_keys` rows' parameters, in position order.
    ///
    /// # Errors
    /// As [`Self::device`].
    pub(crate) fn keys(&self) -> Result<Vec<KeyParams<'_>>, DeviceError> {
        self.keys
            .iter()
            .map(|k| {
                Ok(KeyParams {
                    key_id: registry_text(&k.key_id)?,
                    position: k.position,
                    status: registry_text(&k.status)?,
                    retiring_until: k.retiring_until,
                    sealed_secret: &k.sealed_secret,
                })
            })
            .collect()
    }
}

// ---- device sessions ----

/// A row of `device_sessions`, column for column (text as raw bytes). `expires_at` is
/// derived: the record's [`DeviceSession::expires_at`], stored for the purge.
#[cfg(feature = "devices")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionColumns {
    pub(crate) session_id: Vec<u8>,
    pub(crate) device_id: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) idle_timeout: i64,
    pub(crate) max_lifetime: i64,
    pub(crate) rotated_at: i64,
    pub(crate) current_hash: Vec<u8>,
    pub(crate) previous_hash: Option<Vec<u8>>,
    pub(crate) overlap_until: i64,
    pub(crate) generation: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) version: i64,
    pub(crate) expires_at: i64,
}

/// A `device_sessions` row that does not decode, on its way to the session stores' error.
#[cfg(all(
    feature = "devices",
    any(test, feature = "sqlite", feature = "postgres")
))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionRowError(pub(crate) RowError);

#[cfg(all(
    feature = "devices",
    any(test, feature = "sqlite", feature = "postgres")
))]
impl From<SessionRowError> for DeviceError {
    fn from(e: SessionRowError) -> Self {
        Self::SessionStoreUnavailable(format!(
            "stored device session row does not decode: {}; check what else writes to this table",
            e.0
        ))
    }
}

/// Decodes a `device_sessions` row.
///
/// # Errors
/// [`RowError`] naming the first column that breaks a rule; `expires_at` last, when it is
/// not what the other columns make.
#[cfg(feature = "devices")]
pub(crate) fn decode_session(c: &SessionColumns) -> Result<DeviceSession, RowError> {
    let session = DeviceSession {
        session_id: fixed(&c.session_id, &S_SESSION_ID).map(SessionId::from_bytes)?,
        device_id: ident(&c.device_id, &S_DEVICE_ID, DeviceId::new)?,
        created_at: time(c.created_at, &S_CREATED_AT)?,
        last_seen: time(c.last_seen, &S_LAST_SEEN)?,
        idle_timeout: unsigned(c.idle_timeout, &S_IDLE_TIMEOUT)?,
        max_lifetime: unsigned(c.max_lifetime, &S_MAX_LIFETIME)?,
        rotated_at: time(c.rotated_at, &S_ROTATED_AT)?,
        current_hash: fixed(&c.current_hash, &S_CURRENT_HASH)?,
        previous_hash: c
            .previous_hash
            .as_deref()
            .map(|v| fixed(v, &S_PREVIOUS_HASH))
            .transpose()?,
        overlap_until: time(c.overlap_until, &S_OVERLAP_UNTIL)?,
        generation: unsigned(c.generation, &S_GENERATION)?,
        revoked_at: c.revoked_at.map(|v| time(v, &S_REVOKED_AT)).transpose()?,
        version: unsigned(c.version, &S_VERSION)?,
    };
    if time(c.expires_at, &S_EXPIRES_AT)? != session.expires_at() {
        return Err(S_EXPIRES_AT.err(Problem::Mismatch));
    }
    Ok(session)
}

/// A `u64` for the column `c`, refused by name beyond `i64::MAX`.
#[cfg(feature = "devices")]
fn enc_col(v: u64, c: &Col) -> Result<i64, EncodeError> {
    big(v).ok_or(EncodeError(c.err(Problem::OutOfRange).message))
}

/// The columns the adapters write for `s`, `expires_at` included.
///
/// # Errors
/// [`EncodeError`] naming the first column whose value is beyond `i64::MAX` (`expires_at`
/// too: a session whose end the column cannot hold).
#[cfg(feature = "devices")]
pub(crate) fn encode_session(s: &DeviceSession) -> Result<SessionColumns, EncodeError> {
    let t = |v: UnixTime, c: &Col| enc_col(v.as_secs(), c);
    Ok(SessionColumns {
        session_id: s.session_id.as_bytes().to_vec(),
        device_id: s.device_id.as_str().as_bytes().to_vec(),
        created_at: t(s.created_at, &S_CREATED_AT)?,
        last_seen: t(s.last_seen, &S_LAST_SEEN)?,
        idle_timeout: enc_col(s.idle_timeout, &S_IDLE_TIMEOUT)?,
        max_lifetime: enc_col(s.max_lifetime, &S_MAX_LIFETIME)?,
        rotated_at: t(s.rotated_at, &S_ROTATED_AT)?,
        current_hash: s.current_hash.to_vec(),
        previous_hash: s.previous_hash.map(|h| h.to_vec()),
        overlap_until: t(s.overlap_until, &S_OVERLAP_UNTIL)?,
        generation: enc_col(s.generation, &S_GENERATION)?,
        revoked_at: s.revoked_at.map(|v| t(v, &S_REVOKED_AT)).transpose()?,
        version: enc_col(s.version, &S_VERSION)?,
        expires_at: t(s.expires_at(), &S_EXPIRES_AT)?,
    })
}

/// The `device_sessions` columns in the order every statement names them and
/// [`session_columns`] reads them (a string literal, for `concat!`).
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
macro_rules! session_column_list {
    () => {
        "session_id, device_id, created_at, last_seen, idle_timeout, max_lifetime, \
         rotated_at, current_hash, previous_hash, overlap_until, generation, revoked_at, \
         version, expires_at"
    };
}
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) use session_column_list;

/// The parameters of a device session write, from [`SessionParams`] `$p`, in
/// [`session_column_list`] order (then `$expected`, the version a compare-and-set
/// expects): a `vec!` of references, which coerces to either engine's parameter list.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
macro_rules! session_params {
    ($p:expr $(, $expected:expr)?) => {
        vec![
            &$p.session_id,
            &$p.device_id,
            &$p.created_at,
            &$p.last_seen,
            &$p.idle_timeout,
            &$p.max_lifetime,
            &$p.rotated_at,
            &$p.current_hash,
            &$p.previous_hash,
            &$p.overlap_until,
            &$p.generation,
            &$p.revoked_at,
            &$p.version,
            &$p.expires_at
            $(, $expected)?
        ]
    };
}
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) use session_params;

/// Implements [`Cells`] for an engine's row type with the `blob`, `opt_blob`, `text`,
/// `int` and `opt_int` functions of the module it is invoked in.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! impl_cells {
    ($row:ty) => {
        impl crate::rows::Cells for $row {
            fn blob(&self, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
                blob(self, i, c)
            }
            fn opt_blob(&self, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError> {
                opt_blob(self, i, c)
            }
            fn text(&self, i: usize, c: &Col) -> Result<Vec<u8>, RowError> {
                text(self, i, c)
            }
            fn int(&self, i: usize, c: &Col) -> Result<i64, RowError> {
                int(self, i, c)
            }
            fn opt_int(&self, i: usize, c: &Col) -> Result<Option<i64>, RowError> {
                opt_int(self, i, c)
            }
        }
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use impl_cells;

/// One engine's row, read column by column: the storage class or type must be the
/// schema's, NULL only where the schema allows it (the adapters' `cells` modules).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) trait Cells {
    /// A `BLOB` / `bytea` column.
    fn blob(&self, i: usize, c: &Col) -> Result<Vec<u8>, RowError>;
    /// A NULL-able `BLOB` / `bytea` column.
    fn opt_blob(&self, i: usize, c: &Col) -> Result<Option<Vec<u8>>, RowError>;
    /// A `TEXT` column, as raw bytes.
    fn text(&self, i: usize, c: &Col) -> Result<Vec<u8>, RowError>;
    /// An `INTEGER` / `bigint` column.
    fn int(&self, i: usize, c: &Col) -> Result<i64, RowError>;
    /// A NULL-able `INTEGER` / `bigint` column.
    fn opt_int(&self, i: usize, c: &Col) -> Result<Option<i64>, RowError>;
}

/// The columns of a `device_sessions` row selected in schema order (`session_id` first,
/// `expires_at` last), from either engine.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn session_columns<R: Cells + ?Sized>(row: &R) -> Result<SessionColumns, RowError> {
    Ok(SessionColumns {
        session_id: row.blob(0, &S_SESSION_ID)?,
        device_id: row.text(1, &S_DEVICE_ID)?,
        created_at: row.int(2, &S_CREATED_AT)?,
        last_seen: row.int(3, &S_LAST_SEEN)?,
        idle_timeout: row.int(4, &S_IDLE_TIMEOUT)?,
        max_lifetime: row.int(5, &S_MAX_LIFETIME)?,
        rotated_at: row.int(6, &S_ROTATED_AT)?,
        current_hash: row.blob(7, &S_CURRENT_HASH)?,
        previous_hash: row.opt_blob(8, &S_PREVIOUS_HASH)?,
        overlap_until: row.int(9, &S_OVERLAP_UNTIL)?,
        generation: row.int(10, &S_GENERATION)?,
        revoked_at: row.opt_int(11, &S_REVOKED_AT)?,
        version: row.int(12, &S_VERSION)?,
        expires_at: row.int(13, &S_EXPIRES_AT)?,
    })
}

/// A `device_sessions` row, decoded: the columns ([`session_columns`]) through
/// [`decode_session`], a refusal as [`DeviceError::SessionStoreUnavailable`] naming the
/// column.
///
/// # Errors
/// [`DeviceError::SessionStoreUnavailable`].
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn session_from_row<R: Cells + ?Sized>(row: &R) -> Result<DeviceSession, DeviceError> {
    session_columns(row)
        .and_then(|c| decode_session(&c))
        .map_err(|e| DeviceError::from(SessionRowError(e)))
}

/// A session purge's parameters, bound by every SQL engine: `now` (every stored expiry is
/// at most `i64::MAX`, so a later `now` purges as `i64::MAX` does) and `limit`; `None`
/// when `limit` is 0 (nothing to ask the database).
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn purge_params(now: UnixTime, limit: usize) -> Option<(i64, i64)> {
    (limit > 0).then(|| {
        (
            big(now.as_secs()).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        )
    })
}

/// What an adapter binds to write a device session: the columns of [`encode_session`]
/// (so the encoder the row fuzzer round-trips is the one that writes).
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) struct SessionWrite(SessionColumns);

/// The `device_sessions` parameters of a [`SessionWrite`], in column order, text as
/// `&str`.
#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
pub(crate) struct SessionParams<'a> {
    pub(crate) session_id: &'a [u8],
    pub(crate) device_id: &'a str,
    pub(crate) created_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) idle_timeout: i64,
    pub(crate) max_lifetime: i64,
    pub(crate) rotated_at: i64,
    pub(crate) current_hash: &'a [u8],
    pub(crate) previous_hash: Option<&'a [u8]>,
    pub(crate) overlap_until: i64,
    pub(crate) generation: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) version: i64,
    pub(crate) expires_at: i64,
}

/// A session the adapters cannot write: nothing is written and the store reports why,
/// naming the column.
#[cfg(all(
    feature = "devices",
    any(feature = "sqlite", feature = "postgres", feature = "redis")
))]
fn session_unwritable(e: EncodeError) -> DeviceError {
    DeviceError::SessionStoreUnavailable(format!("the device session cannot be stored: {e}"))
}

/// The columns every session store writes for `s` ([`encode_session`]), or the stores'
/// error for a record they cannot hold.
///
/// # Errors
/// [`DeviceError::SessionStoreUnavailable`] naming the column whose value is beyond
/// `i64::MAX`.
#[cfg(all(
    feature = "devices",
    any(feature = "sqlite", feature = "postgres", feature = "redis")
))]
pub(crate) fn session_to_write(s: &DeviceSession) -> Result<SessionColumns, DeviceError> {
    encode_session(s).map_err(session_unwritable)
}

#[cfg(all(feature = "devices", any(feature = "sqlite", feature = "postgres")))]
impl SessionWrite {
    /// Encodes `s`.
    ///
    /// # Errors
    /// [`DeviceError::SessionStoreUnavailable`] naming the column whose value is beyond
    /// `i64::MAX`.
    pub(crate) fn new(s: &DeviceSession) -> Result<Self, DeviceError> {
        session_to_write(s).map(Self)
    }

    /// The parameters.
    ///
    /// # Errors
    /// [`DeviceError::SessionStoreUnavailable`] if the device id is not UTF-8 (never: the
    /// encoder made it from a `&str`).
    pub(crate) fn params(&self) -> Result<SessionParams<'_>, DeviceError> {
        let c = &self.0;
        Ok(SessionParams {
            session_id: &c.session_id,
            device_id: bound_text(&c.device_id).map_err(session_unwritable)?,
            created_at: c.created_at,
            last_seen: c.last_seen,
            idle_timeout: c.idle_timeout,
            max_lifetime: c.max_lifetime,
            rotated_at: c.rotated_at,
            current_hash: &c.current_hash,
            previous_hash: c.previous_hash.as_deref(),
            overlap_until: c.overlap_until,
            generation: c.generation,
            revoked_at: c.revoked_at,
            version: c.version,
            expires_at: c.expires_at,
        })
    }
}

#[cfg(all(test, feature = "families", feature = "devices"))]
mod tests {
    use super::*;
    use crate::seal::{AeadSealer, DerivedSecrets};
    use handoff_core::HmacSecret;

    fn family() -> FamilyColumns {
        FamilyColumns {
            id: vec![1; 16],
            subject: b"user-1".to_vec(),
            client_id: b"app".to_vec(),
            created_at: 1_000,
            absolute_expires_at: 2_000,
            head: vec![2; 16],
            head_parent: Some(vec![3; 16]),
            head_generation: 4,
            version: 5,
            status: b"active".to_vec(),
            revoked_at: None,
            revoked_reason: None,
            dpop_jkt: Some(vec![6; 32]),
        }
    }

    fn revoked() -> FamilyColumns {
        FamilyColumns {
            status: b"revoked".to_vec(),
            revoked_at: Some(1_500),
            revoked_reason: Some(b"logout".to_vec()),
            ..family()
        }
    }

    fn token(state: &str) -> TokenColumns {
        let active = state == "active";
        TokenColumns {
            family_id: vec![1; 16],
            id: vec![2; 16],
            parent: Some(vec![3; 16]),
            generation: 4,
            secret_hash: vec![5; 32],
            issued_at: 1_000,
            state: state.as_bytes().to_vec(),
            state_at: (!active).then_some(1_100),
            successor: (!active).then(|| vec![6; 16]),
            grace_uses: i64::from(state == "rotated"),
        }
    }

    /// `f` breaks the row; the decoder must name `col` with `problem`.
    fn family_refused(
        f: impl FnOnce(&mut FamilyColumns),
        base: FamilyColumns,
        col: &Col,
        problem: Problem,
    ) {
        let mut c = base;
        f(&mut c);
        let e = decode_family(&c).unwrap_err();
        assert_eq!((e.column, e.problem), (col.name, problem), "{e}");
        assert!(e.message.starts_with(col.name));
        // What the refresh engine sees: the same precise message.
        assert_eq!(RefreshError::from(e), RefreshError::Inconsistent(e.message));
    }

    fn token_refused(f: impl FnOnce(&mut TokenColumns), state: &str, col: &Col, problem: Problem) {
        let mut c = token(state);
        f(&mut c);
        let e = decode_token(&c).unwrap_err();
        assert_eq!((e.column, e.problem), (col.name, problem), "{e}");
    }

    #[test]
    fn valid_family_rows_decode_and_encode_back() {
        for c in [
            family(),
            revoked(),
            FamilyColumns {
                head_parent: None,
                dpop_jkt: None,
                ..family()
            },
        ] {
            let f = decode_family(&c).unwrap();
            assert_eq!(encode_family(&f).unwrap(), c);
        }
        let f = decode_family(&revoked()).unwrap();
        assert_eq!(
            f.status,
            FamilyStatus::Revoked {
                at: UnixTime::from_secs(1_500),
                reason: RevocationReason::Logout
            }
        );
        for reason in ["reuse_detected", "logout", "admin", "security_event"] {
            let c = FamilyColumns {
                revoked_reason: Some(reason.as_bytes().to_vec()),
                ..revoked()
            };
            assert_eq!(encode_family(&decode_family(&c).unwrap()).unwrap(), c);
        }
    }

    #[test]
    fn family_ids_hashes_and_keys_must_have_their_length() {
        family_refused(|c| c.id = vec![1; 15], family(), &F_ID, Problem::Length);
        family_refused(|c| c.id = vec![1; 17], family(), &F_ID, Problem::Length);
        family_refused(|c| c.head = vec![], family(), &F_HEAD, Problem::Length);
        family_refused(
            |c| c.head_parent = Some(vec![3; 32]),
            family(),
            &F_HEAD_PARENT,
            Problem::Length,
        );
        family_refused(
            |c| c.dpop_jkt = Some(vec![6; 31]),
            family(),
            &F_DPOP_JKT,
            Problem::Length,
        );
    }

    #[test]
    fn family_names_must_be_1_to_255_bytes_of_utf8() {
        family_refused(
            |c| c.subject = vec![],
            family(),
            &F_SUBJECT,
            Problem::Length,
        );
        family_refused(
            |c| c.subject = vec![b'a'; 256],
            family(),
            &F_SUBJECT,
            Problem::Length,
        );
        family_refused(
            |c| c.subject = vec![0xff, 0xfe],
            family(),
            &F_SUBJECT,
            Problem::Utf8,
        );
        family_refused(
            |c| c.client_id = vec![],
            family(),
            &F_CLIENT_ID,
            Problem::Length,
        );
        family_refused(
            |c| c.client_id = b"a\xc3".to_vec(),
            family(),
            &F_CLIENT_ID,
            Problem::Utf8,
        );
        let mut c = family();
        c.subject = vec![b'a'; 255];
        assert_eq!(decode_family(&c).unwrap().subject.len(), 255);
    }

    #[test]
    fn family_times_generations_and_versions_must_not_be_negative() {
        family_refused(
            |c| c.created_at = -1,
            family(),
            &F_CREATED_AT,
            Problem::Negative,
        );
        family_refused(
            |c| c.absolute_expires_at = i64::MIN,
            family(),
            &F_ABSOLUTE_EXPIRES_AT,
            Problem::Negative,
        );
        family_refused(
            |c| c.head_generation = -1,
            family(),
            &F_HEAD_GENERATION,
            Problem::Negative,
        );
        family_refused(|c| c.version = -1, family(), &F_VERSION, Problem::Negative);
        family_refused(
            |c| c.revoked_at = Some(-1),
            revoked(),
            &F_REVOKED_AT,
            Problem::Negative,
        );
        let mut c = family();
        c.created_at = i64::MAX;
        assert_eq!(
            decode_family(&c).unwrap().created_at.as_secs(),
            i64::MAX as u64
        );
    }

    #[test]
    fn family_status_and_reason_codes_must_be_known() {
        family_refused(
            |c| c.status = b"Active".to_vec(),
            family(),
            &F_STATUS,
            Problem::UnknownCode,
        );
        family_refused(
            |c| c.status = vec![0xff],
            family(),
            &F_STATUS,
            Problem::UnknownCode,
        );
        family_refused(
            |c| c.revoked_reason = Some(b"expired".to_vec()),
            revoked(),
            &F_REVOKED_REASON,
            Problem::UnknownCode,
        );
    }

    #[test]
    fn family_status_columns_must_match_the_status() {
        family_refused(
            |c| c.revoked_at = None,
            revoked(),
            &F_REVOKED_AT,
            Problem::Null,
        );
        family_refused(
            |c| c.revoked_reason = None,
            revoked(),
            &F_REVOKED_REASON,
            Problem::Null,
        );
        family_refused(
            |c| c.revoked_at = Some(1),
            family(),
            &F_REVOKED_AT,
            Problem::Unexpected,
        );
        family_refused(
            |c| c.revoked_reason = Some(b"admin".to_vec()),
            family(),
            &F_REVOKED_REASON,
            Problem::Unexpected,
        );
    }

    #[test]
    fn valid_token_rows_decode_and_encode_back() {
        for state in ["active", "rotated", "superseded"] {
            let c = token(state);
            let t = decode_token(&c).unwrap();
            assert_eq!(encode_token(&t).unwrap(), c);
        }
        let mut c = token("rotated");
        c.grace_uses = i64::from(u32::MAX);
        let t = decode_token(&c).unwrap();
        assert!(matches!(
            t.state,
            TokenState::Rotated {
                grace_uses: u32::MAX,
                ..
            }
        ));
    }

    #[test]
    fn token_ids_and_hashes_must_have_their_length() {
        token_refused(
            |c| c.family_id = vec![1; 15],
            "active",
            &T_FAMILY_ID,
            Problem::Length,
        );
        token_refused(|c| c.id = vec![2; 17], "active", &T_ID, Problem::Length);
        token_refused(
            |c| c.parent = Some(vec![]),
            "active",
            &T_PARENT,
            Problem::Length,
        );
        token_refused(
            |c| c.secret_hash = vec![5; 31],
            "active",
            &T_SECRET_HASH,
            Problem::Length,
        );
        token_refused(
            |c| c.successor = Some(vec![6; 15]),
            "rotated",
            &T_SUCCESSOR,
            Problem::Length,
        );
        token_refused(
            |c| c.successor = Some(vec![6; 33]),
            "superseded",
            &T_SUCCESSOR,
            Problem::Length,
        );
    }

    #[test]
    fn token_numbers_must_be_in_range() {
        token_refused(
            |c| c.generation = -1,
            "active",
            &T_GENERATION,
            Problem::Negative,
        );
        token_refused(
            |c| c.issued_at = -1,
            "active",
            &T_ISSUED_AT,
            Problem::Negative,
        );
        token_refused(
            |c| c.state_at = Some(-5),
            "rotated",
            &T_STATE_AT,
            Problem::Negative,
        );
        token_refused(
            |c| c.grace_uses = -1,
            "rotated",
            &T_GRACE_USES,
            Problem::Negative,
        );
        token_refused(
            |c| c.grace_uses = i64::from(u32::MAX) + 1,
            "rotated",
            &T_GRACE_USES,
            Problem::OutOfRange,
        );
        token_refused(
            |c| c.grace_uses = -1,
            "active",
            &T_GRACE_USES,
            Problem::Negative,
        );
    }

    #[test]
    fn token_state_codes_must_be_known() {
        token_refused(
            |c| c.state = b"revoked".to_vec(),
            "active",
            &T_STATE,
            Problem::UnknownCode,
        );
        token_refused(
            |c| c.state = b"\xc3\x28".to_vec(),
            "active",
            &T_STATE,
            Problem::UnknownCode,
        );
    }

    #[test]
    fn token_state_columns_must_match_the_state() {
        token_refused(
            |c| c.state_at = Some(1),
            "active",
            &T_STATE_AT,
            Problem::Unexpected,
        );
        token_refused(
            |c| c.successor = Some(vec![6; 16]),
            "active",
            &T_SUCCESSOR,
            Problem::Unexpected,
        );
        token_refused(
            |c| c.grace_uses = 1,
            "active",
            &T_GRACE_USES,
            Problem::Unexpected,
        );
        token_refused(
            |c| c.grace_uses = 2,
            "superseded",
            &T_GRACE_USES,
            Problem::Unexpected,
        );
        token_refused(|c| c.state_at = None, "rotated", &T_STATE_AT, Problem::Null);
        token_refused(
            |c| c.successor = None,
            "rotated",
            &T_SUCCESSOR,
            Problem::Null,
        );
        token_refused(
            |c| c.state_at = None,
            "superseded",
            &T_STATE_AT,
            Problem::Null,
        );
        token_refused(
            |c| c.successor = None,
            "superseded",
            &T_SUCCESSOR,
            Problem::Null,
        );
    }

    fn sealer() -> DerivedSecrets {
        DerivedSecrets::new(HmacSecret::new(vec![9u8; 32]).unwrap())
    }

    fn device(state: &str) -> DeviceColumns {
        let (by, expires): (Option<&[u8]>, _) = match state {
            "pending" => (None, Some(2_000)),
            "expired" => (None, None),
            _ => (Some(b"ops-1"), None),
        };
        DeviceColumns {
            device_id: b"dev-1".to_vec(),
            state: state.as_bytes().to_vec(),
            state_by: by.map(<[u8]>::to_vec),
            state_at: Some(1_000),
            expires_at: expires,
            version: 3,
        }
    }

    fn key(id: &str, position: i64, retiring: bool) -> KeyColumns {
        KeyColumns {
            key_id: id.as_bytes().to_vec(),
            position,
            status: if retiring {
                b"retiring".to_vec()
            } else {
                b"active".to_vec()
            },
            retiring_until: retiring.then_some(5_000),
            sealed_secret: b"derived/v1".to_vec(),
        }
    }

    fn keys() -> Vec<KeyColumns> {
        vec![key("k0", 0, true), key("k1", 1, false)]
    }

    fn device_refused(
        f: impl FnOnce(&mut DeviceColumns, &mut Vec<KeyColumns>),
        state: &str,
        col: &Col,
        problem: Problem,
    ) {
        let (mut d, mut k) = (device(state), keys());
        f(&mut d, &mut k);
        match decode_device(&d, &k, &sealer()) {
            Err(DeviceRowError::Row(e)) => {
                assert_eq!((e.column, e.problem), (col.name, problem), "{e}");
                let DeviceError::RegistryUnavailable(msg) =
                    DeviceError::from(DeviceRowError::Row(e))
                else {
                    panic!("not RegistryUnavailable");
                };
                assert!(msg.contains(col.name), "{msg}");
            }
            other => panic!("expected {} {problem:?}, got {other:?}", col.name),
        }
    }

    #[test]
    fn valid_device_rows_decode_and_encode_back() {
        for state in [
            "pending",
            "approved",
            "suspended",
            "revoked",
            "denied",
            "expired",
        ] {
            let d = device(state);
            let r = decode_device(&d, &keys(), &sealer()).unwrap();
            assert_eq!(encode_device(&r).unwrap(), d, "{state}");
            assert_eq!(encode_keys(&r, &sealer()).unwrap(), keys(), "{state}");
        }
        // AEAD: another nonce each time, the same record.
        let aead = AeadSealer::new([7; 32]);
        let r = decode_device(&device("approved"), &keys(), &sealer()).unwrap();
        let sealed = encode_keys(&r, &aead).unwrap();
        assert_ne!(sealed, keys());
        assert_eq!(
            decode_device(&device("approved"), &sealed, &aead).unwrap(),
            r
        );
        // Gaps in positions are accepted (only order matters).
        let gaps = vec![key("k0", 1, true), key("k1", 3, false)];
        assert!(decode_device(&device("approved"), &gaps, &sealer()).is_ok());
    }

    #[test]
    fn device_ids_must_be_valid_utf8_identifiers() {
        device_refused(
            |d, _| d.device_id = vec![],
            "approved",
            &D_DEVICE_ID,
            Problem::Length,
        );
        device_refused(
            |d, _| d.device_id = vec![b'a'; 65],
            "approved",
            &D_DEVICE_ID,
            Problem::Length,
        );
        device_refused(
            |d, _| d.device_id = vec![0xc0, 0x80],
            "approved",
            &D_DEVICE_ID,
            Problem::Utf8,
        );
        device_refused(
            |d, _| d.device_id = b"dev.1".to_vec(),
            "approved",
            &D_DEVICE_ID,
            Problem::Invalid,
        );
        device_refused(
            |d, _| d.state_by = Some(b"ops 1".to_vec()),
            "approved",
            &D_STATE_BY,
            Problem::Invalid,
        );
        device_refused(
            |_, k| k[0].key_id = b"k/0".to_vec(),
            "approved",
            &K_KEY_ID,
            Problem::Invalid,
        );
        device_refused(
            |_, k| k[1].key_id = vec![],
            "approved",
            &K_KEY_ID,
            Problem::Length,
        );
    }

    #[test]
    fn device_codes_must_be_known() {
        // The state is checked before the columns that depend on it.
        device_refused(
            |d, _| d.state = b"approve".to_vec(),
            "pending",
            &D_STATE,
            Problem::UnknownCode,
        );
        device_refused(
            |d, _| d.state = b"approve".to_vec(),
            "approved",
            &D_STATE,
            Problem::UnknownCode,
        );
        device_refused(
            |_, k| k[0].status = b"retired".to_vec(),
            "approved",
            &K_STATUS,
            Problem::UnknownCode,
        );
    }

    #[test]
    fn device_numbers_must_be_in_range() {
        device_refused(
            |d, _| d.version = -1,
            "approved",
            &D_VERSION,
            Problem::Negative,
        );
        device_refused(
            |d, _| d.state_at = Some(-1),
            "approved",
            &D_STATE_AT,
            Problem::Negative,
        );
        device_refused(
            |d, _| d.expires_at = Some(-1),
            "pending",
            &D_EXPIRES_AT,
            Problem::Negative,
        );
        device_refused(
            |_, k| k[0].retiring_until = Some(-1),
            "approved",
            &K_RETIRING_UNTIL,
            Problem::Negative,
        );
        device_refused(
            |_, k| k[0].position = -1,
            "approved",
            &K_POSITION,
            Problem::Negative,
        );
        device_refused(
            |_, k| k[1].position = 4,
            "approved",
            &K_POSITION,
            Problem::OutOfRange,
        );
        device_refused(
            |_, k| k[1].position = 0,
            "approved",
            &K_POSITION,
            Problem::Order,
        );
        device_refused(
            |_, k| {
                k[0].position = 2;
                k[1].position = 1;
            },
            "approved",
            &K_POSITION,
            Problem::Order,
        );
    }

    #[test]
    fn device_state_columns_must_match_the_state() {
        device_refused(
            |d, _| d.state_by = Some(b"ops-1".to_vec()),
            "pending",
            &D_STATE_BY,
            Problem::Unexpected,
        );
        device_refused(
            |d, _| d.state_by = Some(b"ops-1".to_vec()),
            "expired",
            &D_STATE_BY,
            Problem::Unexpected,
        );
        device_refused(
            |d, _| d.expires_at = Some(9),
            "approved",
            &D_EXPIRES_AT,
            Problem::Unexpected,
        );
        device_refused(
            |d, _| d.expires_at = None,
            "pending",
            &D_EXPIRES_AT,
            Problem::Null,
        );
        device_refused(
            |d, _| d.state_by = None,
            "revoked",
            &D_STATE_BY,
            Problem::Null,
        );
        device_refused(
            |d, _| d.state_at = None,
            "denied",
            &D_STATE_AT,
            Problem::Null,
        );
        device_refused(
            |_, k| k[1].retiring_until = Some(9),
            "approved",
            &K_RETIRING_UNTIL,
            Problem::Unexpected,
        );
        device_refused(
            |_, k| k[0].retiring_until = None,
            "approved",
            &K_RETIRING_UNTIL,
            Problem::Null,
        );
    }

    #[test]
    fn device_key_rows_are_bounded_and_sealed_secrets_must_open() {
        let five: Vec<KeyColumns> = (0..5).map(|i| key(&format!("k{i}"), i, true)).collect();
        device_refused(|_, k| *k = five, "approved", &K_KEY_ID, Problem::TooMany);
        device_refused(
            |_, k| k[0].sealed_secret = vec![1; MAX_SEALED_BYTES + 1],
            "approved",
            &K_SEALED_SECRET,
            Problem::Length,
        );
        let mut k = keys();
        k[1].sealed_secret = b"derived/v2".to_vec();
        assert_eq!(
            decode_device(&device("approved"), &k, &sealer()),
            Err(DeviceRowError::Seal)
        );
        // Sealed for another key id: does not open either.
        let aead = AeadSealer::new([7; 32]);
        let r = decode_device(&device("approved"), &keys(), &sealer()).unwrap();
        let mut sealed = encode_keys(&r, &aead).unwrap();
        let first = sealed[0].sealed_secret.clone();
        sealed[0].sealed_secret = sealed[1].sealed_secret.clone();
        sealed[1].sealed_secret = first;
        assert_eq!(
            decode_device(&device("approved"), &sealed, &aead),
            Err(DeviceRowError::Seal)
        );
    }

    #[test]
    fn device_rows_that_make_no_record_keep_the_device_error() {
        for bad in [
            vec![],
            vec![key("k0", 0, false), key("k1", 1, false)],
            vec![key("k0", 0, true), key("k0", 1, false)],
        ] {
            assert!(matches!(
                decode_device(&device("approved"), &bad, &sealer()),
                Err(DeviceRowError::Record(DeviceError::InvalidRecord(_)))
            ));
        }
    }

    fn session() -> SessionColumns {
        SessionColumns {
            session_id: vec![1; 16],
            device_id: b"dev-1".to_vec(),
            created_at: 1_000,
            last_seen: 1_100,
            idle_timeout: 180,
            max_lifetime: 86_400,
            rotated_at: 1_050,
            current_hash: vec![2; 32],
            previous_hash: Some(vec![3; 32]),
            overlap_until: 1_080,
            generation: 1,
            revoked_at: Some(1_200),
            version: 4,
            expires_at: 1_280,
        }
    }

    fn session_refused(f: impl FnOnce(&mut SessionColumns), col: &Col, problem: Problem) {
        let mut c = session();
        f(&mut c);
        match decode_session(&c) {
            Err(e) => {
                assert_eq!((e.column, e.problem), (col.name, problem), "{e}");
                let DeviceError::SessionStoreUnavailable(msg) =
                    DeviceError::from(SessionRowError(e))
                else {
                    panic!("not SessionStoreUnavailable");
                };
                assert!(msg.contains(col.name), "{msg}");
            }
            other => panic!("expected {} {problem:?}, got {other:?}", col.name),
        }
    }

    #[test]
    fn valid_session_rows_decode_and_encode_back() {
        let c = session();
        let s = decode_session(&c).unwrap();
        assert_eq!(s.expires_at().as_secs(), 1_280);
        assert_eq!(s.previous_hash, Some([3; 32]));
        assert_eq!(encode_session(&s).unwrap(), c);
        // No previous hash, not revoked, the absolute expiry first.
        let c = SessionColumns {
            previous_hash: None,
            revoked_at: None,
            max_lifetime: 200,
            expires_at: 1_200,
            ..session()
        };
        assert_eq!(encode_session(&decode_session(&c).unwrap()).unwrap(), c);
        // i64::MAX is the largest every number column holds.
        let c = SessionColumns {
            created_at: 0,
            last_seen: i64::MAX,
            idle_timeout: i64::MAX,
            max_lifetime: i64::MAX,
            rotated_at: i64::MAX,
            overlap_until: i64::MAX,
            generation: i64::MAX,
            revoked_at: Some(i64::MAX),
            version: i64::MAX,
            expires_at: i64::MAX,
            ..session()
        };
        assert_eq!(encode_session(&decode_session(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn session_columns_must_have_their_length_and_sign() {
        session_refused(
            |c| c.session_id = vec![1; 15],
            &S_SESSION_ID,
            Problem::Length,
        );
        session_refused(
            |c| c.current_hash = vec![2; 31],
            &S_CURRENT_HASH,
            Problem::Length,
        );
        session_refused(
            |c| c.previous_hash = Some(vec![3; 33]),
            &S_PREVIOUS_HASH,
            Problem::Length,
        );
        session_refused(|c| c.device_id = vec![], &S_DEVICE_ID, Problem::Length);
        session_refused(|c| c.device_id = vec![0xff], &S_DEVICE_ID, Problem::Utf8);
        session_refused(
            |c| c.device_id = b"dev 1".to_vec(),
            &S_DEVICE_ID,
            Problem::Invalid,
        );
        session_refused(|c| c.created_at = -1, &S_CREATED_AT, Problem::Negative);
        session_refused(|c| c.last_seen = -1, &S_LAST_SEEN, Problem::Negative);
        session_refused(|c| c.idle_timeout = -1, &S_IDLE_TIMEOUT, Problem::Negative);
        session_refused(|c| c.max_lifetime = -1, &S_MAX_LIFETIME, Problem::Negative);
        session_refused(|c| c.rotated_at = -1, &S_ROTATED_AT, Problem::Negative);
        session_refused(
            |c| c.overlap_until = -1,
            &S_OVERLAP_UNTIL,
            Problem::Negative,
        );
        session_refused(|c| c.generation = -1, &S_GENERATION, Problem::Negative);
        session_refused(
            |c| c.revoked_at = Some(-1),
            &S_REVOKED_AT,
            Problem::Negative,
        );
        session_refused(|c| c.version = i64::MIN, &S_VERSION, Problem::Negative);
        session_refused(|c| c.expires_at = -1, &S_EXPIRES_AT, Problem::Negative);
    }

    #[test]
    fn session_expiry_column_must_be_the_records() {
        session_refused(|c| c.expires_at = 1_281, &S_EXPIRES_AT, Problem::Mismatch);
        session_refused(|c| c.idle_timeout = 181, &S_EXPIRES_AT, Problem::Mismatch);
        // An end past i64::MAX: no column holds it, so no row decodes to it.
        session_refused(
            |c| {
                c.last_seen = i64::MAX;
                c.created_at = i64::MAX;
                c.expires_at = i64::MAX;
            },
            &S_EXPIRES_AT,
            Problem::Mismatch,
        );
    }

    #[test]
    fn sessions_beyond_the_columns_are_refused_naming_the_column() {
        let s = decode_session(&session()).unwrap();
        let big = u64::try_from(i64::MAX).unwrap() + 1;
        for (f, col) in [
            (
                Box::new(|s: &mut DeviceSession| s.version = big)
                    as Box<dyn Fn(&mut DeviceSession)>,
                &S_VERSION,
            ),
            (Box::new(|s| s.generation = u64::MAX), &S_GENERATION),
            (
                Box::new(|s| s.revoked_at = Some(UnixTime::from_secs(big))),
                &S_REVOKED_AT,
            ),
            (
                Box::new(|s| {
                    s.created_at = UnixTime::from_secs(big - 1);
                    s.last_seen = UnixTime::from_secs(big - 1);
                }),
                &S_EXPIRES_AT,
            ),
        ] {
            let mut bad = s.clone();
            f(&mut bad);
            let e = encode_session(&bad).unwrap_err();
            assert_eq!(e.0, col.err(Problem::OutOfRange).message);
        }
    }
}
