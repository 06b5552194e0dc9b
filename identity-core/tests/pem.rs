//! PEM import as operators paste it: environment variables with literal `\n`, CRLF,
//! quotes, indentation, one-line bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use handoff_core::{Algorithm, Error, SigningKey, VerifyingKey};

fn variants(pem: &str) -> Vec<(&'static str, String)> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let first = pem.lines().next().unwrap();
    let last = pem.lines().last().unwrap();
    vec![
        ("as is", pem.to_owned()),
        ("literal \\n", pem.replace('\n', "\\n")),
        ("literal \\r\\n", pem.replace('\n', "\\r\\n")),
        (
            "literal \\n, quoted",
            format!("\"{}\"", pem.replace('\n', "\\n")),
        ),
        ("single quotes", format!("'{pem}'")),
        ("CRLF", pem.replace('\n', "\r\n")),
        (
            "indented",
            pem.lines().map(|l| format!("    {l}\n")).collect(),
        ),
        ("unwrapped body", format!("{first}\n{body}\n{last}\n")),
        ("spaces for newlines", pem.trim_end().replace('\n', " ")),
        ("no final newline", pem.trim_end().to_owned()),
        ("surrounding text", format!("key follows:\n{pem}\nend")),
    ]
}

#[test]
fn private_pem_is_accepted_as_pasted_into_an_environment_variable() {
    for alg in Algorithm::ALL.into_iter().filter(|a| a.is_asymmetric()) {
        let key = key(alg);
        let pem = key.to_pkcs8_pem().unwrap();
        for (name, text) in variants(&pem) {
            let back =
                SigningKey::from_pem(&text, alg).unwrap_or_else(|e| panic!("{alg} {name}: {e}"));
            assert_eq!(back.verifying_key(), key.verifying_key(), "{alg} {name}");
        }
    }
}

#[test]
fn public_pem_is_accepted_as_pasted_into_an_environment_variable() {
    for alg in Algorithm::ALL.into_iter().filter(|a| a.is_asymmetric()) {
        let key = key(alg).verifying_key();
        let pem = key.to_public_key_pem().unwrap();
        for (name, text) in variants(&pem) {
            let back =
                VerifyingKey::from_pem(&text, alg).unwrap_or_else(|e| panic!("{alg} {name}: {e}"));
            assert_eq!(back, key, "{alg} {name}");
        }
    }
}

#[test]
fn pkcs1_and_sec1_forms_are_accepted() {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{DecodePrivateKey, LineEnding};
    let key = key(Algorithm::RS256);
    let pkcs8 = key.to_pkcs8_pem().unwrap();
    let sk = rsa::RsaPrivateKey::from_pkcs8_pem(&pkcs8).unwrap();
    let pkcs1 = sk.to_pkcs1_pem(LineEnding::CRLF).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let back = SigningKey::from_pem(&pkcs1.replace("\r\n", "\\n"), Algorithm::RS256).unwrap();
    assert_eq!(back.verifying_key(), key.verifying_key());
    let public = sk.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
    assert_eq!(
        VerifyingKey::from_pem(&public, Algorithm::RS256).unwrap(),
        key.verifying_key()
    );

    let ec = SigningKey::generate(Algorithm::ES256, &mut rng()).unwrap();
    let pkcs8 = ec.to_pkcs8_pem().unwrap();
    let secret = p256::SecretKey::from_pkcs8_pem(&pkcs8).unwrap();
    let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let back = SigningKey::from_pem(&sec1.replace('\n', "\\n"), Algorithm::ES256).unwrap();
    assert_eq!(back.verifying_key(), ec.verifying_key());
}

#[test]
fn malformed_or_mismatched_pem_is_refused_with_a_reason() {
    let ed = key(Algorithm::EdDSA);
    let pem = ed.to_pkcs8_pem().unwrap();
    let rejected = |r: Result<SigningKey, Error>| match r {
        Err(Error::KeyRejected(m)) => m,
        other => panic!("{other:?}"),
    };
    // a key of another type
    assert!(rejected(SigningKey::from_pem(&pem, Algorithm::ES256)).contains("P-256"));
    assert!(rejected(SigningKey::from_pem(&pem, Algorithm::RS256)).contains("RSA"));
    assert!(rejected(SigningKey::from_pem(&pem, Algorithm::HS256)).contains("HS256"));
    // not PEM at all, unclosed, mismatched END label, corrupted body, oversize
    assert!(rejected(SigningKey::from_pem("hello", Algorithm::EdDSA)).contains("BEGIN"));
    let unclosed = pem.replace("-----END PRIVATE KEY-----", "");
    assert!(rejected(SigningKey::from_pem(&unclosed, Algorithm::EdDSA)).contains("END"));
    let mislabeled = pem.replace("-----END PRIVATE KEY-----", "-----END PUBLIC KEY-----");
    assert!(rejected(SigningKey::from_pem(&mislabeled, Algorithm::EdDSA)).contains("END"));
    let corrupted = pem.replacen("-----\n", "-----\nA!", 1);
    assert!(corrupted.contains("A!"));
    rejected(SigningKey::from_pem(&corrupted, Algorithm::EdDSA));
    let truncated = pem.replacen("-----\n", "-----\nAAAA", 1);
    rejected(SigningKey::from_pem(&truncated, Algorithm::EdDSA));
    let huge = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        "A".repeat(70_000)
    );
    assert!(rejected(SigningKey::from_pem(&huge, Algorithm::EdDSA)).contains("bytes"));
    // a public key where a private one is expected, and the reverse
    let public = ed.verifying_key().to_public_key_pem().unwrap();
    rejected(SigningKey::from_pem(&public, Algorithm::EdDSA));
    assert!(VerifyingKey::from_pem(&pem, Algorithm::EdDSA).is_err());
    assert!(VerifyingKey::from_pem(&public, Algorithm::ES256).is_err());
}
