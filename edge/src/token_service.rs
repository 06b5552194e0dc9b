//! A reference OAuth token service and protected API for the host handoff, speaking
//! standard OAuth so that any conformant client can use it:
//!
//! - `GET /.well-known/oauth-authorization-server` (RFC 8414);
//! - `POST /token` (RFC 6749 section 3.2, form-encoded) with the grants
//!   `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523: the host JWT as
//!   `assertion`, one-time `jti`) and `refresh_token` (rotation through
//!   `handoff-refresh`; reuse revokes the family and its access tokens); with a `DPoP`
//!   header the answer is `token_type: "DPoP"`, the access token carries `cnf.jkt`, and the
//!   refresh family is bound to the key (RFC 9449 section 5);
//! - `GET /jwks.json`: the public key of the access tokens;
//! - `GET /api/me`: the token's subject and tenant, DPoP required.
//!
//! The access token's `sub` is `<host_tenant_id>/<host sub>`: access tokens carry no
//! tenant claim of their own (the access profile refuses `host_tenant_id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use handoff_core::replay::{InMemoryReplayLog, ReplayLog, ReplayRefused};
use handoff_core::{Algorithm, HmacSecret, Jwks, SigningKey, UnixTime};
use handoff_dpop::{DpopProof, DpopRequest, DpopVerifier, Endpoint, NonceIssuer, NoncePolicy};
use handoff_refresh::{FamilyId, FamilyStore, InMemoryFamilyStore, Policy, RefreshFamilies};
use handoff_verify::{
    AccessClaims, HostTokenVerifier, NoCustomClaims, TokenKind, Verifier, VerifyError,
    mint_access_token,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::auth::{AccessRevocation, EdgeAuth, Keys};
use crate::clock::{Clock, SystemClock};
use crate::error::EdgeError;
use crate::extract::Dpop;

/// The RFC 7523 grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Most families (and revoked access tokens) remembered by the in-memory defaults.
const MEMORY_CAPACITY: usize = 100_000;
/// Largest `/token` request body.
const MAX_TOKEN_FORM_BYTES: usize = 16 * 1024;

/// Access tokens revoked with their family, kept until they expire. Bounded.
#[derive(Debug, Default)]
pub struct RevokedAccessTokens {
    inner: Mutex<HashMap<String, UnixTime>>,
}

impl RevokedAccessTokens {
    /// Revokes `jti` until `exp`.
    pub fn revoke(&self, jti: &str, exp: UnixTime, now: UnixTime) {
        let mut m = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= MEMORY_CAPACITY {
            m.retain(|_, e| *e > now);
        }
        // Over capacity with live entries: the oldest-expiring still count; refuse to
        // grow without bound by dropping the new entry's predecessor set instead.
        if m.len() < MEMORY_CAPACITY {
            m.insert(jti.to_owned(), exp);
        } else {
            tracing::error!(
                "revocation list full; access token {jti} stays valid until it expires"
            );
        }
    }
}

impl AccessRevocation for RevokedAccessTokens {
    fn is_revoked(&self, jti: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(jti)
    }
}

/// What the service remembers per family besides the family store: its live access
/// tokens (to revoke them on reuse).
#[derive(Debug, Default, Clone)]
struct FamilySide {
    access: Vec<(String, UnixTime)>,
}

struct ServiceState {
    issuer: String,
    token_endpoint: String,
    api_audience: String,
    client_id: String,
    access_ttl: u64,
    clock: Arc<dyn Clock>,
    host: HostTokenVerifier,
    host_validation: handoff_core::Validation,
    host_keys: Keys,
    dpop: DpopVerifier,
    replay: Arc<dyn ReplayLog>,
    session_key: SigningKey,
    families: RefreshFamilies,
    store: Arc<dyn FamilyStore>,
    side: Mutex<HashMap<FamilyId, FamilySide>>,
    revoked: Arc<RevokedAccessTokens>,
    auth: EdgeAuth,
}

/// Builds a [`TokenService`].
#[must_use]
pub struct TokenServiceBuilder {
    issuer: String,
    host_issuer: String,
    host_keys: Keys,
    api_audience: Option<String>,
    client_id: String,
    access_ttl: u64,
    nonces: bool,
    clock: Arc<dyn Clock>,
    replay: Option<Arc<dyn ReplayLog>>,
    store: Option<Arc<dyn FamilyStore>>,
    session_key: Option<SigningKey>,
    master: Option<HmacSecret>,
}

impl TokenServiceBuilder {
    /// The audience of the access tokens (default: the issuer).
    pub fn api_audience(mut self, aud: impl Into<String>) -> Self {
        self.api_audience = Some(aud.into());
        self
    }
    /// The public client's id (default `web-app`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }
    /// Access-token lifetime in seconds (default 300).
    pub fn access_ttl(mut self, secs: u64) -> Self {
        self.access_ttl = secs;
        self
    }
    /// Whether DPoP proofs must carry a server nonce (default on: RFC 9449 section 8).
    pub fn dpop_nonces(mut self, on: bool) -> Self {
        self.nonces = on;
        self
    }
    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// The replay log (DPoP proofs and host-token `jti`); default in memory.
    pub fn replay_log(mut self, log: Arc<dyn ReplayLog>) -> Self {
        self.replay = Some(log);
        self
    }
    /// The refresh-family store; default in memory.
    pub fn family_store(mut self, store: Arc<dyn FamilyStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// The access-token signing key (default: a fresh Ed25519 key, kid `session-1`).
    pub fn session_key(mut self, key: SigningKey) -> Self {
        self.session_key = Some(key);
        self
    }
    /// The refresh-family master key (default: random; share it between instances).
    pub fn refresh_master_key(mut self, key: HmacSecret) -> Self {
        self.master = Some(key);
        self
    }

    /// Finishes.
    ///
    /// # Errors
    /// [`EdgeError::Config`] or [`EdgeError::Verify`] for an invalid setting.
    pub fn build(self) -> Result<TokenService, EdgeError> {
        let mut rng = crate::system_rng();
        let host_verifier = Verifier::builder(TokenKind::Host)
            .issuer(&self.host_issuer)
            .audience(&self.issuer)
            .algorithm(Algorithm::EdDSA)
            .build()
            .map_err(EdgeError::Verify)?;
        let host_validation = host_verifier.validation().clone();
        let host = HostTokenVerifier::new(host_verifier).map_err(EdgeError::Verify)?;
        let session_key = match self.session_key {
            Some(k) => k,
            None => SigningKey::generate(Algorithm::EdDSA, &mut rng)
                .and_then(|k| k.with_kid("session-1"))
                .map_err(|_| EdgeError::Config("session key generation failed"))?,
        };
        let nonce = if self.nonces {
            NoncePolicy::Required(NonceIssuer::new(
                HmacSecret::generate(&mut rng),
                self.issuer.as_bytes().to_vec(),
            ))
        } else {
            NoncePolicy::Off
        };
        let dpop = DpopVerifier::builder()
            .nonce(nonce)
            .build()
            .map_err(|_| EdgeError::Config("DPoP policy"))?;
        let replay: Arc<dyn ReplayLog> = self
            .replay
            .unwrap_or_else(|| Arc::new(InMemoryReplayLog::new(MEMORY_CAPACITY)));
        let store: Arc<dyn FamilyStore> = self
            .store
            .unwrap_or_else(|| Arc::new(InMemoryFamilyStore::new(MEMORY_CAPACITY)));
        let master = self
            .master
            .unwrap_or_else(|| HmacSecret::generate(&mut rng));
        let api_audience = self.api_audience.unwrap_or_else(|| self.issuer.clone());
        let revoked = Arc::new(RevokedAccessTokens::default());
        let access_profile = Verifier::builder(TokenKind::Access)
            .issuer(&self.issuer)
            .audience(&api_audience)
            .algorithm(session_key.algorithm())
            .build()
            .map_err(EdgeError::Verify)?;
        let auth = EdgeAuth::builder(self.issuer.clone())
            .access_tokens(access_profile, session_key.verifying_key())
            .dpop(dpop.clone())
            .replay_log(replay.clone())
            .revocation(revoked.clone())
            .clock(self.clock.clone())
            .build()?;
        if self.access_ttl == 0 || self.access_ttl > handoff_verify::MAX_ACCESS_TTL_SECS {
            return Err(EdgeError::Config("access_ttl must be 1 to 3600 s"));
        }
        Ok(TokenService {
            state: Arc::new(ServiceState {
                token_endpoint: format!("{}/token", self.issuer),
                issuer: self.issuer,
                api_audience,
                client_id: self.client_id,
                access_ttl: self.access_ttl,
                clock: self.clock,
                host,
                host_validation,
                host_keys: self.host_keys,
                dpop,
                replay,
                session_key,
                families: RefreshFamilies::new(&master, Policy::default()),
                store,
                side: Mutex::new(HashMap::new()),
                revoked,
                auth,
            }),
        })
    }
}

/// The reference token service and API. Cheap to clone.
#[derive(Clone)]
pub struct TokenService {
    state: Arc<ServiceState>,
}

impl core::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.state.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct AppState(Arc<ServiceState>);

impl FromRef<AppState> for EdgeAuth {
    fn from_ref(s: &AppState) -> Self {
        s.0.auth.clone()
    }
}

impl TokenService {
    /// A builder: `issuer` is this service's external origin (`https://login.example`,
    /// the `aud` of host tokens and the `iss` of access tokens), `host_issuer` the `iss`
    /// of host tokens, `host_keys` the host's keys (usually its [`crate::RemoteJwks`]).
    pub fn builder(
        issuer: impl Into<String>,
        host_issuer: impl Into<String>,
        host_keys: impl Into<Keys>,
    ) -> TokenServiceBuilder {
        TokenServiceBuilder {
            issuer: issuer.into(),
            host_issuer: host_issuer.into(),
            host_keys: host_keys.into(),
            api_audience: None,
            client_id: "web-app".into(),
            access_ttl: 300,
            nonces: true,
            clock: Arc::new(SystemClock),
            replay: None,
            store: None,
            session_key: None,
            master: None,
        }
    }

    /// The [`EdgeAuth`] that the API routes use (access tokens of this service).
    #[must_use]
    pub fn auth(&self) -> &EdgeAuth {
        &self.state.auth
    }

    /// The public keys of the access tokens.
    #[must_use]
    pub fn jwks(&self) -> Jwks {
        Jwks::from_keys([self.state.session_key.verifying_key()]).unwrap_or_default()
    }

    /// The router: metadata, `/token`, `/jwks.json` and `/api/me`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route(
                "/token",
                post(token).layer(DefaultBodyLimit::max(MAX_TOKEN_FORM_BYTES)),
            )
            .route("/jwks.json", get(jwks))
            .route("/api/me", get(me))
            .with_state(AppState(self.state.clone()))
    }
}

