//! A small DPoP client on reqwest and `handoff-dpop`'s client side: a fresh proof per
//! request (with `ath` when an access token is sent), the server's `DPoP-Nonce`
//! remembered per origin, and the one `use_dpop_nonce` retry of RFC 9449 section 8.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff_dpop::{DpopKey, NonceMemory, RetryDecision, error_from_www_authenticate};
use http::HeaderMap;

use crate::clock::{Clock, SystemClock};
use crate::error::EdgeError;
use crate::jwks::FetchFailure;

/// Largest response body the client reads.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// A response: status, headers, body (capped at [`MAX_RESPONSE_BYTES`]).
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The body as JSON (`Value::Null` when it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A DPoP client holding one key. Cheap to clone.
#[derive(Clone)]
pub struct DpopClient {
    http: reqwest::Client,
    key: Arc<DpopKey>,
    nonces: Arc<Mutex<NonceMemory>>,
    clock: Arc<dyn Clock>,
    retries: Arc<std::sync::atomic::AtomicU64>,
}

impl core::fmt::Debug for DpopClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DpopClient")
            .field("jkt", &self.key.jkt())
            .finish_non_exhaustive()
    }
}

enum Body<'a> {
    None,
    Form(&'a [(&'a str, &'a str)]),
}

impl DpopClient {
    /// A client proving possession of `key`.
    ///
    /// # Errors
    /// [`EdgeError::Config`] when the HTTP client cannot be built.
    pub fn new(key: DpopKey) -> Result<Self, EdgeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| EdgeError::Config("the HTTP client could not be built"))?;
        Ok(Self {
            http,
            key: Arc::new(key),
            nonces: Arc::new(Mutex::new(NonceMemory::new(16))),
            clock: Arc::new(SystemClock),
            retries: Arc::default(),
        })
    }

    /// The key's thumbprint.
    #[must_use]
    pub fn jkt(&self) -> String {
        self.key.jkt()
    }

    /// How many `use_dpop_nonce` retries this client made.
    #[must_use]
    pub fn nonce_retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `POST url` with a form body and a proof (a token request, RFC 6749 section 3.2).
    ///
    /// # Errors
    /// [`EdgeError::Fetch`] on transport failure; [`EdgeError::Config`] for a bad URL.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<ClientResponse, EdgeError> {
        self.send("POST", url, None, Body::Form(form)).await
    }

    /// `GET url` with `Authorization: DPoP <access_token>` and a proof carrying `ath`.
    ///
    /// # Errors
    /// As [`DpopClient::post_form`].
    pub async fn get(&self, url: &str, access_token: &str) -> Result<ClientResponse, EdgeError> {
        self.send("GET", url, Some(access_token), Body::None).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NonceMemory> {
        self.nonces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        body: Body<'_>,
    ) -> Result<ClientResponse, EdgeError> {
        let mut attempt = self
            .lock()
            .begin(url)
            .map_err(|_| EdgeError::Config("the URL is not absolute"))?;
        loop {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let proof = self
                .key
                .proof(
                    method,
                    url,
                    self.clock.now(),
                    &mut rng,
                    attempt.nonce(),
                    access_token,
                )
                .map_err(|_| EdgeError::Config("the proof could not be made"))?;
            let m = reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|_| EdgeError::Config("bad method"))?;
            let mut req = self.http.request(m, url).header("dpop", proof);
            if let Some(t) = access_token {
                req = req.header(http::header::AUTHORIZATION, format!("DPoP {t}"));
            }
            if let Body::Form(f) = body {
                req = req.form(f);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| EdgeError::Fetch(FetchFailure::Transport(e.to_string())))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = crate::jwks::read_capped(resp, MAX_RESPONSE_BYTES, Duration::from_secs(10))
                .await
                .map_err(EdgeError::Fetch)?;
            let out = ClientResponse {
                status,
                headers,
                body,
            };
            let code = match out
                .header("www-authenticate")
                .and_then(error_from_www_authenticate)
            {
                Some(c) => Some(c.to_owned()),
                None => out
                    .json()
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned),
            };
            let decision =
                self.lock()
                    .on_response(&mut attempt, out.header("dpop-nonce"), code.as_deref());
            match decision {
                RetryDecision::RetryWithNonce(_) => {
                    self.retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => return Ok(out),
            }
        }
    }
}
