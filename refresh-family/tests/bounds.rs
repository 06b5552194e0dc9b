//! Issue 18, finding 2: a family holds a bounded number of token rows whatever its
//! rotations, so one client cannot fill the store for everybody; reuse of any superseded
//! token is still detected. Also the DPoP key binding of a family (RFC 9449 section 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{T0, assert_consistent, engine, rng};
use handoff_core::{Thumbprint, UnixTime};
use handoff_refresh::{
    AuditEvent, FamilyStore, GraceMode, InMemoryFamilyStore, MAX_TOKEN_ROWS_PER_FAMILY, Outcome,
    Policy, RefreshError, RefreshFamilies, RefreshToken, ReuseKind, logout, rotate, rotate_bound,
    start, start_bound,
};

const ROTATIONS: usize = 10_000;

fn issued(o: Outcome) -> handoff_refresh::Issued {
    match o {
        Outcome::Issued(i) => i,
        Outcome::Refused(r) => panic!("refused: {:?}", r.error),
        _ => panic!("unknown outcome"),
    }
}

fn refused(o: Outcome) -> handoff_refresh::Refused {
    match o {
        Outcome::Refused(r) => r,
        Outcome::Issued(i) => panic!("issued: {:?}", i.token),
        _ => panic!("unknown outcome"),
    }
}

/// Logs in "mallory" and rotates her family `ROTATIONS` times in a 1000-row store;
/// returns the store, every token she was handed (oldest first) and the time after.
fn mass_rotation(e: &RefreshFamilies) -> (InMemoryFamilyStore, Vec<RefreshToken>, UnixTime) {
    let store = InMemoryFamilyStore::new(1_000);
    let mut now = T0;
    let mut tokens = vec![
        start(&store, e, "mallory", "web", now, &mut rng())
            .unwrap()
            .token,
    ];
    for _ in 0..ROTATIONS {
        now = now.saturating_add(1);
        let last = tokens.last().unwrap().expose_secret().to_owned();
        let next = issued(rotate(&store, e, &last, now, &mut rng()).unwrap()).token;
        tokens.push(next);
    }
    (store, tokens, now)
}

fn long_lived() -> Policy {
    Policy::builder()
        .idle_lifetime(86_400)
        .absolute_lifetime(30 * 86_400)
        .build()
        .unwrap()
}

#[test]
fn ten_thousand_rotations_keep_a_constant_number_of_rows_and_others_can_log_in() {
    let e = engine(long_lived());
    let (store, tokens, now) = mass_rotation(&e);
    let fam = tokens[0].family();
    let (record, rows) = store.snapshot(fam).unwrap();
    assert_consistent(&record, &rows);
    assert!(
        rows.len() <= MAX_TOKEN_ROWS_PER_FAMILY,
        "{} token rows after {ROTATIONS} rotations",
        rows.len()
    );
    assert_eq!(store.len(), 1 + rows.len(), "only mallory's family is held");
    assert_eq!(record.head_generation, ROTATIONS as u64);
    // Another user's login still succeeds.
    let bob = start(&store, &e, "bob", "web", now, &mut rng()).unwrap();
    let _ = issued(rotate(&store, &e, bob.token.expose_secret(), now, &mut rng()).unwrap());
}

#[test]
fn reuse_of_any_superseded_token_is_detected_after_ten_thousand_rotations() {
    let e = engine(long_lived());
    // The first, an early one, a middle one, and the head's immediate predecessor.
    for pick in [0, 1, ROTATIONS / 2, ROTATIONS - 1] {
        let (store, tokens, now) = mass_rotation(&e);
        let stale = tokens[pick].expose_secret();
        let r = refused(rotate(&store, &e, stale, now, &mut rng()).unwrap());
        assert_eq!(r.error, RefreshError::ReuseDetected, "token {pick}");
        assert_eq!(r.revoke_access_tokens, vec![tokens[0].family()]);
        let expected = if pick == ROTATIONS - 1 {
            ReuseKind::OutsideGrace
        } else {
            ReuseKind::UnknownToken
        };
        assert!(
            r.events.iter().any(|ev| matches!(
                ev,
                AuditEvent::ReuseDetected { kind, .. } if *kind == expected
            )),
            "token {pick}: {:?}",
            r.events
        );
        // The family is revoked: the live head is refused too.
        let head = tokens.last().unwrap().expose_secret();
        let r = refused(rotate(&store, &e, head, now, &mut rng()).unwrap());
        assert_eq!(r.error.reason(), "family_revoked", "token {pick}");
    }
}

#[test]
fn issue_sibling_grace_keeps_rows_bounded_too() {
    let policy = Policy::builder()
        .grace_window(60)
        .grace_max_uses(100)
        .grace_mode(GraceMode::IssueSibling)
        .build()
        .unwrap();
    let e = engine(policy);
    let store = InMemoryFamilyStore::new(100);
    let mut now = T0;
    let mut head = start(&store, &e, "mallory", "web", now, &mut rng())
        .unwrap()
        .token;
    for round in 0..200 {
        now = now.saturating_add(1);
        let prev = head.expose_secret().to_owned();
        head = issued(rotate(&store, &e, &prev, now, &mut rng()).unwrap()).token;
        // Up to 20 in-grace replays of the predecessor, each minting a sibling.
        for _ in 0..(round % 20) {
            let sib = issued(rotate(&store, &e, &prev, now, &mut rng()).unwrap());
            assert!(sib.grace);
            head = sib.token;
        }
        let (record, rows) = store.snapshot(head.family()).unwrap();
        assert_consistent(&record, &rows);
        assert!(rows.len() <= MAX_TOKEN_ROWS_PER_FAMILY, "{}", rows.len());
    }
    assert!(store.len() <= 1 + MAX_TOKEN_ROWS_PER_FAMILY);
}