async fn metadata(State(s): State<AppState>) -> Response {
    let s = &s.0;
    let algs: Vec<&str> = s.dpop.algorithms().iter().map(|a| a.as_str()).collect();
    let body = serde_json::json!({
        "issuer": s.issuer,
        "token_endpoint": s.token_endpoint,
        "jwks_uri": format!("{}/jwks.json", s.issuer),
        "grant_types_supported": [JWT_BEARER, "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": algs,
        "response_types_supported": [],
    });
    ([(http::header::CACHE_CONTROL, "max-age=300")], Json(body)).into_response()
}

async fn jwks(State(s): State<AppState>) -> Response {
    let doc = Jwks::from_keys([s.0.session_key.verifying_key()])
        .unwrap_or_default()
        .to_json();
    (
        [
            (http::header::CONTENT_TYPE, "application/jwk-set+json"),
            (http::header::CACHE_CONTROL, "max-age=300"),
        ],
        doc,
    )
        .into_response()
}

async fn me(Dpop(v): Dpop) -> Response {
    let sub = v.token.subject();
    let (tenant, user) = sub.split_once('/').unwrap_or(("", sub));
    let body = serde_json::json!({
        "sub": user,
        "tenant": tenant,
        "client_id": v.token.client_id(),
        "jkt": v.proof.jkt(),
    });
    let mut resp = Json(body).into_response();
    if let Some(n) = v.proof.next_nonce()
        && let Ok(h) = HeaderValue::from_str(n)
    {
        resp.headers_mut().insert("dpop-nonce", h);
    }
    resp
}

/// The `/token` form (RFC 6749 section 3.2). Its `Debug` leaves out the credentials.
#[derive(Deserialize)]
pub(crate) struct TokenForm {
    pub(crate) grant_type: Option<String>,
    pub(crate) assertion: Option<String>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) scope: Option<String>,
}

