//! The HTTP side of the host (feature `server`): an axum [`Router`] a host app mounts into
//! its own app, and a hardened server for it (what `host-issuer serve` runs).
//!
//! - [`jwks_router`]: `GET`/`HEAD` `/.well-known/jwks.json` and `/certs` (the same
//!   document) with `ETag`, `If-None-Match` (304), `Cache-Control: public, max-age=N` tied
//!   to the keyring's rotation schedule ([`Keyring::jwks_max_age`]) and
//!   `Content-Type: application/json`; `GET /healthz`.
//! - [`dev_token_router`]: `POST /token`, the development-only token endpoint (loopback
//!   `Host` and `Origin` only, JSON bodies only).
//! - [`SharedKeyring`]: the keyring behind both, swappable at run time (hot reload): an
//!   [`arc_swap::ArcSwap`], so a request never waits on a lock and never holds one across
//!   an `.await`.
//! - [`serve`] / [`spawn`]: the server, on hyper-util's connection builder, with a header
//!   read timeout, a request body timeout, a whole-request timeout, a request size cap, a
//!   connection cap and graceful shutdown.
//!
//! This is the only module of the crate that reads the clock, the disk and the network;
//! the rest stays Sans-IO.
//!
//! Mounting the JWKS into a host app:
//!
//! ```no_run
//! use handoff_issuer::server::{SharedKeyring, jwks_router, system_now};
//! use handoff_issuer::{Algorithm, HostIssuerKeys, Keyring};
//!
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let key = HostIssuerKeys::generate(Algorithm::EdDSA, None, &mut rng)?;
//! let keys = SharedKeyring::new(Keyring::new(key, system_now()?));
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my host app" }))
//!     .merge(jwks_router(keys.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod dev_endpoint;
mod keyfile;
mod run;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use handoff_core::UnixTime;
use serde_json::json;
use sha2::{Digest, Sha256};

pub use dev_endpoint::{
    DevTokenConfig, DevTokenFormat, MAX_TOKEN_REQUEST_BYTES, PRODUCTION_ENV_VARS, check_dev_bind,
    check_not_production, dev_token_router, is_loopback_host, is_loopback_origin,
};
#[cfg(feature = "encrypted-keys")]
pub use keyfile::load_any_key_file;
pub use keyfile::{KeyFileAccess, load_key_file, read_private_file, write_private_file};
pub use run::{
    BoundServer, DevKeySource, ServerConfig, ServerHandle, ServerLimits, load_or_create_dev_key,
    run, serve, shutdown_signal, spawn,
};

use crate::{Error, JwksResponse, Keyring};

/// The JWKS path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The legacy JWKS alias.
pub const CERTS_PATH: &str = "/certs";
/// The health check path.
pub const HEALTH_PATH: &str = "/healthz";
/// The dev token endpoint path.
pub const TOKEN_PATH: &str = "/token";

/// The banner printed when the dev token endpoint is on.
pub const DEV_BANNER: &str = "\
****************************************************************************
*  DEVELOPMENT ONLY: POST /token mints tokens for any subject, with no     *
*  authentication at all. It simulates a host's token issuer for local    *
*  testing. Never enable it in production.                                 *
****************************************************************************";

/// The system clock as a [`UnixTime`].
///
/// # Errors
/// [`Error::Server`] when the clock is set before 1970.
pub fn system_now() -> Result<UnixTime, Error> {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| UnixTime::from_secs(d.as_secs()))
        .map_err(|_| Error::Server("the system clock is before 1970; fix the clock".into()))
}

/// Reads a keyring file with the default (strict) checks: [`load_key_file`] with
/// [`KeyFileAccess::default`].
///
/// # Errors
/// [`Error::KeyFile`] when the file cannot be read, is readable by others, or is not a
/// keyring.
pub fn read_key_file(path: &std::path::Path) -> Result<Keyring, Error> {
    load_key_file(path, KeyFileAccess::default())
}

/// A clock for the routers: the system clock unless a test supplies its own.
pub type Clock = Arc<dyn Fn() -> Result<UnixTime, Error> + Send + Sync>;

/// The JWKS body rendered once per keyring and per stable period.
struct Rendered {
    body: Bytes,
    etag: HeaderValue,
    from: UnixTime,
    until: Option<UnixTime>,
}

impl Rendered {
    fn valid_at(&self, now: UnixTime) -> bool {
        self.from <= now && self.until.is_none_or(|u| now <= u)
    }
}

struct Published {
    keyring: Arc<Keyring>,
    rendered: ArcSwapOption<Rendered>,
}

struct Inner {
    current: ArcSwap<Published>,
    reload_error: ArcSwapOption<String>,
    clock: Clock,
}

/// The keyring the routers serve, shared by every request and swappable at run time.
/// Cheap to clone (one `Arc`).
///
/// Readers take a snapshot ([`Self::load`]) without locking; [`Self::replace`] publishes
/// a new keyring to every later request at once. The rendered JWKS body and its `ETag`
/// are cached per keyring until a retiring key leaves the set.
#[derive(Clone)]
pub struct SharedKeyring {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedKeyring")
            .field("keyring", &self.inner.current.load().keyring)
            .finish_non_exhaustive()
    }
}

impl SharedKeyring {
    /// Shares `keyring`, with the system clock.
    #[must_use]
    pub fn new(keyring: Keyring) -> Self {
        Self::with_clock(keyring, Arc::new(system_now))
    }

