//! The storage seam: a small trait with one atomic write, and a bounded in-memory default.
//!
//! See the crate documentation for the PostgreSQL schema and the SQL of
//! [`FamilyStore::apply`].

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A thread-safe, bounded, in-memory [`FamilyStore`]. It fails closed when full
/// ([`RefreshError::StoreFull`]) and never evicts a live row; run [`FamilyStore::gc`]
/// periodically.
///
/// Families are spread over 16 independently locked shards by their (random) id,
/// so rotations of different families run in parallel; a plan that touches several
/// families (revoking a subject) locks their shards in ascending order, so every
/// `apply` stays atomic and deadlock-free. The subject index has its own lock, taken only
/// when a family is created or collected and always after the shard locks. The row count
/// is one atomic counter, reserved before a plan commits.
#[derive(Debug)]
pub struct InMemoryFamilyStore {
    shards: Box<[Mutex<Inner>]>,
    by_subject: Mutex<BTreeMap<String, BTreeSet<FamilyId>>>,
    rows: AtomicUsize,
    capacity: usize,
}

/// Number of shards of [`InMemoryFamilyStore`].
const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Inner {
    families: HashMap<FamilyId, FamilyRecord>,
    tokens: HashMap<(FamilyId, TokenId), TokenRecord>,
    family_tokens: HashMap<FamilyId, Vec<TokenId>>,
}

fn shard_of(family: FamilyId) -> usize {
    usize::from(family.as_bytes()[0]) % SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation is staged and committed without a panic point, so a poisoned
    // lock still guards consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shards one plan touches, locked in ascending order.
struct Locked<'a> {
    guards: Vec<(usize, MutexGuard<'a, Inner>)>,
}

impl Locked<'_> {
    fn get(&self, family: FamilyId) -> Option<&Inner> {
        let ix = shard_of(family);
        self.guards
            .iter()
            .find(|(i, _)| *i == ix)
            .map(|(_, g)| &**g)
    }
    fn get_mut(&mut self, family: FamilyId) -> Option<&mut Inner> {
        let ix = shard_of(family);
        self.guards
            .iter_mut()
            .find(|(i, _)| *i == ix)
            .map(|(_, g)| &mut **g)
    }
    fn family(&self, id: FamilyId) -> Option<&FamilyRecord> {
        self.get(id)?.families.get(&id)
    }
    fn token(&self, key: (FamilyId, TokenId)) -> Option<&TokenRecord> {
        self.get(key.0)?.tokens.get(&key)
    }
    fn has_family(&self, id: FamilyId) -> bool {
        self.family(id).is_some()
    }
    fn has_token(&self, key: (FamilyId, TokenId)) -> bool {
        self.token(key).is_some()
    }
    fn family_token_ids(&self, family: FamilyId) -> &[TokenId] {
        self.get(family)
            .and_then(|s| s.family_tokens.get(&family))
            .map_or(&[], Vec::as_slice)
    }
}

fn guard_family(g: &Guard) -> Option<FamilyId> {
    match g {
        Guard::FamilyAbsent { family }
        | Guard::FamilyVersion { family, .. }
        | Guard::TokenActive { family, .. }
        | Guard::TokenGraceBelow { family, .. } => Some(*family),
    }
}

fn write_family(w: &Write) -> Option<FamilyId> {
    match w {
        Write::InsertFamily(f) => Some(f.id),
        Write::InsertToken(t) => Some(t.family),
        Write::MarkRotated { family, .. }
        | Write::IncrementGraceUses { family, .. }
        | Write::MarkSuperseded { family, .. }
        | Write::SetHead { family, .. }
        | Write::RetainTokens { family, .. }
        | Write::RevokeFamily { family, .. } => Some(*family),
    }
}

impl InMemoryFamilyStore {
    /// A store holding at most `capacity` rows (families plus tokens).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Inner::default())).collect(),
            by_subject: Mutex::new(BTreeMap::new()),
            rows: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Rows held (families plus tokens).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.load(Ordering::Acquire)
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A consistent copy of one family and all its token rows (for admin tools and tests).
    #[must_use]
    pub fn snapshot(&self, family: FamilyId) -> Option<(FamilyRecord, Vec<TokenRecord>)> {
        let g = lock(&self.shards[shard_of(family)]);
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
        self.shards
            .iter()
            .flat_map(|s| lock(s).families.keys().copied().collect::<Vec<_>>())
            .collect()
    }

