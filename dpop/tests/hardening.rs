//! Regression tests of issue 18: finding 5 (nonces chosen by the application), finding 6
//! (default algorithms: every asymmetric one) and finding 8 (documented, tested time
//! boundaries of the `iat` window and of server nonces).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::{Algorithm, HmacSecret, SigningKey};
use handoff_dpop::{
    DEFAULT_ALGORITHMS, DpopRequest, DpopVerifier, Endpoint, Error, ErrorCode, NonceCheck,
    NonceIssuer,
};
use serde_json::json;

const URI: &str = "https://api.example.com/items";

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::generate(alg, &mut rng()).unwrap()
}

fn proof(key: &SigningKey, iat: u64, nonce: Option<&str>) -> String {
    let mut c = claims("jti-0123456789abcdef", "GET", URI, iat);
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    raw_token(&header_for(key), &c, key)
}

// ------------------------------------------------------------- finding 6: algorithms

#[test]
fn default_verifier_accepts_every_asymmetric_algorithm() {
    let asymmetric: Vec<Algorithm> = Algorithm::ALL
        .into_iter()
        .filter(|a| a.is_asymmetric())
        .collect();
    let mut defaults = DEFAULT_ALGORITHMS.to_vec();
    defaults.sort_by_key(|a| a.as_str());
    let mut expected = asymmetric.clone();
    expected.sort_by_key(|a| a.as_str());
    assert_eq!(defaults, expected);
    let v = DpopVerifier::default();
    assert_eq!(v.algorithms(), DEFAULT_ALGORITHMS);
    for alg in asymmetric {
        let k = key(alg);
        let p = proof(&k, NOW, None);
        let headers = [p.as_str()];
        let got = v
            .verify(&DpopRequest::new(&headers, "GET", URI), t(NOW))
            .unwrap_or_else(|e| panic!("{alg:?} refused by default: {e:?}"));
        assert_eq!(got.get_unconfirmed().algorithm(), alg);
    }
    // The builder narrows the list.
    let narrow = DpopVerifier::builder()
        .algorithms(&[Algorithm::EdDSA])
        .build()
        .unwrap();
    let p = proof(&key(Algorithm::PS256), NOW, None);
    let headers = [p.as_str()];
    assert!(matches!(
        narrow.verify(&DpopRequest::new(&headers, "GET", URI), t(NOW)),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
}

// ------------------------------------------------------ finding 5: application nonces

fn with_nonces(p: &str, current: &str, also: &[&str]) -> Result<handoff_dpop::DpopProof, Error> {
    let headers = [p];
    let r = DpopRequest::new(&headers, "GET", URI).with_expected_nonces(current, also);
    DpopVerifier::default()
        .verify(&r, t(NOW))
        .map(|u| u.get_unconfirmed().clone())
}

#[test]
fn expected_nonce_echoed_is_accepted() {
    let k = key(Algorithm::ES256);
    let got = with_nonces(&proof(&k, NOW, Some("n-2")), "n-2", &["n-1"]).unwrap();
    assert_eq!(got.nonce(), Some("n-2"));
    assert_eq!(got.next_nonce(), None, "already the current nonce");
    // The previous nonce is still accepted, and the response hands out the current one.
    let got = with_nonces(&proof(&k, NOW, Some("n-1")), "n-2", &["n-1"]).unwrap();
    assert_eq!(got.next_nonce(), Some("n-2"));
}

#[test]
fn missing_application_nonce_is_use_dpop_nonce() {
    let k = key(Algorithm::ES256);
    let err = with_nonces(&proof(&k, NOW, None), "n-2", &["n-1"]).unwrap_err();
    assert_eq!(
        err,
        Error::NonceMissing {
            fresh: "n-2".into()
        }
    );
    let w = DpopVerifier::default().wire_error(&err, Endpoint::Resource);
    assert_eq!(w.code, ErrorCode::UseDpopNonce);
    assert_eq!(w.dpop_nonce.as_deref(), Some("n-2"));
    let w = DpopVerifier::default().wire_error(&err, Endpoint::Token);
    assert_eq!(w.code, ErrorCode::UseDpopNonce);
}

#[test]
fn stale_or_unknown_application_nonce_is_refused() {
    let k = key(Algorithm::ES256);
    for bad in ["n-0", "n-22", "n-", "N-2", ""] {
        let err = with_nonces(&proof(&k, NOW, Some(bad)), "n-2", &["n-1"]).unwrap_err();
        assert_eq!(
            err,
            Error::NonceStale {
                fresh: "n-2".into()
            },
            "{bad:?}"
        );
        assert_eq!(err.code(), ErrorCode::UseDpopNonce);
    }
    // A crate HMAC nonce is no substitute when the application named its own.
    let issuer = NonceIssuer::new(HmacSecret::generate(&mut rng()), "as");
    let hmac = issuer.issue(t(NOW));
    assert!(with_nonces(&proof(&k, NOW, Some(&hmac)), "n-2", &[]).is_err());
}

#[test]
fn expected_nonces_must_be_nqchar() {
    let k = key(Algorithm::ES256);
    for bad in ["", "a b", "quote\"d", "back\\slash", "é"] {
        assert!(
            matches!(
                with_nonces(&proof(&k, NOW, Some("x")), bad, &[]),
                Err(Error::Config(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            with_nonces(&proof(&k, NOW, Some("x")), "x", &[bad]),
            Err(Error::Config(_))
        ));
    }
}

// ------------------------------------------------- finding 8: documented boundaries

#[test]
fn iat_window_boundaries_are_inclusive_at_both_ends() {
    let k = key(Algorithm::ES256);
    let v = DpopVerifier::builder().iat_window(60, 5).build().unwrap();
    let iat = NOW;
    let p = proof(&k, iat, None);
    let headers = [p.as_str()];
    let r = DpopRequest::new(&headers, "GET", URI);
    // Past end: accepted through iat + 60, refused from iat + 61.
    let t_past = iat + 60;
    assert!(v.verify(&r, t(t_past - 1)).is_ok());
    let at = v.verify(&r, t(t_past)).unwrap();
    assert_eq!(
        at.until(),
        t(t_past),
        "the replay entry lives through the last accepted instant"
    );
    assert!(matches!(
        v.verify(&r, t(t_past + 1)),
        Err(Error::IssuedTooLongAgo { .. })
    ));
    // Future end: accepted from iat - 5, refused before.
    let t_future = iat - 5;
    assert!(matches!(
        v.verify(&r, t(t_future - 1)),
        Err(Error::IssuedInFuture { .. })
    ));
    assert!(v.verify(&r, t(t_future)).is_ok());
    assert!(v.verify(&r, t(t_future + 1)).is_ok());
}

#[test]
fn server_nonce_valid_until_is_its_last_accepted_instant() {
    let issuer = NonceIssuer::new(HmacSecret::generate(&mut rng()), "as")
        .with_step(10)
        .unwrap()
        .with_window(1, 0)
        .unwrap();
    let n = issuer.issue(t(1_000));
    let NonceCheck::Valid { until } = issuer.check(&n, t(1_000)) else {
        panic!("fresh nonce")
    };
    let end = until.as_secs();
    assert_eq!(end, 1_019);
    assert!(matches!(
        issuer.check(&n, t(end - 1)),
        NonceCheck::Valid { .. }
    ));
    assert!(matches!(issuer.check(&n, t(end)), NonceCheck::Valid { .. }));
    assert_eq!(issuer.check(&n, t(end + 1)), NonceCheck::Stale);
}
