//! Server side: verifying DPoP proofs (RFC 9449 section 4.3) in a safe order.

use core::fmt;

use handoff_core::jws::{self, DecodeOptions};
use handoff_core::replay::{ReplayKey, ReplayLog, Unconfirmed};
use handoff_core::{Algorithm, Thumbprint, UnixTime, VerifyingKey};
use serde::Deserialize;

use crate::error::{Endpoint, WireError};
use crate::nonce::{NonceCheck, NonceIssuer};
use crate::{Error, cnf, uri};

/// The `typ` every DPoP proof carries.
pub const DPOP_TYP: &str = "dpop+jwt";
/// Default cap on a `DPoP` header value, in bytes.
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8 * 1024;
/// Default cap on a proof's `jti`, in bytes.
pub const DEFAULT_MAX_JTI_BYTES: usize = 256;
/// Default acceptance window for `iat` in the past, in seconds.
pub const DEFAULT_IAT_PAST_SECS: u64 = 60;
/// Default tolerance for `iat` in the future, in seconds.
pub const DEFAULT_IAT_FUTURE_SECS: u64 = 5;
/// The default proof algorithms: every asymmetric algorithm the family verifies (EdDSA,
/// ES256, RS256, PS256), so proofs of mainstream clients (RSA keys included) verify
/// without configuration. Narrow them with [`DpopVerifierBuilder::algorithms`].
pub const DEFAULT_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];
/// The purpose tag of DPoP replay keys.
pub const REPLAY_PURPOSE: &str = "dpop/jti";

/// Whether the server uses nonces (RFC 9449 section 8).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NoncePolicy {
    /// No nonces: a `nonce` claim in a proof is ignored.
    Off,
    /// A nonce is checked when the proof carries one (stale or wrong ones are refused
    /// with `use_dpop_nonce`), and proofs without one are accepted.
    Optional(NonceIssuer),
    /// Every proof must carry a valid nonce issued by this server (section 11.3: once a
    /// server has issued nonces, it accepts no proof without one).
    Required(NonceIssuer),
}

impl NoncePolicy {
    fn issuer(&self) -> Option<&NonceIssuer> {
        match self {
            Self::Off => None,
            Self::Optional(i) | Self::Required(i) => Some(i),
        }
    }
}

/// Builds a [`DpopVerifier`]; every knob has a safe default.
#[derive(Debug, Clone)]
#[must_use]
pub struct DpopVerifierBuilder {
    algorithms: Vec<Algorithm>,
    iat_past_secs: u64,
    iat_future_secs: u64,
    nonce: NoncePolicy,
    max_proof_bytes: usize,
    max_jti_bytes: usize,
}

impl DpopVerifierBuilder {
    /// Narrows the accepted proof algorithms (asymmetric only; default
    /// [`DEFAULT_ALGORITHMS`]: every asymmetric algorithm the family verifies).
    pub fn algorithms(mut self, algs: &[Algorithm]) -> Self {
        self.algorithms = algs.to_vec();
        self
    }

    /// How far `iat` may lie in the past and in the future, in seconds (defaults 60 and
    /// 5; at most 3600 and 300). Both ends are inclusive: a proof is accepted while
    /// `iat - future_secs <= now <= iat + past_secs`, and its replay entry is kept until
    /// `iat + past_secs` (or the end of its nonce's validity, if later).
    pub fn iat_window(mut self, past_secs: u64, future_secs: u64) -> Self {
        self.iat_past_secs = past_secs;
        self.iat_future_secs = future_secs;
        self
    }

    /// The nonce policy (default [`NoncePolicy::Off`]).
    pub fn nonce(mut self, policy: NoncePolicy) -> Self {
        self.nonce = policy;
        self
    }

    /// Cap on the `DPoP` header value, in bytes (default 8192; 512 to 65536).
    pub fn max_proof_bytes(mut self, max: usize) -> Self {
        self.max_proof_bytes = max;
        self
    }

