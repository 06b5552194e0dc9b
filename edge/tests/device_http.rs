#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The device routes on a real loopback server, driven over HTTP with reqwest: handshake,
//! heartbeats, rotation, every refusal's status and body, the audit events, and
//! concurrent heartbeats at rotation time.

use std::sync::{Arc, Mutex};

use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::{
    AuditEvent, DeviceCredentials, DeviceError, DeviceId, DeviceRecord, DeviceRegistry,
    DeviceSession, DeviceSessionStore, Gateway, GatewayId, InMemoryDeviceRegistry,
    InMemoryDeviceSessionStore, KeyId, OperatorId, SessionEndReason, SessionId, SessionPolicy,
    body_hash,
};
use handoff_edge::ManualClock;
use handoff_edge::device::{DeviceEdge, HANDSHAKE_HEADER};
use serde_json::Value;

const BOOT: u64 = 1_800_000_000;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

struct Fixture {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    gateway_id: GatewayId,
    registry: Arc<InMemoryDeviceRegistry>,
    creds: DeviceCredentials,
    secret: HmacSecret,
    audit: Arc<Mutex<Vec<AuditEvent>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// Idle 180 s, absolute 3 600 s, rotate after 300 s, overlap 30 s; 3 nonces per device.
async fn start_with(sessions: Arc<dyn DeviceSessionStore>) -> Fixture {
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(BOOT)));
    let gateway_id = GatewayId::new("gw-http").unwrap();
    let gateway = Gateway::builder(
        gateway_id.clone(),
        UnixTime::from_secs(BOOT),
        HmacSecret::generate(&mut rng()),
    )
    .session_policy(SessionPolicy {
        idle_timeout: 180,
        max_lifetime: 3_600,
        rotate_after: 300,
        overlap: 30,
    })
    .nonce_quota(3, 100)
    .build()
    .unwrap();
    let registry = Arc::new(InMemoryDeviceRegistry::new(10));
    let secret = HmacSecret::generate(&mut rng());
    let (d, k) = (DeviceId::new("meter-7").unwrap(), KeyId::new("k1").unwrap());
    let now = UnixTime::from_secs(BOOT);
    let req = DeviceRecord::request_pairing(d.clone(), k.clone(), secret.clone(), now, 600);
    registry.insert(&req.record).unwrap();
    let _ = req
        .record
        .approve(&OperatorId::new("alice").unwrap(), now)
        .unwrap()
        .commit(&*registry)
        .unwrap();
    let audit = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&audit);
    let edge = DeviceEdge::builder(
        gateway,
        Arc::clone(&registry) as Arc<dyn DeviceRegistry>,
        sessions,
        Arc::new(InMemoryReplayLog::new(1_000)),
    )
    .clock(Arc::clone(&clock) as Arc<dyn handoff_edge::Clock>)
    .max_body_bytes(1024)
    .audit(move |e| sink.lock().unwrap().push(e))
    .build()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = edge.router();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        base,
        http: reqwest::Client::new(),
        clock,
        gateway_id,
        registry,
        creds: DeviceCredentials::new(d, k, secret.clone()),
        secret,
        audit,
        _task: task,
    }
}

async fn start() -> Fixture {
    start_with(Arc::new(InMemoryDeviceSessionStore::new(100))).await
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn answer(r: reqwest::RequestBuilder) -> Answer {
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

impl Fixture {
    fn now(&self) -> UnixTime {
        handoff_edge::Clock::now(&*self.clock)
    }

    fn wire(&self, body: &[u8], at: UnixTime) -> String {
        self.creds
            .handshake(&self.gateway_id, at, body_hash(body), &mut rng())
            .to_wire()
    }

    async fn handshake_raw(&self, wire: &str, body: &[u8]) -> Answer {
        answer(
            self.http
                .post(format!("{}/device/handshake", self.base))
                .header(HANDSHAKE_HEADER, wire)
                .body(body.to_vec()),
        )
        .await
    }

    /// A successful handshake: the session token.
    async fn connect(&self) -> String {
        let body = br#"{"firmware":"4.2.0"}"#;
        let a = self.handshake_raw(&self.wire(body, self.now()), body).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.headers["cache-control"], "no-store");
        assert_eq!(a.body["token_type"], "DeviceSession");
        assert_eq!(
            a.body["expires_at"].as_u64(),
            Some(self.now().as_secs() + 180)
        );
        a.body["session_token"].as_str().unwrap().to_owned()
    }

    async fn beat(&self, token: &str) -> Answer {
        answer(
            self.http
                .post(format!("{}/device/heartbeat", self.base))
                .bearer_auth(token),
        )
        .await
    }

    fn audit_names(&self) -> Vec<&'static str> {
        self.audit
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name())
            .collect()
    }
}

