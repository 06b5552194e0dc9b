//! Session access tokens after a host handoff: RFC 9068 claims, `typ` `at+jwt`, bound to a
//! DPoP key with `cnf.jkt` (RFC 9449 section 6).

use core::fmt;

use handoff_core::jws::{self, SignHeader};
use handoff_core::{HmacSecret, KeySource, SigningKey, Thumbprint, UnixTime, VerifyingKey, b64};
use rand_core::CryptoRng;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::VerifyError;
use crate::jwks_cache::JwksCache;
use crate::verifier::{
    ACCESS_TOKEN_TYP, Confirmation, NoCustomClaims, Outcome, TokenKind, VerifiedToken, Verifier,
};

/// Default access-token lifetime (5 minutes).
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 300;
/// Longest access-token lifetime [`mint_access_token`] accepts (1 hour).
pub const MAX_ACCESS_TTL_SECS: u64 = 3600;
/// Random bytes in a minted `jti` (128 bits).
pub const JTI_BYTES: usize = 16;
const MAX_CLAIM_BYTES: usize = 1024;

/// A freshly minted JWT. The token is a bearer credential: `Debug` does not print it.
#[must_use = "a minted token must be handed to the client"]
#[derive(Clone)]
pub struct MintedToken {
    pub(crate) token: String,
    pub(crate) jti: String,
    pub(crate) expires_at: UnixTime,
}

impl MintedToken {
    /// The compact JWT.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.token
    }
    /// Consumes into the compact JWT.
    #[must_use]
    pub fn into_string(self) -> String {
        self.token
    }
    /// Its `jti`.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// Its `exp`.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub(crate) fn random_jti<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut b = [0u8; JTI_BYTES];
    rng.fill_bytes(&mut b);
    b64::encode(&b)
}

pub(crate) fn check_text(v: &str, what: &'static str) -> Result<(), VerifyError> {
    if v.is_empty() || v.len() > MAX_CLAIM_BYTES {
        return Err(VerifyError::Policy(what));
    }
    Ok(())
}

/// `aud` as one string or an array.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum AudOut<'a> {
    One(&'a str),
    Many(&'a [String]),
}

impl<'a> AudOut<'a> {
    pub(crate) fn of(aud: &'a [String]) -> Self {
        match aud {
            [one] => Self::One(one),
            many => Self::Many(many),
        }
    }
}

/// Derives the HS256 key of one token kind from a master secret, so that each kind has
/// its own secret: leaking the access-token key does not let anyone mint another kind,
/// and the other way round. (HMAC-SHA256 of a domain-separated label under the master.)
///
/// # Errors
/// Never in practice (the derived secret is 32 bytes); [`VerifyError::Token`] otherwise.
pub fn derive_hs256_signing_key(
    master: &HmacSecret,
    kind: TokenKind,
) -> Result<SigningKey, VerifyError> {
    let bytes = derive(master, kind);
    Ok(SigningKey::hs256(bytes.to_vec())?)
}

/// The verifying side of [`derive_hs256_signing_key`].
///
/// # Errors
/// As [`derive_hs256_signing_key`].
pub fn derive_hs256_verifying_key(
    master: &HmacSecret,
    kind: TokenKind,
) -> Result<VerifyingKey, VerifyError> {
    let bytes = derive(master, kind);
    Ok(VerifyingKey::hs256(bytes.to_vec())?)
}

fn derive(master: &HmacSecret, kind: TokenKind) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(master.mac_parts(&[b"session-verify/hs256-key/v1\0", kind.typ().as_bytes()]))
}

/// The claims of an access token to mint (RFC 9068 section 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessClaims {
    /// `iss`.
    pub iss: String,
    /// `sub`: the user (or the host tenant's subject).
    pub sub: String,
    /// `aud`: the resource servers (at least one).
    pub aud: Vec<String>,
    /// `client_id`: the client the token was issued to.
    pub client_id: String,
    /// `scope`, space-separated, if any.
    pub scope: Option<String>,
    /// The DPoP key the token is bound to (`cnf.jkt`); `None` mints a bearer token.
    pub jkt: Option<Thumbprint>,
    /// Lifetime in seconds (default 300, at most 3600).
    pub ttl_secs: u64,
}

