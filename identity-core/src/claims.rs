//! JWT claims (RFC 7519) and the validation policy applied to them.

use core::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, Visitor};
use serde::{Deserialize, Serialize};

use crate::jwks::KeySource;
use crate::jws::{self, Compact, DecodeOptions, Header, Name};
use crate::replay::{ReplayKey, Unconfirmed};
use crate::strict::{Cx, Got, Key, Names, Want, WrapSeed};
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
/// The payload is read strictly (duplicate members refused at every depth, depth
/// bounded) in one pass that types the registered claims while the caller's `T` reads
/// the same object. `T` sees the whole claims object, registered claims included, so it
/// may also name `sub` or `aud` (do not use `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    header: std::sync::Arc<Header>,
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
        (
            std::sync::Arc::unwrap_or_clone(self.header),
            self.registered,
            self.custom,
        )
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
    /// Headers of tokens verified under this policy (see [`jws::HeaderCache`]).
    headers: jws::HeaderCache,
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
                headers: jws::HeaderCache::default(),
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
    /// was not explicitly waived), when an issuer or audience is empty or whitespace only,
    /// or a bound is out of range.
    pub fn build(self) -> Result<Validation, Error> {
        if self.v.issuers.is_empty() {
            return Err(Error::Policy("no issuer accepted: call .issuer(..)"));
        }
        if self.v.issuers.iter().any(|i| blank(i)) {
            return Err(Error::Policy(
                "an accepted issuer is empty or whitespace: check the configuration value (an unset variable?)",
            ));
        }
        if self.v.audiences.is_empty() && !self.any_audience {
            return Err(Error::Policy(
                "no audience accepted: call .audience(..) (or dangerous_any_audience())",
            ));
        }
        if self.v.audiences.iter().any(|a| blank(a)) {
            return Err(Error::Policy(
                "an accepted audience is empty or whitespace: check the configuration value (an unset variable?)",
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

/// Whether a configured issuer or audience is empty or whitespace only: a token carrying
/// the same blank value would otherwise match it.
fn blank(s: &str) -> bool {
    s.trim().is_empty()
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
    // RFC 7519 section 4.1.4: the current time MUST be before `exp` (strict): valid while
    // `now < exp + leeway`, refused from `exp + leeway` on. `nbf` (section 4.1.5) is
    // inclusive: valid from `nbf - leeway` on. `iat` may not lie beyond `now + leeway`.
    if now_s >= exp.0.saturating_add(v.leeway) {
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
    verify_decoded(v.decode(token)?, keys, v, now)
}

impl Validation {
    /// Decodes a token under this policy and applies the checks that need no key: the
    /// size cap, strict decoding, `crit`, the required `typ` and the algorithm allow-list.
    ///
    /// Use it when the key must be found elsewhere first (a JWKS cache keyed by the
    /// header's `kid` and `alg`), then finish with [`verify_decoded`] or
    /// [`verify_decoded_once`] on the same value, so the token is decoded only once.
    ///
    /// # Errors
    /// A precise [`Error`] for every format and policy problem.
    pub fn decode<'a>(&self, token: &'a str) -> Result<Compact<'a>, Error> {
        let opts = DecodeOptions {
            max_bytes: self.max_bytes,
            understood_crit: &self.understood_crit,
        };
        let compact = jws::decode_cached(token, &opts, Some(&self.headers))?;
        let header = compact.header();
        if let Some(expected) = &self.typ {
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
        if !self.algorithms.is_empty() && !self.algorithms.contains(&header.alg()) {
            return Err(Error::AlgorithmNotAllowed(header.alg()));
        }
        Ok(compact)
    }
}

/// Finishes [`verify`] on a token already decoded by [`Validation::decode`] with the same
/// policy: key selection, signature, claims.
///
/// # Errors
/// As [`verify`].
pub fn verify_decoded<T: DeserializeOwned, K: KeySource + ?Sized>(
    compact: Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    v.without_replay("this policy enforces jti replay: call verify_once and confirm the result")?;
    verify_inner(compact, keys, v, now)
}

impl Validation {
    /// Refuses this policy, with `why`, when it enforces `jti` replay: the caller is on a
    /// path that would hand the claims over without the replay log's confirmation.
    fn without_replay(&self, why: &'static str) -> Result<(), Error> {
        match self.replay_purpose {
            Some(_) => Err(Error::Policy(why)),
            None => Ok(()),
        }
    }

    /// The replay purpose, or a refusal naming the call to use when the policy has none.
    fn with_replay(&self) -> Result<&'static str, Error> {
        self.replay_purpose.ok_or(Error::Policy(
            "this policy does not enforce jti replay: call verify, or add .replay(purpose)",
        ))
    }
}

fn verify_inner<T: DeserializeOwned, K: KeySource + ?Sized>(
    compact: Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    let (registered, custom) = check_token(&compact, keys, v, now)?;
    Ok(Verified {
        header: compact.into_header(),
        registered,
        custom,
    })
}

/// Key selection, signature and claims of a decoded token: what every verification runs.
fn check_token<'p, T: Deserialize<'p>, K: KeySource + ?Sized>(
    compact: &'p Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<(RegisteredClaims, T), Error> {
    let header = compact.header();
    let key = keys.select(header.kid(), header.alg())?;
    compact.verify(key)?;
    v.headers.remember(compact);
    let (registered, custom) = parse_claims::<T>(compact.payload())?;
    check_claims(&registered, v, now)?;
    Ok((registered, custom))
}

/// Finishes [`verify`] on a token decoded by [`Validation::decode`] with the same policy,
/// with the caller's claims **borrowed from the token's decoded payload**: string members
/// the caller reads as `&str` (or `Cow<str>` with `#[serde(borrow)]`) point into
/// `compact` instead of being copied, so reading large custom claims allocates only what
/// the caller's own collections need. Every check of [`verify`] runs, in the same order,
/// with the same errors.
///
/// A `&str` field cannot hold a JSON string with escapes (`\"`, `\u00e9`): such a token is
/// refused with [`Error::Json`]; use `Cow<'p, str>` with `#[serde(borrow)]` where escapes
/// may occur (it borrows when it can and copies only then).
///
/// ```
/// use handoff_core::{Algorithm, SigningKey, UnixTime, Validation, verify_decoded_borrowed};
/// use handoff_core::jws::{self, SignHeader};
/// # fn main() -> Result<(), handoff_core::Error> {
/// let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
/// let key = SigningKey::generate(Algorithm::EdDSA, &mut rng)?;
/// let now = UnixTime::from_secs(1_700_000_000);
/// let claims = br#"{"iss":"https://issuer.example","aud":"api","exp":1700000300,"roles":["read","write"]}"#;
/// let token = jws::sign(&key, &SignHeader::default(), claims, &mut rng)?;
///
/// #[derive(serde::Deserialize)]
/// struct Roles<'p> {
///     #[serde(borrow)]
///     roles: Vec<&'p str>,
/// }
/// let policy = Validation::builder()
///     .issuer("https://issuer.example")
///     .audience("api")
///     .build()?;
/// let compact = policy.decode(&token)?;
/// let keys = key.verifying_key();
/// let verified = verify_decoded_borrowed::<Roles<'_>, _>(&compact, &keys, &policy, now)?;
/// assert_eq!(verified.custom().roles, ["read", "write"]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`verify`]; [`Error::Policy`] when the policy enforces `jti` replay (use
/// [`verify_decoded_once_borrowed`]).
pub fn verify_decoded_borrowed<'p, T: Deserialize<'p>, K: KeySource + ?Sized>(
    compact: &'p Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    v.without_replay(
        "this policy enforces jti replay: call verify_decoded_once_borrowed and confirm the result",
    )?;
    let (registered, custom) = check_token(compact, keys, v, now)?;
    Ok(Verified {
        header: compact.shared_header(),
        registered,
        custom,
    })
}

/// Parses a claims payload in one strict streaming pass: the caller's `T` reads the claims
/// object through a view that refuses duplicate members at every depth (depth bounded by
/// `serde_json`'s recursion limit, size by the token cap), walks the values `T` skips, and
/// captures the registered claims as they go by. No `serde_json::Value` is built.
///
/// Errors keep one precedence whatever the member order: a duplicate member, then a
/// registered claim of the wrong type, then `T`'s own complaint. When `T` fails first,
/// the same streaming pass runs once more without `T` to find out whether a duplicate or
/// a wrongly typed claim lies further on (only on that error path).
fn parse_claims<'de, T: Deserialize<'de>>(
    payload: &'de [u8],
) -> Result<(RegisteredClaims, T), Error> {
    // UTF-8 checked once for the whole payload, so no pass checks each string again.
    let payload = core::str::from_utf8(payload).map_err(|e| Error::Json {
        part: "claims",
        detail: crate::error::clip(&format!("the claims are not UTF-8: {e}")),
    })?;
    match stream::<T>(payload) {
        Ok((registered, wrong, custom)) => {
            wrong_type(wrong)?;
            Ok((registered, custom))
        }
        Err(Failure::Duplicate(name)) => Err(Error::DuplicateMember {
            part: "claims",
            name,
        }),
        Err(Failure::Json(detail)) => {
            // T stopped the pass: does the rest hide a duplicate or a wrong type?
            match stream::<IgnoredAny>(payload) {
                Ok((_, wrong, IgnoredAny)) => {
                    wrong_type(wrong)?;
                    Err(Error::Json {
                        part: "claims",
                        detail,
                    })
                }
                Err(Failure::Duplicate(name)) => Err(Error::DuplicateMember {
                    part: "claims",
                    name,
                }),
                Err(Failure::Json(detail)) => Err(Error::Json {
                    part: "claims",
                    detail,
                }),
            }
        }
    }
}

/// Why the streaming pass stopped.
enum Failure {
    Duplicate(String),
    Json(String),
}

/// The one streaming pass: the registered claims, a bit per registered claim of the wrong
/// type (in [`REGISTERED_NAMES`] order), and `T`.
fn stream<'de, T: Deserialize<'de>>(
    payload: &'de str,
) -> Result<(RegisteredClaims, u8, T), Failure> {
    let cx = Cx::default();
    let mut st = OnePass {
        cx: &cx,
        registered: RegisteredClaims::default(),
        seen: 0,
        wrong: 0,
        others: Names::new(),
    };
    let mut de = serde_json::Deserializer::from_str(payload);
    let parsed = T::deserialize(Forward {
        de: &mut de,
        st: &mut st,
    })
    .and_then(|custom| de.end().map(|()| custom));
    match parsed {
        Ok(custom) => Ok((st.registered, st.wrong, custom)),
        Err(e) => Err(match cx.take_duplicate() {
            Some(name) => Failure::Duplicate(name),
            None => Failure::Json(crate::error::clip(&e.to_string())),
        }),
    }
}

/// The first registered claim (in [`REGISTERED_NAMES`] order) whose value had the wrong type.
fn wrong_type(wrong: u8) -> Result<(), Error> {
    for (bit, (claim, reason)) in REGISTERED_NAMES.iter().enumerate() {
        if wrong & (1 << bit) != 0 {
            return Err(Error::InvalidClaim { claim, reason });
        }
    }
    Ok(())
}

/// What the pass has read of the top-level claims object so far.
struct OnePass<'a, 'de> {
    cx: &'a Cx,
    registered: RegisteredClaims,
    /// Registered claims seen, one bit each in [`REGISTERED_NAMES`] order.
    seen: u8,
    /// Registered claims of the wrong type, same bits.
    wrong: u8,
    others: Names<'de>,
}

/// The claims object as `T` sees it: every request is answered with the object itself.
struct Forward<'s, 'a, 'de, D> {
    de: D,
    st: &'s mut OnePass<'a, 'de>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Forward<'_, '_, 'de, D> {
    type Error = D::Error;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_map(ForwardVisitor {
            visitor,
            st: self.st,
        })
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        // As serde_json does for a value that is not null.
        visitor.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct ForwardVisitor<'s, 'a, 'de, V> {
    visitor: V,
    st: &'s mut OnePass<'a, 'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ForwardVisitor<'_, '_, 'de, V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(ForwardMap {
            map,
            st: self.st,
            pending: OTHER,
        })
    }
}

/// [`ForwardMap::pending`] for a member that is no registered claim.
const OTHER: u8 = 7;

/// The members of the claims object, checked and captured on their way to `T`.
struct ForwardMap<'s, 'a, 'de, A> {
    map: A,
    st: &'s mut OnePass<'a, 'de>,
    /// The bit of the registered claim whose value comes next, or [`OTHER`].
    pending: u8,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for ForwardMap<'_, '_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(Name(k)) = self.map.next_key::<Name<'de>>()? else {
            return Ok(None);
        };
        let bit = match &*k {
            "iss" => 0,
            "sub" => 1,
            "aud" => 2,
            "exp" => 3,
            "nbf" => 4,
            "iat" => 5,
            "jti" => 6,
            _ => OTHER,
        };
        if bit == OTHER {
            if let Err(k) = self.st.others.insert(k.clone()) {
                return Err(self.st.cx.duplicate(&k));
            }
        } else if self.st.seen & (1 << bit) != 0 {
            return Err(self.st.cx.duplicate(&k));
        } else {
            self.st.seen |= 1 << bit;
        }
        self.pending = bit;
        seed.deserialize(Key::new(k)).map(Some)
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, A::Error> {
        let bit = self.pending;
        let want = match bit {
            0 | 1 | 6 => Want::Str,
            2 => Want::Aud,
            3..=5 => Want::Date,
            _ => Want::Any,
        };
        let cx = self.st.cx;
        let out = self.map.next_value_seed(WrapSeed { seed, cx, want })?;
        if want != Want::Any {
            let r = &mut self.st.registered;
            match (bit, cx.take()) {
                (0, Got::Str(s)) => r.iss = Some(s),
                (1, Got::Str(s)) => r.sub = Some(s),
                (6, Got::Str(s)) => r.jti = Some(s),
                (2, Got::Str(s)) => r.aud = Some(Audience::One(s)),
                (2, Got::Strs(v)) => r.aud = Some(Audience::Many(v)),
                (3, Got::Date(d)) => r.exp = Some(NumericDate(d)),
                (4, Got::Date(d)) => r.nbf = Some(NumericDate(d)),
                (5, Got::Date(d)) => r.iat = Some(NumericDate(d)),
                _ => self.st.wrong |= 1 << bit,
            }
        }
        Ok(out)
    }
}

