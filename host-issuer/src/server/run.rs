//! The server: hyper-util's connection builder over a tokio listener, serving the routers
//! with timeouts, caps, hot reload of the key file and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use super::keyfile::{
    FilePassphrase, KeyFileAccess, no_passphrase, parse_any_key_file, read_private_file, write_file,
};
use super::{
    DEV_BANNER, DevTokenConfig, MAX_TOKEN_REQUEST_BYTES, SharedKeyring, check_dev_bind,
    check_not_production, dev_token_router, jwks_router, system_now,
};
use crate::keyring::MAX_KEYRING_FILE_BYTES;
use crate::keys::MAX_KEY_FILE_BYTES;
use crate::{Algorithm, Error, HostIssuerKeys, Keyring};

/// The server's protections against slow and greedy clients. The defaults suit a public
/// JWKS endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Time a client has to send a request's headers (counted from the first moment the
    /// server waits for them, so an idle keep-alive connection is closed after it too).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body. Default 10 s.
    pub body_read_timeout: Duration,
    /// Longest time for a whole request once its headers are in (body included); `408`
    /// after it. Default 15 s.
    pub request_timeout: Duration,
    /// Largest request body, in bytes (`413` over it). Default 8 KiB.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), in bytes; at least 8192.
    /// Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most connections open at once; further clients wait in the listen backlog.
    /// Default 10 000.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight. Default 10 s.
    pub shutdown_grace: Duration,
    /// How often the key file is checked for changes. Default 1 s.
    pub reload_interval: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            max_body_bytes: MAX_TOKEN_REQUEST_BYTES,
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            reload_interval: Duration::from_secs(1),
        }
    }
}

impl ServerLimits {
    /// Sets the header, body and whole-request timeouts at once (the request timeout is
    /// `read_timeout` + half of it).
    #[must_use]
    pub fn read_timeout(mut self, read_timeout: Duration) -> Self {
        self.header_read_timeout = read_timeout;
        self.body_read_timeout = read_timeout;
        self.request_timeout = read_timeout + read_timeout / 2;
        self
    }

    /// Sets how often the key file is checked for changes.
    #[must_use]
    pub fn reload_interval(mut self, every: Duration) -> Self {
        self.reload_interval = every;
        self
    }

    /// Sets the connection cap.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
}

/// Where the passphrase of an encrypted key file comes from: called at most once, when
/// the server first finds its key file encrypted.
type PassphraseSource = Box<dyn FnOnce() -> Result<FilePassphrase, Error> + Send>;

/// Where the server gets its keys.
enum KeySource {
    /// A keyring file, re-read whenever its content changes; plain, or encrypted when a
    /// passphrase source is given.
    File {
        path: PathBuf,
        access: KeyFileAccess,
        passphrase: Option<PassphraseSource>,
    },
    /// A keyring held in memory for the server's life.
    Fixed(Box<Keyring>),
}

impl core::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::File {
                path,
                access,
                passphrase,
            } => f
                .debug_struct("File")
                .field("path", path)
                .field("access", access)
                .field("passphrase", &passphrase.as_ref().map(|_| "<source>"))
                .finish(),
            Self::Fixed(k) => f.debug_tuple("Fixed").field(k).finish(),
        }
    }
}

/// What [`spawn`] / [`ServerConfig::bind`] start.
#[derive(Debug)]
pub struct ServerConfig {
    bind: SocketAddr,
    keys: KeySource,
    dev: Option<DevTokenConfig>,
    limits: ServerLimits,
}

impl ServerConfig {
    /// Serves the keyring file at `path` (checked strictly: owner-only permissions),
    /// picking up changes without a restart.
    #[must_use]
    pub fn from_key_file(path: impl Into<PathBuf>, bind: SocketAddr) -> Self {
        Self {
            bind,
            keys: KeySource::File {
                path: path.into(),
                access: KeyFileAccess::default(),
                passphrase: None,
            },
            dev: None,
            limits: ServerLimits::default(),
        }
    }