impl core::fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenForm")
            .field("grant_type", &self.grant_type)
            .field("assertion", &self.assertion.as_ref().map(|_| "<redacted>"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish()
    }
}

/// An RFC 6749 section 5.2 error answer.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
    pub(crate) nonce: Option<String>,
    pub(crate) www_authenticate: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &str, desc: &str) -> Self {
        Self {
            status,
            body: serde_json::json!({"error": error, "error_description": desc}).to_string(),
            nonce: None,
            www_authenticate: None,
        }
    }
    fn grant(desc: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", desc)
    }
    fn request(desc: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", desc)
    }
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "try again shortly",
        )
    }
    pub(crate) fn dpop(v: &DpopVerifier, e: &handoff_dpop::Error) -> Self {
        let w = v.wire_error(e, Endpoint::Token);
        Self {
            status: StatusCode::from_u16(w.status).unwrap_or(StatusCode::BAD_REQUEST),
            body: w.json_body,
            nonce: w.dpop_nonce,
            www_authenticate: w.www_authenticate,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut h = crate::json_no_store();
        if let Some(n) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            h.insert("dpop-nonce", n);
        }
        if let Some(w) = self
            .www_authenticate
            .and_then(|w| HeaderValue::from_str(&w).ok())
        {
            h.insert(http::header::WWW_AUTHENTICATE, w);
        }
        (self.status, h, self.body).into_response()
    }
}

