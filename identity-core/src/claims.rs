//! JWT claims (RFC 7519) and the validation policy applied to them.

use core::cell::Cell;
use core::fmt;
use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::jwks::KeySource;
use crate::jws::{self, Compact, DecodeOptions, Header, Name};
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
/// The payload is read strictly (duplicate members refused at every depth, depth
/// bounded) in one pass that types the registered claims while the caller's `T` reads
/// the same object. `T` sees the whole claims object, registered claims included, so it
/// may also name `sub` or `aud` (do not use `deny_unknown_fields`).
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
        let compact = jws::decode(token, &opts)?;
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
    if v.replay_purpose.is_some() {
        return Err(Error::Policy(
            "this policy enforces jti replay: call verify_once and confirm the result",
        ));
    }
    verify_inner(compact, keys, v, now)
}

fn verify_inner<T: DeserializeOwned, K: KeySource + ?Sized>(
    compact: Compact<'_>,
    keys: &K,
    v: &Validation,
    now: UnixTime,
) -> Result<Verified<T>, Error> {
    let header = compact.header();
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

/// Parses a claims payload in one strict pass: the caller's `T` reads the claims object
/// through a forwarding view that types the registered claims and refuses duplicate
/// members at every depth (depth bounded by `serde_json`'s recursion limit, size by the
/// token cap) as they stream by. When that pass fails for any reason, the payload is read
/// again the slow way (registered claims first, then `T`) so the error is exactly the
/// precise one: a duplicate before a wrongly typed claim before `T`'s own complaint.
fn parse_claims<T: DeserializeOwned>(payload: &[u8]) -> Result<(RegisteredClaims, T), Error> {
    // UTF-8 checked once for the whole payload, so no pass checks each string again.
    let payload = core::str::from_utf8(payload).map_err(|e| Error::Json {
        part: "claims",
        detail: crate::error::clip(&format!("the claims are not UTF-8: {e}")),
    })?;
    if let Some(parsed) = one_pass::<T>(payload) {
        return Ok(parsed);
    }
    let registered = parse_registered(payload)?;
    let custom = serde_json::from_str::<T>(payload).map_err(|e| Error::Json {
        part: "claims",
        detail: crate::error::clip(&e.to_string()),
    })?;
    Ok((registered, custom))
}

/// The fast path of [`parse_claims`]: `None` whenever anything is wrong (the slow path
/// then names it).
fn one_pass<T: DeserializeOwned>(payload: &str) -> Option<(RegisteredClaims, T)> {
    let duplicate = Cell::new(None);
    let mut st = OnePass {
        duplicate: &duplicate,
        registered: RegisteredClaims::default(),
        seen: 0,
        others: Names::new(),
    };
    let mut de = serde_json::Deserializer::from_str(payload);
    let custom = T::deserialize(Forward {
        de: &mut de,
        st: &mut st,
    })
    .ok()?;
    de.end().ok()?;
    Some((st.registered, custom))
}

/// What the one pass has read of the top-level claims object so far.
struct OnePass<'a, 'de> {
    duplicate: &'a Cell<Option<String>>,
    registered: RegisteredClaims,
    /// Registered claims seen, one bit each in [`REGISTERED_NAMES`] order.
    seen: u8,
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

/// The members of the claims object, checked and typed on their way to `T`.
struct ForwardMap<'s, 'a, 'de, A> {
    map: A,
    st: &'s mut OnePass<'a, 'de>,
    /// The bit of the registered claim whose value comes next, or [`OTHER`].
    pending: u8,
}

/// Any failure in the one pass: the slow path finds out what it was.
fn retry<E: de::Error>() -> E {
    E::custom("claims need the precise pass")
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
            self.st.others.insert(k.clone()).map_err(|_| retry())?;
        } else if self.st.seen & (1 << bit) != 0 {
            return Err(retry());
        } else {
            self.st.seen |= 1 << bit;
        }
        self.pending = bit;
        seed.deserialize(de::value::CowStrDeserializer::new(k))
            .map(Some)
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, A::Error> {
        use de::value::{SeqDeserializer, StrDeserializer};
        let dup = self.st.duplicate;
        let r = &mut self.st.registered;
        let string = |v: Option<String>| v.ok_or_else(retry::<A::Error>);
        match self.pending {
            0 | 1 | 6 => {
                let v = string(self.map.next_value_seed(Typed::<String>::new(dup))?)?;
                let out = seed.deserialize(StrDeserializer::new(&v))?;
                match self.pending {
                    0 => r.iss = Some(v),
                    1 => r.sub = Some(v),
                    _ => r.jti = Some(v),
                }
                Ok(out)
            }
            2 => {
                let aud = self
                    .map
                    .next_value_seed(Typed::<Audience>::new(dup))?
                    .ok_or_else(retry::<A::Error>)?;
                let out = match &aud {
                    Audience::One(s) => seed.deserialize(StrDeserializer::new(s))?,
                    Audience::Many(v) => seed.deserialize(SeqDeserializer::new(
                        v.iter().map(|s| StrDeserializer::<A::Error>::new(s)),
                    ))?,
                };
                r.aud = Some(aud);
                Ok(out)
            }
            3..=5 => {
                // The number as written goes to `T` (a fraction stays a fraction).
                let v = self
                    .map
                    .next_value_seed(crate::strict::StrictSeed { duplicate: dup })?;
                let date = match &v {
                    serde_json::Value::Number(n) => {
                        if let Some(u) = n.as_u64() {
                            NumericDate::from_u64(u)
                        } else if let Some(i) = n.as_i64() {
                            NumericDate::from_i64(i)
                        } else {
                            n.as_f64().and_then(NumericDate::from_f64)
                        }
                    }
                    _ => None,
                }
                .ok_or_else(retry::<A::Error>)?;
                let out = seed.deserialize(v).map_err(|_| retry::<A::Error>())?;
                match self.pending {
                    3 => r.exp = Some(date),
                    4 => r.nbf = Some(date),
                    _ => r.iat = Some(date),
                }
                Ok(out)
            }
            _ => {
                let v = self
                    .map
                    .next_value_seed(crate::strict::StrictSeed { duplicate: dup })?;
                seed.deserialize(v).map_err(|_| retry())
            }
        }
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

fn parse_registered(payload: &str) -> Result<RegisteredClaims, Error> {
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(payload);
    let parsed = de::DeserializeSeed::deserialize(
        ClaimsSeed {
            duplicate: &duplicate,
        },
        &mut de,
    )
    .and_then(|v| de.end().map(|()| v));
    let (registered, wrong_type) = parsed.map_err(|e| match duplicate.take() {
        Some(name) => Error::DuplicateMember {
            part: "claims",
            name,
        },
        None => Error::Json {
            part: "claims",
            detail: crate::error::clip(&e.to_string()),
        },
    })?;
    for (bit, (claim, reason)) in REGISTERED_NAMES.iter().enumerate() {
        if wrong_type & (1 << bit) != 0 {
            return Err(Error::InvalidClaim { claim, reason });
        }
    }
    Ok(registered)
}

/// Records the first duplicate member name and fails the parse.
fn duplicate_error<E: de::Error>(dup: &Cell<Option<String>>, name: &str) -> E {
    let name = crate::error::clip(name);
    let msg = format!("duplicate member {name:?}");
    dup.set(Some(name));
    E::custom(msg)
}

/// Member names of one object, for duplicate detection without a tree: a short list,
/// then an ordered set once the object is large (bounded work per member).
struct Names<'de> {
    few: Vec<Cow<'de, str>>,
    many: BTreeSet<Cow<'de, str>>,
}

impl<'de> Names<'de> {
    const FEW: usize = 16;

    fn new() -> Self {
        Self {
            few: Vec::new(),
            many: BTreeSet::new(),
        }
    }

    /// Inserts `name`; gives it back if the object already had it.
    fn insert(&mut self, name: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        if self.many.is_empty() {
            if self.few.contains(&name) {
                return Err(name);
            }
            if self.few.len() < Self::FEW {
                self.few.push(name);
                return Ok(());
            }
            self.many.extend(self.few.drain(..));
        }
        if self.many.contains(&name) {
            return Err(name);
        }
        self.many.insert(name);
        Ok(())
    }
}

/// Walks any JSON value, keeping nothing, refusing duplicate members at every depth.
#[derive(Clone, Copy)]
struct DupCheck<'a> {
    duplicate: &'a Cell<Option<String>>,
}

