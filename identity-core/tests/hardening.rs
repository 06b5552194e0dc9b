//! Regression tests of issue 18 (adversarial review): findings 3 (empty audience) and 8
//! (`exp` inclusive by one second).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::{Algorithm, Error, UnixTime, Validation, verify};
use serde_json::{Value, json};

// ------------------------------------------------------------- finding 3: blank iss/aud

#[test]
fn validation_refuses_empty_and_blank_audiences_and_issuers() {
    for blank in ["", " ", "\t", " \n "] {
        let err = Validation::builder()
            .issuer(ISS)
            .audience(blank)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::Policy(m) if m.contains("audience is empty or whitespace")),
            "audience {blank:?}: {err:?}"
        );
        // Even next to a good one: an unset variable must not open the gate.
        let err = Validation::builder()
            .issuer(ISS)
            .audience(AUD)
            .audience(blank)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Policy(_)), "{blank:?}");
        let err = Validation::builder()
            .issuer(blank)
            .audience(AUD)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::Policy(m) if m.contains("issuer is empty or whitespace")),
            "issuer {blank:?}: {err:?}"
        );
    }
}

#[test]
fn a_token_with_an_empty_audience_never_verifies() {
    // What the finding reproduced: `aud: ""` against a policy built from an unset
    // variable. The builder refuses the policy, so the token has nothing to match.
    let key = key(Algorithm::EdDSA);
    let mut c = claims();
    c["aud"] = json!("");
    let token = sign_json(&key, Some(TYP), &c);
    assert!(
        Validation::builder()
            .issuer(ISS)
            .audience(std::env::var("HANDOFF_SURELY_UNSET_AUDIENCE").unwrap_or_default())
            .build()
            .is_err()
    );
    let err = verify::<Value, _>(&token, &key.verifying_key(), &policy(), now()).unwrap_err();
    assert!(matches!(err, Error::WrongAudience), "{err:?}");
}

// ------------------------------------------------------ finding 8: exp strict, nbf, iat

fn with_leeway(leeway: u64) -> Validation {
    Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .typ(TYP)
        .leeway(leeway)
        .build()
        .unwrap()
}

fn check_at(c: &Value, leeway: u64, at: u64) -> Result<(), Error> {
    let key = key(Algorithm::EdDSA);
    let token = sign_json(&key, Some(TYP), c);
    verify::<Value, _>(
        &token,
        &key.verifying_key(),
        &with_leeway(leeway),
        UnixTime::from_secs(at),
    )
    .map(|_| ())
}

#[test]
fn exp_is_exclusive_at_t_minus_1_t_and_t_plus_1() {
    // RFC 7519 section 4.1.4: the current time MUST be before `exp`.
    let exp = NOW + 300;
    let mut c = claims();
    c["exp"] = json!(exp);
    for leeway in [0, 60] {
        let t = exp + leeway;
        assert!(check_at(&c, leeway, t - 1).is_ok(), "leeway {leeway}: t-1");
        assert!(
            matches!(check_at(&c, leeway, t), Err(Error::Expired { .. })),
            "leeway {leeway}: exp + leeway itself is expired"
        );
        assert!(
            matches!(check_at(&c, leeway, t + 1), Err(Error::Expired { .. })),
            "leeway {leeway}: t+1"
        );
    }
}

#[test]
fn nbf_is_inclusive_and_iat_may_not_lie_beyond_the_leeway() {
    // RFC 7519 section 4.1.5: valid at or after `nbf` (minus leeway).
    let nbf = NOW;
    let mut c = claims();
    c["nbf"] = json!(nbf);
    c["iat"] = json!(nbf - 100);
    for leeway in [0, 60] {
        let t = nbf - leeway;
        assert!(
            matches!(check_at(&c, leeway, t - 1), Err(Error::NotYetValid { .. })),
            "leeway {leeway}: t-1"
        );
        assert!(check_at(&c, leeway, t).is_ok(), "leeway {leeway}: t");
        assert!(check_at(&c, leeway, t + 1).is_ok(), "leeway {leeway}: t+1");
    }
    // `iat` in the future: accepted up to `now + leeway`, refused beyond.
    let mut c = claims();
    let iat = NOW;
    c["iat"] = json!(iat);
    for leeway in [0, 60] {
        let t = iat - leeway;
        assert!(
            matches!(
                check_at(&c, leeway, t - 1),
                Err(Error::IssuedInFuture { .. })
            ),
            "leeway {leeway}: t-1"
        );
        assert!(check_at(&c, leeway, t).is_ok(), "leeway {leeway}: t");
        assert!(check_at(&c, leeway, t + 1).is_ok(), "leeway {leeway}: t+1");
    }
}
