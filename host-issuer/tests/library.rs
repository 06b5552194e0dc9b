#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Library scenarios with a fake clock: minting, validation, key files, JWKS, rotation.

use handoff_core::jws::PRIVATE_JWK_MEMBERS;
use handoff_core::{Jwks, JwksLimits, Validation, b64, verify};
use handoff_issuer::keyring::KeyStatus;
use handoff_issuer::mint::{MAX_PAYLOAD_BYTES, REGISTERED_CLAIMS};
use handoff_issuer::{
    Algorithm, Error, HOST_TOKEN_TYP, HostClaims, HostIssuerKeys, Keyring, UnixTime, mint_host_jwt,
};
use rand_core::UnwrapErr;
use serde_json::Value;

const ALGS: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];
const T0: u64 = 1_800_000_000;

fn rng() -> UnwrapErr<getrandom::SysRng> {
    UnwrapErr(getrandom::SysRng)
}

fn claims() -> HostClaims {
    HostClaims::new("https://host.example", "https://svc.example", "user-42").tenant("tenant-7")
}

fn policy() -> Validation {
    Validation::builder()
        .issuer("https://host.example")
        .audience("https://svc.example")
        .typ(HOST_TOKEN_TYP)
        .build()
        .unwrap()
}

fn segment(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64::decode(seg).unwrap()).unwrap()
}

fn jwks_of(ring: &Keyring, now: UnixTime) -> Jwks {
    Jwks::parse(ring.jwks_response(now).body(), &JwksLimits::default())
        .unwrap()
        .jwks
}

