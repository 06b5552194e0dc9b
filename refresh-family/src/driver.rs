//! Load -> decide -> apply, with bounded retry, against any [`FamilyStore`].

use handoff_core::{Thumbprint, UnixTime};
use rand_core::CryptoRng;

use crate::RefreshError;
use crate::engine::{Decision, Issue, NewFamily, RefreshFamilies, Revocation};
use crate::records::{AuditEvent, RevocationReason};
use crate::store::{ApplyOutcome, FamilyStore};
use crate::token::{FamilyId, RefreshToken};

/// Families revoked per batch by [`revoke_subject`].
pub const SUBJECT_BATCH: usize = 100;
const MAX_SUBJECT_ROUNDS: usize = 10_000;

/// A token was issued and persisted.
#[derive(Debug)]
#[must_use]
pub struct Issued {
    /// The refresh token for the client.
    pub token: RefreshToken,
    /// Whether this was an in-grace replay of the head's immediate predecessor.
    pub grace: bool,
    /// The family.
    pub family: FamilyId,
    /// The family's subject (for the new access token).
    pub subject: String,
    /// The family's client.
    pub client_id: String,
    /// Audit events to record.
    pub events: Vec<AuditEvent>,
}

/// A presentation was refused; on reuse the family was revoked.
#[derive(Debug)]
#[must_use]
pub struct Refused {
    /// The error to map to `invalid_grant` ([`RefreshError::oauth_error`]).
    pub error: RefreshError,
    /// Families whose access tokens the caller must revoke now.
    pub revoke_access_tokens: Vec<FamilyId>,
    /// Audit events to record.
    pub events: Vec<AuditEvent>,
}

/// The outcome of a refresh request.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Outcome {
    /// A token was issued.
    Issued(Issued),
    /// The token was refused.
    Refused(Refused),
}

impl Outcome {
    /// The issued token's result, dropping the audit trail of a refusal.
    ///
    /// # Errors
    /// The refusal's error.
    pub fn into_result(self) -> Result<Issued, RefreshError> {
        match self {
            Self::Issued(i) => Ok(i),
            Self::Refused(r) => Err(r.error),
        }
    }
}

/// Families revoked explicitly.
#[derive(Debug, Default)]
#[must_use]
pub struct Revoked {
    /// Families revoked by this call: revoke their access tokens.
    pub families: Vec<FamilyId>,
    /// Audit events to record.
    pub events: Vec<AuditEvent>,
}

/// Handles a refresh request end to end: verify, load, decide, apply atomically; on a
/// conflict reload and decide again, up to [`crate::Policy::attempts`] times.
///
/// Every retry decides on freshly loaded rows, exactly as if the request had arrived
/// after the write it lost to: a concurrent duplicate lands in grace when grace allows it
/// and is reuse otherwise, never more. When the attempts run out the result is
/// [`RefreshError::Retry`]; this call then wrote nothing, so the client's retry is the
/// same first presentation again.
///
/// # Errors
/// Only retryable or store failures ([`RefreshError::Retry`], [`RefreshError::StoreFull`],
/// [`RefreshError::StoreUnavailable`]); token problems come back as
/// [`Outcome::Refused`] with their audit events.
pub fn rotate<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    token: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<Outcome, RefreshError>
where
    S: FamilyStore + ?Sized,
    R: CryptoRng + ?Sized,
{
    rotate_bound(store, engine, token, None, now, rng)
}

/// [`rotate`] for a request that came with a verified DPoP proof whose key has the RFC
/// 7638 thumbprint `dpop_jkt` (`None`: no proof). A family bound to a DPoP key at its
/// start ([`start_bound`]) is refused with [`RefreshError::DpopProofRequired`] or
/// [`RefreshError::DpopKeyMismatch`] (nothing written, the family stays live; see
/// [`RefreshFamilies::decide_bound`]).
///
/// # Errors
/// As [`rotate`].
pub fn rotate_bound<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    token: &str,
    dpop_jkt: Option<Thumbprint>,
    now: UnixTime,
    rng: &mut R,
) -> Result<Outcome, RefreshError>
where
    S: FamilyStore + ?Sized,
    R: CryptoRng + ?Sized,
{
    let presented = match engine.verify(token) {
        Ok(p) => p,
        Err(error) => return Ok(unverified(error, now)),
    };
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let loaded = store.load(presented.family(), presented.id())?;
        let decision = engine.decide_bound(&presented, dpop_jkt, loaded, now, rng);
        if !decision.plan().is_empty() && store.apply(decision.plan())? == ApplyOutcome::Conflict {
            continue;
        }
        return Ok(outcome(decision));
    }
    Err(RefreshError::Retry { attempts })
}

// The I/O-free steps of the drivers, shared by the blocking ones here and the async ones
// in `store_async`, which differ only in awaiting the store.

/// The outcome of a token that failed verification (nothing loaded, nothing written).
pub(crate) fn unverified(error: RefreshError, now: UnixTime) -> Outcome {
    let events = vec![AuditEvent::Refused {
        family: None,
        token: None,
        reason: error.reason(),
        at: now,
    }];
    Outcome::Refused(Refused {
        error,
        revoke_access_tokens: Vec::new(),
        events,
    })
}

