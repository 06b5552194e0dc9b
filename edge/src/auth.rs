//! Request authentication: [`EdgeAuth`] holds the verification state (profiles, keys,
//! DPoP verifier, replay log, clock); the axum extractors and the tower layer call it.
//!
//! Every refusal is an [`AuthRejection`]: the status and `WWW-Authenticate` challenge of
//! RFC 6750 section 3 (`Bearer`) or RFC 9449 section 7.1 (`DPoP ... algs="..."`), a
//! `DPoP-Nonce` header when the client must use a nonce, and a body holding only the
//! OAuth error code.

use std::sync::Arc;

use handoff_core::replay::{InMemoryReplayLog, ReplayLog, ReplayRefused};
use handoff_core::{Jwks, KeySource, UnixTime, Validation, VerifyingKey};
use handoff_dpop::{DpopProof, DpopRequest, DpopVerifier, Endpoint};
use handoff_verify::{
    AccessToken, AccessTokenVerifier, HostToken, HostTokenVerifier, Presented, ServiceToken,
    ServiceTokenVerifier, Verifier, VerifyError,
};
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::error::EdgeError;
use crate::jwks::RemoteJwks;

/// Largest `Authorization` header value read.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;

/// Where a profile's verification keys come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Keys {
    /// An issuer's JWK Set over HTTP.
    Remote(RemoteJwks),
    /// Keys held in memory (a token service verifying its own access tokens).
    Static(Arc<Jwks>),
    /// One pinned key.
    Pinned(Arc<VerifyingKey>),
}

impl From<RemoteJwks> for Keys {
    fn from(r: RemoteJwks) -> Self {
        Self::Remote(r)
    }
}
impl From<Jwks> for Keys {
    fn from(j: Jwks) -> Self {
        Self::Static(Arc::new(j))
    }
}
impl From<VerifyingKey> for Keys {
    fn from(k: VerifyingKey) -> Self {
        Self::Pinned(Arc::new(k))
    }
}

/// A key owned for one verification (cloned out of the cache, so that no lock is held
/// during the signature check).
pub(crate) enum HeldKey {
    Owned(Box<VerifyingKey>),
    Shared(Arc<Jwks>),
    Pinned(Arc<VerifyingKey>),
}

pub(crate) fn with_keys<R>(held: &HeldKey, f: impl FnOnce(&dyn KeySource) -> R) -> R {
    match held {
        HeldKey::Owned(k) => f(&**k),
        HeldKey::Shared(j) => f(&**j),
        HeldKey::Pinned(k) => f(&**k),
    }
}

impl Keys {
    pub(crate) async fn hold(
        &self,
        validation: &Validation,
        token: &str,
    ) -> Result<HeldKey, AuthRejection> {
        match self {
            Self::Static(j) => Ok(HeldKey::Shared(j.clone())),
            Self::Pinned(k) => Ok(HeldKey::Pinned(k.clone())),
            Self::Remote(r) => match r.key_for_token(validation, token).await {
                Ok(k) => Ok(HeldKey::Owned(Box::new(k))),
                Err(EdgeError::Verify(e)) => Err(AuthRejection::from_verify(&e, Scheme::Bearer)),
                Err(_) => Err(AuthRejection::unavailable(None)),
            },
        }
    }
}

/// Access tokens revoked before their expiry (for example with a refresh family on
/// reuse). The token service writes it; resource servers read it.
pub trait AccessRevocation: Send + Sync + 'static {
    /// Whether the access token with this `jti` is revoked.
    fn is_revoked(&self, jti: &str) -> bool;
}

#[derive(Clone)]
struct Profile<V> {
    verifier: V,
    validation: Validation,
    keys: Keys,
}

impl<V> Profile<V> {
    /// A profile of `verifier`, checked for its token kind by `kind` (e.g.
    /// `HostTokenVerifier::new`), with its keys.
    fn new(
        verifier: Verifier,
        keys: Keys,
        kind: impl FnOnce(Verifier) -> Result<V, VerifyError>,
    ) -> Result<Self, EdgeError> {
        let validation = verifier.validation().clone();
        Ok(Self {
            verifier: kind(verifier).map_err(EdgeError::Verify)?,
            validation,
            keys,
        })
    }
}

