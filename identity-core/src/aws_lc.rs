//! The aws-lc-rs backend (feature `aws-lc-rs`): ES256, RS256 and PS256 signing and
//! verification, and Ed25519 signing, on aws-lc, behind the same [`crate::SigningKey`]
//! and [`crate::VerifyingKey`].
//!
//! Keys are still imported, checked and exported by the RustCrypto code (so both backends
//! accept and refuse exactly the same keys, and JWK/PEM/thumbprints do not change); each
//! accepted key is then also loaded into aws-lc once, from its PKCS#8 or SPKI DER, and
//! aws-lc does the signature arithmetic. Ed25519 signing runs on aws-lc (about twice as
//! fast as ed25519-dalek here, and deterministic: the same signature bytes); Ed25519
//! verification stays on ed25519-dalek's `verify_strict` (as fast, and its rules are
//! the family's), and HS256 on RustCrypto, which is faster for HMAC with SHA extensions
//! (see `benches/RESULTS.md`).
//!
//! One difference is not about inputs: aws-lc draws ECDSA nonces, PSS salts and RSA
//! blinding from its own generator (seeded by the operating system), not from the `rng`
//! argument of [`crate::SigningKey::sign`]. aws-lc wipes key memory when it frees it.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, ParsedPublicKey};

use crate::{Algorithm, Error};

/// A private key loaded into aws-lc.
pub(crate) enum Signer {
    Ed25519(signature::Ed25519KeyPair),
    Es256(signature::EcdsaKeyPair),
    Rsa(signature::RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// A public key loaded into aws-lc.
#[derive(Clone)]
pub(crate) struct Verifier(ParsedPublicKey);

fn refused(what: &str) -> Error {
    Error::KeyRejected(format!(
        "aws-lc refused a {what} that the key checks accepted; please report this key"
    ))
}

impl Signer {
    /// Loads an Ed25519 key from its 32-byte seed, checked against its public key.
    pub(crate) fn ed25519(seed: &[u8; 32], public: &[u8; 32]) -> Result<Self, Error> {
        signature::Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map(Self::Ed25519)
            .map_err(|_| refused("Ed25519 private key"))
    }

    /// Loads a PKCS#8 private key for `alg` (ES256, RS256 or PS256).
    pub(crate) fn new(alg: Algorithm, pkcs8_der: &[u8]) -> Result<Self, Error> {
        match alg {
            Algorithm::ES256 => signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8_der,
            )
            .map(Self::Es256)
            .map_err(|_| refused("P-256 private key")),
            Algorithm::RS256 | Algorithm::PS256 => {
                let enc: &'static dyn signature::RsaEncoding = if alg == Algorithm::RS256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                signature::RsaKeyPair::from_pkcs8(pkcs8_der)
                    .map(|k| Self::Rsa(k, enc))
                    .map_err(|_| refused("RSA private key"))
            }
            other => Err(Error::KeyRejected(format!(
                "{other} keys are not loaded into aws-lc"
            ))),
        }
    }

    /// Signs `msg`: ECDSA in raw `r || s` form, RSA of the modulus length.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match self {
            Self::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Self::Es256(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::InvalidSignature),
            Self::Rsa(k, enc) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(*enc, &rng, msg, &mut out)
                    .map_err(|_| Error::InvalidSignature)?;
                Ok(out)
            }
        }
    }
}

