//! The ID-token profile (OpenID Connect Core section 3.1.3.7), verified through the
//! family's policy and JWKS cache.
//!
//! ID tokens carry `typ` `JWT` or none at all, so this profile accepts exactly those two
//! and nothing else: the family's own kinds (`at+jwt`, `host+jwt`, `service+jwt`,
//! `dpop+jwt`) are refused here, and each of their profiles refuses an ID token because
//! it lacks their `typ`.

use handoff_core::claims::{Claim, typ_matches};
use handoff_core::jws::Compact;
use handoff_core::{Algorithm, KeySource, UnixTime, Validation, VerifyingKey};
use handoff_verify::{JwksCache, Lookup, Outcome};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use crate::error::LoginError;

/// Google's two issuer spellings (both appear in Google ID tokens).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// `email_verified` as providers send it: a boolean, or (some Google tokens) the strings
/// `"true"` / `"false"`.
fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    match B::deserialize(d)? {
        B::B(b) => Ok(Some(b)),
        B::S(s) if s == "true" => Ok(Some(true)),
        B::S(s) if s == "false" => Ok(Some(false)),
        B::S(_) => Err(serde::de::Error::custom(
            "email_verified must be a boolean (or \"true\"/\"false\")",
        )),
    }
}

#[derive(Deserialize)]
struct IdClaims<T> {
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: Option<bool>,
    #[serde(default)]
    hd: Option<String>,
    #[serde(flatten)]
    custom: T,
}

/// A verified ID token: the subject, the identity claims and the caller's claims `T`.
#[derive(Debug, Clone)]
pub struct IdToken<T> {
    iss: String,
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    hd: Option<String>,
    expires_at: UnixTime,
    custom: T,
}

impl<T> IdToken<T> {
    /// `iss`, as the token spelled it (one of the accepted spellings).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.iss
    }
    /// `sub`: the account at the provider (unique per issuer).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// `email`, if present.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// `email` only when `email_verified` is true.
    #[must_use]
    pub fn verified_email(&self) -> Option<&str> {
        match self.email_verified {
            Some(true) => self.email.as_deref(),
            _ => None,
        }
    }
    /// `email_verified`, if present.
    #[must_use]
    pub fn email_verified(&self) -> Option<bool> {
        self.email_verified
    }
    /// `hd` (Google Workspace domain), if present.
    #[must_use]
    pub fn hosted_domain(&self) -> Option<&str> {
        self.hd.as_deref()
    }
    /// `exp`.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The caller's claims.
    #[must_use]
    pub fn custom(&self) -> &T {
        &self.custom
    }
}

/// Verifies ID tokens for one client. Built with [`IdTokenVerifier::builder`].
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    validation: Validation,
    client_id: String,
    require_email_verified: bool,
    hosted_domains: Vec<String>,
}

/// Builds an [`IdTokenVerifier`]; at least one issuer spelling is required.
#[derive(Debug, Clone)]
#[must_use]
pub struct IdTokenVerifierBuilder {
    client_id: String,
    issuers: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_lifetime: Option<u64>,
    require_email_verified: bool,
    hosted_domains: Vec<String>,
}

impl IdTokenVerifierBuilder {
    /// Accepts this issuer spelling (compared exactly; call once per spelling).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }
    /// Allows this signing algorithm (default: RS256 only, the OpenID Connect default).
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        if !self.algorithms.contains(&alg) {
            self.algorithms.push(alg);
        }
        self
    }
    /// Clock leeway in seconds (default 60, at most 300).
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }
    /// Refuses tokens living longer than this (`exp - iat`).
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime = Some(secs);
        self
    }
    /// Requires `email_verified: true` (and an `email`).
    pub fn require_verified_email(mut self) -> Self {
        self.require_email_verified = true;
        self
    }
    /// Requires `hd` to be this Workspace domain (call once per accepted domain).
    pub fn hosted_domain(mut self, hd: impl Into<String>) -> Self {
        self.hosted_domains.push(hd.into());
        self
    }

    /// Finishes the profile.
    ///
    /// # Errors
    /// [`LoginError::Config`] without an issuer, with HS256 (an ID token is verified with
    /// the provider's public keys), or a bound out of range.
    pub fn build(self) -> Result<IdTokenVerifier, LoginError> {
        if self.issuers.is_empty() {
            return Err(LoginError::Config(
                "no issuer accepted: call .issuer(..) once per spelling",
            ));
        }
        if self.client_id.is_empty() {
            return Err(LoginError::Config("client_id is empty"));
        }
        let algorithms = if self.algorithms.is_empty() {
            vec![Algorithm::RS256]
        } else {
            self.algorithms
        };
        if algorithms.contains(&Algorithm::HS256) {
            return Err(LoginError::Config(
                "HS256 ID tokens are not accepted: verify with the provider's public keys",
            ));
        }
        let mut b = Validation::builder()
            .audience(self.client_id.clone())
            .leeway(self.leeway)
            .require(Claim::Sub)
            .require(Claim::Iat)
            .require(Claim::Aud);
        for i in self.issuers {
            b = b.issuer(i);
        }
        for a in algorithms {
            b = b.algorithm(a);
        }
        if let Some(l) = self.max_lifetime {
            b = b.max_lifetime(l);
        }
        let validation = b.build().map_err(|e| LoginError::IdToken(e.into()))?;
        Ok(IdTokenVerifier {
            validation,
            client_id: self.client_id,
            require_email_verified: self.require_email_verified,
            hosted_domains: self.hosted_domains,
        })
    }
}

