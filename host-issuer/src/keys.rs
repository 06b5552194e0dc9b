//! One host signing key: generation, and its key file (JSON private JWK) and PEM forms.

use core::fmt;

use handoff_core::jose_jwk::Jwk;
use handoff_core::keys::{MAX_RSA_BITS, MIN_RSA_BITS};
use handoff_core::{Algorithm, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::Error;
use crate::error::clip;

/// Largest single-key file accepted, in bytes (an RSA-4096 private JWK is about 3.3 KiB).
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// A host signing key: a private key made for exactly one of EdDSA (the default), ES256 or
/// RS256, always with a `kid`.
///
/// The algorithm is pinned by the key: every token it signs carries that `alg`, and no
/// header parameter can change it. Private material is zeroized on drop and `Debug` shows
/// only the algorithm and `kid`.
pub struct HostIssuerKeys {
    key: SigningKey,
    kid: String,
}

/// Checks that `alg` may sign host tokens.
pub(crate) fn check_host_alg(alg: Algorithm) -> Result<(), Error> {
    match alg {
        Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256 => Ok(()),
        other => Err(Error::UnsupportedAlgorithm(other)),
    }
}

impl HostIssuerKeys {
    /// The default algorithm for new host keys.
    pub const DEFAULT_ALG: Algorithm = Algorithm::EdDSA;

    /// Generates a key for `alg` (RSA: 2048 bits). Without a `kid`, the key's RFC 7638
    /// thumbprint becomes its `kid`.
    ///
    /// # Errors
    /// [`Error::UnsupportedAlgorithm`] for PS256/HS256, [`Error::Core`] for an invalid `kid`.
    pub fn generate<R: CryptoRng + ?Sized>(
        alg: Algorithm,
        kid: Option<&str>,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::generate_with_rsa_bits(alg, MIN_RSA_BITS, kid, rng)
    }

    /// Generates a key with an explicit RSA modulus size (2048 to 4096 bits; ignored for
    /// EdDSA and ES256).
    ///
    /// # Errors
    /// As [`Self::generate`], and [`Error::InvalidInput`] for an RSA size out of range.
    pub fn generate_with_rsa_bits<R: CryptoRng + ?Sized>(
        alg: Algorithm,
        rsa_bits: usize,
        kid: Option<&str>,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_host_alg(alg)?;
        if alg == Algorithm::RS256 && !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&rsa_bits) {
            return Err(Error::input(
                "rsa_bits",
                format!("{rsa_bits} bits; use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"),
            ));
        }
        let key = SigningKey::generate_with_rsa_bits(alg, rsa_bits, rng)?;
        Self::from_signing_key(key, kid)
    }

    /// Wraps an existing signing key. `kid` overrides the key's own `kid`; when both are
    /// absent the RFC 7638 thumbprint becomes the `kid`.
    ///
    /// # Errors
    /// [`Error::UnsupportedAlgorithm`] or an invalid `kid`.
    pub fn from_signing_key(key: SigningKey, kid: Option<&str>) -> Result<Self, Error> {
        check_host_alg(key.algorithm())?;
        let kid = match (kid, key.kid()) {
            (Some(k), _) => k.to_owned(),
            (None, Some(k)) => k.to_owned(),
            (None, None) => key.verifying_key().thumbprint().to_base64url(),
        };
        let key = key.with_kid(kid.clone())?;
        Ok(Self { key, kid })
    }

    /// The `kid` written into every header and the published JWK.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The private signing key.
    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public key, with the same `kid`.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public JWK (`kty`, key material, `kid`, `alg`, `use: sig`), never a private member.
    ///
    /// # Errors
    /// Only if `identity-core` refuses to publish the key (it does not for host keys).
    pub fn public_jwk(&self) -> Result<Jwk, Error> {
        Ok(self.verifying_key().to_public_jwk()?)
    }

    /// The key file: the private JWK as JSON, with `kid`, `alg` and `use`. Holds private
    /// material: store it with owner-only permissions.
    #[must_use]
    pub fn to_key_file(&self) -> Zeroizing<String> {
        private_jwk_json(&self.key.to_private_jwk())
    }

    /// Reads a key file written by [`Self::to_key_file`] (a private JWK with a `kid`).
    ///
    /// # Errors
    /// [`Error::KeyFile`] when the text is not a private JWK of EdDSA, ES256 or RS256.
    pub fn from_key_file(json: &str) -> Result<Self, Error> {
        if json.len() > MAX_KEY_FILE_BYTES {
            return Err(Error::KeyFile(format!(
                "{} bytes, over the {MAX_KEY_FILE_BYTES}-byte cap; is this a key file?",
                json.len()
            )));
        }
        let jwk: Jwk = serde_json::from_str(json).map_err(|e| {
            Error::KeyFile(format!(
                "not a private JWK: {}; regenerate it with `host-issuer generate-keys`",
                clip(&e.to_string())
            ))
        })?;
        Self::from_private_jwk(&jwk)
    }

    pub(crate) fn from_private_jwk(jwk: &Jwk) -> Result<Self, Error> {
        let key = SigningKey::from_jwk(jwk)
            .map_err(|e| Error::KeyFile(format!("the private JWK is refused: {e}")))?;
        if key.kid().is_none() {
            return Err(Error::KeyFile(
                "the private JWK has no kid; add one or regenerate the key".into(),
            ));
        }
        Self::from_signing_key(key, None)
    }

    /// The private key as PKCS#8 PEM. Holds private material.
    ///
    /// # Errors
    /// Only if encoding fails (it does not for host keys).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        Ok(self.key.to_pkcs8_pem()?)
    }

    /// The public key as SPKI PEM.
    ///
    /// # Errors
    /// Only if encoding fails (it does not for host keys).
    pub fn to_public_key_pem(&self) -> Result<String, Error> {
        Ok(self.verifying_key().to_public_key_pem()?)
    }

    /// Imports a PKCS#8 PEM private key (RSA also PKCS#1, P-256 also SEC1) for `alg`.
    /// Without a `kid`, the thumbprint becomes the `kid`.
    ///
    /// # Errors
    /// [`Error::UnsupportedAlgorithm`], or [`Error::KeyFile`] when the PEM does not hold a
    /// private key for `alg`.
    pub fn from_pem(pem: &str, alg: Algorithm, kid: Option<&str>) -> Result<Self, Error> {
        check_host_alg(alg)?;
        if pem.len() > MAX_KEY_FILE_BYTES {
            return Err(Error::KeyFile(format!(
                "PEM of {} bytes, over the {MAX_KEY_FILE_BYTES}-byte cap",
                pem.len()
            )));
        }
        let key = SigningKey::from_pem(pem, alg).map_err(|e| Error::KeyFile(e.to_string()))?;
        Self::from_signing_key(key, kid)
    }
}

/// Serializes a private JWK into a zeroized buffer sized exactly beforehand, so no
/// reallocation leaves a partial copy of the secret behind.
pub(crate) fn private_jwk_json(jwk: &Jwk) -> Zeroizing<String> {
    crate::error::secret_json_pretty(jwk)
}

impl fmt::Debug for HostIssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIssuerKeys")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
