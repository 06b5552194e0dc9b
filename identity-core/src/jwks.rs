//! JWK Sets (RFC 7517 section 5): parsing that skips bad keys one by one, lookup by `kid`
//! and algorithm, and publication of the public members only.

use std::collections::HashMap;

use crate::error::clip;
use crate::jws::PRIVATE_JWK_MEMBERS;
use crate::{Algorithm, Error, VerifyingKey};
use jose_jwk::{Jwk, JwkSet};

/// Bounds applied before and while parsing a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksLimits {
    /// Largest document accepted, in bytes (default 256 KiB).
    pub max_bytes: usize,
    /// Most keys accepted in one set (default 256).
    pub max_keys: usize,
}

impl Default for JwksLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_keys: 256,
        }
    }
}

/// A key that parsing left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    /// Its `kid`, if one could be read (truncated).
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

/// The result of [`Jwks::parse`]: the usable keys and a report of the skipped ones.
#[must_use = "the skipped keys should be logged"]
#[derive(Debug, Clone)]
pub struct ParsedJwks {
    /// The keys that were understood and accepted.
    pub jwks: Jwks,
    /// Keys left out (private members, unknown types, malformed), one entry each.
    pub skipped: Vec<SkippedKey>,
}

/// How [`Jwks::find`] treats a token without `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KidlessTokens {
    /// Refuse them whenever the set holds more than one key, whatever the keys'
    /// algorithms: with several keys a token without `kid` is ambiguous (default).
    #[default]
    RefuseIfAmbiguous,
    /// Refuse them always.
    Refuse,
    /// Opt-in: accept them when exactly one key of the set is made for the token's
    /// algorithm, however many keys of other algorithms the set holds.
    AcceptIfUniqueForAlgorithm,
}

/// A set of public verifying keys, indexed by `kid`.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<VerifyingKey>,
    by_kid: HashMap<String, Vec<usize>>,
    kidless: KidlessTokens,
}

impl Jwks {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from keys; symmetric keys are refused (they are never published).
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for a symmetric key.
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Result<Self, Error> {
        let mut set = Self::new();
        for k in keys {
            set.push(k)?;
        }
        Ok(set)
    }

    /// Sets how [`KeySource::select`] (and so [`crate::verify`]) treats tokens without
    /// `kid` (default [`KidlessTokens::RefuseIfAmbiguous`]).
    #[must_use]
    pub fn with_kidless_tokens(mut self, kidless: KidlessTokens) -> Self {
        self.kidless = kidless;
        self
    }

    /// How tokens without `kid` are treated by [`KeySource::select`].
    #[must_use]
    pub fn kidless_tokens(&self) -> KidlessTokens {
        self.kidless
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`Error::KeyRejected`] for a symmetric key.
    pub fn push(&mut self, key: VerifyingKey) -> Result<(), Error> {
        if key.is_symmetric() {
            return Err(Error::KeyRejected(
                "symmetric keys never belong in a public key set".into(),
            ));
        }
        if let Some(kid) = key.kid() {
            self.by_kid
                .entry(kid.to_owned())
                .or_default()
                .push(self.keys.len());
        }
        self.keys.push(key);
        Ok(())
    }

    /// Parses a JWKS document. The document as a whole must be a JSON object with a
    /// `keys` array within the limits; each key that cannot be used (private members,
    /// symmetric, unknown type or curve, malformed, weak, `use` other than `sig`) is
    /// skipped and reported instead of failing the set (RFC 7517 section 5).
    ///
    /// # Errors
    /// [`Error::TokenTooLarge`] over the byte cap, [`Error::Json`] when the document is
    /// not a key set, [`Error::Policy`] over the key-count cap.
    pub fn parse(bytes: &[u8], limits: &JwksLimits) -> Result<ParsedJwks, Error> {
        if bytes.len() > limits.max_bytes {
            return Err(Error::TokenTooLarge {
                len: bytes.len(),
                max: limits.max_bytes,
            });
        }
        let mut doc = crate::strict::parse_object(bytes, "jwks")?;
        let keys = match doc.remove("keys") {
            Some(serde_json::Value::Array(keys)) => keys,
            Some(_) => {
                return Err(Error::Json {
                    part: "jwks",
                    detail: "the keys member is not an array".into(),
                });
            }
            None => {
                return Err(Error::Json {
                    part: "jwks",
                    detail: "the document has no keys member".into(),
                });
            }
        };
        if keys.len() > limits.max_keys {
            return Err(Error::Policy(
                "the key set holds more keys than the configured cap",
            ));
        }
        let mut jwks = Self::new();
        let mut skipped = Vec::new();
        for (index, value) in keys.into_iter().enumerate() {
            let kid = value
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map(clip);
            let private = value.as_object().and_then(|o| {
                PRIVATE_JWK_MEMBERS
                    .iter()
                    .find(|m| o.contains_key(**m))
                    .copied()
            });
            if let Some(member) = private {
                skipped.push(SkippedKey {
                    index,
                    kid,
                    reason: format!(
                        "carries the private member {member:?}; a public key set never does"
                    ),
                });
                continue;
            }
            let mut value = value;
            // RFC 9864 "Ed25519" is not in jose-jwa's vocabulary: map it to the
            // equivalent "EdDSA" (this family's EdDSA is Ed25519 only).
            if let Some(alg) = value.get_mut("alg")
                && alg.as_str() == Some(crate::alg::ED25519_NAME)
            {
                *alg = serde_json::Value::String(Algorithm::EdDSA.as_str().to_owned());
            }
            let result = serde_json::from_value::<Jwk>(value)
                .map_err(|e| {
                    format!(
                        "not a JWK this library understands: {}",
                        clip(&e.to_string())
                    )
                })
                .and_then(|jwk| VerifyingKey::from_jwk(&jwk).map_err(|e| e.to_string()))
                .and_then(|key| jwks.push(key).map_err(|e| e.to_string()));
            if let Err(reason) = result {
                skipped.push(SkippedKey { index, kid, reason });
            }
        }
        Ok(ParsedJwks { jwks, skipped })
    }