    /// Cap on the `jti`, in bytes (default 256; 16 to 4096).
    pub fn max_jti_bytes(mut self, max: usize) -> Self {
        self.max_jti_bytes = max;
        self
    }

    /// Checks the policy and builds the verifier.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty or symmetric algorithm list or a bound out of range.
    pub fn build(self) -> Result<DpopVerifier, Error> {
        if self.algorithms.is_empty() {
            return Err(Error::Config("the DPoP algorithm list is empty"));
        }
        if self.algorithms.iter().any(|a| !a.is_asymmetric()) {
            return Err(Error::Config(
                "DPoP proofs use asymmetric algorithms only; remove HS256",
            ));
        }
        if self.iat_past_secs > 3600 || self.iat_future_secs > 300 {
            return Err(Error::Config(
                "the iat window is at most 3600 s in the past and 300 s in the future",
            ));
        }
        if !(512..=65_536).contains(&self.max_proof_bytes) {
            return Err(Error::Config(
                "the proof size cap must be 512 to 65536 bytes",
            ));
        }
        if !(16..=4096).contains(&self.max_jti_bytes) {
            return Err(Error::Config("the jti cap must be 16 to 4096 bytes"));
        }
        let mut algorithms = self.algorithms;
        algorithms.dedup();
        Ok(DpopVerifier {
            algorithms,
            iat_past_secs: self.iat_past_secs,
            iat_future_secs: self.iat_future_secs,
            nonce: self.nonce,
            max_proof_bytes: self.max_proof_bytes,
            max_jti_bytes: self.max_jti_bytes,
        })
    }
}

/// Verifies DPoP proofs against a request (RFC 9449 section 4.3).
///
/// Call order, per request:
/// 1. [`DpopVerifier::verify`] with every `DPoP` header value received, the method, the
///    effective request URI, and the access token and its `cnf.jkt` if one was presented;
/// 2. any other check of your own (the access token itself, scopes);
/// 3. last, [`Unconfirmed::confirm`] against your [`ReplayLog`] (or
///    [`DpopVerifier::confirm`] for this crate's error type), so that a refused request
///    never burns an honest proof's `jti`.
///
/// On an error, [`DpopVerifier::wire_error`] gives the status, `WWW-Authenticate`,
/// `DPoP-Nonce` and JSON body to send.
#[derive(Debug, Clone)]
pub struct DpopVerifier {
    algorithms: Vec<Algorithm>,
    iat_past_secs: u64,
    iat_future_secs: u64,
    nonce: NoncePolicy,
    max_proof_bytes: usize,
    max_jti_bytes: usize,
}

impl Default for DpopVerifier {
    fn default() -> Self {
        Self {
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            iat_past_secs: DEFAULT_IAT_PAST_SECS,
            iat_future_secs: DEFAULT_IAT_FUTURE_SECS,
            nonce: NoncePolicy::Off,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
            max_jti_bytes: DEFAULT_MAX_JTI_BYTES,
        }
    }
}

/// One request as the verifier sees it.
///
/// The URI is the *effective request URI* as the client addressed it: build it from your
/// configured external origin (for example `https://api.example.com`) and the request
/// path. Never build it from `Host` or `X-Forwarded-*`: those come from the client (or
/// an untrusted hop), so an attacker who captured a proof for another server could
/// simply send the matching `Host` and make `htu` match wherever the proof is replayed.
/// The query is ignored, so passing the path with or without it is fine.
#[derive(Clone, Copy)]
pub struct DpopRequest<'a> {
    headers: &'a [&'a str],
    method: &'a str,
    uri: &'a str,
    access_token: Option<&'a str>,
    expected_jkt: Option<&'a str>,
    nonces: Option<ExpectedNonces<'a>>,
}

/// Nonces the application keeps itself (RFC 9449 section 8 leaves their form to the
/// server): the one to hand out now, and others still accepted.
#[derive(Clone, Copy)]
struct ExpectedNonces<'a> {
    current: &'a str,
    also: &'a [&'a str],
}