/// The outcome of a decision whose plan was applied (or had nothing to apply).
pub(crate) fn outcome(decision: Decision) -> Outcome {
    match decision {
        Decision::Rotate(i) => Outcome::Issued(issued(i, false)),
        Decision::Grace(i) => Outcome::Issued(issued(i, true)),
        Decision::Reject(r) => Outcome::Refused(Refused {
            error: r.error,
            revoke_access_tokens: r.plan.revoke_access_tokens,
            events: r.events,
        }),
    }
}

fn issued(i: Issue, grace: bool) -> Issued {
    Issued {
        token: i.token,
        grace,
        family: i.family,
        subject: i.subject,
        client_id: i.client_id,
        events: i.events,
    }
}

/// What a login returns once its new family was persisted.
pub(crate) fn started(new: NewFamily) -> Issued {
    Issued {
        token: new.token,
        grace: false,
        family: new.family.id,
        subject: new.family.subject,
        client_id: new.family.client_id,
        events: new.events,
    }
}

/// Starts a family at login and persists it.
///
/// # Errors
/// [`RefreshError::Policy`] for a bad subject or client id, store errors, or
/// [`RefreshError::Retry`] if every random family id collided.
pub fn start<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    subject: &str,
    client_id: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<Issued, RefreshError>
where
    S: FamilyStore + ?Sized,
    R: CryptoRng + ?Sized,
{
    start_bound(store, engine, subject, client_id, None, now, rng)
}

/// [`start`], binding the family to the DPoP key whose RFC 7638 thumbprint is `dpop_jkt`
/// (RFC 9449 section 5; `None`: unbound). Rotate it with [`rotate_bound`].
///
/// # Errors
/// As [`start`].
pub fn start_bound<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    subject: &str,
    client_id: &str,
    dpop_jkt: Option<Thumbprint>,
    now: UnixTime,
    rng: &mut R,
) -> Result<Issued, RefreshError>
where
    S: FamilyStore + ?Sized,
    R: CryptoRng + ?Sized,
{
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let new = engine.start_family_bound(subject, client_id, dpop_jkt, now, rng)?;
        if store.apply(&new.plan)? == ApplyOutcome::Applied {
            return Ok(started(new));
        }
    }
    Err(RefreshError::Retry { attempts })
}

/// Logout: revokes the family of a presented token (any authentic token of the family).
///
/// # Errors
/// Token problems ([`RefreshError::Malformed`], [`RefreshError::InvalidToken`],
/// [`RefreshError::UnknownFamily`]), store errors, or [`RefreshError::Retry`].
pub fn logout<S>(
    store: &S,
    engine: &RefreshFamilies,
    token: &str,
    now: UnixTime,
) -> Result<Revoked, RefreshError>
where
    S: FamilyStore + ?Sized,
{
    let presented = engine.verify(token)?;
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let loaded = store.load(presented.family(), presented.id())?;
        let revocation = engine.logout(&presented, loaded, now)?;
        if let Some(done) = apply_revocation(store, revocation)? {
            return Ok(done);
        }
    }
    Err(RefreshError::Retry { attempts })
}

/// Revokes one family by id (admin action, security event).
///
/// # Errors
/// [`RefreshError::UnknownFamily`], store errors, or [`RefreshError::Retry`].
pub fn revoke_family<S>(
    store: &S,
    engine: &RefreshFamilies,
    family: FamilyId,
    reason: RevocationReason,
    now: UnixTime,
) -> Result<Revoked, RefreshError>
where
    S: FamilyStore + ?Sized,
{
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let fam = store
            .load_family(family)?
            .ok_or(RefreshError::UnknownFamily)?;
        let revocation = engine.revoke(core::slice::from_ref(&fam), reason, now);
        if let Some(done) = apply_revocation(store, revocation)? {
            return Ok(done);
        }
    }
    Err(RefreshError::Retry { attempts })
}

/// Revokes every live family of a subject (password change, account lock), in batches of
/// [`SUBJECT_BATCH`], each batch one atomic plan.
///
/// # Errors
/// Store errors, or [`RefreshError::Retry`] after too many consecutive conflicts.
pub fn revoke_subject<S>(
    store: &S,
    engine: &RefreshFamilies,
    subject: &str,
    reason: RevocationReason,
    now: UnixTime,
) -> Result<Revoked, RefreshError>
where
    S: FamilyStore + ?Sized,
{
    let attempts = engine.policy().attempts();
    let mut total = Revoked::default();
    let mut conflicts = 0;
    for _ in 0..MAX_SUBJECT_ROUNDS {
        let batch = store.live_families_of_subject(subject, now, SUBJECT_BATCH)?;
        if batch.is_empty() {
            return Ok(total);
        }
        let revocation = engine.revoke(&batch, reason, now);
        match apply_revocation(store, revocation)? {
            Some(done) => {
                conflicts = 0;
                total.families.extend(done.families);
                total.events.extend(done.events);
            }
            None => {
                conflicts += 1;
                if conflicts >= attempts {
                    return Err(RefreshError::Retry { attempts });
                }
            }
        }
    }
    Err(RefreshError::Retry { attempts })
}

/// `Some` when applied (or nothing to write), `None` on conflict.
fn apply_revocation<S: FamilyStore + ?Sized>(
    store: &S,
    r: Revocation,
) -> Result<Option<Revoked>, RefreshError> {
    if !r.plan.is_empty() && store.apply(&r.plan)? == ApplyOutcome::Conflict {
        return Ok(None);
    }
    Ok(Some(Revoked {
        families: r.plan.revoke_access_tokens,
        events: r.events,
    }))
}
