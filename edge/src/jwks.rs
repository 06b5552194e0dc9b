//! [`RemoteJwks`]: an issuer's JWK Set fetched over HTTP (reqwest, rustls) and kept by
//! `handoff-verify`'s Sans-IO [`JwksCache`], driven on tokio.
//!
//! One task at a time performs a fetch (the cache hands out one [`FetchRequest`] at a
//! time); every other request that needs the key set waits on a `watch` channel for that
//! fetch, for at most [`RemoteJwksBuilder::max_wait`]. A background task refreshes the
//! set at the cache's `poll_timeout`. The cache's mutex is a `std` mutex held only for
//! the synchronous decision, never across an `.await`, and never during a signature check.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use handoff_core::jwks::JwksLimits;
use handoff_core::{Algorithm, UnixTime, Validation, VerifyingKey};
use handoff_verify::{
    FetchOutcome, FetchReport, FetchRequest, FetchResponse, JwksCache, JwksCacheConfig, Lookup,
    VerifyError,
};
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::error::EdgeError;

/// Default cap on a key-set response body (the cache's own document cap).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default timeout for the whole request, body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest wait of a request for a fetch in flight.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);
/// Cap on a metadata document (RFC 8414 / OpenID discovery).
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Why a fetch failed, as the driver saw it (the cache's own report is in
/// [`FetchStatus::report`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchFailure {
    /// No answer within the configured timeouts.
    #[error("the key-set server did not answer within {0:?}")]
    Timeout(Duration),
    /// The body was larger than the cap; reading stopped there.
    #[error("the key-set response is over the {max}-byte cap; reading stopped")]
    BodyTooLarge {
        /// The cap in force.
        max: usize,
    },
    /// Connect, TLS or read failure.
    #[error("transport failure: {0}")]
    Transport(String),
    /// The server answered, and the cache refused the answer (status, JSON, keys).
    #[error("the key-set response was refused: {0}")]
    Refused(String),
}

/// The last fetch, for health checks and logs.
#[derive(Debug, Clone)]
pub struct FetchStatus {
    /// When the fetch completed.
    pub at: UnixTime,
    /// The cache's report.
    pub report: FetchReport,
    /// Why it failed, if it did.
    pub failure: Option<FetchFailure>,
}

/// Builds a [`RemoteJwks`]. Every knob has a safe default.
#[must_use]
pub struct RemoteJwksBuilder {
    config: JwksCacheConfig,
    max_body: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_wait: Duration,
    clock: Arc<dyn Clock>,
    client: Option<reqwest::Client>,
    background: bool,
}

impl core::fmt::Debug for RemoteJwksBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteJwksBuilder")
            .field("jwks_uri", &self.config.jwks_uri)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl RemoteJwksBuilder {
    /// Replaces the cache settings (see [`JwksCacheConfig`]); its `jwks_uri` is kept.
    pub fn cache_config(mut self, mut config: JwksCacheConfig) -> Self {
        config.jwks_uri = std::mem::take(&mut self.config.jwks_uri);
        self.config = config;
        self
    }
    /// Cap on the response body in bytes (default 256 KiB); also the document cap.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }
    /// Connect timeout (default 3 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    /// Timeout of one fetch, body included (default 5 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
    /// Longest time a request waits for a fetch in flight (default 5 s); then it is
    /// refused with [`VerifyError::KeySetUnavailable`].
    pub fn max_wait(mut self, t: Duration) -> Self {
        self.max_wait = t;
        self
    }
    /// The clock (default: the system clock). Tests drive their own.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Uses this HTTP client instead of the one built from the timeouts (its own
    /// timeouts then apply; the body cap still does).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }
    /// Whether a background task refreshes the set at the cache's `poll_timeout`
    /// (default on). Off, the set is refreshed by requests only.
    pub fn background_refresh(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Builds the value without fetching (the first request fetches). Must run inside a
    /// tokio runtime when the background refresh is on.
    ///
    /// # Errors
    /// [`EdgeError::Config`] for out-of-bounds settings, an HTTP client that cannot be
    /// built, or no tokio runtime while the background refresh is on.
    pub fn build(self) -> Result<RemoteJwks, EdgeError> {
        if self.max_body == 0 || self.max_body > 16 * 1024 * 1024 {
            return Err(EdgeError::Config("max_body_bytes must be 1 B to 16 MiB"));
        }
        if self.max_wait.is_zero() || self.request_timeout.is_zero() {
            return Err(EdgeError::Config(
                "max_wait and request_timeout must be > 0",
            ));
        }
        let cache = new_cache(self.config, self.max_body).map_err(EdgeError::Verify)?;
        let client = match self.client {
            Some(c) => c,
            None => http_client(self.connect_timeout, self.request_timeout)?,
        };
        let (done, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            cache: Mutex::new(cache),
            client,
            max_body: self.max_body,
            request_timeout: self.request_timeout,
            max_wait: self.max_wait,
            clock: self.clock,
            done,
            status: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
            wake: Arc::new(tokio::sync::Notify::new()),
        });
        if self.background {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return Err(EdgeError::Config(
                    "build RemoteJwks inside a tokio runtime, or turn the background refresh off",
                ));
            };
            let weak = Arc::downgrade(&inner);
            rt.spawn(background(weak));
        }
        Ok(RemoteJwks { inner })
    }

    /// Builds the value and performs the first fetch.
    ///
    /// # Errors
    /// As [`RemoteJwksBuilder::build`], and [`EdgeError::Fetch`] when the first fetch fails.
    pub async fn build_and_fetch(self) -> Result<RemoteJwks, EdgeError> {
        let jwks = self.build()?;
        let status = jwks.refresh().await;
        match status {
            Some(s) if s.failure.is_some() => Err(EdgeError::Fetch(
                s.failure
                    .unwrap_or(FetchFailure::Refused("first fetch failed".into())),
            )),
            _ => Ok(jwks),
        }
    }
}

