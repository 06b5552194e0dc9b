//! The authorization code flow with PKCE: the request, the pending record to keep, the
//! callback, the token request and the token response.

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use handoff_core::replay::{ReplayKey, Unconfirmed};
use handoff_core::{UnixTime, b64};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{LoginError, clip};
use crate::metadata::{ProviderMetadata, transport_ok};

/// Default lifetime of a pending login (10 minutes).
pub const DEFAULT_LOGIN_TTL_SECS: u64 = 600;
/// Longest lifetime of a pending login (1 hour).
pub const MAX_LOGIN_TTL_SECS: u64 = 3600;
/// Largest callback query accepted, in bytes.
pub const MAX_CALLBACK_BYTES: usize = 8 * 1024;
/// Largest token response accepted, in bytes.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// The purpose tag of the replay entries that make a `state` one-time.
pub const STATE_REPLAY_PURPOSE: &str = "handoff-login/state";
const MAX_FIELD_BYTES: usize = 2048;
const SEAL_AAD: &[u8] = b"handoff-login/pending/v1";

/// A client secret: zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret (1 to 1024 bytes).
    ///
    /// # Errors
    /// [`LoginError::Config`] when empty or too long.
    pub fn new(secret: impl Into<String>) -> Result<Self, LoginError> {
        let s = secret.into();
        if s.is_empty() || s.len() > 1024 {
            return Err(LoginError::Config("client secret must be 1 to 1024 bytes"));
        }
        Ok(Self(s))
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret").finish_non_exhaustive()
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 section 2.3).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A public client: `client_id` in the body, PKCE only.
    None,
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    SecretBasic(ClientSecret),
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    SecretPost(ClientSecret),
}

impl ClientAuth {
    /// The RFC 8414 name of the method.
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SecretBasic(_) => "client_secret_basic",
            Self::SecretPost(_) => "client_secret_post",
        }
    }
}

/// A registered client: its id, its exact redirect URI, how it authenticates, its scope.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    client_id: String,
    redirect_uri: Url,
    auth: ClientAuth,
    scope: String,
    ttl: u64,
}

fn check_text(v: &str, what: &'static str) -> Result<(), LoginError> {
    if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
        return Err(LoginError::Config(what));
    }
    Ok(())
}

impl ClientConfig {
    /// A client with scope `openid email`, a 10-minute login lifetime and `auth`.
    ///
    /// # Errors
    /// [`LoginError::Config`] for an empty or oversize id, [`LoginError::Url`] for a
    /// redirect URI that is not https (or http on loopback), carries a fragment or
    /// userinfo.
    pub fn new(
        client_id: impl Into<String>,
        redirect_uri: &str,
        auth: ClientAuth,
    ) -> Result<Self, LoginError> {
        let client_id = client_id.into();
        check_text(&client_id, "client_id must be 1 to 1024 printable bytes")?;
        let redirect = Url::parse(redirect_uri).map_err(|e| LoginError::Url {
            what: "redirect_uri",
            reason: e.to_string(),
        })?;
        if !transport_ok(&redirect)
            || redirect.fragment().is_some()
            || !redirect.username().is_empty()
            || redirect.password().is_some()
        {
            return Err(LoginError::Url {
                what: "redirect_uri",
                reason: "must be https (http on loopback), without fragment or userinfo".into(),
            });
        }
        Ok(Self {
            client_id,
            redirect_uri: redirect,
            auth,
            scope: "openid email".into(),
            ttl: DEFAULT_LOGIN_TTL_SECS,
        })
    }

    /// Sets the scope (space-separated; must contain `openid`).
    ///
    /// # Errors
    /// [`LoginError::Config`] without `openid` or with characters outside RFC 6749 3.3.
    pub fn with_scope(mut self, scope: &str) -> Result<Self, LoginError> {
        check_text(scope, "scope must be 1 to 1024 printable bytes")?;
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(LoginError::Config("scope must contain openid"));
        }
        if scope.bytes().any(|b| {
            !(b == 0x20 || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        }) {
            return Err(LoginError::Config(
                "scope has characters outside RFC 6749 section 3.3",
            ));
        }
        self.scope = scope.to_owned();
        Ok(self)
    }

