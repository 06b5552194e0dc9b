//! JWT claims (RFC 7519) and the validation policy applied to them.

use core::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::jwks::KeySource;
use crate::jws::{self, DecodeOptions, Header};
use crate::replay::{ReplayKey, Unconfirmed};
use crate::{Algorithm, Error, UnixTime};

/// Largest leeway a policy may set, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// A JWT NumericDate: a JSON number of seconds since the epoch. A string, a negative
/// number or a non-finite value is an error, never an absent claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NumericDate(pub u64);

impl From<UnixTime> for NumericDate {
    fn from(t: UnixTime) -> Self {
        Self(t.as_secs())
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate (a non-negative JSON number of seconds since the epoch, not a string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("NumericDate before the epoch"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if (0.0..1.8e19).contains(&v) {
                    // Fractional seconds are allowed by RFC 7519; truncate toward zero.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes a member that is present: `null` is an error, not an absent claim.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The `aud` claim: one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Iterates over the audiences.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let s: &[String] = match self {
            Self::One(s) => core::slice::from_ref(s),
            Self::Many(v) => v,
        };
        s.iter().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Audience, E> {
                Ok(Audience::One(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(Audience::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The registered claims, typed.
///
/// A registered claim that is present with the wrong type (a string `exp`, a `null`
/// `nbf`, a number `iss`) is an error, never an absent claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredClaims {
    /// Issuer.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub iss: Option<String>,
    /// Subject.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub sub: Option<String>,
    /// Audience.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub aud: Option<Audience>,
    /// Expiry.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub iat: Option<NumericDate>,
    /// JWT id.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub jti: Option<String>,
}

/// Registered claim names a policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// `iss`
    Iss,
    /// `sub`
    Sub,
    /// `aud`
    Aud,
    /// `nbf`
    Nbf,
    /// `iat`
    Iat,
    /// `jti`
    Jti,
}

impl Claim {
    const fn name(self) -> &'static str {
        match self {
            Self::Iss => "iss",
            Self::Sub => "sub",
            Self::Aud => "aud",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::Jti => "jti",
        }
    }
}

/// The claims of a verified token: the registered ones and the caller's own type.
///
/// The payload is parsed once, strictly (duplicate members refused at every depth, depth
/// bounded), into a tree from which the registered claims are read and checked and the
/// caller's `T` is then deserialized. `T` sees the whole claims object, registered claims
/// included, so it may also name `sub` or `aud` (do not use `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    header: Header,
    registered: RegisteredClaims,
    custom: T,
}

impl<T> Verified<T> {
    /// The header of the verified token.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The registered claims.
    #[must_use]
    pub fn registered(&self) -> &RegisteredClaims {
        &self.registered
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
    /// Consumes into header, registered claims and custom claims.
    #[must_use]
    pub fn into_parts(self) -> (Header, RegisteredClaims, T) {
        (self.header, self.registered, self.custom)
    }
}

/// A validation policy. Built with [`Validation::builder`]; the builder refuses an
/// incomplete policy (no issuer, no audience).
#[derive(Debug, Clone)]
pub struct Validation {
    issuers: Vec<String>,
    audiences: Vec<String>,
    typ: Option<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_bytes: usize,
    max_lifetime: Option<u64>,
    required: Vec<Claim>,
    understood_crit: Vec<&'static str>,
    replay_purpose: Option<&'static str>,
}

/// Builds a [`Validation`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ValidationBuilder {
    v: Validation,
    any_audience: bool,
}

impl Validation {
    /// Starts a policy: exp required, leeway 60 s, 16 KiB token cap.
    pub fn builder() -> ValidationBuilder {
        ValidationBuilder {
            v: Self {
                issuers: Vec::new(),
                audiences: Vec::new(),
                typ: None,
                algorithms: Vec::new(),
                leeway: 60,
                max_bytes: jws::DEFAULT_MAX_TOKEN_BYTES,
                max_lifetime: None,
                required: Vec::new(),
                understood_crit: Vec::new(),
                replay_purpose: None,
            },
            any_audience: false,
        }
    }

    /// The leeway in seconds.
    #[must_use]
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The required `typ`, if any.
    #[must_use]
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The algorithms allowed (empty: the key's own algorithm only, which always applies).
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Whether `jti` replay is enforced (verification then returns [`Unconfirmed`]).
    #[must_use]
    pub fn replay_purpose(&self) -> Option<&'static str> {
        self.replay_purpose
    }

    /// The token-size cap in bytes.
    #[must_use]
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl ValidationBuilder {
    /// Accepts this issuer spelling (call again for each accepted spelling).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.v.issuers.push(iss.into());
        self
    }
    /// Accepts this audience (call again for each).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.v.audiences.push(aud.into());
        self
    }
    /// Accepts tokens whatever their audience. Only for issuers that serve a single
    /// audience (RFC 8725 section 3.9); named loudly on purpose.
    pub fn dangerous_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }
    /// Requires this header `typ` (compared as RFC 7515 says: case-insensitively, with an
    /// optional `application/` prefix).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.v.typ = Some(typ.into());
        self
    }
    /// Allows this algorithm (call again for each); the key's own algorithm must still match.
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        if !self.v.algorithms.contains(&alg) {
            self.v.algorithms.push(alg);
        }
        self
    }
    /// Sets the clock leeway for `exp`, `nbf` and `iat` (0 to 300 s, default 60).
    pub fn leeway(mut self, secs: u64) -> Self {
        self.v.leeway = secs;
        self
    }
    /// Sets the token-size cap (default 16 KiB, at most 1 MiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.v.max_bytes = bytes;
        self
    }
    /// Refuses tokens whose `exp - iat` exceeds this many seconds (requires `iat`).
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.v.max_lifetime = Some(secs);
        self
    }
    /// Requires a registered claim (`exp` is always required). Custom claims are
    /// required by making them non-`Option` fields of your claims type.
    pub fn require(mut self, claim: Claim) -> Self {
        if !self.v.required.contains(&claim) {
            self.v.required.push(claim);
        }
        self
    }
    /// Declares an extension header parameter this verifier understands, so `crit` may
    /// list it.
    pub fn understood_crit(mut self, name: &'static str) -> Self {
        self.v.understood_crit.push(name);
        self
    }
    /// Enforces `jti` replay under this purpose tag: `jti` becomes required and
    /// [`verify_once`] must be used.
    pub fn replay(mut self, purpose: &'static str) -> Self {
        self.v.replay_purpose = Some(purpose);
        self = self.require(Claim::Jti);
        self
    }

    /// Finishes the policy.
    ///
    /// # Errors
    /// [`Error::Policy`] when no issuer or no audience was given (and the audience check
    /// was not explicitly waived), or a bound is out of range.
    pub fn build(self) -> Result<Validation, Error> {
        if self.v.issuers.is_empty() {
            return Err(Error::Policy("no issuer accepted: call .issuer(..)"));
        }
        if self.v.issuers.iter().any(String::is_empty) {
            return Err(Error::Policy("an accepted issuer is empty"));
        }
        if self.v.audiences.is_empty() && !self.any_audience {
            return Err(Error::Policy(
                "no audience accepted: call .audience(..) (or dangerous_any_audience())",
            ));
        }
        if self.v.leeway > MAX_LEEWAY_SECS {
            return Err(Error::Policy("leeway over 300 s"));
        }
        if self.v.max_bytes == 0 || self.v.max_bytes > 1024 * 1024 {
            return Err(Error::Policy("token-size cap must be 1 byte to 1 MiB"));
        }
        if self.v.typ.as_deref() == Some("") {
            return Err(Error::Policy("required typ is empty"));
        }
        Ok(self.v)
    }
}