struct AuthInner {
    origin: String,
    clock: Arc<dyn Clock>,
    dpop: DpopVerifier,
    replay: Arc<dyn ReplayLog>,
    host: Option<Profile<HostTokenVerifier>>,
    access: Option<Profile<AccessTokenVerifier>>,
    service: Option<ServiceTokenVerifier>,
    allow_bearer: bool,
    revoked: Option<Arc<dyn AccessRevocation>>,
}

/// The verification state of a gateway: cheap to clone, put it in your axum state (the
/// extractors find it through `FromRef`) or give it to [`crate::EdgeAuthLayer`].
#[derive(Clone)]
pub struct EdgeAuth {
    inner: Arc<AuthInner>,
}

impl core::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EdgeAuth")
            .field("origin", &self.inner.origin)
            .field("allow_bearer", &self.inner.allow_bearer)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EdgeAuth`]: the external origin is required; profiles are added per
/// token kind the gateway accepts.
#[must_use]
pub struct EdgeAuthBuilder {
    origin: String,
    clock: Arc<dyn Clock>,
    dpop: DpopVerifier,
    replay: Option<Arc<dyn ReplayLog>>,
    host: Option<Profile<HostTokenVerifier>>,
    access: Option<Profile<AccessTokenVerifier>>,
    service: Option<ServiceTokenVerifier>,
    allow_bearer: bool,
    revoked: Option<Arc<dyn AccessRevocation>>,
    error: Option<EdgeError>,
}

impl EdgeAuthBuilder {
    /// Accepts host tokens of this profile (a [`handoff_verify::TokenKind::Host`] [`Verifier`]) with keys
    /// from `keys`, usually the host's [`RemoteJwks`].
    pub fn host_tokens(mut self, verifier: Verifier, keys: impl Into<Keys>) -> Self {
        match Profile::new(verifier, keys.into(), HostTokenVerifier::new) {
            Ok(p) => self.host = Some(p),
            Err(e) => self.error = Some(e),
        }
        self
    }
    /// Accepts access tokens of this profile (a [`handoff_verify::TokenKind::Access`] [`Verifier`]).
    pub fn access_tokens(mut self, verifier: Verifier, keys: impl Into<Keys>) -> Self {
        match Profile::new(verifier, keys.into(), AccessTokenVerifier::new) {
            Ok(p) => self.access = Some(p),
            Err(e) => self.error = Some(e),
        }
        self
    }
    /// Accepts service tokens.
    pub fn service_tokens(mut self, verifier: ServiceTokenVerifier) -> Self {
        self.service = Some(verifier);
        self
    }
    /// The DPoP policy (algorithms, `iat` window, nonces); default [`DpopVerifier::default`].
    pub fn dpop(mut self, dpop: DpopVerifier) -> Self {
        self.dpop = dpop;
        self
    }
    /// The replay log for DPoP proofs and one-time host tokens (default: in memory,
    /// 100 000 entries). Share one across instances (Redis, SQLite) when there are several.
    pub fn replay_log(mut self, log: Arc<dyn ReplayLog>) -> Self {
        self.replay = Some(log);
        self
    }
    /// Whether unbound access tokens may be presented as `Bearer` to the
    /// [`crate::Access`] extractor (default: no). Bound tokens never may.
    pub fn allow_bearer(mut self, on: bool) -> Self {
        self.allow_bearer = on;
        self
    }
    /// A revocation list consulted for every access token.
    pub fn revocation(mut self, list: Arc<dyn AccessRevocation>) -> Self {
        self.revoked = Some(list);
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Finishes.
    ///
    /// # Errors
    /// A profile of the wrong kind, or an origin that is not `http(s)://host[:port]`.
    pub fn build(self) -> Result<EdgeAuth, EdgeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let o = &self.origin;
        let valid = (o.starts_with("https://") || o.starts_with("http://"))
            && !o.ends_with('/')
            && o.splitn(4, '/').count() == 3
            && handoff_dpop::normalize_htu(o).is_ok();
        if !valid {
            return Err(EdgeError::Config(
                "the external origin must be scheme://host[:port] without a path, e.g. https://api.example.com",
            ));
        }
        Ok(EdgeAuth {
            inner: Arc::new(AuthInner {
                origin: self.origin,
                clock: self.clock,
                dpop: self.dpop,
                replay: self
                    .replay
                    .unwrap_or_else(|| Arc::new(InMemoryReplayLog::new(100_000))),
                host: self.host,
                access: self.access,
                service: self.service,
                allow_bearer: self.allow_bearer,
                revoked: self.revoked,
            }),
        })
    }
}

