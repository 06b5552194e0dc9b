#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Gateway-side handshake checks, in the order of the reference checklist, with a fake
//! clock (plain `UnixTime` values driven by the test).

use std::sync::atomic::{AtomicUsize, Ordering};

use handoff_core::replay::{
    InMemoryReplayLog, ReplayKey, ReplayLog, ReplayStoreError, ReplayVerdict,
};
use handoff_core::{HmacSecret, UnixTime, b64};
use handoff_device::*;
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

const BOOT: u64 = 1_700_000_000;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(BOOT + s)
}

struct Fixture {
    rng: Rng,
    gateway: Gateway,
    registry: InMemoryDeviceRegistry,
    nonces: InMemoryReplayLog,
    creds: DeviceCredentials,
}

fn op() -> OperatorId {
    OperatorId::new("alice").unwrap()
}

/// One approved device `dev-1` with key `k1`, registered at t(0) and approved at t(1).
fn fixture() -> Fixture {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let gateway = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .build()
    .unwrap();
    let registry = InMemoryDeviceRegistry::new(100);
    let secret = HmacSecret::generate(&mut rng);
    let device_id = DeviceId::new("dev-1").unwrap();
    let key_id = KeyId::new("k1").unwrap();
    let req =
        DeviceRecord::request_pairing(device_id.clone(), key_id.clone(), secret.clone(), t(0), 600);
    registry.insert(&req.record).unwrap();
    let _ = req
        .record
        .approve(&op(), t(1))
        .unwrap()
        .commit(&registry)
        .unwrap();
    Fixture {
        rng,
        gateway,
        registry,
        nonces: InMemoryReplayLog::new(10_000),
        creds: DeviceCredentials::new(device_id, key_id, secret),
    }
}

impl Fixture {
    fn wire_at(&mut self, ts: UnixTime) -> String {
        let gw = self.gateway.gateway_id().clone();
        self.creds
            .handshake(&gw, ts, body_hash(b"hello"), &mut self.rng)
            .to_wire()
    }

    fn run_with(
        &mut self,
        wire: &str,
        now: UnixTime,
        nonces: &dyn ReplayLog,
    ) -> Result<IssuedSession, Rejection> {
        self.gateway.handshake(
            wire.as_bytes(),
            b"hello",
            &self.registry,
            nonces,
            now,
            &mut self.rng,
        )
    }

    fn go(&mut self, wire: &str, now: UnixTime) -> Result<IssuedSession, Rejection> {
        let nonces = std::mem::replace(&mut self.nonces, InMemoryReplayLog::new(0));
        let r = self.run_with(wire, now, &nonces);
        self.nonces = nonces;
        r
    }
}

fn reason(r: &Rejection) -> FailureReason {
    match &*r.audit {
        AuditEvent::HandshakeFailed { reason, .. } => *reason,
        other => panic!("expected HandshakeFailed, got {other:?}"),
    }
}

#[test]
fn valid_handshake_issues_a_session_with_audit_events() {
    let mut f = fixture();
    let wire = f.wire_at(t(100));
    let issued = f.go(&wire, t(100)).unwrap();
    assert!(issued.token.expose().starts_with(SESSION_TOKEN_PREFIX));
    assert_eq!(issued.token.expose().len(), SESSION_TOKEN_LEN);
    assert_eq!(issued.session.device_id.as_str(), "dev-1");
    assert_eq!(issued.session.generation, 0);
    assert!(
        matches!(&issued.audit[0], AuditEvent::HandshakeOk { device_id, key_id, at }
        if device_id.as_str() == "dev-1" && key_id.as_str() == "k1" && *at == t(100))
    );
    assert!(
        matches!(&issued.audit[1], AuditEvent::SessionIssued { expires_at, .. }
        if *expires_at == t(100 + 180))
    );
    // The session record stores a hash, not the token.
    let token_secret = issued.token.expose().rsplit('.').next().unwrap().to_owned();
    let debug = format!("{:?} {:?}", issued.session, issued.token);
    assert!(!debug.contains(&token_secret));
}

#[test]
fn replayed_nonce_is_refused() {
    let mut f = fixture();
    let wire = f.wire_at(t(100));
    assert!(f.go(&wire, t(100)).is_ok());
    let again = f.go(&wire, t(110)).unwrap_err();
    assert_eq!(again.error, DeviceError::Replayed);
    assert_eq!(reason(&again), FailureReason::Replay);
}

