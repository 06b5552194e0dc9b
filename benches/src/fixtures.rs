//! The one token shape, keys and policies every benchmark uses, so that all
//! implementations sign and verify the same bytes under the same checks.
//!
//! The keys in `benches/data/` are fixed benchmark-only keys (checked in so that runs
//! are reproducible and tests need no RSA key generation); never use them elsewhere.

use handoff_core::jws::{self, SignHeader};
use handoff_core::replay::{InMemoryReplayLog, ReplayKey, ReplayLog, ReplayVerdict};
use handoff_core::{Algorithm, Jwks, SigningKey, UnixTime, Validation, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The `iss` of every benchmark token.
pub const ISSUER: &str = "https://issuer.example";
/// The `aud` of every benchmark token.
pub const AUDIENCE: &str = "https://api.example";
/// The `sub` of every benchmark token.
pub const SUBJECT: &str = "user-4f1c2a";
/// The `jti` of every benchmark token.
pub const JTI: &str = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
/// Token lifetime in seconds.
pub const LIFETIME_SECS: u64 = 3600;
/// Clock leeway every verifier is configured with, in seconds.
pub const LEEWAY_SECS: u64 = 60;
/// The `typ` header every benchmark token carries (all peers write this one).
pub const TYP: &str = "JWT";
/// The HS256 secret shared by every implementation (32 bytes).
pub const HS256_SECRET: &[u8; 32] = b"bench-only-hs256-secret-32-bytes";

/// Ed25519 private key, PKCS#8 PEM (benchmark only).
pub const ED25519_PEM: &str = include_str!("../data/ed25519.pem");
/// Ed25519 public key, SPKI PEM.
pub const ED25519_PUB_PEM: &str = include_str!("../data/ed25519.pub.pem");
/// P-256 private key, PKCS#8 PEM (benchmark only).
pub const P256_PEM: &str = include_str!("../data/p256.pem");
/// P-256 public key, SPKI PEM.
pub const P256_PUB_PEM: &str = include_str!("../data/p256.pub.pem");
/// RSA-2048 private key, PKCS#8 PEM (benchmark only).
pub const RSA_PEM: &str = include_str!("../data/rsa2048.pem");
/// RSA-2048 public key, SPKI PEM.
pub const RSA_PUB_PEM: &str = include_str!("../data/rsa2048.pub.pem");

/// The algorithms compared against the peers, in report order.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

/// The claims of every benchmark token: `{iss, sub, aud, exp, iat, jti}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience (a single string).
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// JWT id.
    pub jti: String,
}

impl BenchClaims {
    /// The claims of a token issued at `now`.
    #[must_use]
    pub fn issued_at(now: UnixTime) -> Self {
        Self {
            iss: ISSUER.to_owned(),
            sub: SUBJECT.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now.as_secs() + LIFETIME_SECS,
            iat: now.as_secs(),
            jti: JTI.to_owned(),
        }
    }
}

/// [`BenchClaims`] with its strings borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BenchClaimsRef<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Subject.
    pub sub: &'a str,
    /// Audience (a single string).
    pub aud: &'a str,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// JWT id.
    pub jti: &'a str,
}

/// No claims beyond the registered ones (identity-core reads those itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct NoCustomClaims {}

/// The private key PEM for an asymmetric algorithm (`None` for HS256).
#[must_use]
pub fn private_pem(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::EdDSA => Some(ED25519_PEM),
        Algorithm::ES256 => Some(P256_PEM),
        Algorithm::RS256 | Algorithm::PS256 => Some(RSA_PEM),
        _ => None,
    }
}

/// The public key PEM for an asymmetric algorithm (`None` for HS256).
#[must_use]
pub fn public_pem(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::EdDSA => Some(ED25519_PUB_PEM),
        Algorithm::ES256 => Some(P256_PUB_PEM),
        Algorithm::RS256 | Algorithm::PS256 => Some(RSA_PUB_PEM),
        _ => None,
    }
}

/// identity-core's signing key for `alg`, from the fixed key material.
///
/// # Errors
/// [`Error::Core`] when identity-core refuses the key.
pub fn signing_key(alg: Algorithm) -> Result<SigningKey, Error> {
    Ok(match private_pem(alg) {
        Some(pem) => SigningKey::from_pem(pem, alg)?,
        None => SigningKey::hs256(HS256_SECRET.to_vec())?,
    })
}

/// The policy every `ours` verification runs: signature with the key's algorithm,
/// `exp` with [`LEEWAY_SECS`], `iss` and `aud`.
///
/// # Errors
/// [`Error::Core`] when identity-core refuses the policy.
pub fn policy(alg: Algorithm) -> Result<Validation, Error> {
    Ok(Validation::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithm(alg)
        .leeway(LEEWAY_SECS)
        .build()?)
}

