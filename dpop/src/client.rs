//! Client side: proof keys, proofs (RFC 9449 section 4.2) and a small nonce memory.

use core::fmt;
use std::collections::VecDeque;

use handoff_core::jose_jwk::{Jwk, Parameters};
use handoff_core::jws::{self, SignHeader};
use handoff_core::{Algorithm, SigningKey, Thumbprint, UnixTime, b64};
use rand_core::CryptoRng;
use serde::Serialize;

use crate::server::DPOP_TYP;
use crate::{Error, cnf, uri};

/// Random bytes in a generated `jti` (128 bits; RFC 9449 asks for at least 96).
pub const JTI_BYTES: usize = 16;

/// A client's DPoP key pair: the private key signs proofs, the public key is embedded.
pub struct DpopKey {
    key: SigningKey,
    jwk: Jwk,
    thumbprint: Thumbprint,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.key.algorithm())
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// The algorithm to use when nothing else is agreed: ES256.
    pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::ES256;

    /// Generates a key for `alg`: ES256 (the default), EdDSA, or RS256 / PS256 with a
    /// 2048-bit modulus.
    ///
    /// # Errors
    /// [`Error::Config`] for HS256 (DPoP needs a public key); [`Error::Key`] if
    /// generation fails.
    pub fn generate<R: CryptoRng + ?Sized>(alg: Algorithm, rng: &mut R) -> Result<Self, Error> {
        if !alg.is_asymmetric() {
            return Err(Error::Config(
                "DPoP keys are asymmetric: use ES256, EdDSA, RS256 or PS256",
            ));
        }
        Self::from_signing_key(SigningKey::generate(alg, rng).map_err(Error::Key)?)
    }

    /// Wraps an existing asymmetric signing key (for example one loaded from storage,
    /// or an RSA key of more than 2048 bits).
    ///
    /// # Errors
    /// [`Error::Config`] for an HS256 key.
    pub fn from_signing_key(key: SigningKey) -> Result<Self, Error> {
        if !key.algorithm().is_asymmetric() {
            return Err(Error::Config(
                "DPoP keys are asymmetric: use ES256, EdDSA, RS256 or PS256",
            ));
        }
        let vk = key.verifying_key();
        let mut jwk = vk.to_public_jwk().map_err(Error::Key)?;
        // Only the key itself: no kid, alg or use (the header carries alg).
        jwk.prm = Parameters::default();
        Ok(Self {
            thumbprint: vk.thumbprint(),
            key,
            jwk,
        })
    }

    /// The proof algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The RFC 7638 thumbprint of the public key.
    #[must_use]
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    /// The thumbprint in base64url: the `dpop_jkt` authorization request parameter and
    /// the `cnf.jkt` of tokens bound to this key.
    #[must_use]
    pub fn jkt(&self) -> String {
        self.thumbprint.to_base64url()
    }

    /// The public JWK embedded in proofs (public members only).
    #[must_use]
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Makes a proof for one request: header `typ: dpop+jwt`, the key's `alg`, the public
    /// `jwk`; claims `jti` (128 random bits), `htm`, `htu` (the URI without query and
    /// fragment), `iat`, `ath` when an access token is given and `nonce` when the server
    /// supplied one. Make a fresh proof for every request, retries included.
    ///
    /// # Errors
    /// [`Error::InvalidRequestUri`] when `uri` is not an absolute URI;
    /// [`Error::Config`] for an empty method or a nonce with characters outside
    /// RFC 9449's `NQCHAR`; [`Error::Key`] if signing fails.
    pub fn proof<R: CryptoRng + ?Sized>(
        &self,
        method: &str,
        uri: &str,
        now: UnixTime,
        rng: &mut R,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, Error> {
        if method.is_empty() || !method.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(Error::Config("the HTTP method must be a non-empty token"));
        }
        uri::normalize(uri).map_err(|e| Error::InvalidRequestUri(e.0))?;
        let htu = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
        if let Some(n) = nonce
            && !is_nonce_syntax(n)
        {
            return Err(Error::Config(
                "the nonce must be 1 to 512 characters of RFC 9449 NQCHAR",
            ));
        }
        let mut raw = [0u8; JTI_BYTES];
        rng.fill_bytes(&mut raw);
        let jti = b64::encode(&raw);
        let claims = ProofClaims {
            jti: &jti,
            htm: method,
            htu,
            iat: now.as_secs(),
            ath: access_token.map(cnf::ath),
            nonce,
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|_| Error::Config("the proof claims could not be serialised"))?;
        let header = SignHeader {
            typ: Some(DPOP_TYP),
            kid: None,
            jwk: Some(&self.jwk),
        };
        jws::sign(&self.key, &header, &payload, rng).map_err(Error::Key)
    }
}

/// Largest nonce remembered or sent, in characters.
pub const MAX_NONCE_CHARS: usize = 512;