impl<'de> de::DeserializeSeed<'de> for DupCheck<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupCheck<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = Names::new();
        while let Some(Name(k)) = map.next_key::<Name<'de>>()? {
            if let Err(k) = names.insert(k) {
                return Err(duplicate_error(self.duplicate, &k));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Reads one registered claim's value: `Some` with the typed value, `None` when the value
/// has another JSON type (consumed, and checked for duplicate members all the same).
struct Typed<'a, X> {
    duplicate: &'a Cell<Option<String>>,
    kind: core::marker::PhantomData<X>,
}

impl<'a, X> Typed<'a, X> {
    fn new(duplicate: &'a Cell<Option<String>>) -> Self {
        Self {
            duplicate,
            kind: core::marker::PhantomData,
        }
    }
    fn check(&self) -> DupCheck<'a> {
        DupCheck {
            duplicate: self.duplicate,
        }
    }
}

/// How a value of each JSON type maps to a registered claim type.
trait FromJson: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    /// Reads an array; `None` (after consuming it) when this type is no array.
    fn from_seq<'de, A: de::SeqAccess<'de>>(
        mut seq: A,
        check: DupCheck<'_>,
    ) -> Result<Option<Self>, A::Error> {
        while seq.next_element_seed(check)?.is_some() {}
        Ok(None)
    }
}

