//! The device side of [`crate::device`]'s routes, on reqwest: a handshake signed over the
//! body it sends, heartbeats that keep the session token (and swap in the successor when
//! it rotates), and one clock correction when the gateway says the device's clock is off.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff_core::UnixTime;
use handoff_device::{DeviceCredentials, GatewayId, SESSION_TOKEN_LEN, body_hash};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::device::HANDSHAKE_HEADER;
use crate::error::EdgeError;
use crate::jwks::{FetchFailure, classify, read_capped};

/// Largest answer the device client reads.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// The request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest clock correction the client adopts from a gateway (one day): a gateway that
/// claims more is refused rather than followed.
pub const MAX_CLOCK_CORRECTION_SECS: u64 = 86_400;

/// What a heartbeat did.
#[must_use = "a heartbeat says until when the session holds"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// When the session ends unless extended again (gateway clock).
    pub expires_at: UnixTime,
    /// Whether the token rotated (the client now holds the successor).
    pub rotated: bool,
}

/// A device's HTTP client for [`crate::device::DeviceEdge`]'s routes. Cheap to clone;
/// clones share the session.
///
/// ```no_run
/// # async fn run(creds: handoff_device::DeviceCredentials) -> Result<(), handoff_edge::EdgeError> {
/// use handoff_device::GatewayId;
/// use handoff_edge::device::DeviceClient;
///
/// let gw = GatewayId::new("gw-1").map_err(|_| handoff_edge::EdgeError::Config("gateway id"))?;
/// let client = DeviceClient::new("https://gateway.example", gw, creds)?;
/// let expires_at = client.connect(br#"{"firmware":"4.2.0"}"#).await?;
/// loop {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     match client.heartbeat().await {
///         Ok(beat) => { let _ = beat.expires_at; }
///         Err(_) => { client.connect(b"").await?; } // session over: handshake again
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct DeviceClient {
    http: reqwest::Client,
    base: Arc<str>,
    gateway: GatewayId,
    creds: Arc<DeviceCredentials>,
    clock: Arc<dyn Clock>,
    /// Gateway clock minus device clock, in seconds, as last learnt.
    offset: Arc<AtomicI64>,
    token: Arc<Mutex<Option<Zeroizing<String>>>>,
}

