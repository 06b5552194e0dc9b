//! Strict compact JWS (RFC 7515): signing with the key's algorithm, verification that
//! refuses everything a token could use to choose its own rules.

use std::borrow::Cow;
use std::fmt;

use jose_jwk::Jwk;
use rand_core::CryptoRng;
use serde::Serialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::clip;
use crate::{Algorithm, Error, SigningKey, VerifyingKey, b64};

/// Default cap on a compact token, in bytes, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Header members registered by RFC 7515 / 7519 / 8725 that may never be listed in `crit`.
const REGISTERED: [&str; 11] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
];

/// JWK members that only private or symmetric keys carry (RFC 7518 section 6).
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A JOSE header, parsed strictly once.
///
/// `jku`, `x5u`, `x5c` are recorded as present but never used to find a key. The embedded
/// `jwk` is kept for protocols where it is what the signature proves (DPoP); ordinary
/// verification never looks at it.
#[derive(Clone)]
pub struct Header {
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    crit: Option<Vec<String>>,
    jwk: Option<Box<Jwk>>,
    remote_key_refs: bool,
    other: Vec<String>,
}

impl Header {
    /// The algorithm the header names (only meaningful once checked against a key).
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
    /// The `kid`, untrusted: it only selects among keys the verifier already holds.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// The `typ`.
    #[must_use]
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }
    /// The `cty`.
    #[must_use]
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_deref()
    }
    /// The `crit` list, if any.
    #[must_use]
    pub fn crit(&self) -> Option<&[String]> {
        self.crit.as_deref()
    }
    /// The embedded `jwk`, untrusted (never used by [`Compact::verify`]).
    #[must_use]
    pub fn jwk(&self) -> Option<&Jwk> {
        self.jwk.as_deref()
    }
    /// Whether the header carried `jku`, `x5u` or `x5c` (which are always ignored).
    #[must_use]
    pub fn has_remote_key_reference(&self) -> bool {
        self.remote_key_refs
    }
    /// Names of the header members that are not registered JOSE parameters.
    #[must_use]
    pub fn other_members(&self) -> &[String] {
        &self.other
    }

    fn check_crit(&self, understood: &[&str]) -> Result<(), Error> {
        let Some(crit) = &self.crit else {
            return Ok(());
        };
        if crit.is_empty() {
            return Err(Error::Critical("crit is an empty array".into()));
        }
        for name in crit {
            if REGISTERED.contains(&name.as_str()) {
                return Err(Error::Critical(format!(
                    "crit lists the registered parameter {:?}",
                    clip(name)
                )));
            }
            if !understood.contains(&name.as_str()) {
                return Err(Error::Critical(format!(
                    "crit lists {:?}, which this verifier does not understand",
                    clip(name)
                )));
            }
            if !self.other.iter().any(|o| o == name) {
                return Err(Error::Critical(format!(
                    "crit lists {:?}, which the header does not carry",
                    clip(name)
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .field("crit", &self.crit)
            .field("jwk", &self.jwk.is_some())
            .finish_non_exhaustive()
    }
}

/// What the strict visitor saw; turned into a [`Header`] or a precise error.
#[derive(Default)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    crit: Option<Vec<String>>,
    jwk: Option<Box<Jwk>>,
    remote_key_refs: bool,
    other: Vec<String>,
    duplicate: Option<String>,
}

impl<'de> de::Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
                let mut h = RawHeader::default();
                let mut seen: Vec<String> = Vec::new();
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    if seen.iter().any(|s| *s == k) {
                        if h.duplicate.is_none() {
                            h.duplicate = Some(clip(&k));
                        }
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    seen.push(k.to_string());
                    match &*k {
                        "alg" => h.alg = Some(map.next_value()?),
                        "kid" => h.kid = Some(map.next_value()?),
                        "typ" => h.typ = Some(map.next_value()?),
                        "cty" => h.cty = Some(map.next_value()?),
                        "crit" => h.crit = Some(map.next_value()?),
                        "jwk" => {
                            // Strict: a duplicate member in the key that a signature
                            // proves would mean different keys to different parsers.
                            let duplicate = core::cell::Cell::new(None);
                            let raw = match map.next_value_seed(crate::strict::StrictSeed {
                                duplicate: &duplicate,
                            })? {
                                serde_json::Value::Object(m) => m,
                                _ => {
                                    return Err(de::Error::custom(
                                        "the embedded jwk is not a JSON object",
                                    ));
                                }
                            };
                            if let Some(m) = raw
                                .keys()
                                .find(|k| PRIVATE_JWK_MEMBERS.contains(&k.as_str()))
                            {
                                return Err(de::Error::custom(format_args!(
                                    "the embedded jwk carries the private member {m:?}; only public keys may be embedded"
                                )));
                            }
                            let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(raw))
                                .map_err(de::Error::custom)?;
                            h.jwk = Some(Box::new(jwk));
                        }
                        "jku" | "x5u" | "x5c" => {
                            h.remote_key_refs = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        "x5t" | "x5t#S256" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            h.other.push(k.into_owned());
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a header from its JSON bytes, strictly.
///
/// # Errors
/// [`Error::Json`], [`Error::DuplicateMember`], [`Error::UnsupportedAlgorithm`],
/// [`Error::Malformed`] when `alg` is absent.
pub fn parse_header(json: &[u8]) -> Result<Header, Error> {
    let raw: RawHeader = serde_json::from_slice(json).map_err(|e| Error::Json {
        part: "header",
        detail: clip(&e.to_string()),
    })?;
    if let Some(name) = raw.duplicate {
        return Err(Error::DuplicateMember {
            part: "header",
            name,
        });
    }
    let alg_name = raw
        .alg
        .ok_or(Error::Malformed("the header has no alg member"))?;
    let alg = Algorithm::from_name(&alg_name)
        .ok_or_else(|| Error::UnsupportedAlgorithm(clip(&alg_name)))?;
    if let Some(kid) = &raw.kid
        && (kid.is_empty() || kid.len() > crate::keys::MAX_KID_BYTES)
    {
        return Err(Error::Malformed(
            "the header kid must be 1 to 256 bytes; no key set holds another",
        ));
    }
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
        cty: raw.cty,
        crit: raw.crit,
        jwk: raw.jwk,
        remote_key_refs: raw.remote_key_refs,
        other: raw.other,
    })
}

/// A decoded compact JWS whose signature has not been checked yet.
///
/// Nothing in it is trustworthy until [`Compact::verify`] succeeds.
pub struct Compact<'a> {
    header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// Options for [`decode`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    /// Cap on the whole token, in bytes, checked first.
    pub max_bytes: usize,
    /// Extension header parameters this caller understands (may appear in `crit`).
    pub understood_crit: &'a [&'a str],
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            understood_crit: &[],
        }
    }
}