impl ExpectedNonces<'_> {
    fn accepts(&self, nonce: &str) -> bool {
        // Every candidate is compared, in constant time for equal lengths.
        let mut hit = ct_str_eq(self.current, nonce);
        for n in self.also {
            hit |= ct_str_eq(n, nonce);
        }
        hit
    }
}

fn ct_str_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// RFC 9449 section 8: `nonce = 1*NQCHAR` (%x21 / %x23-5B / %x5D-7E).
fn is_nqchar_string(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl fmt::Debug for DpopRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopRequest")
            .field("dpop_headers", &self.headers.len())
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("access_token", &self.access_token.is_some())
            .field("expected_jkt", &self.expected_jkt)
            .field("expected_nonces", &self.nonces.map(|n| 1 + n.also.len()))
            .finish_non_exhaustive()
    }
}

impl<'a> DpopRequest<'a> {
    /// A request with every `DPoP` header value received (pass them all: more than one
    /// is refused), the method, and the effective request URI.
    #[must_use]
    pub fn new(dpop_headers: &'a [&'a str], method: &'a str, uri: &'a str) -> Self {
        Self {
            headers: dpop_headers,
            method,
            uri,
            access_token: None,
            expected_jkt: None,
            nonces: None,
        }
    }

    /// The access token presented with `Authorization: DPoP <token>`: the proof must then
    /// carry its `ath`.
    #[must_use]
    pub fn with_access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The `cnf.jkt` of the (already verified) access token: the proof must be signed by
    /// that key.
    #[must_use]
    pub fn bound_to(mut self, jkt: &'a str) -> Self {
        self.expected_jkt = Some(jkt);
        self
    }

    /// Nonces chosen by the application (RFC 9449 section 8: kept in a shared store, or a
    /// short rotating list): `current` is the nonce to hand out now, `also_accepted` the
    /// others still accepted (for example the previous one). For this request they
    /// replace the verifier's [`NoncePolicy`]: the proof must carry one of them, compared
    /// exactly (in constant time per candidate). A proof without a nonce is refused with
    /// [`Error::NonceMissing`], one with another nonce with [`Error::NonceStale`], both
    /// carrying `current` to send in `DPoP-Nonce` (wire code `use_dpop_nonce`); a proof
    /// with an accepted nonce other than `current` verifies and
    /// [`DpopProof::next_nonce`] is `current`. Each nonce must be 1 or more NQCHAR
    /// (otherwise [`Error::Config`]).
    #[must_use]
    pub fn with_expected_nonces(mut self, current: &'a str, also_accepted: &'a [&'a str]) -> Self {
        self.nonces = Some(ExpectedNonces {
            current,
            also: also_accepted,
        });
        self
    }
}

/// A verified DPoP proof. Obtained only through [`Unconfirmed::confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    thumbprint: Thumbprint,
    algorithm: Algorithm,
    jti: String,
    htm: String,
    htu: String,
    iat: UnixTime,
    nonce: Option<String>,
    next_nonce: Option<String>,
}

impl DpopProof {
    /// The RFC 7638 thumbprint of the proof key: bind tokens to it (`cnf.jkt`).
    #[must_use]
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }
    /// The thumbprint in base64url, as `cnf.jkt`.
    #[must_use]
    pub fn jkt(&self) -> String {
        self.thumbprint.to_base64url()
    }
    /// The `cnf` claim binding a new access token to the proof key.
    #[must_use]
    pub fn cnf(&self) -> cnf::Cnf {
        cnf::Cnf::for_key(&self.thumbprint)
    }
    /// The proof's algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The proof's `jti`.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// The proof's `htm`.
    #[must_use]
    pub fn htm(&self) -> &str {
        &self.htm
    }
    /// The normalised `htu` (no query, no fragment).
    #[must_use]
    pub fn htu(&self) -> &str {
        &self.htu
    }
    /// The proof's `iat`.
    #[must_use]
    pub fn iat(&self) -> UnixTime {
        self.iat
    }
    /// The server nonce the proof carried, if any.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
    /// A fresh nonce to send in `DPoP-Nonce` with the successful response, when the
    /// server uses nonces and the proof's nonce is absent or not of the current step.
    #[must_use]
    pub fn next_nonce(&self) -> Option<&str> {
        self.next_nonce.as_deref()
    }
}

