//! The JWKS cache state machine, driven by a fake clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sv_common;

use handoff_core::jwks::KidlessTokens;
use handoff_core::{Algorithm, SigningKey};
use handoff_verify::jwks_cache::parse_max_age;
use handoff_verify::{
    CacheSnapshot, FetchOutcome, FetchRequest, FetchResponse, JwksCache, JwksCacheConfig, Lookup,
    NoCustomClaims, Outcome, Rejection, TokenKind, VerifyError,
};
use proptest::prelude::*;
use sv_common::*;

const ED: Algorithm = Algorithm::EdDSA;

fn set_json(keys: &[&SigningKey]) -> String {
    jwks_of(keys).to_json()
}

fn fetch_of(l: Lookup<'_>) -> FetchRequest {
    match l {
        Lookup::Fetch(r) => r,
        other => panic!("expected a fetch, got {other:?}"),
    }
}

fn loaded(keys: &[&SigningKey], now: u64) -> JwksCache {
    let mut c = cache();
    let req = fetch_of(c.lookup(t(now), Some("any"), ED));
    assert_eq!(req.if_none_match, None);
    serve(&mut c, t(now), &req, &set_json(keys));
    c
}

fn uses(c: &mut JwksCache, now: u64, kid: &str) -> bool {
    matches!(c.lookup(t(now), Some(kid), ED), Lookup::Use(k) if k.kid() == Some(kid))
}

#[test]
fn first_lookup_fetches_then_serves() {
    let k1 = key(ED, "k1");
    let mut c = cache();
    assert_eq!(c.poll_timeout(), None);
    let req = fetch_of(c.lookup(t(NOW), Some("k1"), ED));
    assert_eq!(req.url, JWKS_URI);
    assert_eq!(req.deadline, t(NOW + 10));
    // A second lookup while the fetch is in flight waits for it (never a second fetch).
    assert!(matches!(c.lookup(t(NOW), Some("k1"), ED), Lookup::Wait { id, .. } if id == req.id));
    let report = c.on_fetch_complete(t(NOW + 1), req.id, ok(&set_json(&[&k1]), None));
    assert_eq!(report.outcome, FetchOutcome::Replaced);
    assert_eq!(report.added.len(), 1);
    assert_eq!(report.added[0].kid.as_deref(), Some("k1"));
    // No Cache-Control: the default 10 minutes.
    assert_eq!(report.fresh_until, Some(t(NOW + 1 + 600)));
    assert!(uses(&mut c, NOW + 2, "k1"));
}

#[test]
fn rotation_adds_the_new_kid_and_removed_kid_stops_verifying() {
    let k1 = key(ED, "k1");
    let k2 = key(ED, "k2");
    let mut c = loaded(&[&k1], NOW);
    let access = profile(TokenKind::Access, &[ED]);
    let tok1 = token(&k1, "at+jwt", &access_claims(NOW + 40));
    let tok2 = token(&k2, "at+jwt", &access_claims(NOW + 40));
    assert!(matches!(
        access
            .verify_with_cache::<NoCustomClaims>(&tok1, &mut c, t(NOW + 40))
            .unwrap(),
        Outcome::Verified(_)
    ));
    // The host rotates: k2 appears, k1 goes. The unknown kid triggers one fetch.
    let req = match access
        .verify_with_cache::<NoCustomClaims>(&tok2, &mut c, t(NOW + 40))
        .unwrap()
    {
        Outcome::Fetch(r) => r,
        other => panic!("expected a fetch, got {other:?}"),
    };
    let report = c.on_fetch_complete(t(NOW + 41), req.id, ok(&set_json(&[&k2]), None));
    assert_eq!(
        report
            .added
            .iter()
            .map(|k| k.kid.as_deref())
            .collect::<Vec<_>>(),
        [Some("k2")]
    );
    assert_eq!(
        report
            .removed
            .iter()
            .map(|k| k.kid.as_deref())
            .collect::<Vec<_>>(),
        [Some("k1")]
    );
    let v = access
        .verify_with_cache::<NoCustomClaims>(&tok2, &mut c, t(NOW + 41))
        .unwrap();
    assert!(v.verified().is_some());
    // k1 no longer verifies, and asking again does not fetch (cooldown).
    let r = access.verify_with_cache::<NoCustomClaims>(&tok1, &mut c, t(NOW + 42));
    assert!(
        matches!(r, Err(VerifyError::UnknownKidRateLimited { .. })),
        "{r:?}"
    );
    assert_eq!(c.fetch_in_flight(), None);
}

