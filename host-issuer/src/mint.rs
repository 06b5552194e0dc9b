//! Minting host JWTs: canonical claims, `alg` pinned by the key, explicit `typ`.

use core::fmt;

use handoff_core::jws::{self, SignHeader};
use handoff_core::{UnixTime, b64};
use rand_core::CryptoRng;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::clip;
use crate::{Error, HostIssuerKeys};

/// The header `typ` of every host token (RFC 8725 section 3.11: explicit typing).
/// Verifiers (session-verify) require it, so a host token cannot pass for another kind.
pub const HOST_TOKEN_TYP: &str = "host+jwt";
/// Default token lifetime, in seconds.
pub const DEFAULT_TTL_SECS: u64 = 300;
/// Shortest lifetime accepted, in seconds.
pub const MIN_TTL_SECS: u64 = 1;
/// Longest lifetime accepted, in seconds: host tokens are short-lived hand-offs.
pub const MAX_TTL_SECS: u64 = 3600;
/// Largest `iss`, `aud`, `sub` or `host_tenant_id`, in bytes.
pub const MAX_CLAIM_BYTES: usize = 1024;
/// Most extra claims in one token.
pub const MAX_EXTRA_CLAIMS: usize = 64;
/// Largest claims payload, in bytes, so that a token always fits the 16 KiB cap of
/// verifiers in this family.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
/// Random bytes in a `jti` (128 bits).
pub const JTI_BYTES: usize = 16;

/// Claim names the minter writes itself; extra claims may not use them.
pub const REGISTERED_CLAIMS: [&str; 8] = [
    "iss",
    "aud",
    "sub",
    "host_tenant_id",
    "iat",
    "exp",
    "nbf",
    "jti",
];

/// What a host asserts about its logged-in user. Build it with [`HostClaims::new`] or a
/// struct literal ending in `..Default::default()`.
///
/// ```
/// # use handoff_issuer::HostClaims;
/// let c = HostClaims {
///     iss: "https://host.example".into(),
///     aud: "https://service.example".into(),
///     sub: "user-42".into(),
///     host_tenant_id: "tenant-7".into(),
///     ttl: 120,
///     ..Default::default()
/// };
/// assert_eq!(c.ttl, 120);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HostClaims {
    /// `iss`: the host's issuer identifier (non-empty).
    pub iss: String,
    /// `aud`: the service the token is for (non-empty).
    pub aud: String,
    /// `sub`: the logged-in user at the host (non-empty).
    pub sub: String,
    /// `host_tenant_id`: the host tenant the user belongs to (non-empty).
    pub host_tenant_id: String,
    /// Lifetime in seconds, 1 to 3600 (default 300): `exp = iat + ttl`.
    pub ttl: u64,
    /// Extra claims; none may use a name of [`REGISTERED_CLAIMS`].
    pub extra: Map<String, Value>,
}

impl Default for HostClaims {
    fn default() -> Self {
        Self {
            iss: String::new(),
            aud: String::new(),
            sub: String::new(),
            host_tenant_id: String::new(),
            ttl: DEFAULT_TTL_SECS,
            extra: Map::new(),
        }
    }
}

impl HostClaims {
    /// Claims with the default lifetime, and `host_tenant_id` set to `iss` (a host with a
    /// single tenant); change it with [`Self::tenant`].
    #[must_use]
    pub fn new(iss: impl Into<String>, aud: impl Into<String>, sub: impl Into<String>) -> Self {
        let iss = iss.into();
        Self {
            host_tenant_id: iss.clone(),
            iss,
            aud: aud.into(),
            sub: sub.into(),
            ..Self::default()
        }
    }

    /// Sets `host_tenant_id`.
    #[must_use]
    pub fn tenant(mut self, id: impl Into<String>) -> Self {
        self.host_tenant_id = id.into();
        self
    }

    /// Sets the lifetime in seconds.
    #[must_use]
    pub fn ttl(mut self, secs: u64) -> Self {
        self.ttl = secs;
        self
    }

