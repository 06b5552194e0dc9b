//! Internal service tokens (gateway to backend): EdDSA only, short-lived, with `scope`.
//! The backend holds only the public key, so a compromised backend cannot mint.

use handoff_core::replay::Unconfirmed;
use handoff_core::{Algorithm, SigningKey, UnixTime, VerifyingKey};
use rand_core::CryptoRng;
use serde::Serialize;

use crate::error::VerifyError;
use crate::session::{AudOut, MintedToken, check_text, random_jti, sign_json};
use crate::verifier::{NoCustomClaims, SERVICE_TOKEN_TYP, TokenKind, VerifiedToken, Verifier};

/// Default service-token lifetime (60 s).
pub const DEFAULT_SERVICE_TTL_SECS: u64 = 60;
/// Longest service-token lifetime minted or accepted (300 s).
pub const MAX_SERVICE_TTL_SECS: u64 = 300;
/// Most scopes in one service token.
pub const MAX_SCOPES: usize = 32;

/// RFC 6749 section 3.3 `scope-token`: printable ASCII except space, `"` and `\`.
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The claims of a service token to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceClaims {
    /// `iss`: the gateway.
    pub iss: String,
    /// `sub`: the calling service.
    pub sub: String,
    /// `aud`: the backend(s).
    pub aud: Vec<String>,
    /// The scopes granted (1 to 32 RFC 6749 scope tokens).
    pub scopes: Vec<String>,
    /// Lifetime in seconds (default 60, at most 300).
    pub ttl_secs: u64,
}

impl ServiceClaims {
    /// Claims with one audience, the given scopes and the default lifetime.
    #[must_use]
    pub fn new<S: Into<String>>(
        iss: impl Into<String>,
        sub: impl Into<String>,
        aud: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud: vec![aud.into()],
            scopes: scopes.into_iter().map(Into::into).collect(),
            ttl_secs: DEFAULT_SERVICE_TTL_SECS,
        }
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn with_ttl(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }
}

#[derive(Serialize)]
struct ServicePayload<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: AudOut<'a>,
    exp: u64,
    iat: u64,
    jti: &'a str,
    scope: &'a str,
}

/// Mints a service token (`typ` `service+jwt`) with an Ed25519 key.
///
/// # Errors
/// [`VerifyError::Policy`] for a key that is not EdDSA, invalid scopes, empty or oversize
/// claims, or a lifetime of 0 or over [`MAX_SERVICE_TTL_SECS`].
pub fn mint_service_token<R: CryptoRng + ?Sized>(
    claims: &ServiceClaims,
    key: &SigningKey,
    now: UnixTime,
    rng: &mut R,
) -> Result<MintedToken, VerifyError> {
    if key.algorithm() != Algorithm::EdDSA {
        return Err(VerifyError::Policy(
            "service tokens are signed with EdDSA keys only",
        ));
    }
    check_text(&claims.iss, "iss must be 1 to 1024 bytes")?;
    check_text(&claims.sub, "sub must be 1 to 1024 bytes")?;
    if claims.aud.is_empty() {
        return Err(VerifyError::Policy(
            "a service token needs at least one audience",
        ));
    }
    for a in &claims.aud {
        check_text(a, "each aud must be 1 to 1024 bytes")?;
    }
    if claims.scopes.is_empty() || claims.scopes.len() > MAX_SCOPES {
        return Err(VerifyError::Policy(
            "a service token carries 1 to 32 scopes",
        ));
    }
    if !claims.scopes.iter().all(|s| valid_scope(s)) {
        return Err(VerifyError::Policy(
            "each scope is 1 to 128 printable ASCII characters without space, quote or backslash",
        ));
    }
    if claims.ttl_secs == 0 || claims.ttl_secs > MAX_SERVICE_TTL_SECS {
        return Err(VerifyError::Policy(
            "service-token lifetime must be 1 to 300 s",
        ));
    }
    let jti = random_jti(rng);
    let exp = now.saturating_add(claims.ttl_secs);
    let scope = claims.scopes.join(" ");
    let payload = ServicePayload {
        iss: &claims.iss,
        sub: &claims.sub,
        aud: AudOut::of(&claims.aud),
        exp: exp.as_secs(),
        iat: now.as_secs(),
        jti: &jti,
        scope: &scope,
    };
    let token = sign_json(key, SERVICE_TOKEN_TYP, &payload, rng)?;
    Ok(MintedToken {
        token,
        jti,
        expires_at: exp,
    })
}