impl FromJson for String {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_owned())
    }
}

impl FromJson for NumericDate {
    fn from_u64(v: u64) -> Option<Self> {
        Some(Self(v))
    }
    fn from_i64(v: i64) -> Option<Self> {
        u64::try_from(v).ok().map(Self)
    }
    fn from_f64(v: f64) -> Option<Self> {
        // Fractional seconds are allowed by RFC 7519; truncate toward zero.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (0.0..1.8e19).contains(&v).then_some(Self(v as u64))
    }
}

impl FromJson for Audience {
    fn from_str(v: &str) -> Option<Self> {
        Some(Self::One(v.to_owned()))
    }
    fn from_seq<'de, A: de::SeqAccess<'de>>(
        mut seq: A,
        check: DupCheck<'_>,
    ) -> Result<Option<Self>, A::Error> {
        let mut all = Some(Vec::new());
        while let Some(item) = seq.next_element_seed(Typed::<String>::new(check.duplicate))? {
            match (item, &mut all) {
                (Some(s), Some(v)) => v.push(s),
                _ => all = None,
            }
        }
        Ok(all.map(Self::Many))
    }
}

impl<'de, X: FromJson> de::DeserializeSeed<'de> for Typed<'_, X> {
    type Value = Option<X>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<X>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, X: FromJson> Visitor<'de> for Typed<'_, X> {
    type Value = Option<X>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<X>, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<X>, E> {
        Ok(X::from_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<X>, E> {
        Ok(X::from_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<X>, E> {
        Ok(X::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<X>, E> {
        Ok(X::from_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<X>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<X>, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Option<X>, A::Error> {
        X::from_seq(seq, self.check())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Option<X>, A::Error> {
        self.check().visit_map(map).map(|()| None)
    }
}

/// The top-level claims object: registered claims typed (a bit set per claim of the wrong
/// JSON type), every other member checked for duplicates at every depth and skipped.
struct ClaimsSeed<'a> {
    duplicate: &'a Cell<Option<String>>,
}

impl<'de> de::DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = (RegisteredClaims, u8);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = (RegisteredClaims, u8);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        fn set<X>(slot: &mut Option<X>, v: Option<X>, wrong: &mut u8, bit: u8) {
            match v {
                Some(v) => *slot = Some(v),
                None => *wrong |= 1 << bit,
            }
        }
        let dup = self.duplicate;
        let mut r = RegisteredClaims::default();
        let (mut seen, mut wrong) = (0u8, 0u8);
        let mut others = Names::new();
        while let Some(Name(k)) = map.next_key::<Name<'de>>()? {
            let bit = match &*k {
                "iss" => 0,
                "sub" => 1,
                "aud" => 2,
                "exp" => 3,
                "nbf" => 4,
                "iat" => 5,
                "jti" => 6,
                _ => {
                    if let Err(k) = others.insert(k) {
                        return Err(duplicate_error(dup, &k));
                    }
                    map.next_value_seed(DupCheck { duplicate: dup })?;
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                return Err(duplicate_error(dup, &k));
            }
            seen |= 1 << bit;
            let w = &mut wrong;
            match bit {
                0 => set(&mut r.iss, map.next_value_seed(Typed::new(dup))?, w, bit),
                1 => set(&mut r.sub, map.next_value_seed(Typed::new(dup))?, w, bit),
                2 => set(&mut r.aud, map.next_value_seed(Typed::new(dup))?, w, bit),
                3 => set(&mut r.exp, map.next_value_seed(Typed::new(dup))?, w, bit),
                4 => set(&mut r.nbf, map.next_value_seed(Typed::new(dup))?, w, bit),
                5 => set(&mut r.iat, map.next_value_seed(Typed::new(dup))?, w, bit),
                _ => set(&mut r.jti, map.next_value_seed(Typed::new(dup))?, w, bit),
            }
        }
        Ok((r, wrong))
    }
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
    let purpose = v.replay_purpose.ok_or(Error::Policy(
        "this policy does not enforce jti replay: call verify, or add .replay(purpose)",
    ))?;
    let verified: Verified<T> = verify_inner(compact, keys, v, now)?;
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

    /// The one pass gives `T` and the registered claims exactly what the slow path
    /// (registered pass, then `T` from the text) gives, and refuses what it refuses.
    #[test]
    fn the_one_pass_agrees_with_the_slow_path() {
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
        fn slow<T: DeserializeOwned>(p: &str) -> Result<(RegisteredClaims, T), Error> {
            let r = parse_registered(p)?;
            let t = serde_json::from_str::<T>(p).map_err(|e| Error::Json {
                part: "claims",
                detail: e.to_string(),
            })?;
            Ok((r, t))
        }
        let good = [
            r#"{"iss":"i","sub":"s","aud":["a","b"],"exp":10.5,"x":{"y":[1,{"z":null}]}}"#,
            r#"{"sub":"\u0073","aud":[],"exp":7,"role":"r","x":null,"iat":-0.0,"jti":"j"}"#,
            r#"{"x":1e3,"aud":["\u00e9"],"exp":18446744073709551615,"sub":"","nbf":1}"#,
        ];
        for p in good {
            let fast = one_pass::<Mine>(p).expect(p);
            let slow_mine = slow::<Mine>(p).unwrap();
            assert_eq!((&fast.0, &fast.1), (&slow_mine.0, &slow_mine.1), "{p}");
            let fast = one_pass::<Value>(p).expect(p);
            assert_eq!(fast, slow::<Value>(p).unwrap(), "{p}");
            let fast = one_pass::<Option<Wrapped>>(p).expect(p);
            assert_eq!(fast, slow::<Option<Wrapped>>(p).unwrap(), "{p}");
        }
        let p = r#"{"iss":"i","aud":"a","exp":1,"n":{"k":[true]}}"#;
        assert_eq!(one_pass::<Flat>(p).unwrap(), slow::<Flat>(p).unwrap());
        // Whatever the slow path refuses, the one pass refuses too (and leaves the
        // precise error to the slow path).
        for p in [
            r#"{"exp":1,"exp":1}"#,
            r#"{"q":1,"\u0071":1,"exp":1}"#,
            r#"{"x":{"a":[{"b":1,"b":1}]},"exp":1}"#,
            r#"{"aud":["a",{"k":1,"k":1}],"exp":1}"#,
            r#"{"exp":{"a":1}}"#,
            r#"{"exp":"1"}"#,
            r#"{"exp":-1}"#,
            r#"{"iss":null,"exp":1}"#,
            r#"{"aud":["a",1],"exp":1}"#,
            r#"{"exp":1} {}"#,
            "[1]",
        ] {
            assert!(slow::<Value>(p).is_err(), "{p}");
            assert!(one_pass::<Value>(p).is_none(), "{p}");
        }
        // T's own refusals: both paths refuse.
        let p = r#"{"sub":"s","aud":"a","exp":1}"#;
        assert!(slow::<Mine>(p).is_err() && one_pass::<Mine>(p).is_none());
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
