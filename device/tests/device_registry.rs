#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Device states, operator transitions (pure, compare-and-set) and the in-memory registry.

use std::sync::Arc;

use handoff_core::{HmacSecret, UnixTime};
use handoff_device::*;
use proptest::prelude::*;
use rand_core::UnwrapErr;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(1_700_000_000 + s)
}

fn op() -> OperatorId {
    OperatorId::new("alice").unwrap()
}

fn pending(id: &str) -> DeviceRecord {
    let mut rng = UnwrapErr(getrandom::SysRng);
    DeviceRecord::request_pairing(
        DeviceId::new(id).unwrap(),
        KeyId::new("k1").unwrap(),
        HmacSecret::generate(&mut rng),
        t(0),
        600,
    )
    .record
}

#[test]
fn state_machine_allows_only_the_documented_transitions() {
    let p = pending("d");
    let approved = p.approve(&op(), t(10)).unwrap();
    assert_eq!(approved.expected_version, 0);
    assert_eq!(approved.record.version(), 1);
    assert!(
        matches!(approved.audit, AuditEvent::Approved { ref by, at, .. } if by.as_str() == "alice" && at == t(10))
    );
    let a = approved.record;
    let s = a.suspend(&op(), t(20)).unwrap().record;
    assert_eq!(s.state().name(), "suspended");
    let r = s.resume(&op(), t(30)).unwrap();
    assert!(matches!(r.audit, AuditEvent::Resumed { .. }));
    let a2 = r.record;
    assert!(a2.state().is_approved());
    let rev = a2.revoke(&op(), t(40)).unwrap().record;
    assert_eq!(rev.version(), 4);

    // Revoked is terminal.
    for e in [
        rev.approve(&op(), t(50)).unwrap_err(),
        rev.resume(&op(), t(50)).unwrap_err(),
        rev.suspend(&op(), t(50)).unwrap_err(),
        rev.revoke(&op(), t(50)).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                DeviceError::InvalidTransition {
                    from: "revoked",
                    ..
                }
            ),
            "{e}"
        );
    }
    // Invalid moves from other states.
    assert!(matches!(
        p.suspend(&op(), t(1)),
        Err(DeviceError::InvalidTransition {
            from: "pending",
            action: "suspend"
        })
    ));
    assert!(matches!(
        p.resume(&op(), t(1)),
        Err(DeviceError::InvalidTransition { .. })
    ));
    assert!(matches!(
        a.approve(&op(), t(1)),
        Err(DeviceError::InvalidTransition {
            from: "approved",
            ..
        })
    ));
    assert!(matches!(
        a.deny(&op(), t(1)),
        Err(DeviceError::InvalidTransition { .. })
    ));
    assert_eq!(
        a.approve(&op(), t(1)).unwrap_err().to_string(),
        "cannot approve a device that is approved"
    );
    // Denied is terminal.
    let d = p.deny(&op(), t(5)).unwrap();
    assert!(matches!(d.audit, AuditEvent::Denied { .. }));
    assert!(d.record.approve(&op(), t(6)).is_err());
    assert!(d.record.revoke(&op(), t(6)).is_err());
}

#[test]
fn pending_requests_expire() {
    let p = pending("d");
    assert!(p.expire(t(599)).is_err(), "not yet expired");
    assert_eq!(
        p.approve(&op(), t(600)).unwrap_err(),
        DeviceError::PairingExpired { expired_at: t(600) }
    );
    let e = p.expire(t(600)).unwrap();
    assert!(matches!(e.audit, AuditEvent::PairingExpired { .. }));
    assert_eq!(e.record.state().name(), "expired");
    assert!(e.record.approve(&op(), t(601)).is_err());
}