    /// Serves a keyring held in memory.
    #[must_use]
    pub fn with_keyring(keyring: Keyring, bind: SocketAddr) -> Self {
        Self {
            bind,
            keys: KeySource::Fixed(Box::new(keyring)),
            dev: None,
            limits: ServerLimits::default(),
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

    /// How strictly the key file is checked (with [`Self::from_key_file`]).
    #[must_use]
    pub fn key_file_access(mut self, access: KeyFileAccess) -> Self {
        if let KeySource::File { access: a, .. } = &mut self.keys {
            *a = access;
        }
        self
    }

    /// Lets the server open an encrypted key file ([`crate::encrypted`], feature
    /// `encrypted-keys`, with [`Self::from_key_file`]): `passphrase` is called at most
    /// once, on a blocking thread, when the server first finds the file encrypted (so it
    /// may prompt on a terminal). The passphrase is then kept in memory, zeroized when the
    /// server stops, to re-read the file when it changes (a rotation keeps the file
    /// encrypted under it). A file that turns encrypted while the server runs, or under
    /// another passphrase, is refused at reload: the server keeps its keys and reports the
    /// error on `/healthz`.
    #[cfg(feature = "encrypted-keys")]
    #[must_use]
    pub fn key_file_passphrase(
        mut self,
        passphrase: impl FnOnce() -> Result<crate::encrypted::Passphrase, Error> + Send + 'static,
    ) -> Self {
        if let KeySource::File { passphrase: p, .. } = &mut self.keys {
            *p = Some(Box::new(passphrase));
        }
        self
    }

    /// Turns on `POST /token`, the dev-only token endpoint.
    #[must_use]
    pub fn dev_token_endpoint(mut self, dev: DevTokenConfig) -> Self {
        self.dev = Some(dev);
        self
    }

    /// Sets the timeouts and caps.
    #[must_use]
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the configuration, loads the keys and binds the listener; the returned
    /// server knows its address (useful with port 0) and serves once
    /// [`BoundServer::serve`] runs. Call inside a tokio runtime.
    ///
    /// With the dev token endpoint on, the production guard ([`check_not_production`],
    /// from the process environment) and the loopback guard apply, and [`DEV_BANNER`] is
    /// printed to stderr.
    ///
    /// # Errors
    /// [`Error::Server`] for a guard or a bind failure; [`Error::KeyFile`] for an
    /// unreadable key file.
    pub async fn bind(self) -> Result<BoundServer, Error> {
        let Self {
            bind,
            keys,
            dev,
            limits,
        } = self;
        if let Some(dev) = &dev {
            check_not_production(|k| std::env::var(k).ok())?;
            check_dev_bind(bind, dev)?;
        }
        let (keys, watch) = match keys {
            KeySource::File {
                path,
                access,
                passphrase,
            } => {
                let (ring, watch) = open_key_file(path, access, passphrase).await?;
                (SharedKeyring::new(ring), Some(watch))
            }
            KeySource::Fixed(k) => (SharedKeyring::new(*k), None),
        };
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            Error::Server(format!(
                "cannot listen on {bind}: {e}; pick another --port or stop what uses it"
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Server(format!("the listener has no address: {e}")))?;
        let mut app = jwks_router(keys.clone());
        if let Some(dev) = &dev {
            eprintln!("{DEV_BANNER}");
            app = app.merge(dev_token_router(
                keys.clone(),
                dev,
                &format!("http://{addr}"),
            ));
        }
        Ok(BoundServer {
            listener,
            addr,
            app,
            keys,
            watch,
            limits,
        })
    }
}

struct Watch {
    path: PathBuf,
    access: KeyFileAccess,
    /// SHA-256 of the content last read (the key file's bytes are not kept).
    last: [u8; 32],
    /// The passphrase of an encrypted key file, kept to re-read it (zeroized on drop).
    passphrase: Option<FilePassphrase>,
}

/// Reads and parses the key file on a blocking thread (an encrypted file costs a
/// memory-hard key derivation per key, and its passphrase may be asked on a terminal).
async fn open_key_file(
    path: PathBuf,
    access: KeyFileAccess,
    source: Option<PassphraseSource>,
) -> Result<(Keyring, Watch), Error> {
    tokio::task::spawn_blocking(move || {
        let bytes = read_private_file(&path, MAX_KEYRING_FILE_BYTES, access, "keyring")?;
        // The source is asked only if the file turns out encrypted; its answer is kept.
        let mut passphrase = None;
        let ring = parse_any_key_file(&path, &bytes, || {
            let ask = source.ok_or_else(|| no_passphrase(&path))?;
            let p = ask()?;
            passphrase = Some(p.clone());
            Ok(p)
        })?;
        Ok((
            ring,
            Watch {
                path,
                access,
                last: Sha256::digest(&bytes[..]).into(),
                passphrase,
            },
        ))
    })
    .await
    .map_err(|e| Error::Server(format!("the key file task failed: {e}")))?
}

/// A server bound to its address, not serving yet.
pub struct BoundServer {
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    keys: SharedKeyring,
    watch: Option<Watch>,
    limits: ServerLimits,
}

impl core::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoundServer")
            .field("addr", &self.addr)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl BoundServer {
    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The keyring it serves (replace it to rotate without a key file).
    #[must_use]
    pub fn keys(&self) -> SharedKeyring {
        self.keys.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (up to [`ServerLimits::shutdown_grace`]) and returns.
    ///
    /// # Errors
    /// None today (accept errors are retried); kept for future failures.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Self {
            listener,
            app,
            keys,
            watch,
            limits,
            ..
        } = self;
        let reloader = watch.map(|w| tokio::spawn(reload_loop(w, keys, limits.reload_interval)));
        let app = app
            .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                limits.request_timeout,
            ))
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        // HTTP/1 only: no protocol sniffing phase that the header timeout would not cover.
        let builder = builder.http1_only();
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        eprintln!("host-issuer: accept failed: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let svc = TowerToHyperService::new(app.clone());
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // A connection error (timeout, reset, bad request) ends that connection only.
                let _ = conn.await;
                drop(permit);
            });
        }
        drop(listener);
        if let Some(r) = reloader {
            r.abort();
        }
        if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!(
                "host-issuer: closed connections still busy after {:?}",
                limits.shutdown_grace
            );
        }
        Ok(())
    }
}