/// The cache of a [`RemoteJwks`]: `config` with the body cap as the document cap.
pub(crate) fn new_cache(
    mut config: JwksCacheConfig,
    max_body: usize,
) -> Result<JwksCache, VerifyError> {
    config.limits = JwksLimits {
        max_bytes: max_body,
        ..config.limits
    };
    JwksCache::new(config)
}

fn http_client(connect: Duration, request: Duration) -> Result<reqwest::Client, EdgeError> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(request)
        .redirect(reqwest::redirect::Policy::limited(3))
        .https_only(false)
        .build()
        .map_err(|_| EdgeError::Config("the HTTP client could not be built"))
}

struct Inner {
    cache: Mutex<JwksCache>,
    client: reqwest::Client,
    max_body: usize,
    request_timeout: Duration,
    max_wait: Duration,
    clock: Arc<dyn Clock>,
    /// Bumped after every reported fetch; waiters subscribe before they look up.
    done: watch::Sender<u64>,
    status: Mutex<Option<FetchStatus>>,
    fetches: std::sync::atomic::AtomicU64,
    wake: Arc<tokio::sync::Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the background task.
        self.wake.notify_one();
    }
}

impl Inner {
    fn cache(&self) -> MutexGuard<'_, JwksCache> {
        // A panic while holding the lock cannot leave the state machine half-updated in
        // a way that matters more than refusing every token: keep serving.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An issuer's JWK Set over HTTP, cached by [`JwksCache`]. Cheap to clone (one `Arc`);
/// share it across tasks.
///
/// ```no_run
/// # async fn demo() -> Result<(), handoff_edge::EdgeError> {
/// use handoff_edge::RemoteJwks;
/// let jwks = RemoteJwks::builder("https://host.example/.well-known/jwks.json").build_and_fetch().await?;
/// let key = jwks.key_for(Some("host-2026-01"), handoff_core::Algorithm::EdDSA).await?;
/// # let _ = key; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("jwks_uri", &self.inner.cache().config().jwks_uri)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Starts a builder for the key set at `jwks_uri`.
    pub fn builder(jwks_uri: impl Into<String>) -> RemoteJwksBuilder {
        RemoteJwksBuilder {
            config: JwksCacheConfig::new(jwks_uri),
            max_body: DEFAULT_MAX_BODY_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_wait: DEFAULT_MAX_WAIT,
            clock: Arc::new(SystemClock),
            client: None,
            background: true,
        }
    }

