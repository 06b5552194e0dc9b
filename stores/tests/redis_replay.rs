//! The replay log against a real Redis / Valkey (`STORES_REDIS_URL`).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use handoff_core::UnixTime;
use handoff_core::replay::{ReplayKey, ReplayLog, ReplayVerdict};
use handoff_stores::PoolConfig;
use handoff_stores::redis::{Expiry, RedisReplayLog};

fn url(test: &str) -> Option<String> {
    common::server_url("STORES_REDIS_URL", "redis", test)
}

fn log(url: &str, prefix: &str, max: usize) -> RedisReplayLog {
    RedisReplayLog::builder(url, prefix)
        .pool(PoolConfig::with_max_size(max))
        .build()
        .unwrap()
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

const TOTAL: usize = 100_000;
const DISTINCT: usize = 90_000;
const DUPLICATED: usize = TOTAL - DISTINCT; // 10 %
const THREADS: usize = 8;

/// 100 000 checks from 8 connections, 10 % duplicates, each duplicate presented by two
/// different threads at about the same moment: every key is fresh exactly once, every
/// duplicate is refused, and every entry carries the expiry `until + 1 s`.
#[test]
fn hundred_thousand_checks_eight_connections_ten_percent_duplicates() {
    let Some(url) = url("hundred_thousand_checks") else {
        return;
    };
    let prefix = format!("{}:", common::unique("stores-replay"));
    let log = Arc::new(log(&url, &prefix, THREADS));
    log.check_server().unwrap();
    let now = UnixTime::from_secs(common::wall_secs());
    let until = now.saturating_add(120);
    let keys: Arc<Vec<ReplayKey>> = Arc::new(
        (0..DISTINCT as u64)
            .map(|i| ReplayKey::derive("stores/test", &[prefix.as_bytes(), &i.to_le_bytes()]))
            .collect(),
    );
    let fresh: Arc<Vec<AtomicU32>> = Arc::new((0..DISTINCT).map(|_| AtomicU32::new(0)).collect());
    let replayed: Arc<Vec<AtomicU32>> =
        Arc::new((0..DISTINCT).map(|_| AtomicU32::new(0)).collect());
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, keys, fresh, replayed, barrier) = (
                Arc::clone(&log),
                Arc::clone(&keys),
                Arc::clone(&fresh),
                Arc::clone(&replayed),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                // Key k goes to thread k % 8; the first 10 000 also to thread (k + 1) % 8,
                // in the same ascending order, so both copies race.
                let mine: Vec<usize> = (0..DISTINCT)
                    .filter(|k| k % THREADS == t || (*k < DUPLICATED && (k + 1) % THREADS == t))
                    .collect();
                barrier.wait();
                for k in mine {
                    match log.check_and_insert(&keys[k], until, now).unwrap() {
                        ReplayVerdict::Fresh => fresh[k].fetch_add(1, Ordering::Relaxed),
                        ReplayVerdict::Replayed => replayed[k].fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected verdict {other:?}"),
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut checks = 0;
    for k in 0..DISTINCT {
        let (f, r) = (
            fresh[k].load(Ordering::Relaxed),
            replayed[k].load(Ordering::Relaxed),
        );
        checks += f + r;
        assert_eq!(f, 1, "key {k} must be accepted exactly once");
        assert_eq!(
            r,
            u32::from(k < DUPLICATED),
            "key {k}: every duplicate refused"
        );
    }
    assert_eq!(checks as usize, TOTAL);

    // Every entry expires exactly at until + 1 s (PEXPIRETIME, Redis 7): gone after `until`.
    let mut conn = raw(&url);
    let want = i64::try_from((until.as_secs() + 1) * 1_000).unwrap();
    for chunk in keys.chunks(1_000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("PEXPIRETIME")
                .arg(format!("{prefix}{}", k.to_hex()));
        }
        let got: Vec<i64> = pipe.query(&mut conn).unwrap();
        assert!(
            got.iter().all(|&ms| ms == want),
            "an entry has another expiry"
        );
    }
    // A duplicate presented later by a new connection is still refused.
    let late = self::log(&url, &prefix, 1);
    assert_eq!(
        late.check_and_insert(&keys[0], until, now.saturating_add(60)),
        Ok(ReplayVerdict::Replayed)
    );
}

/// Entries really disappear once `until` has passed, and the key is fresh again.
#[test]
fn entries_are_gone_after_until() {
    let Some(url) = url("entries_are_gone_after_until") else {
        return;
    };
    let prefix = format!("{}:", common::unique("stores-expiry"));
    let log = log(&url, &prefix, 2);
    let now = UnixTime::from_secs(common::wall_secs());
    let until = now; // accepted through the current second only
    let key = ReplayKey::derive("stores/test", &[b"expiry"]);
    assert_eq!(
        log.check_and_insert(&key, until, now),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(
        log.check_and_insert(&key, until, now),
        Ok(ReplayVerdict::Replayed)
    );
    let redis_key = format!("{prefix}{}", key.to_hex());
    let mut conn = raw(&url);
    // Wait for the server to drop it (bounded: it expires at the start of the next second).
    let mut gone = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&redis_key)
            .query(&mut conn)
            .unwrap();
        if exists == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the entry outlived its expiry");
    let later = UnixTime::from_secs(common::wall_secs().max(now.as_secs() + 1));
    assert_eq!(
        log.check_and_insert(&key, later.saturating_add(10), later),
        Ok(ReplayVerdict::Fresh)
    );
}

/// Relative expiry follows the caller's clock, not the server's: a fake clock far in the
/// past still yields an entry that lives for the remaining window.
#[test]
fn relative_expiry_follows_the_callers_clock() {
    let Some(url) = url("relative_expiry_follows_the_callers_clock") else {
        return;
    };
    let prefix = format!("{}:", common::unique("stores-relative"));
    let log = RedisReplayLog::builder(&url, &prefix)
        .expiry(Expiry::Relative)
        .build()
        .unwrap();
    let now = UnixTime::from_secs(1_000_000); // 1970: PXAT would expire it at once
    let key = ReplayKey::derive("stores/test", &[b"relative"]);
    assert_eq!(
        log.check_and_insert(&key, now.saturating_add(60), now),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(
        log.check_and_insert(&key, now.saturating_add(60), now.saturating_add(1)),
        Ok(ReplayVerdict::Replayed)
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}{}", key.to_hex()))
        .query(&mut raw(&url))
        .unwrap();
    assert!((55_000..=61_000).contains(&pttl), "pttl {pttl}");
}

const DROP_DB: u8 = 9;

/// A connection killed by the server is found by the health check on checkout and replaced.
#[test]
fn dropped_connection_is_replaced_on_checkout() {
    let Some(url) = url("dropped_connection_is_replaced_on_checkout") else {
        return;
    };
    let prefix = format!("{}:", common::unique("stores-drop"));
    // A database of its own (9), so that only this test's connections are killed.
    let base = url.trim_end_matches(|c: char| c.is_ascii_digit());
    let url = format!("{}{DROP_DB}", base.trim_end_matches('/').to_owned() + "/");
    let log = log(&url, &prefix, 1);
    let now = UnixTime::from_secs(common::wall_secs());
    // Name the pooled connection so that it can be killed from outside.
    let first = ReplayKey::derive("stores/test", &[b"first"]);
    assert_eq!(
        log.check_and_insert(&first, now.saturating_add(30), now),
        Ok(ReplayVerdict::Fresh)
    );
    let mut admin = raw(&url);
    // Kill every client connection except the admin one: the pooled one breaks.
    let me: i64 = redis::cmd("CLIENT").arg("ID").query(&mut admin).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let mut killed = 0;
    for line in list.lines() {
        let id = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("id="))
            .and_then(|v| v.parse::<i64>().ok());
        let ours = line.contains("cmd=set") && line.contains(&format!(" db={DROP_DB} "));
        if let Some(id) = id
            && id != me
            && ours
        {
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut admin)
                .unwrap_or(0);
            killed += 1;
        }
    }
    assert!(killed >= 1, "no pooled connection found to kill");
    // The health check on checkout (PING) finds the killed connection and the pool
    // replaces it: the check answers truthfully, without a process restart. (The outage
    // itself fails closed: `tests/faults.rs`.)
    let second = ReplayKey::derive("stores/test", &[b"second"]);
    assert_eq!(
        log.check_and_insert(&second, now.saturating_add(30), now),
        Ok(ReplayVerdict::Fresh)
    );
    assert_eq!(
        log.check_and_insert(&first, now.saturating_add(30), now),
        Ok(ReplayVerdict::Replayed),
        "the entry written before the kill is still there"
    );
}