#[test]
fn registry_compare_and_set_detects_concurrent_decisions() {
    let reg = InMemoryDeviceRegistry::new(10);
    let p = pending("d");
    reg.insert(&p).unwrap();
    assert_eq!(reg.insert(&p).unwrap_err(), DeviceError::AlreadyRegistered);
    // Two operators decide on the same loaded record: only the first write wins.
    let approve = p.approve(&op(), t(1)).unwrap();
    let deny = p.deny(&OperatorId::new("bob").unwrap(), t(1)).unwrap();
    assert!(approve.commit(&reg).is_ok());
    assert_eq!(deny.commit(&reg).unwrap_err(), DeviceError::VersionConflict);
    assert!(
        reg.load(p.device_id())
            .unwrap()
            .unwrap()
            .state()
            .is_approved()
    );
    // Unknown device: conflict, never an insert.
    let other = pending("other").approve(&op(), t(1)).unwrap();
    assert_eq!(
        other.commit(&reg).unwrap_err(),
        DeviceError::VersionConflict
    );
    assert!(
        reg.load(&DeviceId::new("other").unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn registry_is_bounded_and_thread_safe() {
    let reg = Arc::new(InMemoryDeviceRegistry::new(8));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let reg = Arc::clone(&reg);
            std::thread::spawn(move || reg.insert(&pending(&format!("d{i}"))).is_ok())
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|b| *b)
        .count();
    assert_eq!(ok, 8);
    assert_eq!(reg.len(), 8);
    assert_eq!(
        reg.insert(&pending("late")).unwrap_err(),
        DeviceError::RegistryFull { capacity: 8 }
    );
    // Stale pending requests can be purged to free room.
    assert_eq!(reg.purge_stale_requests(t(600)), 8);
    assert!(reg.insert(&pending("late")).is_ok());
}

#[test]
fn key_rotation_keeps_at_most_four_keys_and_drops_ended_overlaps() {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut rec = pending("d").approve(&op(), t(1)).unwrap().record;
    for (i, at) in [(2, 10), (3, 20), (4, 30)] {
        rec = rec
            .rotate_key(
                KeyId::new(format!("k{i}")).unwrap(),
                HmacSecret::generate(&mut rng),
                100,
                t(at),
            )
            .unwrap()
            .record;
    }
    assert_eq!(rec.keys().len(), 4);
    assert_eq!(
        rec.keys()
            .iter()
            .filter(|k| k.status() == KeyStatus::Active)
            .count(),
        1
    );
    // A fifth key while all overlaps are live: refused.
    assert!(matches!(
        rec.rotate_key(
            KeyId::new("k5").unwrap(),
            HmacSecret::generate(&mut rng),
            100,
            t(40)
        ),
        Err(DeviceError::InvalidRecord(_))
    ));
    // Reusing a key id: refused.
    assert!(
        rec.rotate_key(
            KeyId::new("k2").unwrap(),
            HmacSecret::generate(&mut rng),
            100,
            t(40)
        )
        .is_err()
    );
    // Later, ended overlaps are dropped.
    let later = rec
        .rotate_key(
            KeyId::new("k5").unwrap(),
            HmacSecret::generate(&mut rng),
            100,
            t(125),
        )
        .unwrap()
        .record;
    let ids: Vec<&str> = later.keys().iter().map(|k| k.key_id().as_str()).collect();
    // k1 (until t(110)) and k2 (until t(120)) are gone; k3 (until t(130)) stays.
    assert_eq!(ids, ["k3", "k4", "k5"]);
    // Pending devices cannot rotate keys.
    assert!(
        pending("p")
            .rotate_key(
                KeyId::new("k2").unwrap(),
                HmacSecret::generate(&mut rng),
                1,
                t(1)
            )
            .is_err()
    );
}

#[test]
fn records_from_storage_are_validated() {
    let key = |id: &str, status| {
        DeviceKey::new(
            KeyId::new(id).unwrap(),
            status,
            HmacSecret::generate(&mut UnwrapErr(getrandom::SysRng)),
        )
    };
    let d = DeviceId::new("d").unwrap();
    let st = DeviceState::Expired { at: t(0) };
    assert!(DeviceRecord::from_parts(d.clone(), st.clone(), vec![], 0).is_err());
    assert!(
        DeviceRecord::from_parts(
            d.clone(),
            st.clone(),
            vec![
                key("a", KeyStatus::Active),
                key("a", KeyStatus::Retiring { until: t(1) })
            ],
            0
        )
        .is_err()
    );
    assert!(
        DeviceRecord::from_parts(
            d.clone(),
            st.clone(),
            vec![key("a", KeyStatus::Active), key("b", KeyStatus::Active)],
            0
        )
        .is_err()
    );
    let ok = DeviceRecord::from_parts(d, st, vec![key("a", KeyStatus::Active)], 7).unwrap();
    assert_eq!(ok.version(), 7);
}

#[test]
fn derived_secrets_are_deterministic_and_distinct_and_debug_hides_secrets() {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let master = HmacSecret::generate(&mut rng);
    let d = DeviceId::new("d").unwrap();
    let (k1, k2) = (KeyId::new("k1").unwrap(), KeyId::new("k2").unwrap());
    let a = derive_device_secret(&master, &d, &k1).unwrap();
    assert_eq!(a, derive_device_secret(&master, &d, &k1).unwrap());
    assert_ne!(a, derive_device_secret(&master, &d, &k2).unwrap());
    assert_ne!(
        a,
        derive_device_secret(&HmacSecret::generate(&mut rng), &d, &k1).unwrap()
    );
    assert_eq!(a.expose_secret().len(), 32);

    let rec = DeviceRecord::request_pairing(d.clone(), k1.clone(), a.clone(), t(0), 10).record;
    let creds = DeviceCredentials::new(d, k1, a.clone());
    let hex: String = a
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dbg = format!("{rec:?} {creds:?} {:?}", rec.keys()[0]);
    assert!(!dbg.contains(&hex));
    assert!(!dbg.contains(&format!("{:?}", a.expose_secret())));
    assert!(dbg.contains("DeviceRecord"));
}

#[test]
fn ids_deserialize_with_validation() {
    let ok: DeviceId = serde_json::from_str(r#""sensor-1""#).unwrap();
    assert_eq!(ok.as_str(), "sensor-1");
    assert!(serde_json::from_str::<DeviceId>(r#""a.b""#).is_err());
    assert!(serde_json::from_str::<DeviceId>(r#""""#).is_err());
}

proptest! {
    #[test]
    fn handshake_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        fuzz_parse_handshake(&bytes);
    }

    #[test]
    fn parser_never_panics_on_near_valid_text(s in "dvh1\\.[a-z0-9.:_-]{0,40}\\.[0-9]{0,22}\\.[A-Za-z0-9_-]{0,100}\\.[A-Za-z0-9_.-]{0,120}") {
        fuzz_parse_handshake(s.as_bytes());
        let _ = HandshakeMessage::parse(s.as_bytes());
    }
}