#[tokio::test]
async fn a_device_connects_heartbeats_and_gets_its_token_rotated_over_http() {
    let f = start().await;
    let first = f.connect().await;
    assert!(first.starts_with("dvs1."));
    assert_eq!(f.audit_names(), ["handshake_ok", "session_issued"]);

    f.clock.advance(60);
    let a = f.beat(&first).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["expires_at"].as_u64(), Some(BOOT + 60 + 180));
    assert!(a.body.get("session_token").is_none());

    f.clock.advance(120);
    assert_eq!(f.beat(&first).await.status, 200);
    f.clock.advance(120); // t = 300: rotation
    let a = f.beat(&first).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let second = a.body["session_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // A retry with the previous token inside the overlap gets the same successor.
    f.clock.advance(10);
    let a = f.beat(&first).await;
    assert_eq!(a.body["session_token"].as_str(), Some(second.as_str()));
    assert_eq!(f.beat(&second).await.status, 200);

    // After the overlap, the previous token revokes the session.
    f.clock.advance(60);
    let a = f.beat(&first).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["error"], "unauthorized");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("stale device session token"),
        "{:?}",
        a.body
    );
    let challenge = a.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(f.beat(&second).await.status, 401);
    assert!(f.audit_names().contains(&"session_revoked"));
}

#[tokio::test]
async fn handshake_refusals_have_precise_statuses_and_bodies() {
    let f = start().await;
    let body = b"reading=17";
    let wire = f.wire(body, f.now());
    assert_eq!(f.handshake_raw(&wire, body).await.status, 200);

    // Replayed message.
    let a = f.handshake_raw(&wire, body).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("nonce already used")
    );

    // The message covers another body.
    let a = f.handshake_raw(&f.wire(body, f.now()), b"reading=18").await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("covers another body")
    );

    // Clock skew: the server time comes back so the device can correct its clock.
    let early = UnixTime::from_secs(BOOT - 1_000);
    let a = f.handshake_raw(&f.wire(b"", early), b"").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["server_time"].as_u64(), Some(BOOT));

    // An unknown device reads as any other authentication failure.
    let stranger = DeviceCredentials::new(
        DeviceId::new("stranger").unwrap(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng()),
    );
    let wire = stranger
        .handshake(&f.gateway_id, f.now(), body_hash(b""), &mut rng())
        .to_wire();
    let a = f.handshake_raw(&wire, b"").await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("device not authorized")
    );

    // Malformed requests.
    let a = answer(f.http.post(format!("{}/device/handshake", f.base))).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("no Device-Handshake header")
    );
    let a = answer(
        f.http
            .post(format!("{}/device/handshake", f.base))
            .header(HANDSHAKE_HEADER, "dvh1.x")
            .header(HANDSHAKE_HEADER, "dvh1.y"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("more than one")
    );
    let a = f.handshake_raw("dvh1.not-a-message", b"").await;
    assert_eq!(a.status, 400);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("malformed handshake")
    );

    // Over the body cap (1 KiB here): refused before the gateway is asked.
    let big = vec![b'x'; 2048];
    let a = f.handshake_raw(&f.wire(&big, f.now()), &big).await;
    assert_eq!(a.status, 413);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("at most 1024 bytes")
    );

    // The device's share of nonces is 3 here, one already reserved by the first
    // handshake (refusals before the reservation reserve nothing): two more pass, then
    // 429 until the oldest reservation has expired (it is held through timestamp + the
    // 120 s skew window inclusive, so the retry is 121 s away).
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let a = f.handshake_raw(&f.wire(b"", f.now()), b"").await;
        if a.status == 429 {
            assert_eq!(a.body["error"], "slow_down");
            assert_eq!(a.headers["retry-after"], "121");
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
}

#[tokio::test]
async fn heartbeat_refusals_carry_bearer_challenges() {
    let f = start().await;
    let token = f.connect().await;

    let a = answer(f.http.post(format!("{}/device/heartbeat", f.base))).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.headers["www-authenticate"], "Bearer");

    let a = f.beat("dvs1.short").await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("malformed device session token")
    );

    // Same session id, a secret the gateway never issued: refused, the session lives on.
    let (head, tail) = token.split_at(token.len() - 2);
    let forged = format!("{head}{}", if tail == "AA" { "AB" } else { "AA" });
    let a = f.beat(&forged).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("not recognised")
    );
    assert_eq!(f.beat(&token).await.status, 200);

    // Expired after the idle timeout.
    f.clock.advance(181);
    let a = f.beat(&token).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn an_operator_revocation_ends_the_session_and_audit_holds_no_secret() {
    let f = start().await;
    let token = f.connect().await;
    let device = f.registry.load(f.creds.device_id()).unwrap().unwrap();
    let _ = device
        .revoke(&OperatorId::new("bob").unwrap(), f.now())
        .unwrap()
        .commit(&*f.registry)
        .unwrap();
    f.clock.advance(5);
    let a = f.beat(&token).await;
    assert_eq!(a.status, 401);
    let events = f.audit.lock().unwrap().clone();
    assert!(events.iter().any(|e| matches!(
        e,
        AuditEvent::SessionRevoked {
            reason: SessionEndReason::DeviceNotApproved,
            ..
        }
    )));
    let secret_b64 = handoff_core::b64::encode(f.secret.expose_secret());
    let token_secret = token.rsplit('.').next().unwrap();
    for e in &events {
        let json = serde_json::to_string(e).unwrap();
        assert!(
            !json.contains(&token) && !json.contains(token_secret),
            "{json}"
        );
        assert!(!json.contains(&secret_b64), "{json}");
    }
}