impl AccessClaims {
    /// Claims with the default lifetime, no scope and no binding.
    #[must_use]
    pub fn new(
        iss: impl Into<String>,
        sub: impl Into<String>,
        aud: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud: vec![aud.into()],
            client_id: client_id.into(),
            scope: None,
            jkt: None,
            ttl_secs: DEFAULT_ACCESS_TTL_SECS,
        }
    }

    /// Binds the token to a DPoP key (its RFC 7638 thumbprint, from the verified proof).
    #[must_use]
    pub fn bound_to(mut self, jkt: Thumbprint) -> Self {
        self.jkt = Some(jkt);
        self
    }

    /// Sets `scope`.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn with_ttl(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }
}

#[derive(Serialize)]
struct AccessPayload<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: AudOut<'a>,
    exp: u64,
    iat: u64,
    jti: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// Mints an access token (`typ` `at+jwt`) signed with `key` under the key's own
/// algorithm (EdDSA recommended; an HS256 key must come from
/// [`derive_hs256_signing_key`] with [`TokenKind::Access`]).
///
/// # Errors
/// [`VerifyError::Policy`] for empty or oversize claims, no audience, a lifetime of 0 or
/// over [`MAX_ACCESS_TTL_SECS`]; [`VerifyError::Token`] if signing fails.
pub fn mint_access_token<R: CryptoRng + ?Sized>(
    claims: &AccessClaims,
    key: &SigningKey,
    now: UnixTime,
    rng: &mut R,
) -> Result<MintedToken, VerifyError> {
    check_text(&claims.iss, "iss must be 1 to 1024 bytes")?;
    check_text(&claims.sub, "sub must be 1 to 1024 bytes")?;
    check_text(&claims.client_id, "client_id must be 1 to 1024 bytes")?;
    if claims.aud.is_empty() {
        return Err(VerifyError::Policy(
            "an access token needs at least one audience",
        ));
    }
    for a in &claims.aud {
        check_text(a, "each aud must be 1 to 1024 bytes")?;
    }
    if let Some(s) = &claims.scope {
        check_text(s, "scope must be 1 to 1024 bytes")?;
    }
    if claims.ttl_secs == 0 || claims.ttl_secs > MAX_ACCESS_TTL_SECS {
        return Err(VerifyError::Policy(
            "access-token lifetime must be 1 to 3600 s",
        ));
    }
    let jti = random_jti(rng);
    let exp = now.saturating_add(claims.ttl_secs);
    let payload = AccessPayload {
        iss: &claims.iss,
        sub: &claims.sub,
        aud: AudOut::of(&claims.aud),
        exp: exp.as_secs(),
        iat: now.as_secs(),
        jti: &jti,
        client_id: &claims.client_id,
        scope: claims.scope.as_deref(),
        cnf: claims.jkt.map(|t| Confirmation {
            jkt: Some(t.to_base64url()),
        }),
    };
    let token = sign_json(key, ACCESS_TOKEN_TYP, &payload, rng)?;
    Ok(MintedToken {
        token,
        jti,
        expires_at: exp,
    })
}

pub(crate) fn sign_json<R: CryptoRng + ?Sized>(
    key: &SigningKey,
    typ: &str,
    payload: &impl Serialize,
    rng: &mut R,
) -> Result<String, VerifyError> {
    let json = serde_json::to_vec(payload).map_err(|e| handoff_core::Error::Json {
        part: "claims",
        detail: e.to_string().chars().take(64).collect(),
    })?;
    let header = SignHeader {
        typ: Some(typ),
        ..SignHeader::default()
    };
    Ok(jws::sign(key, &header, &json, rng)?)
}

/// How the access token arrived (RFC 9449 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presented {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: DPoP <token>` with a proof the caller has verified (with the
    /// `dpop` crate, including `ath`); this is the proof key's RFC 7638 thumbprint.
    Dpop {
        /// Thumbprint of the proof's `jwk`.
        proof_thumbprint: Thumbprint,
    },
}

impl Presented {
    /// The presentation of a DPoP proof verified (and confirmed) by the `dpop` crate.
    #[must_use]
    pub fn dpop(proof: &handoff_dpop::DpopProof) -> Self {
        Self::Dpop {
            proof_thumbprint: proof.thumbprint(),
        }
    }
}

impl Presented {
    /// The presentation of a DPoP proof that is verified but not yet recorded in the
    /// replay log: bind the access token first, confirm the proof last (RFC 9449 section
    /// 4.3 step 12), so a refused request never burns the proof's `jti`.
    #[must_use]
    pub fn dpop_unconfirmed(
        proof: &handoff_core::replay::Unconfirmed<handoff_dpop::DpopProof>,
    ) -> Self {
        Self::dpop(proof.get_unconfirmed())
    }
}

impl From<&handoff_dpop::DpopProof> for Presented {
    fn from(proof: &handoff_dpop::DpopProof) -> Self {
        Self::dpop(proof)
    }
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    inner: VerifiedToken<NoCustomClaims>,
}

