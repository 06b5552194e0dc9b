//! The storage seam: a small trait with one atomic write, and a bounded in-memory default.
//!
//! See the crate documentation for the PostgreSQL schema and the SQL of
//! [`FamilyStore::apply`].

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use handoff_core::UnixTime;

use crate::RefreshError;
use crate::records::{
    FamilyRecord, FamilyStatus, Guard, Loaded, TokenRecord, TokenState, Write, WritePlan,
};
use crate::token::{FamilyId, TokenId};

/// Whether a plan was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ApplyOutcome {
    /// Every guard held and every write was made.
    Applied,
    /// A guard failed (or an insert collided): nothing was written. Load and decide again.
    Conflict,
}

/// What a garbage-collection pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct GcReport {
    /// Families deleted (each terminal and past its tombstone).
    pub families: usize,
    /// Token rows deleted with them.
    pub tokens: usize,
}

/// Where families and tokens live. Implementations must be `Send + Sync`.
///
/// # Atomicity contract
///
/// [`FamilyStore::apply`] is all-or-nothing and linearizable: it checks every guard of
/// the plan and makes every write inside one transaction (or under one lock), and
/// returns [`ApplyOutcome::Conflict`] having written nothing when any guard fails, any
/// row to update is missing or in the wrong state, or any insert collides. A store that
/// wrote part of a plan breaks every guarantee of this crate.
///
/// Which errors are safe: a spurious `Conflict` costs one reload (the caller decides
/// again on fresh rows, so it can never turn into a false reuse), and an `Err` means the
/// caller answers "retry" having written nothing. Applying a plan whose guards did not
/// hold would cost security (two live heads, or a refresh outliving a revocation).
///
/// [`FamilyStore::load`] must read committed rows. Time comes only from the `now` the
/// caller passes to the engine; a store must not compare with its own clock.
pub trait FamilyStore: Send + Sync {
    /// Loads the family row and the token row named by a presented token.
    ///
    /// # Errors
    /// [`RefreshError::StoreUnavailable`] when the backend fails.
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError>;

    /// Loads one family row.
    ///
    /// # Errors
    /// [`RefreshError::StoreUnavailable`] when the backend fails.
    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError>;

    /// Up to `max` families of `subject` that are live at `now` (active, before their
    /// absolute expiry).
    ///
    /// # Errors
    /// [`RefreshError::StoreUnavailable`] when the backend fails.
    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError>;

    /// Applies a plan atomically (see the trait documentation).
    ///
    /// # Errors
    /// [`RefreshError::StoreFull`] or [`RefreshError::StoreUnavailable`], having written
    /// nothing.
    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError>;

    /// Deletes up to `max_batch` families that are terminal and past their tombstone
    /// ([`FamilyRecord::gc_after`]), with all their tokens. Never deletes a row of a live
    /// family.
    ///
    /// # Errors
    /// [`RefreshError::StoreUnavailable`] when the backend fails.
    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError>;
}

/// A thread-safe, bounded, in-memory [`FamilyStore`]: one mutex, so every `apply` is
/// trivially atomic. It fails closed when full ([`RefreshError::StoreFull`]) and never
/// evicts a live row; run [`FamilyStore::gc`] periodically.
#[derive(Debug)]
pub struct InMemoryFamilyStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    families: HashMap<FamilyId, FamilyRecord>,
    tokens: HashMap<(FamilyId, TokenId), TokenRecord>,
    family_tokens: HashMap<FamilyId, Vec<TokenId>>,
    by_subject: BTreeMap<String, BTreeSet<FamilyId>>,
}

