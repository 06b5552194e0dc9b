//! Host-token exchange: a host JWT from `host-issuer`, verified against the host's JWKS,
//! EdDSA pinned, `host_tenant_id` required, `jti` one-time for the token's lifetime.

use handoff_core::replay::Unconfirmed;
use handoff_core::{KeySource, UnixTime};
use serde::de::DeserializeOwned;

use crate::error::VerifyError;
use crate::jwks_cache::JwksCache;
use crate::verifier::{NoCustomClaims, Outcome, TokenKind, VerifiedToken, Verifier};

/// A verified host token (still to be confirmed against a replay log).
#[derive(Debug, Clone)]
pub struct HostToken<T = NoCustomClaims> {
    inner: VerifiedToken<T>,
}

impl<T> HostToken<T> {
    /// `host_tenant_id`.
    #[must_use]
    pub fn host_tenant_id(&self) -> &str {
        self.inner.host_tenant_id().unwrap_or_default()
    }
    /// `sub`.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.inner.registered().sub.as_deref().unwrap_or_default()
    }
    /// `iss`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.inner.registered().iss.as_deref().unwrap_or_default()
    }
    /// Everything verified, including the caller's claims.
    #[must_use]
    pub fn verified(&self) -> &VerifiedToken<T> {
        &self.inner
    }
}

/// Verifies host tokens. The profile is fixed by [`TokenKind::Host`]: EdDSA only, replay
/// always enforced.
#[derive(Debug, Clone)]
pub struct HostTokenVerifier {
    verifier: Verifier,
}

impl HostTokenVerifier {
    /// Wraps a host-token profile.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] when `verifier` is not a [`TokenKind::Host`] profile.
    pub fn new(verifier: Verifier) -> Result<Self, VerifyError> {
        if verifier.kind() != TokenKind::Host {
            return Err(VerifyError::Policy(
                "HostTokenVerifier needs a profile built for TokenKind::Host",
            ));
        }
        Ok(Self { verifier })
    }

    /// Verifies with keys the caller holds; confirm the result against a replay log.
    ///
    /// # Errors
    /// A precise [`VerifyError`].
    pub fn verify<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        now: UnixTime,
    ) -> Result<Unconfirmed<HostToken<T>>, VerifyError> {
        let u = self.verifier.verify_once::<T, K>(token, keys, now)?;
        Ok(u.map(|inner| HostToken { inner }))
    }

    /// Verifies with the host's key set held by `cache`.
    ///
    /// # Errors
    /// As [`Verifier::verify_with_cache`].
    pub fn verify_with_cache<T: DeserializeOwned>(
        &self,
        token: &str,
        cache: &mut JwksCache,
        now: UnixTime,
    ) -> Result<Outcome<Unconfirmed<HostToken<T>>>, VerifyError> {
        Ok(
            match self
                .verifier
                .verify_once_with_cache::<T>(token, cache, now)?
            {
                Outcome::Verified(u) => Outcome::Verified(u.map(|inner| HostToken { inner })),
                Outcome::VerifiedRefresh { value, fetch } => Outcome::VerifiedRefresh {
                    value: value.map(|inner| HostToken { inner }),
                    fetch,
                },
                Outcome::Fetch(r) => Outcome::Fetch(r),
                Outcome::Wait { id, deadline } => Outcome::Wait { id, deadline },
            },
        )
    }
}