    /// Sets how long a started login stays valid (1 s to 1 hour, default 10 minutes).
    ///
    /// # Errors
    /// [`LoginError::Config`] out of range.
    pub fn with_login_ttl(mut self, secs: u64) -> Result<Self, LoginError> {
        if secs == 0 || secs > MAX_LOGIN_TTL_SECS {
            return Err(LoginError::Config("login lifetime must be 1 to 3600 s"));
        }
        self.ttl = secs;
        Ok(self)
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The redirect URI, as registered.
    #[must_use]
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }
}

/// What the caller's app asked for when the login started (kept in the pending record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppContext {
    /// Where to send the browser back (check it against a `RedirectAllowList` before
    /// starting, and again when finishing).
    pub return_to: Option<String>,
    /// The role asked for (`"admin"` or `"user"` in the PLAT design).
    pub role: Option<String>,
}

impl AppContext {
    /// A context with a return URL and a role.
    #[must_use]
    pub fn new(return_to: Option<String>, role: Option<String>) -> Self {
        Self { return_to, role }
    }
}

fn random_b64<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut b = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(b.as_mut());
    b64::encode(b.as_ref())
}

/// Binds a login to the browser session that started it (a hash, so that the record
/// never holds the session identifier itself).
fn browser_binding(browser_session: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"handoff-login/browser-session/v1\0");
    h.update(browser_session);
    h.finalize().into()
}

/// The values of one started login, to keep until the callback: either server-side
/// under [`PendingLogin::state`] ([`PendingLogin::to_json`]), or sealed into a cookie
/// ([`PendingLogin::seal`]). Either way the callback is made one-time by the replay
/// entry that [`PendingLogin::on_callback`] returns.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct PendingLogin {
    v: u8,
    state: String,
    code_verifier: String,
    nonce: String,
    issuer: String,
    client_id: String,
    redirect_uri: String,
    browser: String,
    iss_required: bool,
    #[zeroize(skip)]
    created_at: UnixTime,
    #[zeroize(skip)]
    expires_at: UnixTime,
    #[zeroize(skip)]
    app: AppContext,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// A started login: send the browser to `url`, keep `pending`.
#[must_use = "send the browser to the url and keep the pending login"]
#[derive(Debug)]
pub struct AuthorizationStart {
    /// The authorization URL (302 the browser there).
    pub url: Url,
    /// What to keep until the callback.
    pub pending: PendingLogin,
}

/// Starts a login: `state`, PKCE S256 (RFC 7636) and `nonce`, each 256 random bits, and
/// the authorization URL carrying them.
///
/// `browser_session` identifies the browser (for example a random value the caller keeps
/// in a `__Host-` cookie): the callback is refused from any other browser session.
///
/// # Errors
/// [`LoginError::Config`] when the provider does not support the client's
/// authentication method, or `browser_session` is empty.
pub fn authorize<R: CryptoRng + ?Sized>(
    metadata: &ProviderMetadata,
    client: &ClientConfig,
    browser_session: &[u8],
    app: AppContext,
    now: UnixTime,
    rng: &mut R,
) -> Result<AuthorizationStart, LoginError> {
    if browser_session.is_empty() {
        return Err(LoginError::Config(
            "browser_session is empty: bind the login to a per-browser random value",
        ));
    }
    if !matches!(client.auth, ClientAuth::None)
        && !metadata.supports_auth_method(client.auth.method())
    {
        return Err(LoginError::Config(
            "the provider does not list the client's token endpoint authentication method",
        ));
    }
    let state = random_b64(rng);
    let code_verifier = random_b64(rng);
    let nonce = random_b64(rng);
    let challenge = b64::encode(&Sha256::digest(code_verifier.as_bytes()));
    let mut url = metadata.authorization_endpoint().clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", client.redirect_uri.as_str())
        .append_pair("scope", &client.scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let pending = PendingLogin {
        v: 1,
        state,
        code_verifier,
        nonce,
        issuer: metadata.issuer().to_owned(),
        client_id: client.client_id.clone(),
        redirect_uri: client.redirect_uri.as_str().to_owned(),
        browser: b64::encode(&browser_binding(browser_session)),
        iss_required: metadata.iss_parameter_supported(),
        created_at: now,
        expires_at: now.saturating_add(client.ttl),
        app,
    };
    Ok(AuthorizationStart { url, pending })
}

/// A key that seals pending logins kept client-side (32 bytes, zeroized, never printed).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    /// From 32 secret bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey").finish_non_exhaustive()
    }
}

/// Largest sealed record accepted, in bytes.
pub const MAX_SEALED_BYTES: usize = 8 * 1024;

