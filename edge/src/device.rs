//! Device handshakes and heartbeats over HTTP (feature `device`): the routes a device
//! gateway mounts, on top of `handoff-device`'s Sans-IO [`Gateway`].
//!
//! - `POST /device/handshake`: the `dvh1` handshake message in the `Device-Handshake`
//!   header, the body it covers (its SHA-256 is in the message; empty is fine) as the
//!   request body, at most [`DeviceEdgeBuilder::max_body_bytes`]. Answers `200` with
//!   `{"token_type":"DeviceSession","session_token":"dvs1...","expires_at":SECS}`.
//! - `POST /device/heartbeat`: `Authorization: Bearer dvs1...`. Answers `200` with
//!   `{"expires_at":SECS}`, plus `"session_token"` when the token rotated: the device
//!   must use it from then on.
//!
//! Refusals are JSON `{"error":CODE,"error_description":TEXT}` (`Cache-Control:
//! no-store`): `400 invalid_request` (malformed), `401 unauthorized` (with
//! `WWW-Authenticate: Bearer` on the heartbeat; the clock-skew refusal also carries
//! `"server_time"`), `413` (body over the cap), `429 slow_down` with `Retry-After` (the
//! device used its share of nonces), `503 temporarily_unavailable` with `Retry-After`
//! (a store failed or is full). Unknown device, unknown key, not approved and a bad MAC
//! are one answer, as in the gateway.
//!
//! The stores are the synchronous traits (`handoff-stores`' SQLite and PostgreSQL
//! adapters, or the in-memory ones); every call into them runs on tokio's blocking pool,
//! so a slow store never stalls the runtime's workers. Every audit event goes to the
//! sink given to [`DeviceEdgeBuilder::audit`] (default: a `tracing` event, target
//! `handoff_device::audit`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use handoff_core::UnixTime;
use handoff_core::replay::ReplayLog;
use handoff_device::{
    AuditEvent, DeviceError, DeviceRegistry, DeviceSessionStore, Gateway, MAX_HANDSHAKE_BYTES,
    Rejection, StoredHeartbeat,
};
use http::{HeaderMap, HeaderValue, StatusCode};

pub use crate::device_client::{DeviceClient, Heartbeat, MAX_CLOCK_CORRECTION_SECS};

use crate::auth::{Credential, credential, quote};
use crate::clock::{Clock, SystemClock};
use crate::error::EdgeError;

/// The header that carries the handshake message.
pub const HANDSHAKE_HEADER: &str = "device-handshake";
/// Default cap of the handshake request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest body cap accepted by [`DeviceEdgeBuilder::max_body_bytes`].
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Where audit events go.
pub type AuditSink = Arc<dyn Fn(AuditEvent) + Send + Sync>;

/// Builder of a [`DeviceEdge`].
pub struct DeviceEdgeBuilder {
    gateway: Gateway,
    registry: Arc<dyn DeviceRegistry>,
    sessions: Arc<dyn DeviceSessionStore>,
    nonces: Arc<dyn ReplayLog>,
    audit: AuditSink,
    clock: Arc<dyn Clock>,
    max_body: usize,
}

impl core::fmt::Debug for DeviceEdgeBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceEdgeBuilder")
            .field("gateway", &self.gateway.gateway_id())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl DeviceEdgeBuilder {
    /// Where audit events go (a file through `handoff_device::audit_log`, a queue, a
    /// database). Called once per event, on a blocking-pool thread.
    #[must_use]
    pub fn audit(mut self, sink: impl Fn(AuditEvent) + Send + Sync + 'static) -> Self {
        self.audit = Arc::new(sink);
        self
    }

    /// The clock (default the system clock; tests use [`crate::ManualClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The largest handshake body accepted (default [`DEFAULT_MAX_BODY_BYTES`], at most
    /// [`MAX_BODY_BYTES`]).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`EdgeError::Config`] when the body cap is 0 or over [`MAX_BODY_BYTES`].
    pub fn build(self) -> Result<DeviceEdge, EdgeError> {
        if self.max_body == 0 || self.max_body > MAX_BODY_BYTES {
            return Err(EdgeError::Config(
                "device handshake body cap must be 1 byte to 16 MiB",
            ));
        }
        Ok(DeviceEdge {
            state: Arc::new(DeviceState {
                gateway: self.gateway,
                registry: self.registry,
                sessions: self.sessions,
                nonces: self.nonces,
                audit: self.audit,
                clock: self.clock,
                max_body: self.max_body,
            }),
        })
    }
}

struct DeviceState {
    gateway: Gateway,
    registry: Arc<dyn DeviceRegistry>,
    sessions: Arc<dyn DeviceSessionStore>,
    nonces: Arc<dyn ReplayLog>,
    audit: AuditSink,
    clock: Arc<dyn Clock>,
    max_body: usize,
}

