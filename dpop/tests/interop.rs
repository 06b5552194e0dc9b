//! Interop with independent peers from npm (interop/node_modules, installed by `.ci/run`):
//! proofs made by panva's `dpop` verify here; proofs made here verify in panva's `jose`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use handoff_core::Algorithm;
use handoff_core::replay::InMemoryReplayLog;
use handoff_dpop::{DpopKey, DpopRequest, DpopVerifier, Error};
use serde_json::{Value, json};

/// The npm peers, or a loud skip (a failure under CI).
fn interop_dir() -> Option<PathBuf> {
    handoff_test_support::need_interop(
        "handoff-dpop: interop with panva's dpop and jose",
        &["jose", "dpop"],
    )
}

fn node(dir: &PathBuf, script: &str, stdin: Option<&str>) -> Value {
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be on PATH for the interop tests");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn proofs_from_panva_dpop_verify_here() {
    let Some(dir) = interop_dir() else { return };
    let out = node(&dir, "dpop_panva_proofs.mjs", None);
    let now = t(out["now"].as_u64().unwrap());
    let verifier = DpopVerifier::builder()
        .algorithms(&[
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ])
        .build()
        .unwrap();
    let log = InMemoryReplayLog::new(100);
    let mut verified = 0;
    let mut with_query_and_fragment = 0;
    for p in out["proofs"].as_array().unwrap() {
        let alg = p["alg"].as_str().unwrap();
        let proof = p["proof"].as_str().unwrap();
        let htm = p["htm"].as_str().unwrap();
        let htu = p["htu"].as_str().unwrap();
        let jkt = p["jkt"].as_str().unwrap();
        // The server's own view of the URI: configured origin + path (no query).
        let path_start = htu.find("://").unwrap() + 3;
        let path = &htu[path_start + htu[path_start..].find('/').unwrap()..];
        let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
        let origin = if htu.contains("as.example.com") {
            "https://as.example.com"
        } else {
            "https://rs.example.com"
        };
        let uri = format!("{origin}{path}");
        let headers = [proof];
        let mut req = DpopRequest::new(&headers, htm, &uri).bound_to(jkt);
        if let Some(at) = p["access_token"].as_str() {
            req = req.with_access_token(at);
        }
        let result = verifier.verify(&req, now);
        let proof = verifier
            .confirm(
                result.unwrap_or_else(|e| panic!("{alg} {htu}: {e}")),
                &log,
                now,
            )
            .unwrap();
        assert_eq!(
            proof.jkt(),
            jkt,
            "thumbprints agree with panva's calculateThumbprint"
        );
        // panva's dpop writes the fully-specified `alg: "Ed25519"` (RFC 9864), which
        // identity-core reads as its Ed25519-only EdDSA.
        let expected_alg = if alg == "Ed25519" { "EdDSA" } else { alg };
        assert_eq!(proof.algorithm().as_str(), expected_alg);
        if htu.contains('?') && htu.contains('#') {
            with_query_and_fragment += 1;
            assert_eq!(proof.htu(), uri);
        }
        verified += 1;
        // The same proof on another path is refused.
        let wrong = format!("{origin}/elsewhere");
        let mut req = DpopRequest::new(&headers, htm, &wrong);
        if let Some(at) = p["access_token"].as_str() {
            req = req.with_access_token(at);
        }
        assert!(matches!(
            verifier.verify(&req, now),
            Err(Error::UriMismatch { .. })
        ));
    }
    assert_eq!(
        verified, 8,
        "ES256, Ed25519, RS256 and PS256, two proofs each"
    );
    assert_eq!(with_query_and_fragment, 4);
}

#[test]
fn proofs_made_here_verify_in_panva_jose() {
    let Some(dir) = interop_dir() else { return };
    let mut cases = Vec::new();
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let key = DpopKey::generate(alg, &mut rng()).unwrap();
        let (htm, htu, at) = (
            "GET",
            "https://rs.example.com/api/items",
            Some("access-token-1"),
        );
        let p = key
            .proof(
                htm,
                &format!("{htu}?page=3#top"),
                t(NOW),
                &mut rng(),
                Some("nonce-1"),
                at,
            )
            .unwrap();
        cases.push(json!({"proof": p, "htm": htm, "htu": htu, "access_token": at, "jkt": key.jkt(), "now": NOW}));
        let p = key
            .proof(
                "POST",
                "https://as.example.com/token",
                t(NOW),
                &mut rng(),
                None,
                None,
            )
            .unwrap();
        cases.push(json!({"proof": p, "htm": "POST", "htu": "https://as.example.com/token", "access_token": null, "jkt": key.jkt(), "now": NOW}));
    }
    // Two negative controls: the peer must be able to say no.
    let key = DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let p = key
        .proof(
            "GET",
            "https://rs.example.com/x",
            t(NOW),
            &mut rng(),
            None,
            None,
        )
        .unwrap();
    let mut tampered: Vec<&str> = p.split('.').collect();
    let forged = handoff_core::b64::encode(
        br#"{"jti":"x","htm":"GET","htu":"https://rs.example.com/x","iat":1700000000}"#,
    );
    tampered[1] = &forged;
    cases.push(json!({"proof": tampered.join("."), "htm": "GET", "htu": "https://rs.example.com/x", "access_token": null, "jkt": key.jkt(), "now": NOW}));
    cases.push(json!({"proof": p, "htm": "GET", "htu": "https://rs.example.com/x", "access_token": null, "jkt": key.jkt(), "now": NOW + 3600}));

    let out = node(
        &dir,
        "dpop_jose_verify.mjs",
        Some(&json!({"cases": cases}).to_string()),
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    for (i, r) in results[..8].iter().enumerate() {
        assert_eq!(r["ok"], true, "case {i}: {}", r["error"]);
    }
    assert_eq!(results[8]["ok"], false, "tampered proof accepted by jose");
    assert!(
        results[8]["error"]
            .as_str()
            .unwrap()
            .contains("signature verification failed")
    );
    assert_eq!(results[9]["ok"], false, "stale proof accepted by jose");
    assert!(
        results[9]["error"]
            .as_str()
            .unwrap()
            .contains("too far in the past")
    );
}