impl InMemoryFamilyStore {
    /// A store holding at most `capacity` rows (families plus tokens).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// Rows held (families plus tokens).
    #[must_use]
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.families.len() + g.tokens.len()
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A consistent copy of one family and all its token rows (for admin tools and tests).
    #[must_use]
    pub fn snapshot(&self, family: FamilyId) -> Option<(FamilyRecord, Vec<TokenRecord>)> {
        let g = self.lock();
        let fam = g.families.get(&family)?.clone();
        let tokens = g
            .family_tokens
            .get(&family)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| g.tokens.get(&(family, *id)).cloned())
                    .collect()
            })
            .unwrap_or_default();
        Some((fam, tokens))
    }

    /// Ids of every family held.
    #[must_use]
    pub fn family_ids(&self) -> Vec<FamilyId> {
        self.lock().families.keys().copied().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is staged and committed without a panic point, so a poisoned
        // lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Staged changes of one plan, committed only if every write validated.
#[derive(Default)]
struct Stage {
    families: HashMap<FamilyId, FamilyRecord>,
    tokens: HashMap<(FamilyId, TokenId), TokenRecord>,
    new_families: Vec<FamilyId>,
    new_tokens: Vec<(FamilyId, TokenId)>,
    /// Held rows to delete ([`Write::RetainTokens`]).
    deleted: HashSet<(FamilyId, TokenId)>,
}

impl Stage {
    fn family<'a>(&'a mut self, inner: &Inner, id: FamilyId) -> Option<&'a mut FamilyRecord> {
        match self.families.entry(id) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) => Some(v.insert(inner.families.get(&id)?.clone())),
        }
    }

    fn token<'a>(
        &'a mut self,
        inner: &Inner,
        key: (FamilyId, TokenId),
    ) -> Option<&'a mut TokenRecord> {
        if self.deleted.contains(&key) {
            return None;
        }
        match self.tokens.entry(key) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) => Some(v.insert(inner.tokens.get(&key)?.clone())),
        }
    }

    /// Stages one write; `false` means the plan conflicts.
    fn write(&mut self, inner: &Inner, w: &Write) -> bool {
        match w {
            Write::InsertFamily(f) => {
                if inner.families.contains_key(&f.id) || self.families.contains_key(&f.id) {
                    return false;
                }
                self.families.insert(f.id, f.clone());
                self.new_families.push(f.id);
                true
            }
            Write::InsertToken(t) => {
                let key = (t.family, t.id);
                if (inner.tokens.contains_key(&key) && !self.deleted.contains(&key))
                    || self.tokens.contains_key(&key)
                    || self.family(inner, t.family).is_none()
                {
                    return false;
                }
                self.tokens.insert(key, t.clone());
                self.new_tokens.push(key);
                true
            }
            Write::MarkRotated {
                family,
                token,
                at,
                successor,
            } => match self.token(inner, (*family, *token)) {
                Some(t) if t.state == TokenState::Active => {
                    t.state = TokenState::Rotated {
                        at: *at,
                        successor: *successor,
                        grace_uses: 0,
                    };
                    true
                }
                _ => false,
            },
            Write::IncrementGraceUses { family, token } => {
                match self.token(inner, (*family, *token)) {
                    Some(TokenRecord {
                        state: TokenState::Rotated { grace_uses, .. },
                        ..
                    }) => match grace_uses.checked_add(1) {
                        Some(n) => {
                            *grace_uses = n;
                            true
                        }
                        None => false,
                    },
                    _ => false,
                }
            }
            Write::MarkSuperseded {
                family,
                token,
                at,
                by,
            } => match self.token(inner, (*family, *token)) {
                Some(t) if t.state == TokenState::Active => {
                    t.state = TokenState::Superseded { at: *at, by: *by };
                    true
                }
                _ => false,
            },
            Write::SetHead {
                family,
                head,
                head_parent,
                head_generation,
                version,
            } => match self.family(inner, *family) {
                Some(f) if f.status == FamilyStatus::Active => {
                    f.head = *head;
                    f.head_parent = *head_parent;
                    f.head_generation = *head_generation;
                    f.version = *version;
                    true
                }
                _ => false,
            },
            Write::RetainTokens { family, keep } => {
                let held = inner.family_tokens.get(family).into_iter().flatten();
                let staged = self
                    .new_tokens
                    .iter()
                    .filter(|(f, _)| f == family)
                    .map(|(_, t)| t);
                let doomed: Vec<TokenId> = held
                    .chain(staged)
                    .filter(|id| !keep.contains(id))
                    .copied()
                    .collect();
                for id in doomed {
                    let key = (*family, id);
                    self.tokens.remove(&key);
                    self.new_tokens.retain(|k| *k != key);
                    if inner.tokens.contains_key(&key) {
                        self.deleted.insert(key);
                    }
                }
                true
            }
            Write::RevokeFamily {
                family,
                at,
                reason,
                version,
            } => match self.family(inner, *family) {
                Some(f) if f.status == FamilyStatus::Active => {
                    f.status = FamilyStatus::Revoked {
                        at: *at,
                        reason: *reason,
                    };
                    f.version = *version;
                    true
                }
                _ => false,
            },
        }
    }
}