/// Polls the key file and swaps the keyring in when its content changed; keeps the last
/// good keyring when the new content is broken (reported on `/healthz`). One log line per
/// reload, one per distinct error.
async fn reload_loop(mut w: Watch, keys: SharedKeyring, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_error: Option<String> = None;
    // The content that last failed to parse: not parsed again until it changes (an
    // encrypted file under a foreign passphrase costs a key derivation per key and try).
    let mut failed: Option<[u8; 32]> = None;
    loop {
        tick.tick().await;
        let (path, access) = (w.path.clone(), w.access);
        let (last, passphrase) = (w.last, w.passphrase.clone());
        // Read, compare and parse off the runtime.
        let read = tokio::task::spawn_blocking(move || {
            let bytes = read_private_file(&path, MAX_KEYRING_FILE_BYTES, access, "keyring")?;
            let digest: [u8; 32] = Sha256::digest(&bytes[..]).into();
            if digest == last {
                return Ok(Reread::Unchanged);
            }
            if failed == Some(digest) {
                return Ok(Reread::StillBroken);
            }
            #[cfg(test)]
            tests::PARSES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Reread::Changed(
                digest,
                parse_any_key_file(&path, &bytes, || {
                    passphrase.ok_or_else(|| no_passphrase(&path))
                }),
            ))
        })
        .await;
        let outcome = match read {
            Ok(r) => r,
            Err(e) => Err(Error::Server(format!("the reload task failed: {e}"))),
        };
        let error = match outcome {
            Ok(Reread::Unchanged) => {
                failed = None;
                if last_error.take().is_some() {
                    keys.set_reload_error(None);
                }
                continue;
            }
            Ok(Reread::StillBroken) => continue,
            Ok(Reread::Changed(digest, Ok(ring))) => {
                let new_kid = ring.active().kid().to_owned();
                let old = keys.replace(ring);
                let published = keys
                    .now()
                    .map(|now| {
                        keys.load()
                            .jwks(now)
                            .keys()
                            .iter()
                            .filter_map(|k| k.kid().map(str::to_owned))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                eprintln!(
                    "host-issuer: reloaded {}: active kid {new_kid} (was {}), published kids [{published}]",
                    w.path.display(),
                    old.active().kid()
                );
                w.last = digest;
                (failed, last_error) = (None, None);
                continue;
            }
            Ok(Reread::Changed(digest, Err(e))) => {
                failed = Some(digest);
                e
            }
            Err(e) => {
                failed = None;
                e
            }
        };
        let msg = error.to_string();
        if last_error.as_deref() != Some(msg.as_str()) {
            eprintln!("host-issuer: reload failed, keeping the previous keys: {msg}");
        }
        keys.set_reload_error(Some(msg.clone()));
        last_error = Some(msg);
    }
}

/// What a reload tick found.
enum Reread {
    /// The content last loaded.
    Unchanged,
    /// The content that last failed to parse.
    StillBroken,
    /// New content: its digest and what parsing it gave.
    Changed([u8; 32], Result<Keyring, Error>),
}

/// Binds and serves `config` until `shutdown` completes. Call inside a tokio runtime.
///
/// # Errors
/// As [`ServerConfig::bind`].
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    config.bind().await?.serve(shutdown).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    let _ = s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("host-issuer-server")
        .build()
        .map_err(|e| Error::Server(format!("cannot start the async runtime: {e}")))
}

