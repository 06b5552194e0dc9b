//! Strict compact JWS (RFC 7515): signing with the key's algorithm, verification that
//! refuses everything a token could use to choose its own rules.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

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
    /// `Ok` for a supported algorithm, else the (clipped) name it gave.
    alg: Option<Result<Algorithm, String>>,
    kid: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    crit: Option<Vec<String>>,
    jwk: Option<Box<Jwk>>,
    remote_key_refs: bool,
    other: Vec<String>,
    duplicate: Option<String>,
}

/// Index of a registered header name in [`REGISTERED`] (a bit of the `seen` set).
fn registered_index(name: &str) -> Option<u32> {
    Some(match name {
        "alg" => 0,
        "jku" => 1,
        "jwk" => 2,
        "kid" => 3,
        "x5u" => 4,
        "x5c" => 5,
        "x5t" => 6,
        "x5t#S256" => 7,
        "typ" => 8,
        "cty" => 9,
        "crit" => 10,
        _ => return None,
    })
}

/// A JSON string borrowed from the input when it has no escapes (object member names,
/// `alg`), owned otherwise: no allocation on the common path.
pub(crate) struct Name<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
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
                // Registered names seen so far, one bit each; other names are in `h.other`.
                let mut seen: u32 = 0;
                while let Some(Name(k)) = map.next_key::<Name<'de>>()? {
                    let registered = registered_index(&k);
                    let repeated = match registered {
                        Some(bit) => seen & (1 << bit) != 0,
                        None => h.other.iter().any(|o| *o == k),
                    };
                    if repeated {
                        if h.duplicate.is_none() {
                            h.duplicate = Some(clip(&k));
                        }
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let Some(bit) = registered else {
                        map.next_value::<IgnoredAny>()?;
                        h.other.push(k.into_owned());
                        continue;
                    };
                    seen |= 1 << bit;
                    match &*k {
                        "alg" => {
                            let Name(name) = map.next_value::<Name<'de>>()?;
                            h.alg = Some(Algorithm::from_name(&name).ok_or_else(|| clip(&name)));
                        }
                        "kid" => h.kid = Some(map.next_value()?),
                        "typ" => h.typ = Some(map.next_value()?),
                        "cty" => h.cty = Some(map.next_value()?),
                        "crit" => h.crit = Some(map.next_value()?),
                        "jwk" => h.jwk = Some(map.next_value_seed(EmbeddedJwk)?),
                        "jku" | "x5u" | "x5c" => {
                            h.remote_key_refs = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        // x5t, x5t#S256
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads an embedded `jwk` strictly (kept out of line: it is large and rare).
struct EmbeddedJwk;

impl<'de> de::DeserializeSeed<'de> for EmbeddedJwk {
    type Value = Box<Jwk>;
    #[inline(never)]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Box<Jwk>, D::Error> {
        // Strict: a duplicate member in the key that a signature proves would mean
        // different keys to different parsers.
        let duplicate = core::cell::Cell::new(None);
        let raw = match de::DeserializeSeed::deserialize(
            crate::strict::StrictSeed {
                duplicate: &duplicate,
            },
            d,
        )? {
            serde_json::Value::Object(m) => m,
            _ => {
                return Err(de::Error::custom("the embedded jwk is not a JSON object"));
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
        serde_json::from_value::<Box<Jwk>>(serde_json::Value::Object(raw))
            .map_err(de::Error::custom)
    }
}

/// Parses a header from its JSON bytes, strictly.
///
/// # Errors
/// [`Error::Json`], [`Error::DuplicateMember`], [`Error::UnsupportedAlgorithm`],
/// [`Error::Malformed`] when `alg` is absent.
pub fn parse_header(json: &[u8]) -> Result<Header, Error> {
    // UTF-8 checked once for the whole header, so the parse need not check each string.
    let json = core::str::from_utf8(json).map_err(|e| Error::Json {
        part: "header",
        detail: clip(&format!("the header is not UTF-8: {e}")),
    })?;
    let raw: RawHeader = serde_json::from_str(json).map_err(|e| Error::Json {
        part: "header",
        detail: clip(&e.to_string()),
    })?;
    if let Some(name) = raw.duplicate {
        return Err(Error::DuplicateMember {
            part: "header",
            name,
        });
    }
    let alg = raw
        .alg
        .ok_or(Error::Malformed("the header has no alg member"))?
        .map_err(Error::UnsupportedAlgorithm)?;
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
///
/// Kept small (the header behind an [`Arc`], the payload on the heap) so that moving it
/// through `decode` and `verify` costs a few words, not a stack buffer per call.
pub struct Compact<'a> {
    header: Arc<Header>,
    signing_input: &'a str,
    payload: PayloadBuf,
    signature: Signature,
    /// Whether the header came from a [`HeaderCache`] rather than a parse.
    header_cached: bool,
}

/// Most header segments a [`HeaderCache`] keeps.
const HEADER_CACHE_ENTRIES: usize = 4;

/// Header segments (their exact base64url text) of tokens whose signature verified under
/// one policy, with the header parsed from them: a later token carrying the very same
/// segment skips the parse. The parse is a pure function of those bytes, so a hit yields
/// exactly the header a parse would; every check that depends on the policy (`crit`,
/// `typ`, the algorithm allow-list, the key's algorithm) still runs on it. Entries come
/// only from tokens whose signature verified, so a forger cannot fill it, and there are
/// at most four.
#[derive(Default)]
pub(crate) struct HeaderCache(std::sync::RwLock<Vec<(Box<str>, Arc<Header>)>>);

impl HeaderCache {
    fn get(&self, segment: &str) -> Option<Arc<Header>> {
        let entries = self.0.read().ok()?;
        entries
            .iter()
            .find(|(s, _)| **s == *segment)
            .map(|(_, h)| Arc::clone(h))
    }

    /// How many headers are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.read().map_or(0, |e| e.len())
    }

    /// Remembers the header of a token whose signature verified.
    pub(crate) fn remember(&self, compact: &Compact<'_>) {
        if compact.header_cached {
            return;
        }
        let Some((segment, _)) = compact.signing_input.split_once('.') else {
            return;
        };
        if let Ok(mut entries) = self.0.write()
            && entries.len() < HEADER_CACHE_ENTRIES
            && !entries.iter().any(|(s, _)| **s == *segment)
        {
            entries.push((segment.into(), Arc::clone(&compact.header)));
        }
    }
}

impl Clone for HeaderCache {
    /// A clone starts empty (the cache belongs to one policy value).
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for HeaderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.read().map_or(0, |e| e.len());
        write!(f, "HeaderCache({n} entries)")
    }
}

/// Bytes of a signature kept inline (Ed25519, ECDSA P-256, HMAC-SHA256); longer ones (RSA)
/// go to the heap.
const INLINE_SIGNATURE: usize = 64;

/// The decoded signature, without an allocation for the fixed-size algorithms.
enum Signature {
    Inline([u8; INLINE_SIGNATURE], usize),
    Heap(Vec<u8>),
}

impl Signature {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline(buf, len) => buf.get(..*len).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}

/// Largest payload buffer a thread keeps for the next token.
const POOLED_PAYLOAD: usize = 64 * 1024;

std::thread_local! {
    /// One decoded-payload buffer per thread, reused by the next token decoded there.
    static PAYLOAD_POOL: core::cell::Cell<Vec<u8>> = const { core::cell::Cell::new(Vec::new()) };
}

/// A decoded payload whose buffer goes back to this thread's pool when dropped (if it is
/// at most [`POOLED_PAYLOAD`] bytes of capacity), so that verifying token after token
/// neither allocates nor frees a payload-sized block each time. Freeing one, then
/// allocating one again, between the caller's own small allocations made glibc
/// consolidate its free lists on every verification of a large token (`benches/RESULTS.md`).
struct PayloadBuf(Vec<u8>);

impl PayloadBuf {
    fn decode(text: &str) -> Result<Self, Error> {
        let mut buf = PAYLOAD_POOL
            .try_with(core::cell::Cell::take)
            .unwrap_or_default();
        buf.clear();
        match b64::decode_public_append(text.as_bytes(), &mut buf) {
            Ok(()) => Ok(Self(buf)),
            Err(_) => {
                drop(Self(buf));
                Err(Error::Base64("payload"))
            }
        }
    }
}

impl Drop for PayloadBuf {
    fn drop(&mut self) {
        let buf = core::mem::take(&mut self.0);
        if buf.capacity() != 0 && buf.capacity() <= POOLED_PAYLOAD {
            // A thread being torn down has no pool left: the buffer is simply freed.
            let _ = PAYLOAD_POOL.try_with(|pool| pool.set(buf));
        }
    }
}

/// Bytes of a header decoded on the stack; longer ones (embedded RSA `jwk`) go to the heap.
const STACK_HEADER: usize = 512;

/// Decodes one segment of a token (public data: the fast, data-dependent decoder).
fn decode_segment(text: &str, part: &'static str) -> Result<Vec<u8>, Error> {
    b64::decode_public(text.as_bytes()).map_err(|_| Error::Base64(part))
}

fn decode_header(text: &str) -> Result<Header, Error> {
    let len = b64::decoded_len(text.len()).ok_or(Error::Base64("header"))?;
    if len <= STACK_HEADER {
        let mut buf = [0; STACK_HEADER];
        let out = buf.get_mut(..len).unwrap_or_default();
        b64::decode_public_into(text.as_bytes(), out).map_err(|_| Error::Base64("header"))?;
        parse_header(out)
    } else {
        parse_header(&decode_segment(text, "header")?)
    }
}

fn decode_signature(text: &str) -> Result<Signature, Error> {
    let len = b64::decoded_len(text.len()).ok_or(Error::Base64("signature"))?;
    if len <= INLINE_SIGNATURE {
        let mut buf = [0; INLINE_SIGNATURE];
        let out = buf.get_mut(..len).unwrap_or_default();
        b64::decode_public_into(text.as_bytes(), out).map_err(|_| Error::Base64("signature"))?;
        Ok(Signature::Inline(buf, len))
    } else {
        decode_segment(text, "signature").map(Signature::Heap)
    }
}

impl fmt::Debug for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("header", &self.header)
            .field("payload_len", &self.payload.0.len())
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
/// The payload is decoded into a buffer taken from this thread's pool and given back when
/// the [`Compact`] is dropped (one buffer per thread, kept only up to 64 KiB of capacity), so
/// decoding token after token does not allocate; [`Compact::into_parts`] hands the buffer to
/// the caller instead.
///
/// # Errors
/// A precise [`Error`] for every format problem.
pub fn decode<'a>(token: &'a str, opts: &DecodeOptions<'_>) -> Result<Compact<'a>, Error> {
    decode_cached(token, opts, None)
}

/// [`decode`], taking the header from `cache` when its segment is there.
pub(crate) fn decode_cached<'a>(
    token: &'a str,
    opts: &DecodeOptions<'_>,
    cache: Option<&HeaderCache>,
) -> Result<Compact<'a>, Error> {
    if token.len() > opts.max_bytes {
        return Err(Error::TokenTooLarge {
            len: token.len(),
            max: opts.max_bytes,
        });
    }
    // `memchr` finds the dots with SIMD (a 22 KB token: ~2 k instructions instead of
    // ~24 k for `str::split`); a '.' is ASCII, so every cut is a character boundary.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(d1), Some(d2), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(Error::Malformed(
            "a compact JWS has exactly three base64url segments separated by '.'",
        ));
    };
    let (h, p, s) = (&token[..d1], &token[d1 + 1..d2], &token[d2 + 1..]);
    if h.is_empty() {
        return Err(Error::Malformed("the header segment is empty"));
    }
    if s.is_empty() {
        return Err(Error::Malformed(
            "the signature segment is empty (unsecured JWS are refused)",
        ));
    }
    let cached = cache.and_then(|c| c.get(h));
    let header_cached = cached.is_some();
    let header = match cached {
        Some(header) => header,
        None => Arc::new(decode_header(h)?),
    };
    header.check_crit(opts.understood_crit)?;
    let payload = PayloadBuf::decode(p)?;
    let signature = decode_signature(s)?;
    Ok(Compact {
        header,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload,
        signature,
        header_cached,
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
        &self.payload.0
    }

    /// `BASE64URL(header) || '.' || BASE64URL(payload)`.
    #[must_use]
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    /// The raw signature bytes.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        self.signature.as_slice()
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
        key.verify(self.signing_input.as_bytes(), self.signature.as_slice())
    }

    /// Consumes the decoded token, returning header and payload.
    #[must_use]
    pub fn into_parts(self) -> (Header, Vec<u8>) {
        let mut payload = self.payload;
        (
            Arc::unwrap_or_clone(self.header),
            core::mem::take(&mut payload.0),
        )
    }

    /// Whether the header came from the cache (tests).
    #[cfg(test)]
    pub(crate) fn header_cached_for_tests(&self) -> bool {
        self.header_cached
    }

    /// Consumes the decoded token, returning the header.
    pub(crate) fn into_header(self) -> Arc<Header> {
        self.header
    }

    /// The header, shared (the token stays whole).
    pub(crate) fn shared_header(&self) -> Arc<Header> {
        Arc::clone(&self.header)
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

/// Fuzzing entry point: decodes arbitrary bytes as a compact JWS, no key involved; must
/// never panic.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(s) = core::str::from_utf8(data)
        && let Ok(c) = decode(
            s,
            &DecodeOptions {
                max_bytes: DEFAULT_MAX_TOKEN_BYTES,
                understood_crit: &["b64", "exp"],
            },
        )
    {
        let h = c.header();
        let _ = (
            h.alg(),
            h.kid(),
            h.typ(),
            h.other_members(),
            c.signature().len(),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(h: &str) -> Option<String> {
        match parse_header(h.as_bytes()) {
            Err(Error::DuplicateMember {
                part: "header",
                name,
            }) => Some(name),
            _ => None,
        }
    }

    fn token_with_payload(payload: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(br#"{"alg":"HS256"}"#),
            b64::encode(payload),
            b64::encode(&[7; 32])
        )
    }

    #[test]
    fn a_token_has_exactly_three_segments() {
        let h = b64::encode(br#"{"alg":"HS256"}"#);
        let p = b64::encode(b"{}");
        let three = "exactly three base64url segments";
        let opts = DecodeOptions::default();
        let malformed = |t: &str| match decode(t, &opts) {
            Err(Error::Malformed(m)) => m,
            other => panic!("{t:?}: {other:?}"),
        };
        for t in [
            String::new(),
            ".".into(),
            "...".into(),
            h.clone(),
            format!("{h}.{p}"),
            format!("{h}.{p}.AAAA."),
            format!("{h}.{p}.AAAA.AAAA"),
            format!("{h}..{p}.AAAA"),
            format!("{h}.{p}.AA\u{e9}.AA"),
        ] {
            assert!(malformed(&t).contains(three), "{t:?}");
        }
        assert!(malformed(&format!(".{p}.AAAA")).contains("header segment is empty"));
        assert!(malformed(&format!("{h}.{p}.")).contains("signature segment is empty"));
        // the segments are cut at the dots, whatever their lengths
        let text = format!("{h}.{p}.AAAA");
        let t = decode(&text, &opts).unwrap();
        assert_eq!(t.payload(), b"{}");
        assert_eq!(t.signing_input(), format!("{h}.{p}"));
        assert_eq!(t.signature(), [0, 0, 0]);
        let text = format!("{h}..AAAA");
        let empty_payload = decode(&text, &opts).unwrap();
        assert_eq!(empty_payload.payload(), b"");
    }

    #[test]
    fn payload_buffer_is_reused_and_never_shows_a_previous_payload() {
        let opts = DecodeOptions {
            max_bytes: 1 << 20,
            understood_crit: &[],
        };
        let long = vec![b'x'; 4000];
        let first = token_with_payload(&long);
        let short = token_with_payload(b"{}");
        // Run on a fresh thread, so no other test's buffer is in its pool.
        std::thread::spawn(move || {
            let a = decode(&first, &opts).unwrap();
            assert_eq!(a.payload(), &long[..]);
            let reused = a.payload().as_ptr();
            drop(a);
            // the next token on this thread decodes into the same buffer, holding only
            // its own bytes
            let b = decode(&short, &opts).unwrap();
            assert_eq!(b.payload(), b"{}");
            assert_eq!(b.payload().as_ptr(), reused);
            // while `b` is alive, another token gets a buffer of its own
            let c = decode(&first, &opts).unwrap();
            assert_ne!(c.payload().as_ptr(), reused);
            assert_eq!(c.payload(), &long[..]);
            drop((b, c));
            // a payload that fails to decode leaves nothing behind for the next one
            let bad = format!(
                "{}.{}!.{}",
                b64::encode(br#"{"alg":"HS256"}"#),
                "A".repeat(3999),
                "AAAA"
            );
            assert_eq!(decode(&bad, &opts).unwrap_err(), Error::Base64("payload"));
            let d = decode(&short, &opts).unwrap();
            assert_eq!(d.payload(), b"{}");
            // taken out of the token, the buffer is the caller's
            let (_, owned) = d.into_parts();
            assert_eq!(owned, b"{}");
            // a payload over the pool's cap is decoded, and not kept
            let huge = vec![b'y'; POOLED_PAYLOAD + 1];
            let huge_token = token_with_payload(&huge);
            let e = decode(&huge_token, &opts).unwrap();
            assert_eq!(e.payload(), &huge[..]);
            drop(e);
            let kept = PAYLOAD_POOL.with(|p| {
                let v = p.take();
                let cap = v.capacity();
                p.set(v);
                cap
            });
            assert!(kept <= POOLED_PAYLOAD, "{kept}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn header_duplicates_are_refused_for_registered_and_other_names() {
        assert_eq!(
            dup(r#"{"alg":"HS256","typ":"a","typ":"b"}"#).as_deref(),
            Some("typ")
        );
        assert_eq!(
            dup(r#"{"alg":"HS256","x5t":1,"x5t":1}"#).as_deref(),
            Some("x5t")
        );
        assert_eq!(
            dup(r#"{"alg":"HS256","\u006bid":"a","kid":"b"}"#).as_deref(),
            Some("kid")
        );
        assert_eq!(
            dup(r#"{"alg":"HS256","ext":1,"e\u0078t":2}"#).as_deref(),
            Some("ext")
        );
        let h =
            parse_header(br#"{"alg":"HS256","ext":1,"b64":true,"kid":"k","typ":"JWT"}"#).unwrap();
        assert_eq!(h.other_members(), ["ext", "b64"]);
        assert_eq!(
            (h.alg(), h.kid(), h.typ()),
            (Algorithm::HS256, Some("k"), Some("JWT"))
        );
    }

    #[test]
    fn a_header_that_is_not_utf8_is_refused() {
        for h in [
            &b"{\"alg\":\"HS256\",\"typ\":\"\xff\"}"[..],
            b"{\"alg\":\"HS256\",\"\xc3\":1}",
        ] {
            match parse_header(h) {
                Err(Error::Json { part, detail }) => {
                    assert_eq!(part, "header");
                    assert!(detail.contains("not UTF-8"), "{detail}");
                }
                other => panic!("{h:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn header_alg_is_parsed_from_the_escaped_or_plain_name_and_refused_when_unknown() {
        assert_eq!(
            parse_header(br#"{"alg":"\u0048S256"}"#).unwrap().alg(),
            Algorithm::HS256
        );
        assert_eq!(
            parse_header(br#"{"alg":"none"}"#).unwrap_err(),
            Error::UnsupportedAlgorithm("none".into())
        );
        assert!(matches!(
            parse_header(br#"{"alg":1}"#).unwrap_err(),
            Error::Json { part: "header", .. }
        ));
        assert_eq!(
            parse_header(br#"{"typ":"JWT"}"#).unwrap_err(),
            Error::Malformed("the header has no alg member")
        );
    }

    #[test]
    fn signatures_of_every_size_round_trip_inline_or_on_the_heap() {
        for len in [0usize, 1, 32, 63, 64, 65, 256, 512] {
            let sig: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let token = format!(
                "{}.e30.{}",
                b64::encode(br#"{"alg":"HS256"}"#),
                b64::encode(&sig)
            );
            match decode(&token, &DecodeOptions::default()) {
                Ok(c) => assert_eq!(c.signature(), sig.as_slice()),
                Err(e) => assert_eq!(
                    (len, e),
                    (
                        0,
                        Error::Malformed(
                            "the signature segment is empty (unsecured JWS are refused)"
                        )
                    )
                ),
            }
        }
        // a header larger than the stack buffer decodes the same way
        let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(250));
        let big = format!(r#"{{"alg":"HS256","pad":"{}"}}"#, "p".repeat(600));
        let token = format!("{}.e30.AAAA", b64::encode(big.as_bytes()));
        let c = decode(&token, &DecodeOptions::default()).unwrap();
        assert_eq!(c.header().other_members(), ["pad"]);
        let token = format!("{}.e30.AAAA", b64::encode(long.as_bytes()));
        assert_eq!(
            decode(&token, &DecodeOptions::default())
                .unwrap()
                .header()
                .kid()
                .map(str::len),
            Some(250)
        );
        // non-canonical trailing bits are refused in every segment
        let h = b64::encode(br#"{"alg":"HS256"}"#);
        for (token, part) in [
            (format!("{h}.e30.AAB"), "signature"),
            (format!("{h}.e31.AAAA"), "payload"),
            (format!("{h}x.e30.AAAA"), "header"),
            (format!("{h}.e30.AAAAA"), "signature"),
        ] {
            assert_eq!(
                decode(&token, &DecodeOptions::default()).unwrap_err(),
                Error::Base64(part),
                "{token}"
            );
        }
        fuzz_decode(token_bytes().as_bytes());
    }

    fn token_bytes() -> String {
        format!(
            "{}.e30.AAAA",
            b64::encode(br#"{"alg":"HS256","crit":["b64"],"b64":false}"#)
        )
    }
}