impl PendingLogin {
    /// The `state` value: the key under which to keep the record server-side.
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }
    /// When the login expires: keep the record (and the replay entry) that long.
    #[must_use]
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The app's context given at the start.
    #[must_use]
    pub fn app(&self) -> &AppContext {
        &self.app
    }
    /// The issuer the login started with.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The record as JSON, to keep server-side (it holds the PKCE verifier: keep it where
    /// only the server reads it).
    #[must_use]
    pub fn to_json(&self) -> Zeroizing<String> {
        // Serializing plain strings and integers cannot fail.
        Zeroizing::new(serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads a record written by [`PendingLogin::to_json`].
    ///
    /// # Errors
    /// [`LoginError::Callback`] when it does not parse.
    pub fn from_json(json: &str) -> Result<Self, LoginError> {
        if json.len() > MAX_SEALED_BYTES {
            return Err(LoginError::Callback("stored login record is oversize"));
        }
        let p: Self = serde_json::from_str(json)
            .map_err(|_| LoginError::Callback("stored login record does not parse"))?;
        if p.v != 1 {
            return Err(LoginError::Callback(
                "stored login record of an unknown version",
            ));
        }
        Ok(p)
    }

    /// Seals the record (ChaCha20-Poly1305, random 96-bit nonce) for a cookie.
    ///
    /// # Errors
    /// [`LoginError::Config`] when the sealed record would be over [`MAX_SEALED_BYTES`]
    /// (which [`PendingLogin::open`] refuses); [`LoginError::Sealed`] if the AEAD fails
    /// (it does not in practice).
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        key: &SealingKey,
        rng: &mut R,
    ) -> Result<String, LoginError> {
        let cipher = ChaCha20Poly1305::new(&Key::from(key.0));
        let mut n = [0u8; 12];
        rng.fill_bytes(&mut n);
        let json = self.to_json();
        let ct = cipher
            .encrypt(
                &Nonce::from(n),
                Payload {
                    msg: json.as_bytes(),
                    aad: SEAL_AAD,
                },
            )
            .map_err(|_| LoginError::Sealed)?;
        let mut out = n.to_vec();
        out.extend_from_slice(&ct);
        let sealed = b64::encode(&out);
        // What `open` would refuse is not handed out (a record of 6 KiB or more).
        if sealed.len() > MAX_SEALED_BYTES {
            return Err(LoginError::Config(
                "the pending login is too large to seal (over 8 KiB sealed): shorten the app context (return_to, role) or keep the record server-side",
            ));
        }
        Ok(sealed)
    }

    /// Opens a record sealed by [`PendingLogin::seal`].
    ///
    /// # Errors
    /// [`LoginError::Sealed`] (opaque) when it was tampered with or sealed under another
    /// key; [`LoginError::Callback`] when oversize.
    pub fn open(key: &SealingKey, sealed: &str) -> Result<Self, LoginError> {
        if sealed.len() > MAX_SEALED_BYTES {
            return Err(LoginError::Callback("sealed login record is oversize"));
        }
        let raw = b64::decode(sealed).map_err(|_| LoginError::Sealed)?;
        if raw.len() < 12 + 16 {
            return Err(LoginError::Sealed);
        }
        let (n, ct) = raw.split_at(12);
        let n: [u8; 12] = n.try_into().map_err(|_| LoginError::Sealed)?;
        let cipher = ChaCha20Poly1305::new(&Key::from(key.0));
        let pt = Zeroizing::new(
            cipher
                .decrypt(
                    &Nonce::from(n),
                    Payload {
                        msg: ct,
                        aad: SEAL_AAD,
                    },
                )
                .map_err(|_| LoginError::Sealed)?,
        );
        let json = core::str::from_utf8(&pt).map_err(|_| LoginError::Sealed)?;
        Self::from_json(json)
    }

    /// Checks the callback against this login: expiry, `state` (constant time), the
    /// browser session, the RFC 9207 `iss` (required when the provider advertised it),
    /// then the provider's error or the code.
    ///
    /// The result is [`Unconfirmed`]: confirm it against a replay log (key derived from
    /// the state, kept until the login's expiry) before exchanging the code, so that a
    /// callback is accepted once. A refused callback records nothing.
    ///
    /// # Errors
    /// [`LoginError::Expired`], [`LoginError::StateMismatch`],
    /// [`LoginError::BrowserSessionMismatch`], [`LoginError::IssuerMismatch`],
    /// [`LoginError::ProviderError`], [`LoginError::Callback`].
    pub fn on_callback(
        &self,
        params: &CallbackParams,
        browser_session: &[u8],
        now: UnixTime,
    ) -> Result<Unconfirmed<CodeExchange>, LoginError> {
        if now > self.expires_at {
            return Err(LoginError::Expired {
                expired_at: self.expires_at,
            });
        }
        let state = params
            .state
            .as_deref()
            .ok_or(LoginError::Callback("no state parameter"))?;
        if !bool::from(state.as_bytes().ct_eq(self.state.as_bytes())) {
            return Err(LoginError::StateMismatch);
        }
        let bound = b64::encode(&browser_binding(browser_session));
        if !bool::from(bound.as_bytes().ct_eq(self.browser.as_bytes())) {
            return Err(LoginError::BrowserSessionMismatch);
        }
        match params.iss.as_deref() {
            Some(iss) if iss != self.issuer => {
                return Err(LoginError::IssuerMismatch(
                    "the response names another issuer than the one the login started with",
                ));
            }
            None if self.iss_required => {
                return Err(LoginError::IssuerMismatch(
                    "the provider advertises the iss parameter but the response lacks it",
                ));
            }
            _ => {}
        }
        if let Some(error) = &params.error {
            return Err(LoginError::ProviderError {
                error: clip(error),
                description: params.error_description.as_deref().map(clip),
            });
        }
        let code = params.code.clone().ok_or(LoginError::Callback(
            "neither code nor error in the callback",
        ))?;
        let key = ReplayKey::derive(
            STATE_REPLAY_PURPOSE,
            &[self.issuer.as_bytes(), self.state.as_bytes()],
        );
        Ok(Unconfirmed::new(
            CodeExchange {
                code: Zeroizing::new(code),
                pending: self.clone(),
            },
            key,
            self.expires_at,
        ))
    }
}

