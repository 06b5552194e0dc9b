//! Secrets at rest: passphrase-encrypted PKCS#8 (feature `encrypted-keys`).
//!
//! Signing keys and HMAC secrets are written as PEM `ENCRYPTED PRIVATE KEY` documents
//! (RFC 5958 `EncryptedPrivateKeyInfo`) with PBES2 (RFC 8018): scrypt (N = 2^14, r = 8,
//! p = 1, a 16-byte random salt, OpenSSL's own defaults) and AES-256-CBC with a random IV.
//! OpenSSL reads them (`openssl pkey -in key.pem -passin env:VAR`) and writes them
//! (`openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt`, or `openssl genpkey ... -aes-256-cbc`,
//! which uses PBKDF2-HMAC-SHA256); both key derivations are read.
//!
//! The key derivation's cost comes from the file, so it is bounded before any work: scrypt
//! at most 256 MiB of memory and `p` at most 16, PBKDF2 at most 10 million iterations.
//! A wrong passphrase is [`EncryptedKeyError::WrongPassphrase`]; a damaged file is an
//! error that says what is wrong, never a panic.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use handoff_core::encrypted::{Passphrase, decrypt_signing_key, encrypt_signing_key};
//! use handoff_core::{Algorithm, SigningKey};
//!
//! let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let key = SigningKey::generate(Algorithm::EdDSA, &mut rng)?;
//! let pass = Passphrase::new("correct horse battery staple")?;
//! let pem = encrypt_signing_key(&key, &pass, &mut rng)?;
//! assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
//! let back = decrypt_signing_key(&pem, &pass, None)?;
//! assert_eq!(back.verifying_key().thumbprint(), key.verifying_key().thumbprint());
//! let wrong = Passphrase::new("wrong")?;
//! assert!(decrypt_signing_key(&pem, &wrong, None).is_err());
//! # Ok(())
//! # }
//! ```

use core::fmt;

use pkcs8::der::asn1::{AnyRef, OctetStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Prf};
use pkcs8::pkcs5::{EncryptionScheme, scrypt};
use pkcs8::{
    AlgorithmIdentifierRef, EncryptedPrivateKeyInfoRef, LineEnding, ObjectIdentifier,
    PrivateKeyInfoRef, SecretDocument,
};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::{Algorithm, HmacSecret, SigningKey};

/// PEM label of an encrypted PKCS#8 document.
pub const ENCRYPTED_PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// Largest encrypted PEM accepted, in bytes (an encrypted RSA-4096 key is about 3.4 KiB).
pub const MAX_ENCRYPTED_PEM_BYTES: usize = 64 * 1024;
/// Longest passphrase accepted, in bytes.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;
/// Most memory a file may ask scrypt for (`128 * r * N`), in bytes.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Largest scrypt `p` accepted.
pub const MAX_SCRYPT_P: u16 = 16;
/// Largest PBKDF2 iteration count accepted.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// scrypt cost of what this module writes: log2(N) = 14, r = 8, p = 1 (16 MiB; OpenSSL's
/// defaults, within its 32 MiB limit).
const WRITE_LOG_N: u8 = 14;
const WRITE_R: u32 = 8;
const WRITE_P: u32 = 1;

/// OID of Ed25519 keys (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// OID of elliptic-curve keys (`id-ecPublicKey`, RFC 5480).
const EC_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// OID of RSA keys (`rsaEncryption`).
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// OID of `hmacWithSHA256` (RFC 8018), naming an HMAC-SHA256 secret in a PKCS#8 document.
pub const HMAC_SHA256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");