#[test]
fn skew_is_symmetric_and_reports_the_server_time() {
    let mut f = fixture();
    let now = t(1_000);
    // 120 s either way is inside the default window.
    for ts in [t(880), t(1_120)] {
        let wire = f.wire_at(ts);
        assert!(f.go(&wire, now).is_ok(), "ts {ts:?} must be accepted");
    }
    // 121 s behind and 121 s ahead are refused, with the server time in the error.
    for ts in [t(879), t(1_121)] {
        let wire = f.wire_at(ts);
        let r = f.go(&wire, now).unwrap_err();
        assert_eq!(
            r.error,
            DeviceError::ClockSkew {
                server_time: now,
                device_time: ts,
                max_skew: 120
            }
        );
        assert_eq!(reason(&r), FailureReason::Skew);
        assert!(r.error.to_string().contains(&now.to_string()));
    }
}

#[test]
fn mac_check_runs_before_the_skew_check_and_refused_messages_burn_no_nonce() {
    let mut f = fixture();
    let counting = CountingLog::default();
    // Far in the past and with a broken MAC: the MAC refusal wins, so a random secret
    // learns nothing about the device (issue 15, finding 1).
    let wire = tamper_mac(&f.wire_at(t(0)));
    let r = f.run_with(&wire, t(1_000), &counting).unwrap_err();
    assert_eq!(reason(&r), FailureReason::Unauthenticated);
    assert_eq!(r.error, DeviceError::Unauthorized);
    // With a good MAC the skew refusal tells the device the server time.
    let wire = f.wire_at(t(0));
    let r = f.run_with(&wire, t(1_000), &counting).unwrap_err();
    assert_eq!(reason(&r), FailureReason::Skew);
    // Bad MAC inside the window: refused without touching the nonce store.
    let wire = tamper_mac(&f.wire_at(t(1_000)));
    let r = f.run_with(&wire, t(1_000), &counting).unwrap_err();
    assert_eq!(reason(&r), FailureReason::Unauthenticated);
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0);
    // A good message reaches the store exactly once.
    let wire = f.wire_at(t(1_000));
    assert!(f.run_with(&wire, t(1_000), &counting).is_ok());
    assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
}

fn tamper_mac(wire: &str) -> String {
    let (head, mac) = wire.rsplit_once('.').unwrap();
    let mut bytes = b64::decode(mac).unwrap();
    bytes[0] ^= 1;
    format!("{head}.{}", b64::encode(&bytes))
}

#[test]
fn wrong_mac_is_an_opaque_unauthorized() {
    let mut f = fixture();
    let wire = tamper_mac(&f.wire_at(t(100)));
    let r = f.go(&wire, t(100)).unwrap_err();
    assert_eq!(r.error, DeviceError::Unauthorized);
    assert_eq!(reason(&r), FailureReason::Unauthenticated);

    // Right ids, wrong secret.
    let mut rng = UnwrapErr(getrandom::SysRng);
    let impostor = DeviceCredentials::new(
        f.creds.device_id().clone(),
        f.creds.key_id().clone(),
        HmacSecret::generate(&mut rng),
    );
    let gw = f.gateway.gateway_id().clone();
    let wire = impostor
        .handshake(&gw, t(100), body_hash(b"hello"), &mut rng)
        .to_wire();
    let r = f.go(&wire, t(100)).unwrap_err();
    assert_eq!(r.error, DeviceError::Unauthorized);
    assert_eq!(reason(&r), FailureReason::Unauthenticated);
}

#[test]
fn truncated_or_extended_mac_is_refused() {
    let mut f = fixture();
    let wire = f.wire_at(t(100));
    let (head, mac) = wire.rsplit_once('.').unwrap();
    let full = b64::decode(mac).unwrap();
    for len in [0usize, 1, 16, 31] {
        let w = format!("{head}.{}", b64::encode(&full[..len]));
        let r = f.go(&w, t(100)).unwrap_err();
        assert_eq!(r.error, DeviceError::Unauthorized, "len {len}");
        assert_eq!(reason(&r), FailureReason::Unauthenticated, "len {len}");
    }
    // 33 bytes: the correct tag plus one byte.
    let mut long = full.clone();
    long.push(0);
    let r = f
        .go(&format!("{head}.{}", b64::encode(&long)), t(100))
        .unwrap_err();
    assert_eq!(reason(&r), FailureReason::Unauthenticated);
    // Over the parser cap: malformed before any lookup.
    let r = f
        .go(&format!("{head}.{}", b64::encode(&[0u8; 65])), t(100))
        .unwrap_err();
    assert!(matches!(r.error, DeviceError::Malformed(_)));
    assert_eq!(reason(&r), FailureReason::Malformed);
    // And the untouched message still works.
    assert!(f.go(&wire, t(100)).is_ok());
}