async fn token(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match body {
        Ok(body) => token_inner(&s.0, &headers, &body).await,
        Err(_) => Err(OAuthError::request(
            "the body could not be read: at most 16384 bytes of application/x-www-form-urlencoded",
        )),
    };
    match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A `/token` request as read from its headers and body, before any verification.
#[derive(Debug)]
pub(crate) struct TokenRequest<'h> {
    pub(crate) form: TokenForm,
    /// The `DPoP` header values, in order (the verifier wants exactly one).
    pub(crate) proofs: Vec<&'h str>,
}

/// The grant a `/token` request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// RFC 7523: the host JWT.
    JwtBearer(String),
    /// RFC 6749 section 6.
    Refresh(String),
}

const FORM_ERROR: &str =
    "the body must be application/x-www-form-urlencoded with each parameter once";

/// Reads a `/token` request (RFC 6749 section 3.2): one `Content-Type` of
/// `application/x-www-form-urlencoded`, a body of at most 16 KiB with each parameter at
/// most once, a `client_id` (if sent) equal to `client_id`, and the `DPoP` headers.
/// Synchronous and without I/O: the handler calls it, and so does the fuzz target.
pub(crate) fn read_token_request<'h>(
    headers: &'h HeaderMap,
    body: &[u8],
    client_id: &str,
) -> Result<TokenRequest<'h>, OAuthError> {
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    let form_type = match (types.next(), types.next()) {
        (Some(t), None) => t.to_str().is_ok_and(|t| {
            let media = t.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }),
        _ => false,
    };
    if !form_type || body.len() > MAX_TOKEN_FORM_BYTES {
        return Err(OAuthError::request(FORM_ERROR));
    }
    let form: TokenForm =
        serde_urlencoded::from_bytes(body).map_err(|_| OAuthError::request(FORM_ERROR))?;
    if let Some(c) = &form.client_id
        && c != client_id
    {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ));
    }
    Ok(TokenRequest {
        form,
        proofs: crate::auth::dpop_proofs(headers),
    })
}

