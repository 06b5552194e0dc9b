//! Shared test support: a fake clock, RNG, engines, a store wrapper that forgets rows, and
//! a consistency check of a family's rows.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashSet;
use std::sync::Mutex;

use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    ApplyOutcome, FamilyId, FamilyRecord, FamilyStatus, FamilyStore, GcReport, InMemoryFamilyStore,
    Loaded, MAX_TOKEN_ROWS_PER_FAMILY, Policy, RefreshError, RefreshFamilies, TokenId, TokenRecord,
    TokenState, WritePlan,
};

pub type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

pub fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

pub fn engine(policy: Policy) -> RefreshFamilies {
    let master = HmacSecret::new(vec![0x42; 32]).unwrap();
    RefreshFamilies::new(&master, policy)
}

pub fn foreign_engine(policy: Policy) -> RefreshFamilies {
    let master = HmacSecret::new(vec![0x99; 32]).unwrap();
    RefreshFamilies::new(&master, policy)
}

/// Checks that a family's rows are whole: exactly one head row, and at most one active
/// token, which is the head (while the family is active); every rotated token's successor
/// exists; versions only count changes.
pub fn assert_consistent(fam: &FamilyRecord, tokens: &[TokenRecord]) {
    let active: Vec<&TokenRecord> = tokens
        .iter()
        .filter(|t| t.state == TokenState::Active)
        .collect();
    assert!(active.len() <= 1, "two live heads in {:?}", fam.id);
    let head = tokens
        .iter()
        .find(|t| t.id == fam.head)
        .unwrap_or_else(|| panic!("head row missing in {:?}", fam.id));
    assert_eq!(head.generation, fam.head_generation, "head generation");
    assert_eq!(head.parent, fam.head_parent, "head parent");
    if fam.status == FamilyStatus::Active {
        assert_eq!(
            head.state,
            TokenState::Active,
            "head of a live family is not active"
        );
    }
    assert!(
        tokens.len() <= MAX_TOKEN_ROWS_PER_FAMILY,
        "{} token rows in {:?}: rows must stay bounded whatever the rotations",
        tokens.len(),
        fam.id
    );
    if let Some(parent) = fam.head_parent {
        let p = tokens
            .iter()
            .find(|t| t.id == parent)
            .unwrap_or_else(|| panic!("head parent row missing in {:?}", fam.id));
        assert!(
            matches!(p.state, TokenState::Rotated { .. }),
            "head parent not rotated"
        );
    }
    for t in tokens {
        // A rotated token keeps its successor's row, except the head's parent after
        // in-grace siblings (its first successor was displaced and may be deleted).
        if let TokenState::Rotated { successor, .. } = t.state
            && Some(t.id) != fam.head_parent
        {
            assert!(
                tokens.iter().any(|s| s.id == successor),
                "successor row missing (half-written rotation)"
            );
        }
        assert!(t.generation <= fam.head_generation);
        assert!(fam.version >= t.generation, "version lags rotations");
    }
}

/// A store that hides the rows of "garbage-collected" tokens, as a backend that purged
/// used rows would.
pub struct ForgetfulStore {
    pub inner: InMemoryFamilyStore,
    pub forgotten: Mutex<HashSet<(FamilyId, TokenId)>>,
}

impl ForgetfulStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: InMemoryFamilyStore::new(capacity),
            forgotten: Mutex::new(HashSet::new()),
        }
    }
    pub fn forget(&self, family: FamilyId, token: TokenId) {
        self.forgotten.lock().unwrap().insert((family, token));
    }
}

impl FamilyStore for ForgetfulStore {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        let mut l = self.inner.load(family, token)?;
        if self.forgotten.lock().unwrap().contains(&(family, token)) {
            l.token = None;
        }
        Ok(l)
    }
    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        self.inner.load_family(family)
    }
    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        self.inner.live_families_of_subject(subject, now, max)
    }
    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        self.inner.apply(plan)
    }
    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        self.inner.gc(now, max_batch)
    }
}

/// A store whose every apply conflicts (a permanently contended backend).
pub struct AlwaysConflict(pub InMemoryFamilyStore);

impl FamilyStore for AlwaysConflict {
    fn load(&self, family: FamilyId, token: TokenId) -> Result<Loaded, RefreshError> {
        self.0.load(family, token)
    }
    fn load_family(&self, family: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        self.0.load_family(family)
    }
    fn live_families_of_subject(
        &self,
        subject: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        self.0.live_families_of_subject(subject, now, max)
    }
    fn apply(&self, _plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        Ok(ApplyOutcome::Conflict)
    }
    fn gc(&self, now: UnixTime, max_batch: usize) -> Result<GcReport, RefreshError> {
        self.0.gc(now, max_batch)
    }
}
