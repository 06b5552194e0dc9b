//! The [`DeviceSessionStore`] contract, run against any store (included with `#[path]` by
//! the engine tests that need it): round trip of every field, the i64 boundary, duplicate
//! inserts, compare-and-set, the bounded purge, and a real gateway's heartbeats end to end.
#![allow(dead_code)]

use std::sync::{Barrier, OnceLock};

use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_device::{
    AsyncDeviceRegistry, AsyncDeviceSessionStore, AuditEvent, DeviceCredentials, DeviceError,
    DeviceId, DeviceRecord, DeviceRegistry, DeviceSession, DeviceSessionStore, Gateway, GatewayId,
    IssuedSession, KeyId, OperatorId, SessionEndReason, SessionId, SessionPolicy, SessionToken,
    StoredHeartbeat, StoredSession, body_hash,
};

/// The gateways' boot time, an hour past the wall clock when the test binary first asks;
/// heartbeat times are `t(seconds after it)`. Not a fixed instant: the Redis store hands
/// each record's `expires_at` to the server as an absolute expiry on the server's clock,
/// so a session made at a past instant would be deleted as soon as it is written (the
/// SQL stores read no clock, any instant does for them). An hour ahead, so that a test
/// starting late in its binary still writes sessions that end in the future.
pub(crate) fn boot() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| crate::common::wall_secs() + 3_600)
}

pub(crate) fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(boot() + s)
}