/// The parameters of the authorization response (the redirect's query).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallbackParams {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackParams")
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl CallbackParams {
    /// Parses the query string of the callback (without the leading `?`). A repeated
    /// parameter, an oversize query or an oversize value is refused; unknown parameters
    /// are ignored.
    ///
    /// # Errors
    /// [`LoginError::Callback`].
    pub fn from_query(query: &str) -> Result<Self, LoginError> {
        if query.len() > MAX_CALLBACK_BYTES {
            return Err(LoginError::Callback("callback query is oversize"));
        }
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "iss" => &mut p.iss,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(LoginError::Callback("a parameter is repeated"));
            }
            if v.is_empty() || v.len() > MAX_FIELD_BYTES {
                return Err(LoginError::Callback("a parameter is empty or oversize"));
            }
            *slot = Some(v.into_owned());
        }
        Ok(p)
    }

    /// Parses the callback URL the browser arrived at.
    ///
    /// # Errors
    /// [`LoginError::Callback`].
    pub fn from_url(url: &str) -> Result<Self, LoginError> {
        let u = Url::parse(url).map_err(|_| LoginError::Callback("callback url does not parse"))?;
        Self::from_query(u.query().unwrap_or(""))
    }
}

/// An accepted callback: the code to exchange and the login it belongs to.
#[must_use = "exchange the code at the token endpoint"]
pub struct CodeExchange {
    code: Zeroizing<String>,
    pending: PendingLogin,
}