#[test]
fn canonical_claims_and_header_for_every_algorithm() {
    let now = UnixTime::from_secs(T0);
    for alg in ALGS {
        let key = HostIssuerKeys::generate(alg, Some("k1"), &mut rng()).unwrap();
        let t = mint_host_jwt(&claims().claim("role", "admin"), &key, now, &mut rng()).unwrap();
        let header = segment(t.token(), 0);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["kid"], "k1");
        assert_eq!(header["typ"], "host+jwt");
        assert_eq!(header.as_object().unwrap().len(), 3, "{header}");
        // Canonical order in the payload text itself.
        let raw =
            String::from_utf8(b64::decode(t.token().split('.').nth(1).unwrap()).unwrap()).unwrap();
        let order: Vec<usize> = [
            "\"iss\"",
            "\"aud\"",
            "\"sub\"",
            "\"host_tenant_id\"",
            "\"iat\"",
            "\"exp\"",
            "\"jti\"",
            "\"role\"",
        ]
        .iter()
        .map(|k| {
            raw.find(k)
                .unwrap_or_else(|| panic!("{k} missing in {raw}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{raw}");
        let p = segment(t.token(), 1);
        assert_eq!(p["iat"], T0);
        assert_eq!(p["exp"], T0 + 300);
        assert_eq!(p["host_tenant_id"], "tenant-7");
        let jti = b64::decode(p["jti"].as_str().unwrap()).unwrap();
        assert_eq!(jti.len(), 16, "jti carries 128 random bits");
        assert_eq!(t.expires_at(), UnixTime::from_secs(T0 + 300));
        let v = verify::<Value, _>(t.token(), &key.verifying_key(), &policy(), now).unwrap();
        assert_eq!(v.registered().sub.as_deref(), Some("user-42"));
        assert!(
            !format!("{t:?}").contains(t.token()),
            "Debug hides the token"
        );
    }
}

#[test]
fn jti_differs_between_tokens() {
    let key = HostIssuerKeys::generate(Algorithm::EdDSA, None, &mut rng()).unwrap();
    let now = UnixTime::from_secs(T0);
    let a = mint_host_jwt(&claims(), &key, now, &mut rng()).unwrap();
    let b = mint_host_jwt(&claims(), &key, now, &mut rng()).unwrap();
    assert_ne!(a.jti(), b.jti());
}

#[test]
fn alg_is_pinned_by_the_key() {
    // A token whose header is rewritten to another algorithm no longer verifies.
    let now = UnixTime::from_secs(T0);
    let key = HostIssuerKeys::generate(Algorithm::ES256, Some("k"), &mut rng()).unwrap();
    let t = mint_host_jwt(&claims(), &key, now, &mut rng()).unwrap();
    let forged_header = b64::encode(br#"{"alg":"HS256","kid":"k","typ":"host+jwt"}"#);
    let rest = t.token().split_once('.').unwrap().1;
    let forged = format!("{forged_header}.{rest}");
    let err = verify::<Value, _>(&forged, &key.verifying_key(), &policy(), now).unwrap_err();
    assert!(
        matches!(err, handoff_core::Error::AlgorithmMismatch { .. }),
        "{err:?}"
    );
    // HS256 and PS256 cannot be host keys at all.
    for alg in [Algorithm::HS256, Algorithm::PS256] {
        assert_eq!(
            HostIssuerKeys::generate(alg, None, &mut rng()).unwrap_err(),
            Error::UnsupportedAlgorithm(alg)
        );
    }
}

#[test]
fn input_validation() {
    let key = HostIssuerKeys::generate(Algorithm::EdDSA, None, &mut rng()).unwrap();
    let now = UnixTime::from_secs(T0);
    let field = |c: HostClaims| match mint_host_jwt(&c, &key, now, &mut rng()) {
        Err(Error::InvalidInput { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    assert_eq!(
        field(HostClaims {
            iss: String::new(),
            ..claims()
        }),
        "iss"
    );
    assert_eq!(
        field(HostClaims {
            aud: String::new(),
            ..claims()
        }),
        "aud"
    );
    assert_eq!(
        field(HostClaims {
            sub: String::new(),
            ..claims()
        }),
        "sub"
    );
    assert_eq!(
        field(HostClaims {
            host_tenant_id: String::new(),
            ..claims()
        }),
        "host_tenant_id"
    );
    assert_eq!(
        field(HostClaims {
            sub: " user".into(),
            ..claims()
        }),
        "sub"
    );
    assert_eq!(
        field(HostClaims {
            sub: "x".repeat(1025),
            ..claims()
        }),
        "sub"
    );
    assert_eq!(field(claims().ttl(0)), "ttl");
    assert_eq!(field(claims().ttl(3601)), "ttl");
    for name in REGISTERED_CLAIMS {
        assert_eq!(field(claims().claim(name, "x")), "extra claims", "{name}");
    }
    assert_eq!(
        field(claims().claim("big", "x".repeat(MAX_PAYLOAD_BYTES))),
        "extra claims"
    );
    // The bounds themselves are accepted, and Default carries the 300 s default.
    assert!(mint_host_jwt(&claims().ttl(1), &key, now, &mut rng()).is_ok());
    assert!(mint_host_jwt(&claims().ttl(3600), &key, now, &mut rng()).is_ok());
    assert_eq!(HostClaims::default().ttl, 300);
    // now + ttl overflowing is refused, not wrapped.
    let far = UnixTime::from_secs(u64::MAX - 10);
    assert!(matches!(
        mint_host_jwt(&claims(), &key, far, &mut rng()),
        Err(Error::InvalidInput { field: "now", .. })
    ));
}

#[test]
fn rsa_keys_are_2048_bits_or_more() {
    let err = HostIssuerKeys::generate_with_rsa_bits(Algorithm::RS256, 1024, None, &mut rng())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "rsa_bits",
                ..
            }
        ),
        "{err:?}"
    );
    let pem_1024 = "-----BEGIN PRIVATE KEY-----\nMIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAL\n-----END PRIVATE KEY-----";
    assert!(HostIssuerKeys::from_pem(pem_1024, Algorithm::RS256, None).is_err());
}

#[test]
fn key_file_and_pem_round_trip_for_every_algorithm() {
    for alg in ALGS {
        let key = HostIssuerKeys::generate(alg, Some("kf"), &mut rng()).unwrap();
        let file = key.to_key_file();
        let back = HostIssuerKeys::from_key_file(&file).unwrap();
        assert_eq!(back.kid(), "kf");
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.verifying_key(), key.verifying_key());
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let from_pem = HostIssuerKeys::from_pem(&pem, alg, Some("kp")).unwrap();
        assert_eq!(from_pem.verifying_key(), key.verifying_key());
        assert_eq!(from_pem.kid(), "kp");
        assert!(key.to_public_key_pem().unwrap().contains("PUBLIC KEY"));
        // Debug shows no private material.
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("\"d\"") && dbg.contains("kf"), "{dbg}");
        // A public JWK is not a key file.
        let public = serde_json::to_string(&key.public_jwk().unwrap()).unwrap();
        assert!(matches!(
            HostIssuerKeys::from_key_file(&public),
            Err(Error::KeyFile(_))
        ));
    }
    assert!(matches!(
        HostIssuerKeys::from_key_file("not json"),
        Err(Error::KeyFile(_))
    ));
    // A PEM for another algorithm is refused.
    let ed = HostIssuerKeys::generate(Algorithm::EdDSA, None, &mut rng()).unwrap();
    assert!(HostIssuerKeys::from_pem(&ed.to_pkcs8_pem().unwrap(), Algorithm::ES256, None).is_err());
    // Without a kid, the thumbprint is the kid.
    assert_eq!(ed.kid(), ed.verifying_key().thumbprint().to_base64url());
}

#[test]
fn jwks_never_carries_a_private_member_for_any_key_type() {
    let now = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("ed"), &mut rng()).unwrap(),
        now,
    );
    let _ = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::ES256, Some("ec"), &mut rng()).unwrap(),
            now,
        )
        .unwrap();
    let _ = ring
        .publish_next(
            HostIssuerKeys::generate(Algorithm::RS256, Some("rsa"), &mut rng()).unwrap(),
            now,
        )
        .unwrap();
    // The key file does hold private members (so the check below can fail).
    let file: Value = serde_json::from_str(&ring.to_key_file()).unwrap();
    let with_d = file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["jwk"].get("d").is_some())
        .count();
    assert_eq!(with_d, 3);
    let resp = ring.jwks_response(now);
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    let keys = body["keys"].as_array().unwrap();
    let ktys: Vec<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(ktys, ["EC", "RSA", "OKP"], "active, next, retiring");
    for k in keys {
        for m in PRIVATE_JWK_MEMBERS {
            assert!(k.get(m).is_none(), "private member {m} published in {k}");
        }
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].is_string() && k["alg"].is_string());
    }
    assert_eq!(resp.content_type(), "application/json");
    assert_eq!(
        resp.headers()[0],
        ("Content-Type", "application/json".to_owned())
    );
}