/// Idle 180 s, absolute 1 000 s, rotate after 300 s, overlap 30 s.
pub(crate) fn policy() -> SessionPolicy {
    SessionPolicy {
        idle_timeout: 180,
        max_lifetime: 1_000,
        rotate_after: 300,
        overlap: 30,
    }
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A record with a distinct value in every field, previous hash and revocation set.
fn sample(id: u8) -> DeviceSession {
    DeviceSession {
        session_id: SessionId::from_bytes([id; 16]),
        device_id: DeviceId::new(format!("dev-c{id}")).unwrap(),
        created_at: UnixTime::from_secs(2_000_000_000),
        last_seen: UnixTime::from_secs(2_000_000_500),
        idle_timeout: 180,
        max_lifetime: 86_400,
        rotated_at: UnixTime::from_secs(2_000_000_400),
        current_hash: [id.wrapping_add(1); 32],
        previous_hash: Some([id.wrapping_add(2); 32]),
        overlap_until: UnixTime::from_secs(2_000_000_430),
        generation: 3,
        revoked_at: Some(UnixTime::from_secs(2_000_000_600)),
        version: 7,
    }
}

/// A fresh record (no previous hash, not revoked) that ends at `t(ends)`.
pub(crate) fn ending_at(id: u8, ends: u64) -> DeviceSession {
    DeviceSession {
        created_at: t(0),
        last_seen: t(ends - 180),
        rotated_at: t(0),
        previous_hash: None,
        overlap_until: t(0),
        generation: 0,
        revoked_at: None,
        version: 0,
        ..sample(id)
    }
}

/// The store's error for a record it refuses to write: unavailable, naming `column`.
fn refused_naming(res: Result<(), DeviceError>, column: &str) {
    match res {
        Err(DeviceError::SessionStoreUnavailable(msg)) => {
            assert!(msg.contains(column), "{msg} does not name {column}");
        }
        other => panic!("expected SessionStoreUnavailable naming {column}, got {other:?}"),
    }
}

/// Insert, load, duplicate, the i64 boundary, compare-and-set.
pub(crate) fn round_trip_and_compare_and_set(store: &dyn DeviceSessionStore) {
    let s = sample(1);
    store.insert(&s).unwrap();
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&s));
    assert_eq!(
        store.load(&SessionId::from_bytes([0xee; 16])).unwrap(),
        None
    );
    // No previous hash, not revoked: NULLs come back as None.
    let plain = DeviceSession {
        previous_hash: None,
        revoked_at: None,
        ..sample(2)
    };
    store.insert(&plain).unwrap();
    assert_eq!(
        store.load(&plain.session_id).unwrap().as_ref(),
        Some(&plain)
    );

    // A duplicate id is refused whatever the rest of the record, and changes nothing.
    assert_eq!(store.insert(&s), Err(DeviceError::SessionExists));
    let other = DeviceSession {
        version: 0,
        ..plain.clone()
    };
    let other = DeviceSession {
        session_id: s.session_id,
        ..other
    };
    assert_eq!(store.insert(&other), Err(DeviceError::SessionExists));
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&s));

    // i64::MAX is the largest every number column holds, and comes back as written.
    let max = u64::try_from(i64::MAX).unwrap();
    let at_max = DeviceSession {
        session_id: SessionId::from_bytes([3; 16]),
        created_at: UnixTime::from_secs(0),
        last_seen: UnixTime::from_secs(max),
        idle_timeout: max,
        max_lifetime: max,
        rotated_at: UnixTime::from_secs(max),
        overlap_until: UnixTime::from_secs(max),
        generation: max,
        revoked_at: Some(UnixTime::from_secs(max)),
        version: max,
        ..sample(3)
    };
    assert_eq!(at_max.expires_at(), UnixTime::from_secs(max));
    store.insert(&at_max).unwrap();
    assert_eq!(
        store.load(&at_max.session_id).unwrap().as_ref(),
        Some(&at_max)
    );
    // One more is refused by name, never wrapped, and nothing is written.
    let past = |f: &dyn Fn(&mut DeviceSession)| {
        let mut bad = sample(4);
        f(&mut bad);
        bad
    };
    for (bad, column) in [
        (past(&|s| s.version = max + 1), "device_sessions.version"),
        (
            past(&|s| s.generation = u64::MAX),
            "device_sessions.generation",
        ),
        (
            past(&|s| s.idle_timeout = max + 1),
            "device_sessions.idle_timeout",
        ),
        (
            past(&|s| s.revoked_at = Some(UnixTime::from_secs(max + 1))),
            "device_sessions.revoked_at",
        ),
        (
            // Every column fits, but the session would end past i64::MAX.
            past(&|s| {
                s.created_at = UnixTime::from_secs(max);
                s.last_seen = UnixTime::from_secs(max);
            }),
            "device_sessions.expires_at",
        ),
    ] {
        refused_naming(store.insert(&bad), column);
        assert_eq!(store.load(&bad.session_id).unwrap(), None, "{column}");
    }

    // Compare-and-set: the right version replaces the record, a stale one conflicts.
    let mut next = s.clone();
    next.last_seen = next.last_seen.saturating_add(60);
    next.previous_hash = None;
    next.revoked_at = None;
    next.generation += 1;
    next.version += 1;
    store.compare_and_set(s.version, &next).unwrap();
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&next));
    let mut stale = next.clone();
    stale.version += 1;
    assert_eq!(
        store.compare_and_set(s.version, &stale),
        Err(DeviceError::VersionConflict)
    );
    assert_eq!(
        store.compare_and_set(u64::MAX, &stale),
        Err(DeviceError::VersionConflict)
    );
    let unknown = DeviceSession {
        session_id: SessionId::from_bytes([0xef; 16]),
        ..next.clone()
    };
    assert_eq!(
        store.compare_and_set(next.version, &unknown),
        Err(DeviceError::VersionConflict)
    );
    assert_eq!(store.load(&unknown.session_id).unwrap(), None);
    // A record the columns cannot hold is refused by name; the stored one stays.
    let mut too_big = next.clone();
    too_big.version = max + 1;
    refused_naming(
        store.compare_and_set(next.version, &too_big),
        "device_sessions.version",
    );
    assert_eq!(store.load(&s.session_id).unwrap().as_ref(), Some(&next));
    // The max-valued record can be replaced too (its version is i64::MAX).
    let mut lowered = at_max.clone();
    lowered.version = 0;
    store.compare_and_set(max, &lowered).unwrap();
    assert_eq!(
        store.load(&at_max.session_id).unwrap().as_ref(),
        Some(&lowered)
    );
}

/// `purge_expired`: `expires_at <= now`, at most `limit` per call, live records kept.
/// Uses ids 0x40 and up; the store must hold nothing else ending before `t(1 000)`.
pub(crate) fn purge_is_bounded_and_exact(store: &dyn DeviceSessionStore) {
    let ends = 280;
    let mut ended: Vec<DeviceSession> = (0..5).map(|i| ending_at(0x40 + i, ends)).collect();
    // A revoked record goes too once its expiry has passed.
    ended[4].revoked_at = Some(t(50));
    let live = ending_at(0x50, ends + 1);
    for s in ended.iter().chain([&live]) {
        store.insert(s).unwrap();
    }
    assert_eq!(ended[0].expires_at(), t(ends));
    // One second before: nothing has ended.
    assert_eq!(store.purge_expired(t(ends - 1), 100).unwrap(), 0);
    assert_eq!(store.purge_expired(t(ends), 0).unwrap(), 0);
    // At the expiry instant: all five, two at a time.
    assert_eq!(store.purge_expired(t(ends), 2).unwrap(), 2);
    assert_eq!(store.purge_expired(t(ends), 2).unwrap(), 2);
    assert_eq!(store.purge_expired(t(ends), 2).unwrap(), 1);
    assert_eq!(store.purge_expired(t(ends), 2).unwrap(), 0);
    for s in &ended {
        assert_eq!(store.load(&s.session_id).unwrap(), None);
    }
    assert_eq!(store.load(&live.session_id).unwrap().as_ref(), Some(&live));
    assert_eq!(store.purge_expired(t(ends + 1), 100).unwrap(), 1);
    assert_eq!(store.load(&live.session_id).unwrap(), None);
}

