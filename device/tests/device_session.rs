#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Device sessions: heartbeats extend the idle expiry only, tokens rotate with an
//! overlap, stale tokens revoke the session. Fake clock: plain `UnixTime` values.

use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::*;
use rand_core::UnwrapErr;

const BOOT: u64 = 1_700_000_000;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(BOOT + s)
}

fn op() -> OperatorId {
    OperatorId::new("alice").unwrap()
}

struct Fixture {
    gateway: Gateway,
    registry: InMemoryDeviceRegistry,
    device: DeviceRecord,
}

/// Policy: idle 180 s, absolute 1 000 s, rotate after 300 s, overlap 30 s.
fn policy() -> SessionPolicy {
    SessionPolicy {
        idle_timeout: 180,
        max_lifetime: 1_000,
        rotate_after: 300,
        overlap: 30,
    }
}

/// An approved device and a session issued at t(0) through a real handshake.
fn setup() -> (Fixture, IssuedSession) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let gateway = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .session_policy(policy())
    .build()
    .unwrap();
    let registry = InMemoryDeviceRegistry::new(10);
    let secret = HmacSecret::generate(&mut rng);
    let (d, k) = (DeviceId::new("dev-1").unwrap(), KeyId::new("k1").unwrap());
    let req = DeviceRecord::request_pairing(d.clone(), k.clone(), secret.clone(), t(0), 60);
    registry.insert(&req.record).unwrap();
    let _ = req
        .record
        .approve(&op(), t(0))
        .unwrap()
        .commit(&registry)
        .unwrap();
    let creds = DeviceCredentials::new(d.clone(), k, secret);
    let wire = creds
        .handshake(gateway.gateway_id(), t(0), body_hash(b""), &mut rng)
        .to_wire();
    let nonces = InMemoryReplayLog::new(100);
    let issued = gateway
        .handshake(wire.as_bytes(), b"", &registry, &nonces, t(0), &mut rng)
        .unwrap();
    let device = registry.load(&d).unwrap().unwrap();
    (
        Fixture {
            gateway,
            registry,
            device,
        },
        issued,
    )
}

fn tok(s: &SessionToken) -> PresentedToken {
    PresentedToken::parse(s.expose()).unwrap()
}

impl Fixture {
    fn beat(&self, s: &DeviceSession, token: &SessionToken, now: UnixTime) -> HeartbeatDecision {
        self.gateway.heartbeat(s, &self.device, &tok(token), now)
    }
}

/// Keeps a session alive: one heartbeat with the current token, whatever it decides.
fn keep_alive(f: &Fixture, s: DeviceSession, token: &SessionToken, now: UnixTime) -> DeviceSession {
    match f.beat(&s, token, now) {
        HeartbeatDecision::Extended { update } => update.session,
        other => panic!("expected Extended at {now:?}, got {other:?}"),
    }
}

fn extended(d: HeartbeatDecision) -> SessionUpdate {
    match d {
        HeartbeatDecision::Extended { update } => update,
        other => panic!("expected Extended, got {other:?}"),
    }
}

fn rotated(d: HeartbeatDecision) -> (SessionUpdate, SessionToken) {
    match d {
        HeartbeatDecision::Rotated { update, token } => (update, token),
        other => panic!("expected Rotated, got {other:?}"),
    }
}