/// What went wrong writing or reading an encrypted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedKeyError {
    /// The passphrase does not open the file (or the encrypted bytes were altered).
    #[error(
        "wrong passphrase: it does not decrypt this key (or the encrypted bytes were altered); check the passphrase"
    )]
    WrongPassphrase,
    /// The passphrase is empty or too long.
    #[error("invalid passphrase: {0}")]
    Passphrase(&'static str),
    /// The text is not a well-formed encrypted PKCS#8 PEM document.
    #[error("not an encrypted PKCS#8 key: {0}")]
    Malformed(&'static str),
    /// The document uses an encryption this module does not read.
    #[error(
        "unsupported key encryption: {0}; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc -scrypt`"
    )]
    Unsupported(&'static str),
    /// The key derivation asks for more work than allowed.
    #[error("key-derivation cost over the limit: {0}; re-encrypt the key with default settings")]
    CostTooHigh(String),
    /// The decrypted key is not a key this family uses.
    #[error("the decrypted key is not usable: {0}")]
    Key(String),
    /// Encryption itself failed (the random generator or the cipher).
    #[error("encryption failed: {0}")]
    Encrypt(&'static str),
}

/// A passphrase: 1 to 1 024 bytes, zeroized on drop, never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Wraps a passphrase (taken as is: no trimming).
    ///
    /// # Errors
    /// [`EncryptedKeyError::Passphrase`] when empty or over [`MAX_PASSPHRASE_BYTES`].
    pub fn new(text: impl Into<Vec<u8>>) -> Result<Self, EncryptedKeyError> {
        let bytes = Zeroizing::new(text.into());
        if bytes.is_empty() {
            return Err(EncryptedKeyError::Passphrase(
                "it is empty; use a long passphrase",
            ));
        }
        if bytes.len() > MAX_PASSPHRASE_BYTES {
            return Err(EncryptedKeyError::Passphrase(
                "it is over 1024 bytes; use a shorter one",
            ));
        }
        Ok(Self(bytes))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passphrase").finish_non_exhaustive()
    }
}

/// Whether `text` looks like an encrypted PKCS#8 PEM document (by its label only).
#[must_use]
pub fn is_encrypted_pem(text: &str) -> bool {
    text.trim_start()
        .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Encrypts a PKCS#8 `PrivateKeyInfo` (DER) under `passphrase`; returns the PEM text. A
/// version 2 document's public key is dropped (written as version 1, which every reader
/// takes).
///
/// # Errors
/// [`EncryptedKeyError::Malformed`] when `der` is not a `PrivateKeyInfo`,
/// [`EncryptedKeyError::Encrypt`] when encryption fails.
pub fn encrypt_pkcs8_der<R: CryptoRng + ?Sized>(
    der: &[u8],
    passphrase: &Passphrase,
    rng: &mut R,
) -> Result<Zeroizing<String>, EncryptedKeyError> {
    let mut info = PrivateKeyInfoRef::from_der(der)
        .map_err(|_| EncryptedKeyError::Malformed("the key to encrypt is not PKCS#8 DER"))?;
    // Written as PKCS#8 v1 (no embedded public key): OpenSSL 3.0 refuses v2
    // (`OneAsymmetricKey`) documents, and the public key is derived from the private one.
    info.public_key = None;
    let mut salt = Zeroizing::new([0u8; 16]);
    let mut iv = [0u8; 16];
    rng.fill_bytes(salt.as_mut_slice());
    rng.fill_bytes(&mut iv);
    let params = scrypt::Params::new(WRITE_LOG_N, WRITE_R, WRITE_P)
        .map_err(|_| EncryptedKeyError::Encrypt("scrypt parameters refused"))?;
    let pbes2 = pbes2::Parameters::generate_scrypt_aes256cbc(params, salt.as_slice(), iv)
        .map_err(|_| EncryptedKeyError::Encrypt("PBES2 parameters refused"))?;
    let doc = info
        .encrypt_with_params(pbes2, passphrase.bytes())
        .map_err(|_| EncryptedKeyError::Encrypt("PBES2 encryption failed"))?;
    doc.to_pem(ENCRYPTED_PEM_LABEL, LineEnding::LF)
        .map_err(|_| EncryptedKeyError::Encrypt("PEM encoding failed"))
}

/// Decrypts an encrypted PKCS#8 PEM document; returns the `PrivateKeyInfo` DER (zeroized
/// on drop). The key-derivation cost is checked against the limits first.
///
/// # Errors
/// [`EncryptedKeyError::WrongPassphrase`], or what is wrong with the document.
pub fn decrypt_pkcs8_der(
    pem: &str,
    passphrase: &Passphrase,
) -> Result<SecretDocument, EncryptedKeyError> {
    if pem.len() > MAX_ENCRYPTED_PEM_BYTES {
        return Err(EncryptedKeyError::Malformed(
            "over 64 KiB; an encrypted key is a few KiB at most",
        ));
    }
    let (label, doc) = SecretDocument::from_pem(pem.trim()).map_err(|_| {
        EncryptedKeyError::Malformed("not a PEM document (or its base64 or DER is damaged)")
    })?;
    if label != ENCRYPTED_PEM_LABEL {
        return Err(EncryptedKeyError::Malformed(
            "the PEM label is not ENCRYPTED PRIVATE KEY (is this key encrypted?)",
        ));
    }
    let info = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes())
        .map_err(|_| EncryptedKeyError::Malformed("the DER is not an EncryptedPrivateKeyInfo"))?;
    check_scheme(&info.encryption_algorithm)?;
    let plain = info
        .decrypt(passphrase.bytes())
        .map_err(|_| EncryptedKeyError::WrongPassphrase)?;
    // A wrong passphrase that happens to leave valid padding decrypts to noise.
    PrivateKeyInfoRef::from_der(plain.as_bytes())
        .map_err(|_| EncryptedKeyError::WrongPassphrase)?;
    Ok(plain)
}

