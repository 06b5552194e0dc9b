//! Interop with panva's `jose` (npm): EdDSA, ES256 and RS256 tokens across a key rotation,
//! verified through the verifier profiles and the JWKS cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use handoff_core::keys::{jwk_thumbprint, parse_jwk};
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{Algorithm, UnixTime};
use handoff_verify::{
    AccessTokenVerifier, FetchOutcome, FetchResponse, HostTokenVerifier, JwksCache,
    JwksCacheConfig, NoCustomClaims, Outcome, Presented, TokenKind, Verifier, VerifyError,
};
use serde_json::Value;

const URI: &str = "https://host.example/.well-known/jwks.json";

fn run_peer() -> Option<Value> {
    let interop = handoff_test_support::need_interop(
        "handoff-verify: interop with panva's jose (rotation through the JWKS cache)",
        &["jose"],
    )?;
    let out = Command::new("node")
        .arg(interop.join("sv_rotation.mjs"))
        .current_dir(&interop)
        .output()
        .expect("node must be on PATH for the interop test");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn respond(cache: &mut JwksCache, now: UnixTime, id: handoff_verify::FetchId, jwks: &Value) {
    let r = cache.on_fetch_complete(
        now,
        id,
        FetchResponse {
            status: 200,
            body: jwks.to_string().into_bytes(),
            ..FetchResponse::default()
        },
    );
    assert_eq!(r.outcome, FetchOutcome::Replaced, "{r:?}");
    assert!(
        r.skipped.is_empty(),
        "jose's keys must all be understood: {:?}",
        r.skipped
    );
}

#[test]
fn jose_tokens_verify_across_a_rotation() {
    let Some(peer) = run_peer() else { return };
    let now = UnixTime::from_secs(peer["now"].as_u64().unwrap());
    let iss = peer["iss"].as_str().unwrap();
    let aud = peer["aud"].as_str().unwrap();
    let access = Verifier::builder(TokenKind::Access)
        .issuer(iss)
        .audience(aud)
        .algorithm(Algorithm::EdDSA)
        .algorithm(Algorithm::ES256)
        .algorithm(Algorithm::RS256)
        .build()
        .unwrap();
    let host = HostTokenVerifier::new(
        Verifier::builder(TokenKind::Host)
            .issuer(iss)
            .audience(aud)
            .algorithm(Algorithm::EdDSA)
            .build()
            .unwrap(),
    )
    .unwrap();
    let log = InMemoryReplayLog::new(100);
    let mut cache = JwksCache::new(JwksCacheConfig::new(URI)).unwrap();

    let verify_all = |cache: &mut JwksCache, at: UnixTime, generation: &Value| -> usize {
        let mut verified = 0;
        for t in generation["tokens"].as_array().unwrap() {
            let tok = t["token"].as_str().unwrap();
            let ok = match t["typ"].as_str().unwrap() {
                "host+jwt" => match host
                    .verify_with_cache::<NoCustomClaims>(tok, cache, at)
                    .unwrap()
                {
                    Outcome::Verified(u) => {
                        let h = u.confirm(&log, at).unwrap();
                        assert_eq!(h.host_tenant_id(), "tenant-7");
                        true
                    }
                    other => panic!("{other:?}"),
                },
                _ => {
                    let v = access
                        .verify_with_cache::<NoCustomClaims>(tok, cache, at)
                        .unwrap();
                    let v = v.verified().expect("verified");
                    assert_eq!(v.header().alg().as_str(), t["alg"].as_str().unwrap());
                    assert_eq!(v.client_id(), Some("web-app"));
                    true
                }
            };
            verified += usize::from(ok);
        }
        verified
    };

    // Before the rotation.
    let before = &peer["before"];
    let req = cache.handle_timeout(now).unwrap();
    respond(&mut cache, now, req.id, &before["jwks"]);
    assert_eq!(verify_all(&mut cache, now, before), 4);

    // The host rotates every key; after the cooldown a new kid triggers one fetch.
    let after = &peer["after"];
    let later = now.saturating_add(31);
    let first_new = after["tokens"][0]["token"].as_str().unwrap();
    let req = match access
        .verify_with_cache::<NoCustomClaims>(first_new, &mut cache, later)
        .unwrap()
    {
        Outcome::Fetch(r) => r,
        other => panic!("expected a fetch for the new kid, got {other:?}"),
    };
    respond(&mut cache, later, req.id, &after["jwks"]);
    assert_eq!(verify_all(&mut cache, later, after), 4);

    // Tokens under the removed keys no longer verify.
    for t in before["tokens"].as_array().unwrap() {
        let tok = t["token"].as_str().unwrap();
        let r = if t["typ"] == "host+jwt" {
            host.verify_with_cache::<NoCustomClaims>(tok, &mut cache, later)
                .map(|_| ())
        } else {
            access
                .verify_with_cache::<NoCustomClaims>(tok, &mut cache, later)
                .map(|_| ())
        };
        assert!(
            matches!(r, Err(VerifyError::UnknownKidRateLimited { .. })),
            "{r:?}"
        );
    }

    // A DPoP-bound token whose cnf.jkt jose computed: our thumbprint of the same key agrees.
    let bound = &peer["bound"];
    let jwk = parse_jwk(bound["dpop_jwk"].to_string().as_bytes()).unwrap();
    let thumb = jwk_thumbprint(&jwk).unwrap();
    assert_eq!(thumb.to_base64url(), bound["jkt"].as_str().unwrap());
    let av = AccessTokenVerifier::new(access.clone()).unwrap();
    let tok = bound["token"].as_str().unwrap();
    let r = av
        .verify_with_cache(
            tok,
            &mut cache,
            &Presented::Dpop {
                proof_thumbprint: thumb,
            },
            later,
        )
        .unwrap();
    assert!(r.verified().is_some());
    assert!(matches!(
        av.verify_with_cache(tok, &mut cache, &Presented::Bearer, later),
        Err(VerifyError::BoundTokenAsBearer)
    ));
}