#[test]
fn rotation_old_tokens_verify_until_retire_time_then_fail() {
    let t0 = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("old"), &mut rng()).unwrap(),
        t0,
    );
    assert_eq!(ring.retire_after(), 3660);
    let old = ring.mint(&claims().ttl(3600), t0, &mut rng()).unwrap();
    assert_eq!(old.kid(), "old");

    let t1 = t0.saturating_add(10);
    let change = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::ES256, Some("new"), &mut rng()).unwrap(),
            t1,
        )
        .unwrap();
    assert_eq!(change.activated(), Some("new"));
    let not_after = t1.saturating_add(3660);
    assert_eq!(change.retired(), Some(("old", not_after)));
    assert_eq!(ring.active().kid(), "new");
    let new = ring.mint(&claims(), t1, &mut rng()).unwrap();
    assert_eq!(new.kid(), "new");
    assert_eq!(segment(new.token(), 0)["kid"], "new");
    assert_eq!(segment(new.token(), 0)["alg"], "ES256");

    // Both verify right after the switch, and the old one until its exp + leeway.
    let jwks = jwks_of(&ring, t1);
    assert_eq!(jwks.len(), 2);
    verify::<Value, _>(old.token(), &jwks, &policy(), t1).unwrap();
    verify::<Value, _>(new.token(), &jwks, &policy(), t1).unwrap();
    let last = UnixTime::from_secs(T0 + 3600 + 60);
    assert!(last <= not_after);
    verify::<Value, _>(old.token(), &jwks_of(&ring, last), &policy(), last).unwrap();

    // After the retire time the old key is gone from the JWKS even before prune.
    let after = not_after.saturating_add(1);
    let jwks = jwks_of(&ring, after);
    assert_eq!(jwks.len(), 1);
    let err = verify::<Value, _>(old.token(), &jwks, &policy(), after).unwrap_err();
    assert!(
        matches!(err, handoff_core::Error::KeyNotFound { .. }),
        "{err:?}"
    );
    // ... and a fresh token of the old key (forged clock) does not verify either.
    let keys_old = Keyring::from_key_file(&ring.to_key_file()).unwrap();
    assert_eq!(keys_old.entries().len(), 2, "prune has not run yet");

    // Prune drops it at exactly that point, not before.
    assert!(ring.prune(not_after).is_empty());
    let pruned = ring.prune(after);
    assert_eq!(pruned.dropped(), ["old".to_owned()]);
    assert_eq!(ring.entries().len(), 1);
}

