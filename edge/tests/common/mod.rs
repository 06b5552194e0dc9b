//! The host's JWKS server on loopback: host-issuer's own `jwks_router` (axum), behind a
//! middleware that injects misbehaviour on demand, and helpers shared by the edge tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use handoff_core::UnixTime;
use handoff_edge::Clock;
use handoff_issuer::server::{SharedKeyring, jwks_router};
use handoff_issuer::{Algorithm, HostClaims, HostIssuerKeys, Keyring};

pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The keyring's JWKS, ETag and `If-None-Match` honoured.
    Normal,
    /// As normal, after a delay.
    Delay(Duration),
    /// Never answers in time (sleeps 30 s).
    Hang,
    /// `500 Internal Server Error`.
    Error500,
    /// 5 MB of JSON-ish bytes with a Content-Length.
    Huge,
    /// 5 MB streamed without a Content-Length.
    HugeChunked,
    /// Not JSON.
    BadJson,
}

pub struct HostServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
    pub mode: Arc<Mutex<Mode>>,
    pub cache_control: Arc<Mutex<Option<String>>>,
    pub keyring: Arc<Mutex<Keyring>>,
    pub shared: SharedKeyring,
    pub clock: Arc<dyn Clock>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct S {
    hits: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    cache_control: Arc<Mutex<Option<String>>>,
    keyring: Arc<Mutex<Keyring>>,
    clock: Arc<dyn Clock>,
}

fn copy(k: &Keyring) -> Keyring {
    Keyring::from_key_file(&k.to_key_file()).unwrap()
}

pub const HOST: &str = "https://host.example";

pub fn host_key(kid: &str) -> HostIssuerKeys {
    HostIssuerKeys::generate(Algorithm::EdDSA, Some(kid), &mut rng()).unwrap()
}

/// Misbehaviour in front of host-issuer's own `jwks_router`: counts requests, injects
/// faults, overrides `Cache-Control` when told to, counts the router's `304`s.
async fn faults(State(s): State<S>, req: Request, next: Next) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Delay(d) => tokio::time::sleep(d).await,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Mode::Error500 => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::Huge => {
            let mut body = b"{\"keys\":[".to_vec();
            body.resize(5 * 1024 * 1024, b' ');
            return ([("content-type", "application/json")], body).into_response();
        }
        Mode::HugeChunked => {
            let chunks = (0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 65536]));
            return Body::from_stream(futures_util::stream::iter(chunks)).into_response();
        }
        Mode::BadJson => {
            return ([("content-type", "application/json")], "{\"keys\": [ nope").into_response();
        }
        Mode::Normal => {}
    }
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::NOT_MODIFIED {
        s.not_modified.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(cc) = s.cache_control.lock().unwrap().clone() {
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_str(&cc).unwrap());
    }
    resp
}

impl HostServer {
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        let keyring = Keyring::new(host_key("host-a"), clock.now());
        let s = S {
            hits: Arc::default(),
            not_modified: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            cache_control: Arc::default(),
            keyring: Arc::new(Mutex::new(keyring)),
            clock: clock.clone(),
        };
        let shared = {
            let c = clock.clone();
            SharedKeyring::with_clock(
                copy(&s.keyring.lock().unwrap()),
                Arc::new(move || Ok(c.now())),
            )
        };
        let app = jwks_router(shared.clone())
            .layer(axum::middleware::from_fn_with_state(s.clone(), faults));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            hits: s.hits,
            not_modified: s.not_modified,
            mode: s.mode,
            cache_control: s.cache_control,
            keyring: s.keyring,
            shared,
            clock,
            task,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn rotate(&self, kid: &str) {
        let now = self.clock.now();
        let mut k = self.keyring.lock().unwrap();
        let _change = k.rotate(host_key(kid), now).unwrap();
        // host-issuer's server publishes the rotated keyring to every later request.
        let _old = self.shared.replace(copy(&k));
    }

    /// A host JWT for `sub`, tenant `tenant-7`, audience `aud`, signed with the active key.
    pub fn mint(&self, aud: &str, sub: &str) -> String {
        let claims = HostClaims::new(HOST, aud, sub).tenant("tenant-7").ttl(120);
        self.keyring
            .lock()
            .unwrap()
            .mint(&claims, self.clock.now(), &mut rng())
            .unwrap()
            .into_token()
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn start_time() -> UnixTime {
    handoff_edge::SystemClock.now()
}

/// The token service and API on loopback, fed by a host server on loopback.
pub struct Gateway {
    pub host: HostServer,
    pub service: handoff_edge::token_service::TokenService,
    pub issuer: String,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(handoff_edge::SystemClock);
        let host = HostServer::start(clock).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = handoff_edge::RemoteJwks::builder(host.jwks_url())
            .build()
            .unwrap();
        let service = handoff_edge::token_service::TokenService::builder(&issuer, HOST, jwks)
            .build()
            .unwrap();
        let app = service.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            host,
            service,
            issuer,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn host_jwt(&self, sub: &str) -> String {
        self.host.mint(&self.issuer, sub)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn dpop_key() -> handoff_dpop::DpopKey {
    handoff_dpop::DpopKey::generate(Algorithm::ES256, &mut rng()).unwrap()
}