#[test]
fn unknown_device_and_not_approved_look_the_same_to_the_device() {
    let mut f = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let gw = f.gateway.gateway_id().clone();

    // Unknown device.
    let stranger = DeviceCredentials::new(
        DeviceId::new("nobody").unwrap(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng),
    );
    let wire = stranger
        .handshake(&gw, t(100), body_hash(b"hello"), &mut rng)
        .to_wire();
    let unknown = f.go(&wire, t(100)).unwrap_err();

    // Known device, unknown key.
    let wrong_key = DeviceCredentials::new(
        f.creds.device_id().clone(),
        KeyId::new("k9").unwrap(),
        HmacSecret::generate(&mut rng),
    );
    let wire = wrong_key
        .handshake(&gw, t(100), body_hash(b"hello"), &mut rng)
        .to_wire();
    let unknown_key = f.go(&wire, t(100)).unwrap_err();

    // Pending device with a correct MAC.
    let pending_secret = HmacSecret::generate(&mut rng);
    let req = DeviceRecord::request_pairing(
        DeviceId::new("dev-2").unwrap(),
        KeyId::new("k1").unwrap(),
        pending_secret.clone(),
        t(0),
        600,
    );
    f.registry.insert(&req.record).unwrap();
    let pending = DeviceCredentials::new(
        DeviceId::new("dev-2").unwrap(),
        KeyId::new("k1").unwrap(),
        pending_secret,
    );
    let wire = pending
        .handshake(&gw, t(100), body_hash(b"hello"), &mut rng)
        .to_wire();
    let not_approved = f.go(&wire, t(100)).unwrap_err();

    // Suspended device with a correct MAC.
    let rec = f.registry.load(f.creds.device_id()).unwrap().unwrap();
    let _ = rec
        .suspend(&op(), t(50))
        .unwrap()
        .commit(&f.registry)
        .unwrap();
    let wire = f.wire_at(t(100));
    let suspended = f.go(&wire, t(100)).unwrap_err();

    for r in [&unknown, &unknown_key, &not_approved, &suspended] {
        assert_eq!(r.error, DeviceError::Unauthorized);
        assert_eq!(r.error.to_string(), unknown.error.to_string());
    }
    assert_eq!(reason(&unknown), FailureReason::Unauthenticated);
    assert_eq!(reason(&unknown_key), FailureReason::Unauthenticated);
    assert_eq!(reason(&not_approved), FailureReason::NotApproved);
    assert_eq!(reason(&suspended), FailureReason::NotApproved);
}

#[test]
fn retiring_key_works_inside_its_overlap_only() {
    let mut f = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let rec = f.registry.load(f.creds.device_id()).unwrap().unwrap();
    let new_secret = HmacSecret::generate(&mut rng);
    let rotation = rec
        .rotate_key(KeyId::new("k2").unwrap(), new_secret.clone(), 300, t(100))
        .unwrap();
    assert!(
        matches!(&rotation.audit, AuditEvent::KeyRotated { old_key_id: Some(k), old_key_until, .. }
        if k.as_str() == "k1" && *old_key_until == t(400))
    );
    let _ = rotation.commit(&f.registry).unwrap();

    // Old key inside the overlap (up to and including t(400)).
    let wire = f.wire_at(t(400));
    assert!(f.go(&wire, t(400)).is_ok());
    // Old key after the overlap, with a fresh timestamp: refused as an inactive key.
    let wire = f.wire_at(t(401));
    let r = f.go(&wire, t(401)).unwrap_err();
    assert_eq!(r.error, DeviceError::Unauthorized);
    assert_eq!(reason(&r), FailureReason::KeyInactive);
    // The new key works.
    let new_creds = DeviceCredentials::new(
        f.creds.device_id().clone(),
        KeyId::new("k2").unwrap(),
        new_secret,
    );
    let gw = f.gateway.gateway_id().clone();
    let wire = new_creds
        .handshake(&gw, t(401), body_hash(b"hello"), &mut rng)
        .to_wire();
    assert!(f.go(&wire, t(401)).is_ok());
}