impl AccessToken {
    /// `sub`.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.inner.registered().sub.as_deref().unwrap_or_default()
    }
    /// `client_id`.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.inner.client_id().unwrap_or_default()
    }
    /// `iss`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.inner.registered().iss.as_deref().unwrap_or_default()
    }
    /// `jti`.
    #[must_use]
    pub fn jti(&self) -> &str {
        self.inner.registered().jti.as_deref().unwrap_or_default()
    }
    /// `exp`.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        UnixTime::from_secs(self.inner.registered().exp.map_or(0, |e| e.0))
    }
    /// The scopes (space-separated `scope`), empty when absent.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner
            .scope()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }
    /// `cnf.jkt`, when the token is DPoP-bound.
    #[must_use]
    pub fn jkt(&self) -> Option<&str> {
        self.inner.jkt()
    }
    /// Everything verified.
    #[must_use]
    pub fn verified(&self) -> &VerifiedToken<NoCustomClaims> {
        &self.inner
    }
}

/// Verifies access tokens and their DPoP binding.
#[derive(Debug, Clone)]
pub struct AccessTokenVerifier {
    verifier: Verifier,
}

impl AccessTokenVerifier {
    /// Wraps an access-token profile.
    ///
    /// # Errors
    /// [`VerifyError::Policy`] when `verifier` is not a [`TokenKind::Access`] profile.
    pub fn new(verifier: Verifier) -> Result<Self, VerifyError> {
        if verifier.kind() != TokenKind::Access {
            return Err(VerifyError::Policy(
                "AccessTokenVerifier needs a profile built for TokenKind::Access",
            ));
        }
        Ok(Self { verifier })
    }

    /// The profile.
    #[must_use]
    pub fn profile(&self) -> &Verifier {
        &self.verifier
    }

    fn bind(
        &self,
        v: VerifiedToken<NoCustomClaims>,
        presented: &Presented,
    ) -> Result<AccessToken, VerifyError> {
        match (v.jkt(), presented) {
            (Some(_), Presented::Bearer) => Err(VerifyError::BoundTokenAsBearer),
            (Some(jkt), Presented::Dpop { proof_thumbprint }) => {
                if handoff_dpop::jkt_matches(proof_thumbprint, jkt) {
                    Ok(AccessToken { inner: v })
                } else {
                    Err(VerifyError::KeyBindingMismatch)
                }
            }
            (None, Presented::Dpop { .. }) => Err(VerifyError::NotDpopBound),
            (None, Presented::Bearer) => Ok(AccessToken { inner: v }),
        }
    }

    /// Verifies the token against `keys`, then its binding: a bound token needs a proof
    /// whose key thumbprint equals `cnf.jkt` (compared in constant time), and is refused
    /// as a bearer token.
    ///
    /// # Errors
    /// A precise [`VerifyError`]; [`VerifyError::BoundTokenAsBearer`],
    /// [`VerifyError::KeyBindingMismatch`], [`VerifyError::NotDpopBound`] for binding.
    pub fn verify<K: KeySource + ?Sized>(
        &self,
        token: &str,
        keys: &K,
        presented: &Presented,
        now: UnixTime,
    ) -> Result<AccessToken, VerifyError> {
        let v = self
            .verifier
            .verify::<NoCustomClaims, K>(token, keys, now)?;
        self.bind(v, presented)
    }

    /// As [`AccessTokenVerifier::verify`], with the issuer's keys in a [`JwksCache`].
    ///
    /// # Errors
    /// As [`AccessTokenVerifier::verify`] and [`Verifier::verify_with_cache`].
    pub fn verify_with_cache(
        &self,
        token: &str,
        cache: &mut JwksCache,
        presented: &Presented,
        now: UnixTime,
    ) -> Result<Outcome<AccessToken>, VerifyError> {
        Ok(
            match self
                .verifier
                .verify_with_cache::<NoCustomClaims>(token, cache, now)?
            {
                Outcome::Verified(v) => Outcome::Verified(self.bind(v, presented)?),
                Outcome::VerifiedRefresh { value, fetch } => match self.bind(value, presented) {
                    Ok(value) => Outcome::VerifiedRefresh { value, fetch },
                    Err(e) => {
                        cache.cancel_fetch(fetch.id);
                        return Err(e);
                    }
                },
                Outcome::Fetch(r) => Outcome::Fetch(r),
                Outcome::Wait { id, deadline } => Outcome::Wait { id, deadline },
            },
        )
    }
}
