//! Access-token binding: `ath` (RFC 9449 section 4.2) and `cnf.jkt` (section 6.1).

use handoff_core::{Thumbprint, b64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `ath`: base64url(SHA-256(ASCII access token)), the value a proof carries when it is
/// sent with an access token.
#[must_use]
pub fn ath(access_token: &str) -> String {
    b64::encode(&Sha256::digest(access_token.as_bytes()))
}

/// Whether `ath` is the hash of `access_token`, compared in constant time.
#[must_use]
pub fn ath_matches(access_token: &str, ath_claim: &str) -> bool {
    let expected = ath(access_token);
    expected.len() == ath_claim.len() && bool::from(expected.as_bytes().ct_eq(ath_claim.as_bytes()))
}

/// Whether the base64url `jkt` (an access token's `cnf.jkt`) names the key with
/// `thumbprint`, compared in constant time. A malformed `jkt` never matches.
#[must_use]
pub fn jkt_matches(thumbprint: &Thumbprint, jkt: &str) -> bool {
    thumbprint.matches_base64url(jkt)
}

/// The `cnf` (confirmation) claim of a DPoP-bound access token: `{"jkt": "<thumbprint>"}`.
///
/// An issuer writes it with [`Cnf::for_key`]; a resource server reads it from the token's
/// claims and passes `jkt` to [`crate::DpopRequest::bound_to`], or checks it against a
/// verified proof with [`Cnf::matches`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cnf {
    /// The base64url RFC 7638 SHA-256 thumbprint of the proof key.
    pub jkt: String,
}

impl Cnf {
    /// The confirmation claim binding a token to the key with `thumbprint`.
    #[must_use]
    pub fn for_key(thumbprint: &Thumbprint) -> Self {
        Self {
            jkt: thumbprint.to_base64url(),
        }
    }

    /// Whether this claim binds to the key with `thumbprint` (constant time).
    #[must_use]
    pub fn matches(&self, thumbprint: &Thumbprint) -> bool {
        jkt_matches(thumbprint, &self.jkt)
    }
}