/// The claims of a proof, with strict types: a string `iat` or a number `jti` is refused,
/// and a duplicate member is refused.
#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Number>,
    ath: Option<String>,
    nonce: Option<String>,
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

impl DpopVerifier {
    /// A builder starting from the defaults ([`DEFAULT_ALGORITHMS`]; `iat` 60 s back, 5 s
    /// ahead; no nonces; 8 KiB proofs; 256-byte `jti`).
    pub fn builder() -> DpopVerifierBuilder {
        let d = Self::default();
        DpopVerifierBuilder {
            algorithms: d.algorithms,
            iat_past_secs: d.iat_past_secs,
            iat_future_secs: d.iat_future_secs,
            nonce: d.nonce,
            max_proof_bytes: d.max_proof_bytes,
            max_jti_bytes: d.max_jti_bytes,
        }
    }

    /// The accepted algorithms (for `algs="..."` and discovery metadata
    /// `dpop_signing_alg_values_supported`).
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The nonce to send now in `DPoP-Nonce`, if the server uses nonces.
    #[must_use]
    pub fn current_nonce(&self, now: UnixTime) -> Option<String> {
        self.nonce.issuer().map(|i| i.issue(now))
    }

    /// The HTTP answer for `err` at the given kind of endpoint.
    pub fn wire_error(&self, err: &Error, endpoint: Endpoint) -> WireError {
        WireError::new(err, endpoint, &self.algorithms)
    }