#[test]
fn playbook_publish_then_activate_then_prune() {
    let t0 = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("a"), &mut rng()).unwrap(),
        t0,
    )
    .with_max_token_lifetime(600)
    .unwrap();
    assert!(matches!(ring.activate_next(t0), Err(Error::Keyring(_))));
    let next = HostIssuerKeys::generate(Algorithm::EdDSA, Some("b"), &mut rng()).unwrap();
    let change = ring.publish_next(next, t0).unwrap();
    assert_eq!(change.published(), Some("b"));
    // Published but not signing yet.
    assert_eq!(ring.active().kid(), "a");
    assert_eq!(ring.next().unwrap().kid(), "b");
    assert_eq!(jwks_of(&ring, t0).len(), 2);
    assert_eq!(ring.mint(&claims(), t0, &mut rng()).unwrap().kid(), "a");
    // A second staged key, or a duplicate kid, is refused.
    let dup = HostIssuerKeys::generate(Algorithm::EdDSA, Some("a"), &mut rng()).unwrap();
    assert!(matches!(ring.publish_next(dup, t0), Err(Error::Keyring(_))));
    // Switching before verifiers could have refetched is refused.
    let err = ring.activate_next(t0.saturating_add(299)).unwrap_err();
    assert!(err.to_string().contains("activate at or after"), "{err}");
    let t1 = t0.saturating_add(300);
    let change = ring.activate_next(t1).unwrap();
    assert_eq!(change.activated(), Some("b"));
    assert_eq!(change.retired(), Some(("a", t1.saturating_add(660))));
    assert_eq!(ring.mint(&claims(), t1, &mut rng()).unwrap().kid(), "b");
    assert!(matches!(
        ring.mint(&claims().ttl(601), t1, &mut rng()),
        Err(Error::InvalidInput { field: "ttl", .. })
    ));
    assert_eq!(
        ring.prune(t1.saturating_add(661)).dropped(),
        ["a".to_owned()]
    );
}

#[test]
fn cache_control_never_outlives_a_retiring_key() {
    let t0 = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("a"), &mut rng()).unwrap(),
        t0,
    );
    assert_eq!(ring.jwks_response(t0).max_age(), 300);
    let _ = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::EdDSA, Some("b"), &mut rng()).unwrap(),
            t0,
        )
        .unwrap();
    // Far from the drop: the cap applies.
    assert_eq!(ring.jwks_response(t0).max_age(), 300);
    // 100 s before the drop: max-age is 100, so caches refetch when the key leaves.
    let near = t0.saturating_add(3660 - 100);
    let r = ring.jwks_response(near);
    assert_eq!(r.max_age(), 100);
    assert_eq!(r.cache_control(), "public, max-age=100");
    // After the drop the cap applies again.
    assert_eq!(ring.jwks_response(t0.saturating_add(3661)).max_age(), 300);
}