/// A verified service token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    inner: VerifiedToken<NoCustomClaims>,
}

impl ServiceToken {
    /// `sub`: the calling service.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.inner.registered().sub.as_deref().unwrap_or_default()
    }
    /// The scopes granted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner
            .scope()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }
    /// Whether the token grants `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
    /// Everything verified.
    #[must_use]
    pub fn verified(&self) -> &VerifiedToken<NoCustomClaims> {
        &self.inner
    }
}

/// Verifies service tokens with the gateway's public key and an accepted-scope set.
#[derive(Debug, Clone)]
pub struct ServiceTokenVerifier {
    verifier: Verifier,
    key: VerifyingKey,
    accepted: Vec<String>,
}

impl ServiceTokenVerifier {
    /// A verifier for a [`TokenKind::Service`] profile, the gateway's Ed25519 public key
    /// and the scopes this endpoint accepts (a token needs at least one of them).
    ///
    /// # Errors
    /// [`VerifyError::Policy`] for another kind of profile, a key that is not an
    /// Ed25519 public key, or an empty scope set.
    pub fn new<S: Into<String>>(
        verifier: Verifier,
        key: VerifyingKey,
        accepted_scopes: impl IntoIterator<Item = S>,
    ) -> Result<Self, VerifyError> {
        if verifier.kind() != TokenKind::Service {
            return Err(VerifyError::Policy(
                "ServiceTokenVerifier needs a profile built for TokenKind::Service",
            ));
        }
        if key.algorithm() != Algorithm::EdDSA || key.is_symmetric() {
            return Err(VerifyError::Policy(
                "service tokens are verified with the gateway's Ed25519 public key only",
            ));
        }
        let accepted: Vec<String> = accepted_scopes.into_iter().map(Into::into).collect();
        if accepted.is_empty() || !accepted.iter().all(|s| valid_scope(s)) {
            return Err(VerifyError::Policy(
                "accept at least one scope, each a valid RFC 6749 scope token",
            ));
        }
        Ok(Self {
            verifier,
            key,
            accepted,
        })
    }

    fn check(&self, v: VerifiedToken<NoCustomClaims>) -> Result<ServiceToken, VerifyError> {
        let r = v.registered();
        if let (Some(exp), Some(iat)) = (r.exp, r.iat)
            && exp.0.saturating_sub(iat.0) > MAX_SERVICE_TTL_SECS
        {
            return Err(handoff_core::Error::InvalidClaim {
                claim: "exp",
                reason: "a service token lives at most 300 s",
            }
            .into());
        }
        let t = ServiceToken { inner: v };
        if t.scopes().any(|s| self.accepted.iter().any(|a| a == s)) {
            Ok(t)
        } else {
            Err(VerifyError::ScopeNotAllowed)
        }
    }

    /// Verifies a service token (profile without replay).
    ///
    /// # Errors
    /// A precise [`VerifyError`]; [`VerifyError::ScopeNotAllowed`] when no scope fits.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<ServiceToken, VerifyError> {
        let v = self.verifier.verify(token, &self.key, now)?;
        self.check(v)
    }

    /// Verifies a service token of a profile that enforces `jti` replay.
    ///
    /// # Errors
    /// As [`ServiceTokenVerifier::verify`].
    pub fn verify_once(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Unconfirmed<ServiceToken>, VerifyError> {
        let u = self.verifier.verify_once(token, &self.key, now)?;
        let key = *u.replay_key();
        let until = u.until();
        let v = u.confirm_with(handoff_core::replay::ReplayVerdict::Fresh)?;
        Ok(Unconfirmed::new(self.check(v)?, key, until))
    }
}