fn refused(d: HeartbeatDecision) -> (DeviceError, Option<SessionUpdate>, AuditEvent) {
    match d {
        HeartbeatDecision::Refused {
            error,
            update,
            audit,
        } => (error, update, audit),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn heartbeat_extends_the_idle_expiry_only() {
    let (f, issued) = setup();
    let s0 = issued.session;
    assert_eq!(s0.expires_at(), t(180));
    let u = extended(f.beat(&s0, &issued.token, t(100)));
    assert_eq!(u.expected_version, s0.version);
    assert_eq!(u.session.version, s0.version + 1);
    assert_eq!(u.session.last_seen, t(100));
    assert_eq!(u.session.expires_at(), t(280));
    assert_eq!(u.session.created_at, s0.created_at);
    assert_eq!(u.session.current_hash, s0.current_hash);
    assert!(
        matches!(u.audit, AuditEvent::SessionExtended { expires_at, .. } if expires_at == t(280))
    );
}

#[test]
fn idle_timeout_ends_a_silent_session() {
    let (f, issued) = setup();
    // Valid strictly before last_seen + idle.
    let _ = extended(f.beat(&issued.session, &issued.token, t(179)));
    let (err, update, audit) = refused(f.beat(&issued.session, &issued.token, t(180)));
    assert_eq!(err, DeviceError::SessionExpired { expired_at: t(180) });
    assert!(update.is_none(), "expiry is computed, nothing to write");
    assert!(matches!(audit, AuditEvent::SessionExpired { expired_at, .. } if expired_at == t(180)));
}

#[test]
fn absolute_lifetime_is_never_extended() {
    let (f, issued) = setup();
    let mut s = issued.session;
    let mut token = issued.token;
    let mut now = 0;
    // Heartbeat every 100 s (rotating along the way) up to the absolute end at t(1000).
    loop {
        now += 100;
        if now >= 1_000 {
            break;
        }
        match f.beat(&s, &token, t(now)) {
            HeartbeatDecision::Extended { update } => s = update.session,
            HeartbeatDecision::Rotated {
                update,
                token: next,
            } => {
                s = update.session;
                token = next;
            }
            other => panic!("at {now}: {other:?}"),
        }
        assert!(s.expires_at() <= t(1_000));
        assert_eq!(s.created_at, t(0));
    }
    assert_eq!(s.last_seen, t(900));
    assert_eq!(
        s.expires_at(),
        t(1_000),
        "idle would say 1080, absolute caps at 1000"
    );
    let (err, update, _) = refused(f.beat(&s, &token, t(1_000)));
    assert_eq!(
        err,
        DeviceError::SessionExpired {
            expired_at: t(1_000)
        }
    );
    assert!(update.is_none());
}

#[test]
fn rotation_after_rotate_after_with_overlap_returning_the_same_successor() {
    let (f, issued) = setup();
    let s0 = issued.session;
    let t0 = issued.token;
    // Before rotate_after: no rotation.
    let s_mid = keep_alive(&f, s0.clone(), &t0, t(150));
    let s1 = extended(f.beat(&s_mid, &t0, t(299))).session;
    // At rotate_after (counted from issue): rotate.
    let (u, t1) = rotated(f.beat(&s1, &t0, t(300)));
    assert_ne!(t1, t0);
    assert_eq!(u.session.generation, 1);
    assert_eq!(u.session.previous_hash, Some(s0.current_hash));
    assert_eq!(u.session.overlap_until, t(330));
    assert!(matches!(
        u.audit,
        AuditEvent::SessionRotated {
            generation: 1,
            repeated: false,
            ..
        }
    ));
    let s2 = u.session;

    // A racing request still carrying the previous token, inside the overlap: same successor.
    let (again, t1_again) = rotated(f.beat(&s2, &t0, t(330)));
    assert_eq!(t1_again, t1);
    assert_eq!(again.session.current_hash, s2.current_hash);
    assert_eq!(again.session.generation, 1);
    assert_eq!(
        again.session.overlap_until,
        t(330),
        "the overlap is not re-anchored"
    );
    assert!(matches!(
        again.audit,
        AuditEvent::SessionRotated { repeated: true, .. }
    ));
    let s3 = again.session;

    // The new token works and does not rotate again yet.
    let s4 = extended(f.beat(&s3, &t1, t(331))).session;

    // The previous token after the overlap: reuse, the session is revoked.
    let (err, update, audit) = refused(f.beat(&s4, &t0, t(331)));
    assert_eq!(err, DeviceError::SessionTokenReused);
    let update = update.expect("revocation must be persisted");
    assert_eq!(update.session.revoked_at, Some(t(331)));
    assert_eq!(update.expected_version, s4.version);
    assert!(matches!(
        audit,
        AuditEvent::SessionRevoked {
            reason: SessionEndReason::TokenReuse,
            ..
        }
    ));

    // Once revoked, even the current token is refused.
    let (err, update, _) = refused(f.beat(&update.session, &t1, t(332)));
    assert_eq!(err, DeviceError::SessionRevoked);
    assert!(update.is_none());
}

#[test]
fn a_token_two_generations_old_revokes_the_session() {
    let (f, issued) = setup();
    let t0 = issued.token;
    let s = keep_alive(&f, issued.session, &t0, t(150));
    let (u1, t1) = rotated(f.beat(&s, &t0, t(300)));
    let s = keep_alive(&f, u1.session, &t1, t(450));
    let (u2, t2) = rotated(f.beat(&s, &t1, t(600)));
    assert_eq!(u2.session.generation, 2);
    // t1 is the previous token and inside the overlap: fine.
    let (_, same) = rotated(f.beat(&u2.session, &t1, t(610)));
    assert_eq!(same, t2);
    // t0 is older than the previous one, even inside the overlap window: revoke.
    let (err, update, _) = refused(f.beat(&u2.session, &t0, t(610)));
    assert_eq!(err, DeviceError::SessionTokenReused);
    assert!(update.unwrap().session.revoked_at.is_some());
}

#[test]
fn successor_is_deterministic_and_keyed_by_the_gateway_secret() {
    let (f, issued) = setup();
    let s = keep_alive(&f, issued.session, &issued.token, t(150));
    let (_, a) = rotated(f.beat(&s, &issued.token, t(300)));
    let (_, b) = rotated(f.beat(&s, &issued.token, t(305)));
    assert_eq!(a, b, "same parent and generation give the same successor");
    // Another gateway secret derives another successor.
    let mut rng = UnwrapErr(getrandom::SysRng);
    let other = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .session_policy(policy())
    .build()
    .unwrap();
    let (_, c) = rotated(other.heartbeat(&s, &f.device, &tok(&issued.token), t(300)));
    assert_ne!(a, c);
}

#[test]
fn suspended_or_revoked_device_ends_its_sessions() {
    let (mut f, issued) = setup();
    let t1 = f
        .device
        .suspend(&op(), t(10))
        .unwrap()
        .commit(&f.registry)
        .unwrap();
    assert!(matches!(t1, AuditEvent::Suspended { .. }));
    f.device = f.registry.load(f.device.device_id()).unwrap().unwrap();
    let (err, update, audit) = refused(f.beat(&issued.session, &issued.token, t(20)));
    assert_eq!(err, DeviceError::Unauthorized);
    assert!(update.unwrap().session.revoked_at.is_some());
    assert!(matches!(
        audit,
        AuditEvent::SessionRevoked {
            reason: SessionEndReason::DeviceNotApproved,
            ..
        }
    ));
}

#[test]
fn tokens_are_checked_against_their_session() {
    let (f, issued) = setup();
    let (_, other) = setup();
    // A token of another session is refused and changes nothing.
    let (err, update, _) = refused(f.beat(&issued.session, &other.token, t(10)));
    assert_eq!(err, DeviceError::WrongSession);
    assert!(update.is_none());
    // A forged secret for the right session id is refused and revokes nothing (issue 15,
    // finding 2): knowing a session id is not enough to end the session.
    let sid = issued.session.session_id.to_base64url();
    let forged = format!(
        "{SESSION_TOKEN_PREFIX}{sid}.{}",
        handoff_core::b64::encode(&[7u8; 32])
    );
    let p = PresentedToken::parse(&forged).unwrap();
    let (err, update, _) = refused(f.gateway.heartbeat(&issued.session, &f.device, &p, t(10)));
    assert_eq!(err, DeviceError::SessionTokenUnrecognised);
    assert!(update.is_none());
    // The real token's random half with a tag from another session: refused too.
    let real = issued.token.expose();
    let other_sid = other.session.session_id.to_base64url();
    let spliced = real.replace(&sid, &other_sid);
    let p = PresentedToken::parse(&spliced).unwrap();
    let (err, update, _) = refused(f.gateway.heartbeat(&other.session, &f.device, &p, t(10)));
    assert!(update.is_none(), "{err}");
    // Explicit revocation.
    let u = issued.session.revoke(t(20));
    assert_eq!(u.session.revoked_at, Some(t(20)));
    assert!(matches!(
        u.audit,
        AuditEvent::SessionRevoked {
            reason: SessionEndReason::Explicit,
            ..
        }
    ));
}

#[test]
fn malformed_session_tokens_are_refused() {
    let (_, issued) = setup();
    let good = issued.token.expose().to_owned();
    let jwt_like = format!("eyJ{}", &good[3..]);
    for bad in [
        String::new(),
        "dvs1.".to_owned(),
        jwt_like,
        good.replacen("dvs1.", "dvs2.", 1),
        format!("{good}A"),
        good.replace('.', "_"),
        "x".repeat(10_000),
    ] {
        assert!(
            matches!(
                PresentedToken::parse(&bad),
                Err(DeviceError::MalformedSessionToken(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        PresentedToken::parse(&good).unwrap().session_id(),
        issued.session.session_id
    );
}

#[test]
fn session_record_round_trips_through_json_without_tokens() {
    let (_, issued) = setup();
    let json = serde_json::to_string(&issued.session).unwrap();
    let back: DeviceSession = serde_json::from_str(&json).unwrap();
    assert_eq!(back, issued.session);
    let secret = issued.token.expose().rsplit('.').next().unwrap().to_owned();
    assert!(!json.contains(&secret));
    assert!(!format!("{:?}", issued.token).contains(&secret));
}