#[test]
fn full_nonce_store_fails_closed() {
    let mut f = fixture();
    // A quota large enough that the store, not the device's share, is the limit here.
    let mut rng = UnwrapErr(getrandom::SysRng);
    f.gateway = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .nonce_quota(MAX_NONCE_QUOTA, 10)
    .build()
    .unwrap();
    // The in-memory log holds at most one live entry per shard (16 shards).
    let small = InMemoryReplayLog::new(1);
    let (mut ok, mut full) = (0, 0);
    for i in 0..100 {
        let wire = f.wire_at(t(100));
        match f.run_with(&wire, t(100 + i % 10), &small) {
            Ok(_) => ok += 1,
            Err(r) => {
                assert_eq!(r.error, DeviceError::NonceStoreFull);
                assert_eq!(reason(&r), FailureReason::StoreFull);
                full += 1;
            }
        }
    }
    assert!((1..=16).contains(&ok), "{ok} accepted");
    assert_eq!(ok + full, 100);
    // A store that always says it is full refuses every handshake.
    let wire = f.wire_at(t(100));
    let r = f.run_with(&wire, t(100), &AlwaysFull).unwrap_err();
    assert_eq!(r.error, DeviceError::NonceStoreFull);
    // A store that cannot answer refuses too (never treated as fresh).
    let r = f.run_with(&wire, t(100), &Broken).unwrap_err();
    assert!(matches!(r.error, DeviceError::NonceStoreUnavailable(_)));
    assert_eq!(reason(&r), FailureReason::StoreUnavailable);
}

#[test]
fn timestamps_before_the_restart_are_refused() {
    let mut f = fixture();
    // The gateway started at t(0); a message signed at t(-30) arrives at t(10): inside the
    // skew window, but the nonce store cannot know whether it was seen before the restart.
    let wire = f.wire_at(UnixTime::from_secs(BOOT - 30));
    let r = f.go(&wire, t(10)).unwrap_err();
    assert_eq!(
        r.error,
        DeviceError::BeforeRestart {
            not_before: t(0),
            server_time: t(10)
        }
    );
    assert_eq!(reason(&r), FailureReason::BeforeRestart);
    let wire = f.wire_at(t(0));
    assert!(f.go(&wire, t(10)).is_ok());
}

#[test]
fn mac_binds_gateway_body_and_every_field() {
    let mut f = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    // Made for another gateway.
    let other = GatewayId::new("gw-2").unwrap();
    let wire = f
        .creds
        .handshake(&other, t(100), body_hash(b"hello"), &mut rng)
        .to_wire();
    assert_eq!(
        reason(&f.go(&wire, t(100)).unwrap_err()),
        FailureReason::Unauthenticated
    );
    // Covers another body than the one received.
    let gw = f.gateway.gateway_id().clone();
    let wire = f
        .creds
        .handshake(&gw, t(100), body_hash(b"other"), &mut rng)
        .to_wire();
    let r = f.go(&wire, t(100)).unwrap_err();
    assert_eq!(r.error, DeviceError::BodyMismatch);
    // Timestamp changed in transit (still inside the window).
    let wire = f.wire_at(t(100));
    let forged = wire.replace(&format!(".{}.", BOOT + 100), &format!(".{}.", BOOT + 101));
    assert_ne!(forged, wire);
    assert_eq!(
        reason(&f.go(&forged, t(100)).unwrap_err()),
        FailureReason::Unauthenticated
    );
}