/// The credential an `Authorization` header carries.
pub(crate) enum Credential<'a> {
    None,
    Bearer(&'a str),
    Dpop(&'a str),
    Other,
}

/// The `DPoP` header values, in order, for the DPoP verifier (which refuses anything but
/// exactly one). A value that is not visible ASCII becomes `"\0"`, which the verifier
/// refuses as malformed, so that it still counts as a header.
pub(crate) fn dpop_proofs(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect()
}

pub(crate) fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(Credential::None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::bad_request(
            "more than one Authorization header",
        ));
    }
    if v.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthRejection::bad_request("Authorization header too large"));
    }
    let Ok(v) = v.to_str() else {
        return Err(AuthRejection::bad_request(
            "Authorization header is not ASCII",
        ));
    };
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Ok(Credential::Other);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok(Credential::Dpop(token))
    } else {
        Ok(Credential::Other)
    }
}

/// A verified DPoP-bound access token with its proof.
#[derive(Debug, Clone)]
pub struct DpopAccess {
    /// The access token.
    pub token: AccessToken,
    /// The proof that came with it (already recorded in the replay log).
    pub proof: DpopProof,
}

impl EdgeAuth {
    /// Starts a builder. `external_origin` is how clients address this server
    /// (`https://api.example.com`): DPoP proofs are checked against it plus the request
    /// path, never against the `Host` header.
    pub fn builder(external_origin: impl Into<String>) -> EdgeAuthBuilder {
        EdgeAuthBuilder {
            origin: external_origin.into(),
            clock: Arc::new(SystemClock),
            dpop: DpopVerifier::default(),
            replay: None,
            host: None,
            access: None,
            service: None,
            allow_bearer: false,
            revoked: None,
            error: None,
        }
    }

    /// The external origin.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The DPoP verifier.
    #[must_use]
    pub fn dpop(&self) -> &DpopVerifier {
        &self.inner.dpop
    }

    /// The replay log.
    #[must_use]
    pub fn replay_log(&self) -> &Arc<dyn ReplayLog> {
        &self.inner.replay
    }

    /// The clock's time.
    #[must_use]
    pub fn now(&self) -> UnixTime {
        self.inner.clock.now()
    }

    pub(crate) fn dpop_challenge(&self) -> String {
        let algs: Vec<&str> = self
            .inner
            .dpop
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect();
        format!("DPoP algs=\"{}\"", algs.join(" "))
    }

