//! 16 threads present the same token at once against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::{T0, assert_consistent, engine, rng};
use handoff_refresh::{
    FamilyStatus, InMemoryFamilyStore, Outcome, Policy, RefreshError, RefreshFamilies,
    RevocationReason, rotate, start,
};

const THREADS: usize = 16;
const ROUNDS: usize = 25;

/// Runs one round: every thread presents `token` at the same instant. Meanwhile a checker
/// thread keeps snapshotting the family and asserting it is never half-written.
fn race(store: &Arc<InMemoryFamilyStore>, e: &Arc<RefreshFamilies>, token: &str) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(AtomicBool::new(false));
    let family = e.verify(token).unwrap().family();
    let checker = {
        let (store, done, barrier) = (Arc::clone(store), Arc::clone(&done), Arc::clone(&barrier));
        thread::spawn(move || {
            barrier.wait();
            let mut checks = 0u32;
            while !done.load(Ordering::Acquire) || checks == 0 {
                let (fam, tokens) = store.snapshot(family).unwrap();
                assert_consistent(&fam, &tokens);
                checks += 1;
            }
            checks
        })
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, e, barrier) = (Arc::clone(store), Arc::clone(e), Arc::clone(&barrier));
            let token = token.to_owned();
            thread::spawn(move || {
                barrier.wait();
                rotate(&*store, &e, &token, T0.saturating_add(5), &mut rng()).unwrap()
            })
        })
        .collect();
    let outcomes = handles.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Release);
    assert!(checker.join().unwrap() > 0);
    outcomes
}

#[test]
fn grace_on_exactly_one_rotation_all_others_same_successor() {
    let policy = Policy::builder()
        .grace_window(30)
        .grace_max_uses(THREADS as u32)
        .build()
        .unwrap();
    let e = Arc::new(engine(policy));
    let store = Arc::new(InMemoryFamilyStore::new(10_000));
    for _ in 0..ROUNDS {
        let first = start(&*store, &e, "alice", "web", T0, &mut rng())
            .unwrap()
            .token;
        let outcomes = race(&store, &e, first.expose_secret());
        let mut rotations = 0;
        let mut tokens = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Issued(i) => {
                    if !i.grace {
                        rotations += 1;
                    }
                    tokens.push(i.token.expose_secret().to_owned());
                }
                Outcome::Refused(r) => panic!("refused under grace: {:?}", r.error),
                _ => panic!("unknown outcome"),
            }
        }
        assert_eq!(rotations, 1, "exactly one rotation");
        assert_eq!(tokens.len(), THREADS);
        assert!(
            tokens.iter().all(|t| *t == tokens[0]),
            "everyone gets the same successor"
        );
        let (fam, rows) = store.snapshot(first.family()).unwrap();
        assert_consistent(&fam, &rows);
        assert_eq!(fam.status, FamilyStatus::Active);
        assert_eq!(fam.head_generation, 1);
        assert_eq!(rows.len(), 2, "one successor row, no strays");
    }
}

#[test]
fn grace_off_exactly_one_rotation_all_others_refused() {
    let e = Arc::new(engine(Policy::default()));
    let store = Arc::new(InMemoryFamilyStore::new(10_000));
    for _ in 0..ROUNDS {
        let first = start(&*store, &e, "alice", "web", T0, &mut rng())
            .unwrap()
            .token;
        let outcomes = race(&store, &e, first.expose_secret());
        let mut rotations = 0;
        let mut reuse = 0;
        for o in outcomes {
            match o {
                Outcome::Issued(i) => {
                    assert!(!i.grace);
                    rotations += 1;
                }
                Outcome::Refused(r) => {
                    assert_eq!(r.error.oauth_error(), "invalid_grant");
                    match r.error {
                        RefreshError::ReuseDetected => reuse += 1,
                        RefreshError::FamilyRevoked {
                            reason: RevocationReason::ReuseDetected,
                        } => {}
                        other => panic!("unexpected refusal {other:?}"),
                    }
                }
                _ => panic!("unknown outcome"),
            }
        }
        assert_eq!(rotations, 1, "exactly one rotation");
        assert_eq!(reuse, 1, "the family is revoked exactly once");
        let (fam, rows) = store.snapshot(first.family()).unwrap();
        assert_consistent(&fam, &rows);
        assert!(matches!(fam.status, FamilyStatus::Revoked { .. }));
        assert_eq!(rows.len(), 2, "one successor row, no strays");
    }
}

/// The sharded store under parallel rotations of many families, a subject-wide revocation
/// and gc: every family stays whole, the row count matches the rows held, and the
/// revocation (one atomic plan over many shards) never deadlocks with the rotations.
#[test]
fn parallel_families_across_shards_stay_consistent() {
    let e = Arc::new(engine(Policy::default()));
    let store = Arc::new(InMemoryFamilyStore::new(100_000));
    let mut heads = Vec::new();
    for i in 0..64 {
        let subject = if i % 2 == 0 { "even" } else { "odd" };
        heads.push(
            start(&*store, &e, subject, "web", T0, &mut rng())
                .unwrap()
                .token,
        );
    }
    let barrier = Arc::new(Barrier::new(5));
    let mut handles = Vec::new();
    for chunk in heads.chunks(16) {
        let (store, e, barrier) = (Arc::clone(&store), Arc::clone(&e), Arc::clone(&barrier));
        let mut mine: Vec<String> = chunk.iter().map(|t| t.expose_secret().to_owned()).collect();
        handles.push(thread::spawn(move || {
            barrier.wait();
            for round in 0..50u64 {
                for tok in &mut mine {
                    match rotate(&*store, &e, tok, T0.saturating_add(round), &mut rng()).unwrap() {
                        Outcome::Issued(i) => *tok = i.token.expose_secret().to_owned(),
                        Outcome::Refused(r) => {
                            assert_eq!(r.error.reason(), "family_revoked");
                        }
                        _ => panic!("unknown outcome"),
                    }
                }
            }
        }));
    }
    barrier.wait();
    let revoked = handoff_refresh::revoke_subject(
        &*store,
        &e,
        "odd",
        RevocationReason::SecurityEvent,
        T0.saturating_add(10),
    )
    .unwrap();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(revoked.families.len(), 32);
    let mut rows = 0;
    for id in store.family_ids() {
        let (fam, tokens) = store.snapshot(id).unwrap();
        assert_consistent(&fam, &tokens);
        if fam.subject == "odd" {
            assert!(matches!(fam.status, FamilyStatus::Revoked { .. }));
        } else {
            assert_eq!(fam.status, FamilyStatus::Active);
            assert_eq!(fam.head_generation, 50);
        }
        rows += 1 + tokens.len();
    }
    assert_eq!(store.len(), rows, "the row counter matches the rows held");
    let report =
        handoff_refresh::FamilyStore::gc(&*store, T0.saturating_add(400 * 86_400), 1_000).unwrap();
    assert_eq!(report.families, 64);
    assert!(store.is_empty());
}