/// Purges everything (a `now` past every expiry, beyond `i64::MAX` too) and returns how
/// many records that was.
pub(crate) fn purge_all(store: &dyn DeviceSessionStore) -> usize {
    let mut total = 0;
    loop {
        let n = store
            .purge_expired(UnixTime::from_secs(u64::MAX), 3)
            .unwrap();
        assert!(n <= 3);
        total += n;
        if n == 0 {
            return total;
        }
    }
}

/// A gateway, its approved device `device` in `devices`, and a session issued to it at
/// `t(0)` by a real handshake and stored in `sessions`.
pub(crate) struct Fixture {
    pub(crate) gateway: Gateway,
    pub(crate) session_id: SessionId,
    pub(crate) token: SessionToken,
}

/// An approved device in `devices` and a real handshake at `t(0)`; the issued session is
/// returned unstored.
pub(crate) fn handshake(devices: &dyn DeviceRegistry, device: &str) -> (Gateway, IssuedSession) {
    let mut rng = rng();
    let gateway = Gateway::builder(
        GatewayId::new("gw-stores").unwrap(),
        t(0),
        HmacSecret::generate(&mut rng),
    )
    .session_policy(policy())
    .build()
    .unwrap();
    let secret = HmacSecret::generate(&mut rng);
    let (d, k) = (DeviceId::new(device).unwrap(), KeyId::new("k1").unwrap());
    let req = DeviceRecord::request_pairing(d.clone(), k.clone(), secret.clone(), t(0), 60);
    devices.insert(&req.record).unwrap();
    let alice = OperatorId::new("alice").unwrap();
    let _ = req
        .record
        .approve(&alice, t(0))
        .unwrap()
        .commit(devices)
        .unwrap();
    let wire = DeviceCredentials::new(d.clone(), k, secret)
        .handshake(gateway.gateway_id(), t(0), body_hash(b""), &mut rng)
        .to_wire();
    let issued = gateway
        .handshake(
            wire.as_bytes(),
            b"",
            devices,
            &InMemoryReplayLog::new(100),
            t(0),
            &mut rng,
        )
        .unwrap();
    assert_eq!(issued.session.device_id, d);
    (gateway, issued)
}

/// [`handshake`], the session stored with `IssuedSession::store`.
pub(crate) fn stored_session(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
    device: &str,
) -> Fixture {
    let (gateway, issued) = handshake(devices, device);
    let want = issued.session.clone();
    let stored = issued.store(sessions).unwrap();
    assert_eq!(stored.expires_at, t(180));
    assert_eq!(sessions.load(&stored.session_id).unwrap(), Some(want));
    Fixture {
        gateway,
        session_id: stored.session_id,
        token: stored.token,
    }
}

/// The successor token of a `Rotated` outcome, else a panic naming `what`.
pub(crate) fn rotated(outcome: StoredHeartbeat, what: &str) -> SessionToken {
    match outcome {
        StoredHeartbeat::Rotated { token, .. } => token,
        other => panic!("{what}: expected Rotated, got {other:?}"),
    }
}

/// A real gateway's heartbeats through the store, then the purge of the revoked record
/// at its expiry: [`heartbeats_to_revocation`], then `purge_expired` takes the record at
/// its `expires_at`, not a second before, and its token reads "not found".
pub(crate) fn heartbeats_end_to_end(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
) {
    let Revoked {
        fixture: f,
        successor: second,
        record: stored,
    } = heartbeats_to_revocation(sessions, devices);
    let beat = |token: &str, at: u64| f.gateway.heartbeat_stored(token, sessions, devices, t(at));
    // The revoked record stays until its expiry, then the purge takes it.
    let ends = stored.expires_at();
    assert_eq!(sessions.purge_expired(t(499), 10).unwrap(), 0);
    assert_eq!(sessions.purge_expired(ends, 10).unwrap(), 1);
    assert!(matches!(
        beat(second.expose(), 345),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionNotFound,
            ..
        }
    ));
}

/// What [`heartbeats_to_revocation`] leaves behind.
pub(crate) struct Revoked {
    /// The gateway and the session.
    pub(crate) fixture: Fixture,
    /// The token the rotation issued (now refused as revoked).
    pub(crate) successor: SessionToken,
    /// The stored revoked record, ending at `t(500)`.
    pub(crate) record: DeviceSession,
}