#[test]
fn oversized_and_malformed_messages_are_refused_before_lookup() {
    let mut f = fixture();
    let big = "a".repeat(MAX_HANDSHAKE_BYTES + 1);
    let r = f.go(&big, t(100)).unwrap_err();
    assert_eq!(
        r.error,
        DeviceError::MessageTooLarge {
            len: MAX_HANDSHAKE_BYTES + 1,
            max: MAX_HANDSHAKE_BYTES
        }
    );
    let good = f.wire_at(t(100));
    let cases = [
        "".to_owned(),
        "dvh2.x".to_owned(),
        good.replacen("dvh1.", "dvh1..", 1),
        format!("{good}.extra"),
        good.replace(&format!(".{}.", BOOT + 100), &format!(".0{}.", BOOT + 100)),
        good.replace("dev-1", "dev 1"),
    ];
    for c in &cases {
        let r = f.go(c, t(100)).unwrap_err();
        assert!(
            matches!(r.error, DeviceError::Malformed(_)),
            "{c:?}: {:?}",
            r.error
        );
        assert_eq!(reason(&r), FailureReason::Malformed);
    }
    // Short nonce.
    let parts: Vec<&str> = good.split('.').collect();
    let short = format!(
        "dvh1.{}.{}.{}.{}.{}.{}",
        parts[1],
        parts[2],
        parts[3],
        b64::encode(&[0u8; 8]),
        parts[5],
        parts[6]
    );
    assert!(
        matches!(HandshakeMessage::parse(short.as_bytes()), Err(DeviceError::Malformed(m)) if m.contains("16 bytes"))
    );
}

#[test]
fn wire_form_round_trips() {
    let mut f = fixture();
    let wire = f.wire_at(t(5));
    let msg = HandshakeMessage::parse(wire.as_bytes()).unwrap();
    assert_eq!(msg.to_wire(), wire);
    assert_eq!(msg.device_id().as_str(), "dev-1");
    assert_eq!(msg.timestamp(), t(5));
    assert_eq!(msg.nonce().len(), MIN_NONCE_BYTES);
    assert!(!format!("{msg:?}").contains(wire.rsplit('.').next().unwrap()));
}

#[test]
fn configuration_is_bounded() {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let gw = || GatewayId::new("gw").unwrap();
    let key = HmacSecret::generate(&mut rng);
    assert!(matches!(
        Gateway::builder(gw(), t(0), key.clone())
            .skew_secs(301)
            .build(),
        Err(DeviceError::Config(_))
    ));
    assert!(matches!(
        Gateway::builder(gw(), t(0), key.clone())
            .skew_secs(0)
            .build(),
        Err(DeviceError::Config(_))
    ));
    let bad = SessionPolicy {
        overlap: 900,
        ..SessionPolicy::default()
    };
    assert!(matches!(
        Gateway::builder(gw(), t(0), key.clone())
            .session_policy(bad)
            .build(),
        Err(DeviceError::Config(_))
    ));
    for (per_device, devices) in [(0, 10), (MAX_NONCE_QUOTA + 1, 10), (16, 0)] {
        assert!(matches!(
            Gateway::builder(gw(), t(0), key.clone())
                .nonce_quota(per_device, devices)
                .build(),
            Err(DeviceError::Config(_))
        ));
    }
    let g = Gateway::builder(gw(), t(0), key).build().unwrap();
    assert_eq!(g.skew_secs(), 120);
    assert_eq!(g.nonce_quota(), DEFAULT_NONCE_QUOTA);
}

#[test]
fn quota_refusal_names_the_retry_time_and_counts_future_skew_against_the_device() {
    let mut f = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    f.gateway = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .nonce_quota(2, 10)
    .build()
    .unwrap();
    // Two handshakes dated 100 s ahead hold the device's two slots until t(100+100+120).
    for _ in 0..2 {
        let wire = f.wire_at(t(200));
        assert!(f.go(&wire, t(100)).is_ok());
    }
    let wire = f.wire_at(t(100));
    let r = f.go(&wire, t(100)).unwrap_err();
    assert_eq!(
        r.error,
        DeviceError::NonceQuotaExceeded { retry_at: t(321) }
    );
    assert_eq!(reason(&r), FailureReason::QuotaExceeded);
    assert!(r.error.to_string().contains("retry at"));
    // Still refused just before, served from the retry time on.
    let wire = f.wire_at(t(320));
    assert!(f.go(&wire, t(320)).is_err());
    let wire = f.wire_at(t(321));
    assert!(f.go(&wire, t(321)).is_ok());
}

