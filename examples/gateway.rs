//! The host handoff over loopback HTTP, in one command (`cargo run --example gateway`):
//!
//! 1. the host's JWKS server (`host-issuer`'s server) publishes the host's public keys;
//! 2. the token service and API (`handoff-edge`'s reference token service on axum) fetch
//!    them over HTTP through a `RemoteJwks`;
//! 3. a Rust client (reqwest + `handoff-dpop`'s client) discovers the service (RFC 8414),
//!    trades the host JWT for a DPoP-bound access token (RFC 7523 jwt-bearer, RFC 9449,
//!    with the `use_dpop_nonce` retry), calls the API, refreshes, and sees a stolen
//!    refresh token refused and a replayed one revoke the whole family.
//!
//! Every arrow is a real HTTP request on 127.0.0.1 with ephemeral ports.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::process::ExitCode;

use examples::{
    During, ExampleError, Narrator, expect, remove_sqlite_file, scratch_sqlite_path, system_rng,
};
use handoff_dpop::DpopKey;
use handoff_edge::token_service::{JWT_BEARER, TokenService};
use handoff_edge::{ClientResponse, DpopClient, RemoteJwks};
use handoff_issuer::server::ServerConfig;
use handoff_issuer::{Algorithm, HostClaims, HostIssuerKeys, Keyring};
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};
use std::path::PathBuf;
use std::sync::Arc;