fn guard_holds(inner: &Inner, g: &Guard) -> bool {
    match g {
        Guard::FamilyAbsent { family } => !inner.families.contains_key(family),
        Guard::FamilyVersion { family, version } => inner
            .families
            .get(family)
            .is_some_and(|f| f.version == *version && f.status == FamilyStatus::Active),
        Guard::TokenActive { family, token } => inner
            .tokens
            .get(&(*family, *token))
            .is_some_and(|t| t.state == TokenState::Active),
        Guard::TokenGraceBelow {
            family,
            token,
            max_uses,
        } => inner.tokens.get(&(*family, *token)).is_some_and(
            |t| matches!(t.state, TokenState::Rotated { grace_uses, .. } if grace_uses < *max_uses),
        ),
    }
}

impl FamilyStore for InMemoryFamilyStore {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let g = self.lock();
        Ok(Loaded {
            family: g.families.get(&family).cloned(),
            token: g.tokens.get(&(family, token)).cloned(),
        })
    }

    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        Ok(self.lock().families.get(&family).cloned())
    }

    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        let g = self.lock();
        Ok(g.by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|id| g.families.get(id))
            .filter(|f| !f.is_terminal(now))
            .take(max)
            .cloned()
            .collect())
    }

    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        let mut g = self.lock();
        if !plan.guards.iter().all(|guard| guard_holds(&g, guard)) {
            return Ok(ApplyOutcome::Conflict);
        }
        let mut stage = Stage::default();
        for w in &plan.writes {
            if !stage.write(&g, w) {
                return Ok(ApplyOutcome::Conflict);
            }
        }
        let rows = g.families.len() + g.tokens.len() - stage.deleted.len();
        let added = stage.new_families.len() + stage.new_tokens.len();
        if rows.saturating_add(added) > self.capacity {
            return Err(RefreshError::StoreFull {
                capacity: self.capacity,
            });
        }
        let inner = &mut *g;
        for key in &stage.deleted {
            inner.tokens.remove(key);
            if let Some(ids) = inner.family_tokens.get_mut(&key.0) {
                ids.retain(|id| *id != key.1);
            }
        }
        for id in &stage.new_families {
            if let Some(f) = stage.families.get(id) {
                inner
                    .by_subject
                    .entry(f.subject.clone())
                    .or_default()
                    .insert(*id);
            }
        }
        for (fid, tid) in &stage.new_tokens {
            inner.family_tokens.entry(*fid).or_default().push(*tid);
        }
        inner.families.extend(stage.families);
        inner.tokens.extend(stage.tokens);
        Ok(ApplyOutcome::Applied)
    }

    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        let mut g = self.lock();
        let doomed: Vec<FamilyId> = g
            .families
            .values()
            .filter(|f| f.is_terminal(now) && now >= f.gc_after())
            .take(max_batch)
            .map(|f| f.id)
            .collect();
        let mut report = GcReport::default();
        for id in doomed {
            if let Some(f) = g.families.remove(&id) {
                report.families += 1;
                if let Some(set) = g.by_subject.get_mut(&f.subject) {
                    set.remove(&id);
                    if set.is_empty() {
                        g.by_subject.remove(&f.subject);
                    }
                }
            }
            for tid in g.family_tokens.remove(&id).unwrap_or_default() {
                if g.tokens.remove(&(id, tid)).is_some() {
                    report.tokens += 1;
                }
            }
        }
        Ok(report)
    }
}
