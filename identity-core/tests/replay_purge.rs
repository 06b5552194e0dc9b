//! Regression tests of issue 18, finding 4: the replay log purges a mass expiry in
//! bounded steps, so no single `check_and_insert` stalls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_core::UnixTime;
use handoff_core::replay::{InMemoryReplayLog, PURGE_STEP, ReplayKey, ReplayLog, ReplayVerdict};

// --------------------------------------------- finding 4: bounded purge per insert call

fn rk(i: u64) -> ReplayKey {
    ReplayKey::derive("test/jti", &[b"hardening", &i.to_le_bytes()])
}

#[test]
fn a_mass_expiry_is_purged_a_bounded_step_per_call() {
    const N: u64 = 32_000;
    let log = InMemoryReplayLog::with_buckets(N as usize + 1_000, 10, 3_600);
    let t0 = UnixTime::from_secs(1_000_000);
    for i in 0..N {
        assert_eq!(
            log.check_and_insert(&rk(i), t0.saturating_add(60), t0)
                .unwrap(),
            ReplayVerdict::Fresh
        );
    }
    assert_eq!(log.len(), N as usize);
    // Everything expires at once. Each later call may purge at most PURGE_STEP entries
    // (measured through `len`, which counts entries held): none stalls on a whole shard.
    let later = t0.saturating_add(3_000);
    let mut held = log.len();
    let mut calls = 0u64;
    while held > 1_000 {
        let v = log
            .check_and_insert(&rk(N + calls), later.saturating_add(60), later)
            .unwrap();
        assert_eq!(v, ReplayVerdict::Fresh);
        let now_held = log.len();
        let purged = held + 1 - now_held;
        assert!(
            purged <= PURGE_STEP,
            "one call purged {purged} entries (bound {PURGE_STEP})"
        );
        held = now_held;
        calls += 1;
        assert!(
            calls < N,
            "the backlog must shrink: amortised O(1) per entry"
        );
    }
    // The live entries inserted meanwhile are all still there.
    for i in 0..calls {
        assert_eq!(
            log.check_and_insert(&rk(N + i), later.saturating_add(60), later)
                .unwrap(),
            ReplayVerdict::Replayed
        );
    }
}

#[test]
fn a_full_log_of_expired_entries_still_admits_a_fresh_value() {
    let log = InMemoryReplayLog::with_buckets(10_000, 10, 3_600);
    let t0 = UnixTime::from_secs(1_000_000);
    for i in 0..10_000 {
        let _ = log
            .check_and_insert(&rk(i), t0.saturating_add(5), t0)
            .unwrap();
    }
    assert_eq!(log.len(), 10_000);
    assert_eq!(
        log.check_and_insert(&rk(99_999), t0.saturating_add(5), t0)
            .unwrap(),
        ReplayVerdict::AtCapacity,
        "full of live entries: fail closed"
    );
    let later = t0.saturating_add(100);
    for i in 0..1_000 {
        assert_eq!(
            log.check_and_insert(&rk(100_000 + i), later.saturating_add(5), later)
                .unwrap(),
            ReplayVerdict::Fresh,
            "call {i}: expired entries make room"
        );
        assert!(log.len() <= 10_000);
    }
}
