//! A host platform's web app with the JWKS mounted into it (`cargo run --example host_app`).
//!
//! The host app is an ordinary axum app with its own routes; one line mounts the key set:
//! `.merge(jwks_routes(keys.clone()))` (`/.well-known/jwks.json`, `/certs`, `/healthz`).
//! The app's own `POST /handoff` mints a host token for the user it has logged in, with
//! the same [`SharedKeyring`], and rotates keys at run time with `replace` (no restart,
//! no file). By default it then checks itself over loopback, as the receiving service
//! would (fetch the JWKS, verify the hand-off token with `handoff-verify`, see the next
//! key published ahead of its switch) and exits 0.
//!
//! Options (after `--`): `--port N` (default 0: any free port), `--serve` (after the
//! self-check, keep serving until Ctrl-C), `--help`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use examples::http;
use examples::{During, ExampleError, Narrator, expect, system_rng};
use handoff_core::{Jwks, JwksLimits};
use handoff_issuer::server::{JWKS_PATH, SharedKeyring, jwks_routes, system_now};
use handoff_issuer::{Algorithm, HostClaims, HostIssuerKeys, Keyring};
use handoff_verify::{HostTokenVerifier, NoCustomClaims};
use serde_json::{Value, json};

const ISSUER: &str = "https://host.example";
const SERVICE: &str = "https://service.example";

const USAGE: &str = "\
usage: cargo run --example host_app [-- [--port N] [--serve]]

  --port N   listen on 127.0.0.1:N (default 0: any free port)
  --serve    after the self-check, keep serving until Ctrl-C
  --help     this text";

/// The host app's own state: its keyring (shared with the mounted JWKS routes).
#[derive(Clone)]
struct AppState {
    keys: SharedKeyring,
}

#[derive(serde::Deserialize)]
struct HandoffQuery {
    user: String,
}