/// A real gateway's heartbeats through the store: extended, rotated after `rotate_after`,
/// the previous token inside the overlap gets the same successor, after the overlap it
/// revokes the session (`SessionTokenReused`), and the revoked record is what is stored
/// (and read back as revoked).
pub(crate) fn heartbeats_to_revocation(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
) -> Revoked {
    let f = stored_session(sessions, devices, "dev-e2e");
    let beat = |token: &str, at: u64| f.gateway.heartbeat_stored(token, sessions, devices, t(at));
    let first = f.token.expose().to_owned();
    match beat(&first, 60) {
        StoredHeartbeat::Extended { expires_at, .. } => assert_eq!(expires_at, t(240)),
        other => panic!("expected Extended, got {other:?}"),
    }
    assert!(matches!(
        beat(&first, 200),
        StoredHeartbeat::Extended { .. }
    ));
    let stored = sessions.load(&f.session_id).unwrap().unwrap();
    assert_eq!((stored.last_seen, stored.generation), (t(200), 0));
    let second = rotated(beat(&first, 300), "heartbeat past rotate_after");
    assert_ne!(second.expose(), first);
    let stored = sessions.load(&f.session_id).unwrap().unwrap();
    assert_eq!(stored.generation, 1);
    assert_eq!(stored.rotated_at, t(300));
    assert!(stored.previous_hash.is_some());
    // Inside the overlap the previous token gets the same successor again.
    let again = rotated(beat(&first, 310), "previous token inside the overlap");
    assert_eq!(again.expose(), second.expose());
    assert!(matches!(
        beat(second.expose(), 320),
        StoredHeartbeat::Extended { .. }
    ));
    // After the overlap the previous token is a reuse: the session is revoked.
    match beat(&first, 340) {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionTokenReused,
            audit: Some(AuditEvent::SessionRevoked { reason, .. }),
        } => assert_eq!(reason, SessionEndReason::TokenReuse),
        other => panic!("expected SessionTokenReused, got {other:?}"),
    }
    let stored = sessions.load(&f.session_id).unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(t(340)));
    assert!(matches!(
        beat(second.expose(), 345),
        StoredHeartbeat::Refused {
            error: DeviceError::SessionRevoked,
            ..
        }
    ));
    assert_eq!(stored.expires_at(), t(320 + 180));
    Revoked {
        fixture: f,
        successor: second,
        record: stored,
    }
}

/// `threads` heartbeats with the same token at once, past `rotate_after`: every accepted
/// one is `Rotated` with the same successor, the others only lost the race
/// (`VersionConflict`), and the stored record is generation 1, not revoked.
pub(crate) fn concurrent_rotation(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
    threads: usize,
) {
    let f = stored_session(sessions, devices, "dev-race");
    assert!(matches!(
        f.gateway
            .heartbeat_stored(f.token.expose(), sessions, devices, t(150)),
        StoredHeartbeat::Extended { .. }
    ));
    let start = Barrier::new(threads);
    let outcomes: Vec<StoredHeartbeat> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    f.gateway
                        .heartbeat_stored(f.token.expose(), sessions, devices, t(310))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let next = one_successor(&outcomes);
    let stored = sessions.load(&f.session_id).unwrap().unwrap();
    assert_eq!(stored.generation, 1, "{stored:?}");
    assert_eq!(stored.revoked_at, None);
    assert_eq!(stored.rotated_at, t(310));
    // The successor every winner got is the one the record holds.
    assert!(matches!(
        f.gateway.heartbeat_stored(&next, sessions, devices, t(320)),
        StoredHeartbeat::Extended { .. }
    ));
}

/// The outcomes of concurrent heartbeats with one token: every accepted one is `Rotated`
/// with the same successor (returned), the others only lost the race
/// (`VersionConflict`), and at least one was accepted.
pub(crate) fn one_successor(outcomes: &[StoredHeartbeat]) -> String {
    let mut successor: Option<String> = None;
    for outcome in outcomes {
        match outcome {
            StoredHeartbeat::Rotated { token, .. } => {
                let text = token.expose().to_owned();
                assert_eq!(successor.get_or_insert_with(|| text.clone()), &text);
            }
            StoredHeartbeat::Refused {
                error: DeviceError::VersionConflict,
                ..
            } => {}
            other => panic!("a concurrent heartbeat may only rotate or lose: {other:?}"),
        }
    }
    successor.unwrap_or_else(|| panic!("no heartbeat rotated: {outcomes:?}"))
}