/// Starts the server on its own runtime and blocks until SIGINT or SIGTERM, then shuts
/// down gracefully.
///
/// # Errors
/// As [`ServerConfig::bind`].
pub fn run(config: ServerConfig) -> Result<(), Error> {
    runtime()?.block_on(serve(config, shutdown_signal()))
}

/// A server running on a background thread (with its own runtime). Dropping it stops the
/// server too.
pub struct ServerHandle {
    addr: SocketAddr,
    keys: SharedKeyring,
    stop: Option<oneshot::Sender<()>>,
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

    /// The keyring it serves.
    #[must_use]
    pub fn keys(&self) -> SharedKeyring {
        self.keys.clone()
    }

    /// Stops accepting, closes the listener and waits for the server thread to end.
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
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
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

/// Starts the server on a background thread with its own tokio runtime and returns once
/// it listens. The keys are loaded (and a key file checked) before binding, so a bad
/// configuration fails here, not on the first request.
///
/// # Errors
/// As [`ServerConfig::bind`].
pub fn spawn(config: ServerConfig) -> Result<ServerHandle, Error> {
    let rt = runtime()?;
    let bound = rt.block_on(config.bind())?;
    let (addr, keys) = (bound.local_addr(), bound.keys());
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("host-issuer-server".into())
        .spawn(move || {
            let _ = rt.block_on(bound.serve(async {
                let _ = rx.await;
            }));
        })
        .map_err(|e| Error::Server(format!("cannot start the server thread: {e}")))?;
    Ok(ServerHandle {
        addr,
        keys,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Where the dev issuer's key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DevKeySource {
    /// Generated in memory; it dies with the process.
    InMemory,
    /// Generated now and written to `private.pem` (0600) and `public.pem` in this
    /// directory.
    Created(PathBuf),
    /// Read back from `private.pem` in this directory.
    Loaded(PathBuf),
}

/// The dev issuer's key: RSA-2048, `kid` `dev-key`. Without `dir`, generated in memory.
/// With `dir`, read from `dir/private.pem` when it exists (it must be owner-only unless
/// `access` allows more), else generated and written once as `private.pem` (mode 0600)
/// and `public.pem` (SPKI, mode 0644), so a restart keeps the key and verifiers keep
/// their cached JWKS.
///
/// # Errors
/// [`Error::KeyFile`] when the directory or files cannot be read or written, or
/// `private.pem` is not an RSA private key.
pub fn load_or_create_dev_key<R: rand_core::CryptoRng + ?Sized>(
    dir: Option<&Path>,
    access: KeyFileAccess,
    rng: &mut R,
) -> Result<(HostIssuerKeys, DevKeySource), Error> {
    use crate::dev::{DEV_KID, generate_dev_key};
    let Some(dir) = dir else {
        return Ok((generate_dev_key(rng)?, DevKeySource::InMemory));
    };
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    if private.exists() {
        let pem = read_private_file(&private, MAX_KEY_FILE_BYTES, access, "PEM key")?;
        let text = core::str::from_utf8(&pem).map_err(|_| {
            Error::KeyFile(format!(
                "{} is not PEM text; delete it to let the dev issuer make a new key",
                private.display()
            ))
        })?;
        let key = HostIssuerKeys::from_pem(text, Algorithm::RS256, Some(DEV_KID)).map_err(|e| {
            Error::KeyFile(format!(
                "{}: {e}; it should hold the dev issuer's RSA private key (PKCS#8 PEM): delete it to make a new one",
                private.display()
            ))
        })?;
        if !public.exists() {
            write_file(&public, key.to_public_key_pem()?.as_bytes(), false, 0o644)?;
        }
        return Ok((key, DevKeySource::Loaded(dir.to_path_buf())));
    }
    let key = generate_dev_key(rng)?;
    write_file(&private, key.to_pkcs8_pem()?.as_bytes(), false, 0o600)?;
    write_file(&public, key.to_public_key_pem()?.as_bytes(), true, 0o644)?;
    Ok((key, DevKeySource::Created(dir.to_path_buf())))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    /// Key files parsed by reload ticks (this module's one server test is the only user).
    pub(super) static PARSES: AtomicUsize = AtomicUsize::new(0);

    #[cfg(feature = "encrypted-keys")]
    #[test]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    fn a_broken_key_file_is_parsed_once_not_every_tick() {
        use std::sync::atomic::Ordering::SeqCst;

        use super::*;
        use crate::encrypted::{Passphrase, to_encrypted_key_file};
        use crate::server::write_private_file;

        let dir = std::env::temp_dir().join(format!("issuer-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let pass = Passphrase::new("the server's passphrase").unwrap();
        let now = system_now().unwrap();
        let mut ring = Keyring::new(
            HostIssuerKeys::generate(Algorithm::EdDSA, Some("one"), &mut rng).unwrap(),
            now,
        );
        let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
        write_private_file(&path, text.as_bytes(), false).unwrap();
        let every = Duration::from_millis(20);
        let server = spawn(
            ServerConfig::from_key_file(&path, "127.0.0.1:0".parse().unwrap())
                .limits(ServerLimits::default().reload_interval(every))
                .key_file_passphrase(|| Ok(Passphrase::new("the server's passphrase").unwrap())),
        )
        .unwrap();
        let wait = |what: &str, cond: &dyn Fn() -> bool| {
            for _ in 0..500 {
                if cond() {
                    return;
                }
                std::thread::sleep(every);
            }
            panic!("{what} within 10 s");
        };

        // The same keys under a passphrase the server does not hold: refused once, and not
        // parsed again while the content stays the same (each try is a key derivation).
        let foreign = Passphrase::new("someone else's passphrase").unwrap();
        let text = to_encrypted_key_file(&ring, &foreign, &mut rng).unwrap();
        write_private_file(&path, text.as_bytes(), true).unwrap();
        wait("no reload error", &|| {
            server.keys().reload_error().is_some()
        });
        let parsed = PARSES.load(SeqCst);
        std::thread::sleep(every * 25);
        assert_eq!(
            PARSES.load(SeqCst),
            parsed,
            "the broken file was parsed again"
        );
        let err = server.keys().reload_error().unwrap();
        assert!(err.contains("wrong passphrase"), "{err}");

        // A rotation written under the right passphrase is picked up and clears the error.
        let key = HostIssuerKeys::generate(Algorithm::EdDSA, Some("two"), &mut rng).unwrap();
        let _ = ring.rotate(key, now).unwrap();
        let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
        write_private_file(&path, text.as_bytes(), true).unwrap();
        wait("no reload to kid two", &|| {
            server.keys().load().active().kid() == "two"
        });
        assert!(server.keys().reload_error().is_none());
        server.shutdown();
        let _ = std::fs::remove_dir_all(dir);
    }
}
