//! Verifier profiles: one explicit `typ` and one mutually exclusive rule set per token kind
//! (RFC 8725 sections 3.11 and 3.12).

use core::fmt;

use handoff_core::claims::{Claim, RegisteredClaims};
use handoff_core::jws::{self, Compact, Header};
use handoff_core::replay::Unconfirmed;
use handoff_core::{Algorithm, KeySource, UnixTime, Validation, Verified};
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;
use crate::jwks_cache::{FetchId, FetchRequest, JwksCache, Lookup};

/// `typ` of the access tokens this crate mints (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// `typ` of host tokens (the same value as `host-issuer`'s `HOST_TOKEN_TYP`).
pub const HOST_TOKEN_TYP: &str = "host+jwt";
/// `typ` of internal service tokens.
pub const SERVICE_TOKEN_TYP: &str = "service+jwt";
/// `typ` of DPoP proofs (RFC 9449); no profile here accepts it.
pub const DPOP_PROOF_TYP: &str = "dpop+jwt";

/// The JWT kinds this crate verifies. Each has its own `typ`, its own required claims and
/// claims it refuses, so that no kind passes for another even if `typ` were ignored.
///
/// Refresh tokens (`rf1.`) and device session tokens (`dvs1.`) are opaque strings, not
/// JWTs: every profile here refuses them at the compact-serialization step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenKind {
    /// A session access token (`at+jwt`, RFC 9068 claims, optionally DPoP-bound).
    Access,
    /// A host token from `host-issuer` (`host+jwt`, `host_tenant_id`, one-time `jti`).
    Host,
    /// An internal gateway-to-backend token (`service+jwt`, `scope`).
    Service,
}

impl TokenKind {
    /// The header `typ` this kind requires.
    #[must_use]
    pub const fn typ(self) -> &'static str {
        match self {
            Self::Access => ACCESS_TOKEN_TYP,
            Self::Host => HOST_TOKEN_TYP,
            Self::Service => SERVICE_TOKEN_TYP,
        }
    }

    /// The purpose tag that scopes this kind's `jti` entries in a replay log.
    #[must_use]
    pub const fn replay_purpose(self) -> &'static str {
        match self {
            Self::Access => "session-verify/access-token/jti",
            Self::Host => "session-verify/host-token/jti",
            Self::Service => "session-verify/service-token/jti",
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Host => "host",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `cnf` claim (RFC 7800) as access tokens carry it: `jkt` for DPoP (RFC 9449).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Base64url RFC 7638 thumbprint of the DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

fn seen<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// The claims that tell the kinds apart, read in the same pass as the registered claims.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Shape {
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) cnf: Option<Confirmation>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) host_tenant_id: Option<String>,
    #[serde(default, deserialize_with = "seen")]
    htm: bool,
    #[serde(default, deserialize_with = "seen")]
    htu: bool,
    #[serde(default, deserialize_with = "seen")]
    ath: bool,
}

#[derive(Deserialize)]
struct Claims<T> {
    #[serde(flatten)]
    shape: Shape,
    #[serde(flatten)]
    custom: T,
}

/// Marker for "no claims beyond the ones the profile reads itself".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct NoCustomClaims {}

const MAX_CLAIM_BYTES: usize = 1024;
const MAX_SCOPE_BYTES: usize = 4096;

fn non_empty(
    v: Option<&String>,
    claim: &'static str,
    max: usize,
) -> Result<(), handoff_core::Error> {
    match v {
        None => Err(handoff_core::Error::MissingClaim(claim)),
        Some(s) if s.is_empty() => Err(handoff_core::Error::InvalidClaim {
            claim,
            reason: "must not be empty",
        }),
        Some(s) if s.len() > max => Err(handoff_core::Error::InvalidClaim {
            claim,
            reason: "is longer than this verifier accepts",
        }),
        Some(_) => Ok(()),
    }
}