#[test]
fn retire_after_cannot_be_shorter_than_token_lifetime() {
    let t0 = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("a"), &mut rng()).unwrap(),
        t0,
    );
    let k = HostIssuerKeys::generate(Algorithm::EdDSA, Some("b"), &mut rng()).unwrap();
    let err = ring.rotate_with_retire_after(k, t0, 3659).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "retire_after",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        ring.active().kid(),
        "a",
        "a refused rotation changes nothing"
    );
    let k = HostIssuerKeys::generate(Algorithm::EdDSA, Some("b"), &mut rng()).unwrap();
    let change = ring.rotate_with_retire_after(k, t0, 7200).unwrap();
    assert_eq!(change.retired(), Some(("a", t0.saturating_add(7200))));
    assert!(
        Keyring::new(
            HostIssuerKeys::generate(Algorithm::EdDSA, None, &mut rng()).unwrap(),
            t0
        )
        .with_max_token_lifetime(3601)
        .is_err()
    );
}

#[test]
fn keyring_file_round_trip_and_refusals() {
    let t0 = UnixTime::from_secs(T0);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::RS256, Some("r"), &mut rng()).unwrap(),
        t0,
    )
    .with_leeway(30)
    .unwrap();
    let _ = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::EdDSA, Some("e"), &mut rng()).unwrap(),
            t0,
        )
        .unwrap();
    let file = ring.to_key_file();
    let back = Keyring::from_key_file(&file).unwrap();
    assert_eq!(back.active().kid(), "e");
    assert_eq!(back.leeway(), 30);
    assert_eq!(
        back.entries()[0].status(),
        KeyStatus::Retiring {
            retired_at: t0,
            not_after: t0.saturating_add(3630)
        }
    );
    let debug = format!("{back:?}");
    assert!(!debug.contains("\"d\""), "{debug}");

    let v: Value = serde_json::from_str(&file).unwrap();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut c = v.clone();
        f(&mut c);
        match Keyring::from_key_file(&c.to_string()) {
            Err(Error::KeyFile(m)) => m,
            other => panic!("expected KeyFile error, got {other:?}"),
        }
    };
    assert!(broken(&|c| c["keys"][0]["status"] = "active".into()).contains("only retiring"));
    assert!(
        broken(&|c| {
            let o = c["keys"][0].as_object_mut().unwrap();
            o.insert("status".into(), "active".into());
            o.remove("retired_at");
            o.remove("not_after");
        })
        .contains("2 active keys")
    );
    assert!(broken(&|c| c["keys"][1]["status"] = "next".into()).contains("0 active keys"));
    assert!(broken(&|c| c["version"] = 2.into()).contains("version 2"));
    assert!(broken(&|c| c["format"] = "other".into()).contains("format"));
    assert!(
        broken(&|c| {
            c["keys"][0].as_object_mut().unwrap().remove("not_after");
        })
        .contains("lacks")
    );
    assert!(broken(&|c| c["keys"][0]["jwk"]["kid"] = "e".into()).contains("twice"));
    assert!(broken(&|c| c["keys"] = Value::Array(vec![])).contains("0 keys"));
    assert!(broken(&|c| c["max_token_lifetime"] = 0.into()).contains("max_token_lifetime"));
    assert!(
        broken(&|c| {
            c["keys"][1]["jwk"].as_object_mut().unwrap().remove("d");
        })
        .contains("key #1")
    );
    assert!(broken(&|c| c["extra"] = 1.into()).contains("unknown field"));
    assert!(matches!(
        Keyring::from_key_file(&" ".repeat(1024 * 1024 + 1)),
        Err(Error::KeyFile(_))
    ));
}

