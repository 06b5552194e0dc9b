//! Scenario and negative tests: one security rule each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{AlwaysConflict, ForgetfulStore, T0, assert_consistent, engine, foreign_engine, rng};
use handoff_core::UnixTime;
use handoff_refresh::{
    ApplyOutcome, AuditEvent, Decision, FamilyStatus, FamilyStore, GraceMode, InMemoryFamilyStore,
    Issued, Outcome, Policy, RefreshError, RefreshFamilies, RefreshToken, Refused, ReuseKind,
    RevocationReason, TOKEN_LEN, TokenState, logout, revoke_family, revoke_subject, rotate, start,
};

fn login(store: &dyn FamilyStore, e: &RefreshFamilies, now: UnixTime) -> Issued {
    start(store, e, "alice", "web", now, &mut rng()).unwrap()
}

fn issued(o: Outcome) -> Issued {
    match o {
        Outcome::Issued(i) => i,
        Outcome::Refused(r) => panic!("refused: {:?}", r.error),
        _ => panic!("unknown outcome"),
    }
}

fn refused(o: Outcome) -> Refused {
    match o {
        Outcome::Refused(r) => r,
        Outcome::Issued(i) => panic!("issued: {:?}", i.token),
        _ => panic!("unknown outcome"),
    }
}

fn present(
    store: &dyn FamilyStore,
    e: &RefreshFamilies,
    t: &RefreshToken,
    now: UnixTime,
) -> Outcome {
    rotate(store, e, t.expose_secret(), now, &mut rng()).unwrap()
}

fn grace_policy(window: u64, uses: u32) -> Policy {
    Policy::builder()
        .grace_window(window)
        .grace_max_uses(uses)
        .build()
        .unwrap()
}

/// Re-encodes a token with one payload byte flipped.
fn tamper(t: &RefreshToken, byte: usize) -> String {
    let text = t.expose_secret();
    let mut payload = handoff_core::b64::decode(&text[4..]).unwrap();
    payload[byte] ^= 0x01;
    format!("rf1.{}", handoff_core::b64::encode(&payload))
}

#[test]
fn malformed_tokens_are_refused_precisely() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let first = login(&store, &e, T0).token;
    let good = first.expose_secret();
    assert_eq!(good.len(), TOKEN_LEN);
    let cases = [
        String::new(),
        good[..good.len() - 1].to_owned(),
        format!("{good}A"),
        format!("rf2.{}", &good[4..]),
        format!("rf1.{}+", &good[4..good.len() - 1]),
        format!("rf1.{}=", &good[4..good.len() - 1]),
        "x".repeat(10_000),
    ];
    for bad in &cases {
        let r = refused(rotate(&store, &e, bad, T0, &mut rng()).unwrap());
        assert!(
            matches!(r.error, RefreshError::Malformed(_)),
            "{bad:?}: {:?}",
            r.error
        );
        assert_eq!(r.error.oauth_error(), "invalid_grant");
        assert!(r.revoke_access_tokens.is_empty());
    }
    // The family is untouched.
    let (fam, _) = store.snapshot(first.family()).unwrap();
    assert_eq!(fam.version, 0);
}

#[test]
fn bad_mac_on_ids_and_foreign_keys_are_opaque_and_write_nothing() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let first = login(&store, &e, T0).token;
    for byte in [0, 15, 16, 31, 64, 79] {
        let r = refused(rotate(&store, &e, &tamper(&first, byte), T0, &mut rng()).unwrap());
        assert_eq!(r.error, RefreshError::InvalidToken, "byte {byte}");
        assert_eq!(r.error.to_string(), "invalid refresh token");
    }
    // A token minted under another server key (a foreign deployment).
    let other_store = InMemoryFamilyStore::new(100);
    let foreign = start(
        &other_store,
        &foreign_engine(Policy::default()),
        "alice",
        "web",
        T0,
        &mut rng(),
    )
    .unwrap()
    .token;
    let r = refused(present(&store, &e, &foreign, T0));
    assert_eq!(r.error, RefreshError::InvalidToken);
    let (fam, _) = store.snapshot(first.family()).unwrap();
    assert_eq!(fam.version, 0, "nothing written");
    // The real token still works.
    assert!(!issued(present(&store, &e, &first, T0.saturating_add(1))).grace);
}