    /// Locks the shards of every family the plan names, in ascending order.
    fn lock_plan(&self, plan: &WritePlan) -> Locked<'_> {
        let mut ix: Vec<usize> = plan
            .guards
            .iter()
            .filter_map(guard_family)
            .chain(plan.writes.iter().filter_map(write_family))
            .map(shard_of)
            .collect();
        ix.sort_unstable();
        ix.dedup();
        Locked {
            guards: ix.into_iter().map(|i| (i, lock(&self.shards[i]))).collect(),
        }
    }

    /// Reserves `added - removed` rows, or says the store would be over capacity.
    fn reserve(&self, added: usize, removed: usize) -> bool {
        let mut cur = self.rows.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_sub(removed).saturating_add(added);
            if added > removed && next > self.capacity {
                return false;
            }
            match self
                .rows
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
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
    fn family<'a>(&'a mut self, inner: &Locked<'_>, id: FamilyId) -> Option<&'a mut FamilyRecord> {
        match self.families.entry(id) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) => Some(v.insert(inner.family(id)?.clone())),
        }
    }

    fn token<'a>(
        &'a mut self,
        inner: &Locked<'_>,
        key: (FamilyId, TokenId),
    ) -> Option<&'a mut TokenRecord> {
        if self.deleted.contains(&key) {
            return None;
        }
        match self.tokens.entry(key) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) => Some(v.insert(inner.token(key)?.clone())),
        }
    }

    /// Stages one write; `false` means the plan conflicts.
    fn write(&mut self, inner: &Locked<'_>, w: &Write) -> bool {
        match w {
            Write::InsertFamily(f) => {
                if inner.has_family(f.id) || self.families.contains_key(&f.id) {
                    return false;
                }
                self.families.insert(f.id, f.clone());
                self.new_families.push(f.id);
                true
            }
            Write::InsertToken(t) => {
                let key = (t.family, t.id);
                if (inner.has_token(key) && !self.deleted.contains(&key))
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
                let held = inner.family_token_ids(*family).iter();
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
                    if inner.has_token(key) {
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

fn guard_holds(inner: &Locked<'_>, g: &Guard) -> bool {
    match g {
        Guard::FamilyAbsent { family } => !inner.has_family(*family),
        Guard::FamilyVersion { family, version } => inner
            .family(*family)
            .is_some_and(|f| f.version == *version && f.status == FamilyStatus::Active),
        Guard::TokenActive { family, token } => inner
            .token((*family, *token))
            .is_some_and(|t| t.state == TokenState::Active),
        Guard::TokenGraceBelow {
            family,
            token,
            max_uses,
        } => inner.token((*family, *token)).is_some_and(
            |t| matches!(t.state, TokenState::Rotated { grace_uses, .. } if grace_uses < *max_uses),
        ),
    }
}

impl FamilyStore for InMemoryFamilyStore {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let g = lock(&self.shards[shard_of(family)]);
        Ok(Loaded {
            family: g.families.get(&family).cloned(),
            token: g.tokens.get(&(family, token)).cloned(),
        })
    }

    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        Ok(lock(&self.shards[shard_of(family)])
            .families
            .get(&family)
            .cloned())
    }

    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        // Copy the ids, release the index, then read each family under its shard lock
        // (never the index lock while holding a shard's: shards first, index last).
        let ids: Vec<FamilyId> = lock(&self.by_subject)
            .get(subject)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= max {
                break;
            }
            if let Some(f) = lock(&self.shards[shard_of(id)]).families.get(&id)
                && !f.is_terminal(now)
            {
                out.push(f.clone());
            }
        }
        Ok(out)
    }

    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        let mut locked = self.lock_plan(plan);
        if !plan.guards.iter().all(|guard| guard_holds(&locked, guard)) {
            return Ok(ApplyOutcome::Conflict);
        }
        let mut stage = Stage::default();
        for w in &plan.writes {
            if !stage.write(&locked, w) {
                return Ok(ApplyOutcome::Conflict);
            }
        }
        let added = stage.new_families.len() + stage.new_tokens.len();
        if !self.reserve(added, stage.deleted.len()) {
            return Err(RefreshError::StoreFull {
                capacity: self.capacity,
            });
        }
        // Commit: nothing below can fail.
        for key in &stage.deleted {
            if let Some(inner) = locked.get_mut(key.0) {
                inner.tokens.remove(key);
                if let Some(ids) = inner.family_tokens.get_mut(&key.0) {
                    ids.retain(|id| *id != key.1);
                }
            }
        }
        for (fid, tid) in &stage.new_tokens {
            if let Some(inner) = locked.get_mut(*fid) {
                inner.family_tokens.entry(*fid).or_default().push(*tid);
            }
        }
        let mut subjects = Vec::new();
        for id in &stage.new_families {
            if let Some(f) = stage.families.get(id) {
                subjects.push((f.subject.clone(), *id));
            }
        }
        for (id, f) in stage.families {
            if let Some(inner) = locked.get_mut(id) {
                inner.families.insert(id, f);
            }
        }
        for (key, t) in stage.tokens {
            if let Some(inner) = locked.get_mut(key.0) {
                inner.tokens.insert(key, t);
            }
        }
        if !subjects.is_empty() {
            let mut index = lock(&self.by_subject);
            for (subject, id) in subjects {
                index.entry(subject).or_default().insert(id);
            }
        }
        drop(locked);
        Ok(ApplyOutcome::Applied)
    }

    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        let mut report = GcReport::default();
        for shard in self.shards.iter() {
            if report.families >= max_batch {
                break;
            }
            let mut g = lock(shard);
            let doomed: Vec<FamilyId> = g
                .families
                .values()
                .filter(|f| f.is_terminal(now) && now >= f.gc_after())
                .take(max_batch - report.families)
                .map(|f| f.id)
                .collect();
            let mut subjects = Vec::new();
            let mut removed = 0;
            for id in doomed {
                if let Some(f) = g.families.remove(&id) {
                    report.families += 1;
                    removed += 1;
                    subjects.push((f.subject, id));
                }
                for tid in g.family_tokens.remove(&id).unwrap_or_default() {
                    if g.tokens.remove(&(id, tid)).is_some() {
                        report.tokens += 1;
                        removed += 1;
                    }
                }
            }
            if !subjects.is_empty() {
                let mut index = lock(&self.by_subject);
                for (subject, id) in subjects {
                    if let Some(set) = index.get_mut(&subject) {
                        set.remove(&id);
                        if set.is_empty() {
                            index.remove(&subject);
                        }
                    }
                }
            }
            drop(g);
            self.rows.fetch_sub(removed, Ordering::AcqRel);
        }
        Ok(report)
    }
}