/// Decodes a compact JWS: size cap first, then exactly three segments of strict base64url,
/// then the header, parsed strictly once (duplicate members, unknown or `none` algorithms
/// and unhandled `crit` entries are refused).
///
/// # Errors
/// A precise [`Error`] for every format problem.
pub fn decode<'a>(token: &'a str, opts: &DecodeOptions<'_>) -> Result<Compact<'a>, Error> {
    if token.len() > opts.max_bytes {
        return Err(Error::TokenTooLarge {
            len: token.len(),
            max: opts.max_bytes,
        });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed(
            "a compact JWS has exactly three base64url segments separated by '.'",
        ));
    };
    if h.is_empty() {
        return Err(Error::Malformed("the header segment is empty"));
    }
    if s.is_empty() {
        return Err(Error::Malformed(
            "the signature segment is empty (unsecured JWS are refused)",
        ));
    }
    let header_bytes = b64::decode(h).map_err(|_| Error::Base64("header"))?;
    let header = parse_header(&header_bytes)?;
    header.check_crit(opts.understood_crit)?;
    let payload = b64::decode(p).map_err(|_| Error::Base64("payload"))?;
    let signature = b64::decode(s).map_err(|_| Error::Base64("signature"))?;
    Ok(Compact {
        header,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload,
        signature,
    })
}

impl<'a> Compact<'a> {
    /// The parsed header (untrusted until verified).
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The payload bytes (untrusted until verified).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// `BASE64URL(header) || '.' || BASE64URL(payload)`.
    #[must_use]
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    /// The raw signature bytes.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature with `key`. The header `alg` must equal the algorithm the
    /// key was made for (so no HS256 keyed with a public key, no algorithm switch).
    ///
    /// # Errors
    /// [`Error::AlgorithmMismatch`], or the opaque [`Error::InvalidSignature`].
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), Error> {
        if self.header.alg != key.algorithm() {
            return Err(Error::AlgorithmMismatch {
                header: self.header.alg,
                key: key.algorithm(),
            });
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)
    }

    /// Consumes the decoded token, returning header and payload.
    #[must_use]
    pub fn into_parts(self) -> (Header, Vec<u8>) {
        (self.header, self.payload)
    }
}

/// Header members to write when signing; `alg` always comes from the key.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignHeader<'a> {
    /// `typ`: set it, every token kind deserves an explicit type (RFC 8725 section 3.11).
    pub typ: Option<&'a str>,
    /// `kid`; `None` writes the key's own `kid`, if it has one.
    pub kid: Option<&'a str>,
    /// An embedded public `jwk` (DPoP proofs only).
    pub jwk: Option<&'a Jwk>,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwk: Option<&'a Jwk>,
}

/// Signs `payload` into a compact JWS with the key's own algorithm (the caller cannot
/// choose another).
///
/// # Errors
/// [`Error::KeyRejected`] if an embedded `jwk` holds private members;
/// [`Error::InvalidSignature`] if the primitive fails.
pub fn sign<R: CryptoRng + ?Sized>(
    key: &SigningKey,
    header: &SignHeader<'_>,
    payload: &[u8],
    rng: &mut R,
) -> Result<String, Error> {
    if let Some(jwk) = header.jwk {
        // Re-validate as a public key: never embed a private member by mistake.
        VerifyingKey::from_jwk(jwk)?;
    }
    let out = HeaderOut {
        alg: key.algorithm().as_str(),
        typ: header.typ,
        kid: header.kid.or(key.kid()),
        jwk: header.jwk,
    };
    let header_json = serde_json::to_vec(&out).map_err(|e| Error::Json {
        part: "header",
        detail: clip(&e.to_string()),
    })?;
    let mut token = b64::encode(&header_json);
    token.push('.');
    token.push_str(&b64::encode(payload));
    let sig = key.sign(token.as_bytes(), rng)?;
    token.push('.');
    token.push_str(&b64::encode(&sig));
    Ok(token)
}

/// Fuzzing entry point: decodes and verifies arbitrary bytes; must never panic.
#[doc(hidden)]
pub fn fuzz_decode_and_verify(data: &[u8], key: &VerifyingKey) {
    if let Ok(s) = core::str::from_utf8(data)
        && let Ok(c) = decode(s, &DecodeOptions::default())
    {
        let _ = c.verify(key);
    }
}
