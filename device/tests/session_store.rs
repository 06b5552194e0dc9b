#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Stored device sessions: `IssuedSession::store`, `Gateway::heartbeat_stored` (load,
//! decide, compare-and-set, re-decide on a lost race) and its async twin, against the
//! in-memory store and against stores that fail, conflict or lose races on purpose.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};

use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::*;
use rand_core::UnwrapErr;

const BOOT: u64 = 1_700_000_000;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(BOOT + s)
}

/// Idle 180 s, absolute 1 000 s, rotate after 300 s, overlap 30 s.
fn policy() -> SessionPolicy {
    SessionPolicy {
        idle_timeout: 180,
        max_lifetime: 1_000,
        rotate_after: 300,
        overlap: 30,
    }
}

struct Fixture {
    gateway: Gateway,
    registry: InMemoryDeviceRegistry,
    store: InMemoryDeviceSessionStore,
    device_id: DeviceId,
    session_id: SessionId,
    /// The token of the session stored at t(0).
    token: SessionToken,
}

/// An approved device, a real handshake at t(0), its session stored.
fn setup() -> Fixture {
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
    let alice = OperatorId::new("alice").unwrap();
    let _ = req
        .record
        .approve(&alice, t(0))
        .unwrap()
        .commit(&registry)
        .unwrap();
    let wire = DeviceCredentials::new(d.clone(), k, secret)
        .handshake(gateway.gateway_id(), t(0), body_hash(b""), &mut rng)
        .to_wire();
    let issued = gateway
        .handshake(
            wire.as_bytes(),
            b"",
            &registry,
            &InMemoryReplayLog::new(100),
            t(0),
            &mut rng,
        )
        .unwrap();
    let store = InMemoryDeviceSessionStore::new(100);
    let stored = issued.store(&store).unwrap();
    assert!(matches!(stored.audit[0], AuditEvent::HandshakeOk { .. }));
    assert!(matches!(stored.audit[1], AuditEvent::SessionIssued { .. }));
    assert_eq!(stored.expires_at, t(180));
    Fixture {
        gateway,
        registry,
        store,
        device_id: d,
        session_id: stored.session_id,
        token: stored.token,
    }
}

impl Fixture {
    fn beat(&self, token: &str, now: UnixTime) -> StoredHeartbeat {
        self.gateway
            .heartbeat_stored(token, &self.store, &self.registry, now)
    }

    fn stored(&self) -> DeviceSession {
        DeviceSessionStore::load(&self.store, &self.session_id)
            .unwrap()
            .unwrap()
    }

    /// Heartbeats at t(60), t(200) and t(300): the last one rotates. Returns the successor.
    fn rotate(&self) -> SessionToken {
        let first = self.token.expose();
        assert!(matches!(
            self.beat(first, t(60)),
            StoredHeartbeat::Extended { .. }
        ));
        assert!(matches!(
            self.beat(first, t(200)),
            StoredHeartbeat::Extended { .. }
        ));
        match self.beat(first, t(300)) {
            StoredHeartbeat::Rotated { token, audit, .. } => {
                assert!(matches!(
                    audit,
                    AuditEvent::SessionRotated {
                        generation: 1,
                        repeated: false,
                        ..
                    }
                ));
                token
            }
            other => panic!("expected a rotation, got {other:?}"),
        }
    }
}

/// A well-formed token for the same session whose secret the gateway never issued.
fn forged(token: &SessionToken) -> String {
    let text = token.expose();
    let (head, last) = text.split_at(text.len() - 2);
    let swapped = if last == "AA" { "AB" } else { "AA" };
    format!("{head}{swapped}")
}