#[test]
fn ten_thousand_random_unknown_kids_fetch_at_most_once_per_cooldown() {
    let k1 = key(ED, "k1");
    let body = set_json(&[&k1]);
    let mut c = loaded(&[&k1], NOW);
    let mut fetches = 0u64;
    let mut rejected = 0u64;
    let start = NOW + 1;
    // 10 000 lookups over 100 s of fake time (100 per second).
    for i in 0..10_000u64 {
        let now = start + i / 100;
        let kid = format!("rand-{}", rand_u64());
        match c.lookup(t(now), Some(&kid), ED) {
            Lookup::Fetch(req) => {
                fetches += 1;
                let _ = c.on_fetch_complete(t(now), req.id, ok(&body, None));
            }
            Lookup::Reject(Rejection::UnknownKid { retry_after }) => {
                assert!(retry_after > t(now));
                rejected += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(c.unknown_kids_remembered() <= 1024);
    }
    // 100 s with a 30 s cooldown: at most one fetch per started window.
    assert!(fetches <= 100 / 30 + 1, "{fetches} fetches");
    assert!(
        fetches >= 3,
        "unknown kids must still trigger a fetch after each cooldown"
    );
    assert_eq!(fetches + rejected, 10_000);
    // The known key was served all along.
    assert!(uses(&mut c, start + 100, "k1"));
}

#[test]
fn a_kid_confirmed_absent_is_remembered_and_refused_without_a_fetch() {
    let k1 = key(ED, "k1");
    let mut c = loaded(&[&k1], NOW);
    let req = fetch_of(c.lookup(t(NOW + 31), Some("ghost"), ED));
    let _ = c.on_fetch_complete(t(NOW + 31), req.id, ok(&set_json(&[&k1]), None));
    // After the cooldown, the same kid is still refused (negative cache, 60 s) ...
    assert!(matches!(
        c.lookup(t(NOW + 62), Some("ghost"), ED),
        Lookup::Reject(Rejection::UnknownKid { retry_after }) if retry_after == t(NOW + 91)
    ));
    // ... while another unknown kid may fetch again.
    assert!(matches!(
        c.lookup(t(NOW + 62), Some("other"), ED),
        Lookup::Fetch(_)
    ));
}

#[test]
fn outage_serves_known_keys_until_stale_if_error_ends_then_fails() {
    let k1 = key(ED, "k1");
    let mut cfg = JwksCacheConfig::new(JWKS_URI);
    cfg.stale_if_error = 600;
    let mut c = JwksCache::new(cfg).unwrap();
    let req = c.handle_timeout(t(NOW)).unwrap();
    let r = c.on_fetch_complete(t(NOW), req.id, ok(&set_json(&[&k1]), Some("max-age=120")));
    assert_eq!(r.fresh_until, Some(t(NOW + 120)));
    // Refresh starts 60 s ahead of expiry.
    assert_eq!(c.poll_timeout(), Some(t(NOW + 60)));
    assert!(c.handle_timeout(t(NOW + 59)).is_none());
    let mut now = NOW + 60;
    let mut delays = Vec::new();
    let mut last_fail = None;
    // The origin is down from here on: every fetch fails; the key keeps being served.
    while now < NOW + 120 + 600 {
        let req = match c.lookup(t(now), Some("k1"), ED) {
            Lookup::Use(_) => c.handle_timeout(t(now)),
            Lookup::UseAndRefresh(_, req) => Some(req),
            other => panic!("at {now}: {other:?}"),
        };
        if let Some(req) = req {
            if let Some(prev) = last_fail {
                delays.push(now - prev);
            }
            let r = c.on_fetch_complete(
                t(now),
                req.id,
                FetchResponse {
                    status: 503,
                    ..FetchResponse::default()
                },
            );
            assert!(matches!(r.outcome, FetchOutcome::Failed(_)));
            last_fail = Some(now);
        }
        now += 1;
    }
    // Exponential backoff: 2, 4, 8, ... seconds.
    assert_eq!(&delays[..5], &[2, 4, 8, 16, 32]);
    assert!(delays.iter().all(|d| *d <= 300));
    // Past stale-if-error the key is no longer served.
    let now = NOW + 120 + 600;
    match c.lookup(t(now), Some("k1"), ED) {
        Lookup::Reject(Rejection::KeySetUnavailable {
            retry_after: Some(_),
        })
        | Lookup::Fetch(_) => {}
        other => panic!("expected no key, got {other:?}"),
    }
    let tok = token(&k1, "at+jwt", &access_claims(now));
    let access = profile(TokenKind::Access, &[ED]);
    let r = access.verify_with_cache::<NoCustomClaims>(&tok, &mut c, t(now));
    assert!(
        matches!(
            r,
            Err(VerifyError::KeySetUnavailable { .. })
                | Ok(Outcome::Fetch(_))
                | Ok(Outcome::Wait { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn a_set_with_one_malformed_key_still_serves_the_good_ones() {
    let k1 = key(ED, "k1");
    let k2 = key(Algorithm::ES256, "k2");
    let good: serde_json::Value = serde_json::from_str(&set_json(&[&k1, &k2])).unwrap();
    let mut keys = good["keys"].as_array().unwrap().clone();
    keys.insert(
        1,
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "bad", "x": "AAAA", "y": "AAAA"}),
    );
    keys.push(serde_json::json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}));
    let body = serde_json::json!({ "keys": keys }).to_string();
    let mut c = cache();
    let req = c.handle_timeout(t(NOW)).unwrap();
    let r = c.on_fetch_complete(t(NOW), req.id, ok(&body, None));
    assert_eq!(r.outcome, FetchOutcome::Replaced);
    assert_eq!(r.added.len(), 2);
    let skipped: Vec<_> = r.skipped.iter().map(|s| s.kid.as_deref()).collect();
    assert_eq!(skipped, [Some("bad"), Some("secret")]);
    assert!(uses(&mut c, NOW, "k1"));
    assert!(matches!(
        c.lookup(t(NOW), Some("k2"), Algorithm::ES256),
        Lookup::Use(_)
    ));
}

#[test]
fn a_document_whose_every_key_is_bad_keeps_the_held_set() {
    let k1 = key(ED, "k1");
    let mut c = loaded(&[&k1], NOW);
    let req = c.handle_timeout(t(NOW + 540)).unwrap();
    let bad = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k9","x":"AA"}]}"#;
    let r = c.on_fetch_complete(t(NOW + 540), req.id, ok(bad, None));
    assert!(matches!(r.outcome, FetchOutcome::Failed(_)));
    assert_eq!(r.skipped.len(), 1);
    assert!(uses(&mut c, NOW + 541, "k1"));
    assert_eq!(c.consecutive_failures(), 1);
    // So does a document over the size cap, or not JSON at all (after each backoff).
    assert!(c.handle_timeout(t(NOW + 541)).is_none());
    let mut now = NOW + 542;
    for body in ["x".repeat(300 * 1024), "not json".to_owned()] {
        let req = c.handle_timeout(t(now)).expect("backoff over");
        let r = c.on_fetch_complete(t(now), req.id, ok(&body, None));
        assert!(matches!(r.outcome, FetchOutcome::Failed(_)), "{r:?}");
        assert!(uses(&mut c, now, "k1"));
        now += 4;
    }
    assert_eq!(c.consecutive_failures(), 3);
}

#[test]
fn a_fetch_that_never_completes_does_not_wedge_the_cache() {
    let k1 = key(ED, "k1");
    let mut c = cache();
    let first = fetch_of(c.lookup(t(NOW), Some("k1"), ED));
    assert_eq!(c.poll_timeout(), Some(first.deadline));
    for s in 1..10 {
        assert!(matches!(
            c.lookup(t(NOW + s), Some("k1"), ED),
            Lookup::Wait { .. }
        ));
    }
    // Deadline passes: the fetch counts as failed and the cache backs off (2 s).
    assert!(c.handle_timeout(t(NOW + 10)).is_none());
    assert_eq!(c.fetch_in_flight(), None);
    assert_eq!(c.consecutive_failures(), 1);
    assert!(matches!(
        c.lookup(t(NOW + 11), Some("k1"), ED),
        Lookup::Reject(Rejection::KeySetUnavailable { retry_after: Some(r) }) if r == t(NOW + 12)
    ));
    let second = fetch_of(c.lookup(t(NOW + 12), Some("k1"), ED));
    assert_ne!(second.id, first.id);
    // The first fetch's late answer is ignored; the second one counts.
    let late = c.on_fetch_complete(t(NOW + 13), first.id, ok(&set_json(&[&k1]), None));
    assert_eq!(late.outcome, FetchOutcome::Ignored);
    assert!(c.keys().is_none());
    let r = c.on_fetch_complete(t(NOW + 13), second.id, ok(&set_json(&[&k1]), None));
    assert_eq!(r.outcome, FetchOutcome::Replaced);
    assert!(uses(&mut c, NOW + 13, "k1"));
    // A transport failure is reported explicitly too.
    let req = c.handle_timeout(t(NOW + 13 + 540)).unwrap();
    let r = c.on_fetch_failed(t(NOW + 13 + 540), req.id);
    assert!(matches!(r.outcome, FetchOutcome::Failed(_)));
    assert_eq!(
        c.on_fetch_failed(t(NOW + 13 + 540), req.id).outcome,
        FetchOutcome::Ignored
    );
}

#[test]
fn cache_control_max_age_is_honoured_and_clamped() {
    let k1 = key(ED, "k1");
    for (header, fresh) in [
        (Some("public, max-age=300"), 300),
        (Some("max-age=5"), 30),
        (Some("max-age=99999999999999999999999"), 86_400),
        (Some("no-store"), 30),
        (Some("max-age=abc"), 600),
        (Some("max-age"), 600),
        (None, 600),
    ] {
        let mut c = cache();
        let req = c.handle_timeout(t(NOW)).unwrap();
        let r = c.on_fetch_complete(t(NOW), req.id, ok(&set_json(&[&k1]), header));
        assert_eq!(r.fresh_until, Some(t(NOW + fresh)), "{header:?}");
    }
    assert_eq!(parse_max_age("MAX-AGE=\"42\""), Some(42));
    assert_eq!(parse_max_age(&"a,".repeat(1000)), None);
}

proptest! {
    #[test]
    fn cache_control_parsing_never_panics(s in "\\PC{0,300}") {
        let _ = parse_max_age(&s);
    }

    #[test]
    fn lookups_with_arbitrary_kids_never_panic(kid in "\\PC{0,400}", secs in 0u64..100_000) {
        let mut c = cache();
        let _ = c.lookup(t(NOW + secs), Some(&kid), ED);
        let _ = c.lookup(t(NOW + secs), None, ED);
        prop_assert!(c.unknown_kids_remembered() <= 1);
    }
}

#[test]
fn etag_is_sent_and_304_renews_the_set() {
    let k1 = key(ED, "k1");
    let mut c = cache();
    let req = c.handle_timeout(t(NOW)).unwrap();
    let mut resp = ok(&set_json(&[&k1]), Some("max-age=100"));
    resp.etag = Some("\"v1\"".into());
    let _ = c.on_fetch_complete(t(NOW), req.id, resp);
    let req = c.handle_timeout(t(NOW + 60)).unwrap();
    assert_eq!(req.if_none_match.as_deref(), Some("\"v1\""));
    let r = c.on_fetch_complete(
        t(NOW + 61),
        req.id,
        FetchResponse {
            status: 304,
            cache_control: Some("max-age=100".into()),
            ..FetchResponse::default()
        },
    );
    assert_eq!(r.outcome, FetchOutcome::NotModified);
    assert_eq!(r.fresh_until, Some(t(NOW + 161)));
    assert!(uses(&mut c, NOW + 100, "k1"));
    // A 304 to a request that was not conditional is a failure.
    let mut fresh = cache();
    let req = fresh.handle_timeout(t(NOW)).unwrap();
    let r = fresh.on_fetch_complete(
        t(NOW),
        req.id,
        FetchResponse {
            status: 304,
            ..FetchResponse::default()
        },
    );
    assert!(matches!(r.outcome, FetchOutcome::Failed(_)));
    assert!(fresh.keys().is_none());
}

#[test]
fn ambiguous_matches_are_rejected() {
    let a = key(ED, "dup");
    let b = key(ED, "dup");
    let mut c = loaded(&[&a, &b], NOW);
    assert!(matches!(
        c.lookup(t(NOW), Some("dup"), ED),
        Lookup::Reject(Rejection::AmbiguousKey)
    ));
    assert!(matches!(
        c.lookup(t(NOW), None, ED),
        Lookup::Reject(Rejection::AmbiguousKey)
    ));
}

#[test]
fn kidless_tokens_follow_the_core_rule() {
    // One key: a token without kid uses it.
    let only = key(ED, "only");
    let mut one = loaded(&[&only], NOW);
    assert!(matches!(one.lookup(t(NOW), None, ED), Lookup::Use(_)));
    // Several keys, even of different algorithms: refused unless the caller opts in
    // (identity-core's Jwks::find rule, RFC 8725 section 3.10 spirit).
    let ed = key(ED, "ed");
    let es = key(Algorithm::ES256, "es");
    let mut two = loaded(&[&ed, &es], NOW);
    assert!(matches!(
        two.lookup(t(NOW), None, ED),
        Lookup::Reject(Rejection::AmbiguousKey)
    ));
    let mut config = JwksCacheConfig::new(JWKS_URI);
    config.kidless = KidlessTokens::AcceptIfUniqueForAlgorithm;
    let mut opted_in = JwksCache::from_snapshot(config, two.snapshot()).unwrap();
    assert!(matches!(opted_in.lookup(t(NOW), None, ED), Lookup::Use(_)));
}

#[test]
fn snapshot_round_trip_serves_without_a_fetch() {
    let k1 = key(ED, "k1");
    let c = loaded(&[&k1], NOW);
    let json = c.snapshot().to_json();
    let snap = CacheSnapshot::from_json(&json, 1 << 20).unwrap();
    let mut restored =
        JwksCache::from_snapshot(JwksCacheConfig::new(JWKS_URI), snap.clone()).unwrap();
    assert!(uses(&mut restored, NOW + 10, "k1"));
    assert_eq!(restored.fresh_until(), c.fresh_until());
    // Another issuer's cache refuses it, and so does an oversize or garbled snapshot.
    assert!(
        JwksCache::from_snapshot(JwksCacheConfig::new("https://other.example/jwks"), snap).is_err()
    );
    assert!(CacheSnapshot::from_json(&json, 10).is_err());
    assert!(CacheSnapshot::from_json("{\"version\":1}", 1 << 20).is_err());
}

#[test]
fn a_bad_token_does_not_swallow_the_refresh_it_was_handed() {
    let k1 = key(ED, "k1");
    let mut c = loaded(&[&k1], NOW);
    let access = profile(TokenKind::Access, &[ED]);
    let forged = token(&key(ED, "k1"), "at+jwt", &access_claims(NOW + 560));
    // In the refresh window: the lookup starts a refresh, the signature then fails.
    let r = access.verify_with_cache::<NoCustomClaims>(&forged, &mut c, t(NOW + 560));
    assert!(matches!(
        r,
        Err(VerifyError::Token(handoff_core::Error::InvalidSignature))
    ));
    assert_eq!(c.fetch_in_flight(), None);
    let good = token(&k1, "at+jwt", &access_claims(NOW + 560));
    match access
        .verify_with_cache::<NoCustomClaims>(&good, &mut c, t(NOW + 560))
        .unwrap()
    {
        Outcome::VerifiedRefresh { fetch, .. } => {
            serve(&mut c, t(NOW + 561), &fetch, &set_json(&[&k1]));
        }
        other => panic!("expected a verified token with a refresh, got {other:?}"),
    }
    assert_eq!(c.consecutive_failures(), 0);
}

#[test]
fn out_of_bounds_configuration_is_refused() {
    let mut cfg = JwksCacheConfig::new(JWKS_URI);
    cfg.min_max_age = 0;
    assert!(JwksCache::new(cfg).is_err());
    let mut cfg = JwksCacheConfig::new(JWKS_URI);
    cfg.backoff_max = 1;
    assert!(JwksCache::new(cfg).is_err());
    assert!(JwksCache::new(JwksCacheConfig::new("")).is_err());
}

/// Issue 18 finding 1: six simulated hours of forged-kid traffic (20 tokens/s over 1000
/// kids) must keep the unknown-kid memory, its eviction order included, within the
/// configured capacity, so the per-fetch cleanup (which walks it) stays bounded. Before
/// the fix the order queue grew to 431 281 entries.
#[test]
fn six_hours_of_forged_kids_keep_the_unknown_kid_memory_bounded() {
    let k1 = key(ED, "k1");
    let body = set_json(&[&k1]);
    let mut c = loaded(&[&k1], NOW);
    let capacity = c.config().negative_capacity;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut max_order = 0;
    let mut fetches = 0u64;
    for sec in 1..=6 * 3600u64 {
        let now = NOW + sec;
        for _ in 0..20 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let kid = format!("forged-{}", (x >> 33) % 1000);
            let req = match c.lookup(t(now), Some(&kid), ED) {
                Lookup::Fetch(r) | Lookup::UseAndRefresh(_, r) => Some(r),
                Lookup::Reject(_) | Lookup::Wait { .. } => None,
                other => panic!("unexpected {other:?}"),
            };
            if let Some(r) = req {
                // The work of this fetch's cleanup is proportional to the order's size.
                assert!(c.unknown_kids_order_len() <= capacity);
                fetches += 1;
                let _ = c.on_fetch_complete(t(now), r.id, ok(&body, Some("max-age=600")));
            }
            let order = c.unknown_kids_order_len();
            assert_eq!(
                order,
                c.unknown_kids_remembered(),
                "order and map hold the same kids"
            );
            assert!(
                order <= capacity,
                "order {order} > capacity {capacity} at {sec} s"
            );
            max_order = max_order.max(order);
        }
    }
    assert!(
        fetches > 6 * 3600 / 30 / 2,
        "unknown kids still trigger fetches: {fetches}"
    );
    // The 1000 forged kids plus "any", remembered by the first fetch.
    assert!(max_order <= 1001, "{max_order}");
    assert!(uses(&mut c, NOW + 6 * 3600, "k1"));
}

#[derive(Debug, Clone)]
enum CacheOp {
    Lookup(u16),
    Advance(u16),
    Complete { with_kid: Option<u16>, status: u16 },
    Fail,
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        8 => (0u16..64).prop_map(CacheOp::Lookup),
        3 => (0u16..120).prop_map(CacheOp::Advance),
        2 => (prop::option::of(0u16..64), prop_oneof![Just(200u16), Just(304), Just(500)])
            .prop_map(|(with_kid, status)| CacheOp::Complete { with_kid, status }),
        1 => Just(CacheOp::Fail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// State machine over lookups of a small kid pool, time, fetch completions (sets
    /// that may hold one of the pool's kids) and failures: the unknown-kid memory and its
    /// eviction order always hold the same kids, at most the configured capacity.
    #[test]
    fn unknown_kid_memory_stays_within_capacity(
        capacity in 1usize..8,
        ops in prop::collection::vec(cache_op(), 1..200),
    ) {
        let k1 = key(ED, "k1");
        let mut cfg = JwksCacheConfig::new(JWKS_URI);
        cfg.negative_capacity = capacity;
        cfg.negative_ttl = 30;
        cfg.unknown_kid_cooldown = 5;
        let mut c = JwksCache::new(cfg).unwrap();
        let mut now = NOW;
        let mut pending: Option<handoff_verify::FetchId> = None;
        for op in ops {
            match op {
                CacheOp::Lookup(k) => {
                    let kid = format!("kid-{k}");
                    match c.lookup(t(now), Some(&kid), ED) {
                        Lookup::Fetch(r) | Lookup::UseAndRefresh(_, r) => pending = Some(r.id),
                        _ => {}
                    }
                }
                CacheOp::Advance(s) => now += u64::from(s),
                CacheOp::Complete { with_kid, status } => {
                    if let Some(id) = pending.take() {
                        let extra = with_kid.map(|k| key(ED, &format!("kid-{k}")));
                        let mut keys = vec![&k1];
                        if let Some(e) = &extra {
                            keys.push(e);
                        }
                        let mut resp = ok(&set_json(&keys), Some("max-age=60"));
                        resp.status = status;
                        let _ = c.on_fetch_complete(t(now), id, resp);
                    }
                }
                CacheOp::Fail => {
                    if let Some(id) = pending.take() {
                        let _ = c.on_fetch_failed(t(now), id);
                    }
                }
            }
            prop_assert_eq!(c.unknown_kids_order_len(), c.unknown_kids_remembered());
            prop_assert!(c.unknown_kids_remembered() <= capacity);
        }
    }
}