fn check_scheme(scheme: &EncryptionScheme) -> Result<(), EncryptedKeyError> {
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Err(EncryptedKeyError::Unsupported(
            "PBES1 (DES, RC2, SHA-1 or MD5 based)",
        ));
    };
    match &params.kdf {
        Kdf::Scrypt(s) => {
            let n: u64 = s.cost_parameter;
            // pkcs5 0.8.1 takes log2(N) with a subtraction that panics for N = 0 (found
            // by fuzzing): refuse what is not a power of two >= 2 before it gets there.
            if n < 2 || !n.is_power_of_two() {
                return Err(EncryptedKeyError::Malformed(
                    "the scrypt cost N is not a power of two of at least 2",
                ));
            }
            let memory = 128u64
                .saturating_mul(u64::from(s.block_size))
                .saturating_mul(n);
            if memory > MAX_SCRYPT_MEMORY || s.parallelization > MAX_SCRYPT_P {
                return Err(EncryptedKeyError::CostTooHigh(format!(
                    "scrypt N = {n}, r = {}, p = {} (at most 256 MiB and p <= 16)",
                    s.block_size, s.parallelization
                )));
            }
        }
        Kdf::Pbkdf2(p) => {
            if p.prf != Pbkdf2Prf::HmacWithSha256
                && p.prf != Pbkdf2Prf::HmacWithSha384
                && p.prf != Pbkdf2Prf::HmacWithSha512
            {
                return Err(EncryptedKeyError::Unsupported(
                    "PBKDF2 with a SHA-1 or SHA-224 PRF",
                ));
            }
            if p.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(EncryptedKeyError::CostTooHigh(format!(
                    "{} PBKDF2 iterations (at most {MAX_PBKDF2_ITERATIONS})",
                    p.iteration_count
                )));
            }
        }
        _ => {
            return Err(EncryptedKeyError::Unsupported(
                "a key derivation other than scrypt or PBKDF2",
            ));
        }
    }
    match params.encryption {
        pbes2::EncryptionScheme::Aes128Cbc { .. }
        | pbes2::EncryptionScheme::Aes192Cbc { .. }
        | pbes2::EncryptionScheme::Aes256Cbc { .. } => Ok(()),
        _ => Err(EncryptedKeyError::Unsupported(
            "a cipher other than AES-CBC (DES, 3DES, GCM)",
        )),
    }
}

