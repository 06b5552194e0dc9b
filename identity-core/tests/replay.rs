//! The in-memory replay log: atomicity under threads, bounds, expiry by whole buckets,
//! fail-closed behaviour, and the key derivation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use handoff_core::UnixTime;
use handoff_core::replay::{
    InMemoryReplayLog, ReplayKey, ReplayLog, ReplayRefused, ReplayStoreError, ReplayVerdict,
    Unconfirmed,
};

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(s)
}

fn k(i: u64) -> ReplayKey {
    ReplayKey::derive("test/jti", &[b"issuer", &i.to_le_bytes()])
}

#[test]
fn an_entry_is_kept_exactly_until_its_until_and_then_freed() {
    let log = InMemoryReplayLog::with_buckets(100, 10, 3_600);
    assert_eq!(
        log.check_and_insert(&k(1), t(1_005), t(1_000)).unwrap(),
        ReplayVerdict::Fresh
    );
    for now in [1_000, 1_004, 1_005] {
        assert_eq!(
            log.check_and_insert(&k(1), t(1_005), t(now)).unwrap(),
            ReplayVerdict::Replayed,
            "now {now}"
        );
    }
    assert_eq!(log.len(), 1);
    // once `now` passes the end of the entry's bucket, the whole bucket goes
    assert_eq!(
        log.check_and_insert(&k(2), t(1_100), t(1_010)).unwrap(),
        ReplayVerdict::Fresh
    );
    assert_eq!(
        log.check_and_insert(&k(3), t(1_100), t(1_010)).unwrap(),
        ReplayVerdict::Fresh
    );
    // entries of other shards are purged lazily; k(1)'s shard is purged on its next call
    assert_eq!(
        log.check_and_insert(&k(1), t(1_100), t(1_010)).unwrap(),
        ReplayVerdict::Fresh
    );
}

#[test]
fn values_past_their_window_are_refused_and_far_futures_are_bounded() {
    let log = InMemoryReplayLog::with_buckets(100, 10, 600);
    assert_eq!(
        log.check_and_insert(&k(1), t(99), t(100)).unwrap(),
        ReplayVerdict::Replayed
    );
    assert_eq!(
        log.check_and_insert(&k(2), t(701), t(100)).unwrap(),
        ReplayVerdict::AtCapacity
    );
    assert_eq!(
        log.check_and_insert(&k(2), t(700), t(100)).unwrap(),
        ReplayVerdict::Fresh
    );
    assert_eq!(log.len(), 1);
}

#[test]
fn a_full_log_fails_closed_and_recovers_as_entries_expire() {
    let log = InMemoryReplayLog::with_buckets(160, 10, 3_600);
    let mut fresh = Vec::new();
    let mut full = 0;
    for i in 0..2_000 {
        match log.check_and_insert(&k(i), t(200), t(100)).unwrap() {
            ReplayVerdict::Fresh => fresh.push(i),
            ReplayVerdict::AtCapacity => full += 1,
            ReplayVerdict::Replayed => panic!("distinct keys"),
        }
    }
    assert_eq!(fresh.len(), 160, "the capacity is global and exact");
    assert_eq!(full, 2_000 - 160);
    assert_eq!(log.len(), 160);
    // no live entry was evicted
    for &i in &fresh {
        assert_eq!(
            log.check_and_insert(&k(i), t(200), t(150)).unwrap(),
            ReplayVerdict::Replayed
        );
    }
    // after expiry, capacity is available again
    let accepted = (2_000..4_000)
        .filter(|&i| log.check_and_insert(&k(i), t(400), t(210)).unwrap() == ReplayVerdict::Fresh)
        .count();
    assert_eq!(accepted, 160);
}

#[test]
fn expiry_keeps_memory_bounded_over_a_long_run() {
    let log = InMemoryReplayLog::with_buckets(1_000, 10, 3_600);
    // 100 new values per second, each kept 60 s, for an hour: never more than ~70 s worth
    let mut max_len = 0;
    let mut n = 0;
    for sec in 0..3_600u64 {
        let now = t(10_000 + sec);
        for _ in 0..5 {
            n += 1;
            assert_eq!(
                log.check_and_insert(&k(n), now.saturating_add(60), now)
                    .unwrap(),
                ReplayVerdict::Fresh
            );
        }
        max_len = max_len.max(log.len());
    }
    assert!(max_len <= 5 * 80, "{max_len}");
}

#[test]
fn concurrent_check_and_insert_yields_exactly_one_fresh_per_key() {
    let log = Arc::new(InMemoryReplayLog::new(100_000));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..2_000u64)
                    .filter(|&i| {
                        log.check_and_insert(&k(i), t(500), t(100)).unwrap() == ReplayVerdict::Fresh
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in threads {
        all.extend(h.join().unwrap());
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 2_000, "each key fresh exactly once");
    assert_eq!(unique.len(), 2_000);
}

#[test]
fn replay_keys_are_domain_separated() {
    let a = ReplayKey::derive("dpop/jti", &[b"x"]);
    assert_ne!(a, ReplayKey::derive("host/jti", &[b"x"]));
    assert_ne!(
        ReplayKey::derive("p", &[b"ab", b"c"]),
        ReplayKey::derive("p", &[b"a", b"bc"])
    );
    assert_ne!(ReplayKey::derive("p", &[b""]), ReplayKey::derive("p", &[]));
    assert_ne!(
        ReplayKey::derive("pa", &[b"b"]),
        ReplayKey::derive("p", &[b"ab"])
    );
    assert_eq!(ReplayKey::from_bytes(*a.as_bytes()), a);
    assert_eq!(a.to_hex().len(), 64);
    assert!(
        a.to_hex()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

/// A store that cannot answer: the value must be refused, never let through.
struct Down;
impl ReplayLog for Down {
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
fn a_failing_store_refuses_the_value() {
    let u = Unconfirmed::new("claims", k(1), t(200));
    assert!(matches!(
        u.confirm(&Down, t(100)),
        Err(ReplayRefused::Store(_))
    ));
    let u = Unconfirmed::new("claims", k(1), t(200)).map(str::len);
    assert_eq!(*u.replay_key(), k(1));
    assert_eq!(u.until(), t(200));
    assert_eq!(
        u.confirm_with(ReplayVerdict::AtCapacity),
        Err(ReplayRefused::AtCapacity)
    );
    // Debug of an unconfirmed value shows the key, not the value
    let u = Unconfirmed::new("secret-claims", k(1), t(200));
    assert!(!format!("{u:?}").contains("secret-claims"));
    assert_eq!(u.confirm_with(ReplayVerdict::Fresh), Ok("secret-claims"));
}