    /// Verifies a proof against a request, in the order of RFC 9449 section 4.3 with the
    /// cheap checks first and the signature after them. It returns the proof wrapped in
    /// [`Unconfirmed`]: its replay key (scoped by the key thumbprint and the normalised
    /// `htu`) must be recorded last, until [`Unconfirmed::until`], the instant until which
    /// the proof would be accepted.
    ///
    /// # Errors
    /// A precise [`Error`] for every check that fails; [`Error::code`] gives its wire code.
    pub fn verify(
        &self,
        request: &DpopRequest<'_>,
        now: UnixTime,
    ) -> Result<Unconfirmed<DpopProof>, Error> {
        // 1. Exactly one header value, size-capped before parsing.
        let token = match request.headers {
            [] => return Err(Error::MissingProof),
            [one] => *one,
            many => return Err(Error::MultipleProofs(many.len())),
        };
        if token.len() > self.max_proof_bytes {
            return Err(Error::ProofTooLarge {
                len: token.len(),
                max: self.max_proof_bytes,
            });
        }
        // 2. Header: compact JWS, typ, alg allow-list, public jwk consistent with alg.
        let opts = DecodeOptions {
            max_bytes: self.max_proof_bytes,
            understood_crit: &[],
        };
        let compact = jws::decode(token, &opts).map_err(|e| match e {
            handoff_core::Error::UnsupportedAlgorithm(alg) => Error::AlgorithmNotAllowed {
                alg,
                allowed: self.allowed(),
            },
            other => Error::Malformed(other),
        })?;
        let header = compact.header();
        if header.typ() != Some(DPOP_TYP) {
            return Err(Error::WrongType(header.typ().map(clip)));
        }
        let alg = header.alg();
        if !self.algorithms.contains(&alg) {
            return Err(Error::AlgorithmNotAllowed {
                alg: alg.as_str().to_owned(),
                allowed: self.allowed(),
            });
        }
        let jwk = header.jwk().ok_or(Error::MissingJwk)?;
        let key = VerifyingKey::from_jwk_with_alg(jwk, alg).map_err(Error::InvalidJwk)?;

        // 3. Claims with strict types.
        let claims: Claims = serde_json::from_slice(compact.payload())
            .map_err(|e| Error::InvalidClaims(clip(&e.to_string())))?;
        let jti = claims.jti.ok_or(Error::MissingClaim("jti"))?;
        if jti.is_empty() {
            return Err(Error::MissingClaim("jti"));
        }
        if jti.len() > self.max_jti_bytes {
            return Err(Error::JtiTooLong {
                len: jti.len(),
                max: self.max_jti_bytes,
            });
        }
        let htm = claims.htm.ok_or(Error::MissingClaim("htm"))?;
        let htu = claims.htu.ok_or(Error::MissingClaim("htu"))?;
        let iat = claims.iat.ok_or(Error::MissingClaim("iat"))?;
        let iat = numeric_date(&iat)?;
        if request.access_token.is_some() && claims.ath.is_none() {
            return Err(Error::MissingAth);
        }
        if let Some(expected) = &request.nonces {
            if !is_nqchar_string(expected.current)
                || !expected.also.iter().all(|n| is_nqchar_string(n))
            {
                return Err(Error::Config(
                    "an expected DPoP nonce is empty or not NQCHAR (RFC 9449 section 8)",
                ));
            }
            if claims.nonce.is_none() {
                return Err(Error::NonceMissing {
                    fresh: expected.current.to_owned(),
                });
            }
        } else if let NoncePolicy::Required(issuer) = &self.nonce
            && claims.nonce.is_none()
        {
            return Err(Error::NonceMissing {
                fresh: issuer.issue(now),
            });
        }

        // 4. htm, case-sensitively.
        if htm != request.method {
            return Err(Error::MethodMismatch {
                expected: clip(request.method),
                found: clip(&htm),
            });
        }

        // 5. htu against the effective request URI, both normalised.
        let expected_htu =
            uri::normalize_htu(request.uri).map_err(|e| Error::InvalidRequestUri(e.0))?;
        let htu = uri::normalize_htu(&htu).map_err(|e| Error::InvalidHtu(e.0))?;
        if htu != expected_htu {
            return Err(Error::UriMismatch {
                expected: clip(&expected_htu),
                found: clip(&htu),
            });
        }

        // 6. Freshness: iat window, then the nonce if the server uses them.
        if iat.saturating_add(self.iat_past_secs) < now {
            return Err(Error::IssuedTooLongAgo {
                iat: iat.as_secs(),
                now: now.as_secs(),
                window: self.iat_past_secs,
            });
        }
        if iat > now.saturating_add(self.iat_future_secs) {
            return Err(Error::IssuedInFuture {
                iat: iat.as_secs(),
                now: now.as_secs(),
                skew: self.iat_future_secs,
            });
        }
        let mut until = iat.saturating_add(self.iat_past_secs);
        let mut next_nonce = None;
        if let Some(expected) = &request.nonces {
            let n = claims.nonce.as_deref().unwrap_or_default();
            if !expected.accepts(n) {
                return Err(Error::NonceStale {
                    fresh: expected.current.to_owned(),
                });
            }
            if !ct_str_eq(expected.current, n) {
                next_nonce = Some(expected.current.to_owned());
            }
        } else if let Some(issuer) = self.nonce.issuer() {
            match &claims.nonce {
                Some(n) => match issuer.check(n, now) {
                    NonceCheck::Valid { until: nonce_until } => {
                        until = until.max(nonce_until);
                        if !issuer.is_current(n, now) {
                            next_nonce = Some(issuer.issue(now));
                        }
                    }
                    NonceCheck::Stale => {
                        return Err(Error::NonceStale {
                            fresh: issuer.issue(now),
                        });
                    }
                    _ => {
                        return Err(Error::NonceInvalid {
                            fresh: issuer.issue(now),
                        });
                    }
                },
                None => next_nonce = Some(issuer.issue(now)),
            }
        }

        // 7. Signature with the embedded key (opaque on failure).
        compact.verify(&key).map_err(|_| Error::InvalidSignature)?;

        // 8. Token binding: ath, then cnf.jkt, both in constant time.
        if let Some(token) = request.access_token {
            let ath = claims.ath.as_deref().unwrap_or_default();
            if !cnf::ath_matches(token, ath) {
                return Err(Error::AthMismatch);
            }
        }
        let thumbprint = key.thumbprint();
        if let Some(jkt) = request.expected_jkt
            && !cnf::jkt_matches(&thumbprint, jkt)
        {
            return Err(Error::JktMismatch);
        }

        // 9. The caller records the jti last.
        let replay_key = ReplayKey::derive(
            REPLAY_PURPOSE,
            &[thumbprint.as_bytes(), htu.as_bytes(), jti.as_bytes()],
        );
        let proof = DpopProof {
            thumbprint,
            algorithm: alg,
            jti,
            htm,
            htu,
            iat,
            nonce: claims.nonce,
            next_nonce,
        };
        Ok(Unconfirmed::new(proof, replay_key, until))
    }