impl fmt::Debug for CodeExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeExchange")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// The token request to send: `POST url` with `headers` and the form `body`.
#[must_use = "send the token request"]
#[derive(Clone)]
pub struct TokenRequest {
    /// The token endpoint.
    pub url: String,
    /// Headers to send (`Content-Type`, `Accept`, and `Authorization` for
    /// `client_secret_basic`).
    pub headers: Vec<(&'static str, String)>,
    /// The `application/x-www-form-urlencoded` body.
    pub body: String,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for TokenRequest {
    fn drop(&mut self) {
        self.body.zeroize();
        for (_, v) in &mut self.headers {
            v.zeroize();
        }
    }
}

fn form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl CodeExchange {
    /// The login this code belongs to.
    #[must_use]
    pub fn pending(&self) -> &PendingLogin {
        &self.pending
    }

    /// The nonce the ID token must carry.
    #[must_use]
    pub fn nonce(&self) -> &str {
        &self.pending.nonce
    }

    /// Builds the token request (RFC 6749 section 4.1.3, RFC 7636 section 4.5).
    ///
    /// # Errors
    /// [`LoginError::Config`] when `client` is not the client the login started with.
    pub fn token_request(
        &self,
        metadata: &ProviderMetadata,
        client: &ClientConfig,
    ) -> Result<TokenRequest, LoginError> {
        if client.client_id != self.pending.client_id
            || metadata.issuer() != self.pending.issuer
            || client.redirect_uri.as_str() != self.pending.redirect_uri
        {
            return Err(LoginError::Config(
                "the client or provider is not the one the login started with",
            ));
        }
        let mut body = Zeroizing::new(format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            form(&self.code),
            form(&self.pending.redirect_uri),
            form(&self.pending.code_verifier)
        ));
        let mut headers = vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Accept", "application/json".to_owned()),
        ];
        match &client.auth {
            ClientAuth::None => {
                body.push_str("&client_id=");
                body.push_str(&form(&client.client_id));
            }
            ClientAuth::SecretPost(s) => {
                body.push_str("&client_id=");
                body.push_str(&form(&client.client_id));
                body.push_str("&client_secret=");
                body.push_str(&form(&s.0));
            }
            ClientAuth::SecretBasic(s) => {
                // RFC 6749 section 2.3.1: both parts form-encoded before Base64.
                let pair = Zeroizing::new(format!("{}:{}", form(&client.client_id), form(&s.0)));
                let enc = Zeroizing::new(<base64ct::Base64 as base64ct::Encoding>::encode_string(
                    pair.as_bytes(),
                ));
                headers.push(("Authorization", format!("Basic {}", enc.as_str())));
            }
        }
        Ok(TokenRequest {
            url: metadata.token_endpoint().as_str().to_owned(),
            headers,
            body: core::mem::take(&mut *body),
        })
    }
}