    /// Verifies a one-time host token from `Authorization: Bearer`, and records its `jti`.
    ///
    /// # Errors
    /// An [`AuthRejection`] ready to send.
    pub async fn verify_host<T: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
    ) -> Result<HostToken<T>, AuthRejection> {
        let Some(p) = &self.inner.host else {
            return Err(AuthRejection::misconfigured("host tokens"));
        };
        let token = match credential(headers)? {
            Credential::Bearer(t) => t,
            Credential::None => return Err(AuthRejection::challenge(vec!["Bearer".into()])),
            _ => {
                return Err(AuthRejection::token(
                    Scheme::Bearer,
                    "use the Bearer scheme",
                    None,
                ));
            }
        };
        let held = p.keys.hold(&p.validation, token).await?;
        let now = self.now();
        let unconfirmed = with_keys(&held, |k| p.verifier.verify::<T, _>(token, k, now))
            .map_err(|e| AuthRejection::from_verify(&e, Scheme::Bearer))?;
        unconfirmed
            .confirm(&*self.inner.replay, now)
            .map_err(|e| AuthRejection::from_replay(&e, Scheme::Bearer))
    }

    /// Verifies a DPoP-bound access token: `Authorization: DPoP`, exactly one `DPoP`
    /// header whose proof matches the method and `origin + path`, carries `ath`, is
    /// signed by the key of `cnf.jkt`, and is fresh (recorded last in the replay log).
    ///
    /// # Errors
    /// An [`AuthRejection`] ready to send.
    pub async fn verify_dpop(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<DpopAccess, AuthRejection> {
        let token = match credential(headers)? {
            Credential::Dpop(t) => t,
            Credential::None => {
                return Err(AuthRejection::challenge(vec![self.dpop_challenge()]));
            }
            Credential::Bearer(_) => {
                return Err(self.dpop_rejection(
                    "invalid_token",
                    "this resource requires a DPoP-bound access token: use the DPoP scheme with a proof",
                ));
            }
            Credential::Other => {
                return Err(self.dpop_rejection("invalid_request", "use the DPoP scheme"));
            }
        };
        self.dpop_checks(method, path, headers, token).await
    }

    async fn dpop_checks(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        token: &str,
    ) -> Result<DpopAccess, AuthRejection> {
        let Some(p) = &self.inner.access else {
            return Err(AuthRejection::misconfigured("access tokens"));
        };
        let proofs = dpop_proofs(headers);
        let uri = format!("{}{}", self.inner.origin, path);
        let now = self.now();
        let dpop = &self.inner.dpop;
        let request = DpopRequest::new(&proofs, method.as_str(), &uri).with_access_token(token);
        let unconfirmed = dpop
            .verify(&request, now)
            .map_err(|e| AuthRejection::from_dpop(dpop, &e))?;
        let held = p.keys.hold(&p.validation, token).await?;
        let presented = Presented::dpop_unconfirmed(&unconfirmed);
        let access = with_keys(&held, |k| p.verifier.verify(token, k, &presented, now))
            .map_err(|e| AuthRejection::from_verify(&e, Scheme::Dpop(self.dpop_challenge())))?;
        self.check_revoked(&access, Scheme::Dpop(self.dpop_challenge()))?;
        let proof = dpop
            .confirm(unconfirmed, &*self.inner.replay, now)
            .map_err(|e| AuthRejection::from_dpop(dpop, &e))?;
        Ok(DpopAccess {
            token: access,
            proof,
        })
    }

    fn check_revoked(&self, access: &AccessToken, scheme: Scheme) -> Result<(), AuthRejection> {
        if let Some(r) = &self.inner.revoked
            && r.is_revoked(access.jti())
        {
            return Err(AuthRejection::token(
                scheme,
                "the access token was revoked",
                None,
            ));
        }
        Ok(())
    }

    fn dpop_rejection(&self, code: &'static str, desc: &str) -> AuthRejection {
        let algs: Vec<&str> = self
            .inner
            .dpop
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect();
        AuthRejection {
            status: StatusCode::UNAUTHORIZED,
            challenges: vec![format!(
                "DPoP error=\"{code}\", error_description=\"{desc}\", algs=\"{}\"",
                algs.join(" ")
            )],
            dpop_nonce: None,
            error: code,
            retry_after: None,
        }
    }

    /// Verifies an access token presented as `DPoP` (always) or as `Bearer` (only when
    /// bearer is allowed and the token is not bound).
    ///
    /// # Errors
    /// An [`AuthRejection`] ready to send.
    pub async fn verify_access(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<AccessToken, AuthRejection> {
        match credential(headers)? {
            Credential::Dpop(t) => Ok(self.dpop_checks(method, path, headers, t).await?.token),
            Credential::Bearer(t) if self.inner.allow_bearer => {
                let Some(p) = &self.inner.access else {
                    return Err(AuthRejection::misconfigured("access tokens"));
                };
                if headers.contains_key("dpop") {
                    return Err(AuthRejection::token(
                        Scheme::Both(self.dpop_challenge()),
                        "a DPoP proof came with a Bearer token: use the DPoP scheme",
                        None,
                    ));
                }
                let held = p.keys.hold(&p.validation, t).await?;
                let now = self.now();
                let access = with_keys(&held, |k| p.verifier.verify(t, k, &Presented::Bearer, now))
                    .map_err(|e| {
                        AuthRejection::from_verify(&e, Scheme::Both(self.dpop_challenge()))
                    })?;
                self.check_revoked(&access, Scheme::Both(self.dpop_challenge()))?;
                Ok(access)
            }
            Credential::Bearer(_) => Err(self.dpop_rejection(
                "invalid_token",
                "bearer access tokens are not accepted here: use the DPoP scheme with a proof",
            )),
            Credential::None => {
                let mut c = vec![self.dpop_challenge()];
                if self.inner.allow_bearer {
                    c.insert(0, "Bearer".into());
                }
                Err(AuthRejection::challenge(c))
            }
            Credential::Other => Err(AuthRejection::bad_request(
                "unsupported Authorization scheme",
            )),
        }
    }

    /// Verifies a service token from `Authorization: Bearer` carrying every scope of
    /// `required`.
    ///
    /// # Errors
    /// An [`AuthRejection`] ready to send: `403 insufficient_scope` when a scope is missing.
    pub fn verify_service(
        &self,
        headers: &HeaderMap,
        required: &[&str],
    ) -> Result<ServiceToken, AuthRejection> {
        let Some(v) = &self.inner.service else {
            return Err(AuthRejection::misconfigured("service tokens"));
        };
        let token = match credential(headers)? {
            Credential::Bearer(t) => t,
            Credential::None => return Err(AuthRejection::challenge(vec!["Bearer".into()])),
            _ => {
                return Err(AuthRejection::token(
                    Scheme::Bearer,
                    "use the Bearer scheme",
                    None,
                ));
            }
        };
        let t = match v.verify(token, self.now()) {
            Ok(t) => t,
            Err(VerifyError::ScopeNotAllowed) => return Err(AuthRejection::scope(required)),
            Err(e) => return Err(AuthRejection::from_verify(&e, Scheme::Bearer)),
        };
        if required.iter().all(|s| t.has_scope(s)) {
            Ok(t)
        } else {
            Err(AuthRejection::scope(required))
        }
    }
}

/// Which challenge a refusal carries.
pub(crate) enum Scheme {
    Bearer,
    Dpop(String),
    Both(String),
}

/// A refused request: status, challenges, `DPoP-Nonce`, and an error code. Implements
/// axum's `IntoResponse`; [`AuthRejection::into_http`] builds a plain `http` response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct AuthRejection {
    status: StatusCode,
    challenges: Vec<String>,
    dpop_nonce: Option<String>,
    error: &'static str,
    retry_after: Option<u64>,
}