#[test]
fn a_stored_session_is_extended_rotated_and_revoked_on_a_stale_token() {
    let f = setup();
    let first = f.token.expose().to_owned();
    match f.beat(&first, t(60)) {
        StoredHeartbeat::Extended { expires_at, audit } => {
            assert_eq!(expires_at, t(240));
            assert!(matches!(audit, AuditEvent::SessionExtended { .. }));
        }
        other => panic!("{other:?}"),
    }
    let s = f.stored();
    assert_eq!((s.last_seen, s.version, s.generation), (t(60), 1, 0));

    let second = f.rotate();
    assert_ne!(second.expose(), first);
    let s = f.stored();
    assert_eq!((s.generation, s.rotated_at, s.version), (1, t(300), 4));

    // Inside the overlap, the previous token gets the same successor again.
    match f.beat(&first, t(310)) {
        StoredHeartbeat::Rotated { token, audit, .. } => {
            assert_eq!(token.expose(), second.expose());
            assert!(matches!(
                audit,
                AuditEvent::SessionRotated { repeated: true, .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    // The successor works; after the overlap the previous token revokes the session.
    assert!(matches!(
        f.beat(second.expose(), t(320)),
        StoredHeartbeat::Extended { .. }
    ));
    match f.beat(&first, t(340)) {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionTokenReused,
            audit: Some(AuditEvent::SessionRevoked { reason, .. }),
        } => assert_eq!(reason, SessionEndReason::TokenReuse),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.stored().revoked_at, Some(t(340)));
    assert!(matches!(
        f.beat(second.expose(), t(345)),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionRevoked,
            audit: Some(AuditEvent::SessionRefused { .. }),
        }
    ));
}

#[test]
fn an_expired_session_is_refused_and_left_as_stored() {
    let f = setup();
    let before = f.stored();
    match f.beat(f.token.expose(), t(180)) {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionExpired { expired_at },
            audit: Some(AuditEvent::SessionExpired { .. }),
        } => assert_eq!(expired_at, t(180)),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.stored(), before);
}

#[test]
fn unknown_sessions_and_malformed_tokens_are_refused_without_audit() {
    let f = setup();
    let other = setup(); // a session of another gateway, never stored in f's store
    assert!(matches!(
        f.beat(other.token.expose(), t(10)),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionNotFound,
            audit: None
        }
    ));
    assert!(matches!(
        f.beat("not-a-token", t(10)),
        StoredHeartbeat::Refused {
            error: DeviceError::MalformedSessionToken(_),
            audit: None
        }
    ));
}

#[test]
fn a_forged_secret_changes_nothing() {
    let f = setup();
    let before = f.stored();
    assert!(matches!(
        f.beat(&forged(&f.token), t(10)),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionTokenUnrecognised,
            audit: Some(AuditEvent::SessionRefused { .. }),
        }
    ));
    assert_eq!(f.stored(), before);
}

#[test]
fn a_revoked_device_ends_its_stored_session() {
    let f = setup();
    let device = DeviceRegistry::load(&f.registry, &f.device_id)
        .unwrap()
        .unwrap();
    let _ = device
        .revoke(&OperatorId::new("bob").unwrap(), t(5))
        .unwrap()
        .commit(&f.registry)
        .unwrap();
    match f.beat(f.token.expose(), t(10)) {
        StoredHeartbeat::Refused {
            error: DeviceError::Unauthorized,
            audit: Some(AuditEvent::SessionRevoked { reason, .. }),
        } => assert_eq!(reason, SessionEndReason::DeviceNotApproved),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.stored().revoked_at, Some(t(10)));
}

/// A registry from which every device was deleted.
struct NoDevices;

impl DeviceRegistry for NoDevices {
    fn load(&self, _: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        Ok(None)
    }
    fn insert(&self, _: &DeviceRecord) -> Result<(), DeviceError> {
        Err(DeviceError::RegistryUnavailable("read-only".into()))
    }
    fn compare_and_set(&self, _: u64, _: &DeviceRecord) -> Result<(), DeviceError> {
        Err(DeviceError::RegistryUnavailable("read-only".into()))
    }
}

#[test]
fn a_deleted_device_ends_its_session_but_only_for_a_token_the_gateway_issued() {
    let f = setup();
    let before = f.stored();
    let forged_beat = f
        .gateway
        .heartbeat_stored(&forged(&f.token), &f.store, &NoDevices, t(10));
    assert!(matches!(
        forged_beat,
        StoredHeartbeat::Refused {
            error: DeviceError::SessionTokenUnrecognised,
            audit: Some(AuditEvent::SessionRefused { .. }),
        }
    ));
    assert_eq!(f.stored(), before, "a forged token must not revoke");

    let beat = f
        .gateway
        .heartbeat_stored(f.token.expose(), &f.store, &NoDevices, t(11));
    match beat {
        StoredHeartbeat::Refused {
            error: DeviceError::Unauthorized,
            audit: Some(AuditEvent::SessionRevoked { reason, .. }),
        } => assert_eq!(reason, SessionEndReason::DeviceNotApproved),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.stored().revoked_at, Some(t(11)));
    let again = f
        .gateway
        .heartbeat_stored(f.token.expose(), &f.store, &NoDevices, t(12));
    assert!(matches!(
        again,
        StoredHeartbeat::Refused {
            error: DeviceError::SessionRevoked,
            ..
        }
    ));
    assert_eq!(f.stored().revoked_at, Some(t(11)), "revoked once");
}