/// The device routes: handshake and heartbeat over HTTP.
///
/// ```
/// use std::sync::Arc;
/// use handoff_core::{HmacSecret, UnixTime, replay::InMemoryReplayLog};
/// use handoff_device::{Gateway, GatewayId, InMemoryDeviceRegistry, InMemoryDeviceSessionStore};
/// use handoff_edge::device::DeviceEdge;
///
/// let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
/// let boot = UnixTime::from_secs(1_800_000_000); // the process start, from the clock
/// let gateway = Gateway::builder(GatewayId::new("gw-1")?, boot, HmacSecret::generate(&mut rng))
///     .build()?;
/// let edge = DeviceEdge::builder(
///     gateway,
///     Arc::new(InMemoryDeviceRegistry::new(10_000)),
///     Arc::new(InMemoryDeviceSessionStore::new(10_000)),
///     Arc::new(InMemoryReplayLog::new(100_000)),
/// )
/// .audit(|event| println!("{}", serde_json::to_string(&event).unwrap_or_default()))
/// .build()?;
/// let app: axum::Router = edge.router(); // POST /device/handshake, POST /device/heartbeat
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DeviceEdge {
    state: Arc<DeviceState>,
}

impl core::fmt::Debug for DeviceEdge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceEdge")
            .field("gateway", &self.state.gateway.gateway_id())
            .finish_non_exhaustive()
    }
}

impl DeviceEdge {
    /// A builder over the gateway and its stores: the device registry, the session store
    /// and the nonce log (shared by every instance of a fleet when they are the shared
    /// stores).
    pub fn builder(
        gateway: Gateway,
        registry: Arc<dyn DeviceRegistry>,
        sessions: Arc<dyn DeviceSessionStore>,
        nonces: Arc<dyn ReplayLog>,
    ) -> DeviceEdgeBuilder {
        DeviceEdgeBuilder {
            gateway,
            registry,
            sessions,
            nonces,
            audit: Arc::new(|event| handoff_device::audit_tracing::emit(&event)),
            clock: Arc::new(SystemClock),
            max_body: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The router: `POST /device/handshake` and `POST /device/heartbeat`. Merge it into
    /// the application's router, or nest it under a prefix.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/device/handshake",
                post(handshake).layer(DefaultBodyLimit::max(self.state.max_body)),
            )
            .route(
                "/device/heartbeat",
                post(heartbeat).layer(DefaultBodyLimit::max(4 * 1024)),
            )
            .with_state(Arc::clone(&self.state))
    }
}

/// A refusal as sent: status, error code, description, and the extras some carry.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
    server_time: Option<UnixTime>,
    bearer_challenge: bool,
    /// The request carried no credential: a challenge without an error code (RFC 6750
    /// section 3.1).
    bare_challenge: bool,
}

impl Refusal {
    fn request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description: description.into(),
            retry_after: None,
            server_time: None,
            bearer_challenge: false,
            bare_challenge: false,
        }
    }

    fn from_device(error: &DeviceError, now: UnixTime) -> Self {
        let mut r = Self::request(error.to_string());
        match error {
            DeviceError::MessageTooLarge { .. }
            | DeviceError::Malformed(_)
            | DeviceError::InvalidId(_)
            | DeviceError::MalformedSessionToken(_) => {}
            DeviceError::ClockSkew { server_time, .. }
            | DeviceError::BeforeRestart { server_time, .. } => {
                r.status = StatusCode::UNAUTHORIZED;
                r.code = "unauthorized";
                r.server_time = Some(*server_time);
            }
            DeviceError::NonceQuotaExceeded { retry_at } => {
                r.status = StatusCode::TOO_MANY_REQUESTS;
                r.code = "slow_down";
                r.retry_after = Some(retry_at.secs_since(now).max(1));
            }
            DeviceError::NonceStoreFull
            | DeviceError::NonceStoreUnavailable(_)
            | DeviceError::RegistryUnavailable(_)
            | DeviceError::RegistryFull { .. }
            | DeviceError::SessionStoreFull { .. }
            | DeviceError::SessionStoreUnavailable(_)
            | DeviceError::SessionExists
            | DeviceError::VersionConflict => {
                tracing::warn!(error = %error, "device edge: store refused or failed");
                r.status = StatusCode::SERVICE_UNAVAILABLE;
                r.code = "temporarily_unavailable";
                r.retry_after = Some(1);
            }
            DeviceError::Config(_) => {
                tracing::error!(error = %error, "device edge: gateway misconfigured");
                r.status = StatusCode::INTERNAL_SERVER_ERROR;
                r.code = "server_error";
                r.description = "the gateway is misconfigured; the operator has been told".into();
            }
            _ => {
                r.status = StatusCode::UNAUTHORIZED;
                r.code = "unauthorized";
            }
        }
        r
    }

    fn unavailable(description: &str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            description: description.to_owned(),
            retry_after: Some(1),
            server_time: None,
            bearer_challenge: false,
            bare_challenge: false,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "error": self.code,
            "error_description": self.description,
        });
        if let Some(t) = self.server_time {
            body["server_time"] = t.as_secs().into();
        }
        let mut h = crate::json_no_store();
        if let Some(secs) = self.retry_after {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.bare_challenge {
            h.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        } else if self.bearer_challenge && self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quote(&self.description)
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(http::header::WWW_AUTHENTICATE, v);
            }
        }
        (self.status, h, body.to_string()).into_response()
    }
}