#[test]
fn audit_events_carry_no_secret_token_or_mac() {
    let mut f = fixture();
    let wire = f.wire_at(t(100));
    let mac = wire.rsplit('.').next().unwrap().to_owned();
    let issued = f.go(&wire, t(100)).unwrap();
    let replay = f.go(&wire, t(101)).unwrap_err();
    let tampered = tamper_mac(&f.wire_at(t(100)));
    let bad = f.go(&tampered, t(100)).unwrap_err();
    let mut lines = Vec::new();
    for ev in issued.audit.iter().chain([&*replay.audit, &*bad.audit]) {
        lines.push(serde_json::to_string(ev).unwrap());
    }
    let all = lines.join("\n");
    assert!(all.contains(r#""event":"handshake_ok""#));
    assert!(all.contains(r#""reason":"replay""#));
    assert!(all.contains(r#""reason":"unauthenticated""#));
    let token = issued.token.expose().to_owned();
    let (_, sid_and_secret) = token.split_at(SESSION_TOKEN_PREFIX.len());
    let (sid, secret) = sid_and_secret.split_once('.').unwrap();
    for needle in [mac.as_str(), secret, sid, token.as_str()] {
        assert!(!all.contains(needle), "audit leaks {needle}");
    }
}

#[test]
fn step_api_lets_the_caller_confirm_with_its_own_store() {
    let mut f = fixture();
    let wire = f.wire_at(t(100));
    let msg = HandshakeMessage::parse(wire.as_bytes()).unwrap();
    let record = f.registry.load(msg.device_id()).unwrap();
    let pending = f
        .gateway
        .check(&msg, record.as_ref(), &body_hash(b"hello"), t(100))
        .unwrap();
    assert_eq!(pending.until(), t(220));
    let again = f
        .gateway
        .check(&msg, record.as_ref(), &body_hash(b"hello"), t(100))
        .unwrap();
    assert_eq!(pending.replay_key(), again.replay_key());
    let verified = pending.confirm_with(ReplayVerdict::Fresh, t(100)).unwrap();
    assert_eq!(verified.device_id().as_str(), "dev-1");
    let r = again
        .confirm_with(ReplayVerdict::Replayed, t(100))
        .unwrap_err();
    assert_eq!(r.error, DeviceError::Replayed);
    let _session = f.gateway.issue_session(verified, t(100), &mut f.rng);
}

/// Counts calls and records nonces in a real in-memory log.
struct CountingLog {
    calls: AtomicUsize,
    inner: InMemoryReplayLog,
}

impl Default for CountingLog {
    fn default() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            inner: InMemoryReplayLog::new(100),
        }
    }
}

impl ReplayLog for CountingLog {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check_and_insert(key, until, now)
    }
}

struct AlwaysFull;
impl ReplayLog for AlwaysFull {
    fn check_and_insert(
        &self,
        _: &ReplayKey,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        Ok(ReplayVerdict::AtCapacity)
    }
}

struct Broken;
impl ReplayLog for Broken {
    fn check_and_insert(
        &self,
        _: &ReplayKey,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        Err(ReplayStoreError("connection refused".into()))
    }
}

#[test]
fn replaying_a_captured_handshake_does_not_use_up_the_device_share() {
    let mut f = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    f.gateway = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .nonce_quota(2, 10)
    .build()
    .unwrap();
    let captured = f.wire_at(t(100));
    assert!(f.go(&captured, t(100)).is_ok());
    // An attacker replays the captured message many times: each is a replay, none takes a
    // slot of the device's share.
    for i in 0..50 {
        let r = f.go(&captured, t(100 + i % 5)).unwrap_err();
        assert_eq!(r.error, DeviceError::Replayed);
    }
    // The device still has its second slot.
    let wire = f.wire_at(t(105));
    assert!(f.go(&wire, t(105)).is_ok());
}

/// The async handshake over async views of the same in-memory stores (their futures are
/// ready at once, so one poll drives them): the same outcome as the sync handshake in
/// every case.
mod async_handshake {
    use super::*;
    use core::future::Future;
    use core::task::{Context, Poll, Waker};
    use handoff_core::replay_async::AsyncReplayLog;

    struct AsyncRegistry<'a>(&'a InMemoryDeviceRegistry);
    impl AsyncDeviceRegistry for AsyncRegistry<'_> {
        async fn load(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
            self.0.load(id)
        }
        async fn insert(&self, record: &DeviceRecord) -> Result<(), DeviceError> {
            self.0.insert(record)
        }
        async fn compare_and_set(&self, v: u64, record: &DeviceRecord) -> Result<(), DeviceError> {
            self.0.compare_and_set(v, record)
        }
    }

    /// A registry whose store is down.
    struct Down;
    impl AsyncDeviceRegistry for Down {
        async fn load(&self, _: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
            Err(DeviceError::RegistryUnavailable(
                "connection refused".into(),
            ))
        }
        async fn insert(&self, _: &DeviceRecord) -> Result<(), DeviceError> {
            Err(DeviceError::RegistryUnavailable(
                "connection refused".into(),
            ))
        }
        async fn compare_and_set(&self, _: u64, _: &DeviceRecord) -> Result<(), DeviceError> {
            Err(DeviceError::RegistryUnavailable(
                "connection refused".into(),
            ))
        }
    }

    struct AsyncNonces<'a>(&'a InMemoryReplayLog);
    impl AsyncReplayLog for AsyncNonces<'_> {
        async fn check_and_insert(
            &self,
            key: &ReplayKey,
            until: UnixTime,
            now: UnixTime,
        ) -> Result<ReplayVerdict, ReplayStoreError> {
            self.0.check_and_insert(key, until, now)
        }
    }

    fn is_send<F: Future + Send>(f: F) -> F {
        f
    }

    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the in-memory stores never wait"),
        }
    }

    /// Outcome without the random parts: the session's device and expiry, or the error,
    /// the audit reason and whether the audit event names the device.
    fn shape(r: &Result<IssuedSession, Rejection>) -> String {
        match r {
            Ok(s) => format!(
                "ok {} {:?}",
                s.session.device_id.as_str(),
                s.session.expires_at()
            ),
            Err(e) => format!("{:?} {:?} {:?}", e.error, reason(e), e.audit),
        }
    }

    #[test]
    fn async_handshake_decides_as_the_sync_one() {
        let mut sync = fixture();
        let mut asynchronous = fixture();
        // The same device secret on both sides, so one wire serves both gateways' checks.
        asynchronous.registry = InMemoryDeviceRegistry::new(100);
        let record = sync
            .registry
            .load(&DeviceId::new("dev-1").unwrap())
            .unwrap()
            .unwrap();
        asynchronous.registry.insert(&record).unwrap();
        let valid = sync.wire_at(t(100));
        let cases: Vec<(String, UnixTime)> = vec![
            (valid.clone(), t(100)),                     // fresh
            (valid.clone(), t(101)),                     // the same nonce again: replayed
            (tamper_mac(&sync.wire_at(t(102))), t(102)), // forged
            (sync.wire_at(t(100)), t(100 + 3_600)),      // far outside the skew window
            ("not a handshake".to_owned(), t(103)),      // malformed
            ("x".repeat(100_000), t(104)),               // oversized
        ];
        let mut checked = 0;
        let mut seen = std::collections::BTreeSet::new();
        for (wire, now) in &cases {
            let a = sync.go(wire, *now);
            // `Send`, so a tokio task can run it.
            let b = ready(is_send(asynchronous.gateway.handshake_async(
                wire.as_bytes(),
                b"hello",
                &AsyncRegistry(&asynchronous.registry),
                &AsyncNonces(&asynchronous.nonces),
                *now,
                &mut asynchronous.rng,
            )));
            assert_eq!(shape(&a), shape(&b), "{wire:.60} at {now:?}");
            seen.insert(shape(&a).split(' ').next().unwrap_or_default().to_owned());
            checked += 1;
        }
        assert_eq!(checked, cases.len());
        // Every case a different outcome: session, replay, forgery, skew, malformed, size.
        assert_eq!(seen.len(), cases.len(), "{seen:?}");
        assert!(shape(&sync.go(&valid, t(105))).contains("Replay"));

        // A registry that cannot answer: refused, the audit event names no device.
        let wire = sync.wire_at(t(110));
        let r = ready(asynchronous.gateway.handshake_async(
            wire.as_bytes(),
            b"hello",
            &Down,
            &AsyncNonces(&asynchronous.nonces),
            t(110),
            &mut asynchronous.rng,
        ));
        let e = r.unwrap_err();
        assert!(matches!(e.error, DeviceError::RegistryUnavailable(_)));
        assert!(matches!(
            &*e.audit,
            AuditEvent::HandshakeFailed {
                device_id: None,
                reason: FailureReason::StoreUnavailable,
                ..
            }
        ));
    }
}