impl TokenForm {
    /// The grant asked for, with its one required parameter.
    pub(crate) fn grant(self) -> Result<Grant, OAuthError> {
        match self.grant_type.as_deref() {
            Some(JWT_BEARER) => self
                .assertion
                .map(Grant::JwtBearer)
                .ok_or_else(|| OAuthError::request("the assertion parameter is missing")),
            Some("refresh_token") => self
                .refresh_token
                .map(Grant::Refresh)
                .ok_or_else(|| OAuthError::request("the refresh_token parameter is missing")),
            Some(_) => Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use jwt-bearer (RFC 7523) or refresh_token",
            )),
            None => Err(OAuthError::request("the grant_type parameter is missing")),
        }
    }
}

async fn token_inner(
    s: &ServiceState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let request = read_token_request(headers, body, &s.client_id)?;
    if request.form.scope.is_some() {
        // This service grants one fixed scope set; a requested scope is not negotiated.
        tracing::debug!("scope parameter ignored");
    }
    let now = s.clock.now();
    // The proof is checked first (cheap checks, then its signature) and recorded last.
    let proof = if request.proofs.is_empty() {
        None
    } else {
        let req = DpopRequest::new(&request.proofs, "POST", &s.token_endpoint);
        Some(
            s.dpop
                .verify(&req, now)
                .map_err(|e| OAuthError::dpop(&s.dpop, &e))?,
        )
    };
    match request.form.grant()? {
        Grant::JwtBearer(assertion) => jwt_bearer(s, &assertion, proof, now).await,
        Grant::Refresh(rt) => refresh(s, &rt, proof, now),
    }
}

type Unconfirmed = handoff_core::replay::Unconfirmed<DpopProof>;

fn confirm_proof(
    s: &ServiceState,
    p: Option<Unconfirmed>,
    now: UnixTime,
) -> Result<Option<DpopProof>, OAuthError> {
    p.map(|u| s.dpop.confirm(u, &*s.replay, now))
        .transpose()
        .map_err(|e| OAuthError::dpop(&s.dpop, &e))
}

async fn jwt_bearer(
    s: &ServiceState,
    assertion: &str,
    proof: Option<Unconfirmed>,
    now: UnixTime,
) -> Result<Response, OAuthError> {
    let held = s
        .host_keys
        .hold(&s.host_validation, assertion)
        .await
        .map_err(|r| {
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                OAuthError::unavailable()
            } else {
                OAuthError::grant("the assertion's key is not in the host's key set")
            }
        })?;
    let host = crate::auth::with_keys(&held, |k| {
        s.host.verify::<NoCustomClaims, _>(assertion, k, now)
    })
    .map_err(|e| {
        tracing::debug!(error = %e, "assertion refused");
        match e {
            VerifyError::KeySetUnavailable { .. } => OAuthError::unavailable(),
            e => OAuthError::grant(&format!("the assertion is not a valid host token: {e}")),
        }
    })?;
    let host = host.confirm(&*s.replay, now).map_err(|e| match e {
        ReplayRefused::Replayed => {
            OAuthError::grant("the assertion was already used (its jti is one-time)")
        }
        _ => OAuthError::unavailable(),
    })?;
    let proof = confirm_proof(s, proof, now)?;
    let subject = format!("{}/{}", host.host_tenant_id(), host.subject());
    let mut rng = crate::system_rng();
    let jkt = proof.as_ref().map(DpopProof::thumbprint);
    let issued = handoff_refresh::start_bound(
        &*s.store,
        &s.families,
        &subject,
        &s.client_id,
        jkt,
        now,
        &mut rng,
    )
    .map_err(|e| {
        OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.oauth_error(),
            "the family store could not answer",
        )
    })?;
    for ev in &issued.events {
        tracing::info!(event = ?ev, "refresh family");
    }
    answer(
        s,
        &subject,
        issued.family,
        issued.token.expose_secret(),
        proof.as_ref(),
        now,
    )
}

