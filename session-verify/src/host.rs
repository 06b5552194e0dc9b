//! Host-token exchange: a host JWT from `host-issuer`, verified against the host's JWKS,
//! EdDSA by default (ES256 or RS256 when the host signs with those), `host_tenant_id`
//! required, `jti` one-time for the token's lifetime.

use handoff_core::replay::Unconfirmed;
use handoff_core::{Algorithm, KeySource, UnixTime};
use serde::de::DeserializeOwned;

use crate::error::VerifyError;
use crate::jwks_cache::JwksCache;
use crate::verifier::{NoCustomClaims, Outcome, TokenKind, VerifiedToken, Verifier};

/// The algorithms a host-token profile may allow: those `host-issuer` signs with. EdDSA is
/// the default (the host SDK pins it); ES256 and RS256 for hosts whose keys are P-256 or
/// RSA.
pub const HOST_ALGORITHMS: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

/// The algorithm a host-token profile allows when none is configured.
pub const DEFAULT_HOST_ALGORITHM: Algorithm = Algorithm::EdDSA;

/// Builds a [`HostTokenVerifier`]: issuer and audience required, EdDSA unless the host's
/// algorithms are named. Start with [`HostTokenVerifier::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HostVerifierBuilder {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: Option<u64>,
    max_lifetime: Option<u64>,
}

impl HostVerifierBuilder {
    /// Allows exactly these algorithms (replacing the EdDSA default): the ones the host's
    /// keys really use, each of [`HOST_ALGORITHMS`]. A key still verifies only the
    /// algorithm it was made for.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }
    /// Clock leeway in seconds (default 60).
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = Some(secs);
        self
    }
    /// Refuses tokens whose `exp - iat` is longer than this.
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime = Some(secs);
        self
    }
    /// Finishes the profile.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] for an empty algorithm list, an algorithm outside
    /// [`HOST_ALGORITHMS`], or as [`crate::VerifierBuilder::build`].
    pub fn build(self) -> Result<HostTokenVerifier, VerifyError> {
        if self.algorithms.is_empty() {
            return Err(VerifyError::Policy(
                "no host algorithm allowed: name at least one of EdDSA, ES256, RS256 (or keep the EdDSA default)",
            ));
        }
        let mut b = Verifier::builder(TokenKind::Host)
            .issuer(self.issuer)
            .audience(self.audience);
        for a in self.algorithms {
            b = b.algorithm(a);
        }
        if let Some(l) = self.leeway {
            b = b.leeway(l);
        }
        if let Some(m) = self.max_lifetime {
            b = b.max_lifetime(m);
        }
        HostTokenVerifier::new(b.build()?)
    }
}

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

/// Verifies host tokens. The profile is fixed by [`TokenKind::Host`]: host algorithms only
/// (EdDSA by default, ES256 or RS256 when configured), replay always enforced.
///
/// ```
/// use handoff_verify::{HostTokenVerifier, TokenKind};
/// use handoff_core::Algorithm;
///
/// // EdDSA, the default.
/// let v = HostTokenVerifier::builder("https://host.example", "https://svc.example").build()?;
/// assert_eq!(v.verifier().kind(), TokenKind::Host);
/// // A host that signs with ES256 (`host-issuer generate-keys --alg ES256`).
/// let es = HostTokenVerifier::builder("https://host.example", "https://svc.example")
///     .algorithms([Algorithm::ES256])
///     .build()?;
/// # let _ = es;
/// // Never a symmetric or foreign algorithm.
/// assert!(HostTokenVerifier::builder("https://host.example", "https://svc.example")
///     .algorithms([Algorithm::HS256])
///     .build()
///     .is_err());
/// # Ok::<(), handoff_verify::VerifyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HostTokenVerifier {
    verifier: Verifier,
}

impl HostTokenVerifier {
    /// Starts a host-token profile for `issuer` and `audience`, EdDSA unless
    /// [`HostVerifierBuilder::algorithms`] names the host's algorithms.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> HostVerifierBuilder {
        HostVerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec![DEFAULT_HOST_ALGORITHM],
            leeway: None,
            max_lifetime: None,
        }
    }

    /// The underlying profile.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

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
