//! The shared rate limiter against a real Redis / Valkey (`STORES_REDIS_URL`): 8
//! concurrent connections never get more than the limit through.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use handoff_core::UnixTime;
use handoff_stores::redis_ratelimit::{RedisRateDecision, RedisRateLimiter, RedisRatePolicy};

const THREADS: usize = 8;

/// The url, or `None` after a loud skip (one line on the real stderr, counted by
/// `.ci/test`); a failure when `CI` is set.
fn url(test: &str) -> Option<String> {
    handoff_test_support::need_env(
        &format!("handoff-stores redis rate limiter ({test})"),
        "STORES_REDIS_URL",
        "a Redis server",
    )
}

fn wall() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A prefix no other test or helper uses.
fn prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("login-rl:{tag}:{}:{nanos}:", std::process::id())
}

/// 8 threads, each on its own connection, hammer one key with `attempts` requests at the
/// instants `now(thread, i)`; returns the instants the admitted requests were counted at.
fn hammer(
    url: &str,
    limiter: &Arc<RedisRateLimiter>,
    key: &'static [u8],
    attempts: u32,
    now: fn(usize, u32) -> u64,
) -> Vec<u64> {
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (limiter, admitted, barrier) = (limiter.clone(), admitted.clone(), barrier.clone());
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..attempts {
                    let d = limiter
                        .check(&mut conn, key, UnixTime::from_secs(now(t, i)))
                        .unwrap();
                    if let RedisRateDecision::Allowed { counted_at, .. } = d {
                        admitted.lock().unwrap().push(counted_at.as_secs());
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut v = admitted.lock().unwrap().clone();
    v.sort_unstable();
    v
}

/// A clock shared by the threads, advancing one second every 10 requests: the threads'
/// readings interleave and arrive at the server slightly out of order, as instances'
/// clocks do.
static TICKS: AtomicU64 = AtomicU64::new(0);
fn shared_clock(_: usize, _: u32) -> u64 {
    base() + TICKS.fetch_add(1, Ordering::Relaxed) / 10
}

static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
fn base() -> u64 {
    *BASE.get_or_init(|| wall() - wall() % 3600)
}

#[test]
fn fixed_window_eight_connections_never_over_limit() {
    let Some(url) = url("fixed_window_eight_connections_never_over_limit") else {
        return;
    };
    let limiter = Arc::new(
        RedisRateLimiter::new(
            RedisRatePolicy::FixedWindow {
                limit: 100,
                window_secs: 3600,
            },
            prefix("fixed"),
        )
        .unwrap(),
    );
    // 8 x 50 = 400 attempts inside one window: exactly the limit passes.
    let n = hammer(&url, &limiter, b"client-1", 50, |_, i| {
        base() + u64::from(i % 7)
    });
    assert_eq!(n.len(), 100);
    // The next window starts afresh.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let d = limiter
        .check(&mut conn, b"client-1", UnixTime::from_secs(base() + 10))
        .unwrap();
    assert_eq!(
        d,
        RedisRateDecision::Limited {
            retry_after: UnixTime::from_secs(base() + 3600)
        }
    );
    assert!(
        limiter
            .check(&mut conn, b"client-1", UnixTime::from_secs(base() + 3600))
            .unwrap()
            .is_allowed()
    );
    // The counter expires with its window.
    let key = limiter
        .redis_key(b"client-1", UnixTime::from_secs(base()))
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(ttl > 0, "{ttl}");
}

#[test]
fn sliding_window_eight_connections_never_over_limit_in_any_window() {
    let Some(url) = url("sliding_window_eight_connections_never_over_limit_in_any_window") else {
        return;
    };
    let (limit, window) = (60u64, 30u64);
    let limiter = Arc::new(
        RedisRateLimiter::new(
            RedisRatePolicy::SlidingWindow {
                limit: 60,
                window_secs: 30,
            },
            prefix("sliding"),
        )
        .unwrap(),
    );
    // 8 x 150 = 1200 requests over about 120 s of the shared clock.
    let admitted = hammer(&url, &limiter, b"client-2", 150, shared_clock);
    // Never more than the limit in any window (a - 30, a] ending at an admission (the
    // count over a window only rises at admissions, so this covers every window).
    for &a in &admitted {
        let n = admitted
            .iter()
            .filter(|&&s| s + window > a && s <= a)
            .count() as u64;
        assert!(n <= limit, "{n} admitted in ({}, {a}]", a - window);
    }
    // And the limit is reached: the first window lets exactly `limit` through.
    let first = admitted[0];
    assert_eq!(
        admitted.iter().filter(|&&s| s < first + window).count() as u64,
        limit
    );
    // Memory bound: the sorted set never holds more than the limit.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = limiter
        .redis_key(b"client-2", UnixTime::from_secs(base()))
        .unwrap();
    let card: u64 = redis::cmd("ZCARD").arg(&key).query(&mut conn).unwrap();
    assert!(card <= limit, "{card}");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(ttl > 0 && ttl <= 31_000, "{ttl}");

    // A lagging clock is counted at the key's latest instant, never earlier.
    let late = limiter
        .check(&mut conn, b"client-2", UnixTime::from_secs(base()))
        .unwrap();
    match late {
        RedisRateDecision::Limited { retry_after } => assert!(retry_after.as_secs() > base() + 100),
        RedisRateDecision::Allowed { counted_at, .. } => {
            assert!(counted_at.as_secs() >= base() + 100)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_settings_are_refused() {
    assert!(
        RedisRateLimiter::new(
            RedisRatePolicy::FixedWindow {
                limit: 0,
                window_secs: 1
            },
            "p:"
        )
        .is_err()
    );
    assert!(
        RedisRateLimiter::new(
            RedisRatePolicy::FixedWindow {
                limit: 1,
                window_secs: 0
            },
            "p:"
        )
        .is_err()
    );
    assert!(
        RedisRateLimiter::new(
            RedisRatePolicy::SlidingWindow {
                limit: 1,
                window_secs: 1
            },
            ""
        )
        .is_err()
    );
    assert!(
        RedisRateLimiter::new(
            RedisRatePolicy::SlidingWindow {
                limit: 1,
                window_secs: 1
            },
            "a b"
        )
        .is_err()
    );
    let l = RedisRateLimiter::new(
        RedisRatePolicy::SlidingWindow {
            limit: 1,
            window_secs: 1,
        },
        "p:",
    )
    .unwrap();
    assert!(l.redis_key(b"", UnixTime::EPOCH).is_err());
    assert!(l.redis_key(&[0u8; 129], UnixTime::EPOCH).is_err());
}

/// `calls` of `cmd` in `INFO commandstats` (0 when it never ran).
fn calls(conn: &mut redis::Connection, cmd: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    let prefix = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[test]
fn checks_send_the_script_hash_and_reload_the_script_after_a_flush() {
    let Some(url) = url("evalsha") else { return };
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for policy in [
        RedisRatePolicy::FixedWindow {
            limit: 100,
            window_secs: 60,
        },
        RedisRatePolicy::SlidingWindow {
            limit: 100,
            window_secs: 60,
        },
    ] {
        let l = RedisRateLimiter::new(policy, prefix("sha")).unwrap();
        // The server forgets every script: the first check gets NOSCRIPT for its hash and
        // must send the script once, then go on by hash.
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<()>(&mut conn)
            .unwrap();
        let before = calls(&mut conn, "evalsha");
        let now = wall();
        for i in 0..10u32 {
            match l.check(&mut conn, b"k", UnixTime::from_secs(now)).unwrap() {
                RedisRateDecision::Allowed { remaining, .. } => assert_eq!(remaining, 99 - i),
                other => panic!("{policy:?}: check {i} refused: {other:?}"),
            }
        }
        // Other tests may run scripts at the same time: at least our ten went by hash.
        let by_hash = calls(&mut conn, "evalsha") - before;
        assert!(
            by_hash >= 10,
            "{policy:?}: {by_hash} EVALSHA calls for 10 checks (the script text sent each time?)"
        );
    }
}
