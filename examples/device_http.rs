//! A device gateway over loopback HTTP, in one command
//! (`cargo run --example device_http --features device_http`):
//!
//! 1. the gateway keeps its device registry (secrets sealed), its heartbeat sessions and
//!    its handshake nonces in one SQLite file (`handoff-stores`), and serves
//!    `handoff-edge`'s device routes on 127.0.0.1;
//! 2. an operator pairs and approves a device;
//! 3. the device (`handoff-edge`'s `DeviceClient`), whose clock runs 5 minutes late,
//!    handshakes (refused for the skew, corrected, signed again), heartbeats, and follows a
//!    token rotation;
//! 4. a captured handshake is replayed and refused; the operator suspends the device, whose
//!    next heartbeat is refused and whose session ends; resumed, it connects again;
//! 5. ended sessions are purged; the audit events, written as JSON lines, are checked to
//!    hold no token and no secret.
//!
//! Time on both sides is a shared manual clock advanced by hand (no sleeping).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use examples::{
    During, ExampleError, JsonLines, Narrator, check_json_lines, expect, remove_sqlite_file,
    scratch_sqlite_path, system_rng,
};
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::{
    DeviceCredentials, DeviceId, DeviceRecord, DeviceRegistry, DeviceSessionStore, Gateway,
    GatewayId, KeyId, OperatorId, SessionPolicy, body_hash,
};
use handoff_edge::device::{DeviceClient, DeviceEdge, HANDSHAKE_HEADER};
use handoff_edge::{Clock, EdgeError, ManualClock};
use handoff_stores::AeadSealer;
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("device_http FAILED: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let db = scratch_sqlite_path("device-http");
    let result = rt.block_on(run(std::io::stdout().lock(), &db));
    drop(rt);
    remove_sqlite_file(&db);
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device_http FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn refused_with(
    r: Result<impl std::fmt::Debug, EdgeError>,
    status: u16,
    step: &str,
) -> Result<String, ExampleError> {
    match r {
        Err(EdgeError::Refused {
            status: s,
            description,
            ..
        }) if s == status => Ok(description),
        other => Err(ExampleError::Unexpected {
            step: step.into(),
            expected: format!("refused with HTTP {status}"),
            got: format!("{other:?}"),
        }),
    }
}

#[allow(clippy::too_many_lines)] // one narrated story, step by step
async fn run<W: Write>(out: W, db: &Path) -> Result<W, ExampleError> {
    let mut n = Narrator::new(out, "a device gateway over loopback HTTP (SQLite stores)");
    let mut rng = system_rng();
    let start = UnixTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1_800_000_000, |d| d.as_secs()),
    );
    let clock = Arc::new(ManualClock::new(start));

    // 1. The gateway and its stores.
    let store = SqliteStore::open(db, SqliteConfig::default()).during("open the SQLite file")?;
    let mut kek = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng, &mut kek);
    let registry = Arc::new(store.device_registry(AeadSealer::new(kek)));
    let sessions = Arc::new(store.device_session_store());
    let gateway_id = GatewayId::new("gw-eu-1").during("gateway id")?;
    let gateway = Gateway::builder(gateway_id.clone(), start, HmacSecret::generate(&mut rng))
        .session_policy(SessionPolicy {
            idle_timeout: 180,
            max_lifetime: 86_400,
            rotate_after: 300,
            overlap: 30,
        })
        .build()
        .during("build the gateway")?;
    let audit = Arc::new(Mutex::new(JsonLines::new(Vec::new())));
    let sink = Arc::clone(&audit);
    let edge = DeviceEdge::builder(
        gateway,
        Arc::clone(&registry) as Arc<dyn DeviceRegistry>,
        Arc::clone(&sessions) as Arc<dyn DeviceSessionStore>,
        Arc::new(store.replay_log()),
    )
    .clock(Arc::clone(&clock) as Arc<dyn Clock>)
    .audit(move |event| {
        if let Ok(mut log) = sink.lock() {
            let _ = log.write(&event);
        }
    })
    .build()
    .during("build the device routes")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = edge.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    n.step(
        "gateway",
        format!("device routes on {base}, stores in {}", db.display()),
    );

    // 2. Pairing and approval.
    let secret = HmacSecret::generate(&mut rng);
    let (device_id, key_id) = (
        DeviceId::new("meter-7").during("device id")?,
        KeyId::new("k1").during("key id")?,
    );
    let request = DeviceRecord::request_pairing(
        device_id.clone(),
        key_id.clone(),
        secret.clone(),
        start,
        3_600,
    );
    registry
        .insert(&request.record)
        .during("store the pairing request")?;
    let operator = OperatorId::new("alice").during("operator id")?;
    let _ = request
        .record
        .approve(&operator, start)
        .during("approve")?
        .commit(&*registry)
        .during("commit the approval")?;
    n.step("operator", "paired and approved meter-7");

    // 3. The device: its clock runs 300 s late.
    let device_clock = Arc::new(ManualClock::new(start.saturating_sub(300)));
    let creds = DeviceCredentials::new(device_id.clone(), key_id, secret.clone());
    let client = DeviceClient::new(&base, gateway_id.clone(), creds.clone())
        .during("device client")?
        .clock(Arc::clone(&device_clock) as Arc<dyn Clock>);
    let expires = client
        .connect(br#"{"firmware":"4.2.0"}"#)
        .await
        .during("handshake")?;
    expect(
        client.clock_offset() == 300,
        "clock correction",
        "an offset of 300 s",
    )?;
    n.step(
        "device",
        format!(
            "handshake: refused for a clock 300 s late, corrected, signed again; session until +{} s",
            expires.secs_since(start)
        ),
    );
    let first = client.session_token().unwrap_or_default();

    for _ in 0..2 {
        clock.advance(150);
        device_clock.advance(150);
        let beat = client.heartbeat().await.during("heartbeat")?;
        n.step(
            "device",
            format!(
                "heartbeat at +{} s: {}",
                clock.now().secs_since(start),
                if beat.rotated {
                    "token rotated"
                } else {
                    "extended"
                }
            ),
        );
    }
    let second = client.session_token().unwrap_or_default();
    expect(
        !second.is_empty() && second != first,
        "rotation",
        "a successor token after 300 s",
    )?;

    // 4. A captured handshake, replayed.
    let http = reqwest::Client::new();
    let wire = creds
        .handshake(&gateway_id, clock.now(), body_hash(b""), &mut rng)
        .to_wire();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(format!("{base}/device/handshake"))
            .header(HANDSHAKE_HEADER, &wire)
            .send()
            .await
            .map_err(|e| ExampleError::Http(e.to_string()))?;
        statuses.push(r.status().as_u16());
    }
    expect(statuses == [200, 401], "replayed handshake", "200 then 401")?;
    n.refused("a captured handshake replayed", "nonce already used (401)");

    // The operator suspends the device: its next heartbeat ends the session.
    let record = registry
        .load(&device_id)
        .during("load the device")?
        .ok_or_else(|| ExampleError::Http("the device vanished".into()))?;
    let _ = record
        .suspend(&operator, clock.now())
        .during("suspend")?
        .commit(&*registry)
        .during("commit the suspension")?;
    clock.advance(10);
    device_clock.advance(10);
    let why = refused_with(
        client.heartbeat().await,
        401,
        "heartbeat of a suspended device",
    )?;
    expect(
        !client.has_session(),
        "suspension",
        "the client dropped its session",
    )?;
    n.refused("heartbeat of the suspended device", why);
    let _ = refused_with(
        client.connect(b"").await,
        401,
        "handshake of a suspended device",
    )?;

    let record = registry
        .load(&device_id)
        .during("load the device")?
        .ok_or_else(|| ExampleError::Http("the device vanished".into()))?;
    let _ = record
        .resume(&operator, clock.now())
        .during("resume")?
        .commit(&*registry)
        .during("commit the resumption")?;
    client
        .connect(b"")
        .await
        .during("handshake after resumption")?;
    n.step("device", "resumed by the operator: connected again");

    // 5. Purge ended sessions (the revoked one, and the ones that idle out).
    clock.advance(3_600);
    let purged = DeviceSessionStore::purge_expired(&*sessions, clock.now(), 100)
        .during("purge ended sessions")?;
    expect(purged == 3, "purge", "3 ended sessions deleted")?;
    n.step("gateway", format!("purged {purged} ended sessions"));

    server.abort();
    let log = {
        let mut held = audit
            .lock()
            .map_err(|_| ExampleError::Http("the audit sink was poisoned".into()))?;
        std::mem::replace(&mut *held, JsonLines::new(Vec::new()))
    }
    .finish()?;
    let text = String::from_utf8_lossy(&log).into_owned();
    let secret_b64 = handoff_core::b64::encode(secret.expose_secret());
    let events = check_json_lines(&text, &[&first, &second, &secret_b64, &wire])?;
    n.info(format!(
        "{} audit events, none holding a token, a secret or a handshake: {}",
        events.len(),
        events.join(", ")
    ));
    n.finish("the device life cycle ran over HTTP against the SQLite stores")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_device_life_cycle_runs_over_http() {
        let db = scratch_sqlite_path("device-http-test");
        let out = String::from_utf8(run(Vec::new(), &db).await.unwrap()).unwrap();
        remove_sqlite_file(&db);
        assert!(out.contains("token rotated"), "{out}");
        assert!(out.contains("connected again"), "{out}");
        assert!(out.contains("session_revoked"), "{out}");
    }
}