#[test]
fn an_expired_session_of_a_deleted_device_reads_expired_and_is_not_written() {
    let f = setup();
    let before = f.stored();
    let beat = f
        .gateway
        .heartbeat_stored(f.token.expose(), &f.store, &NoDevices, t(180));
    match beat {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionExpired { expired_at },
            audit: Some(AuditEvent::SessionExpired { .. }),
        } => assert_eq!(expired_at, t(180)),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.stored(), before);
}

/// Wraps the in-memory store: runs `before_first_cas` once, just before the first
/// compare-and-set goes through (a concurrent request that wins the race), and counts
/// compare-and-sets.
struct Racy<'a> {
    inner: &'a InMemoryDeviceSessionStore,
    before_first_cas: std::sync::Mutex<Option<Box<dyn FnOnce() + Send + 'a>>>,
    cas_calls: AtomicUsize,
    always_conflict: bool,
}

impl<'a> Racy<'a> {
    fn new(inner: &'a InMemoryDeviceSessionStore) -> Self {
        Self {
            inner,
            before_first_cas: std::sync::Mutex::new(None),
            cas_calls: AtomicUsize::new(0),
            always_conflict: false,
        }
    }
}

impl DeviceSessionStore for Racy<'_> {
    fn load(&self, id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        DeviceSessionStore::load(self.inner, id)
    }
    fn insert(&self, s: &DeviceSession) -> Result<(), DeviceError> {
        DeviceSessionStore::insert(self.inner, s)
    }
    fn compare_and_set(&self, expected: u64, s: &DeviceSession) -> Result<(), DeviceError> {
        self.cas_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(race) = self.before_first_cas.lock().unwrap().take() {
            race();
        }
        if self.always_conflict {
            return Err(DeviceError::VersionConflict);
        }
        DeviceSessionStore::compare_and_set(self.inner, expected, s)
    }
    fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        DeviceSessionStore::purge_expired(self.inner, now, limit)
    }
}

#[test]
fn a_lost_race_is_decided_again_on_the_winners_record() {
    let f = setup();
    let first = f.token.expose().to_owned();
    for now in [t(60), t(200)] {
        assert!(matches!(
            f.beat(&first, now),
            StoredHeartbeat::Extended { .. }
        ));
    }
    // Two requests with the same token at rotation time: the other one writes first.
    let winner = Arc::new(std::sync::Mutex::new(None));
    let racy = Racy::new(&f.store);
    let (slot, fixture, token) = (Arc::clone(&winner), &f, first.clone());
    *racy.before_first_cas.lock().unwrap() = Some(Box::new(move || {
        *slot.lock().unwrap() = Some(fixture.beat(&token, t(300)));
    }));
    let loser = f
        .gateway
        .heartbeat_stored(&first, &racy, &f.registry, t(300));
    let winner = winner.lock().unwrap().take().expect("the race ran");
    let (
        StoredHeartbeat::Rotated { token: won, .. },
        StoredHeartbeat::Rotated { token, audit, .. },
    ) = (winner, loser)
    else {
        panic!("both requests must get the successor");
    };
    assert_eq!(token.expose(), won.expose(), "one successor for both");
    assert!(matches!(
        audit,
        AuditEvent::SessionRotated {
            repeated: true,
            generation: 1,
            ..
        }
    ));
    assert_eq!(racy.cas_calls.load(Ordering::SeqCst), 2, "one retry");
    let s = f.stored();
    assert_eq!((s.generation, s.revoked_at), (1, None));
}

#[test]
fn a_store_that_always_conflicts_is_given_up_on_after_the_bound() {
    let f = setup();
    let mut racy = Racy::new(&f.store);
    racy.always_conflict = true;
    let before = f.stored();
    let beat = f
        .gateway
        .heartbeat_stored(f.token.expose(), &racy, &f.registry, t(10));
    assert!(matches!(
        beat,
        StoredHeartbeat::Refused {
            error: DeviceError::VersionConflict,
            audit: None
        }
    ));
    assert_eq!(
        racy.cas_calls.load(Ordering::SeqCst),
        MAX_HEARTBEAT_ATTEMPTS
    );
    assert_eq!(f.stored(), before);
}