/// RFC 9449 section 8.1: `nonce = 1*NQCHAR`, `NQCHAR = %x21 / %x23-5B / %x5D-7E`.
fn is_nonce_syntax(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NONCE_CHARS
        && n.bytes()
            .all(|c| matches!(c, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// What to do after a response, from [`NonceMemory::on_response`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Send the request again, once, with a fresh proof carrying this nonce.
    RetryWithNonce(String),
    /// Do not retry: hand the response to the application.
    Done,
}

/// One logical request, across its (at most two) attempts.
#[derive(Debug, Clone)]
pub struct Attempt {
    origin: String,
    nonce_sent: Option<String>,
    retried: bool,
}

impl Attempt {
    /// The nonce to put in this attempt's proof, if one is known for the origin.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.nonce_sent.as_deref()
    }
    /// Whether this attempt is already the retry.
    #[must_use]
    pub fn is_retry(&self) -> bool {
        self.retried
    }
}

/// A bounded, per-origin memory of the last `DPoP-Nonce` each server sent.
///
/// Use: [`NonceMemory::begin`] before a request, make the proof with
/// [`Attempt::nonce`], then feed every response (success or error) to
/// [`NonceMemory::on_response`]; retry only when it says so. It asks for at most one
/// retry per request, and never when the server sends back the nonce that was just
/// refused. When full, the least recently used origin is forgotten (that costs one
/// retry, never security).
#[derive(Debug, Clone)]
pub struct NonceMemory {
    entries: VecDeque<(String, String)>,
    capacity: usize,
}

impl Default for NonceMemory {
    fn default() -> Self {
        Self::new(32)
    }
}

impl NonceMemory {
    /// A memory for at most `capacity` origins (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// The number of origins remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nonce remembered for the origin of `uri`, if any.
    #[must_use]
    pub fn nonce_for(&self, uri: &str) -> Option<&str> {
        let origin = uri::normalize(uri).ok()?.origin;
        self.entries
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, n)| n.as_str())
    }

    /// Starts a request to `uri`.
    ///
    /// # Errors
    /// [`Error::InvalidRequestUri`] when `uri` is not an absolute URI.
    pub fn begin(&self, uri: &str) -> Result<Attempt, Error> {
        let origin = uri::normalize(uri)
            .map_err(|e| Error::InvalidRequestUri(e.0))?
            .origin;
        let nonce_sent = self
            .entries
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, n)| n.clone());
        Ok(Attempt {
            origin,
            nonce_sent,
            retried: false,
        })
    }

    /// Learns from a response: remembers its `DPoP-Nonce` (whatever the status) and
    /// decides whether to retry. `error_code` is the OAuth `error` of the response (from
    /// the JSON body at a token endpoint, or from `WWW-Authenticate`, see
    /// [`error_from_www_authenticate`]).
    pub fn on_response(
        &mut self,
        attempt: &mut Attempt,
        dpop_nonce: Option<&str>,
        error_code: Option<&str>,
    ) -> RetryDecision {
        let learned = dpop_nonce.filter(|n| is_nonce_syntax(n));
        if let Some(n) = learned {
            self.remember(&attempt.origin, n);
        }
        if error_code != Some("use_dpop_nonce") || attempt.retried {
            return RetryDecision::Done;
        }
        match learned {
            Some(n) if attempt.nonce_sent.as_deref() != Some(n) => {
                attempt.retried = true;
                attempt.nonce_sent = Some(n.to_owned());
                RetryDecision::RetryWithNonce(n.to_owned())
            }
            _ => RetryDecision::Done,
        }
    }

    fn remember(&mut self, origin: &str, nonce: &str) {
        if let Some(pos) = self.entries.iter().position(|(o, _)| o == origin) {
            self.entries.remove(pos);
        } else if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries
            .push_back((origin.to_owned(), nonce.to_owned()));
    }
}

/// The `error` parameter of a `WWW-Authenticate: DPoP ...` challenge, if present.
#[must_use]
pub fn error_from_www_authenticate(value: &str) -> Option<&str> {
    let rest = value.trim_start();
    let scheme_end = rest.find(char::is_whitespace)?;
    if !rest[..scheme_end].eq_ignore_ascii_case("dpop") {
        return None;
    }
    let mut params = &rest[scheme_end..];
    loop {
        params = params.trim_start_matches([' ', '\t', ',']);
        let eq = params.find('=')?;
        let name = params[..eq].trim();
        let after = params[eq + 1..].trim_start();
        let (val, tail) = if let Some(q) = after.strip_prefix('"') {
            // Quoted string: find the closing quote, skipping escapes.
            let bytes = q.as_bytes();
            let mut i = 0;
            let mut end = None;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        end = Some(i);
                        break;
                    }
                    _ => i += 1,
                }
            }
            let end = end?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find([',', ' ', '\t']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.eq_ignore_ascii_case("error") {
            return Some(val);
        }
        params = tail;
        if params.trim().is_empty() {
            return None;
        }
    }
}