/// `DPoP error="..", error_description="..", algs=".."` from the bare `DPoP algs=".."`.
fn dpop_with_error(bare: &str, code: &str, desc: &str) -> String {
    let algs = bare.strip_prefix("DPoP ").unwrap_or(bare);
    format!("DPoP error=\"{code}\", error_description=\"{desc}\", {algs}")
}

pub(crate) fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

impl AuthRejection {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The `WWW-Authenticate` values (one per challenge).
    #[must_use]
    pub fn challenges(&self) -> &[String] {
        &self.challenges
    }
    /// The OAuth error code of the body.
    #[must_use]
    pub fn error(&self) -> &'static str {
        self.error
    }
    /// The `DPoP-Nonce` value sent, if any.
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    fn challenge(challenges: Vec<String>) -> Self {
        // RFC 6750 section 3.1: no error code when the request carried no credential.
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenges,
            dpop_nonce: None,
            error: "invalid_request",
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(desc: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            challenges: vec![format!(
                "Bearer error=\"invalid_request\", error_description=\"{}\"",
                quote(desc)
            )],
            dpop_nonce: None,
            error: "invalid_request",
            retry_after: None,
        }
    }

    fn misconfigured(what: &str) -> Self {
        tracing::error!("EdgeAuth has no profile for {what}; refusing the request");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            challenges: Vec::new(),
            dpop_nonce: None,
            error: "server_error",
            retry_after: None,
        }
    }

    fn unavailable(retry_after: Option<u64>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            challenges: Vec::new(),
            dpop_nonce: None,
            error: "temporarily_unavailable",
            retry_after: Some(retry_after.unwrap_or(5).clamp(1, 300)),
        }
    }

    pub(crate) fn token(scheme: Scheme, desc: &str, code: Option<&'static str>) -> Self {
        let code = code.unwrap_or("invalid_token");
        let desc = quote(desc);
        let bearer = format!("Bearer error=\"{code}\", error_description=\"{desc}\"");
        let challenges = match scheme {
            Scheme::Bearer => vec![bearer],
            Scheme::Dpop(d) => vec![dpop_with_error(&d, code, &desc)],
            Scheme::Both(d) => vec![bearer, dpop_with_error(&d, code, &desc)],
        };
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenges,
            dpop_nonce: None,
            error: code,
            retry_after: None,
        }
    }

    pub(crate) fn scope(required: &[&str]) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            challenges: vec![format!(
                "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"{}\"",
                quote(&required.join(" "))
            )],
            dpop_nonce: None,
            error: "insufficient_scope",
            retry_after: None,
        }
    }

    fn from_verify(e: &VerifyError, scheme: Scheme) -> Self {
        tracing::debug!(error = %e, "token refused");
        match e {
            VerifyError::KeySetUnavailable { .. } => Self::unavailable(None),
            VerifyError::Replay(r) => Self::from_replay(r, scheme),
            VerifyError::Policy(_) => Self::misconfigured("a valid policy"),
            VerifyError::KeyBindingMismatch => Self::token(
                scheme,
                "the DPoP proof key does not match the token binding",
                None,
            ),
            VerifyError::UnknownKidRateLimited { .. } => Self::token(
                scheme,
                "the token's key is not in the issuer's key set",
                None,
            ),
            // The crate's messages name what was wrong (claim, type, binding) and keep
            // signature failures opaque: safe to tell the client.
            other => Self::token(scheme, &other.to_string(), None),
        }
    }

    fn from_replay(e: &ReplayRefused, scheme: Scheme) -> Self {
        match e {
            ReplayRefused::Replayed => Self::token(scheme, "the token was already used", None),
            _ => Self::unavailable(None),
        }
    }

    fn from_dpop(v: &DpopVerifier, e: &handoff_dpop::Error) -> Self {
        let w = v.wire_error(e, Endpoint::Resource);
        Self {
            status: StatusCode::from_u16(w.status).unwrap_or(StatusCode::UNAUTHORIZED),
            challenges: w.www_authenticate.into_iter().collect(),
            dpop_nonce: w.dpop_nonce,
            error: w.code.as_str(),
            retry_after: (w.status == 503).then_some(5),
        }
    }

    /// The headers of the answer.
    #[must_use]
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in &self.challenges {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(WWW_AUTHENTICATE, v);
            }
        }
        if let Some(n) = &self.dpop_nonce
            && let Ok(v) = HeaderValue::from_str(n)
        {
            h.insert("dpop-nonce", v);
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
        if let Some(s) = self.retry_after {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    /// The body: `{"error":"<code>"}` and nothing else.
    #[must_use]
    pub fn body(&self) -> String {
        format!("{{\"error\":\"{}\"}}", self.error)
    }

    /// A plain `http` response, for servers without axum.
    pub fn into_http<B: From<String>>(self) -> http::Response<B> {
        let mut resp = http::Response::new(B::from(self.body()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers();
        resp
    }
}

impl axum::response::IntoResponse for AuthRejection {
    fn into_response(self) -> axum::response::Response {
        self.into_http::<axum::body::Body>()
    }
}

impl core::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.error)
    }
}

impl std::error::Error for AuthRejection {}