    /// Shares `keyring`, reading the time from `clock` (tests drive a fake clock).
    #[must_use]
    pub fn with_clock(keyring: Keyring, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(Published {
                    keyring: Arc::new(keyring),
                    rendered: ArcSwapOption::empty(),
                }),
                reload_error: ArcSwapOption::empty(),
                clock,
            }),
        }
    }

    /// A snapshot of the current keyring (it stays valid while a reload swaps in another).
    #[must_use]
    pub fn load(&self) -> Arc<Keyring> {
        Arc::clone(&self.inner.current.load().keyring)
    }

    /// Serves `keyring` from now on (every later request sees it) and clears the reload
    /// error. Returns the keyring it replaced.
    pub fn replace(&self, keyring: Keyring) -> Arc<Keyring> {
        let old = self.inner.current.swap(Arc::new(Published {
            keyring: Arc::new(keyring),
            rendered: ArcSwapOption::empty(),
        }));
        self.inner.reload_error.store(None);
        Arc::clone(&old.keyring)
    }

    /// Records why the last reload failed (shown by `/healthz`, which then answers 503
    /// while the previous keyring keeps being served); `None` clears it.
    pub fn set_reload_error(&self, error: Option<String>) {
        self.inner.reload_error.store(error.map(Arc::new));
    }

    /// Why the last reload failed, if it did.
    #[must_use]
    pub fn reload_error(&self) -> Option<Arc<String>> {
        self.inner.reload_error.load_full()
    }

    /// The time, from this keyring's clock.
    ///
    /// # Errors
    /// As the clock.
    pub fn now(&self) -> Result<UnixTime, Error> {
        (self.inner.clock)()
    }

    /// The JWKS at `now` as the routers serve it (body, `max-age`), from the cache.
    pub fn jwks_response(&self, now: UnixTime) -> JwksResponse {
        self.inner.current.load().keyring.jwks_response(now)
    }

    /// The rendered body, its ETag and the `max-age` at `now`.
    fn rendered(&self, now: UnixTime) -> (Arc<Rendered>, u64) {
        let published = self.inner.current.load();
        let max_age = published.keyring.jwks_max_age(now);
        if let Some(r) = published.rendered.load_full()
            && r.valid_at(now)
        {
            return (r, max_age);
        }
        let body = Bytes::from(published.keyring.jwks(now).to_json().into_bytes());
        let digest = Sha256::digest(&body);
        let tag = handoff_core::b64::encode(&digest[..16]);
        let etag = HeaderValue::from_str(&format!("\"{tag}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"jwks\""));
        let r = Arc::new(Rendered {
            body,
            etag,
            from: now,
            until: published.keyring.jwks_stable_until(now),
        });
        published.rendered.store(Some(Arc::clone(&r)));
        (r, max_age)
    }
}

/// The JWKS and health routes over `keys`, ready to [`Router::merge`] into a host app:
///
/// - `GET`/`HEAD` [`JWKS_PATH`] and [`CERTS_PATH`]: the public key set, with
///   `Content-Type: application/json`, `Cache-Control: public, max-age=N` (N from the
///   rotation schedule: never past the moment a retiring key leaves the set), a strong
///   `ETag`, and `304 Not Modified` for a matching `If-None-Match`;
/// - `GET`/`HEAD` [`HEALTH_PATH`]: `200 {"status":"ok","active_kid",...}`, or `503` with
///   the error while the last reload of the key file failed (the previous keys are still
///   served).
///
/// Other methods get `405` with `Allow`. The routes read no request body.
pub fn jwks_router(keys: SharedKeyring) -> Router {
    jwks_routes(keys)
}

/// [`jwks_router`] for an app whose router still awaits its own state (`Router<S>`
/// before `.with_state(..)`): `Router::new().route(..).merge(jwks_routes(keys)).with_state(app)`.
pub fn jwks_routes<S: Clone + Send + Sync + 'static>(keys: SharedKeyring) -> Router<S> {
    Router::new()
        .route(JWKS_PATH, get(jwks_handler))
        .route(CERTS_PATH, get(jwks_handler))
        .route(HEALTH_PATH, get(health_handler))
        .with_state(keys)
}

pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, RFC 9110 13.1.2).
fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours)
}

async fn jwks_handler(State(keys): State<SharedKeyring>, headers: HeaderMap) -> Response {
    let now = match keys.now() {
        Ok(n) => n,
        Err(e) => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            );
        }
    };
    let (r, max_age) = keys.rendered(now);
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
    if none_match(&headers, &r.etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, r.etag.clone()),
                (header::CACHE_CONTROL, cache),
            ],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(JwksResponse::CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, r.etag.clone()),
        ],
        r.body.clone(),
    )
        .into_response()
}

async fn health_handler(State(keys): State<SharedKeyring>) -> Response {
    let ring = keys.load();
    let active = ring.active();
    let kids: Vec<String> = match keys.now() {
        Ok(now) => ring
            .jwks(now)
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect(),
        Err(_) => Vec::new(),
    };
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    match keys.reload_error() {
        None => (
            StatusCode::OK,
            no_store,
            axum::Json(json!({
                "status": "ok",
                "active_kid": active.kid(),
                "alg": active.algorithm().as_str(),
                "published_kids": kids,
            })),
        )
            .into_response(),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            no_store,
            axum::Json(json!({
                "status": "degraded",
                "active_kid": active.kid(),
                "published_kids": kids,
                "error": e.as_str(),
            })),
        )
            .into_response(),
    }
}
