//! RFC 9449 published examples (Figures 2, 7 and 13), read from tests/data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_core::UnixTime;
use handoff_core::replay::InMemoryReplayLog;
use handoff_dpop::{DpopRequest, DpopVerifier, Error, ath, jkt_matches};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc9449-dpop.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn request<'a>(case: &'a Value, headers: &'a [&'a str]) -> DpopRequest<'a> {
    let mut r = DpopRequest::new(
        headers,
        case["method"].as_str().unwrap(),
        case["url"].as_str().unwrap(),
    );
    if let Some(at) = case["access_token"].as_str() {
        r = r.with_access_token(at);
    }
    if let Some(jkt) = case["expected_jkt"].as_str() {
        r = r.bound_to(jkt);
    }
    r
}

#[test]
fn published_ath_and_jkt() {
    let v = vectors();
    assert_eq!(
        ath(v["access_token"].as_str().unwrap()),
        v["ath"].as_str().unwrap()
    );
    assert_eq!(
        ath(v["access_token"].as_str().unwrap()),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    let verifier = DpopVerifier::default();
    let fig2 = &v["proofs"][0];
    let headers = [fig2["proof"].as_str().unwrap()];
    let now = UnixTime::from_secs(fig2["now"].as_u64().unwrap());
    let proof = verifier
        .verify(&request(fig2, &headers), now)
        .unwrap()
        .confirm(&InMemoryReplayLog::new(10), now)
        .unwrap();
    assert_eq!(proof.jkt(), v["jkt"].as_str().unwrap());
    assert_eq!(proof.jkt(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    assert!(jkt_matches(&proof.thumbprint(), v["jkt"].as_str().unwrap()));
}

#[test]
fn figures_verify_at_their_instants_and_negatives_are_refused() {
    let v = vectors();
    let verifier = DpopVerifier::default();
    // One log across all figures: Figures 2 and 7 share a jti 45 minutes apart.
    let log = InMemoryReplayLog::new(100);
    let mut accepted = 0;
    let mut refused = 0;
    for case in v["proofs"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let headers = [case["proof"].as_str().unwrap()];
        let now = UnixTime::from_secs(case["now"].as_u64().unwrap());
        let result = verifier.verify(&request(case, &headers), now);
        match case["expect"].as_str().unwrap() {
            "accept" => {
                let unconfirmed = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let iat = UnixTime::from_secs(case["now"].as_u64().unwrap());
                assert_eq!(unconfirmed.until(), iat.saturating_add(60), "{name}");
                let proof = verifier
                    .confirm(unconfirmed, &log, now)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(proof.jkt(), v["jkt"].as_str().unwrap(), "{name}");
                accepted += 1;
            }
            "reject" => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{name} was accepted"));
                let expected_kind = match name {
                    "rfc9449-fig13-wrong-method" => {
                        matches!(err, Error::MethodMismatch { .. })
                    }
                    "rfc9449-fig13-stale" => matches!(err, Error::IssuedTooLongAgo { .. }),
                    "rfc9449-fig13-other-token" => matches!(err, Error::AthMismatch),
                    _ => true,
                };
                assert!(expected_kind, "{name}: unexpected error {err:?}");
                refused += 1;
            }
            other => panic!("unknown expectation {other}"),
        }
    }
    assert_eq!((accepted, refused), (3, 3));
}

#[test]
fn figure_2_replayed_within_its_window_is_refused() {
    let v = vectors();
    let fig2 = &v["proofs"][0];
    let verifier = DpopVerifier::default();
    let log = InMemoryReplayLog::new(10);
    let headers = [fig2["proof"].as_str().unwrap()];
    let now = UnixTime::from_secs(fig2["now"].as_u64().unwrap());
    let first = verifier.verify(&request(fig2, &headers), now).unwrap();
    verifier.confirm(first, &log, now).unwrap();
    let later = now.saturating_add(30);
    let again = verifier.verify(&request(fig2, &headers), later).unwrap();
    assert_eq!(verifier.confirm(again, &log, later), Err(Error::Replayed));
}