impl Shape {
    /// The mutually exclusive rules: what each kind requires and what it refuses.
    fn check(&self, kind: TokenKind) -> Result<(), VerifyError> {
        let foreign = |claim| VerifyError::ForeignClaim { kind, claim };
        // No profile ever accepts the claims of a DPoP proof.
        for (present, claim) in [(self.htm, "htm"), (self.htu, "htu"), (self.ath, "ath")] {
            if present {
                return Err(foreign(claim));
            }
        }
        if let Some(scope) = &self.scope
            && scope.len() > MAX_SCOPE_BYTES
        {
            return Err(handoff_core::Error::InvalidClaim {
                claim: "scope",
                reason: "is longer than this verifier accepts",
            }
            .into());
        }
        match kind {
            TokenKind::Access => {
                if self.host_tenant_id.is_some() {
                    return Err(foreign("host_tenant_id"));
                }
                non_empty(self.client_id.as_ref(), "client_id", MAX_CLAIM_BYTES)?;
                if let Some(cnf) = &self.cnf {
                    non_empty(cnf.jkt.as_ref(), "cnf.jkt", 64)?;
                }
            }
            TokenKind::Host => {
                if self.client_id.is_some() {
                    return Err(foreign("client_id"));
                }
                if self.cnf.is_some() {
                    return Err(foreign("cnf"));
                }
                non_empty(
                    self.host_tenant_id.as_ref(),
                    "host_tenant_id",
                    MAX_CLAIM_BYTES,
                )?;
            }
            TokenKind::Service => {
                for (present, claim) in [
                    (self.client_id.is_some(), "client_id"),
                    (self.cnf.is_some(), "cnf"),
                    (self.host_tenant_id.is_some(), "host_tenant_id"),
                ] {
                    if present {
                        return Err(foreign(claim));
                    }
                }
                non_empty(self.scope.as_ref(), "scope", MAX_SCOPE_BYTES)?;
            }
        }
        Ok(())
    }
}

/// A token that passed its profile: header, registered claims, the kind's own claims and
/// the caller's claims `T`.
#[derive(Debug, Clone)]
pub struct VerifiedToken<T> {
    kind: TokenKind,
    header: Header,
    registered: RegisteredClaims,
    pub(crate) shape: Shape,
    custom: T,
}

impl<T> VerifiedToken<T> {
    /// The kind of the profile that accepted the token.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }
    /// The verified header.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`).
    #[must_use]
    pub fn registered(&self) -> &RegisteredClaims {
        &self.registered
    }
    /// `client_id` (access tokens).
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.shape.client_id.as_deref()
    }
    /// `scope`, space-separated (access and service tokens).
    #[must_use]
    pub fn scope(&self) -> Option<&str> {
        self.shape.scope.as_deref()
    }
    /// `cnf.jkt`: the thumbprint of the DPoP key an access token is bound to.
    #[must_use]
    pub fn jkt(&self) -> Option<&str> {
        self.shape.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }
    /// `host_tenant_id` (host tokens).
    #[must_use]
    pub fn host_tenant_id(&self) -> Option<&str> {
        self.shape.host_tenant_id.as_deref()
    }
    /// The caller's claims.
    #[must_use]
    pub fn custom(&self) -> &T {
        &self.custom
    }
    /// Consumes into the caller's claims.
    #[must_use]
    pub fn into_custom(self) -> T {
        self.custom
    }
}

/// What verifying through a [`JwksCache`] decided.
#[must_use = "a fetch request must be performed, or the token is not verified yet"]
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome<V> {
    /// The token verified.
    Verified(V),
    /// The token verified with a key that is due for refresh: perform `fetch` in the
    /// background and hand the result to [`JwksCache::on_fetch_complete`].
    VerifiedRefresh {
        /// The verified token.
        value: V,
        /// The refresh to perform.
        fetch: FetchRequest,
    },
    /// No usable key is held: perform this fetch, feed the result to the cache, then
    /// verify again.
    Fetch(FetchRequest),
    /// A fetch that may bring the key is in flight: verify again once it completes, or
    /// refuse the request now; the cache never blocks.
    Wait {
        /// The fetch in flight.
        id: FetchId,
        /// When the cache gives up on it.
        deadline: UnixTime,
    },
}

impl<V> Outcome<V> {
    /// The verified value, if the token verified.
    pub fn verified(self) -> Option<V> {
        match self {
            Self::Verified(v) | Self::VerifiedRefresh { value: v, .. } => Some(v),
            Self::Fetch(_) | Self::Wait { .. } => None,
        }
    }
}

/// A verification profile for one token kind. Built with [`Verifier::builder`], which
/// refuses an incomplete policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    kind: TokenKind,
    validation: Validation,
    replay: bool,
}

/// Builds a [`Verifier`]: algorithms, issuers and audiences are required; the rest has
/// safe defaults (leeway 60 s, 16 KiB cap).
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    kind: TokenKind,
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_bytes: usize,
    max_lifetime: Option<u64>,
    required: Vec<Claim>,
    replay: Option<bool>,
}

