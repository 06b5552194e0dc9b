//! The async storage seam: the same contract as [`FamilyStore`](crate::FamilyStore), for
//! stores whose clients are async (tokio-postgres, ...). Runtime-agnostic: the trait only
//! names futures; no runtime is pulled in. The drivers below run the same decision path
//! as [`rotate`](crate::rotate) and [`start`](crate::start): the engine decides, the store
//! applies, so sync and async users get the same rules.

use core::future::Future;

use handoff_core::{Thumbprint, UnixTime};
use rand_core::CryptoRng;

use crate::RefreshError;
use crate::driver::{Issued, Outcome};
use crate::engine::RefreshFamilies;
use crate::records::{FamilyRecord, Loaded, WritePlan};
use crate::store::{ApplyOutcome, GcReport};
use crate::token::{FamilyId, TokenId};

/// An async [`FamilyStore`](crate::FamilyStore): same atomicity contract, same errors.
pub trait AsyncFamilyStore: Send + Sync {
    /// Loads the family row and the token row named by a presented token (one snapshot).
    fn load(
        &self,
        family: FamilyId,
        token: TokenId,
    ) -> impl Future<Output = Result<Loaded, RefreshError>> + Send;

    /// Loads one family row.
    fn load_family(
        &self,
        family: FamilyId,
    ) -> impl Future<Output = Result<Option<FamilyRecord>, RefreshError>> + Send;

    /// Up to `max` families of `subject` that are live at `now`.
    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> impl Future<Output = Result<Vec<FamilyRecord>, RefreshError>> + Send;

    /// Applies a plan atomically: every guard and every write, or nothing.
    fn apply(
        &self,
        plan: &WritePlan,
    ) -> impl Future<Output = Result<ApplyOutcome, RefreshError>> + Send;

    /// Deletes up to `max_batch` terminal families past their tombstone, with their tokens.
    fn gc(
        &self,
        now: UnixTime,
        max_batch: usize,
    ) -> impl Future<Output = Result<GcReport, RefreshError>> + Send;
}

/// [`rotate`](crate::rotate) on an [`AsyncFamilyStore`]: verify, load, decide, apply
/// atomically, reload and decide again on a conflict (up to the policy's attempts).
///
/// # Errors
/// As [`rotate`](crate::rotate).
pub async fn rotate_async<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    token: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<Outcome, RefreshError>
where
    S: AsyncFamilyStore + ?Sized,
    R: CryptoRng + Send + ?Sized,
{
    rotate_bound_async(store, engine, token, None, now, rng).await
}

/// [`rotate_bound`](crate::rotate_bound) on an [`AsyncFamilyStore`].
///
/// # Errors
/// As [`rotate`](crate::rotate).
pub async fn rotate_bound_async<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    token: &str,
    dpop_jkt: Option<Thumbprint>,
    now: UnixTime,
    rng: &mut R,
) -> Result<Outcome, RefreshError>
where
    S: AsyncFamilyStore + ?Sized,
    R: CryptoRng + Send + ?Sized,
{
    let presented = match engine.verify(token) {
        Ok(p) => p,
        Err(error) => return Ok(crate::driver::unverified(error, now)),
    };
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let loaded = store.load(presented.family(), presented.id()).await?;
        let decision = engine.decide_bound(&presented, dpop_jkt, loaded, now, rng);
        if !decision.plan().is_empty()
            && store.apply(decision.plan()).await? == ApplyOutcome::Conflict
        {
            continue;
        }
        return Ok(crate::driver::outcome(decision));
    }
    Err(RefreshError::Retry { attempts })
}

/// [`start`](crate::start) on an [`AsyncFamilyStore`].
///
/// # Errors
/// As [`start`](crate::start).
pub async fn start_async<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    subject: &str,
    client_id: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<Issued, RefreshError>
where
    S: AsyncFamilyStore + ?Sized,
    R: CryptoRng + Send + ?Sized,
{
    start_bound_async(store, engine, subject, client_id, None, now, rng).await
}

/// [`start_bound`](crate::start_bound) on an [`AsyncFamilyStore`].
///
/// # Errors
/// As [`start`](crate::start).
pub async fn start_bound_async<S, R>(
    store: &S,
    engine: &RefreshFamilies,
    subject: &str,
    client_id: &str,
    dpop_jkt: Option<Thumbprint>,
    now: UnixTime,
    rng: &mut R,
) -> Result<Issued, RefreshError>
where
    S: AsyncFamilyStore + ?Sized,
    R: CryptoRng + Send + ?Sized,
{
    let attempts = engine.policy().attempts();
    for _ in 0..attempts {
        let new = engine.start_family_bound(subject, client_id, dpop_jkt, now, rng)?;
        if store.apply(&new.plan).await? == ApplyOutcome::Applied {
            return Ok(crate::driver::started(new));
        }
    }
    Err(RefreshError::Retry { attempts })
}