/// The header `ours` signs with (`typ: JWT`, no `kid`), the same as the peers write.
#[must_use]
pub fn sign_header() -> SignHeader<'static> {
    SignHeader {
        typ: Some(TYP),
        kid: None,
        jwk: None,
    }
}

/// One algorithm's keys and the token every implementation verifies.
#[derive(Debug)]
pub struct Fixture {
    /// The algorithm.
    pub alg: Algorithm,
    /// identity-core's signing key.
    pub signing: SigningKey,
    /// identity-core's verifying key.
    pub verifying: VerifyingKey,
    /// The claims inside [`Fixture::token`].
    pub claims: BenchClaims,
    /// The compact token, signed by identity-core.
    pub token: String,
}

impl Fixture {
    /// Builds the fixture for `alg`, with a token issued at `now`.
    ///
    /// # Errors
    /// [`Error::Core`] when identity-core refuses the key or cannot sign.
    pub fn new<R: CryptoRng + ?Sized>(
        alg: Algorithm,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let signing = signing_key(alg)?;
        let verifying = signing.verifying_key();
        let claims = BenchClaims::issued_at(now);
        let token = sign_claims(&signing, &claims, rng)?;
        Ok(Self {
            alg,
            signing,
            verifying,
            claims,
            token,
        })
    }

    /// `BASE64URL(header) || '.' || BASE64URL(payload)` of the token.
    #[must_use]
    pub fn signing_input(&self) -> &str {
        self.token
            .rsplit_once('.')
            .map_or(self.token.as_str(), |(input, _)| input)
    }

    /// The raw signature bytes of the token (empty if the token were malformed).
    #[must_use]
    pub fn signature(&self) -> Vec<u8> {
        self.token
            .rsplit_once('.')
            .and_then(|(_, sig)| handoff_core::b64::decode(sig).ok())
            .unwrap_or_default()
    }
}

/// What `ours` does to sign: serialize the claims, then [`jws::sign`].
///
/// # Errors
/// [`Error::Core`] when signing fails.
pub fn sign_claims<R: CryptoRng + ?Sized>(
    key: &SigningKey,
    claims: &BenchClaims,
    rng: &mut R,
) -> Result<String, Error> {
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Json {
        path: "<benchmark claims>".into(),
        detail: e.to_string(),
    })?;
    Ok(jws::sign(key, &sign_header(), &payload, rng)?)
}

/// What `ours` does to verify: [`handoff_core::verify`] with [`policy`].
///
/// # Errors
/// [`Error::Core`] with the reason the token was refused.
pub fn verify_ours(
    token: &str,
    key: &VerifyingKey,
    policy: &Validation,
    now: UnixTime,
) -> Result<handoff_core::Verified<NoCustomClaims>, Error> {
    Ok(handoff_core::verify::<NoCustomClaims, _>(
        token, key, policy, now,
    )?)
}

/// The `kid` of key `i` in [`jwks_of`] sets.
#[must_use]
pub fn kid(i: usize) -> String {
    format!("bench-key-{i:04}")
}

/// A key set of `n` fresh Ed25519 keys with distinct `kid`s ([`kid`]`(0)` to
/// `kid(n - 1)`).
///
/// # Errors
/// [`Error::Core`] when identity-core refuses a key.
pub fn jwks_of<R: CryptoRng + ?Sized>(n: usize, rng: &mut R) -> Result<Jwks, Error> {
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = SigningKey::generate(Algorithm::EdDSA, rng)?;
        keys.push(key.verifying_key().with_kid(kid(i))?);
    }
    Ok(Jwks::from_keys(keys)?)
}

/// The replay key of the `i`-th benchmark value.
#[must_use]
pub fn replay_key(i: u64) -> ReplayKey {
    ReplayKey::derive("bench/jti", &[ISSUER.as_bytes(), &i.to_le_bytes()])
}

/// Fills `log` with keys `0..n`, each live until a time spread evenly over one hour
/// starting at `first_until` (as access tokens of a one-hour lifetime would be).
/// Returns how many were accepted as fresh.
///
/// # Errors
/// [`Error::Store`] when the log cannot answer.
pub fn prefill(
    log: &InMemoryReplayLog,
    n: u64,
    first_until: UnixTime,
    now: UnixTime,
) -> Result<u64, Error> {
    let mut fresh = 0;
    for i in 0..n {
        let until = first_until.saturating_add(i % 3600);
        match log.check_and_insert(&replay_key(i), until, now) {
            Ok(ReplayVerdict::Fresh) => fresh += 1,
            Ok(_) => {}
            Err(e) => return Err(Error::Store(e)),
        }
    }
    Ok(fresh)
}

/// One entry of the large custom claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// A number.
    pub id: u64,
    /// A resource name.
    pub resource: String,
    /// Actions on it.
    pub actions: Vec<String>,
}

