//! JWA algorithm names (RFC 7518, RFC 8037).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// A JWS algorithm this family implements. Each key is made for exactly one of them, and
/// a token is only ever verified with the algorithm of the key, never the one its header
/// asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 signatures (RFC 8037), verified strictly.
    EdDSA,
    /// ECDSA on P-256 with SHA-256, signatures in raw `r || s` form.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 bits or more.
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256, keys of 2048 bits or more.
    PS256,
    /// HMAC with SHA-256, secrets of at least 32 bytes.
    HS256,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Self; 5] = [
        Self::EdDSA,
        Self::ES256,
        Self::RS256,
        Self::PS256,
        Self::HS256,
    ];

    /// The JWA name, as it appears in a JWS header `alg`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::HS256 => "HS256",
        }
    }

    /// Whether this is a public-key algorithm (everything but HS256).
    #[must_use]
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, Self::HS256)
    }

    /// Parses a JWA name, case-sensitively (`"es256"` is not `ES256`).
    ///
    /// The fully-specified name `Ed25519` (RFC 9864, which deprecates the polymorphic
    /// `EdDSA`) is accepted as [`Algorithm::EdDSA`]: this family's EdDSA is Ed25519 only,
    /// so both names select exactly the same verification. `Ed448` is not implemented.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        if name == ED25519_NAME {
            return Some(Self::EdDSA);
        }
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// The RFC 9864 fully-specified name of Ed25519 signatures (what panva's `dpop` v2 and
/// `jose` v6 may write), an alias of [`Algorithm::EdDSA`] on input.
pub const ED25519_NAME: &str = "Ed25519";

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the algorithms this family implements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm {0:?}: use one of EdDSA, ES256, RS256, PS256, HS256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownAlgorithm(s.chars().take(32).collect()))
    }
}

impl Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(UnknownAlgorithm(s.chars().take(32).collect())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_sensitively() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>().unwrap(), a);
        }
        assert!("es256".parse::<Algorithm>().is_err());
        assert_eq!("Ed25519".parse::<Algorithm>().unwrap(), Algorithm::EdDSA);
        assert!("Ed448".parse::<Algorithm>().is_err());
        assert!("ed25519".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
        assert!(!Algorithm::HS256.is_asymmetric());
        assert!(Algorithm::EdDSA.is_asymmetric());
    }
}