/// A store and a registry that cannot answer.
struct Down;

impl DeviceSessionStore for Down {
    fn load(&self, _: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        Err(DeviceError::SessionStoreUnavailable(
            "connection refused".into(),
        ))
    }
    fn insert(&self, _: &DeviceSession) -> Result<(), DeviceError> {
        Err(DeviceError::SessionStoreUnavailable(
            "connection refused".into(),
        ))
    }
    fn compare_and_set(&self, _: u64, _: &DeviceSession) -> Result<(), DeviceError> {
        Err(DeviceError::SessionStoreUnavailable(
            "connection refused".into(),
        ))
    }
    fn purge_expired(&self, _: UnixTime, _: usize) -> Result<usize, DeviceError> {
        Err(DeviceError::SessionStoreUnavailable(
            "connection refused".into(),
        ))
    }
}

impl DeviceRegistry for Down {
    fn load(&self, _: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        Err(DeviceError::RegistryUnavailable(
            "connection refused".into(),
        ))
    }
    fn insert(&self, _: &DeviceRecord) -> Result<(), DeviceError> {
        Err(DeviceError::RegistryUnavailable(
            "connection refused".into(),
        ))
    }
    fn compare_and_set(&self, _: u64, _: &DeviceRecord) -> Result<(), DeviceError> {
        Err(DeviceError::RegistryUnavailable(
            "connection refused".into(),
        ))
    }
}

#[test]
fn store_and_registry_failures_are_reported_and_change_nothing() {
    let f = setup();
    let token = f.token.expose();
    assert!(matches!(
        f.gateway.heartbeat_stored(token, &Down, &f.registry, t(10)),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionStoreUnavailable(_),
            audit: None
        }
    ));
    let before = f.stored();
    assert!(matches!(
        f.gateway.heartbeat_stored(token, &f.store, &Down, t(10)),
        StoredHeartbeat::Refused {
            error: DeviceError::RegistryUnavailable(_),
            audit: None
        }
    ));
    assert_eq!(f.stored(), before);
}