const DATE: &str =
    "must be a NumericDate: a non-negative JSON number of seconds, not a string or null";
const STRING: &str = "must be a JSON string";

/// Registered claims in the order their type errors are reported, with the reason.
const REGISTERED_NAMES: [(&str, &str); 7] = [
    ("iss", STRING),
    ("sub", STRING),
    ("aud", "must be a string or an array of strings"),
    ("exp", DATE),
    ("nbf", DATE),
    ("iat", DATE),
    ("jti", STRING),
];

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
    verify_decoded_once(v.decode(token)?, keys, v, now)
}

/// Finishes [`verify_once`] on a token already decoded by [`Validation::decode`] with the
/// same policy.
///
/// # Errors
/// As [`verify_once`].
pub fn verify_decoded_once<T: DeserializeOwned, K: KeySource + ?Sized>(
    compact: Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Unconfirmed<Verified<T>>, Error> {
    let purpose = v.with_replay()?;
    unconfirmed(verify_inner(compact, keys, v, now)?, purpose, v)
}

/// [`verify_decoded_once`] with the caller's claims borrowed from the decoded payload, as
/// [`verify_decoded_borrowed`] reads them: the claims stay unreachable until the replay log
/// has recorded the token's `jti`.
///
/// # Errors
/// As [`verify_once`].
pub fn verify_decoded_once_borrowed<'p, T: Deserialize<'p>, K: KeySource + ?Sized>(
    compact: &'p Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Unconfirmed<Verified<T>>, Error> {
    let purpose = v.with_replay()?;
    let (registered, custom) = check_token(compact, keys, v, now)?;
    let verified = Verified {
        header: compact.shared_header(),
        registered,
        custom,
    };
    unconfirmed(verified, purpose, v)
}

/// Holds verified claims back until the replay log confirms their `jti`, scoped by issuer
/// and `purpose`, until `exp` + leeway.
fn unconfirmed<T>(
    verified: Verified<T>,
    purpose: &'static str,
    v: &Validation,
) -> Result<Unconfirmed<Verified<T>>, Error> {
    let r = &verified.registered;
    let (Some(iss), Some(jti), Some(exp)) = (&r.iss, &r.jti, r.exp) else {
        return Err(Error::MissingClaim("jti"));
    };
    let key = ReplayKey::derive(purpose, &[iss.as_bytes(), jti.as_bytes()]);
    let until = UnixTime::from_secs(exp.0.saturating_add(v.leeway));
    Ok(Unconfirmed::new(verified, key, until))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn dup(payload: &str) -> String {
        match parse_claims::<Value>(payload.as_bytes()).unwrap_err() {
            Error::DuplicateMember { part, name } => {
                assert_eq!(part, "claims");
                name
            }
            other => panic!("{payload}: {other:?}"),
        }
    }

    #[test]
    fn duplicates_found_past_the_inline_names() {
        // Member names are kept inline up to 8 per object, then in a set: a repeat of
        // any earlier member is refused on either side of that switch, at the top level
        // (beside the registered claims) and nested.
        for n in [7_usize, 8, 9, 20] {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            let list = members.join(",");
            for shape in ["{{\"sub\":\"s\",{}}}", "{{\"sub\":\"s\",\"x\":[{{{}}}]}}"] {
                let unique = shape
                    .replacen("{}", &list, 1)
                    .replace("{{", "{")
                    .replace("}}", "}");
                assert!(parse_claims::<Value>(unique.as_bytes()).is_ok(), "{unique}");
                for dup in 0..n {
                    let repeated = format!("{list},\"m{dup}\":0");
                    let payload = shape
                        .replacen("{}", &repeated, 1)
                        .replace("{{", "{")
                        .replace("}}", "}");
                    assert_eq!(
                        parse_claims::<Value>(payload.as_bytes()).unwrap_err(),
                        Error::DuplicateMember {
                            part: "claims",
                            name: format!("m{dup}")
                        },
                        "{payload}"
                    );
                }
            }
        }
    }

    #[test]
    fn duplicates_are_refused_at_every_depth_and_in_every_position() {
        // top level, registered and not, escaped spelling
        assert_eq!(dup(r#"{"exp":1,"exp":2}"#), "exp");
        assert_eq!(dup(r#"{"exp":1,"\u0065xp":2}"#), "exp");
        assert_eq!(dup(r#"{"r":1,"x":0,"r":2}"#), "r");
        assert_eq!(dup(r#"{"r":1,"\u0072":2}"#), "r");
        // nested in custom claims, objects in arrays
        assert_eq!(dup(r#"{"x":{"a":[{"b":1,"b":2}]}}"#), "b");
        // inside registered claims of the wrong type: still a duplicate, not a type error
        assert_eq!(dup(r#"{"exp":{"a":1,"a":2}}"#), "a");
        assert_eq!(dup(r#"{"aud":["a",{"k":1,"k":1}]}"#), "k");
        assert_eq!(dup(r#"{"iss":[{"k":1,"k":1}],"exp":1}"#), "k");
        // a duplicate after a wrong-typed claim is still reported as the duplicate
        assert_eq!(dup(r#"{"exp":"1","q":1,"q":1}"#), "q");
        // past the short list: the ordered set finds it too, at the top and nested
        let many: String = (0..40).map(|i| format!(r#""m{i}":{i},"#)).collect();
        assert_eq!(dup(&format!(r#"{{{many}"m3":0}}"#)), "m3");
        assert_eq!(dup(&format!(r#"{{"x":{{{many}"m39":0}}}}"#)), "m39");
        let ok = format!(r#"{{{many}"x":{{{many}"end":1}}}}"#);
        let (_, v) = parse_claims::<Value>(ok.as_bytes()).unwrap();
        assert_eq!(v["x"]["end"], 1);
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_precise_errors() {
        for (payload, claim) in [
            (r#"{"exp":"1"}"#, "exp"),
            (r#"{"exp":null}"#, "exp"),
            (r#"{"exp":-1}"#, "exp"),
            (r#"{"exp":1e300}"#, "exp"),
            (r#"{"nbf":true}"#, "nbf"),
            (r#"{"iat":[1]}"#, "iat"),
            (r#"{"iss":1}"#, "iss"),
            (r#"{"sub":null}"#, "sub"),
            (r#"{"jti":{}}"#, "jti"),
            (r#"{"aud":42}"#, "aud"),
            (r#"{"aud":["a",1]}"#, "aud"),
            (r#"{"aud":null}"#, "aud"),
            // several: reported in the fixed order iss, sub, aud, exp, nbf, iat, jti
            (r#"{"jti":1,"exp":"x","sub":2}"#, "sub"),
        ] {
            match parse_claims::<Value>(payload.as_bytes()).unwrap_err() {
                Error::InvalidClaim { claim: c, .. } => assert_eq!(c, claim, "{payload}"),
                other => panic!("{payload}: {other:?}"),
            }
        }
    }

    #[test]
    fn registered_claims_are_typed_and_custom_claims_see_the_whole_object() {
        #[derive(Deserialize)]
        struct Mine {
            sub: String,
            aud: Value,
            role: String,
        }
        let payload = r#"{"iss":"i","sub":"s","aud":["a","b"],"exp":10.9,"nbf":0,"iat":5,"jti":"j","role":"r","x":{"y":[1,{"z":null}]}}"#;
        let (r, mine) = parse_claims::<Mine>(payload.as_bytes()).unwrap();
        assert_eq!(
            r,
            RegisteredClaims {
                iss: Some("i".into()),
                sub: Some("s".into()),
                aud: Some(Audience::Many(vec!["a".into(), "b".into()])),
                exp: Some(NumericDate(10)),
                nbf: Some(NumericDate(0)),
                iat: Some(NumericDate(5)),
                jti: Some("j".into()),
            }
        );
        assert_eq!((mine.sub.as_str(), mine.role.as_str()), ("s", "r"));
        assert_eq!(mine.aud, serde_json::json!(["a", "b"]));
        // escaped strings are decoded
        let (r, _) = parse_claims::<Value>(br#"{"iss":"\u0069\n","aud":"\u00e9"}"#).unwrap();
        assert_eq!(r.iss.as_deref(), Some("i\n"));
        assert_eq!(r.aud, Some(Audience::One("\u{e9}".into())));
        // T's own type errors are JSON errors about the claims
        assert!(matches!(
            parse_claims::<Mine>(br#"{"sub":"s","aud":"a"}"#),
            Err(Error::Json { part: "claims", .. })
        ));
    }

    /// The reference the streaming pass must agree with: a strict tree (duplicates at
    /// every depth refused), the registered claims typed one by one from it, then `T`
    /// from the text.
    fn reference<T: DeserializeOwned>(p: &str) -> Result<(RegisteredClaims, T), Error> {
        let map = crate::strict::parse_object(p.as_bytes(), "claims")?;
        let mut registered = RegisteredClaims::default();
        for (claim, reason) in REGISTERED_NAMES {
            let Some(v) = map.get(claim) else { continue };
            let one = serde_json::json!({ claim: v });
            let typed: RegisteredClaims =
                serde_json::from_value(one).map_err(|_| Error::InvalidClaim { claim, reason })?;
            match claim {
                "iss" => registered.iss = typed.iss,
                "sub" => registered.sub = typed.sub,
                "aud" => registered.aud = typed.aud,
                "exp" => registered.exp = typed.exp,
                "nbf" => registered.nbf = typed.nbf,
                "iat" => registered.iat = typed.iat,
                _ => registered.jti = typed.jti,
            }
        }
        let t = serde_json::from_str::<T>(p).map_err(|e| Error::Json {
            part: "claims",
            detail: e.to_string(),
        })?;
        Ok((registered, t))
    }

    /// Same outcome: equal values, or the same error (variant, part, member or claim;
    /// the wording of JSON errors may differ).
    fn same<T: DeserializeOwned + PartialEq + fmt::Debug>(p: &str) {
        let ours = parse_claims::<T>(p.as_bytes());
        let want = reference::<T>(p);
        match (&ours, &want) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{p}"),
            (Err(Error::Json { part: a, .. }), Err(Error::Json { part: b, .. })) => {
                assert_eq!(a, b, "{p}");
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{p}"),
            _ => panic!("{p}: streaming {ours:?}, reference {want:?}"),
        }
    }

    /// The streaming pass gives `T` and the registered claims exactly what the reference
    /// gives, and refuses what it refuses with the same precise error, for every member
    /// order, nesting, wrong type and kind of `T`.
    #[test]
    fn the_streaming_pass_agrees_with_the_reference() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Mine {
            sub: String,
            aud: Vec<String>,
            exp: f64,
            #[serde(default)]
            role: Option<String>,
            x: Option<Value>,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Wrapped(Mine);
        #[derive(Debug, PartialEq, Deserialize)]
        struct Flat {
            iss: String,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, Value>,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Skips {
            exp: u64,
        }
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Role {
            Admin,
            Tagged { level: u8 },
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Nested {
            role: Role,
            ids: std::collections::BTreeMap<u32, Vec<Role>>,
            #[serde(default)]
            t: Option<(bool, String)>,
        }
        let good = [
            r#"{"iss":"i","sub":"s","aud":["a","b"],"exp":10.5,"x":{"y":[1,{"z":null}]}}"#,
            r#"{"sub":"\u0073","aud":[],"exp":7,"role":"r","x":null,"iat":-0.0,"jti":"j"}"#,
            r#"{"x":1e3,"aud":["\u00e9"],"exp":18446744073709551615,"sub":"","nbf":1}"#,
            r#"{"iss":"i","aud":"a","exp":1,"n":{"k":[true]}}"#,
            r#"{"exp":1,"role":"admin","ids":{"1":["admin",{"tagged":{"level":3}}],"20":[]},"t":[true,"x"]}"#,
            r#"{"exp":1,"role":{"tagged":{"level":1}},"ids":{}}"#,
        ];
        let bad = [
            // duplicates, at the top and nested, in skipped and typed values
            r#"{"exp":1,"exp":1}"#,
            r#"{"q":1,"\u0071":1,"exp":1}"#,
            r#"{"x":{"a":[{"b":1,"b":1}]},"exp":1}"#,
            r#"{"aud":["a",{"k":1,"k":1}],"exp":1}"#,
            r#"{"exp":1,"role":{"tagged":{"level":1,"level":2}},"ids":{}}"#,
            r#"{"exp":1,"role":"admin","ids":{"1":[],"01":[],"1":[]}}"#,
            r#"{"sub":"s","aud":[],"exp":1,"skipped":{"deep":[[{"d":1,"d":2}]]}}"#,
            // wrong types, before and after a duplicate, before T's complaint
            r#"{"exp":{"a":1}}"#,
            r#"{"exp":"1"}"#,
            r#"{"exp":"1","q":1,"q":1}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":1e300}"#,
            r#"{"iss":null,"exp":1}"#,
            r#"{"aud":["a",1],"exp":1}"#,
            r#"{"aud":["a",["b"]],"exp":1}"#,
            r#"{"sub":1,"aud":"a","exp":1}"#,
            r#"{"jti":1,"exp":"x","sub":2}"#,
            // T's own complaints, with a wrong type or a duplicate later on
            r#"{"sub":"s","aud":"a","exp":1}"#,
            r#"{"sub":"s","aud":"a","exp":1,"iat":"later"}"#,
            r#"{"sub":"s","aud":"a","exp":1,"z":{"k":1,"k":2}}"#,
            r#"{"exp":1,"role":"nobody","ids":{}}"#,
            r#"{"exp":1,"role":"admin","ids":{"one":[]}}"#,
            // syntax and shape
            r#"{"exp":1} {}"#,
            r#"{"exp":1,}"#,
            r#"{"exp":"#,
            "[1]",
            "1",
        ];
        for p in good.iter().chain(&bad) {
            same::<Value>(p);
            same::<Mine>(p);
            same::<Option<Wrapped>>(p);
            same::<Flat>(p);
            same::<Skips>(p);
            same::<Nested>(p);
            same::<IgnoredAnyEq>(p);
        }
        for p in good {
            assert!(parse_claims::<Value>(p.as_bytes()).is_ok(), "{p}");
        }
        for p in bad {
            assert!(
                parse_claims::<Value>(p.as_bytes()).is_err()
                    || parse_claims::<Mine>(p.as_bytes()).is_err()
                    || parse_claims::<Nested>(p.as_bytes()).is_err(),
                "{p}"
            );
        }
        // The nested types really were read through the stream.
        let (_, n) = parse_claims::<Nested>(good[4].as_bytes()).unwrap();
        assert_eq!(n.ids[&1], [Role::Admin, Role::Tagged { level: 3 }]);
        assert_eq!(n.t, Some((true, "x".to_owned())));
    }

    /// `IgnoredAny` with equality, to run the skipping path through [`same`].
    #[derive(Debug, PartialEq)]
    struct IgnoredAnyEq;
    impl<'de> Deserialize<'de> for IgnoredAnyEq {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            IgnoredAny::deserialize(d).map(|_| Self)
        }
    }

    /// Pseudo-random payloads (duplicates, wrong types, nesting in every position): the
    /// streaming pass and the reference agree on each.
    #[test]
    fn the_streaming_pass_agrees_with_the_reference_on_generated_payloads() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        const NAMES: [&str; 10] = [
            "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "a", "b", "\\u0061",
        ];
        fn value(next: &mut impl FnMut(u64) -> u64, depth: u32) -> String {
            match next(if depth > 3 { 6 } else { 9 }) {
                0 => "1".into(),
                1 => "-2".into(),
                2 => "2.5".into(),
                3 => "\"s\"".into(),
                4 => "null".into(),
                5 => "true".into(),
                6 | 7 => {
                    let n = next(4);
                    let items: Vec<String> = (0..n).map(|_| value(next, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                _ => object(next, depth + 1),
            }
        }
        fn object(next: &mut impl FnMut(u64) -> u64, depth: u32) -> String {
            let n = next(5);
            let members: Vec<String> = (0..n)
                .map(|_| format!("\"{}\":{}", NAMES[next(10) as usize], value(next, depth)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..3000 {
            let p = object(&mut next, 0);
            same::<Value>(&p);
            same::<IgnoredAnyEq>(&p);
            if parse_claims::<Value>(p.as_bytes()).is_ok() {
                ok += 1;
            } else {
                refused += 1;
            }
        }
        // The corpus exercises both outcomes.
        assert!(
            ok > 300 && refused > 300,
            "{ok} accepted, {refused} refused"
        );
    }

    /// The header cache only learns from tokens whose signature verified, holds at most
    /// four headers, and a hit changes no verdict: a forged signature, a wrong `typ` or
    /// an expired token with a cached header are refused as without the cache.
    #[test]
    fn the_header_cache_learns_from_verified_tokens_only_and_changes_no_verdict() {
        use crate::jws::{SignHeader, sign};
        use crate::{SigningKey, VerifyingKey};
        let secret = [7u8; 32];
        let sk = SigningKey::hs256(secret.to_vec()).unwrap();
        let vk = VerifyingKey::hs256(secret.to_vec()).unwrap();
        let v = Validation::builder()
            .issuer("i")
            .audience("a")
            .typ("JWT")
            .build()
            .unwrap();
        let now = UnixTime::from_secs(1_000);
        let entries = |v: &Validation| v.headers.len();
        let token = |typ: &str, exp: u64, key: &SigningKey| {
            let payload = format!(r#"{{"iss":"i","aud":"a","exp":{exp}}}"#);
            let h = SignHeader {
                typ: Some(typ),
                ..SignHeader::default()
            };
            sign(
                key,
                &h,
                payload.as_bytes(),
                &mut rand_core::UnwrapErr(getrandom::SysRng),
            )
            .unwrap()
        };
        // A forged token (other key) teaches nothing.
        let other = SigningKey::hs256(vec![8u8; 32]).unwrap();
        let forged = token("JWT", 2_000, &other);
        assert_eq!(
            verify::<Value, _>(&forged, &vk, &v, now).unwrap_err(),
            Error::InvalidSignature
        );
        assert_eq!(entries(&v), 0);
        // A verified token is remembered, once.
        let good = token("JWT", 2_000, &sk);
        for _ in 0..3 {
            verify::<Value, _>(&good, &vk, &v, now).unwrap();
        }
        assert_eq!(entries(&v), 1);
        // Same header segment, forged signature: still refused (and the cache is used).
        assert_eq!(
            verify::<Value, _>(&forged, &vk, &v, now).unwrap_err(),
            Error::InvalidSignature
        );
        assert!(v.decode(&forged).unwrap().header_cached_for_tests());
        // Same header, expired: refused.
        let expired = token("JWT", 10, &sk);
        assert!(matches!(
            verify::<Value, _>(&expired, &vk, &v, now).unwrap_err(),
            Error::Expired { .. }
        ));
        // A header cached under this policy still meets the policy's typ check elsewhere.
        let strict = Validation::builder()
            .issuer("i")
            .audience("a")
            .typ("at+jwt")
            .build()
            .unwrap();
        assert!(matches!(
            verify::<Value, _>(&good, &vk, &strict, now).unwrap_err(),
            Error::WrongType { .. }
        ));
        // At most four headers.
        for typ in ["jwt", "application/jwt", "Jwt", "JWt", "jWT"] {
            verify::<Value, _>(&token(typ, 2_000, &sk), &vk, &v, now).unwrap();
        }
        assert_eq!(entries(&v), 4);
        // A clone starts empty.
        assert_eq!(entries(&v.clone()), 0);
    }

    /// Issuer `i`, audience `a`, and the replay purpose if any.
    fn policy_ia(replay: Option<&'static str>) -> Validation {
        let b = Validation::builder().issuer("i").audience("a");
        match replay {
            Some(purpose) => b.replay(purpose),
            None => b,
        }
        .build()
        .unwrap()
    }

    /// An HS256 verifying key and a signer of raw payloads under the same secret.
    fn hs256_signer() -> (crate::VerifyingKey, impl Fn(&str) -> String) {
        let sk = crate::SigningKey::hs256(vec![7u8; 32]).unwrap();
        let vk = crate::VerifyingKey::hs256(vec![7u8; 32]).unwrap();
        let sign = move |payload: &str| {
            crate::jws::sign(
                &sk,
                &crate::jws::SignHeader::default(),
                payload.as_bytes(),
                &mut rand_core::UnwrapErr(getrandom::SysRng),
            )
            .unwrap()
        };
        (vk, sign)
    }

    #[test]
    fn borrowed_claims_point_into_the_payload_and_keep_every_verdict() {
        use crate::VerifyingKey;
        use std::borrow::Cow;

        #[derive(Deserialize, Debug)]
        struct Grants<'p> {
            #[serde(borrow)]
            grants: Vec<&'p str>,
            #[serde(borrow, default)]
            note: Option<Cow<'p, str>>,
        }

        let (vk, token) = hs256_signer();
        let other = VerifyingKey::hs256(vec![8u8; 32]).unwrap();
        let v = policy_ia(None);
        let now = UnixTime::from_secs(1_000);

        // Strings without escapes are borrowed from the decoded payload.
        let good =
            token(r#"{"iss":"i","aud":"a","exp":2000,"grants":["read","write"],"note":"n\u00e9"}"#);
        let compact = v.decode(&good).unwrap();
        let got = verify_decoded_borrowed::<Grants<'_>, _>(&compact, &vk, &v, now).unwrap();
        assert_eq!(got.custom().grants, ["read", "write"]);
        let span = compact.payload().as_ptr_range();
        for g in &got.custom().grants {
            assert!(span.contains(&g.as_ptr()), "{g} is not borrowed");
        }
        // an escaped string is copied into a Cow, and read correctly
        assert_eq!(got.custom().note.as_deref(), Some("n\u{e9}"));
        assert!(matches!(got.custom().note, Some(Cow::Owned(_))));
        assert_eq!(got.registered().iss.as_deref(), Some("i"));
        assert_eq!(got.header().alg(), Algorithm::HS256);

        // An escaped string cannot be borrowed as &str: a precise JSON error.
        let escaped = token(r#"{"iss":"i","aud":"a","exp":2000,"grants":["re\"ad"]}"#);
        let compact = v.decode(&escaped).unwrap();
        match verify_decoded_borrowed::<Grants<'_>, _>(&compact, &vk, &v, now).unwrap_err() {
            Error::Json {
                part: "claims",
                detail,
            } => {
                assert!(detail.contains("borrowed string"), "{detail}");
            }
            other => panic!("{other:?}"),
        }

        // Every other verdict is the owned path's, error for error.
        let cases = [
            r#"{"iss":"i","aud":"a","exp":2000,"grants":["x"]}"#,
            r#"{"iss":"i","aud":"a","exp":2000,"grants":["x"],"grants":["y"]}"#,
            r#"{"iss":"i","aud":"a","exp":2000,"grants":[],"o":{"k":1,"k":2}}"#,
            r#"{"iss":"i","aud":"a","exp":10,"grants":[]}"#,
            r#"{"iss":"j","aud":"a","exp":2000,"grants":[]}"#,
            r#"{"iss":"i","aud":"b","exp":2000,"grants":[]}"#,
            r#"{"iss":7,"aud":"a","exp":2000,"grants":[]}"#,
            r#"{"iss":"i","aud":"a","exp":"2000","grants":[]}"#,
            r#"{"iss":"i","aud":"a","grants":[]}"#,
            r#"{"iss":"i","aud":"a","exp":2000,"grants":[1]}"#,
            r#"{"iss":"i","aud":"a","exp":2000}"#,
            r#"{"iss":"i","aud":"a","exp":2000,"grants":[]} x"#,
        ];
        for payload in cases {
            let t = token(payload);
            for key in [&vk, &other] {
                let owned = verify::<Value, _>(&t, key, &v, now).map(|_| ());
                let compact = v.decode(&t).unwrap();
                let borrowed = verify_decoded_borrowed::<Value, _>(&compact, key, &v, now);
                assert_eq!(owned, borrowed.map(|_| ()), "{payload}");
            }
        }

        // A policy that enforces replay is refused here, as by verify_decoded.
        let once = policy_ia(Some("test"));
        let compact = once.decode(&good).unwrap();
        assert!(matches!(
            verify_decoded_borrowed::<Value, _>(&compact, &vk, &once, now).unwrap_err(),
            Error::Policy(_)
        ));
    }

    #[test]
    fn borrowed_claims_under_a_replay_policy_wait_for_the_log() {
        use crate::replay::{InMemoryReplayLog, ReplayRefused};

        #[derive(Deserialize, Debug)]
        struct Scope<'p> {
            scope: &'p str,
        }

        let (vk, token) = hs256_signer();
        let now = UnixTime::from_secs(1_000);
        let once = policy_ia(Some("test"));
        let plain = policy_ia(None);
        let log = InMemoryReplayLog::new(16);
        let t = token(r#"{"iss":"i","aud":"a","exp":2000,"jti":"j1","scope":"read"}"#);

        let compact = once.decode(&t).unwrap();
        let first = verify_decoded_once_borrowed::<Scope<'_>, _>(&compact, &vk, &once, now)
            .unwrap()
            .confirm(&log, now)
            .unwrap();
        assert_eq!(first.custom().scope, "read");
        assert!(
            compact
                .payload()
                .as_ptr_range()
                .contains(&first.custom().scope.as_ptr())
        );
        // the same token again: borrowed or owned, the log refuses it
        let again = verify_decoded_once_borrowed::<Scope<'_>, _>(&compact, &vk, &once, now)
            .unwrap()
            .confirm(&log, now);
        assert!(matches!(again, Err(ReplayRefused::Replayed)));
        let owned = verify_once::<Value, _>(&t, &vk, &once, now)
            .unwrap()
            .confirm(&log, now);
        assert!(matches!(owned, Err(ReplayRefused::Replayed)));

        // Same refusals as the owned path: no jti, no replay rule in the policy.
        let no_jti = token(r#"{"iss":"i","aud":"a","exp":2000,"scope":"read"}"#);
        let compact = once.decode(&no_jti).unwrap();
        assert_eq!(
            verify_decoded_once_borrowed::<Scope<'_>, _>(&compact, &vk, &once, now).unwrap_err(),
            verify_once::<Value, _>(&no_jti, &vk, &once, now).unwrap_err()
        );
        let compact = plain.decode(&t).unwrap();
        assert!(matches!(
            verify_decoded_once_borrowed::<Scope<'_>, _>(&compact, &vk, &plain, now).unwrap_err(),
            Error::Policy(m) if m.contains("does not enforce jti replay")
        ));
    }

    #[test]
    fn claims_that_are_not_utf8_are_refused_even_inside_strings() {
        for payload in [
            &b"{\"iss\":\"\xff\"}"[..],
            b"{\"x\xc3\":1}",
            b"{\"jti\":\"\xc0\xaf\"}",
        ] {
            match parse_claims::<Value>(payload) {
                Err(Error::Json { part, detail }) => {
                    assert_eq!(part, "claims");
                    assert!(detail.contains("not UTF-8"), "{detail}");
                }
                other => panic!("{payload:?}: {other:?}"),
            }
        }
        // UTF-8 beyond ASCII is read as such.
        let (r, _) = parse_claims::<Value>("{\"sub\":\"\u{e9}t\u{e9}\"}".as_bytes()).unwrap();
        assert_eq!(r.sub.as_deref(), Some("\u{e9}t\u{e9}"));
    }

    #[test]
    fn non_objects_trailing_data_bad_json_and_deep_nesting_are_refused() {
        for payload in [
            "[1,2]".to_owned(),
            "1".to_owned(),
            "{} {}".to_owned(),
            r#"{"exp":"#.to_owned(),
            r#"{"exp":1,}"#.to_owned(),
            format!(r#"{{"a":{}{}}}"#, "[".repeat(5000), "]".repeat(5000)),
            format!(r#"{{"aud":{}{}}}"#, "[".repeat(5000), "]".repeat(5000)),
        ] {
            assert!(
                matches!(
                    parse_claims::<Value>(payload.as_bytes()),
                    Err(Error::Json { part: "claims", .. })
                ),
                "{}",
                &payload[..payload.len().min(40)]
            );
        }
    }
}
