#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Regression tests for the three findings of the adversarial review (issue 15), and the
//! property that an unauthenticated handshake's error and audit output do not depend on
//! whether the device exists. Each test failed on the code before the fix.

use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime, b64};
use handoff_device::*;
use proptest::prelude::*;
use rand_core::UnwrapErr;

const BOOT: u64 = 1_700_000_000;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(BOOT + s)
}

fn op() -> OperatorId {
    OperatorId::new("alice").unwrap()
}

fn rng() -> UnwrapErr<getrandom::SysRng> {
    UnwrapErr(getrandom::SysRng)
}

fn gateway() -> Gateway {
    Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng()),
    )
    .build()
    .unwrap()
}

/// Registers and approves `id` with key `k1`; returns its credentials.
fn approved(registry: &InMemoryDeviceRegistry, id: &str) -> DeviceCredentials {
    let secret = HmacSecret::generate(&mut rng());
    let (d, k) = (DeviceId::new(id).unwrap(), KeyId::new("k1").unwrap());
    let req = DeviceRecord::request_pairing(d.clone(), k.clone(), secret.clone(), t(0), 600);
    registry.insert(&req.record).unwrap();
    let _ = req
        .record
        .approve(&op(), t(1))
        .unwrap()
        .commit(registry)
        .unwrap();
    DeviceCredentials::new(d, k, secret)
}

fn impostor(id: &str) -> DeviceCredentials {
    DeviceCredentials::new(
        DeviceId::new(id).unwrap(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng()),
    )
}

fn wire(gw: &Gateway, creds: &DeviceCredentials, ts: UnixTime, body: &[u8]) -> String {
    creds
        .handshake(gw.gateway_id(), ts, body_hash(body), &mut rng())
        .to_wire()
}

/// Finding 1: clock skew, the restart rule and the body hash were checked before the MAC,
/// and only for an existing, approved device with a usable key, so random secrets told
/// which device ids exist and wrote audit events naming real devices.
#[test]
fn finding1_no_refusal_before_the_mac_tells_a_real_device_from_an_unknown_one() {
    let gw = gateway();
    let registry = InMemoryDeviceRegistry::new(10);
    let _real = approved(&registry, "dev-1");
    let nonces = InMemoryReplayLog::new(100);
    let now = t(1_000);
    // (timestamp, body received): skewed into the past, skewed into the future, before
    // the restart (inside the window), another body than the one signed, all fine.
    let cases: [(UnixTime, &[u8]); 5] = [
        (t(0), b"hello"),
        (t(2_000), b"hello"),
        (UnixTime::from_secs(BOOT - 10), b"hello"),
        (now, b"other body"),
        (now, b"hello"),
    ];
    for (ts, body) in cases {
        // Same claimed key id, random secrets: one names a real device, one does not.
        let known = wire(&gw, &impostor("dev-1"), ts, b"hello");
        let unknown = wire(&gw, &impostor("dev-9"), ts, b"hello");
        let now = if ts < t(0) { t(5) } else { now };
        let a = gw
            .handshake(known.as_bytes(), body, &registry, &nonces, now, &mut rng())
            .unwrap_err();
        let b = gw
            .handshake(
                unknown.as_bytes(),
                body,
                &registry,
                &nonces,
                now,
                &mut rng(),
            )
            .unwrap_err();
        assert_eq!(a.error, DeviceError::Unauthorized, "{ts:?}: {}", a.error);
        assert_eq!(a.error, b.error);
        assert_eq!(a.audit, b.audit, "the audit event tells the devices apart");
        let line = serde_json::to_string(&*a.audit).unwrap();
        assert!(
            !line.contains("dev-1"),
            "audit names the real device: {line}"
        );
    }
}

/// Finding 2: any hash that was neither the current nor the previous one revoked the
/// session, so 32 arbitrary bytes and a session id (half the token) ended a session.
#[test]
fn finding2_a_garbage_secret_for_a_known_session_id_revokes_nothing() {
    let gw = Gateway::builder(
        GatewayId::new("gw-1").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng()),
    )
    .session_policy(SessionPolicy {
        idle_timeout: 180,
        max_lifetime: 1_000,
        rotate_after: 100,
        overlap: 10,
    })
    .build()
    .unwrap();
    let registry = InMemoryDeviceRegistry::new(10);
    let creds = approved(&registry, "dev-1");
    let device = registry.load(creds.device_id()).unwrap().unwrap();
    let nonces = InMemoryReplayLog::new(100);
    let w = wire(&gw, &creds, t(10), b"");
    let issued = gw
        .handshake(w.as_bytes(), b"", &registry, &nonces, t(10), &mut rng())
        .unwrap();
    let sid = issued.session.session_id.to_base64url();
    for garbage in [[0u8; 32], [7u8; 32], [0xff; 32]] {
        let forged = format!("{SESSION_TOKEN_PREFIX}{sid}.{}", b64::encode(&garbage));
        let p = PresentedToken::parse(&forged).unwrap();
        match gw.heartbeat(&issued.session, &device, &p, t(20)) {
            HeartbeatDecision::Refused { update, error, .. } => {
                assert!(update.is_none(), "garbage revoked the session ({error})");
                assert_ne!(error, DeviceError::SessionTokenReused);
            }
            other => panic!("garbage accepted: {other:?}"),
        }
    }
    // The real token still works, rotates, and an authentic stale token still revokes.
    let real = PresentedToken::parse(issued.token.expose()).unwrap();
    let (s1, t1) = match gw.heartbeat(&issued.session, &device, &real, t(120)) {
        HeartbeatDecision::Rotated { update, token } => (update.session, token),
        other => panic!("expected a rotation, got {other:?}"),
    };
    let p1 = PresentedToken::parse(t1.expose()).unwrap();
    let s2 = match gw.heartbeat(&s1, &device, &p1, t(240)) {
        HeartbeatDecision::Rotated { update, .. } => update.session,
        other => panic!("expected a rotation, got {other:?}"),
    };
    match gw.heartbeat(&s2, &device, &real, t(241)) {
        HeartbeatDecision::Refused { error, update, .. } => {
            assert_eq!(error, DeviceError::SessionTokenReused);
            assert!(update.unwrap().session.revoked_at.is_some());
        }
        other => panic!("stale token accepted: {other:?}"),
    }
}

