//! A small synchronous HTTP server for the host's JWKS and, for development only, a token
//! endpoint that mints host tokens on request (feature `cli`).
//!
//! Routes: `GET /.well-known/jwks.json`, `GET /certs` (legacy alias), `GET /healthz`, and
//! with [`ServerConfig::dev_token_endpoint`] also `POST /token`. This is the only module
//! of the crate that reads the clock, the disk and the network; the rest stays Sans-IO.
//!
//! ```no_run
//! use handoff_issuer::server::{DevTokenConfig, ServerConfig, spawn};
//! use handoff_issuer::Algorithm;
//!
//! let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let config = ServerConfig::with_generated_keys(Algorithm::RS256, "127.0.0.1:0".parse()?, &mut rng)?
//!     .dev_token_endpoint(DevTokenConfig::default());
//! let server = spawn(config)?;
//! println!("JWKS at {}/.well-known/jwks.json", server.base_url());
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use handoff_core::{Algorithm, UnixTime};
use rand_core::UnwrapErr;
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response};
use zeroize::Zeroizing;

use crate::error::clip;
use crate::keyring::MAX_KEYRING_FILE_BYTES;
use crate::{Error, HostClaims, HostIssuerKeys, Keyring};

/// Largest `POST /token` body read, in bytes.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 8 * 1024;
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
*  DEVELOPMENT ONLY: POST /token mints host tokens for any subject, with   *
*  no authentication at all. It simulates a host's token issuer for local  *
*  testing. Never enable --dev-token-endpoint in production.               *
****************************************************************************";

/// Where the server gets its keys.
#[derive(Debug)]
enum KeySource {
    /// A keyring file, re-read whenever its content changes (after `rotate`).
    File(PathBuf),
    /// A keyring held in memory for the server's life.
    Fixed(Box<Keyring>),
}

/// Settings of the dev token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevTokenConfig {
    /// `iss` when the request names none; `None` uses the server's base URL.
    pub default_iss: Option<String>,
    /// `aud` when the request names none (default `dev-service`).
    pub default_aud: String,
    /// Allows a non-loopback bind address. Off by default: anyone who can reach the
    /// endpoint can mint tokens.
    pub allow_non_loopback: bool,
}

impl Default for DevTokenConfig {
    fn default() -> Self {
        Self {
            default_iss: None,
            default_aud: "dev-service".into(),
            allow_non_loopback: false,
        }
    }
}

/// What [`spawn`] starts.
#[derive(Debug)]
pub struct ServerConfig {
    bind: SocketAddr,
    keys: KeySource,
    dev: Option<DevTokenConfig>,
}

impl ServerConfig {
    /// Serves the keyring file at `path`, picking up changes without a restart.
    #[must_use]
    pub fn from_key_file(path: impl Into<PathBuf>, bind: SocketAddr) -> Self {
        Self {
            bind,
            keys: KeySource::File(path.into()),
            dev: None,
        }
    }

    /// Serves a keyring held in memory.
    #[must_use]
    pub fn with_keyring(keyring: Keyring, bind: SocketAddr) -> Self {
        Self {
            bind,
            keys: KeySource::Fixed(Box::new(keyring)),
            dev: None,
        }
    }

    /// Serves a fresh key for `alg` made now (for demos and tests: the key dies with the
    /// process).
    ///
    /// # Errors
    /// As [`HostIssuerKeys::generate`].
    pub fn with_generated_keys<R: rand_core::CryptoRng + ?Sized>(
        alg: Algorithm,
        bind: SocketAddr,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let key = HostIssuerKeys::generate(alg, None, rng)?;
        Ok(Self::with_keyring(Keyring::new(key, system_now()?), bind))
    }

    /// Turns on `POST /token`, the dev-only token-issuer simulator.
    #[must_use]
    pub fn dev_token_endpoint(mut self, dev: DevTokenConfig) -> Self {
        self.dev = Some(dev);
        self
    }
}