impl core::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("base", &self.base)
            .field("device", &self.creds.device_id())
            .field("has_session", &self.has_session())
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// A client for the gateway at `base_url` (`https://gateway.example`, the routes'
    /// mount point), identified as `gateway` in the handshake.
    ///
    /// # Errors
    /// [`EdgeError::Config`] when the URL is not `http(s)://` or the HTTP client cannot be
    /// built.
    pub fn new(
        base_url: &str,
        gateway: GatewayId,
        creds: DeviceCredentials,
    ) -> Result<Self, EdgeError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(EdgeError::Config(
                "the gateway URL must start with https:// (or http:// on loopback)",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| EdgeError::Config("the HTTP client could not be built"))?;
        Ok(Self {
            http,
            base: base.into(),
            gateway,
            creds: Arc::new(creds),
            clock: Arc::new(SystemClock),
            offset: Arc::default(),
            token: Arc::default(),
        })
    }

    /// The device's clock (default the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether the client holds a session token.
    #[must_use]
    pub fn has_session(&self) -> bool {
        self.lock().is_some()
    }

    /// The session token, for the device's other requests to the gateway.
    #[must_use]
    pub fn session_token(&self) -> Option<Zeroizing<String>> {
        self.lock().clone()
    }

    /// The clock correction in use: gateway time minus device time, in seconds.
    #[must_use]
    pub fn clock_offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Zeroizing<String>>> {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> UnixTime {
        let local = self.clock.now();
        let offset = self.offset.load(Ordering::Relaxed);
        if offset >= 0 {
            local.saturating_add(offset.unsigned_abs())
        } else {
            local.saturating_sub(offset.unsigned_abs())
        }
    }

    /// Handshakes with `body` (what the handshake covers, for example the device's
    /// metadata; empty is fine) and keeps the session token. When the gateway refuses the
    /// timestamp and names its time, adopts that correction (at most
    /// [`MAX_CLOCK_CORRECTION_SECS`]) and signs again, once. Returns the session's expiry.
    ///
    /// # Errors
    /// [`EdgeError::Refused`] with the gateway's status, code, description and
    /// `Retry-After`; [`EdgeError::Fetch`] on transport failure or an unusable answer.
    pub async fn connect(&self, body: &[u8]) -> Result<UnixTime, EdgeError> {
        let first = self.try_connect(body).await;
        let Err(EdgeError::Refused {
            server_time: Some(server),
            ..
        }) = &first
        else {
            return first;
        };
        let local = self.clock.now();
        let offset = i64::try_from(server.as_secs()).unwrap_or(i64::MAX)
            - i64::try_from(local.as_secs()).unwrap_or(i64::MAX);
        if offset.unsigned_abs() > MAX_CLOCK_CORRECTION_SECS {
            return first;
        }
        self.offset.store(offset, Ordering::Relaxed);
        self.try_connect(body).await
    }

    async fn try_connect(&self, body: &[u8]) -> Result<UnixTime, EdgeError> {
        let wire = self
            .creds
            .handshake(
                &self.gateway,
                self.now(),
                body_hash(body),
                &mut crate::system_rng(),
            )
            .to_wire();
        let request = self
            .http
            .post(format!("{}/device/handshake", self.base))
            .header(HANDSHAKE_HEADER, wire)
            .body(body.to_vec());
        let answer = self.send(request).await?;
        let token = session_token(&answer)?;
        let expires_at = expiry(&answer)?;
        *self.lock() = Some(token);
        Ok(expires_at)
    }

    /// Sends a heartbeat with the session token; keeps the successor when the token
    /// rotated. A refusal with `401` drops the session (handshake again with
    /// [`Self::connect`]).
    ///
    /// # Errors
    /// [`EdgeError::Config`] without a session; otherwise as [`Self::connect`].
    pub async fn heartbeat(&self) -> Result<Heartbeat, EdgeError> {
        let Some(token) = self.session_token() else {
            return Err(EdgeError::Config(
                "no device session: call DeviceClient::connect first",
            ));
        };
        let request = self
            .http
            .post(format!("{}/device/heartbeat", self.base))
            .bearer_auth(token.as_str());
        let answer = match self.send(request).await {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, EdgeError::Refused { status: 401, .. }) {
                    let mut held = self.lock();
                    if held.as_ref().is_some_and(|t| t.as_str() == token.as_str()) {
                        *held = None;
                    }
                }
                return Err(e);
            }
        };
        let expires_at = expiry(&answer)?;
        let rotated = answer.get("session_token").is_some();
        if rotated {
            *self.lock() = Some(session_token(&answer)?);
        }
        Ok(Heartbeat {
            expires_at,
            rotated,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<serde_json::Value, EdgeError> {
        let response = request
            .send()
            .await
            .map_err(|e| EdgeError::Fetch(classify(&e, TIMEOUT)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = Zeroizing::new(
            read_capped(response, MAX_ANSWER_BYTES, TIMEOUT)
                .await
                .map_err(EdgeError::Fetch)?,
        );
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
            EdgeError::Fetch(FetchFailure::Transport(format!(
                "the gateway answered {status} with a body that is not JSON"
            )))
        })?;
        if status == 200 {
            return Ok(json);
        }
        let text = |k: &str, max: usize| {
            json.get(k)
                .and_then(serde_json::Value::as_str)
                .map(|s| s.chars().take(max).collect::<String>())
        };
        Err(EdgeError::Refused {
            status,
            error: text("error", 64).unwrap_or_else(|| "unknown".into()),
            description: text("error_description", 512).unwrap_or_default(),
            retry_after,
            server_time: json
                .get("server_time")
                .and_then(serde_json::Value::as_u64)
                .map(UnixTime::from_secs),
        })
    }
}

fn session_token(answer: &serde_json::Value) -> Result<Zeroizing<String>, EdgeError> {
    match answer
        .get("session_token")
        .and_then(serde_json::Value::as_str)
    {
        Some(t) if t.len() == SESSION_TOKEN_LEN && t.is_ascii() => Ok(Zeroizing::new(t.to_owned())),
        _ => Err(unusable("no well-formed session_token")),
    }
}

fn expiry(answer: &serde_json::Value) -> Result<UnixTime, EdgeError> {
    answer
        .get("expires_at")
        .and_then(serde_json::Value::as_u64)
        .map(UnixTime::from_secs)
        .ok_or_else(|| unusable("no expires_at"))
}

fn unusable(what: &str) -> EdgeError {
    EdgeError::Fetch(FetchFailure::Transport(format!(
        "unusable gateway answer: {what}"
    )))
}