/// A successful token response (RFC 6749 section 5.1) with the OpenID Connect
/// `id_token`. Tokens are secrets: `Debug` prints none.
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer` or `DPoP`.
    pub token_type: String,
    /// The ID token (required: the flow is OpenID Connect).
    pub id_token: String,
    /// Seconds until the access token expires.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A refresh token, if issued.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The granted scope, if it differs from the requested one.
    #[serde(default)]
    pub scope: Option<String>,
}

impl Drop for TokenResponse {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.id_token.zeroize();
        if let Some(r) = &mut self.refresh_token {
            r.zeroize();
        }
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenResponse {
    /// Parses the token endpoint's answer: status 200 with a JSON object (duplicate
    /// members refused, size capped, `token_type` `Bearer` or `DPoP`, `id_token` and
    /// `access_token` present); any other status is read as an RFC 6749 5.2 error.
    ///
    /// # Errors
    /// [`LoginError::TokenEndpoint`] for an OAuth error (e.g. `invalid_grant` for an
    /// expired or used code), [`LoginError::TokenResponse`] for a malformed answer.
    pub fn parse(status: u16, body: &[u8]) -> Result<Self, LoginError> {
        if body.len() > MAX_TOKEN_RESPONSE_BYTES {
            return Err(LoginError::TokenResponse(format!(
                "body over the {MAX_TOKEN_RESPONSE_BYTES}-byte cap"
            )));
        }
        if status != 200 {
            return match serde_json::from_slice::<ErrorBody>(body) {
                Ok(e) => Err(LoginError::TokenEndpoint {
                    error: clip(&e.error),
                    description: e.error_description.as_deref().map(clip),
                }),
                Err(_) => Err(LoginError::TokenResponse(format!(
                    "status {status} without an OAuth error body"
                ))),
            };
        }
        let r: Self = serde_json::from_slice(body)
            .map_err(|e| LoginError::TokenResponse(clip(&e.to_string())))?;
        if !r.token_type.eq_ignore_ascii_case("bearer")
            && !r.token_type.eq_ignore_ascii_case("dpop")
        {
            return Err(LoginError::TokenResponse(format!(
                "token_type {:?} is neither Bearer nor DPoP",
                clip(&r.token_type)
            )));
        }
        if r.access_token.is_empty() || r.id_token.is_empty() {
            return Err(LoginError::TokenResponse(
                "access_token or id_token is empty".into(),
            ));
        }
        Ok(r)
    }
}

/// A deterministic generator for the fuzzing entry points (sealing nonces only).
struct FuzzRng(u64);

impl rand_core::TryRng for FuzzRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        Ok((self.0 >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok((u64::from(self.try_next_u32()?) << 32) | u64::from(self.try_next_u32()?))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u32()?.to_le_bytes()[0];
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FuzzRng {}

/// The pending login the callback fuzzing entry point checks against (state `state-1`,
/// browser session `browser`, issuer `https://issuer.example`, which sends `iss`).
fn fuzz_pending() -> PendingLogin {
    PendingLogin {
        v: 1,
        state: "state-1".into(),
        code_verifier: "verifier".into(),
        nonce: "nonce-1".into(),
        issuer: "https://issuer.example".into(),
        client_id: "client-1".into(),
        redirect_uri: "https://app.example.com/callback".into(),
        browser: b64::encode(&browser_binding(b"browser")),
        iss_required: true,
        created_at: UnixTime::from_secs(1_000),
        expires_at: UnixTime::from_secs(1_600),
        app: AppContext::default(),
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a callback query and as a callback URL,
/// then checks what parsed against a fixed pending login. Never panics.
#[doc(hidden)]
pub fn fuzz_callback(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pending = fuzz_pending();
    for p in [
        CallbackParams::from_query(&text),
        CallbackParams::from_url(&text),
    ]
    .into_iter()
    .flatten()
    {
        for v in [&p.code, &p.state, &p.iss, &p.error, &p.error_description]
            .into_iter()
            .flatten()
        {
            debug_assert!(!v.is_empty() && v.len() <= MAX_FIELD_BYTES);
        }
        let _ = pending.on_callback(&p, b"browser", UnixTime::from_secs(1_200));
    }
}

/// Fuzzing entry point: the first byte picks status 200 or an error status, the rest is
/// the token endpoint's body. Never panics.
#[doc(hidden)]
pub fn fuzz_token_response(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = match first % 4 {
        0 | 1 => 200,
        2 => 400,
        _ => 500 + u16::from(first >> 2),
    };
    if let Ok(r) = TokenResponse::parse(status, body) {
        debug_assert!(!r.access_token.is_empty() && !r.id_token.is_empty());
        let _ = format!("{r:?}");
    }
}

/// Fuzzing entry point for the pending-login record: the first byte picks the sealed
/// (cookie) form opened under `key`, or the server-side JSON form; a record that reads
/// is sealed again and must open to the same record. Never panics.
#[doc(hidden)]
pub fn fuzz_pending_login(data: &[u8], key: &SealingKey) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let read = if mode & 1 == 0 {
        PendingLogin::open(key, &text)
    } else {
        PendingLogin::from_json(&text)
    };
    if let Ok(p) = read {
        let json = p.to_json();
        if let Ok(sealed) = p.seal(key, &mut FuzzRng(u64::from(mode))) {
            let again = PendingLogin::open(key, &sealed);
            debug_assert!(
                again.as_ref().is_ok_and(|q| q.to_json() == json),
                "a record that seals must open to the same record"
            );
        }
        let _ = p.on_callback(&CallbackParams::default(), b"browser", p.created_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found with the `login_pending_open` fuzz property (a record that seals must open):
    /// a stored record of about 6 KiB sealed into more than the 8 KiB `open` accepts.
    #[test]
    fn a_record_too_large_to_open_is_not_sealed() {
        let key = SealingKey::from_bytes([7; 32]);
        let mut p = fuzz_pending();
        p.app.return_to = Some(format!("https://app.example.com/{}", "a".repeat(6_000)));
        let json = p.to_json();
        assert!(json.len() < MAX_SEALED_BYTES);
        let read = PendingLogin::from_json(&json).unwrap();
        match read.seal(&key, &mut FuzzRng(1)) {
            Err(LoginError::Config(m)) => assert!(m.contains("too large to seal"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(sealed) => panic!(
                "sealed {} bytes that open refuses: {:?}",
                sealed.len(),
                PendingLogin::open(&key, &sealed).err()
            ),
        }
        let mut input = vec![1u8];
        input.extend_from_slice(json.as_bytes());
        fuzz_pending_login(&input, &key);
        // A record of ordinary size still seals and opens.
        let sealed = fuzz_pending().seal(&key, &mut FuzzRng(2)).unwrap();
        assert_eq!(
            PendingLogin::open(&key, &sealed).unwrap().to_json(),
            fuzz_pending().to_json()
        );
    }
}