fn ok(body: &serde_json::Value) -> Response {
    (StatusCode::OK, crate::json_no_store(), body.to_string()).into_response()
}

/// The one `Device-Handshake` value, as bytes (the gateway parses it with its caps).
fn handshake_header(headers: &HeaderMap) -> Result<Vec<u8>, Refusal> {
    let mut values = headers.get_all(HANDSHAKE_HEADER).iter();
    let Some(v) = values.next() else {
        return Err(Refusal::request(
            "no Device-Handshake header: send the dvh1 handshake message in it",
        ));
    };
    if values.next().is_some() {
        return Err(Refusal::request(
            "more than one Device-Handshake header: send exactly one",
        ));
    }
    if v.len() > MAX_HANDSHAKE_BYTES {
        return Err(Refusal::request(format!(
            "Device-Handshake header is {} bytes, over the {MAX_HANDSHAKE_BYTES}-byte cap",
            v.len()
        )));
    }
    Ok(v.as_bytes().to_vec())
}

async fn handshake(
    State(state): State<Arc<DeviceState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let mut r = Refusal::request(format!(
                "the body could not be read ({rejection}); send at most {} bytes",
                state.max_body
            ));
            r.status = rejection.status();
            return r.into_response();
        }
    };
    let wire = match handshake_header(&headers) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let now = state.clock.now();
    let done = tokio::task::spawn_blocking(move || {
        let issued = state.gateway.handshake(
            &wire,
            &body,
            &*state.registry,
            &*state.nonces,
            now,
            &mut crate::system_rng(),
        );
        match issued {
            Err(Rejection { error, audit }) => {
                (state.audit)(*audit);
                Err(Refusal::from_device(&error, now))
            }
            Ok(issued) => match issued.store(&*state.sessions) {
                Ok(stored) => {
                    for event in stored.audit {
                        (state.audit)(event);
                    }
                    Ok(serde_json::json!({
                        "token_type": "DeviceSession",
                        "session_token": stored.token.expose(),
                        "expires_at": stored.expires_at.as_secs(),
                    }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "device edge: the session could not be stored");
                    Err(Refusal::from_device(&e, now))
                }
            },
        }
    })
    .await;
    match done {
        Ok(Ok(body)) => ok(&body),
        Ok(Err(r)) => r.into_response(),
        Err(_) => Refusal::unavailable("the handshake did not complete; retry").into_response(),
    }
}

async fn heartbeat(State(state): State<Arc<DeviceState>>, headers: HeaderMap) -> Response {
    let token = match credential(&headers) {
        Ok(Credential::Bearer(t)) => t.to_owned(),
        Ok(other) => {
            let mut r = Refusal::request(
                "send the device session token as `Authorization: Bearer dvs1...`",
            );
            r.status = StatusCode::UNAUTHORIZED;
            r.code = "unauthorized";
            r.bare_challenge = matches!(other, Credential::None);
            r.bearer_challenge = true;
            return r.into_response();
        }
        Err(rejection) => {
            let mut r = Refusal::request(format!(
                "unusable Authorization header ({}); send one `Authorization: Bearer dvs1...`",
                rejection.error()
            ));
            r.bearer_challenge = true;
            return r.into_response();
        }
    };
    let now = state.clock.now();
    let done = tokio::task::spawn_blocking(move || {
        let outcome =
            state
                .gateway
                .heartbeat_stored(&token, &*state.sessions, &*state.registry, now);
        match outcome {
            StoredHeartbeat::Extended { expires_at, audit } => {
                (state.audit)(audit);
                Ok(serde_json::json!({ "expires_at": expires_at.as_secs() }))
            }
            StoredHeartbeat::Rotated {
                token,
                expires_at,
                audit,
            } => {
                (state.audit)(audit);
                Ok(serde_json::json!({
                    "expires_at": expires_at.as_secs(),
                    "session_token": token.expose(),
                }))
            }
            StoredHeartbeat::Refused { error, audit } => {
                if let Some(audit) = audit {
                    (state.audit)(audit);
                }
                let mut r = Refusal::from_device(&error, now);
                r.bearer_challenge = true;
                Err(r)
            }
            _ => Err(Refusal::unavailable("unexpected heartbeat outcome; retry")),
        }
    })
    .await;
    match done {
        Ok(Ok(body)) => ok(&body),
        Ok(Err(r)) => r.into_response(),
        Err(_) => Refusal::unavailable("the heartbeat did not complete; retry").into_response(),
    }
}