#[test]
fn wrong_secret_with_authentic_ids_is_refused_without_revoking() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let first = login(&store, &e, T0).token;
    // Bytes 32..64 are the secret: the id tag still verifies, the stored hash does not.
    let r = refused(rotate(&store, &e, &tamper(&first, 40), T0, &mut rng()).unwrap());
    assert_eq!(r.error, RefreshError::InvalidToken);
    assert!(r.revoke_access_tokens.is_empty());
    let (fam, _) = store.snapshot(first.family()).unwrap();
    assert_eq!(fam.status, FamilyStatus::Active);
    assert!(!issued(present(&store, &e, &first, T0)).grace);
}

#[test]
fn idle_expiry_refuses_without_writes() {
    let policy = Policy::builder()
        .idle_lifetime(3_600)
        .absolute_lifetime(86_400)
        .build()
        .unwrap();
    let store = InMemoryFamilyStore::new(100);
    let e = engine(policy);
    let a = login(&store, &e, T0).token;
    let r = refused(present(&store, &e, &a, T0.saturating_add(3_600)));
    assert_eq!(
        r.error,
        RefreshError::TokenExpired {
            expired_at: T0.saturating_add(3_600)
        }
    );
    assert_eq!(store.snapshot(a.family()).unwrap().0.version, 0);
    // One second earlier it rotates, and the successor's idle clock starts afresh.
    let b = issued(present(&store, &e, &a, T0.saturating_add(3_599))).token;
    assert!(!issued(present(&store, &e, &b, T0.saturating_add(3_599 + 3_599))).grace);
}

#[test]
fn absolute_expiry_is_never_extended_by_rotation() {
    let policy = Policy::builder()
        .idle_lifetime(3_600)
        .absolute_lifetime(10_000)
        .build()
        .unwrap();
    let store = InMemoryFamilyStore::new(100);
    let e = engine(policy);
    let mut tok = login(&store, &e, T0).token;
    let mut now = T0;
    for _ in 0..2 {
        now = now.saturating_add(3_000);
        tok = issued(present(&store, &e, &tok, now)).token;
    }
    let (fam, _) = store.snapshot(tok.family()).unwrap();
    assert_eq!(fam.absolute_expires_at, T0.saturating_add(10_000));
    // The head is well inside its idle lifetime, but the family is over.
    let r = refused(present(&store, &e, &tok, T0.saturating_add(10_000)));
    assert_eq!(
        r.error,
        RefreshError::FamilyExpired {
            expired_at: T0.saturating_add(10_000)
        }
    );
    assert_eq!(store.snapshot(tok.family()).unwrap().0.version, fam.version);
}

#[test]
fn revoked_family_is_refused_without_writes() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let first = login(&store, &e, T0);
    let done = revoke_family(&store, &e, first.family, RevocationReason::Admin, T0).unwrap();
    assert_eq!(done.families, vec![first.family]);
    let before = store.snapshot(first.family).unwrap();
    let r = refused(present(&store, &e, &first.token, T0.saturating_add(1)));
    assert_eq!(
        r.error,
        RefreshError::FamilyRevoked {
            reason: RevocationReason::Admin
        }
    );
    assert!(
        r.revoke_access_tokens.is_empty(),
        "already revoked: no new work"
    );
    assert_eq!(store.snapshot(first.family).unwrap(), before);
}

