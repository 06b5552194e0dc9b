//! Stateless server nonces: steps, window, rotation, constant-time MAC check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::HmacSecret;
use handoff_dpop::{NONCE_CHARS, NonceCheck, NonceIssuer};

fn issuer() -> NonceIssuer {
    NonceIssuer::new(HmacSecret::generate(&mut rng()), "as-1")
}

#[test]
fn nonces_are_valid_within_the_window_only() {
    let i = issuer();
    let now = 1_700_000_040; // step 28_333_334 starts at ..._040
    let n = i.issue(t(now));
    assert_eq!(n.len(), NONCE_CHARS);
    assert_eq!(i.issue(t(now + 19)), n, "same step, same nonce");
    assert_ne!(i.issue(t(now + 60)), n, "next step, new nonce");
    // Valid for this step and the two after it: until the end of step + 2.
    let until = t(now + 3 * 60 - 1);
    assert_eq!(i.check(&n, t(now)), NonceCheck::Valid { until });
    assert_eq!(i.check(&n, t(now + 179)), NonceCheck::Valid { until });
    assert_eq!(i.check(&n, t(now + 180)), NonceCheck::Stale);
    // One step ahead is tolerated (servers' clocks differ), two are not.
    assert!(matches!(i.check(&n, t(now - 60)), NonceCheck::Valid { .. }));
    assert_eq!(i.check(&n, t(now - 121)), NonceCheck::Stale);
    assert!(i.is_current(&n, t(now)));
    assert!(!i.is_current(&n, t(now + 60)));
}

#[test]
fn configurable_step_and_window() {
    let i = issuer().with_step(10).unwrap().with_window(0, 0).unwrap();
    assert_eq!(i.step_secs(), 10);
    let n = i.issue(t(1000));
    assert!(matches!(i.check(&n, t(1009)), NonceCheck::Valid { .. }));
    assert_eq!(i.check(&n, t(1010)), NonceCheck::Stale);
    assert_eq!(i.check(&n, t(999)), NonceCheck::Stale);
    assert!(issuer().with_step(0).is_err());
    assert!(issuer().with_step(3601).is_err());
    assert!(issuer().with_window(61, 0).is_err());
    assert!(issuer().with_window(2, 6).is_err());
}

#[test]
fn wrong_secret_server_id_or_shape_is_invalid() {
    let secret = HmacSecret::generate(&mut rng());
    let a = NonceIssuer::new(secret.clone(), "as-1");
    let b = NonceIssuer::new(secret, "rs-2");
    let n = a.issue(t(NOW));
    assert_eq!(b.check(&n, t(NOW)), NonceCheck::Invalid);
    assert_eq!(issuer().check(&n, t(NOW)), NonceCheck::Invalid);
    for bad in [
        "",
        "short",
        &"A".repeat(NONCE_CHARS),
        &format!("{}=", &n[..NONCE_CHARS - 1]),
    ] {
        assert_eq!(a.check(bad, t(NOW)), NonceCheck::Invalid, "{bad}");
    }
    // A valid MAC with the step changed is invalid, not stale.
    let mut raw = handoff_core::b64::decode(&n).unwrap();
    raw[7] ^= 1;
    assert_eq!(
        a.check(&handoff_core::b64::encode(&raw), t(NOW)),
        NonceCheck::Invalid
    );
}

#[test]
fn rotation_accepts_the_previous_secret_until_retired() {
    let mut i = issuer();
    let old = i.issue(t(NOW));
    i.rotate(HmacSecret::generate(&mut rng()));
    let new = i.issue(t(NOW));
    assert_ne!(old, new);
    assert!(matches!(i.check(&old, t(NOW)), NonceCheck::Valid { .. }));
    assert!(matches!(i.check(&new, t(NOW)), NonceCheck::Valid { .. }));
    i.retire_previous();
    assert_eq!(i.check(&old, t(NOW)), NonceCheck::Invalid);
    assert!(matches!(i.check(&new, t(NOW)), NonceCheck::Valid { .. }));
    // Debug never shows the secret.
    let dbg = format!("{i:?}");
    assert!(
        dbg.contains("NonceIssuer") && dbg.ends_with(".. }"),
        "{dbg}"
    );
}