/// Finding 3: handshake nonces had no per-device quota and a future-dated timestamp kept
/// an entry alive for twice the skew, so one approved device filled a 1000-entry store and
/// every other device got `NonceStoreFull` for four minutes.
#[test]
fn finding3_one_device_cannot_fill_the_nonce_store_for_all() {
    let gw = gateway();
    let registry = InMemoryDeviceRegistry::new(10);
    let noisy = approved(&registry, "noisy");
    let quiet = approved(&registry, "quiet");
    let nonces = InMemoryReplayLog::new(1_000);
    let now = t(1_000);
    let (mut accepted, mut refused) = (0usize, 0usize);
    for _ in 0..1_200 {
        // Dated as far ahead as the skew window allows: each entry lives 2 x skew.
        let w = wire(&gw, &noisy, now.saturating_add(gw.skew_secs()), b"");
        match gw.handshake(w.as_bytes(), b"", &registry, &nonces, now, &mut rng()) {
            Ok(_) => accepted += 1,
            Err(r) => {
                // The noisy device is refused for its own quota, never because the store
                // is full (which would refuse everyone).
                assert_ne!(r.error, DeviceError::NonceStoreFull, "store filled up");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the noisy device was never limited");
    assert!(accepted < 1_000 / 4, "{accepted} nonces held by one device");
    // The other device is served, now and throughout the next four minutes.
    for dt in [0, 60, 120, 239] {
        let at = now.saturating_add(dt);
        let w = wire(&gw, &quiet, at, b"");
        let r = gw.handshake(w.as_bytes(), b"", &registry, &nonces, at, &mut rng());
        assert!(
            r.is_ok(),
            "quiet device refused at +{dt}: {}",
            r.unwrap_err()
        );
    }
    // Once the noisy device's entries have expired (timestamp + skew), it is served again.
    let later = now.saturating_add(2 * gw.skew_secs() + 1);
    let w = wire(&gw, &noisy, later, b"");
    assert!(
        gw.handshake(w.as_bytes(), b"", &registry, &nonces, later, &mut rng())
            .is_ok()
    );
}

fn rejection_for(
    gw: &Gateway,
    registry: &InMemoryDeviceRegistry,
    wire: &str,
    body: &[u8],
    now: UnixTime,
) -> (DeviceError, String) {
    let nonces = InMemoryReplayLog::new(100);
    match gw.handshake(wire.as_bytes(), body, registry, &nonces, now, &mut rng()) {
        Ok(_) => panic!("a random secret was accepted"),
        Err(r) => (r.error, serde_json::to_string(&*r.audit).unwrap()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For random approved and unknown devices, random secrets, random timestamps and
    /// bodies, an unauthenticated handshake gets the same error and the same audit output
    /// whether the device it names exists or not.
    #[test]
    fn unauthenticated_handshakes_do_not_depend_on_device_existence(
        n_devices in 1usize..6,
        pick in 0usize..8,
        known_key in any::<bool>(),
        offset in -400i64..400,
        other_body in any::<bool>(),
        state in 0u8..3,
        secret in proptest::collection::vec(any::<u8>(), 32..48),
    ) {
        let gw = gateway();
        let with = InMemoryDeviceRegistry::new(16);
        let ids: Vec<String> = (0..n_devices).map(|i| format!("dev-{i}")).collect();
        for id in &ids {
            let creds = approved(&with, id);
            let rec = with.load(creds.device_id()).unwrap().unwrap();
            // Some devices are suspended or hold a second key: states must not show.
            match state {
                1 => { let _ = rec.suspend(&op(), t(2)).unwrap().commit(&with).unwrap(); }
                2 => {
                    let _ = rec
                        .rotate_key(KeyId::new("k2").unwrap(), HmacSecret::generate(&mut rng()), 0, t(2))
                        .unwrap()
                        .commit(&with)
                        .unwrap();
                }
                _ => {}
            }
        }
        let without = InMemoryDeviceRegistry::new(16);
        // The claimed id: one of the registered devices, or one nobody registered.
        let id = ids.get(pick).cloned().unwrap_or_else(|| format!("ghost-{pick}"));
        let key = if known_key { "k1" } else { "k7" };
        let creds = DeviceCredentials::new(
            DeviceId::new(id).unwrap(),
            KeyId::new(key).unwrap(),
            HmacSecret::new(secret).unwrap(),
        );
        let now = t(1_000);
        let ts = UnixTime::from_secs(now.as_secs().saturating_add_signed(offset));
        let w = wire(&gw, &creds, ts, b"body");
        let body: &[u8] = if other_body { b"else" } else { b"body" };
        let a = rejection_for(&gw, &with, &w, body, now);
        let b = rejection_for(&gw, &without, &w, body, now);
        prop_assert_eq!(a, b);
    }
}
