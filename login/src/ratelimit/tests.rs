use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn t(s: u64) -> UnixTime {
    UnixTime::from_secs(s)
}

fn slots<K>(l: &RateLimiter<K>) -> usize {
    l.entries
        .values()
        .map(|e| match e {
            Entry::Sliding { secs, .. } => secs.len(),
            _ => 1,
        })
        .max()
        .unwrap_or(0)
}

/// Per key, the instants of the admitted requests.
type Admitted = HashMap<u8, Vec<u64>>;

/// Runs `events` (key, seconds to advance) through a limiter; returns per key the
/// instants of the admitted requests, checking the bounds that hold at every step.
fn run(
    policy: RatePolicy,
    capacity: usize,
    events: &[(u8, u64)],
) -> (Admitted, Vec<(u8, u64, RateDecision)>) {
    let mut l = RateLimiter::new(policy, capacity).unwrap();
    let mut now = 1_000_000;
    let mut admitted: HashMap<u8, Vec<u64>> = HashMap::new();
    let mut log = Vec::new();
    for &(k, dt) in events {
        now += dt;
        let d = l.check(&k, t(now));
        if d.is_allowed() {
            admitted.entry(k).or_default().push(now);
        }
        log.push((k, now, d));
        // Memory bounded by the key capacity, and per key by the policy.
        assert!(
            l.len() <= capacity,
            "{} keys held, capacity {capacity}",
            l.len()
        );
        if let RatePolicy::SlidingWindow { limit, window_secs } = policy {
            let bound = usize::try_from(u64::from(limit).min(window_secs)).unwrap();
            assert!(slots(&l) <= bound);
        }
    }
    (admitted, log)
}

fn events() -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::vec(
        (
            0u8..6,
            prop_oneof![3 => Just(0u64), 2 => 0u64..3, 1 => 0u64..40],
        ),
        1..400,
    )
}

proptest! {
    #[test]
    fn fixed_window_never_over_limit_per_window(limit in 1u32..8, window in 1u64..20, cap in 1usize..8, ev in events()) {
        let (admitted, _) = run(RatePolicy::FixedWindow { limit, window_secs: window }, cap, &ev);
        for times in admitted.values() {
            let mut per: HashMap<u64, u32> = HashMap::new();
            for s in times {
                *per.entry(s / window).or_default() += 1;
            }
            prop_assert!(per.values().all(|&n| n <= limit));
        }
    }

    #[test]
    fn sliding_window_never_over_limit_in_any_window(limit in 1u32..8, window in 1u64..20, cap in 1usize..8, ev in events()) {
        let (admitted, log) = run(RatePolicy::SlidingWindow { limit, window_secs: window }, cap, &ev);
        for times in admitted.values() {
            // Every window (a - window, a] ending at an admission holds at most `limit`;
            // the count over a window only rises at admissions, so this covers all.
            for &a in times {
                let n = times.iter().filter(|&&s| s + window > a && s <= a).count();
                prop_assert!(n <= limit as usize, "{n} admitted in ({}, {a}]", a - window);
            }
        }
        // And it is exact: a request is refused as Limited only when the window is full.
        let mut seen: HashMap<u8, Vec<u64>> = HashMap::new();
        for (k, now, d) in log {
            let v = seen.entry(k).or_default();
            let in_window = v.iter().filter(|&&s| s + window > now).count();
            match d {
                RateDecision::Allowed { .. } => { prop_assert!(in_window < limit as usize); v.push(now); }
                RateDecision::Limited { retry_after } => {
                    prop_assert!(in_window >= limit as usize);
                    prop_assert!(retry_after.as_secs() > now);
                }
                RateDecision::AtCapacity { .. } => {}
            }
        }
    }

    #[test]
    fn token_bucket_never_over_burst_plus_refill(capacity in 1u32..8, refill in 1u32..4, per in 1u64..10, cap in 1usize..8, ev in events()) {
        let (admitted, _) = run(RatePolicy::TokenBucket { capacity, refill, per_secs: per }, cap, &ev);
        for times in admitted.values() {
            for i in 0..times.len() {
                for j in i..times.len() {
                    let d = times[j] - times[i];
                    let bound = u64::from(capacity) + u64::from(refill) * (d / per + 1);
                    prop_assert!((j - i + 1) as u64 <= bound);
                }
            }
        }
    }
}

#[test]
fn at_capacity_refuses_new_keys_keeps_tracked_ones_and_recovers() {
    let mut l = RateLimiter::new(
        RatePolicy::FixedWindow {
            limit: 2,
            window_secs: 10,
        },
        2,
    )
    .unwrap();
    assert!(l.check(&"a", t(100)).is_allowed());
    assert!(l.check(&"b", t(100)).is_allowed());
    // Full of active keys: a new key is refused, never evicting an active one.
    assert_eq!(
        l.check(&"c", t(101)),
        RateDecision::AtCapacity {
            retry_after: t(102)
        }
    );
    // Tracked keys keep their own limit.
    assert!(l.check(&"a", t(101)).is_allowed());
    assert!(
        matches!(l.check(&"a", t(101)), RateDecision::Limited { retry_after } if retry_after == t(110))
    );
    // A second new key in the same second does not trigger another sweep.
    assert!(matches!(
        l.check(&"d", t(101)),
        RateDecision::AtCapacity { .. }
    ));
    assert_eq!(l.len(), 2);
    // Once the window has passed, the idle entries are swept and the new key gets in.
    assert!(l.check(&"c", t(110)).is_allowed());
    assert!(l.len() <= 2);
}

#[test]
fn sliding_window_of_500_per_30s() {
    let mut l = RateLimiter::new(
        RatePolicy::SlidingWindow {
            limit: 500,
            window_secs: 30,
        },
        10,
    )
    .unwrap();
    for i in 0..500 {
        assert!(l.check(&1u32, t(1000 + i / 20)).is_allowed(), "request {i}");
    }
    // 500 in 1000..=1024: full until the first second leaves the window at 1030.
    let d = l.check(&1u32, t(1025));
    assert_eq!(
        d,
        RateDecision::Limited {
            retry_after: t(1030)
        }
    );
    assert!(l.check(&1u32, t(1030)).is_allowed());
}

#[test]
fn token_bucket_bursts_then_refills() {
    let mut l = RateLimiter::new(
        RatePolicy::TokenBucket {
            capacity: 3,
            refill: 1,
            per_secs: 5,
        },
        1,
    )
    .unwrap();
    for _ in 0..3 {
        assert!(l.check(&(), t(10)).is_allowed());
    }
    assert_eq!(
        l.check(&(), t(12)),
        RateDecision::Limited { retry_after: t(15) }
    );
    assert!(l.check(&(), t(15)).is_allowed());
    assert!(!l.check(&(), t(16)).is_allowed());
}

#[test]
fn bad_policies_are_refused() {
    for p in [
        RatePolicy::FixedWindow {
            limit: 0,
            window_secs: 1,
        },
        RatePolicy::SlidingWindow {
            limit: 1,
            window_secs: 0,
        },
        RatePolicy::SlidingWindow {
            limit: 1,
            window_secs: MAX_WINDOW_SECS + 1,
        },
        RatePolicy::TokenBucket {
            capacity: 1,
            refill: 0,
            per_secs: 1,
        },
    ] {
        assert!(RateLimiter::<u8>::new(p, 1).is_err(), "{p:?}");
    }
    assert!(
        RateLimiter::<u8>::new(
            RatePolicy::FixedWindow {
                limit: 1,
                window_secs: 1
            },
            0
        )
        .is_err()
    );
}
