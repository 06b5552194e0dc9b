//! One negative test per verification rule: each shows a token or key that must be
//! refused, and the precise error it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::jws::{self, DecodeOptions};
use handoff_core::keys::{HmacSecret, parse_jwk};
use handoff_core::{
    Algorithm, Error, Jwks, SigningKey, UnixTime, Validation, VerifyingKey, b64, verify,
};
use serde_json::{Value, json};

type Claims = Value;

fn verify_with(token: &str, key: &VerifyingKey) -> Result<Claims, Error> {
    verify::<Claims, _>(token, key, &policy(), now()).map(|v| v.into_custom())
}

fn rsa_public() -> VerifyingKey {
    key(Algorithm::RS256).verifying_key()
}

// ---------------------------------------------------------------- algorithm confusion

/// The classic attack: an HS256 token whose HMAC secret is the verifier's RSA public key,
/// in each form an attacker can get it (PEM text, modulus bytes, JWK JSON).
#[test]
fn hs256_keyed_with_the_rsa_public_key_is_refused_in_every_form() {
    let rsa = rsa_public().with_kid("rsa-1").unwrap();
    let pem = rsa.to_public_key_pem().unwrap();
    let jwk = rsa.to_public_jwk().unwrap();
    let jwk_json = serde_json::to_string(&jwk).unwrap();
    let n = b64::decode(serde_json::to_value(&jwk).unwrap()["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256);
    let set = Jwks::from_keys([rsa.clone()]).unwrap();
    let payload = claims().to_string();

    for (form, secret) in [
        ("pem", pem.as_bytes().to_vec()),
        (
            "pem without final newline",
            pem.trim_end().as_bytes().to_vec(),
        ),
        ("modulus", n.clone()),
        ("jwk", jwk_json.as_bytes().to_vec()),
    ] {
        for header in [
            format!(r#"{{"alg":"HS256","typ":"{TYP}"}}"#),
            format!(r#"{{"alg":"HS256","typ":"{TYP}","kid":"rsa-1"}}"#),
        ] {
            let token = hs256_raw(&header, payload.as_bytes(), &secret);
            // The forged token is well formed: its MAC is right for that secret.
            let forged_key = VerifyingKey::hs256(secret.clone()).unwrap();
            jws::decode(&token, &DecodeOptions::default())
                .unwrap()
                .verify(&forged_key)
                .unwrap();
            // With the RSA key pinned: the header cannot pick the algorithm.
            assert_eq!(
                verify_with(&token, &rsa).unwrap_err(),
                Error::AlgorithmMismatch {
                    header: Algorithm::HS256,
                    key: Algorithm::RS256
                },
                "{form}"
            );
            assert!(matches!(
                jws::decode(&token, &DecodeOptions::default())
                    .unwrap()
                    .verify(&rsa),
                Err(Error::AlgorithmMismatch { .. })
            ));
            // With a key set: without kid no HS256 key exists in it; with the RSA key's kid,
            // that key is made for RS256 only.
            let refused = verify::<Claims, _>(&token, &set, &policy(), now()).unwrap_err();
            if header.contains("kid") {
                assert_eq!(
                    refused,
                    Error::AlgorithmMismatch {
                        header: Algorithm::HS256,
                        key: Algorithm::RS256
                    },
                    "{form}"
                );
            } else {
                assert!(
                    matches!(
                        refused,
                        Error::KeyNotFound {
                            alg: Algorithm::HS256,
                            ..
                        }
                    ),
                    "{form}"
                );
            }
        }
    }
    // And no HS256 key can be built from the public key's material to publish in a set.
    assert!(Jwks::from_keys([VerifyingKey::hs256(n).unwrap()]).is_err());
}

#[test]
fn alg_none_is_refused() {
    let payload = b64::encode(claims().to_string().as_bytes());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let h = b64::encode(header.as_bytes());
        // unsecured form (empty signature) and with a fake signature
        let empty = format!("{h}.{payload}.");
        assert!(matches!(
            verify_with(&empty, &rsa_public()),
            Err(Error::Malformed(_))
        ));
        let fake = format!("{h}.{payload}.AAAA");
        assert!(matches!(
            verify_with(&fake, &rsa_public()),
            Err(Error::UnsupportedAlgorithm(_))
        ));
    }
}

#[test]
fn header_alg_must_equal_the_key_algorithm() {
    let es = key(Algorithm::ES256);
    let token = sign_json(&es, Some(TYP), &claims());
    let ed = key(Algorithm::EdDSA).verifying_key();
    assert_eq!(
        verify_with(&token, &ed).unwrap_err(),
        Error::AlgorithmMismatch {
            header: Algorithm::ES256,
            key: Algorithm::EdDSA
        }
    );
    // RS256 and PS256 share key material but not the algorithm.
    let rs = key(Algorithm::RS256);
    let ps = key(Algorithm::PS256);
    let token = sign_json(&rs, Some(TYP), &claims());
    assert!(matches!(
        verify_with(&token, &ps.verifying_key()),
        Err(Error::AlgorithmMismatch { .. })
    ));
    // A policy allow-list refuses other algorithms before any key is used.
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .algorithm(Algorithm::PS256)
        .build()
        .unwrap();
    assert_eq!(
        verify::<Claims, _>(&token, &rs.verifying_key(), &v, now()).unwrap_err(),
        Error::AlgorithmNotAllowed(Algorithm::RS256)
    );
    // An unknown algorithm name is refused by name, case-sensitively.
    let t = sign_raw(&es, r#"{"alg":"es256"}"#, b"{}");
    assert_eq!(
        jws::decode(&t, &DecodeOptions::default()).unwrap_err(),
        Error::UnsupportedAlgorithm("es256".into())
    );
}

// ---------------------------------------------------------------- header strictness

#[test]
fn unknown_crit_is_refused() {
    let k = key(Algorithm::EdDSA);
    let payload = claims().to_string();
    let h = format!(r#"{{"alg":"EdDSA","typ":"{TYP}","crit":["exp-ext"],"exp-ext":1}}"#);
    let token = sign_raw(&k, &h, payload.as_bytes());
    assert!(matches!(
        verify_with(&token, &k.verifying_key()),
        Err(Error::Critical(m)) if m.contains("does not understand")
    ));
    // Declared as understood, the same token verifies.
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .typ(TYP)
        .understood_crit("exp-ext")
        .build()
        .unwrap();
    verify::<Claims, _>(&token, &k.verifying_key(), &v, now()).unwrap();
    // crit naming a registered parameter, an absent one, or empty, is refused too.
    for crit in [r#"["alg"]"#, r#"["exp-ext"]"#, "[]", r#""exp-ext""#] {
        let h = format!(r#"{{"alg":"EdDSA","typ":"{TYP}","crit":{crit}}}"#);
        let token = sign_raw(&k, &h, payload.as_bytes());
        assert!(
            matches!(
                verify::<Claims, _>(&token, &k.verifying_key(), &v, now()),
                Err(Error::Critical(_) | Error::Json { .. })
            ),
            "{crit}"
        );
    }
}

#[test]
fn duplicate_header_members_are_refused() {
    let k = key(Algorithm::HS256);
    for h in [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ] {
        let token = sign_raw(&k, h, claims().to_string().as_bytes());
        assert_eq!(
            jws::decode(&token, &DecodeOptions::default()).unwrap_err(),
            Error::DuplicateMember {
                part: "header",
                name: "alg".into()
            },
            "{h}"
        );
    }
    let token = sign_raw(&k, r#"{"alg":"HS256","kid":"a","kid":"b"}"#, b"{}");
    assert!(matches!(
        jws::decode(&token, &DecodeOptions::default()),
        Err(Error::DuplicateMember { .. })
    ));
}

#[test]
fn header_keys_are_never_used_to_choose_the_verification_key() {
    let honest = key(Algorithm::ES256).with_kid("honest").unwrap();
    let attacker = key(Algorithm::ES256);
    let attacker_jwk =
        serde_json::to_string(&attacker.verifying_key().to_public_jwk().unwrap()).unwrap();
    let set = Jwks::from_keys([honest.verifying_key()]).unwrap();
    for extra in [
        format!(r#""jwk":{attacker_jwk}"#),
        r#""jku":"https://attacker.example/jwks.json""#.to_owned(),
        r#""x5u":"https://attacker.example/cert.pem""#.to_owned(),
        r#""x5c":["MIIB"]"#.to_owned(),
    ] {
        let h = format!(r#"{{"alg":"ES256","typ":"{TYP}","kid":"honest",{extra}}}"#);
        let token = sign_raw(&attacker, &h, claims().to_string().as_bytes());
        assert_eq!(
            verify::<Claims, _>(&token, &set, &policy(), now()).unwrap_err(),
            Error::InvalidSignature,
            "{extra}"
        );
        assert_eq!(
            verify_with(&token, &honest.verifying_key()).unwrap_err(),
            Error::InvalidSignature
        );
    }
}

#[test]
fn oversize_or_empty_header_kid_is_refused() {
    let k = key(Algorithm::HS256);
    for kid in ["k".repeat(257), String::new()] {
        let h = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
        let token = sign_raw(&k, &h, b"{}");
        assert!(matches!(
            jws::decode(&token, &DecodeOptions::default()),
            Err(Error::Malformed(m)) if m.contains("kid")
        ));
    }
    assert!(
        SigningKey::hs256([7u8; 32])
            .unwrap()
            .with_kid("k".repeat(257))
            .is_err()
    );
}

// ---------------------------------------------------------------- signature encodings

fn der_integer(b: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = b.iter().copied().skip_while(|&x| x == 0).collect();
    if v.first().is_none_or(|&x| x & 0x80 != 0) {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(v.len()).unwrap()];
    out.extend(v);
    out
}

#[test]
fn der_encoded_ecdsa_signature_is_refused() {
    let k = key(Algorithm::ES256);
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = b64::decode(sig).unwrap();
    assert_eq!(raw.len(), 64);
    let mut body = der_integer(&raw[..32]);
    body.extend(der_integer(&raw[32..]));
    let mut der = vec![0x30, u8::try_from(body.len()).unwrap()];
    der.extend(body);
    let der_token = format!("{input}.{}", b64::encode(&der));
    verify_with(&token, &k.verifying_key()).unwrap();
    assert_eq!(
        verify_with(&der_token, &k.verifying_key()).unwrap_err(),
        Error::InvalidSignature
    );
    // the same for a raw signature that is one byte short or long
    for bad in [&raw[..63], &[&raw[..], &[0][..]].concat()[..]] {
        let t = format!("{input}.{}", b64::encode(bad));
        assert_eq!(
            verify_with(&t, &k.verifying_key()).unwrap_err(),
            Error::InvalidSignature
        );
    }
}

/// L, the order of the Ed25519 base point, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn non_canonical_ed25519_s_is_refused() {
    let k = key(Algorithm::EdDSA);
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    // S' = S + L is the same scalar mod L: a malleated signature lax verifiers accept.
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(ED25519_L[i]) + carry;
        sig[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let malleated = format!("{input}.{}", b64::encode(&sig));
    assert_eq!(
        verify_with(&malleated, &k.verifying_key()).unwrap_err(),
        Error::InvalidSignature
    );
}

#[test]
fn small_order_ed25519_keys_are_refused() {
    // The identity point and a point of order 8 (from the ed25519 "weak keys" list).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let order8 = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];
    for x in [identity, order8] {
        let j = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x)});
        let jwk = parse_jwk(j.to_string().as_bytes()).unwrap();
        assert!(
            matches!(VerifyingKey::from_jwk(&jwk), Err(Error::KeyRejected(m)) if m.contains("small order")),
            "{x:?}"
        );
    }
}

#[test]
fn invalid_p256_points_are_refused() {
    let k = key(Algorithm::ES256).verifying_key();
    let mut j = serde_json::to_value(k.to_public_jwk().unwrap()).unwrap();
    let mut y = b64::decode(j["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    j["y"] = json!(b64::encode(&y));
    let jwk = parse_jwk(j.to_string().as_bytes()).unwrap();
    assert!(matches!(
        VerifyingKey::from_jwk(&jwk),
        Err(Error::KeyRejected(m)) if m.contains("not on the curve")
    ));
}

#[test]
fn rsa_signature_of_the_wrong_length_is_refused() {
    let k = key(Algorithm::RS256);
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    sig.insert(0, 0);
    let t = format!("{input}.{}", b64::encode(&sig));
    assert_eq!(
        verify_with(&t, &k.verifying_key()).unwrap_err(),
        Error::InvalidSignature
    );
}

// ---------------------------------------------------------------- base64url and segments

#[test]
fn padded_base64url_is_refused() {
    let k = key(Algorithm::HS256);
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_eq!(sig.len(), 43, "a 32-byte MAC needs one pad character");
    let padded = format!("{input}.{sig}=");
    assert_eq!(
        verify_with(&padded, &k.verifying_key()).unwrap_err(),
        Error::Base64("signature")
    );
    let (h, p) = input.split_once('.').unwrap();
    let t = format!("{h}.{p}=.{sig}");
    assert!(matches!(
        verify_with(&t, &k.verifying_key()),
        Err(Error::Base64("payload"))
    ));
}

#[test]
fn standard_alphabet_base64_is_refused() {
    let k = key(Algorithm::HS256);
    // Find a token whose signature uses '-' or '_', then re-spell it in standard base64.
    let mut found = false;
    for i in 0..200 {
        let mut c = claims();
        c["jti"] = json!(format!("jti-{i}"));
        let token = sign_json(&k, Some(TYP), &c);
        let (input, sig) = token.rsplit_once('.').unwrap();
        if !sig.contains(['-', '_']) {
            continue;
        }
        found = true;
        verify_with(&token, &k.verifying_key()).unwrap();
        let std_sig = sig.replace('-', "+").replace('_', "/");
        let t = format!("{input}.{std_sig}");
        assert_eq!(
            verify_with(&t, &k.verifying_key()).unwrap_err(),
            Error::Base64("signature")
        );
        break;
    }
    assert!(found);
    // whitespace and non-canonical trailing bits too
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    for bad in [format!("{input}.{sig} "), format!("{input}. {sig}")] {
        assert!(matches!(
            verify_with(&bad, &k.verifying_key()),
            Err(Error::Base64(_))
        ));
    }
    let last = sig.chars().last().unwrap();
    let idx = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .iter()
        .position(|&c| c == last as u8)
        .unwrap();
    // 43 chars encode 32 bytes: the last character's low 2 bits are padding bits.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let tweaked = char::from(alphabet[idx ^ 1]);
    let t = format!("{input}.{}{tweaked}", &sig[..sig.len() - 1]);
    assert_eq!(
        verify_with(&t, &k.verifying_key()).unwrap_err(),
        Error::Base64("signature")
    );
}

#[test]
fn wrong_segment_counts_are_refused() {
    let k = key(Algorithm::HS256);
    let token = sign_json(&k, Some(TYP), &claims());
    let (input, _) = token.rsplit_once('.').unwrap();
    for bad in [
        input.to_owned(),
        format!("{token}.AAAA"),
        format!("{token}."),
        String::new(),
        "..".to_owned(),
        format!(".{}", token.split_once('.').unwrap().1),
    ] {
        assert!(
            matches!(
                verify_with(&bad, &k.verifying_key()),
                Err(Error::Malformed(_))
            ),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- size and depth caps

#[test]
fn two_megabyte_token_is_refused_by_a_64k_cap_before_decoding() {
    let k = key(Algorithm::HS256);
    let mut c = claims();
    c["blob"] = json!("x".repeat(2 * 1024 * 1024));
    let token = sign_json(&k, Some(TYP), &c);
    assert!(token.len() > 2 * 1024 * 1024);
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .max_bytes(64 * 1024)
        .build()
        .unwrap();
    assert_eq!(
        verify::<Claims, _>(&token, &k.verifying_key(), &v, now()).unwrap_err(),
        Error::TokenTooLarge {
            len: token.len(),
            max: 64 * 1024
        }
    );
    // garbage of that size is refused the same way, without being looked at
    let garbage = "!".repeat(2 * 1024 * 1024);
    assert!(matches!(
        verify::<Claims, _>(&garbage, &k.verifying_key(), &v, now()),
        Err(Error::TokenTooLarge { .. })
    ));
    // and a policy cannot raise the cap past 1 MiB
    assert!(
        Validation::builder()
            .issuer(ISS)
            .audience(AUD)
            .max_bytes(2 * 1024 * 1024)
            .build()
            .is_err()
    );
}

#[test]
fn json_nested_5000_deep_is_refused_without_overflow() {
    let k = key(Algorithm::HS256);
    let deep = |open: &str, close: &str| format!("{}1{}", open.repeat(5000), close.repeat(5000));
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .max_bytes(64 * 1024)
        .build()
        .unwrap();
    // in the claims (signed, so it reaches the claims parser)
    for nested in [deep("[", "]"), deep(r#"{"a":"#, "}")] {
        let payload = format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":{nested}}}"#,
            NOW + 60
        );
        let token = sign_bytes(&k, None, payload.as_bytes());
        assert!(
            matches!(
                verify::<Claims, _>(&token, &k.verifying_key(), &v, now()),
                Err(Error::Json { part: "claims", ref detail }) if detail.contains("recursion")
            ),
            "{:?}",
            verify::<Claims, _>(&token, &k.verifying_key(), &v, now())
        );
    }
    // as the claims themselves
    let token = sign_bytes(&k, None, deep("[", "]").as_bytes());
    assert!(matches!(
        verify::<Claims, _>(&token, &k.verifying_key(), &v, now()),
        Err(Error::Json { part: "claims", .. })
    ));
    // in the header: in a member that is parsed (crit, jwk) it is refused; in an unknown
    // member it is skipped without recursion, and the token then fails on its own merits.
    for h in [
        format!(r#"{{"alg":"HS256","jwk":{}}}"#, deep(r#"{"a":"#, "}")),
        format!(r#"{{"alg":"HS256","crit":{}}}"#, deep("[", "]")),
    ] {
        let token = sign_raw(&k, &h, b"{}");
        let opts = DecodeOptions {
            max_bytes: 64 * 1024,
            understood_crit: &[],
        };
        assert!(matches!(
            jws::decode(&token, &opts),
            Err(Error::Json { part: "header", .. })
        ));
    }
    let h = format!(r#"{{"alg":"HS256","x":{}}}"#, deep("[", "]"));
    let token = sign_raw(&k, &h, b"{}");
    assert!(verify::<Claims, _>(&token, &k.verifying_key(), &v, now()).is_err());
    // in a key set
    let doc = format!(r#"{{"keys":[{}]}}"#, deep("[", "]"));
    assert!(matches!(
        Jwks::parse(doc.as_bytes(), &Default::default()),
        Err(Error::Json { part: "jwks", .. })
    ));
}

// ---------------------------------------------------------------- claims policy

fn token_with(k: &SigningKey, f: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    f(&mut c);
    sign_json(k, Some(TYP), &c)
}

#[test]
fn expired_tokens_are_refused_beyond_the_leeway() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    let t = token_with(&k, |c| c["exp"] = json!(NOW - 59));
    verify_with(&t, &vk).unwrap(); // within the default 60 s leeway
    // RFC 7519 4.1.4: now must be before exp (+ leeway), so exp + leeway == now is expired.
    let t = token_with(&k, |c| c["exp"] = json!(NOW - 60));
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::Expired {
            exp: NOW - 60,
            now: NOW,
            leeway: 60
        }
    );
    let strict = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .leeway(0)
        .build()
        .unwrap();
    let t = token_with(&k, |c| c["exp"] = json!(NOW - 1));
    assert!(matches!(
        verify::<Claims, _>(&t, &vk, &strict, now()),
        Err(Error::Expired { .. })
    ));
    // exp is required
    let t = token_with(&k, |c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::MissingClaim("exp")
    );
    // leeway is bounded
    assert!(matches!(
        Validation::builder()
            .issuer(ISS)
            .audience(AUD)
            .leeway(301)
            .build(),
        Err(Error::Policy(_))
    ));
}

#[test]
fn not_yet_valid_tokens_are_refused() {
    let k = key(Algorithm::EdDSA);
    let t = token_with(&k, |c| c["nbf"] = json!(NOW + 60));
    verify_with(&t, &k.verifying_key()).unwrap();
    let t = token_with(&k, |c| c["nbf"] = json!(NOW + 61));
    assert_eq!(
        verify_with(&t, &k.verifying_key()).unwrap_err(),
        Error::NotYetValid {
            nbf: NOW + 61,
            now: NOW
        }
    );
}

#[test]
fn iat_in_the_future_is_refused() {
    let k = key(Algorithm::EdDSA);
    let t = token_with(&k, |c| c["iat"] = json!(NOW + 61));
    assert_eq!(
        verify_with(&t, &k.verifying_key()).unwrap_err(),
        Error::IssuedInFuture {
            iat: NOW + 61,
            now: NOW
        }
    );
}

#[test]
fn wrong_audience_is_refused() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    for aud in [
        json!("https://other.example"),
        json!(["https://other.example", "https://third.example"]),
        json!([]),
        json!("https://api.example/"),
    ] {
        let t = token_with(&k, |c| c["aud"] = aud.clone());
        assert_eq!(
            verify_with(&t, &vk).unwrap_err(),
            Error::WrongAudience,
            "{aud}"
        );
    }
    let t = token_with(&k, |c| c["aud"] = json!(["https://other.example", AUD]));
    verify_with(&t, &vk).unwrap();
    let t = token_with(&k, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::MissingClaim("aud")
    );
    let t = token_with(&k, |c| c["aud"] = json!(42));
    assert!(matches!(
        verify_with(&t, &vk),
        Err(Error::InvalidClaim { claim: "aud", .. })
    ));
}

#[test]
fn wrong_issuer_is_refused() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    let t = token_with(&k, |c| c["iss"] = json!("https://issuer.example/"));
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::WrongIssuer("https://issuer.example/".into())
    );
    let t = token_with(&k, |c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::MissingClaim("iss")
    );
}

/// jsonwebtoken's CVE-2026-25537: a string `exp` treated as absent skips the expiry check.
#[test]
fn string_exp_is_an_error_not_an_absent_claim() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    for (claim, value) in [
        ("exp", json!((NOW - 1_000).to_string())),
        ("exp", json!(null)),
        ("exp", json!(-1)),
        ("exp", json!(true)),
        ("nbf", json!((NOW + 1_000).to_string())),
        ("nbf", json!(null)),
        ("iat", json!("now")),
    ] {
        let t = token_with(&k, |c| c[claim] = value.clone());
        match verify_with(&t, &vk).unwrap_err() {
            Error::InvalidClaim { claim: c, reason } => {
                assert_eq!(c, claim);
                assert!(reason.contains("NumericDate"));
            }
            other => panic!("{claim}={value}: {other:?}"),
        }
    }
    // a fractional NumericDate is a number, and is accepted (RFC 7519 section 2)
    let t = token_with(&k, |c| c["exp"] = json!((NOW + 10) as f64 + 0.5));
    verify_with(&t, &vk).unwrap();
    // string-typed claims must be strings
    let t = token_with(&k, |c| c["iss"] = json!(["https://issuer.example"]));
    assert!(matches!(
        verify_with(&t, &vk),
        Err(Error::InvalidClaim { claim: "iss", .. })
    ));
}

#[test]
fn duplicate_claims_are_refused() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    let base = format!(r#""iss":"{ISS}","aud":"{AUD}""#);
    for payload in [
        format!(r#"{{{base},"exp":{},"exp":{}}}"#, NOW - 1_000, NOW + 60),
        format!(r#"{{{base},"exp":{},"\u0065xp":{}}}"#, NOW + 60, NOW + 60),
        format!(
            r#"{{{base},"exp":{},"role":"user","role":"admin"}}"#,
            NOW + 60
        ),
        format!(r#"{{{base},"exp":{},"x":{{"a":1,"a":2}}}}"#, NOW + 60),
        format!(r#"{{{base},"iss":"{ISS}","exp":{}}}"#, NOW + 60),
    ] {
        let t = sign_bytes(&k, Some(TYP), payload.as_bytes());
        assert!(
            matches!(
                verify_with(&t, &vk),
                Err(Error::DuplicateMember { part: "claims", .. })
            ),
            "{payload}"
        );
    }
    // a payload that is not an object
    let t = sign_bytes(&k, Some(TYP), b"[1,2]");
    assert!(matches!(
        verify_with(&t, &vk),
        Err(Error::Json { part: "claims", .. })
    ));
}

#[test]
fn wrong_or_missing_typ_is_refused() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    let t = sign_json(&k, Some("JWT"), &claims());
    assert_eq!(
        verify_with(&t, &vk).unwrap_err(),
        Error::WrongType {
            expected: TYP.into(),
            found: Some("JWT".into())
        }
    );
    let t = sign_json(&k, None, &claims());
    assert!(matches!(
        verify_with(&t, &vk),
        Err(Error::WrongType { found: None, .. })
    ));
    // case-insensitive, optional application/ prefix (RFC 7515 section 4.1.9)
    let t = sign_json(&k, Some("application/AT+JWT"), &claims());
    verify_with(&t, &vk).unwrap();
    // a multi-byte character across byte 12 must not panic
    for typ in [
        "applicatio\u{e9}at+jwt",
        "aaaaaaaaaaa\u{e9}x",
        "\u{1F600}\u{1F600}\u{1F600}",
    ] {
        let t = sign_json(&k, Some(typ), &claims());
        assert!(matches!(verify_with(&t, &vk), Err(Error::WrongType { .. })));
    }
}

#[test]
fn lifetime_and_required_claims_are_enforced() {
    let k = key(Algorithm::EdDSA);
    let vk = k.verifying_key();
    let v = Validation::builder()
        .issuer(ISS)
        .audience(AUD)
        .max_lifetime(60)
        .require(handoff_core::claims::Claim::Sub)
        .build()
        .unwrap();
    let t = sign_json(&k, None, &claims());
    assert!(matches!(
        verify::<Claims, _>(&t, &vk, &v, now()),
        Err(Error::InvalidClaim { claim: "exp", .. })
    ));
    let t = token_with(&k, |c| {
        c["exp"] = json!(NOW + 30);
        c.as_object_mut().unwrap().remove("sub");
    });
    assert_eq!(
        verify::<Claims, _>(&t, &vk, &v, now()).unwrap_err(),
        Error::MissingClaim("sub")
    );
    // a policy without issuer or audience cannot be built
    assert!(Validation::builder().audience(AUD).build().is_err());
    assert!(Validation::builder().issuer(ISS).build().is_err());
}

// ---------------------------------------------------------------- keys

fn rsa_1024() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rng(), 1024).unwrap()
}

#[test]
fn rsa_1024_keys_are_refused_on_import_and_generation() {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    let sk = rsa_1024();
    let pk = sk.to_public_key();
    assert_eq!(pk.size() * 8, 1024);
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::KeyRejected(m)) => assert!(m.contains("1024 bits"), "{what}: {m}"),
        other => panic!("{what}: {other:?}"),
    };
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        refused(SigningKey::from_pem(&pem, alg).map(drop), "pkcs8 pem");
        let pem = sk.to_pkcs1_pem(LineEnding::LF).unwrap();
        refused(SigningKey::from_pem(&pem, alg).map(drop), "pkcs1 pem");
        let pem = pk.to_public_key_pem(LineEnding::LF).unwrap();
        refused(VerifyingKey::from_pem(&pem, alg).map(drop), "spki pem");
        let pem = pk.to_pkcs1_pem(LineEnding::LF).unwrap();
        refused(
            VerifyingKey::from_pem(&pem, alg).map(drop),
            "pkcs1 public pem",
        );
    }
    let be = |u: &rsa::BoxedUint| b64::encode(&u.to_be_bytes_trimmed_vartime());
    let public = json!({"kty": "RSA", "n": be(pk.n().as_ref()), "e": be(pk.e())});
    let jwk = parse_jwk(public.to_string().as_bytes()).unwrap();
    refused(VerifyingKey::from_jwk(&jwk).map(drop), "public jwk");
    let mut private = public.clone();
    private["d"] = json!(be(sk.d()));
    private["p"] = json!(be(&sk.primes()[0]));
    private["q"] = json!(be(&sk.primes()[1]));
    private["dp"] = json!(be(sk.dp().unwrap()));
    private["dq"] = json!(be(sk.dq().unwrap()));
    private["qi"] = json!(be(&sk.crt_coefficient().unwrap()));
    let jwk = parse_jwk(private.to_string().as_bytes()).unwrap();
    refused(SigningKey::from_jwk(&jwk).map(drop), "private jwk");
    // a key set skips it and says why
    let doc = json!({"keys": [public]}).to_string();
    let parsed = Jwks::parse(doc.as_bytes(), &Default::default()).unwrap();
    assert!(parsed.jwks.is_empty());
    assert!(parsed.skipped[0].reason.contains("1024 bits"));
    // generation refuses the size before doing any work
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        refused(
            SigningKey::generate_with_rsa_bits(alg, 1024, &mut rng()).map(drop),
            "generate",
        );
        assert!(SigningKey::generate_with_rsa_bits(alg, 8192, &mut rng()).is_err());
    }
}

#[test]
fn short_hmac_secrets_are_refused() {
    assert!(matches!(
        SigningKey::hs256([1u8; 31]),
        Err(Error::KeyRejected(_))
    ));
    assert!(VerifyingKey::hs256(Vec::new()).is_err());
    assert!(HmacSecret::new([0u8; 31]).is_err());
    let j = json!({"kty": "oct", "k": b64::encode(&[1u8; 16])});
    assert!(SigningKey::from_jwk(&parse_jwk(j.to_string().as_bytes()).unwrap()).is_err());
}

#[test]
fn jwk_algorithm_and_use_are_enforced() {
    let ed = key(Algorithm::EdDSA).verifying_key();
    let mut j = serde_json::to_value(ed.to_public_jwk().unwrap()).unwrap();
    j["alg"] = json!("ES256");
    assert!(VerifyingKey::from_jwk(&parse_jwk(j.to_string().as_bytes()).unwrap()).is_err());
    j["alg"] = json!("EdDSA");
    j["use"] = json!("enc");
    assert!(VerifyingKey::from_jwk(&parse_jwk(j.to_string().as_bytes()).unwrap()).is_err());
    // a public import never accepts private members or a symmetric key
    let sk = key(Algorithm::EdDSA);
    assert!(VerifyingKey::from_jwk(&sk.to_private_jwk()).is_err());
    assert!(VerifyingKey::from_jwk(&key(Algorithm::HS256).to_private_jwk()).is_err());
    // and a private import refuses a public-only JWK or mismatched halves
    assert!(SigningKey::from_jwk(&ed.to_public_jwk().unwrap()).is_err());
    let mut mixed = serde_json::to_value(sk.to_private_jwk()).unwrap();
    mixed["x"] = j["x"].clone();
    assert!(SigningKey::from_jwk(&parse_jwk(mixed.to_string().as_bytes()).unwrap()).is_err());
}

#[test]
fn debug_output_never_shows_secrets() {
    for alg in Algorithm::ALL {
        let k = key(alg).with_kid("dbg").unwrap();
        let jwk = serde_json::to_value(k.to_private_jwk()).unwrap();
        let secret = jwk
            .get("d")
            .or(jwk.get("k"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        for dbg in [format!("{k:?}"), format!("{:?}", k.verifying_key())] {
            assert!(!dbg.contains(&secret), "{dbg}");
            assert!(dbg.contains("dbg"), "{dbg}");
        }
        if alg == Algorithm::HS256 {
            let raw = b64::decode(&secret).unwrap();
            let s = HmacSecret::new(raw.clone()).unwrap();
            let dbg = format!("{s:?}");
            assert_eq!(dbg, "HmacSecret { .. }");
        }
    }
}

#[test]
fn hmac_secrets_compare_by_value() {
    let a = HmacSecret::new([1u8; 32]).unwrap();
    let b = HmacSecret::new([1u8; 32]).unwrap();
    let c = HmacSecret::new([2u8; 32]).unwrap();
    let d = HmacSecret::new([1u8; 33]).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    let tag = a.mac(b"m");
    assert!(a.verify_parts(&[b"m"], &tag));
    assert!(!a.verify_parts(&[b"m"], &tag[..31]));
    assert!(!c.verify_parts(&[b"m"], &tag));
}

#[test]
fn verification_time_is_taken_from_the_caller() {
    // The same token is valid or expired depending only on `now`.
    let k = key(Algorithm::EdDSA);
    let t = sign_json(&k, Some(TYP), &claims());
    let vk = k.verifying_key();
    verify::<Claims, _>(&t, &vk, &policy(), now()).unwrap();
    assert!(matches!(
        verify::<Claims, _>(&t, &vk, &policy(), UnixTime::from_secs(NOW + 361)),
        Err(Error::Expired { .. })
    ));
}