/// A running server. Dropping it stops the server too.
pub struct ServerHandle {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for the server thread to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Blocks until the server stops (it runs until the process ends).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl core::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

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

/// Reads a keyring file, bounded in size.
///
/// # Errors
/// [`Error::KeyFile`] when the file cannot be read or is not a keyring.
pub fn read_key_file(path: &Path) -> Result<Keyring, Error> {
    let bytes = read_bounded(path)?;
    parse_key_file(path, &bytes)
}

fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let f = fs::File::open(path).map_err(|e| {
        Error::KeyFile(format!(
            "cannot open {}: {e}; create it with `host-issuer generate-keys --out {}`",
            path.display(),
            path.display()
        ))
    })?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_KEYRING_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::KeyFile(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() > MAX_KEYRING_FILE_BYTES {
        return Err(Error::KeyFile(format!(
            "{} is over the {MAX_KEYRING_FILE_BYTES}-byte cap; is it a keyring file?",
            path.display()
        )));
    }
    Ok(buf)
}

fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<Keyring, Error> {
    let text = core::str::from_utf8(bytes)
        .map_err(|_| Error::KeyFile(format!("{} is not UTF-8 text", path.display())))?;
    Keyring::from_key_file(text).map_err(|e| match e {
        Error::KeyFile(m) => Error::KeyFile(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Checks the bind address against the dev endpoint's loopback guard.
///
/// # Errors
/// [`Error::Server`] for a non-loopback address without `allow_non_loopback`.
pub fn check_dev_bind(bind: SocketAddr, dev: &DevTokenConfig) -> Result<(), Error> {
    if !bind.ip().is_loopback() && !dev.allow_non_loopback {
        return Err(Error::Server(format!(
            "refusing to serve the dev token endpoint on {}: it mints tokens for anyone who can reach it; bind to 127.0.0.1 or ::1, or pass --allow-non-loopback-dev if you really mean it",
            bind.ip()
        )));
    }
    Ok(())
}

/// Starts the server on a background thread and returns once it listens.
///
/// The keys are loaded (and a key file checked) before binding, so a bad configuration
/// fails here, not on the first request. With the dev token endpoint on, the loopback
/// guard applies and [`DEV_BANNER`] is printed to stderr.
///
/// # Errors
/// [`Error::Server`] for the loopback guard or a bind failure; [`Error::KeyFile`] for an
/// unreadable key file.
pub fn spawn(config: ServerConfig) -> Result<ServerHandle, Error> {
    let ServerConfig { bind, keys, dev } = config;
    if let Some(dev) = &dev {
        check_dev_bind(bind, dev)?;
    }
    let (path, keys, file_bytes) = match keys {
        KeySource::File(path) => {
            let bytes = read_bounded(&path)?;
            let ring = parse_key_file(&path, &bytes)?;
            (Some(path), Arc::new(ring), Some(bytes))
        }
        KeySource::Fixed(k) => (None, Arc::new(*k), None),
    };
    let server = tiny_http::Server::http(bind).map_err(|e| {
        Error::Server(format!(
            "cannot listen on {bind}: {e}; pick another --port or stop what uses it"
        ))
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Server("the listener has no IP address".into()))?;
    let server = Arc::new(server);
    let dev = dev.map(|d| DevResolved {
        iss: d.default_iss.unwrap_or_else(|| format!("http://{addr}")),
        aud: d.default_aud,
    });
    if dev.is_some() {
        eprintln!("{DEV_BANNER}");
    }
    let mut state = State {
        path,
        file_bytes,
        keys,
        reload_error: None,
        dev,
    };
    let s = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("host-issuer-server".into())
        .spawn(move || {
            for req in s.incoming_requests() {
                state.handle(req);
            }
        })
        .map_err(|e| Error::Server(format!("cannot start the server thread: {e}")))?;
    Ok(ServerHandle {
        addr,
        server,
        thread: Some(thread),
    })
}

/// Starts the server and blocks for the life of the process.
///
/// # Errors
/// As [`spawn`].
pub fn run(config: ServerConfig) -> Result<(), Error> {
    spawn(config)?.join();
    Ok(())
}

struct DevResolved {
    iss: String,
    aud: String,
}

struct State {
    path: Option<PathBuf>,
    file_bytes: Option<Zeroizing<Vec<u8>>>,
    keys: Arc<Keyring>,
    reload_error: Option<String>,
    dev: Option<DevResolved>,
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut r = Response::from_data(body.to_string().into_bytes()).with_status_code(status);
    if let Some(h) = header("Content-Type", "application/json") {
        r.add_header(h);
    }
    if let Some(h) = header("Cache-Control", "no-store") {
        r.add_header(h);
    }
    r
}

fn error_reply(status: u16, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

impl State {
    /// Re-reads the key file when its content changed; keeps the last good keyring when
    /// the new content is broken (and reports it on `/healthz`).
    fn refresh(&mut self) {
        let Some(path) = &self.path else { return };
        let loaded = read_bounded(path).and_then(|bytes| {
            if self.file_bytes.as_ref().map(|b| &b[..]) == Some(&bytes[..]) {
                return Ok(None);
            }
            parse_key_file(path, &bytes).map(|k| Some((k, bytes)))
        });
        match loaded {
            Ok(None) => self.reload_error = None,
            Ok(Some((k, bytes))) => {
                eprintln!(
                    "host-issuer: reloaded {} (active kid {})",
                    path.display(),
                    k.active().kid()
                );
                self.keys = Arc::new(k);
                self.file_bytes = Some(bytes);
                self.reload_error = None;
            }
            Err(e) => {
                if self.reload_error.as_deref() != Some(&e.to_string()) {
                    eprintln!("host-issuer: keeping the previous keys: {e}");
                }
                self.reload_error = Some(e.to_string());
            }
        }
    }

    fn handle(&mut self, mut req: Request) {
        let path = req.url().split('?').next().unwrap_or("").to_owned();
        let method = req.method().clone();
        let reply = match (path.as_str(), &method) {
            (JWKS_PATH | CERTS_PATH, Method::Get | Method::Head) => self.jwks(),
            (HEALTH_PATH, Method::Get | Method::Head) => self.health(),
            (TOKEN_PATH, Method::Post) if self.dev.is_some() => self.token(&mut req),
            (JWKS_PATH | CERTS_PATH | HEALTH_PATH, _) => method_not_allowed("GET, HEAD"),
            (TOKEN_PATH, _) if self.dev.is_some() => method_not_allowed("POST"),
            _ => error_reply(
                404,
                "not_found",
                "no such route: use GET /.well-known/jwks.json, GET /certs or GET /healthz",
            ),
        };
        let _ = req.respond(reply);
    }

    fn jwks(&mut self) -> Reply {
        self.refresh();
        let now = match system_now() {
            Ok(n) => n,
            Err(e) => return error_reply(500, "server_error", &e.to_string()),
        };
        let resp = self.keys.jwks_response(now);
        let cache = resp.cache_control();
        let mut r = Response::from_data(resp.into_body());
        for (n, v) in [
            ("Content-Type", crate::JwksResponse::CONTENT_TYPE),
            ("Cache-Control", cache.as_str()),
        ] {
            if let Some(h) = header(n, v) {
                r.add_header(h);
            }
        }
        r
    }

    fn health(&mut self) -> Reply {
        self.refresh();
        match &self.reload_error {
            None => json_reply(
                200,
                &json!({
                    "status": "ok",
                    "active_kid": self.keys.active().kid(),
                    "alg": self.keys.active().algorithm().as_str(),
                }),
            ),
            Some(e) => json_reply(
                503,
                &json!({
                    "status": "degraded",
                    "active_kid": self.keys.active().kid(),
                    "error": e,
                }),
            ),
        }
    }

    fn token(&mut self, req: &mut Request) -> Reply {
        let Some(dev) = &self.dev else {
            return error_reply(404, "not_found", "the dev token endpoint is off");
        };
        let content_type = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        let mut body = Vec::new();
        if let Err(e) = req
            .as_reader()
            .take(MAX_TOKEN_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut body)
        {
            return error_reply(
                400,
                "invalid_request",
                &format!("cannot read the body: {e}"),
            );
        }
        if body.len() > MAX_TOKEN_REQUEST_BYTES {
            return error_reply(
                413,
                "invalid_request",
                &format!("the body is over {MAX_TOKEN_REQUEST_BYTES} bytes"),
            );
        }
        let fields = if content_type.starts_with("application/json") {
            parse_json_fields(&body)
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            parse_form_fields(&body)
        } else {
            return error_reply(
                415,
                "invalid_request",
                "send Content-Type application/json or application/x-www-form-urlencoded",
            );
        };
        let fields = match fields {
            Ok(f) => f,
            Err(msg) => return error_reply(400, "invalid_request", &msg),
        };
        let Some(sub) = fields.sub else {
            return error_reply(400, "invalid_request", "sub is required");
        };
        let iss = fields.iss.unwrap_or_else(|| dev.iss.clone());
        let mut claims = HostClaims::new(iss, fields.aud.unwrap_or_else(|| dev.aud.clone()), sub);
        if let Some(t) = fields.tenant {
            claims = claims.tenant(t);
        }
        if let Some(ttl) = fields.ttl {
            claims = claims.ttl(ttl);
        }
        self.refresh();
        let now = match system_now() {
            Ok(n) => n,
            Err(e) => return error_reply(500, "server_error", &e.to_string()),
        };
        let mut rng = UnwrapErr(getrandom::SysRng);
        match self.keys.mint(&claims, now, &mut rng) {
            Ok(t) => json_reply(
                200,
                &json!({
                    "token": t.token(),
                    "token_type": crate::HOST_TOKEN_TYP,
                    "expires_in": claims.ttl,
                    "kid": t.kid(),
                    "iss": claims.iss,
                    "aud": claims.aud,
                }),
            ),
            Err(e) => error_reply(400, "invalid_request", &e.to_string()),
        }
    }
}

fn method_not_allowed(allow: &str) -> Reply {
    let mut r = error_reply(
        405,
        "method_not_allowed",
        &format!("this route accepts {allow}"),
    );
    if let Some(h) = header("Allow", allow) {
        r.add_header(h);
    }
    r
}

#[derive(Default)]
struct TokenFields {
    sub: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    tenant: Option<String>,
    ttl: Option<u64>,
}

fn set_field(f: &mut TokenFields, name: &str, value: String) -> Result<(), String> {
    let slot = match name {
        "sub" => &mut f.sub,
        "aud" => &mut f.aud,
        "iss" => &mut f.iss,
        "tenant" | "host_tenant_id" => &mut f.tenant,
        "ttl" => {
            let ttl = value
                .parse::<u64>()
                .map_err(|_| format!("ttl {:?} is not a whole number of seconds", clip(&value)))?;
            f.ttl = Some(ttl);
            return Ok(());
        }
        // Unknown fields are ignored, as OAuth token endpoints do.
        _ => return Ok(()),
    };
    if slot.is_some() {
        return Err(format!("{name} is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_json_fields(body: &[u8]) -> Result<TokenFields, String> {
    let v: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON object: {}", clip(&e.to_string())))?;
    let mut f = TokenFields::default();
    for (k, v) in v {
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) if k == "ttl" => n.to_string(),
            _ => return Err(format!("{} must be a string", clip(&k))),
        };
        set_field(&mut f, &k, s)?;
    }
    Ok(f)
}

fn parse_form_fields(body: &[u8]) -> Result<TokenFields, String> {
    let text = core::str::from_utf8(body).map_err(|_| "the form body is not UTF-8".to_owned())?;
    let mut f = TokenFields::default();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        set_field(&mut f, &percent_decode(k)?, percent_decode(v)?)?;
    }
    Ok(f)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| core::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "malformed percent-encoding in the form body".to_owned())?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the form body decodes to invalid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form_fields(b"sub=user%2042&aud=a+b&ttl=60&x=1").unwrap();
        assert_eq!(f.sub.as_deref(), Some("user 42"));
        assert_eq!(f.aud.as_deref(), Some("a b"));
        assert_eq!(f.ttl, Some(60));
        assert!(parse_form_fields(b"sub=%zz").is_err());
        assert!(parse_form_fields(b"sub=%4").is_err());
        assert!(parse_form_fields(b"sub=a&sub=b").is_err());
        assert!(parse_form_fields(b"ttl=-1").is_err());
        assert!(parse_form_fields(b"sub=%ff").is_err());
    }

    #[test]
    fn json_decoding() {
        let f = parse_json_fields(br#"{"sub":"u","ttl":30,"iss":"i"}"#).unwrap();
        assert_eq!(f.sub.as_deref(), Some("u"));
        assert_eq!(f.ttl, Some(30));
        assert!(parse_json_fields(br#"{"sub":1}"#).is_err());
        assert!(parse_json_fields(b"[]").is_err());
        assert!(parse_json_fields(br#"{"ttl":1.5}"#).is_err());
    }

    #[test]
    fn loopback_guard() {
        let dev = DevTokenConfig::default();
        assert!(check_dev_bind("127.0.0.1:0".parse().unwrap(), &dev).is_ok());
        assert!(check_dev_bind("[::1]:0".parse().unwrap(), &dev).is_ok());
        let e = check_dev_bind("0.0.0.0:3001".parse().unwrap(), &dev).unwrap_err();
        assert!(e.to_string().contains("--allow-non-loopback-dev"), "{e}");
        assert!(check_dev_bind("192.0.2.1:3001".parse().unwrap(), &dev).is_err());
        let allowed = DevTokenConfig {
            allow_non_loopback: true,
            ..DevTokenConfig::default()
        };
        assert!(check_dev_bind("0.0.0.0:3001".parse().unwrap(), &allowed).is_ok());
    }
}