/// A session store that cannot take writes.
struct Full;

impl DeviceSessionStore for Full {
    fn load(&self, _: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        Ok(None)
    }
    fn insert(&self, _: &DeviceSession) -> Result<(), DeviceError> {
        Err(DeviceError::SessionStoreUnavailable("disk full".into()))
    }
    fn compare_and_set(&self, _: u64, _: &DeviceSession) -> Result<(), DeviceError> {
        Err(DeviceError::VersionConflict)
    }
    fn purge_expired(&self, _: UnixTime, _: usize) -> Result<usize, DeviceError> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_failing_session_store_answers_503_with_retry_after() {
    let f = start_with(Arc::new(Full)).await;
    let a = f.handshake_raw(&f.wire(b"", f.now()), b"").await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert_eq!(a.headers["retry-after"], "1");
    // No session was stored: no issued-session audit event either.
    assert!(!f.audit_names().contains(&"session_issued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_heartbeats_at_rotation_share_one_successor() {
    let f = Arc::new(start().await);
    let token = f.connect().await;
    for _ in 0..2 {
        f.clock.advance(150);
        assert_eq!(f.beat(&token).await.status, 200);
    }
    assert_eq!(f.now().as_secs(), BOOT + 300);
    let beats = (0..8).map(|_| {
        let (f, token) = (Arc::clone(&f), token.clone());
        tokio::spawn(async move { f.beat(&token).await })
    });
    let mut successors = Vec::new();
    for b in beats {
        let a = b.await.unwrap();
        match a.status {
            200 => successors.push(a.body["session_token"].as_str().unwrap().to_owned()),
            503 => assert_eq!(a.body["error"], "temporarily_unavailable"),
            other => panic!("unexpected {other}: {:?}", a.body),
        }
    }
    assert!(!successors.is_empty());
    assert!(
        successors.iter().all(|s| s == &successors[0]),
        "{successors:?}"
    );
    assert_eq!(f.beat(&successors[0]).await.status, 200);
}

#[tokio::test]
async fn the_device_client_connects_heartbeats_follows_rotation_and_corrects_its_clock() {
    use handoff_edge::EdgeError;
    use handoff_edge::device::DeviceClient;

    let f = start().await;
    // The device's clock runs 1 000 s behind the gateway's: the first handshake is
    // refused for skew, the client adopts the gateway's time and signs again.
    let device_clock = Arc::new(ManualClock::new(UnixTime::from_secs(BOOT - 1_000)));
    let client = DeviceClient::new(&f.base, f.gateway_id.clone(), f.creds.clone())
        .unwrap()
        .clock(Arc::clone(&device_clock) as Arc<dyn handoff_edge::Clock>);
    assert!(!client.has_session());
    let expires = client.connect(b"hello").await.unwrap();
    assert_eq!(expires, UnixTime::from_secs(BOOT + 180));
    assert_eq!(client.clock_offset(), 1_000);
    let first = client.session_token().unwrap();

    f.clock.advance(150);
    let beat = client.heartbeat().await.unwrap();
    assert!(!beat.rotated);
    assert_eq!(client.session_token().unwrap(), first);
    f.clock.advance(150); // t = 300: rotation
    let beat = client.heartbeat().await.unwrap();
    assert!(beat.rotated);
    let second = client.session_token().unwrap();
    assert_ne!(second, first);
    assert_eq!(
        f.beat(&second).await.status,
        200,
        "the client holds the successor"
    );

    // The operator revokes the device: the next heartbeat is refused and drops the session.
    let device = f.registry.load(f.creds.device_id()).unwrap().unwrap();
    let _ = device
        .revoke(&OperatorId::new("bob").unwrap(), f.now())
        .unwrap()
        .commit(&*f.registry)
        .unwrap();
    match client.heartbeat().await {
        Err(EdgeError::Refused { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (401, "unauthorized"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!client.has_session());
    assert!(matches!(
        client.heartbeat().await,
        Err(EdgeError::Config(_))
    ));
    // And the handshake is refused too (the device is revoked).
    assert!(matches!(
        client.connect(b"").await,
        Err(EdgeError::Refused { status: 401, .. })
    ));
}

#[tokio::test]
async fn the_device_client_refuses_a_clock_correction_over_a_day() {
    use handoff_edge::EdgeError;
    use handoff_edge::device::DeviceClient;

    let f = start().await;
    let device_clock = Arc::new(ManualClock::new(UnixTime::from_secs(BOOT - 2 * 86_400)));
    let client = DeviceClient::new(&f.base, f.gateway_id.clone(), f.creds.clone())
        .unwrap()
        .clock(device_clock as Arc<dyn handoff_edge::Clock>);
    match client.connect(b"").await {
        Err(EdgeError::Refused {
            status: 401,
            server_time,
            ..
        }) => assert_eq!(server_time, Some(UnixTime::from_secs(BOOT))),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.clock_offset(), 0);
    assert!(!client.has_session());
    assert!(DeviceClient::new("ftp://x", f.gateway_id.clone(), f.creds.clone()).is_err());
}