impl VerifierBuilder {
    /// Accepts this issuer spelling (call once per spelling, for example both
    /// `accounts.google.com` and `https://accounts.google.com`). Compared exactly.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }
    /// Accepts this audience (call once per audience).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }
    /// Allows this algorithm (call once per algorithm; at least one is required). The
    /// key's own algorithm must still match the header.
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        if !self.algorithms.contains(&alg) {
            self.algorithms.push(alg);
        }
        self
    }
    /// Clock leeway for `exp`, `nbf`, `iat` in seconds (0 to 300, default 60).
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }
    /// Token-size cap in bytes, checked before decoding (default 16 KiB, at most 1 MiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
    /// Refuses tokens whose `exp - iat` is longer than this.
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime = Some(secs);
        self
    }
    /// Requires a registered claim beyond the kind's own required set.
    pub fn require(mut self, claim: Claim) -> Self {
        if !self.required.contains(&claim) {
            self.required.push(claim);
        }
        self
    }
    /// Whether `jti` replay is enforced (results then come back [`Unconfirmed`]).
    /// Host tokens always enforce it; access tokens, presented many times, never do.
    pub fn enforce_replay(mut self, on: bool) -> Self {
        self.replay = Some(on);
        self
    }

    /// Finishes the profile.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] when no algorithm, issuer or audience was given, when the
    /// algorithms break the kind's rule (host tokens: EdDSA only; service tokens: no
    /// HS256), when replay is set against the kind's rule, or a bound is out of range.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        if self.algorithms.is_empty() {
            return Err(VerifyError::Policy(
                "no algorithm allowed: call .algorithm(..) at least once",
            ));
        }
        if self.issuers.is_empty() {
            return Err(VerifyError::Policy(
                "no issuer accepted: call .issuer(..) once per accepted spelling",
            ));
        }
        if self.audiences.is_empty() {
            return Err(VerifyError::Policy(
                "no audience accepted: call .audience(..) at least once",
            ));
        }
        let replay = match (self.kind, self.replay) {
            (TokenKind::Host, Some(false)) => {
                return Err(VerifyError::Policy(
                    "host tokens are one-time: jti replay cannot be disabled",
                ));
            }
            (TokenKind::Access, Some(true)) => {
                return Err(VerifyError::Policy(
                    "access tokens are presented many times: enforce replay on their DPoP proofs instead",
                ));
            }
            (TokenKind::Host, _) => true,
            (_, r) => r.unwrap_or(false),
        };
        match self.kind {
            TokenKind::Host
                if self
                    .algorithms
                    .iter()
                    .any(|a| !crate::host::HOST_ALGORITHMS.contains(a)) =>
            {
                return Err(VerifyError::Policy(
                    "host tokens are signed with EdDSA (the default), ES256 or RS256 only",
                ));
            }
            TokenKind::Service if self.algorithms.contains(&Algorithm::HS256) => {
                return Err(VerifyError::Policy(
                    "service tokens are verified with a public key only: HS256 would let every backend mint",
                ));
            }
            _ => {}
        }
        let mut b = Validation::builder()
            .typ(self.kind.typ())
            .leeway(self.leeway)
            .max_bytes(self.max_bytes)
            .require(Claim::Iat)
            .require(Claim::Jti)
            .require(Claim::Sub);
        for i in self.issuers {
            b = b.issuer(i);
        }
        for a in self.audiences {
            b = b.audience(a);
        }
        for a in self.algorithms {
            b = b.algorithm(a);
        }
        for c in self.required {
            b = b.require(c);
        }
        if let Some(l) = self.max_lifetime {
            b = b.max_lifetime(l);
        }
        if replay {
            b = b.replay(self.kind.replay_purpose());
        }
        let validation = b.build()?;
        Ok(Verifier {
            kind: self.kind,
            validation,
            replay,
        })
    }
}

impl Verifier {
    /// Starts a profile for `kind`; its `typ` is fixed by the kind.
    pub fn builder(kind: TokenKind) -> VerifierBuilder {
        VerifierBuilder {
            kind,
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: Vec::new(),
            leeway: 60,
            max_bytes: jws::DEFAULT_MAX_TOKEN_BYTES,
            max_lifetime: None,
            required: Vec::new(),
            replay: None,
        }
    }

    /// The kind this profile accepts.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Whether `jti` replay is enforced.
    #[must_use]
    pub fn enforces_replay(&self) -> bool {
        self.replay
    }

    /// The underlying `identity-core` policy.
    #[must_use]
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    fn finish<T>(&self, v: Verified<Claims<T>>) -> Result<VerifiedToken<T>, VerifyError> {
        let (header, registered, claims) = v.into_parts();
        claims.shape.check(self.kind)?;
        Ok(VerifiedToken {
            kind: self.kind,
            header,
            registered,
            shape: claims.shape,
            custom: claims.custom,
        })
    }