const HOST: &str = "https://host.example";

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway FAILED: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (db, scratch) = database_path();
    let result = rt.block_on(run(std::io::stdout().lock(), &db));
    drop(rt);
    if scratch {
        // The fresh file of this run only: leave nothing behind in the temporary directory.
        remove_sqlite_file(&db);
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--db PATH` from the command line (kept), or a new file in the temporary directory
/// (`true`: removed with its WAL files when the run ends).
fn database_path() -> (PathBuf, bool) {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--db"
            && let Some(p) = args.next()
        {
            return (PathBuf::from(p), false);
        }
    }
    (scratch_sqlite_path("gateway"), true)
}

/// `POST /token` with `grant_type=refresh_token` (RFC 6749 section 6), DPoP-signed by `client`.
async fn refresh(
    client: &DpopClient,
    token_endpoint: &str,
    refresh_token: &str,
) -> Result<ClientResponse, handoff_edge::EdgeError> {
    client
        .post_form(
            token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
}

fn short(token: &str) -> String {
    let head: String = token.chars().take(12).collect();
    format!("{head}... ({} chars)", token.len())
}

fn field(r: &ClientResponse, name: &str) -> String {
    r.json()
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn status(r: &ClientResponse, want: u16, step: &str) -> Result<(), ExampleError> {
    if r.status == want {
        Ok(())
    } else {
        Err(ExampleError::Unexpected {
            step: step.into(),
            expected: format!("HTTP {want}"),
            got: format!(
                "HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        })
    }
}

async fn run<W: Write>(out: W, db: &std::path::Path) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(
        out,
        "gateway: the host handoff over loopback HTTP (host JWKS server, token service + API, Rust client)",
    );

    // ------------------------------------------------------------------ host
    let mut step = "start the host's JWKS server";
    out.step("host", step);
    let now = handoff_edge::Clock::now(&handoff_edge::SystemClock);
    let key =
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("host-2026-11"), &mut rng).during(step)?;
    let keyring = Keyring::new(key, now);
    // The host app keeps its own copy to mint with; the server publishes the public half.
    let minting = Keyring::from_key_file(&keyring.to_key_file()).during(step)?;
    let bind = "127.0.0.1:0"
        .parse()
        .map_err(|_| ExampleError::Usage("bad bind address".into()))?;
    // host-issuer's own hardened server (axum router, timeouts, caps, graceful shutdown).
    let host_server = ServerConfig::with_keyring(keyring, bind)
        .bind()
        .await
        .during(step)?;
    let jwks_url = format!("http://{}/.well-known/jwks.json", host_server.local_addr());
    let (stop_host, host_stopped) = tokio::sync::oneshot::channel::<()>();
    let host_task = tokio::spawn(host_server.serve(async {
        let _ = host_stopped.await;
    }));
    out.ok(format!("GET {jwks_url} serves the host's public keys"));

    // ------------------------------------------------------------------ token service + API
    step = "start the token service and API";
    out.step("service", step);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .during(step)?;
    let issuer = format!("http://{}", listener.local_addr().during(step)?);
    let host_keys = RemoteJwks::builder(&jwks_url)
        .build_and_fetch()
        .await
        .during(step)?;
    out.info(format!(
        "fetched the host's JWKS over HTTP: kids {:?}",
        host_keys.kids()
    ));
    // The embedded store (SQLite, WAL, one file shared by the processes of one machine) keeps
    // refresh families and one-time values across restarts: `--db PATH` names the file,
    // otherwise a fresh one in the temporary directory, removed when the run ends.
    let sqlite = SqliteStore::open(db, SqliteConfig::default()).during(step)?;
    let service = TokenService::builder(&issuer, HOST, host_keys.clone())
        .family_store(Arc::new(sqlite.family_store()))
        .replay_log(Arc::new(sqlite.replay_log()))
        .build()
        .during(step)?;
    let app = service.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    out.ok(format!(
        "{issuer}: /.well-known/oauth-authorization-server, /token, /jwks.json, /api/me (SQLite store: {})",
        db.display()
    ));

    // ------------------------------------------------------------------ host mints
    step = "mint a host JWT for the logged-in user";
    out.step("host", step);
    let claims = HostClaims::new(HOST, &issuer, "user-42")
        .tenant("tenant-7")
        .ttl(120);
    let host_jwt = minting.mint(&claims, now, &mut rng).during(step)?;
    out.ok(format!(
        "host+jwt kid {}, aud {issuer}: {}",
        host_jwt.kid(),
        short(host_jwt.token())
    ));

    // ------------------------------------------------------------------ client
    step = "discover the token service (RFC 8414)";
    out.step("client", step);
    let meta_url = format!("{issuer}/.well-known/oauth-authorization-server");
    let meta: serde_json::Value = reqwest::get(&meta_url)
        .await
        .map_err(|e| ExampleError::Http(e.to_string()))?
        .json()
        .await
        .map_err(|e| ExampleError::Http(e.to_string()))?;
    let token_endpoint = meta["token_endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    expect(
        token_endpoint == format!("{issuer}/token"),
        step,
        "the token endpoint",
    )?;
    out.ok(format!(
        "token_endpoint {token_endpoint}, DPoP algs {}",
        meta["dpop_signing_alg_values_supported"]
    ));

    step = "trade the host JWT for a DPoP-bound token (jwt-bearer grant)";
    out.step("client", step);
    let client = DpopClient::new(DpopKey::generate(Algorithm::ES256, &mut rng).during(step)?)
        .during(step)?;
    let form = [
        ("grant_type", JWT_BEARER),
        ("assertion", host_jwt.token()),
        ("client_id", "web-app"),
    ];
    let r = client
        .post_form(&token_endpoint, &form)
        .await
        .during(step)?;
    status(&r, 200, step)?;
    expect(field(&r, "token_type") == "DPoP", step, "token_type DPoP")?;
    let access = field(&r, "access_token");
    let refresh1 = field(&r, "refresh_token");
    expect(
        client.nonce_retries() == 1,
        step,
        "one use_dpop_nonce retry",
    )?;
    out.info("the first attempt met use_dpop_nonce; the client retried with the DPoP-Nonce");
    out.ok(format!(
        "token_type DPoP (cnf.jkt {}), access {}, refresh {}",
        client.jkt(),
        short(&access),
        short(&refresh1)
    ));

    step = "replay the handoff";
    out.step("attacker", step);
    let r = client
        .post_form(&token_endpoint, &form)
        .await
        .during(step)?;
    status(&r, 400, step)?;
    out.refused("the host JWT is one-time", field(&r, "error_description"));

    step = "call the API";
    out.step("client", step);
    let me_url = format!("{issuer}/api/me");
    let r = client.get(&me_url, &access).await.during(step)?;
    status(&r, 200, step)?;
    expect(field(&r, "sub") == "user-42", step, "sub user-42")?;
    expect(field(&r, "tenant") == "tenant-7", step, "tenant tenant-7")?;
    out.ok(format!(
        "GET {me_url}: {}",
        String::from_utf8_lossy(&r.body)
    ));

    step = "refresh";
    out.step("client", step);
    let r = refresh(&client, &token_endpoint, &refresh1)
        .await
        .during(step)?;
    status(&r, 200, step)?;
    let refresh2 = field(&r, "refresh_token");
    expect(refresh2 != refresh1, step, "a rotated refresh token")?;
    out.ok(format!("rotated: refresh {}", short(&refresh2)));

    step = "present the stolen current refresh token with another DPoP key";
    out.step("attacker", step);
    let thief = DpopClient::new(DpopKey::generate(Algorithm::ES256, &mut rng).during(step)?)
        .during(step)?;
    let r = refresh(&thief, &token_endpoint, &refresh2)
        .await
        .during(step)?;
    status(&r, 400, step)?;
    out.refused(
        "bound to the client's key (RFC 9449 section 5); the family stays live",
        field(&r, "error_description"),
    );

    step = "replay the old refresh token";
    out.step("attacker", step);
    let r = refresh(&client, &token_endpoint, &refresh1)
        .await
        .during(step)?;
    status(&r, 400, step)?;
    out.refused(
        "reuse detected: the family is revoked",
        field(&r, "error_description"),
    );

    step = "the family's tokens are dead";
    out.step("client", step);
    let r = refresh(&client, &token_endpoint, &refresh2)
        .await
        .during(step)?;
    status(&r, 400, step)?;
    out.refused("the current refresh token", field(&r, "error_description"));
    let r = client.get(&me_url, &access).await.during(step)?;
    status(&r, 401, step)?;
    out.refused(
        "the first access token at the API",
        r.header("www-authenticate").unwrap_or_default(),
    );

    server.abort();
    let _ = stop_host.send(());
    let _ = host_task.await;
    out.finish("every outcome as expected, over HTTP")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_handoff_runs_over_http() {
        let dir = std::env::temp_dir().join(format!("gateway-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("gateway.sqlite3");
        let out = String::from_utf8(run(Vec::new(), &db).await.unwrap()).unwrap();
        // the families and one-time values went to the SQLite file named on the command line
        assert!(std::fs::metadata(&db).unwrap().len() > 0);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.contains("fetched the host's JWKS over HTTP"), "{out}");
        assert!(out.contains("\"sub\":\"user-42\""), "{out}");
        assert!(out.contains("reuse detected"), "{out}");
    }
}