    /// Finds the key for a token's `kid` and algorithm. A key matches only if it was made
    /// for exactly that algorithm. Several matches are refused as ambiguous; a token
    /// without `kid` is treated as `kidless` says.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`]; [`Error::AlgorithmMismatch`] when the `kid` names only keys
    /// made for another algorithm; [`Error::AmbiguousKey`].
    pub fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        kidless: KidlessTokens,
    ) -> Result<&VerifyingKey, Error> {
        self.find_index(kid, alg, kidless).map(|i| &self.keys[i])
    }

    /// As [`Self::find`], returning the key's position in [`Self::keys`] (for callers that
    /// must release the borrow of the set before using the key, such as a cache that may
    /// start a refresh).
    ///
    /// # Errors
    /// As [`Self::find`].
    pub fn find_index(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        kidless: KidlessTokens,
    ) -> Result<usize, Error> {
        let not_found = || Error::KeyNotFound {
            kid: kid.map(clip),
            alg,
        };
        match kid {
            Some(kid) => {
                let idx = self.by_kid.get(kid).ok_or_else(not_found)?;
                let mut it = idx
                    .iter()
                    .copied()
                    .filter(|&i| self.keys[i].algorithm() == alg);
                let Some(first) = it.next() else {
                    return Err(match idx.first() {
                        Some(&i) => Error::AlgorithmMismatch {
                            header: alg,
                            key: self.keys[i].algorithm(),
                        },
                        None => not_found(),
                    });
                };
                if it.next().is_some() {
                    return Err(Error::AmbiguousKey(
                        "several keys share this kid and algorithm; fix the key set",
                    ));
                }
                Ok(first)
            }
            None => {
                if kidless == KidlessTokens::Refuse {
                    return Err(Error::AmbiguousKey(
                        "the token has no kid; this verifier requires one",
                    ));
                }
                if kidless == KidlessTokens::RefuseIfAmbiguous && self.keys.len() > 1 {
                    return Err(Error::AmbiguousKey(
                        "the token has no kid and the set holds several keys; \
                         opt in with KidlessTokens::AcceptIfUniqueForAlgorithm if that is intended",
                    ));
                }
                let mut it = (0..self.keys.len()).filter(|&i| self.keys[i].algorithm() == alg);
                let first = it.next().ok_or_else(not_found)?;
                if it.next().is_some() {
                    return Err(Error::AmbiguousKey(
                        "the token has no kid and the set holds several keys for its algorithm",
                    ));
                }
                Ok(first)
            }
        }
    }

    /// The keys, in document order.
    #[must_use]
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public JWK Set: key material, `kid`, `alg` and `use` only.
    #[must_use]
    pub fn to_jwk_set(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter_map(|k| k.to_public_jwk().ok())
                .collect(),
        }
    }

    /// The public JWK Set as JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing plain strings and byte strings cannot fail.
        serde_json::to_string(&self.to_jwk_set()).unwrap_or_else(|_| String::from(r#"{"keys":[]}"#))
    }
}

/// Where a verifier finds the key for a token: one pinned key or a key set.
pub trait KeySource {
    /// The key for this `kid` and header algorithm, or why there is none.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AmbiguousKey`] or [`Error::AlgorithmMismatch`].
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, Error>;
}

impl KeySource for VerifyingKey {
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, Error> {
        if let (Some(want), Some(have)) = (kid, self.kid())
            && want != have
        {
            return Err(Error::KeyNotFound {
                kid: Some(clip(want)),
                alg,
            });
        }
        if alg != self.algorithm() {
            return Err(Error::AlgorithmMismatch {
                header: alg,
                key: self.algorithm(),
            });
        }
        Ok(self)
    }
}

impl KeySource for Jwks {
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, Error> {
        self.find(kid, alg, self.kidless)
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a key set; must never panic.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(p) = Jwks::parse(data, &JwksLimits::default()) {
        let _ = p.jwks.to_json();
    }
}