/// Encrypts a signing key (EdDSA, ES256, RS256, PS256) as an `ENCRYPTED PRIVATE KEY` PEM.
///
/// # Errors
/// [`EncryptedKeyError::Key`] for a key without a PKCS#8 form (HS256: use
/// [`encrypt_hmac_secret`]), or [`EncryptedKeyError::Encrypt`].
pub fn encrypt_signing_key<R: CryptoRng + ?Sized>(
    key: &SigningKey,
    passphrase: &Passphrase,
    rng: &mut R,
) -> Result<Zeroizing<String>, EncryptedKeyError> {
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| EncryptedKeyError::Key(e.to_string()))?;
    let (_, doc) = SecretDocument::from_pem(&pem)
        .map_err(|_| EncryptedKeyError::Encrypt("the key's PKCS#8 PEM did not parse"))?;
    encrypt_pkcs8_der(doc.as_bytes(), passphrase, rng)
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` PEM into a signing key. The algorithm comes from
/// the key (Ed25519: EdDSA, P-256: ES256, RSA: RS256) unless `alg` is given (PS256 for an
/// RSA key, or to insist on one algorithm).
///
/// # Errors
/// [`EncryptedKeyError::WrongPassphrase`], what is wrong with the document, or
/// [`EncryptedKeyError::Key`] when the key is not one of the family's algorithms (or not
/// of `alg`).
pub fn decrypt_signing_key(
    pem: &str,
    passphrase: &Passphrase,
    alg: Option<Algorithm>,
) -> Result<SigningKey, EncryptedKeyError> {
    let der = decrypt_pkcs8_der(pem, passphrase)?;
    let info = PrivateKeyInfoRef::from_der(der.as_bytes())
        .map_err(|_| EncryptedKeyError::WrongPassphrase)?;
    let oid = info.algorithm.oid;
    let inferred = if oid == ED25519_OID {
        Algorithm::EdDSA
    } else if oid == EC_OID {
        Algorithm::ES256
    } else if oid == RSA_OID {
        Algorithm::RS256
    } else if oid == HMAC_SHA256_OID {
        return Err(EncryptedKeyError::Key(
            "this is an HMAC secret, not a signing key; read it with decrypt_hmac_secret".into(),
        ));
    } else {
        return Err(EncryptedKeyError::Key(format!(
            "key algorithm {oid} is not Ed25519, P-256 or RSA"
        )));
    };
    let alg = alg.unwrap_or(inferred);
    let plain_pem = der
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|_| EncryptedKeyError::Key("cannot re-encode the decrypted key".into()))?;
    SigningKey::from_pem(&plain_pem, alg).map_err(|e| EncryptedKeyError::Key(e.to_string()))
}

/// Encrypts an HMAC-SHA256 secret (for example a device key) as an `ENCRYPTED PRIVATE KEY`
/// PEM: a PKCS#8 `PrivateKeyInfo` whose algorithm is `hmacWithSHA256` and whose private
/// key is the secret as an OCTET STRING.
///
/// # Errors
/// [`EncryptedKeyError::Encrypt`].
pub fn encrypt_hmac_secret<R: CryptoRng + ?Sized>(
    secret: &HmacSecret,
    passphrase: &Passphrase,
    rng: &mut R,
) -> Result<Zeroizing<String>, EncryptedKeyError> {
    let key = OctetStringRef::new(secret.expose_secret())
        .map_err(|_| EncryptedKeyError::Encrypt("secret too long for DER"))?;
    let info = PrivateKeyInfoRef::new(
        AlgorithmIdentifierRef {
            oid: HMAC_SHA256_OID,
            parameters: Some(AnyRef::NULL),
        },
        key,
    );
    let der = Zeroizing::new(
        info.to_der()
            .map_err(|_| EncryptedKeyError::Encrypt("DER encoding failed"))?,
    );
    encrypt_pkcs8_der(&der, passphrase, rng)
}

/// Decrypts what [`encrypt_hmac_secret`] wrote.
///
/// # Errors
/// [`EncryptedKeyError::WrongPassphrase`], what is wrong with the document, or
/// [`EncryptedKeyError::Key`] when it holds another kind of key or a secret under 32 bytes.
pub fn decrypt_hmac_secret(
    pem: &str,
    passphrase: &Passphrase,
) -> Result<HmacSecret, EncryptedKeyError> {
    let der = decrypt_pkcs8_der(pem, passphrase)?;
    let info = PrivateKeyInfoRef::from_der(der.as_bytes())
        .map_err(|_| EncryptedKeyError::WrongPassphrase)?;
    if info.algorithm.oid != HMAC_SHA256_OID {
        return Err(EncryptedKeyError::Key(format!(
            "algorithm {} where hmacWithSHA256 is expected (is this a signing key?)",
            info.algorithm.oid
        )));
    }
    HmacSecret::new(info.private_key.as_bytes().to_vec())
        .map_err(|e| EncryptedKeyError::Key(e.to_string()))
}

/// Key-derivation work the fuzzing entry point lets a document ask for (scrypt memory
/// times `p`, PBKDF2 iterations): above it only the parsing and the cost check run, so
/// that fuzzing is not spent inside the KDF.
const FUZZ_SCRYPT_BUDGET: u64 = 64 * 1024;
const FUZZ_PBKDF2_BUDGET: u32 = 64;

/// Fuzzing entry point. The first byte picks the input's form:
/// - even: an encrypted PEM document, read as a signing key (inferred algorithm and
///   PS256) and as an HMAC secret under the passphrase `fuzz`, when its key derivation is
///   cheap (otherwise parsed and cost-checked only);
/// - odd: a decrypted `PrivateKeyInfo` DER, encrypted here under `fuzz` with a cheap
///   scrypt and then read the same ways, so the code after decryption is reached too.
///
/// Never panics.
#[doc(hidden)]
pub fn fuzz_decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(pass) = Passphrase::new("fuzz") else {
        return;
    };
    let pem = if mode & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        let cheap = SecretDocument::from_pem(text.trim())
            .ok()
            .and_then(|(_, doc)| {
                let info = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).ok()?;
                let _ = check_scheme(&info.encryption_algorithm);
                let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
                    return Some(true);
                };
                Some(match &params.kdf {
                    Kdf::Scrypt(s) => {
                        128u64
                            .saturating_mul(u64::from(s.block_size))
                            .saturating_mul(s.cost_parameter)
                            .saturating_mul(u64::from(s.parallelization))
                            <= FUZZ_SCRYPT_BUDGET
                    }
                    Kdf::Pbkdf2(p) => p.iteration_count <= FUZZ_PBKDF2_BUDGET,
                    _ => true,
                })
            });
        if cheap == Some(false) {
            return;
        }
        Zeroizing::new(text.into_owned())
    } else {
        let Ok(info) = PrivateKeyInfoRef::from_der(rest) else {
            return;
        };
        let Ok(params) = scrypt::Params::new(1, 8, 1) else {
            return;
        };
        let Ok(pbes2) =
            pbes2::Parameters::generate_scrypt_aes256cbc(params, &[mode; 16], [mode; 16])
        else {
            return;
        };
        let Ok(doc) = info.encrypt_with_params(pbes2, pass.bytes()) else {
            return;
        };
        let Ok(pem) = doc.to_pem(ENCRYPTED_PEM_LABEL, LineEnding::LF) else {
            return;
        };
        pem
    };
    let _ = is_encrypted_pem(&pem);
    let _ = decrypt_signing_key(&pem, &pass, None);
    let _ = decrypt_signing_key(&pem, &pass, Some(Algorithm::PS256));
    let _ = decrypt_hmac_secret(&pem, &pass);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    #[test]
    fn passphrases_are_bounded_and_never_printed() {
        assert!(Passphrase::new("").is_err());
        assert!(Passphrase::new(vec![b'a'; MAX_PASSPHRASE_BYTES + 1]).is_err());
        let p = Passphrase::new("hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    /// Rewrites the key-derivation parameters of an encrypted PEM.
    fn with_kdf(pem: &str, edit: impl FnOnce(&mut Kdf)) -> String {
        let (_, doc) = SecretDocument::from_pem(pem).unwrap();
        let mut info = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).unwrap();
        let EncryptionScheme::Pbes2(params) = &mut info.encryption_algorithm else {
            panic!("not PBES2");
        };
        edit(&mut params.kdf);
        let der = info.to_der().unwrap();
        pkcs8::der::pem::encode_string(ENCRYPTED_PEM_LABEL, LineEnding::LF, &der).unwrap()
    }

    #[test]
    fn key_derivation_cost_from_the_file_is_bounded_before_any_work() {
        let s = HmacSecret::generate(&mut rng());
        let pass = Passphrase::new("pass").unwrap();
        let pem = encrypt_hmac_secret(&s, &pass, &mut rng()).unwrap();
        // N = 2^30 would ask for 1 TiB: refused at once, not attempted.
        let huge = with_kdf(&pem, |k| {
            if let Kdf::Scrypt(p) = k {
                p.cost_parameter = 1 << 30;
            }
        });
        assert!(matches!(
            decrypt_hmac_secret(&huge, &pass),
            Err(EncryptedKeyError::CostTooHigh(_))
        ));
        let wide = with_kdf(&pem, |k| {
            if let Kdf::Scrypt(p) = k {
                p.parallelization = 1_000;
            }
        });
        assert!(matches!(
            decrypt_hmac_secret(&wide, &pass),
            Err(EncryptedKeyError::CostTooHigh(_))
        ));
        // Within bounds, another (valid) cost decrypts to garbage: a wrong-passphrase error.
        let other = with_kdf(&pem, |k| {
            if let Kdf::Scrypt(p) = k {
                p.cost_parameter = 1 << 10;
            }
        });
        assert_eq!(
            decrypt_hmac_secret(&other, &pass).err(),
            Some(EncryptedKeyError::WrongPassphrase)
        );
    }

    /// Found by fuzzing (`encrypted_key_read`): scrypt N = 0 panicked inside pkcs5.
    #[test]
    fn scrypt_cost_that_is_not_a_power_of_two_is_refused_without_panicking() {
        let s = HmacSecret::generate(&mut rng());
        let pass = Passphrase::new("pass").unwrap();
        let pem = encrypt_hmac_secret(&s, &pass, &mut rng()).unwrap();
        for n in [0u64, 1, 3, 1000] {
            let bad = with_kdf(&pem, |k| {
                if let Kdf::Scrypt(p) = k {
                    p.cost_parameter = n;
                }
            });
            assert!(
                matches!(
                    decrypt_hmac_secret(&bad, &pass),
                    Err(EncryptedKeyError::Malformed(m)) if m.contains("power of two")
                ),
                "N = {n}"
            );
        }
        // The input the fuzzer found, kept in fuzz/corpus/encrypted_key_read.
        let found = include_bytes!("../tests/data/fuzz-encrypted-scrypt-n0.bin");
        fuzz_decrypt(found);
    }

    #[test]
    fn hmac_secrets_round_trip_and_are_not_signing_keys() {
        let s = HmacSecret::generate(&mut rng());
        let pass = Passphrase::new("pass").unwrap();
        let pem = encrypt_hmac_secret(&s, &pass, &mut rng()).unwrap();
        assert!(is_encrypted_pem(&pem));
        let back = decrypt_hmac_secret(&pem, &pass).unwrap();
        assert_eq!(back.expose_secret(), s.expose_secret());
        assert!(matches!(
            decrypt_signing_key(&pem, &pass, None),
            Err(EncryptedKeyError::Key(_))
        ));
        assert_eq!(
            decrypt_hmac_secret(&pem, &Passphrase::new("nope").unwrap()).err(),
            Some(EncryptedKeyError::WrongPassphrase)
        );
    }
}