#[test]
fn logout_with_a_token_whose_row_is_gone_ends_the_session() {
    let e = engine(long_lived());
    let store = InMemoryFamilyStore::new(100);
    let a = start(&store, &e, "alice", "web", T0, &mut rng())
        .unwrap()
        .token;
    let b = issued(rotate(&store, &e, a.expose_secret(), T0, &mut rng()).unwrap()).token;
    let c = issued(rotate(&store, &e, b.expose_secret(), T0, &mut rng()).unwrap()).token;
    assert!(store.load(a.family(), a.id()).unwrap().token.is_none());
    let out = logout(&store, &e, a.expose_secret(), T0).unwrap();
    assert_eq!(out.families, vec![a.family()]);
    let r = refused(rotate(&store, &e, c.expose_secret(), T0, &mut rng()).unwrap());
    assert_eq!(r.error.reason(), "family_revoked");
}

// --- DPoP key binding (RFC 9449 section 5) ---

const KEY: Thumbprint = Thumbprint::from_bytes([7; 32]);
const OTHER: Thumbprint = Thumbprint::from_bytes([8; 32]);

#[test]
fn bound_family_rotates_only_with_its_key_and_a_mismatch_does_not_revoke() {
    let e = engine(long_lived());
    let store = InMemoryFamilyStore::new(100);
    let login = start_bound(&store, &e, "alice", "spa", Some(KEY), T0, &mut rng()).unwrap();
    let fam = login.family;
    assert_eq!(store.load_family(fam).unwrap().unwrap().dpop_jkt, Some(KEY));
    let a = login.token;
    let before = store.snapshot(fam);

    // Another key: refused, nothing written, the family stays live.
    let r =
        refused(rotate_bound(&store, &e, a.expose_secret(), Some(OTHER), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::DpopKeyMismatch);
    assert_eq!(r.error.oauth_error(), "invalid_grant");
    assert!(r.revoke_access_tokens.is_empty());
    assert!(r.events.iter().any(|ev| matches!(
        ev,
        AuditEvent::Refused {
            reason: "dpop_key_mismatch",
            ..
        }
    )));
    assert_eq!(store.snapshot(fam), before, "a mismatch writes nothing");

    // No proof at all: refused the same way.
    let r = refused(rotate(&store, &e, a.expose_secret(), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::DpopProofRequired);
    assert_eq!(store.snapshot(fam), before);

    // The right key rotates; the binding carries over to every generation.
    let b = issued(rotate_bound(&store, &e, a.expose_secret(), Some(KEY), T0, &mut rng()).unwrap())
        .token;
    let r =
        refused(rotate_bound(&store, &e, b.expose_secret(), Some(OTHER), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::DpopKeyMismatch);
    let c = issued(rotate_bound(&store, &e, b.expose_secret(), Some(KEY), T0, &mut rng()).unwrap())
        .token;
    assert_eq!(store.load_family(fam).unwrap().unwrap().dpop_jkt, Some(KEY));

    // A stolen older token presented with another key is refused without revoking;
    // with the right key it is reuse as usual.
    let r =
        refused(rotate_bound(&store, &e, a.expose_secret(), Some(OTHER), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::DpopKeyMismatch);
    let _ = issued(rotate_bound(&store, &e, c.expose_secret(), Some(KEY), T0, &mut rng()).unwrap());
    let r =
        refused(rotate_bound(&store, &e, a.expose_secret(), Some(KEY), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::ReuseDetected);
}

#[test]
fn bound_family_grace_replay_checks_the_key() {
    let policy = Policy::builder().grace_window(30).build().unwrap();
    let e = engine(policy);
    let store = InMemoryFamilyStore::new(100);
    let a = start_bound(&store, &e, "alice", "spa", Some(KEY), T0, &mut rng())
        .unwrap()
        .token;
    let b = issued(rotate_bound(&store, &e, a.expose_secret(), Some(KEY), T0, &mut rng()).unwrap())
        .token;
    let r =
        refused(rotate_bound(&store, &e, a.expose_secret(), Some(OTHER), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::DpopKeyMismatch);
    let g = issued(rotate_bound(&store, &e, a.expose_secret(), Some(KEY), T0, &mut rng()).unwrap());
    assert!(g.grace);
    assert_eq!(g.token, b);
}

#[test]
fn unbound_family_accepts_any_proof_or_none_and_stays_unbound() {
    let e = engine(long_lived());
    let store = InMemoryFamilyStore::new(100);
    let login = start(&store, &e, "alice", "web", T0, &mut rng()).unwrap();
    let b = issued(
        rotate_bound(
            &store,
            &e,
            login.token.expose_secret(),
            Some(KEY),
            T0,
            &mut rng(),
        )
        .unwrap(),
    )
    .token;
    let _ = issued(rotate(&store, &e, b.expose_secret(), T0, &mut rng()).unwrap());
    assert_eq!(
        store.load_family(login.family).unwrap().unwrap().dpop_jkt,
        None
    );
}