    /// Records the proof's `jti` in `log` and returns the proof if it was fresh, with
    /// refusals mapped to this crate's [`Error`] (so that [`Self::wire_error`] applies).
    ///
    /// # Errors
    /// [`Error::Replayed`], [`Error::ReplayAtCapacity`] or [`Error::ReplayStore`].
    pub fn confirm(
        &self,
        unconfirmed: Unconfirmed<DpopProof>,
        log: &dyn ReplayLog,
        now: UnixTime,
    ) -> Result<DpopProof, Error> {
        unconfirmed.confirm(log, now).map_err(Error::from)
    }

    /// [`Self::verify`] then [`Self::confirm`], for callers with no check of their own in
    /// between.
    ///
    /// # Errors
    /// As [`Self::verify`] and [`Self::confirm`].
    pub fn verify_and_confirm(
        &self,
        request: &DpopRequest<'_>,
        now: UnixTime,
        log: &dyn ReplayLog,
    ) -> Result<DpopProof, Error> {
        let unconfirmed = self.verify(request, now)?;
        self.confirm(unconfirmed, log, now)
    }

    fn allowed(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|a| a.as_str()).collect();
        names.join(" ")
    }
}

/// A JSON NumericDate: a non-negative number (fractions are truncated).
fn numeric_date(n: &serde_json::Number) -> Result<UnixTime, Error> {
    if let Some(u) = n.as_u64() {
        return Ok(UnixTime::from_secs(u));
    }
    match n.as_f64() {
        Some(f) if (0.0..1.8e19).contains(&f) => {
            // Truncation is the intent: NumericDate seconds, fractions dropped.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(UnixTime::from_secs(f as u64))
        }
        _ => Err(Error::InvalidClaims(
            "iat must be a non-negative NumericDate (seconds since the epoch)".into(),
        )),
    }
}

/// Fuzzing entry point: verifies arbitrary bytes as a proof; must never panic.
#[doc(hidden)]
pub fn fuzz_verify(bytes: &[u8]) {
    let Ok(s) = core::str::from_utf8(bytes) else {
        return;
    };
    let _ = uri::normalize(s);
    let verifier = DpopVerifier::default();
    let headers = [s];
    let request = DpopRequest::new(&headers, "GET", "https://rs.example/resource")
        .with_access_token("token")
        .bound_to("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    let _ = verifier.verify(&request, UnixTime::from_secs(1_562_262_618));
    if let Some((method, uri)) = s.split_once(' ') {
        let req = DpopRequest::new(&headers, method, uri);
        let _ = verifier.verify(&req, UnixTime::from_secs(1_562_262_618));
    }
}