    /// Reads `jwks_uri` from an RFC 8414 / OpenID discovery document and starts a builder
    /// for it. The document's `issuer` must equal `expected_issuer` (RFC 8414 section 3.3).
    ///
    /// # Errors
    /// [`EdgeError::Fetch`] when the document cannot be fetched, [`EdgeError::Metadata`]
    /// when it is not JSON, names another issuer or has no `jwks_uri`.
    pub async fn discover(
        metadata_url: &str,
        expected_issuer: &str,
    ) -> Result<RemoteJwksBuilder, EdgeError> {
        let client = http_client(DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)?;
        let resp = client
            .get(metadata_url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| EdgeError::Fetch(classify(&e, DEFAULT_REQUEST_TIMEOUT)))?;
        if !resp.status().is_success() {
            return Err(EdgeError::Metadata(format!(
                "metadata answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        let body = read_capped(resp, MAX_METADATA_BYTES, DEFAULT_REQUEST_TIMEOUT)
            .await
            .map_err(EdgeError::Fetch)?;
        #[derive(serde::Deserialize)]
        struct Meta {
            issuer: Option<String>,
            jwks_uri: Option<String>,
        }
        let meta: Meta = serde_json::from_slice(&body)
            .map_err(|_| EdgeError::Metadata("metadata is not a JSON object".into()))?;
        if meta.issuer.as_deref() != Some(expected_issuer) {
            return Err(EdgeError::Metadata(
                "metadata issuer differs from the expected issuer".into(),
            ));
        }
        let uri = meta
            .jwks_uri
            .filter(|u| !u.is_empty())
            .ok_or_else(|| EdgeError::Metadata("metadata has no jwks_uri".into()))?;
        Ok(Self::builder(uri))
    }

    /// The key for a token's `kid` and header algorithm: from the cache, or after the one
    /// fetch in flight (started here if needed), waiting at most the configured bound.
    ///
    /// # Errors
    /// The cache's refusals as [`VerifyError`] inside [`EdgeError::Verify`]: unknown kid
    /// (rate limited), key set unavailable (also when the wait bound is reached),
    /// ambiguous or mismatched key.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<VerifyingKey, EdgeError> {
        let started = tokio::time::Instant::now();
        // Three rounds cover: fetch (or wait), then look again; a second fetch can only
        // be handed out after a failure, and then the cache backs off.
        for _ in 0..3 {
            let mut rx = self.inner.done.subscribe();
            let now = self.inner.clock.now();
            {
                let mut cache = self.inner.cache();
                match cache.lookup(now, kid, alg) {
                    Lookup::Use(key) => return Ok(key.clone()),
                    Lookup::UseAndRefresh(key, req) => {
                        let key = key.clone();
                        drop(cache);
                        self.spawn_fetch(req);
                        return Ok(key);
                    }
                    Lookup::Fetch(req) => {
                        drop(cache);
                        self.spawn_fetch(req);
                    }
                    // The fetch in flight has its own deadline; this request waits at
                    // most `max_wait` in all.
                    Lookup::Wait { .. } => {}
                    Lookup::Reject(r) => return Err(EdgeError::Verify(r.into())),
                    _ => {
                        return Err(EdgeError::Verify(VerifyError::KeySetUnavailable {
                            retry_after: None,
                        }));
                    }
                }
            }
            let left = self.inner.max_wait.saturating_sub(started.elapsed());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                break;
            }
        }
        Err(EdgeError::Verify(VerifyError::KeySetUnavailable {
            retry_after: None,
        }))
    }

    /// Decodes `token` under `validation` (size, format, `typ`, algorithm allow-list: no
    /// fetch for a token the profile refuses anyway) and returns the key for its header.
    ///
    /// # Errors
    /// The decode error, or as [`RemoteJwks::key_for`].
    pub async fn key_for_token(
        &self,
        validation: &Validation,
        token: &str,
    ) -> Result<VerifyingKey, EdgeError> {
        let (kid, alg) = {
            let compact = validation
                .decode(token)
                .map_err(|e| EdgeError::Verify(e.into()))?;
            (
                compact.header().kid().map(str::to_owned),
                compact.header().alg(),
            )
        };
        self.key_for(kid.as_deref(), alg).await
    }

    fn spawn_fetch(&self, req: FetchRequest) {
        let inner = self.inner.clone();
        tokio::spawn(async move { perform(&inner, req).await });
    }

    /// Performs a due refresh now, as the background task does at `poll_timeout`, and
    /// returns its status; `None` when nothing is due (or a fetch is in flight).
    pub async fn refresh(&self) -> Option<FetchStatus> {
        let req = self.inner.cache().handle_timeout(self.inner.clock.now());
        match req {
            Some(req) => Some(perform(&self.inner, req).await),
            None => None,
        }
    }

    /// The last fetch's status, if any fetch completed.
    #[must_use]
    pub fn last_fetch(&self) -> Option<FetchStatus> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches performed (completed or failed) since the value was built.
    #[must_use]
    pub fn fetch_count(&self) -> u64 {
        self.inner
            .fetches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Until when the held set is fresh, if one is held.
    #[must_use]
    pub fn fresh_until(&self) -> Option<UnixTime> {
        self.inner.cache().fresh_until()
    }

    /// The kids of the held set (fresh or stale).
    #[must_use]
    pub fn kids(&self) -> Vec<String> {
        self.inner
            .cache()
            .keys()
            .map(|s| {
                s.keys()
                    .iter()
                    .filter_map(|k| k.kid().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wakes the background task to look at `poll_timeout` again (after a test clock
    /// moved, for example).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// Performs one fetch and reports it to the cache; wakes every waiter.
async fn perform(inner: &Inner, req: FetchRequest) -> FetchStatus {
    let result = fetch(inner, &req).await;
    let now = inner.clock.now();
    let (report, failure) = {
        let mut cache = inner.cache();
        match result {
            Ok(resp) => {
                let report = cache.on_fetch_complete(now, req.id, resp);
                let failure = match &report.outcome {
                    FetchOutcome::Failed(why) => Some(FetchFailure::Refused(why.clone())),
                    _ => None,
                };
                (report, failure)
            }
            Err(f) => (cache.on_fetch_failed(now, req.id), Some(f)),
        }
    };
    inner
        .fetches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match &failure {
        Some(f) => {
            tracing::warn!(url = %req.url, error = %f, "JWKS fetch failed; keeping the held set")
        }
        None => {
            tracing::debug!(url = %req.url, outcome = ?report.outcome, added = report.added.len(), removed = report.removed.len(), "JWKS fetched")
        }
    }
    let status = FetchStatus {
        at: now,
        report,
        failure,
    };
    *inner
        .status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status.clone());
    inner.done.send_modify(|g| *g = g.wrapping_add(1));
    inner.wake.notify_one();
    status
}

async fn fetch(inner: &Inner, req: &FetchRequest) -> Result<FetchResponse, FetchFailure> {
    let mut get = inner.client.get(&req.url).header(
        http::header::ACCEPT,
        "application/jwk-set+json, application/json",
    );
    if let Some(etag) = &req.if_none_match {
        get = get.header(http::header::IF_NONE_MATCH, etag);
    }
    let resp = get
        .send()
        .await
        .map_err(|e| classify(&e, inner.request_timeout))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = if status == 200 {
        read_capped(resp, inner.max_body, inner.request_timeout).await?
    } else {
        Vec::new()
    };
    Ok(fetch_response(status, &headers, body))
}

/// The cache's view of a key-set response: its status, body, `ETag`, and its
/// `Cache-Control` field lines joined with `, ` (RFC 9110 section 5.3: a list field sent
/// as several lines is one list, so `no-store` on a second line counts). A line that is
/// not visible ASCII is left out.
pub(crate) fn fetch_response(
    status: u16,
    headers: &http::HeaderMap,
    body: Vec<u8>,
) -> FetchResponse {
    let lines: Vec<&str> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let cache_control = (!lines.is_empty()).then(|| lines.join(", "));
    let etag = headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    FetchResponse {
        status,
        body,
        cache_control,
        etag,
    }
}

/// Refuses a body whose declared length is over `max` before reading it.
pub(crate) fn check_declared_length(length: Option<u64>, max: usize) -> Result<(), FetchFailure> {
    if length.is_some_and(|n| n > max as u64) {
        return Err(FetchFailure::BodyTooLarge { max });
    }
    Ok(())
}

/// Appends a chunk unless the body would pass `max` bytes.
pub(crate) fn append_capped(
    body: &mut Vec<u8>,
    chunk: &[u8],
    max: usize,
) -> Result<(), FetchFailure> {
    if body.len().saturating_add(chunk.len()) > max {
        return Err(FetchFailure::BodyTooLarge { max });
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// Reads a body, refusing it as soon as it passes `max` bytes (the `Content-Length` is
/// checked first, then the running total: a lying or absent length changes nothing).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FetchFailure> {
    check_declared_length(resp.content_length(), max)?;
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => append_capped(&mut body, &chunk, max)?,
            Ok(None) => return Ok(body),
            Err(e) => return Err(classify(&e, timeout)),
        }
    }
}

/// A reqwest failure as a [`FetchFailure`]: a timeout names the bound, anything else the
/// kind of failure, without the URL.
pub(crate) fn classify(e: &reqwest::Error, timeout: Duration) -> FetchFailure {
    if e.is_timeout() {
        FetchFailure::Timeout(timeout)
    } else {
        // reqwest's message names the kind (connect, body, decode) without the URL query.
        FetchFailure::Transport(e.without_url_ref().to_string())
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}
impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_connect() {
            "connect failed"
        } else if self.is_body() || self.is_decode() {
            "reading the body failed"
        } else if self.is_request() {
            "sending the request failed"
        } else if self.is_redirect() {
            "too many redirects"
        } else {
            "HTTP error"
        };
        kind.to_owned()
    }
}

/// The background refresh: sleeps until the cache's `poll_timeout` (or a wake-up),
/// performs the due fetch, and ends when the last [`RemoteJwks`] clone is dropped.
async fn background(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let now = inner.clock.now();
        let next = inner.cache().poll_timeout();
        let due = next.is_some_and(|t| t <= now);
        if due {
            let req = inner.cache().handle_timeout(now);
            if let Some(req) = req {
                let _ = perform(&inner, req).await;
                continue;
            }
        }
        // Sleep until the next instant (at least 1 s, at most 1 h), or a wake-up.
        let secs = match next {
            Some(t) if t > now => t.as_secs() - now.as_secs(),
            _ => 1,
        }
        .clamp(1, 3600);
        let wake = inner.wake.clone();
        drop(inner);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(secs)) => {}
            () = wake.notified() => {}
        }
    }
}