impl Verifier {
    /// Loads an SPKI public key for `alg` (ES256, RS256 or PS256).
    pub(crate) fn new(alg: Algorithm, spki_der: &[u8]) -> Result<Self, Error> {
        let a: &'static dyn signature::VerificationAlgorithm = match alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            other => {
                return Err(Error::KeyRejected(format!(
                    "{other} keys are not loaded into aws-lc"
                )));
            }
        };
        ParsedPublicKey::new(a, spki_der)
            .map(Self)
            .map_err(|_| refused("public key"))
    }

    /// Whether `sig` is a valid signature of `msg`.
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.0.verify_sig(msg, sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    //! Both backends live in this build: every signature made by one verifies on the
    //! other, and both give the same verdict on every mutated signature.
    use serde_json::Value;

    use crate::keys::parse_jwk;
    use crate::{Algorithm, SigningKey, VerifyingKey};

    fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    /// The RFC 7515 A.2 (RSA-2048) and A.3 (P-256) private keys.
    fn key(alg: Algorithm) -> SigningKey {
        let v: Value = serde_json::from_str(include_str!("../tests/data/rfc-jose.json")).unwrap();
        let name = if alg == Algorithm::ES256 {
            "rfc7515-a3-es256"
        } else {
            "rfc7515-a2-rs256"
        };
        let case = v["jws"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let mut jwk = case["key"].clone();
        jwk["alg"] = alg.as_str().into();
        SigningKey::from_jwk(&parse_jwk(jwk.to_string().as_bytes()).unwrap()).unwrap()
    }

    /// The order of the P-256 group, big-endian.
    const P256_N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// `a - b` on 32-byte big-endian numbers (`a >= b`).
    fn sub(a: &[u8; 32], b: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            out[i] = d as u8;
        }
        out
    }

    /// Signatures to try on both backends: the valid one and its mutations.
    fn mutations(alg: Algorithm, sig: &[u8], modulus: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![("valid".to_owned(), sig.to_vec())];
        for i in (0..sig.len()).step_by(7) {
            let mut s = sig.to_vec();
            s[i] ^= 1 << (i % 8);
            out.push((format!("bit flipped in byte {i}"), s));
        }
        out.push(("empty".into(), Vec::new()));
        out.push(("one byte short".into(), sig[..sig.len() - 1].to_vec()));
        out.push(("one byte long".into(), [sig, &[0]].concat()));
        out.push(("leading zero added".into(), [&[0], sig].concat()));
        out.push(("all zero".into(), vec![0; sig.len()]));
        out.push(("all ones".into(), vec![0xff; sig.len()]));
        if alg == Algorithm::ES256 {
            let (r, s) = sig.split_at(32);
            out.push(("high s (n - s)".into(), [r, &sub(&P256_N, s)].concat()));
            out.push(("r = 0".into(), [&[0; 32], s].concat()));
            out.push(("s = 0".into(), [r, &[0; 32]].concat()));
            out.push(("r = n".into(), [&P256_N[..], s].concat()));
            out.push(("s = n".into(), [r, &P256_N[..]].concat()));
            out.push((
                "r = s = n + small".into(),
                [&sub(&[0xff; 32], &[0; 32])[..], &[0xff; 32]].concat(),
            ));
        } else {
            out.push(("signature = modulus".into(), modulus.to_vec()));
            let mut one = vec![0; sig.len()];
            one[sig.len() - 1] = 1;
            out.push(("signature = 1".into(), one));
        }
        out
    }

    fn modulus(key: &VerifyingKey) -> Vec<u8> {
        let jwk = serde_json::to_value(key.to_public_jwk().unwrap()).unwrap();
        jwk["n"]
            .as_str()
            .map(|n| crate::b64::decode(n).unwrap())
            .unwrap_or_default()
    }

    #[test]
    fn signatures_cross_verify_and_both_backends_agree_on_every_mutation() {
        let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UifQ";
        for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256] {
            let sk = key(alg);
            let vk = sk.verifying_key();
            assert!(
                vk.accel.is_some() && sk.accel.is_some(),
                "{alg} is on aws-lc"
            );
            // A verifying key imported from the public JWK is on aws-lc too.
            let imported = VerifyingKey::from_jwk(&vk.to_public_jwk().unwrap()).unwrap();
            assert!(imported.accel.is_some());
            let by_aws = sk.sign(msg, &mut rng()).unwrap();
            let by_rc = sk.sign_rust_crypto(msg, &mut rng()).unwrap();
            if alg == Algorithm::RS256 {
                // PKCS#1 v1.5 is deterministic: the two backends write the same bytes.
                assert_eq!(by_aws, by_rc);
            }
            let n = modulus(&vk);
            let mut refused = 0;
            for (made_by, sig) in [("aws-lc", &by_aws), ("RustCrypto", &by_rc)] {
                // Cross-verification: each backend accepts the other's signature.
                assert!(
                    vk.verify(msg, sig).is_ok(),
                    "{alg}: aws-lc refused {made_by}'s"
                );
                assert!(
                    vk.verify_rust_crypto(msg, sig).is_ok(),
                    "{alg}: RustCrypto refused {made_by}'s"
                );
                for (what, m) in mutations(alg, sig, &n) {
                    for key in [&vk, &imported] {
                        let aws = key.verify(msg, &m).is_ok();
                        let rc = key.verify_rust_crypto(msg, &m).is_ok();
                        assert_eq!(
                            aws, rc,
                            "{alg} {made_by} {what}: aws-lc {aws}, RustCrypto {rc}"
                        );
                        refused += usize::from(!aws);
                    }
                    // Another message: both refuse.
                    assert!(
                        vk.verify(b"other", &m).is_err()
                            && vk.verify_rust_crypto(b"other", &m).is_err()
                    );
                }
            }
            assert!(
                refused > 20,
                "{alg}: the mutations were refused ({refused})"
            );
        }
    }

    #[test]
    fn the_rfc_7515_a3_es256_vector_verifies_on_aws_lc() {
        let sk = key(Algorithm::ES256);
        let v: Value = serde_json::from_str(include_str!("../tests/data/rfc-jose.json")).unwrap();
        let compact = v["jws"][2]["compact"].as_str().unwrap();
        let (input, sig) = compact.rsplit_once('.').unwrap();
        let sig = crate::b64::decode(sig).unwrap();
        let vk = sk.verifying_key();
        assert!(vk.accel.is_some());
        assert!(vk.verify(input.as_bytes(), &sig).is_ok());
        assert!(vk.verify(&input.as_bytes()[1..], &sig).is_err());
    }

    #[test]
    fn hs256_stays_on_rust_crypto_and_eddsa_verifies_there() {
        let sk = SigningKey::generate(Algorithm::HS256, &mut rng()).unwrap();
        assert!(sk.accel.is_none() && sk.verifying_key().accel.is_none());
        let sk = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
        assert!(sk.accel.is_some(), "Ed25519 signs on aws-lc");
        assert!(
            sk.verifying_key().accel.is_none(),
            "Ed25519 verifies on ed25519-dalek"
        );
    }

    /// RFC 8037 A.4 (the RFC 8032 test 1 key): aws-lc writes exactly the published
    /// signature, and on random keys and messages both backends write the same bytes
    /// (Ed25519 is deterministic).
    #[test]
    fn ed25519_signatures_are_the_same_bytes_on_both_backends() {
        let v: Value = serde_json::from_str(include_str!("../tests/data/rfc-jose.json")).unwrap();
        let case = v["jws"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "rfc8037-a4-ed25519")
            .unwrap();
        let sk =
            SigningKey::from_jwk(&parse_jwk(case["key"].to_string().as_bytes()).unwrap()).unwrap();
        assert!(sk.accel.is_some());
        let compact = case["compact"].as_str().unwrap();
        let (input, sig) = compact.rsplit_once('.').unwrap();
        let by_aws = sk.sign(input.as_bytes(), &mut rng()).unwrap();
        assert_eq!(crate::b64::encode(&by_aws), sig);
        for i in 0..32 {
            let sk = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
            let msg = vec![i as u8; i * 37];
            let aws = sk.sign(&msg, &mut rng()).unwrap();
            assert_eq!(aws, sk.sign_rust_crypto(&msg, &mut rng()).unwrap());
            assert!(sk.verifying_key().verify(&msg, &aws).is_ok());
        }
    }
}