/// The benchmark claims plus about 16 KB of custom claims (`grants`), for the
/// `verify-large/<ALG>` groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeClaims {
    /// The registered claims of every benchmark token.
    #[serde(flatten)]
    pub base: BenchClaims,
    /// Custom claims: a list of grants.
    pub grants: Vec<Grant>,
}

/// Bytes of custom claims in [`LargeClaims::issued_at`] (at least).
pub const LARGE_CLAIMS_BYTES: usize = 16 * 1024;

impl LargeClaims {
    /// The claims of a large token issued at `now`: [`BenchClaims`] and grants up to
    /// [`LARGE_CLAIMS_BYTES`] of JSON.
    #[must_use]
    pub fn issued_at(now: UnixTime) -> Self {
        let mut grants = Vec::new();
        let mut len = 0;
        let mut id = 0;
        while len < LARGE_CLAIMS_BYTES {
            let g = Grant {
                id,
                resource: format!("urn:example:resource:{id:05}/documents"),
                actions: vec!["read".into(), "write".into(), "share".into()],
            };
            len += serde_json::to_string(&g).map_or(0, |s| s.len() + 1);
            grants.push(g);
            id += 1;
        }
        Self {
            base: BenchClaims::issued_at(now),
            grants,
        }
    }
}

/// What the verifiers read from a large token besides the registered claims (which
/// identity-core and jsonwebtoken each check themselves): the grants, as a plain struct.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LargeCustom {
    /// Custom claims: a list of grants.
    pub grants: Vec<Grant>,
}

/// [`Grant`] with its strings borrowed from the token's decoded payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GrantRef<'p> {
    /// A number.
    pub id: u64,
    /// A resource name.
    pub resource: &'p str,
    /// Actions on it.
    #[serde(borrow)]
    pub actions: Vec<&'p str>,
}

/// [`LargeCustom`] read with [`handoff_core::verify_decoded_borrowed`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LargeCustomRef<'p> {
    /// Custom claims: a list of grants.
    #[serde(borrow)]
    pub grants: Vec<GrantRef<'p>>,
}

impl GrantRef<'_> {
    /// Whether this is the same grant as `g`.
    #[must_use]
    pub fn same_as(&self, g: &Grant) -> bool {
        self.id == g.id && self.resource == g.resource && self.actions == g.actions
    }
}

/// Token cap of the large-token policy (the default 16 KiB is below the large token).
pub const LARGE_MAX_BYTES: usize = 64 * 1024;

/// [`policy`] with the cap raised to [`LARGE_MAX_BYTES`].
///
/// # Errors
/// [`Error::Core`] when identity-core refuses the policy.
pub fn large_policy(alg: Algorithm) -> Result<Validation, Error> {
    Ok(Validation::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithm(alg)
        .leeway(LEEWAY_SECS)
        .max_bytes(LARGE_MAX_BYTES)
        .build()?)
}

/// A large token (see [`LargeClaims`]) signed with `key`.
///
/// # Errors
/// [`Error::Core`] when signing fails.
pub fn sign_large<R: CryptoRng + ?Sized>(
    key: &SigningKey,
    claims: &LargeClaims,
    rng: &mut R,
) -> Result<String, Error> {
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Json {
        path: "<large benchmark claims>".into(),
        detail: e.to_string(),
    })?;
    Ok(jws::sign(key, &sign_header(), &payload, rng)?)
}

/// What `ours` does to verify a large token: [`handoff_core::verify`] into
/// [`LargeCustom`] with [`large_policy`].
///
/// # Errors
/// [`Error::Core`] with the reason the token was refused.
pub fn verify_large(
    token: &str,
    key: &VerifyingKey,
    policy: &Validation,
    now: UnixTime,
) -> Result<handoff_core::Verified<LargeCustom>, Error> {
    Ok(handoff_core::verify::<LargeCustom, _>(
        token, key, policy, now,
    )?)
}

/// What `ours-borrowed` does to verify a large token: [`Validation::decode`], then
/// [`handoff_core::verify_decoded_borrowed`] into [`LargeCustomRef`] (grants borrowed from
/// the payload); `check` sees the grants before the token is dropped.
///
/// # Errors
/// [`Error::Core`] with the reason the token was refused.
pub fn verify_large_borrowed<R>(
    token: &str,
    key: &VerifyingKey,
    policy: &Validation,
    now: UnixTime,
    check: impl FnOnce(&[GrantRef<'_>]) -> R,
) -> Result<R, Error> {
    let compact = policy.decode(token)?;
    let verified =
        handoff_core::verify_decoded_borrowed::<LargeCustomRef<'_>, _>(&compact, key, policy, now)?;
    Ok(check(&verified.custom().grants))
}
