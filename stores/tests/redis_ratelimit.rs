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

#[test]
fn token_bucket_eight_connections_take_exactly_the_tokens() {
    let Some(url) = url("token_bucket_eight_connections_take_exactly_the_tokens") else {
        return;
    };
    let limiter = Arc::new(
        RedisRateLimiter::new(
            RedisRatePolicy::TokenBucket {
                capacity: 50,
                refill: 5,
                per_secs: 10,
            },
            prefix("bucket"),
        )
        .unwrap(),
    );
    // 8 x 40 = 320 attempts at one instant: the burst is the capacity, no more.
    let n = hammer(&url, &limiter, b"client-3", 40, |_, _| base());
    assert_eq!(n.len(), 50);
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Empty: the next token comes one period later.
    assert_eq!(
        limiter
            .check(&mut conn, b"client-3", UnixTime::from_secs(base() + 9))
            .unwrap(),
        RedisRateDecision::Limited {
            retry_after: UnixTime::from_secs(base() + 10)
        }
    );
    // One period later, 8 x 10 attempts: exactly `refill` pass.
    let n = hammer(&url, &limiter, b"client-3", 10, |_, _| base() + 10);
    assert_eq!(n.len(), 5);
    // The hash expires once the bucket would be full again (10 periods of 10 s).
    let key = limiter
        .redis_key(b"client-3", UnixTime::from_secs(base()))
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(ttl > 0 && ttl <= 101_000, "{ttl}");
}

/// Each policy twice, for the in-memory limiter and the shared one: fixed and sliding
/// windows of `(limit, window_secs)`, a bucket of `(capacity, refill, per_secs)`.
fn policy_pairs(
    (limit, window_secs): (u32, u64),
    (capacity, refill, per_secs): (u32, u32, u64),
) -> [(handoff_login::RatePolicy, RedisRatePolicy); 3] {
    use handoff_login::RatePolicy;
    [
        (
            RatePolicy::FixedWindow { limit, window_secs },
            RedisRatePolicy::FixedWindow { limit, window_secs },
        ),
        (
            RatePolicy::SlidingWindow { limit, window_secs },
            RedisRatePolicy::SlidingWindow { limit, window_secs },
        ),
        (
            RatePolicy::TokenBucket {
                capacity,
                refill,
                per_secs,
            },
            RedisRatePolicy::TokenBucket {
                capacity,
                refill,
                per_secs,
            },
        ),
    ]
}

/// A small deterministic generator for the test's request sequence.
struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_policy_decides_as_the_in_memory_limiter() {
    use handoff_login::{RateDecision, RateLimiter};
    let Some(url) = url("every_policy_decides_as_the_in_memory_limiter") else {
        return;
    };
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let policies = policy_pairs((5, 10), (6, 2, 5));
    for (memory_policy, redis_policy) in policies {
        let mut memory = RateLimiter::<u8>::new(memory_policy, 16).unwrap();
        let shared = RedisRateLimiter::new(redis_policy, prefix("parity")).unwrap();
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut now = base();
        let (mut allowed, mut limited) = (0, 0);
        for i in 0..600 {
            // Mostly a few requests per second, sometimes a pause; three keys.
            now += match rng.next() % 10 {
                0..=5 => 0,
                6..=8 => 1,
                _ => rng.next() % 12,
            };
            let key = (rng.next() % 3) as u8;
            let a = memory.check(&key, UnixTime::from_secs(now));
            let b = shared
                .check(&mut conn, &[key], UnixTime::from_secs(now))
                .unwrap();
            match (a, b) {
                (
                    RateDecision::Allowed { remaining: x },
                    RedisRateDecision::Allowed {
                        remaining: y,
                        counted_at,
                    },
                ) => {
                    assert_eq!((x, counted_at.as_secs()), (y, now), "{redis_policy:?} #{i}");
                    allowed += 1;
                }
                (
                    RateDecision::Limited { retry_after: x },
                    RedisRateDecision::Limited { retry_after: y },
                ) => {
                    assert_eq!(x, y, "{redis_policy:?} #{i}");
                    limited += 1;
                }
                (a, b) => panic!("{redis_policy:?} #{i} at {now}: memory {a:?}, redis {b:?}"),
            }
        }
        // The sequence exercises both outcomes.
        assert!(allowed > 100 && limited > 100, "{allowed} / {limited}");
    }
}

/// `check_async` (a tokio multiplexed connection): the same script and decisions as
/// `check`, on the same counters. Every policy, sync and async checks interleaved on one
/// key, each decision equal to the in-memory limiter's; then 8 tasks on one multiplexed
/// connection take exactly a bucket's capacity.
#[cfg(feature = "redis-async")]
#[test]
fn async_checks_decide_as_sync_ones_on_the_same_counters() {
    use handoff_login::{RateDecision, RateLimiter};
    let Some(url) = url("async_checks_decide_as_sync_ones_on_the_same_counters") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut sync_conn = client.get_connection().unwrap();
    let mut async_conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let policies = policy_pairs((4, 7), (5, 1, 3));
    for (memory_policy, redis_policy) in policies {
        let mut memory = RateLimiter::<u8>::new(memory_policy, 4).unwrap();
        let shared = RedisRateLimiter::new(redis_policy, prefix("async")).unwrap();
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
        let mut now = base();
        let (mut sync_checks, mut async_checks, mut limited) = (0, 0, 0);
        for i in 0..300 {
            now += rng.next() % 3;
            let a = memory.check(&0, UnixTime::from_secs(now));
            let b = if rng.next().is_multiple_of(2) {
                sync_checks += 1;
                shared.check(&mut sync_conn, b"k", UnixTime::from_secs(now))
            } else {
                async_checks += 1;
                rt.block_on(shared.check_async(&mut async_conn, b"k", UnixTime::from_secs(now)))
            }
            .unwrap();
            match (a, b) {
                (
                    RateDecision::Allowed { remaining: x },
                    RedisRateDecision::Allowed { remaining: y, .. },
                ) => {
                    assert_eq!(x, y, "{redis_policy:?} #{i}");
                }
                (
                    RateDecision::Limited { retry_after: x },
                    RedisRateDecision::Limited { retry_after: y },
                ) => {
                    assert_eq!(x, y, "{redis_policy:?} #{i}");
                    limited += 1;
                }
                (a, b) => panic!("{redis_policy:?} #{i} at {now}: memory {a:?}, redis {b:?}"),
            }
        }
        assert!(sync_checks > 100 && async_checks > 100 && limited > 30);
    }

    // 8 tasks, one multiplexed connection, one instant: exactly the capacity passes.
    let limiter = Arc::new(
        RedisRateLimiter::new(
            RedisRatePolicy::TokenBucket {
                capacity: 30,
                refill: 1,
                per_secs: 60,
            },
            prefix("async-burst"),
        )
        .unwrap(),
    );
    let admitted = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, mut conn) = (Arc::clone(&limiter), async_conn.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    for _ in 0..20 {
                        if limiter
                            .check_async(&mut conn, b"burst", UnixTime::from_secs(base()))
                            .await
                            .unwrap()
                            .is_allowed()
                        {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(admitted, 30);
}