/// Issue 18, finding 7: the keyring file of 16 RSA-4096 keys is written into a buffer
/// sized exactly beforehand, so no reallocation leaves a copy of private keys behind.
/// (Before the fix the buffer was a fixed 64 KiB reservation: capacity != length, and a
/// larger ring reallocated.)
#[test]
fn key_file_of_sixteen_rsa_4096_keys_is_written_without_reallocation() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rsa4096");
    let mut keys: Vec<HostIssuerKeys> = (0..16)
        .map(|i| {
            let pem = std::fs::read_to_string(dir.join(format!("k{i:02}.pem"))).unwrap();
            HostIssuerKeys::from_pem(
                &pem,
                Algorithm::RS256,
                Some(&format!("rsa-4096-key-number-{i:02}")),
            )
            .unwrap()
        })
        .collect();
    let t0 = UnixTime::from_secs(1_800_000_000);
    let mut ring = Keyring::new(keys.remove(0), t0);
    for (i, k) in keys.into_iter().enumerate() {
        let _ = ring
            .rotate(k, UnixTime::from_secs(t0.as_secs() + 1 + i as u64))
            .unwrap();
    }
    assert_eq!(ring.entries().len(), 16);
    let file = ring.to_key_file();
    assert!(file.len() > 50 * 1024, "{} bytes", file.len());
    assert_eq!(
        file.capacity(),
        file.len(),
        "the buffer was sized exactly: nothing was reallocated or left over"
    );
    assert!(file.ends_with("}\n"));
    let back = Keyring::from_key_file(&file).unwrap();
    assert_eq!(back.entries().len(), 16);
    assert_eq!(back.active().kid(), "rsa-4096-key-number-15");
    assert_eq!(*back.to_key_file(), *file);
    // The single-key file of an RSA-4096 key too.
    let single = back.active().to_key_file();
    assert_eq!(single.capacity(), single.len());
}

/// The host profile of handoff-verify accepts the algorithms the CLI and README offer
/// when configured with them, EdDSA by default, and nothing else.
#[test]
fn host_profile_verifies_every_algorithm_the_issuer_offers() {
    use handoff_verify::{HostTokenVerifier, NoCustomClaims, VerifyError};
    let now = UnixTime::from_secs(1_800_000_000);
    let c = claims();
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let ring = Keyring::new(
            HostIssuerKeys::generate(alg, None, &mut rng()).unwrap(),
            now,
        );
        let token = ring.mint(&c, now, &mut rng()).unwrap();
        let jwks = jwks_of(&ring, now);
        let configured = HostTokenVerifier::builder(c.iss.clone(), c.aud.clone())
            .algorithms([alg])
            .build()
            .unwrap();
        let v = configured
            .verify::<NoCustomClaims, _>(token.token(), &jwks, now)
            .unwrap();
        assert_eq!(v.get_unconfirmed().subject(), c.sub, "{alg:?}");
        let default = HostTokenVerifier::builder(c.iss.clone(), c.aud.clone())
            .build()
            .unwrap();
        let r = default.verify::<NoCustomClaims, _>(token.token(), &jwks, now);
        if alg == Algorithm::EdDSA {
            assert!(r.is_ok(), "EdDSA is the default");
        } else {
            assert!(
                matches!(
                    r,
                    Err(VerifyError::Token(handoff_core::Error::AlgorithmNotAllowed(a))) if a == alg
                ),
                "{alg:?}: {r:?}"
            );
        }
    }
    for bad in [Algorithm::HS256, Algorithm::PS256] {
        assert!(
            HostTokenVerifier::builder("i", "a")
                .algorithms([bad])
                .build()
                .is_err()
        );
    }
    assert!(
        HostTokenVerifier::builder("i", "a")
            .algorithms([])
            .build()
            .is_err()
    );
}