/// The host app's hand-off route: in a real app, `user` comes from the session cookie.
async fn handoff(State(app): State<AppState>, Query(q): Query<HandoffQuery>) -> Response {
    let now = match system_now() {
        Ok(n) => n,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let claims = HostClaims::new(ISSUER, SERVICE, q.user)
        .tenant("tenant-7")
        .ttl(120);
    match app.keys.load().mint(&claims, now, &mut system_rng()) {
        Ok(t) => axum::Json(json!({ "token": t.token(), "kid": t.kid() })).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The whole host app: its own routes plus the mounted JWKS routes.
fn host_app(keys: SharedKeyring) -> Router {
    Router::new()
        .route("/", get(|| async { "the host platform's home page" }))
        .route("/handoff", post(handoff))
        // Merged while the app's router still awaits its state; `jwks_router(keys)` is the
        // same routes as a finished `Router` (merge it after `.with_state(..)`).
        .merge(jwks_routes(keys.clone()))
        .with_state(AppState { keys })
}

/// The host app running on its own runtime thread.
struct Running {
    addr: SocketAddr,
    keys: SharedKeyring,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start(port: u16) -> Result<Running, ExampleError> {
    let step = "start the host app";
    let key = HostIssuerKeys::generate(Algorithm::EdDSA, Some("host-key-1"), &mut system_rng())
        .during(step)?;
    let keys = SharedKeyring::new(Keyring::new(key, system_now().during(step)?));
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = host_app(keys.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    Ok(Running {
        addr,
        keys,
        stop,
        thread,
    })
}

impl Running {
    fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn json_of(r: &http::Response, step: &str) -> Result<Value, ExampleError> {
    serde_json::from_slice(&r.body).map_err(|e| ExampleError::Unexpected {
        step: step.into(),
        expected: "a JSON body".into(),
        got: e.to_string(),
    })
}

fn fetch_jwks(addr: SocketAddr, step: &str) -> Result<(Jwks, Vec<String>, String), ExampleError> {
    let r = http::get(addr, JWKS_PATH)?;
    expect(r.status == 200, step, "HTTP 200")?;
    let cache = r.header("cache-control").unwrap_or("-").to_owned();
    let jwks = Jwks::parse(&r.body, &JwksLimits::default())
        .during(step)?
        .jwks;
    let kids = jwks
        .keys()
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect();
    Ok((jwks, kids, cache))
}

fn self_check<W: Write>(out: W, app: &Running) -> Result<W, ExampleError> {
    let addr = app.addr;
    let mut out = Narrator::new(
        out,
        "host_app: a host web app with the JWKS router mounted, checked over loopback",
    );
    let mut step = "the host app serves its own routes";
    out.step("host app", format!("{step} at http://{addr}"));
    let home = http::get(addr, "/")?;
    expect(home.status == 200, step, "HTTP 200 on /")?;
    out.ok(format!("GET / -> {:?}", home.text()?));

    step = "the mounted router publishes the key set";
    out.step("service", step);
    let (jwks, kids, cache) = fetch_jwks(addr, step)?;
    expect(kids == ["host-key-1"], step, "the one active key")?;
    let certs = http::get(addr, "/certs")?;
    expect(certs.status == 200, step, "/certs too")?;
    let health = json_of(&http::get(addr, "/healthz")?, step)?;
    expect(health["status"] == "ok", step, "/healthz ok")?;
    out.ok(format!(
        "kids {kids:?}, Cache-Control {cache}; /certs and /healthz answer"
    ));

    step = "a logged-in user is handed over with a host token";
    out.step("host app", step);
    let minted = http::request(addr, "POST", "/handoff?user=alice", None)?;
    expect(minted.status == 200, step, "HTTP 200")?;
    let token = json_of(&minted, step)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    out.ok("POST /handoff?user=alice -> a host+jwt for the service");

    step = "the service verifies it against the fetched JWKS";
    out.step("service", step);
    let verifier = HostTokenVerifier::builder(ISSUER, SERVICE)
        .build()
        .during(step)?;
    let now = system_now().during(step)?;
    let verified = verifier
        .verify::<NoCustomClaims, _>(&token, &jwks, now)
        .during(step)?;
    let host = verified.get_unconfirmed();
    expect(host.subject() == "alice", step, "sub alice")?;
    out.ok(format!(
        "EdDSA signature, iss, aud, typ host+jwt: sub {}, tenant {} (confirm the jti against a replay log next)",
        host.subject(),
        host.host_tenant_id()
    ));

    step = "the host rotates at run time: next key published first";
    out.step("host app", step);
    let mut ring = Keyring::from_key_file(&app.keys.load().to_key_file()).during(step)?;
    let next = HostIssuerKeys::generate(Algorithm::EdDSA, Some("host-key-2"), &mut system_rng())
        .during(step)?;
    let change = ring.publish_next(next, now).during(step)?;
    let _previous = app.keys.replace(ring);
    let (_, kids, _) = fetch_jwks(addr, step)?;
    expect(
        kids == ["host-key-1", "host-key-2"],
        step,
        "both keys published, the next one not signing yet",
    )?;
    out.ok(format!(
        "published {} without a restart; it signs after `activate_next`, once every verifier's cache (max-age) has it",
        change.published().unwrap_or("-")
    ));
    out.finish("the host app mounts the JWKS router and rotates keys without a restart")
}

fn main() -> ExitCode {
    let args = match examples::ServeArgs::parse(std::env::args().skip(1)) {
        Ok(a) if a.help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("host_app: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match start(args.port) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("host_app FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    match self_check(std::io::stdout().lock(), &app) {
        Ok(_) if args.serve => {
            println!(
                "\nserving until Ctrl-C: curl -s http://{}{JWKS_PATH}",
                app.addr
            );
            let _ = app.thread.join();
            ExitCode::SUCCESS
        }
        Ok(_) => {
            app.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("host_app FAILED: {e}");
            app.shutdown();
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_check_passes() {
        let app = start(0).unwrap();
        let out = String::from_utf8(self_check(Vec::new(), &app).unwrap()).unwrap();
        app.shutdown();
        assert!(out.contains("sub alice"), "{out}");
        assert!(
            out.contains("published host-key-2 without a restart"),
            "{out}"
        );
    }
}