#[test]
fn grace_off_second_presentation_is_reuse_and_revokes_everything() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let b = issued(present(&store, &e, &a, T0.saturating_add(10))).token;
    let r = refused(present(&store, &e, &a, T0.saturating_add(10)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
    assert_eq!(r.revoke_access_tokens, vec![a.family()]);
    assert!(r.events.iter().any(|ev| matches!(
        ev,
        AuditEvent::ReuseDetected {
            kind: ReuseKind::OutsideGrace,
            ..
        }
    )));
    let r = refused(present(&store, &e, &b, T0.saturating_add(11)));
    assert_eq!(
        r.error,
        RefreshError::FamilyRevoked {
            reason: RevocationReason::ReuseDetected
        }
    );
}

#[test]
fn reuse_after_grace_window_revokes() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(grace_policy(10, 8));
    let a = login(&store, &e, T0).token;
    let t1 = T0.saturating_add(100);
    let b = issued(present(&store, &e, &a, t1)).token;
    let g = issued(present(&store, &e, &a, t1.saturating_add(9)));
    assert!(g.grace);
    assert_eq!(g.token, b);
    let r = refused(present(&store, &e, &a, t1.saturating_add(10)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
    assert_eq!(
        refused(present(&store, &e, &b, t1.saturating_add(11)))
            .error
            .reason(),
        "family_revoked"
    );
}

#[test]
fn grace_window_is_anchored_at_first_rotation_not_replays() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(grace_policy(10, 50));
    let a = login(&store, &e, T0).token;
    assert!(!issued(present(&store, &e, &a, T0)).grace);
    for dt in [3, 6, 9] {
        assert!(issued(present(&store, &e, &a, T0.saturating_add(dt))).grace);
    }
    // A replay at +9 does not move the window: +10 is outside.
    let r = refused(present(&store, &e, &a, T0.saturating_add(10)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
}

#[test]
fn grace_use_cap_is_enforced() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(grace_policy(30, 2));
    let a = login(&store, &e, T0).token;
    let b = issued(present(&store, &e, &a, T0)).token;
    for _ in 0..2 {
        assert_eq!(
            issued(present(&store, &e, &a, T0.saturating_add(1))).token,
            b
        );
    }
    let r = refused(present(&store, &e, &a, T0.saturating_add(2)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
    assert!(r.events.iter().any(|ev| matches!(
        ev,
        AuditEvent::ReuseDetected {
            kind: ReuseKind::GraceUsesExhausted,
            ..
        }
    )));
}

#[test]
fn grace_never_accepts_older_than_immediate_predecessor() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(grace_policy(60, 8));
    let a = login(&store, &e, T0).token;
    let b = issued(present(&store, &e, &a, T0)).token;
    let _c = issued(present(&store, &e, &b, T0.saturating_add(1))).token;
    // `a` was rotated 2 s ago, well inside its window, but it is two generations old:
    // its row is already gone (rows are bounded per family), and it is still reuse.
    assert!(store.load(a.family(), a.id()).unwrap().token.is_none());
    let r = refused(present(&store, &e, &a, T0.saturating_add(2)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
    assert!(r.events.iter().any(|ev| matches!(
        ev,
        AuditEvent::ReuseDetected {
            kind: ReuseKind::UnknownToken,
            ..
        }
    )));
}

#[test]
fn issue_sibling_replaces_head_and_displaced_head_is_reuse() {
    let policy = Policy::builder()
        .grace_window(30)
        .grace_mode(GraceMode::IssueSibling)
        .build()
        .unwrap();
    let store = InMemoryFamilyStore::new(100);
    let e = engine(policy);
    let a = login(&store, &e, T0).token;
    let b = issued(present(&store, &e, &a, T0)).token;
    let sib = issued(present(&store, &e, &a, T0.saturating_add(1)));
    assert!(sib.grace);
    assert_ne!(sib.token, b, "a fresh sibling");
    let (fam, tokens) = store.snapshot(a.family()).unwrap();
    assert_consistent(&fam, &tokens);
    assert_eq!(fam.head, sib.token.id());
    assert!(matches!(
        tokens.iter().find(|t| t.id == b.id()).unwrap().state,
        TokenState::Superseded { .. }
    ));
    let r = refused(present(&store, &e, &b, T0.saturating_add(2)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
}

#[test]
fn authentic_token_without_row_in_live_family_is_reuse() {
    let store = ForgetfulStore::new(100);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let b = issued(present(&store, &e, &a, T0)).token;
    store.forget(a.family(), a.id());
    let r = refused(present(&store, &e, &a, T0.saturating_add(5)));
    assert_eq!(r.error, RefreshError::ReuseDetected);
    assert!(r.events.iter().any(|ev| matches!(
        ev,
        AuditEvent::ReuseDetected {
            kind: ReuseKind::UnknownToken,
            ..
        }
    )));
    assert_eq!(
        refused(present(&store, &e, &b, T0.saturating_add(6)))
            .error
            .reason(),
        "family_revoked"
    );
}

#[test]
fn gc_keeps_live_families_and_tombstones_then_forgets() {
    let policy = Policy::builder()
        .idle_lifetime(600)
        .absolute_lifetime(3_600)
        .build()
        .unwrap();
    let store = InMemoryFamilyStore::new(1_000);
    let e = engine(policy);
    let live = login(&store, &e, T0).token;
    let live_b = issued(present(&store, &e, &live, T0.saturating_add(1))).token;
    let dead = login(&store, &e, T0);
    assert_eq!(
        revoke_family(&store, &e, dead.family, RevocationReason::Logout, T0)
            .unwrap()
            .families,
        vec![dead.family]
    );
    // Before the absolute expiry nothing goes: not the live family's rotated row, not the
    // revoked family's tombstone.
    assert_eq!(store.gc(T0.saturating_add(3_599), 100).unwrap().families, 0);
    assert_eq!(store.snapshot(live.family()).unwrap().1.len(), 2);
    // A replay of the tombstoned family is still refused as revoked.
    assert_eq!(
        refused(present(&store, &e, &dead.token, T0.saturating_add(3_599)))
            .error
            .reason(),
        "family_revoked"
    );
    let report = store.gc(T0.saturating_add(3_600), 100).unwrap();
    assert_eq!(report.families, 2);
    assert_eq!(report.tokens, 3);
    assert!(store.is_empty());
    let r = refused(present(&store, &e, &live_b, T0.saturating_add(3_601)));
    assert_eq!(r.error, RefreshError::UnknownFamily);
    assert!(store.is_empty(), "refusal wrote nothing");
}

#[test]
fn gc_batch_is_bounded() {
    let policy = Policy::builder()
        .idle_lifetime(60)
        .absolute_lifetime(60)
        .build()
        .unwrap();
    let store = InMemoryFamilyStore::new(1_000);
    let e = engine(policy);
    for _ in 0..5 {
        let _ = login(&store, &e, T0);
    }
    assert_eq!(store.gc(T0.saturating_add(60), 2).unwrap().families, 2);
    assert_eq!(store.gc(T0.saturating_add(60), 10).unwrap().families, 3);
}

#[test]
fn full_store_fails_closed() {
    let store = InMemoryFamilyStore::new(2);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let err = rotate(&store, &e, a.expose_secret(), T0, &mut rng()).unwrap_err();
    assert_eq!(err, RefreshError::StoreFull { capacity: 2 });
    assert_eq!(err.oauth_error(), "temporarily_unavailable");
    let err = start(&store, &e, "bob", "web", T0, &mut rng()).unwrap_err();
    assert_eq!(err, RefreshError::StoreFull { capacity: 2 });
    // Nothing half-written: a is still the active head.
    let (fam, tokens) = store.snapshot(a.family()).unwrap();
    assert_consistent(&fam, &tokens);
    assert_eq!(fam.head, a.id());
    assert_eq!(tokens.len(), 1);
}

#[test]
fn retry_error_writes_nothing_and_the_retry_is_a_fresh_presentation() {
    let backend = AlwaysConflict(InMemoryFamilyStore::new(100));
    let e = engine(Policy::default());
    let a = login(&backend.0, &e, T0).token;
    let err = rotate(&backend, &e, a.expose_secret(), T0, &mut rng()).unwrap_err();
    assert_eq!(err, RefreshError::Retry { attempts: 3 });
    assert!(err.is_retryable());
    assert_eq!(err.oauth_error(), "temporarily_unavailable");
    assert_eq!(backend.0.snapshot(a.family()).unwrap().0.version, 0);
    // The client retries with the same token: a normal rotation, not reuse.
    let again = issued(present(&backend.0, &e, &a, T0.saturating_add(1)));
    assert!(!again.grace);
}

#[test]
fn revocation_and_refresh_race_through_the_same_guard() {
    let mut r = rng();
    // Refresh decided, then revocation lands first: the refresh plan conflicts.
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let presented = e.verify(a.expose_secret()).unwrap();
    let decision = e.decide(
        &presented,
        store.load(a.family(), a.id()).unwrap(),
        T0,
        &mut r,
    );
    assert!(matches!(decision, Decision::Rotate(_)));
    assert_eq!(
        revoke_family(&store, &e, a.family(), RevocationReason::SecurityEvent, T0)
            .unwrap()
            .families,
        vec![a.family()]
    );
    assert_eq!(
        store.apply(decision.plan()).unwrap(),
        ApplyOutcome::Conflict
    );
    let (fam, tokens) = store.snapshot(a.family()).unwrap();
    assert_consistent(&fam, &tokens);
    assert_eq!(tokens.len(), 1, "no successor was inserted");
    // The other order: revocation decided on the old version, refresh lands first.
    let a = login(&store, &e, T0).token;
    let old = store.load_family(a.family()).unwrap().unwrap();
    let revocation = e.revoke(&[old], RevocationReason::Admin, T0);
    let b = issued(present(&store, &e, &a, T0)).token;
    assert_eq!(
        store.apply(&revocation.plan).unwrap(),
        ApplyOutcome::Conflict
    );
    // The driver reloads and revokes the new version: the refreshed token dies too.
    assert_eq!(
        revoke_family(&store, &e, a.family(), RevocationReason::Admin, T0)
            .unwrap()
            .families,
        vec![a.family()]
    );
    assert_eq!(
        refused(present(&store, &e, &b, T0)).error.reason(),
        "family_revoked"
    );
}

#[test]
fn logout_and_subject_revocation() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let a1 = login(&store, &e, T0).token;
    let a2 = login(&store, &e, T0).token;
    let bob = start(&store, &e, "bob", "web", T0, &mut rng())
        .unwrap()
        .token;
    // Logout needs the real secret.
    assert_eq!(
        logout(&store, &e, &tamper(&a1, 40), T0).unwrap_err(),
        RefreshError::InvalidToken
    );
    let out = logout(&store, &e, a1.expose_secret(), T0).unwrap();
    assert_eq!(out.families, vec![a1.family()]);
    let all = revoke_subject(&store, &e, "alice", RevocationReason::SecurityEvent, T0).unwrap();
    assert_eq!(
        all.families,
        vec![a2.family()],
        "already-revoked families are skipped"
    );
    assert_eq!(
        refused(present(&store, &e, &a2, T0)).error,
        RefreshError::FamilyRevoked {
            reason: RevocationReason::SecurityEvent
        }
    );
    assert_eq!(
        refused(present(&store, &e, &a1, T0)).error,
        RefreshError::FamilyRevoked {
            reason: RevocationReason::Logout
        }
    );
    assert!(!issued(present(&store, &e, &bob, T0)).grace);
}

#[test]
fn inconsistent_rows_are_refused() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let b = login(&store, &e, T0).token;
    let presented = e.verify(a.expose_secret()).unwrap();
    let wrong = store.load(b.family(), b.id()).unwrap();
    match e.decide(&presented, wrong, T0, &mut rng()) {
        Decision::Reject(r) => {
            assert!(matches!(r.error, RefreshError::Inconsistent(_)));
            assert!(r.plan.is_empty());
        }
        other => panic!("accepted foreign rows: {other:?}"),
    }
}

#[test]
fn policy_bounds_are_checked() {
    let bad = [
        Policy::builder().grace_window(61).build(),
        Policy::builder()
            .grace_mode(GraceMode::Off)
            .grace_window(5)
            .build(),
        Policy::builder()
            .grace_mode(GraceMode::IssueSibling)
            .build(),
        Policy::builder().idle_lifetime(59).build(),
        Policy::builder()
            .idle_lifetime(7_200)
            .absolute_lifetime(3_600)
            .build(),
        Policy::builder().absolute_lifetime(401 * 86_400).build(),
        Policy::builder().grace_window(5).grace_max_uses(0).build(),
        Policy::builder()
            .grace_window(5)
            .grace_max_uses(101)
            .build(),
        Policy::builder().attempts(0).build(),
        Policy::builder().attempts(11).build(),
    ];
    for b in bad {
        assert!(matches!(b, Err(RefreshError::Policy(_))), "{b:?}");
    }
    let p = Policy::builder().grace_window(60).build().unwrap();
    assert_eq!(p.grace_mode(), GraceMode::IdempotentSuccessor);
    assert_eq!(Policy::default().grace_mode(), GraceMode::Off);
    assert!(matches!(e_start_err("", "web"), RefreshError::Policy(_)));
    assert!(matches!(
        e_start_err("alice", &"c".repeat(256)),
        RefreshError::Policy(_)
    ));
}

fn e_start_err(subject: &str, client: &str) -> RefreshError {
    engine(Policy::default())
        .start_family(subject, client, T0, &mut rng())
        .unwrap_err()
}

#[test]
fn debug_output_never_contains_secrets() {
    let store = InMemoryFamilyStore::new(100);
    let e = engine(Policy::default());
    let a = login(&store, &e, T0).token;
    let text = a.expose_secret().to_owned();
    let secret_b64 = &text[4 + 43..4 + 85];
    let presented = e.verify(&text).unwrap();
    let (fam, tokens) = store.snapshot(a.family()).unwrap();
    for dbg in [
        format!("{a:?}"),
        format!("{presented:?}"),
        format!("{e:?}"),
        format!("{fam:?}"),
        format!("{tokens:?}"),
    ] {
        assert!(!dbg.contains(&text), "{dbg}");
        assert!(!dbg.contains(secret_b64), "{dbg}");
    }
    assert!(format!("{a:?}").ends_with(".. }"));
}