    /// Verifies a token of this profile's kind with keys the caller holds.
    ///
    /// # Errors
    /// A precise [`VerifyError`]; [`VerifyError::Policy`] when the profile enforces
    /// replay (use [`Verifier::verify_once`]).
    pub fn verify<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        now: UnixTime,
    ) -> Result<VerifiedToken<T>, VerifyError> {
        self.verify_decoded(self.validation.decode(token)?, keys, now)
    }

    fn verify_decoded<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        compact: Compact<'_>,
        keys: &K,
        now: UnixTime,
    ) -> Result<VerifiedToken<T>, VerifyError> {
        let v = handoff_core::verify_decoded::<Claims<T>, K>(compact, keys, &self.validation, now)?;
        self.finish(v)
    }

    /// Verifies a token of a replay-enforcing profile; the result must be confirmed
    /// against a [`handoff_core::replay::ReplayLog`] (its entry lives until `exp` +
    /// leeway) before it can be read.
    ///
    /// # Errors
    /// As [`Verifier::verify`]; [`VerifyError::Policy`] when replay is not enforced.
    pub fn verify_once<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        now: UnixTime,
    ) -> Result<Unconfirmed<VerifiedToken<T>>, VerifyError> {
        self.verify_decoded_once(self.validation.decode(token)?, keys, now)
    }

    fn verify_decoded_once<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        compact: Compact<'_>,
        keys: &K,
        now: UnixTime,
    ) -> Result<Unconfirmed<VerifiedToken<T>>, VerifyError> {
        let u = handoff_core::verify_decoded_once::<Claims<T>, K>(
            compact,
            keys,
            &self.validation,
            now,
        )?;
        // The kind's own checks run on the still-unconfirmed value; nothing is recorded
        // when they fail.
        u.try_map(|v| self.finish(v))
    }

    fn with_cache<V>(
        &self,
        token: &str,
        cache: &mut JwksCache,
        now: UnixTime,
        verify: impl FnOnce(Compact<'_>, &handoff_core::VerifyingKey) -> Result<V, VerifyError>,
    ) -> Result<Outcome<V>, VerifyError> {
        // Decoded once, under the profile's own policy (size, format, crit, typ, algorithm),
        // so no token the profile would refuse anyway triggers a fetch.
        let compact = self.validation.decode(token)?;
        let (kid, alg) = (compact.header().kid(), compact.header().alg());
        match cache.lookup(now, kid, alg) {
            Lookup::Use(key) => verify(compact, key).map(Outcome::Verified),
            Lookup::UseAndRefresh(key, fetch) => match verify(compact, key) {
                Ok(value) => Ok(Outcome::VerifiedRefresh { value, fetch }),
                Err(e) => {
                    // A bad token must not swallow the refresh it was handed.
                    cache.cancel_fetch(fetch.id);
                    Err(e)
                }
            },
            Lookup::Fetch(req) => Ok(Outcome::Fetch(req)),
            Lookup::Wait { id, deadline } => Ok(Outcome::Wait { id, deadline }),
            Lookup::Reject(r) => Err(r.into()),
        }
    }

    /// Verifies with the issuer's key set held by `cache`: either the token verifies, or
    /// the outcome says which fetch to perform (or wait for) first.
    ///
    /// # Errors
    /// As [`Verifier::verify`], and the cache's refusals ([`VerifyError::UnknownKidRateLimited`],
    /// [`VerifyError::KeySetUnavailable`], ambiguous or mismatched keys).
    pub fn verify_with_cache<T: DeserializeOwned>(
        &self,
        token: &str,
        cache: &mut JwksCache,
        now: UnixTime,
    ) -> Result<Outcome<VerifiedToken<T>>, VerifyError> {
        self.with_cache(token, cache, now, |c, key| self.verify_decoded(c, key, now))
    }

    /// [`Verifier::verify_once`] through a [`JwksCache`].
    ///
    /// # Errors
    /// As [`Verifier::verify_with_cache`].
    pub fn verify_once_with_cache<T: DeserializeOwned>(
        &self,
        token: &str,
        cache: &mut JwksCache,
        now: UnixTime,
    ) -> Result<Outcome<Unconfirmed<VerifiedToken<T>>>, VerifyError> {
        self.with_cache(token, cache, now, |c, key| {
            self.verify_decoded_once(c, key, now)
        })
    }
}