#[test]
fn concurrent_heartbeats_rotate_once_and_share_one_successor() {
    let f = Arc::new(setup());
    let first = f.token.expose().to_owned();
    for now in [t(60), t(200)] {
        assert!(matches!(
            f.beat(&first, now),
            StoredHeartbeat::Extended { .. }
        ));
    }
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let outcomes: Vec<StoredHeartbeat> = (0..n)
        .map(|_| {
            let (f, barrier, first) = (Arc::clone(&f), Arc::clone(&barrier), first.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f.beat(&first, t(300))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut successors = Vec::new();
    for outcome in outcomes {
        match outcome {
            StoredHeartbeat::Rotated { token, .. } => successors.push(token.expose().to_owned()),
            StoredHeartbeat::Refused {
                error: DeviceError::VersionConflict,
                audit: None,
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!successors.is_empty());
    assert!(successors.iter().all(|s| s == &successors[0]));
    let s = f.stored();
    assert_eq!((s.generation, s.revoked_at), (1, None));
}

#[test]
fn the_in_memory_store_is_bounded_and_purges_ended_sessions_in_batches() {
    let f = setup();
    let s = f.stored();
    assert_eq!(
        DeviceSessionStore::insert(&f.store, &s),
        Err(DeviceError::SessionExists)
    );
    let small = InMemoryDeviceSessionStore::new(3);
    for (i, last_seen) in [10u64, 20, 30].into_iter().enumerate() {
        let mut s = s.clone();
        s.session_id = SessionId::from_bytes([u8::try_from(i).unwrap(); 16]);
        s.last_seen = t(last_seen);
        DeviceSessionStore::insert(&small, &s).unwrap();
    }
    let mut fourth = s.clone();
    fourth.session_id = SessionId::from_bytes([9; 16]);
    assert_eq!(
        DeviceSessionStore::insert(&small, &fourth),
        Err(DeviceError::SessionStoreFull { capacity: 3 })
    );
    // Expiries: t(190), t(200), t(210). At t(200) two have ended (inclusive bound).
    assert_eq!(small.purge_expired(t(189), 10), Ok(0));
    assert_eq!(small.purge_expired(t(200), 1), Ok(1));
    assert_eq!(small.len(), 2);
    assert_eq!(small.purge_expired(t(200), 10), Ok(1));
    assert_eq!(small.len(), 1);
    DeviceSessionStore::insert(&small, &fourth).unwrap();
    assert_eq!(small.len(), 2);
}

#[test]
fn a_session_update_commits_with_compare_and_set() {
    let f = setup();
    let s = f.stored();
    let update = s.revoke(t(5));
    let stale = s.revoke(t(6));
    assert!(matches!(
        update.commit(&f.store),
        Ok(AuditEvent::SessionRevoked { .. })
    ));
    assert_eq!(stale.commit(&f.store), Err(DeviceError::VersionConflict));
    assert_eq!(f.stored().revoked_at, Some(t(5)));
}

// ---- async ------------------------------------------------------------------------------

/// The in-memory store and registry behind the async traits (their futures are ready at
/// once, so the test polls them without a runtime).
struct AsyncOver<'a> {
    sessions: &'a InMemoryDeviceSessionStore,
    devices: &'a InMemoryDeviceRegistry,
}

impl AsyncDeviceSessionStore for AsyncOver<'_> {
    async fn load(&self, id: &SessionId) -> Result<Option<DeviceSession>, DeviceError> {
        DeviceSessionStore::load(self.sessions, id)
    }
    async fn insert(&self, s: &DeviceSession) -> Result<(), DeviceError> {
        DeviceSessionStore::insert(self.sessions, s)
    }
    async fn compare_and_set(&self, expected: u64, s: &DeviceSession) -> Result<(), DeviceError> {
        DeviceSessionStore::compare_and_set(self.sessions, expected, s)
    }
    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<usize, DeviceError> {
        DeviceSessionStore::purge_expired(self.sessions, now, limit)
    }
}

impl AsyncDeviceRegistry for AsyncOver<'_> {
    async fn load(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, DeviceError> {
        DeviceRegistry::load(self.devices, id)
    }
    async fn insert(&self, r: &DeviceRecord) -> Result<(), DeviceError> {
        DeviceRegistry::insert(self.devices, r)
    }
    async fn compare_and_set(&self, expected: u64, r: &DeviceRecord) -> Result<(), DeviceError> {
        DeviceRegistry::compare_and_set(self.devices, expected, r)
    }
}

fn ready<F: Future>(fut: F) -> F::Output {
    match std::pin::pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory futures complete at once"),
    }
}

#[test]
fn the_async_heartbeat_decides_and_writes_as_the_sync_one() {
    // Two copies of the same records: one driven sync, one async.
    let sync = setup();
    let copy = InMemoryDeviceSessionStore::new(10);
    DeviceSessionStore::insert(&copy, &sync.stored()).unwrap();
    let over = AsyncOver {
        sessions: &copy,
        devices: &sync.registry,
    };
    let first = sync.token.expose().to_owned();
    for (now, token) in [(t(60), &first), (t(200), &first), (t(300), &first)] {
        let a = sync.beat(token, now);
        let b = ready(
            sync.gateway
                .heartbeat_stored_async(token, &over, &over, now),
        );
        match (a, b) {
            (
                StoredHeartbeat::Extended { expires_at: x, .. },
                StoredHeartbeat::Extended { expires_at: y, .. },
            ) => assert_eq!(x, y),
            (
                StoredHeartbeat::Rotated { token: x, .. },
                StoredHeartbeat::Rotated { token: y, .. },
            ) => {
                assert_eq!(x.expose(), y.expose());
            }
            other => panic!("sync and async differ: {other:?}"),
        }
    }
    assert_eq!(
        DeviceSessionStore::load(&copy, &sync.session_id).unwrap(),
        Some(sync.stored())
    );
    // Storing an issued session asynchronously.
    let other = setup();
    let fresh = InMemoryDeviceSessionStore::new(10);
    let stored = DeviceSessionStore::load(&other.store, &other.session_id)
        .unwrap()
        .unwrap();
    let revoke = stored.revoke(t(1));
    DeviceSessionStore::insert(&fresh, &stored).unwrap();
    let over = AsyncOver {
        sessions: &fresh,
        devices: &other.registry,
    };
    assert!(matches!(
        ready(revoke.commit_async(&over)),
        Ok(AuditEvent::SessionRevoked { .. })
    ));
    assert!(matches!(
        ready(
            other
                .gateway
                .heartbeat_stored_async(other.token.expose(), &over, &over, t(2))
        ),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionRevoked,
            ..
        }
    ));
}