fn refresh(
    s: &ServiceState,
    token: &str,
    proof: Option<Unconfirmed>,
    now: UnixTime,
) -> Result<Response, OAuthError> {
    // RFC 9449 section 5: a refresh token issued to a public client with DPoP is bound to
    // that key (the family record holds its thumbprint) and the binding is checked on
    // every refresh by the family engine. A mismatch is refused without revoking the
    // family: the presenter lacks the key, so the token is useless to them, and revoking
    // would hand anyone who saw a copy a way to log the user out. The proof is recorded
    // first, so that a replayed proof never rotates anything.
    let proof = confirm_proof(s, proof, now)?;
    let mut rng = crate::system_rng();
    let jkt = proof.as_ref().map(DpopProof::thumbprint);
    let outcome = handoff_refresh::rotate_bound(&*s.store, &s.families, token, jkt, now, &mut rng)
        .map_err(|e| {
            OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.oauth_error(),
                "the family store could not answer",
            )
        })?;
    match outcome {
        handoff_refresh::Outcome::Issued(i) => {
            for ev in &i.events {
                tracing::info!(event = ?ev, "refresh family");
            }
            answer(
                s,
                &i.subject,
                i.family,
                i.token.expose_secret(),
                proof.as_ref(),
                now,
            )
        }
        handoff_refresh::Outcome::Refused(r) => {
            for ev in &r.events {
                tracing::warn!(event = ?ev, "refresh refused");
            }
            for family in &r.revoke_access_tokens {
                let gone = side(s).remove(family).unwrap_or_default();
                for (jti, exp) in gone.access {
                    s.revoked.revoke(&jti, exp, now);
                }
            }
            Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                r.error.oauth_error(),
                &r.error.to_string(),
            ))
        }
        _ => Err(OAuthError::unavailable()),
    }
}

fn side(s: &ServiceState) -> std::sync::MutexGuard<'_, HashMap<FamilyId, FamilySide>> {
    s.side
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Mints the access token and writes the token response.
fn answer(
    s: &ServiceState,
    subject: &str,
    family: FamilyId,
    refresh_token: &str,
    proof: Option<&DpopProof>,
    now: UnixTime,
) -> Result<Response, OAuthError> {
    let mut claims =
        AccessClaims::new(&s.issuer, subject, &s.api_audience, &s.client_id).with_ttl(s.access_ttl);
    if let Some(p) = proof {
        claims = claims.bound_to(p.thumbprint());
    }
    let mut rng = crate::system_rng();
    let access = mint_access_token(&claims, &s.session_key, now, &mut rng).map_err(|_| {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "minting failed",
        )
    })?;
    {
        let mut side = side(s);
        if side.len() >= MEMORY_CAPACITY && !side.contains_key(&family) {
            return Err(OAuthError::unavailable());
        }
        let e = side.entry(family).or_default();
        // Only live access tokens need revoking later; keep the list short.
        e.access.retain(|(_, exp)| *exp > now);
        e.access
            .push((access.jti().to_owned(), access.expires_at()));
    }
    let body = serde_json::json!({
        "access_token": access.as_str(),
        "token_type": if proof.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": s.access_ttl,
        "refresh_token": refresh_token,
    });
    let mut resp = (
        [
            (http::header::CACHE_CONTROL, "no-store"),
            (http::header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response();
    if let Some(n) = proof.and_then(DpopProof::next_nonce)
        && let Ok(h) = HeaderValue::from_str(n)
    {
        resp.headers_mut().insert("dpop-nonce", h);
    }
    Ok(resp)
}