/// `f`'s session row, corrupted behind the store's back (`what` did it), is [`refused`];
/// then the purge (which reads no row) removes it and `good` is stored again.
pub(crate) fn refused_then_restored(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
    f: &Fixture,
    good: &DeviceSession,
    what: &str,
    want: &str,
) {
    refused(sessions, devices, f, what, want);
    assert_eq!(purge_all(sessions), 1, "{what}");
    sessions.insert(good).unwrap();
    assert_eq!(sessions.load(&f.session_id).unwrap().as_ref(), Some(good));
}

/// `f`'s stored session, corrupted behind the store's back (`what` did it), is refused
/// naming `want` by `load` and by a heartbeat: no panic, no empty answer, no audit event.
pub(crate) fn refused(
    sessions: &dyn DeviceSessionStore,
    devices: &dyn DeviceRegistry,
    f: &Fixture,
    what: &str,
    want: &str,
) {
    match sessions.load(&f.session_id) {
        Err(DeviceError::SessionStoreUnavailable(msg)) => {
            assert!(msg.contains(want), "{what}: {msg}");
        }
        other => panic!("{what}: expected SessionStoreUnavailable, got {other:?}"),
    }
    match f
        .gateway
        .heartbeat_stored(f.token.expose(), sessions, devices, t(10))
    {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionStoreUnavailable(msg),
            audit: None,
        } => assert!(msg.contains(want), "{what}: {msg}"),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// `issued` stored in an async store with `IssuedSession::store_async`: read back as
/// issued, and a second insert of it refused.
pub(crate) async fn stored_async<S: AsyncDeviceSessionStore>(
    issued: IssuedSession,
    sessions: &S,
) -> StoredSession {
    let want = issued.session.clone();
    let stored = issued.store_async(sessions).await.unwrap();
    assert_eq!(
        sessions.load(&stored.session_id).await.unwrap().as_ref(),
        Some(&want)
    );
    assert_eq!(
        sessions.insert(&want).await,
        Err(DeviceError::SessionExists)
    );
    stored
}

/// An async store's heartbeats (`Gateway::heartbeat_stored_async`) of the session stored
/// as `want`, whose token is `first`: extended, rotated past `rotate_after`, eight
/// concurrent heartbeats of the previous token inside the overlap all get the same
/// successor or lost the race, the successor extends, the previous token after the
/// overlap revokes the session, and a stale compare-and-set loses. Returns the stored
/// revoked record (ending at `t(500)`).
pub(crate) async fn async_heartbeats<S, D>(
    gateway: &Gateway,
    sessions: &S,
    registry: &D,
    first: &str,
    want: &DeviceSession,
) -> DeviceSession
where
    S: AsyncDeviceSessionStore,
    D: AsyncDeviceRegistry,
{
    let beat = |token: String, at: u64| async move {
        gateway
            .heartbeat_stored_async(&token, sessions, registry, t(at))
            .await
    };
    assert!(matches!(
        beat(first.to_owned(), 150).await,
        StoredHeartbeat::Extended { .. }
    ));
    let second = rotated(beat(first.to_owned(), 300).await, "async rotation");
    // Eight concurrent heartbeats of the previous token inside the overlap: all get the
    // same successor, or lost the race.
    let tasks: Vec<_> = (0..8).map(|_| beat(first.to_owned(), 310)).collect();
    let outcomes = join_all(tasks).await;
    assert_eq!(one_successor(&outcomes), second.expose());
    assert!(matches!(
        beat(second.expose().to_owned(), 320).await,
        StoredHeartbeat::Extended { .. }
    ));
    match beat(first.to_owned(), 340).await {
        StoredHeartbeat::Refused {
            error: DeviceError::SessionTokenReused,
            ..
        } => {}
        other => panic!("expected SessionTokenReused, got {other:?}"),
    }
    let revoked = sessions.load(&want.session_id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t(340)));
    assert_eq!(revoked.generation, 1);
    assert_eq!(revoked.expires_at(), t(500));
    // A stale compare-and-set loses.
    assert_eq!(
        sessions.compare_and_set(want.version, want).await,
        Err(DeviceError::VersionConflict)
    );
    revoked
}

/// Polls the futures together until all are done and returns their outputs in order.
/// They borrow the test's locals, so they share this task instead of being spawned;
/// each heartbeat still sends its own commands (a pooled connection each, or requests
/// multiplexed on one), so they interleave on the server.
pub(crate) async fn join_all<F>(futures: Vec<F>) -> Vec<StoredHeartbeat>
where
    F: std::future::Future<Output = StoredHeartbeat>,
{
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<StoredHeartbeat>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}