    /// Adds an extra claim (checked when minting).
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Checks every input: non-empty bounded strings, ttl in range, extra claims that do
    /// not touch a registered name.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field and what to do.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, v) in [
            ("iss", &self.iss),
            ("aud", &self.aud),
            ("sub", &self.sub),
            ("host_tenant_id", &self.host_tenant_id),
        ] {
            check_text(field, v)?;
        }
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.ttl) {
            return Err(Error::input(
                "ttl",
                format!(
                    "{} s is out of range; use {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds (default {DEFAULT_TTL_SECS})",
                    self.ttl
                ),
            ));
        }
        if self.extra.len() > MAX_EXTRA_CLAIMS {
            return Err(Error::input(
                "extra claims",
                format!(
                    "{} extra claims; at most {MAX_EXTRA_CLAIMS} are allowed",
                    self.extra.len()
                ),
            ));
        }
        for name in self.extra.keys() {
            if name.is_empty() || name.len() > 256 {
                return Err(Error::input(
                    "extra claims",
                    "a claim name must be 1 to 256 bytes",
                ));
            }
            if REGISTERED_CLAIMS.contains(&name.as_str()) {
                return Err(Error::input(
                    "extra claims",
                    format!(
                        "{name:?} is a registered claim the minter sets itself; set it through its own field or drop it"
                    ),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn check_text(field: &'static str, v: &str) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::input(field, "must not be empty"));
    }
    if v.len() > MAX_CLAIM_BYTES {
        return Err(Error::input(
            field,
            format!("{} bytes, over the {MAX_CLAIM_BYTES}-byte cap", v.len()),
        ));
    }
    if v.trim() != v || v.chars().any(char::is_control) {
        return Err(Error::input(
            field,
            format!(
                "{:?} has surrounding whitespace or control characters; pass the exact identifier",
                clip(v)
            ),
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    host_tenant_id: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

/// A freshly minted host token. The compact JWT is a bearer credential: `Debug` shows
/// its `kid`, `jti` and times, never the token itself.
#[must_use = "the minted token must be handed to the caller"]
#[derive(Clone)]
pub struct MintedHostJwt {
    token: String,
    kid: String,
    jti: String,
    issued_at: UnixTime,
    expires_at: UnixTime,
}

impl MintedHostJwt {
    pub(crate) fn new(
        token: String,
        kid: String,
        jti: String,
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Self {
        Self {
            token,
            kid,
            jti,
            issued_at,
            expires_at,
        }
    }

    /// The compact JWT (`header.payload.signature`).
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }
    /// Consumes into the compact JWT.
    #[must_use]
    pub fn into_token(self) -> String {
        self.token
    }
    /// The `kid` of the signing key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The `jti` (22 base64url characters, 128 random bits).
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// `iat`.
    #[must_use]
    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }
    /// `exp`.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
}

impl fmt::Debug for MintedHostJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedHostJwt")
            .field("kid", &self.kid)
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Mints a host JWT signed by `keys`.
///
/// Claims, in this order: `iss`, `aud`, `sub`, `host_tenant_id`, `iat` (= `now`), `exp`
/// (= `iat + ttl`), `jti` (128 random bits from `rng`), then the extra claims. Header:
/// `alg` of the key (nothing can change it), its `kid`, and `typ` [`HOST_TOKEN_TYP`].
///
/// # Errors
/// [`Error::InvalidInput`] for a claim out of bounds (see [`HostClaims::validate`]);
/// [`Error::Core`] if signing fails.
pub fn mint_host_jwt<R: CryptoRng + ?Sized>(
    claims: &HostClaims,
    keys: &HostIssuerKeys,
    now: UnixTime,
    rng: &mut R,
) -> Result<MintedHostJwt, Error> {
    claims.validate()?;
    let exp = now
        .as_secs()
        .checked_add(claims.ttl)
        .ok_or_else(|| Error::input("now", "now + ttl overflows; pass the real time"))?;
    let mut raw = [0u8; JTI_BYTES];
    rng.fill_bytes(&mut raw);
    let jti = b64::encode(&raw);
    let payload = Payload {
        iss: &claims.iss,
        aud: &claims.aud,
        sub: &claims.sub,
        host_tenant_id: &claims.host_tenant_id,
        iat: now.as_secs(),
        exp,
        jti: &jti,
        extra: &claims.extra,
    };
    let bytes = serde_json::to_vec(&payload)
        .map_err(|e| Error::input("extra claims", format!("not serializable: {e}")))?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::input(
            "extra claims",
            format!(
                "the claims take {} bytes, over the {MAX_PAYLOAD_BYTES}-byte cap; put less in the token",
                bytes.len()
            ),
        ));
    }
    let header = SignHeader {
        typ: Some(HOST_TOKEN_TYP),
        kid: Some(keys.kid()),
        ..SignHeader::default()
    };
    let token = jws::sign(keys.signing_key(), &header, &bytes, rng)?;
    Ok(MintedHostJwt {
        token,
        kid: keys.kid().to_owned(),
        jti,
        issued_at: now,
        expires_at: UnixTime::from_secs(exp),
    })
}