fn claim_err(claim: &'static str, reason: &'static str) -> LoginError {
    LoginError::IdTokenClaim { claim, reason }
}

impl IdTokenVerifier {
    /// A profile for `client_id` (the `aud` it must carry).
    pub fn builder(client_id: impl Into<String>) -> IdTokenVerifierBuilder {
        IdTokenVerifierBuilder {
            client_id: client_id.into(),
            issuers: Vec::new(),
            algorithms: Vec::new(),
            leeway: 60,
            max_lifetime: None,
            require_email_verified: false,
            hosted_domains: Vec::new(),
        }
    }

    /// The Google preset: both of Google's issuer spellings, RS256.
    pub fn google(client_id: impl Into<String>) -> IdTokenVerifierBuilder {
        let mut b = Self::builder(client_id).algorithm(Algorithm::RS256);
        for i in GOOGLE_ISSUERS {
            b = b.issuer(i);
        }
        b
    }

    /// Decodes under the policy and checks `typ`: absent or `JWT` only.
    fn decode<'a>(&self, token: &'a str) -> Result<Compact<'a>, LoginError> {
        let compact = self.validation.decode(token)?;
        match compact.header().typ() {
            None => {}
            Some(t) if typ_matches(t, "JWT") => {}
            Some(t) => {
                return Err(handoff_core::Error::WrongType {
                    expected: "JWT (or no typ) for an ID token".into(),
                    found: Some(t.chars().take(64).collect()),
                }
                .into());
            }
        }
        Ok(compact)
    }

    fn finish<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        compact: Compact<'_>,
        keys: &K,
        nonce: &str,
        now: UnixTime,
    ) -> Result<IdToken<T>, LoginError> {
        let v =
            handoff_core::verify_decoded::<IdClaims<T>, K>(compact, keys, &self.validation, now)?;
        let (_, reg, c) = v.into_parts();
        // Several audiences: `azp` must be present and name this client; one audience:
        // `azp`, when present, must still name this client (Core 3.1.3.7 steps 4 and 5).
        let many = reg.aud.as_ref().is_some_and(|a| a.iter().count() > 1);
        match c.azp.as_deref() {
            None if many => return Err(claim_err("azp", "required when aud has several values")),
            Some(azp) if azp != self.client_id => {
                return Err(claim_err("azp", "names another client"));
            }
            _ => {}
        }
        let found = c.nonce.as_deref().ok_or(claim_err(
            "nonce",
            "missing: the login sent a nonce, the ID token must echo it",
        ))?;
        if !bool::from(found.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(claim_err(
                "nonce",
                "does not match the nonce of this login (replayed or injected ID token)",
            ));
        }
        if self.require_email_verified && (c.email.is_none() || c.email_verified != Some(true)) {
            return Err(claim_err("email_verified", "the email is not verified"));
        }
        if !self.hosted_domains.is_empty() {
            let hd =
                c.hd.as_deref()
                    .ok_or(claim_err("hd", "missing: a hosted domain is required"))?;
            if !self.hosted_domains.iter().any(|d| d == hd) {
                return Err(claim_err("hd", "is not an accepted hosted domain"));
            }
        }
        Ok(IdToken {
            iss: reg.iss.unwrap_or_default(),
            sub: reg.sub.unwrap_or_default(),
            email: c.email,
            email_verified: c.email_verified,
            hd: c.hd,
            expires_at: UnixTime::from_secs(reg.exp.map_or(0, |e| e.0)),
            custom: c.custom,
        })
    }

    /// Verifies an ID token with keys the caller holds, against the login's `nonce`.
    ///
    /// # Errors
    /// [`LoginError::IdToken`] (signature, `typ`, `iss`, `aud`, `exp`, `iat`) and
    /// [`LoginError::IdTokenClaim`] (`azp`, `nonce`, `email_verified`, `hd`).
    pub fn verify<T: DeserializeOwned, K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        nonce: &str,
        now: UnixTime,
    ) -> Result<IdToken<T>, LoginError> {
        self.finish(self.decode(token)?, keys, nonce, now)
    }

    /// Verifies through the provider's [`JwksCache`]: either the token verifies, or the
    /// outcome says which fetch to perform (or wait for) first.
    ///
    /// # Errors
    /// As [`IdTokenVerifier::verify`], and the cache's refusals.
    pub fn verify_with_cache<T: DeserializeOwned>(
        &self,
        token: &str,
        cache: &mut JwksCache,
        nonce: &str,
        now: UnixTime,
    ) -> Result<Outcome<IdToken<T>>, LoginError> {
        // Decoded once, under the profile's own policy, so no token it would refuse
        // anyway triggers a fetch.
        let compact = self.decode(token)?;
        let (kid, alg) = (compact.header().kid(), compact.header().alg());
        let verify = |c: Compact<'_>, key: &VerifyingKey| self.finish(c, key, nonce, now);
        match cache.lookup(now, kid, alg) {
            Lookup::Use(key) => verify(compact, key).map(Outcome::Verified),
            Lookup::UseAndRefresh(key, fetch) => match verify(compact, key) {
                Ok(value) => Ok(Outcome::VerifiedRefresh { value, fetch }),
                Err(e) => {
                    cache.cancel_fetch(fetch.id);
                    Err(e)
                }
            },
            Lookup::Fetch(req) => Ok(Outcome::Fetch(req)),
            Lookup::Wait { id, deadline } => Ok(Outcome::Wait { id, deadline }),
            Lookup::Reject(r) => Err(LoginError::IdToken(r.into())),
            _ => Err(LoginError::Config("unknown JWKS cache lookup result")),
        }
    }
}