/// Whether a header `typ` equals the required one (RFC 7515 section 4.1.9: media type
/// names are case-insensitive and `application/` may be omitted).
#[must_use]
pub fn typ_matches(found: &str, expected: &str) -> bool {
    fn strip(s: &str) -> &str {
        // `get` rather than indexing: untrusted text may hold a multi-byte character
        // across byte 12.
        match (s.get(..12), s.get(12..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => s,
        }
    }
    strip(found).eq_ignore_ascii_case(strip(expected))
}

fn check_claims(r: &RegisteredClaims, v: &Validation, now: UnixTime) -> Result<(), Error> {
    let now_s = now.as_secs();
    let exp = r.exp.ok_or(Error::MissingClaim("exp"))?;
    if now_s > exp.0.saturating_add(v.leeway) {
        return Err(Error::Expired {
            exp: exp.0,
            now: now_s,
            leeway: v.leeway,
        });
    }
    if let Some(nbf) = r.nbf
        && nbf.0 > now_s.saturating_add(v.leeway)
    {
        return Err(Error::NotYetValid {
            nbf: nbf.0,
            now: now_s,
        });
    }
    if let Some(iat) = r.iat
        && iat.0 > now_s.saturating_add(v.leeway)
    {
        return Err(Error::IssuedInFuture {
            iat: iat.0,
            now: now_s,
        });
    }
    for c in &v.required {
        let present = match c {
            Claim::Iss => r.iss.is_some(),
            Claim::Sub => r.sub.is_some(),
            Claim::Aud => r.aud.is_some(),
            Claim::Nbf => r.nbf.is_some(),
            Claim::Iat => r.iat.is_some(),
            Claim::Jti => r.jti.is_some(),
        };
        if !present {
            return Err(Error::MissingClaim(c.name()));
        }
    }
    if let Some(max) = v.max_lifetime {
        let iat = r.iat.ok_or(Error::MissingClaim("iat"))?;
        if exp.0.saturating_sub(iat.0) > max {
            return Err(Error::InvalidClaim {
                claim: "exp",
                reason: "the token lives longer than this policy allows",
            });
        }
    }
    let iss = r.iss.as_deref().ok_or(Error::MissingClaim("iss"))?;
    if !v.issuers.iter().any(|i| i == iss) {
        return Err(Error::WrongIssuer(crate::error::clip(iss)));
    }
    if !v.audiences.is_empty() {
        let aud = r.aud.as_ref().ok_or(Error::MissingClaim("aud"))?;
        if !aud.iter().any(|a| v.audiences.iter().any(|w| w == a)) {
            return Err(Error::WrongAudience);
        }
    }
    if let Some(jti) = &r.jti
        && (jti.is_empty() || jti.len() > 256)
    {
        return Err(Error::InvalidClaim {
            claim: "jti",
            reason: "must be 1 to 256 bytes",
        });
    }
    Ok(())
}

/// Verifies a JWT: size cap, strict decoding, `typ`, key selection by `kid` among the
/// keys the caller holds (never `jwk`/`jku`/`x5u`), the key's algorithm, the signature,
/// then the claims, deserialized once into the registered claims and the caller's `T`.
///
/// Use [`verify_once`] when the policy enforces `jti` replay.
///
/// # Errors
/// A precise [`Error`]; signature failures are the opaque [`Error::InvalidSignature`].
pub fn verify<T: DeserializeOwned, K: KeySource + ?Sized>(
    token: &str,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    if v.replay_purpose.is_some() {
        return Err(Error::Policy(
            "this policy enforces jti replay: call verify_once and confirm the result",
        ));
    }
    verify_inner(token, keys, v, now)
}

fn verify_inner<T: DeserializeOwned, K: KeySource + ?Sized>(
    token: &str,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    let opts = DecodeOptions {
        max_bytes: v.max_bytes,
        understood_crit: &v.understood_crit,
    };
    let compact = jws::decode(token, &opts)?;
    let header = compact.header();
    if let Some(expected) = &v.typ {
        match header.typ() {
            Some(found) if typ_matches(found, expected) => {}
            found => {
                return Err(Error::WrongType {
                    expected: expected.clone(),
                    found: found.map(crate::error::clip),
                });
            }
        }
    }
    if !v.algorithms.is_empty() && !v.algorithms.contains(&header.alg()) {
        return Err(Error::AlgorithmNotAllowed(header.alg()));
    }
    let key = keys.select(header.kid(), header.alg())?;
    compact.verify(key)?;
    let (header, payload) = compact.into_parts();
    let (registered, custom) = parse_claims::<T>(&payload)?;
    check_claims(&registered, v, now)?;
    Ok(Verified {
        header,
        registered,
        custom,
    })
}

/// Parses a claims payload once: a strict JSON object, the registered claims typed from
/// it, then the caller's `T` from the same tree.
fn parse_claims<T: DeserializeOwned>(payload: &[u8]) -> Result<(RegisteredClaims, T), Error> {
    let map = crate::strict::parse_object(payload, "claims")?;
    let registered = registered_from(&map)?;
    let custom = T::deserialize(serde_json::Value::Object(map)).map_err(|e| Error::Json {
        part: "claims",
        detail: crate::error::clip(&e.to_string()),
    })?;
    Ok((registered, custom))
}

fn registered_from(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<RegisteredClaims, Error> {
    fn typed<'a, X: Deserialize<'a>>(
        map: &'a serde_json::Map<String, serde_json::Value>,
        claim: &'static str,
        reason: &'static str,
    ) -> Result<Option<X>, Error> {
        match map.get(claim) {
            None => Ok(None),
            Some(v) => X::deserialize(v)
                .map(Some)
                .map_err(|_| Error::InvalidClaim { claim, reason }),
        }
    }
    const DATE: &str =
        "must be a NumericDate: a non-negative JSON number of seconds, not a string or null";
    const STRING: &str = "must be a JSON string";
    Ok(RegisteredClaims {
        iss: typed(map, "iss", STRING)?,
        sub: typed(map, "sub", STRING)?,
        aud: typed(map, "aud", "must be a string or an array of strings")?,
        exp: typed(map, "exp", DATE)?,
        nbf: typed(map, "nbf", DATE)?,
        iat: typed(map, "iat", DATE)?,
        jti: typed(map, "jti", STRING)?,
    })
}

/// Fuzzing entry point: parses arbitrary bytes as a claims payload and validates them
/// against a fixed policy; must never panic.
#[doc(hidden)]
pub fn fuzz_parse_claims(data: &[u8]) {
    if let Ok((registered, _custom)) = parse_claims::<serde_json::Value>(data)
        && let Ok(v) = Validation::builder()
            .issuer("https://issuer.example")
            .audience("api")
            .max_lifetime(3_600)
            .build()
    {
        let _ = check_claims(&registered, &v, UnixTime::from_secs(1_700_000_000));
        let _ = typ_matches(
            core::str::from_utf8(data).unwrap_or("application/jwt"),
            "jwt",
        );
    }
}

/// Verifies like [`verify`] and returns the result [`Unconfirmed`]: the caller records
/// its `jti` in a [`crate::replay::ReplayLog`] (scoped by issuer and the policy's purpose)
/// until `exp` + leeway, and only then reads the claims.
///
/// # Errors
/// As [`verify`]; [`Error::Policy`] when the policy does not enforce replay.
pub fn verify_once<T: DeserializeOwned, K: KeySource + ?Sized>(
    token: &str,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Unconfirmed<Verified<T>>, Error> {
    let purpose = v.replay_purpose.ok_or(Error::Policy(
        "this policy does not enforce jti replay: call verify, or add .replay(purpose)",
    ))?;
    let verified: Verified<T> = verify_inner(token, keys, v, now)?;
    let r = &verified.registered;
    let (Some(iss), Some(jti), Some(exp)) = (&r.iss, &r.jti, r.exp) else {
        return Err(Error::MissingClaim("jti"));
    };
    let key = ReplayKey::derive(purpose, &[iss.as_bytes(), jti.as_bytes()]);
    let until = UnixTime::from_secs(exp.0.saturating_add(v.leeway));
    Ok(Unconfirmed::new(verified, key, until))
}
