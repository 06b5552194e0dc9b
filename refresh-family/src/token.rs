//! Opaque refresh tokens: `rf1.` followed by unpadded base64url of
//! `family id (16) || token id (16) || secret (32) || id tag (16)`.
//!
//! The id tag is HMAC-SHA256 (truncated to 128 bits) over the two ids under a server key,
//! so a presented token can name its family even when its own row is gone. The store
//! keeps only the SHA-256 hash of the secret and compares it in constant time.

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::RefreshError;

/// The version prefix of every token this crate issues.
pub const TOKEN_PREFIX: &str = "rf1.";
const PAYLOAD_LEN: usize = 16 + 16 + 32 + 16;
/// The exact length of a token in characters (prefix + 107 base64url characters).
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + (PAYLOAD_LEN * 4).div_ceil(3);

/// A family id: 128 random bits, not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId([u8; 16]);

/// A token id: 128 bits (random, or derived for an idempotent successor), not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; 16]);

macro_rules! id_impls {
    ($t:ident, $name:literal) => {
        impl $t {
            /// Wraps 16 bytes (for example read back from a store).
            #[must_use]
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
            /// The 16 id bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            /// Unpadded base64url, for logs and text stores.
            #[must_use]
            pub fn to_base64url(&self) -> String {
                handoff_core::b64::encode(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({})"), self.to_base64url())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_base64url())
            }
        }
    };
}
id_impls!(FamilyId, "FamilyId");
id_impls!(TokenId, "TokenId");

/// SHA-256 of a token secret: what the store keeps instead of the secret.
#[derive(Clone, Copy)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes a secret.
    #[must_use]
    pub fn of(secret: &[u8; 32]) -> Self {
        Self(Sha256::digest(secret).into())
    }
    /// Wraps a stored hash.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The 32 hash bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Constant-time check of a presented secret against this hash.
    #[must_use]
    pub fn matches(&self, secret: &[u8; 32]) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretHash {}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHash").finish_non_exhaustive()
    }
}

/// A refresh token to hand to the client. Zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    text: Zeroizing<String>,
    family: FamilyId,
    id: TokenId,
}

impl RefreshToken {
    pub(crate) fn encode(family: FamilyId, id: TokenId, secret: &[u8; 32], tag: &[u8; 16]) -> Self {
        let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
        payload[..16].copy_from_slice(&family.0);
        payload[16..32].copy_from_slice(&id.0);
        payload[32..64].copy_from_slice(secret);
        payload[64..].copy_from_slice(tag);
        let mut text = String::with_capacity(TOKEN_LEN);
        text.push_str(TOKEN_PREFIX);
        let mut body = handoff_core::b64::encode(&payload[..]);
        text.push_str(&body);
        body.zeroize();
        Self {
            text: Zeroizing::new(text),
            family,
            id,
        }
    }

    /// The token text to send to the client. Handle with care.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The family it belongs to.
    #[must_use]
    pub const fn family(&self) -> FamilyId {
        self.family
    }

    /// Its token id.
    #[must_use]
    pub const fn id(&self) -> TokenId {
        self.id
    }

    /// Parses the token shape (prefix, exact length, strict base64url) without checking
    /// its integrity; [`crate::RefreshFamilies::verify`] checks the id tag.
    ///
    /// # Errors
    /// [`RefreshError::Malformed`] saying what is wrong.
    pub fn parse(text: &str) -> Result<ParsedToken, RefreshError> {
        if text.len() != TOKEN_LEN {
            return Err(RefreshError::Malformed(
                "wrong length (a refresh token is exactly 111 characters)",
            ));
        }
        let body = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(RefreshError::Malformed("missing the rf1. version prefix"))?;
        let bytes = Zeroizing::new(
            handoff_core::b64::decode(body)
                .map_err(|_| RefreshError::Malformed("body is not unpadded base64url"))?,
        );
        if bytes.len() != PAYLOAD_LEN {
            return Err(RefreshError::Malformed("body has the wrong length"));
        }
        let mut p = ParsedToken {
            family: FamilyId([0; 16]),
            id: TokenId([0; 16]),
            secret: Zeroizing::new([0; 32]),
            tag: [0; 16],
        };
        p.family.0.copy_from_slice(&bytes[..16]);
        p.id.0.copy_from_slice(&bytes[16..32]);
        p.secret.copy_from_slice(&bytes[32..64]);
        p.tag.copy_from_slice(&bytes[64..]);
        Ok(p)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("family", &self.family)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A token whose shape parsed but whose integrity is not yet checked.
pub struct ParsedToken {
    pub(crate) family: FamilyId,
    pub(crate) id: TokenId,
    pub(crate) secret: Zeroizing<[u8; 32]>,
    pub(crate) tag: [u8; 16],
}

impl ParsedToken {
    /// The family the token claims (unverified).
    #[must_use]
    pub const fn claimed_family(&self) -> FamilyId {
        self.family
    }
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("family", &self.family)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A presented token whose id tag verified under this server's key: its family and token
/// ids are authentic (its secret is checked against the stored hash by `decide`).
pub struct PresentedToken {
    pub(crate) family: FamilyId,
    pub(crate) id: TokenId,
    pub(crate) secret: Zeroizing<[u8; 32]>,
}

impl PresentedToken {
    /// The (authenticated) family id: load this family.
    #[must_use]
    pub const fn family(&self) -> FamilyId {
        self.family
    }
    /// The (authenticated) token id: load this token.
    #[must_use]
    pub const fn id(&self) -> TokenId {
        self.id
    }
}

impl fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("family", &self.family)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a token; never panics.
#[doc(hidden)]
pub fn fuzz_parse(bytes: &[u8]) {
    if let Ok(text) = core::str::from_utf8(bytes)
        && let Ok(p) = RefreshToken::parse(text)
    {
        let _ = p.claimed_family();
    }
}
