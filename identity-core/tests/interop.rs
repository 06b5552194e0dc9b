//! Interop with panva's `jose` (Node): tokens it signs verify here, tokens signed here
//! verify there, and both sides compute the same RFC 7638 thumbprints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use handoff_core::keys::parse_jwk;
use handoff_core::{Algorithm, Jwks, VerifyingKey, b64, verify};
use serde_json::{Value, json};

/// The npm peers, or a loud skip (a failure under CI).
fn interop_dir() -> Option<PathBuf> {
    handoff_test_support::need_interop("handoff-core: interop with panva's jose", &["jose"])
}

fn node(dir: &Path, arg: &str, stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(dir.join("core_jose.mjs"))
        .arg(arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node on PATH");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() || !text.is_empty(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tokens_signed_by_jose_verify_here() {
    let Some(dir) = interop_dir() else { return };
    let (ok, text) = node(&dir, "mint", None);
    assert!(ok, "{text}");
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 5);
    let mut public = Vec::new();
    for c in &cases {
        let alg: Algorithm = c["alg"].as_str().unwrap().parse().unwrap();
        let token = c["token"].as_str().unwrap();
        let key = if alg == Algorithm::HS256 {
            let k = b64::decode(c["jwk"]["k"].as_str().unwrap()).unwrap();
            VerifyingKey::hs256(k).unwrap()
        } else {
            let k = VerifyingKey::from_jwk(&parse_jwk(c["jwk"].to_string().as_bytes()).unwrap())
                .unwrap();
            assert_eq!(
                k.thumbprint().to_base64url(),
                c["thumbprint"].as_str().unwrap(),
                "{alg} thumbprint"
            );
            public.push(k.clone());
            k
        };
        assert_eq!(key.algorithm(), alg);
        let v = verify::<Value, _>(token, &key, &policy(), now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.custom()["scope"], "read");
        // and through a key set, selected by kid and algorithm
        if alg.is_asymmetric() {
            let set = Jwks::from_keys(public.clone()).unwrap();
            verify::<Value, _>(token, &set, &policy(), now()).unwrap();
        }
        // a token of another algorithm from the same peer is refused by this key
        let other = &cases[(cases.iter().position(|x| x == c).unwrap() + 1) % cases.len()];
        assert!(
            verify::<Value, _>(other["token"].as_str().unwrap(), &key, &policy(), now()).is_err()
        );
    }
}

#[test]
fn tokens_signed_here_verify_with_jose() {
    let Some(dir) = interop_dir() else { return };
    let mut cases = Vec::new();
    for alg in Algorithm::ALL {
        let k = key(alg).with_kid(format!("rust-{alg}")).unwrap();
        let token = sign_json(&k, Some(TYP), &claims());
        let (jwk, thumbprint) = if alg == Algorithm::HS256 {
            (
                serde_json::to_value(k.to_private_jwk()).unwrap(),
                Value::Null,
            )
        } else {
            let vk = k.verifying_key();
            (
                serde_json::to_value(vk.to_public_jwk().unwrap()).unwrap(),
                json!(vk.thumbprint().to_base64url()),
            )
        };
        cases.push(
            json!({"alg": alg.as_str(), "jwk": jwk, "token": token, "thumbprint": thumbprint}),
        );
    }
    // A tampered token must fail on the other side too (the peer is really checking).
    let mut tampered = cases[0].clone();
    let t = tampered["token"].as_str().unwrap().to_owned();
    let (input, _) = t.rsplit_once('.').unwrap();
    tampered["token"] = json!(format!("{input}.{}", b64::encode(&[0u8; 64])));
    let input = json!({"now": NOW, "iss": ISS, "aud": AUD, "typ": TYP, "cases": cases});
    let (ok, text) = node(&dir, "verify", Some(&input.to_string()));
    assert!(ok, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l["verified"] == true && l["thumbprint"] == true),
        "{text}"
    );

    let input = json!({"now": NOW, "iss": ISS, "aud": AUD, "typ": TYP, "cases": [tampered]});
    let (ok, text) = node(&dir, "verify", Some(&input.to_string()));
    assert!(!ok, "jose accepted a forged signature: {text}");
}
