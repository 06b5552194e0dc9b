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
