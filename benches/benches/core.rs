//! `jwks/lookup` (1, 16 and 1024 keys) and `replay/check_and_insert` on an in-memory log
//! holding 1 million live entries.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use benches::fixtures::{jwks_of, kid, prefill, replay_key};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use handoff_core::jwks::KidlessTokens;
use handoff_core::replay::{InMemoryReplayLog, ReplayLog, ReplayVerdict};
use handoff_core::{Algorithm, UnixTime};

fn jwks_lookup(c: &mut Criterion) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut g = c.benchmark_group("jwks/lookup");
    for n in [1usize, 16, 1024] {
        let set = jwks_of(n, &mut rng).unwrap();
        // Look up the last key: the worst position for a linear scan.
        let want = kid(n - 1);
        let found = set
            .find(
                Some(&want),
                Algorithm::EdDSA,
                KidlessTokens::RefuseIfAmbiguous,
            )
            .unwrap();
        assert_eq!(found.kid(), Some(want.as_str()));
        g.bench_with_input(BenchmarkId::new("keys", n), &want, |b, want| {
            b.iter(|| {
                set.find(
                    Some(black_box(want.as_str())),
                    Algorithm::EdDSA,
                    KidlessTokens::RefuseIfAmbiguous,
                )
                .unwrap()
                .algorithm()
            })
        });
    }
}

const LIVE: u64 = 1_000_000;

fn replay(c: &mut Criterion) {
    let start = UnixTime::from_secs(1_700_000_000);
    // Default configuration (10 s buckets, 1 day horizon), room for the churn below.
    let log = InMemoryReplayLog::new(2 * LIVE as usize);
    // One million live entries whose expiries spread over an hour, like one-hour access
    // tokens, far enough ahead that none expires while the benchmark advances the clock.
    let first_until = start.saturating_add(40_000);
    assert_eq!(prefill(&log, LIVE, first_until, start).unwrap(), LIVE);
    assert_eq!(log.len() as u64, LIVE);

    let mut g = c.benchmark_group("replay/check_and_insert");
    // A value never seen before: lookup + insert. Each fresh value lives 1 s; the clock
    // advances 10 s every 10,000 inserts, so at most ~20,000 churn entries are live on top
    // of the million and expiry (dropping whole buckets) is part of the measured cost.
    let mut i = LIVE;
    g.bench_function("fresh", |b| {
        b.iter(|| {
            let now = start.saturating_add((i - LIVE) / 10_000 * 10);
            let key = replay_key(i);
            i += 1;
            let v = log
                .check_and_insert(black_box(&key), now.saturating_add(1), now)
                .unwrap();
            assert_eq!(v, ReplayVerdict::Fresh);
        })
    });
    assert!(
        i - LIVE < 39_000_000,
        "the clock advanced past the prefilled entries; shorten the measurement"
    );
    // A value already in the log: the lookup that refuses a replay.
    let now = start.saturating_add((i - LIVE) / 10_000 * 10);
    let mut j = 0u64;
    let keys: Vec<_> = (0..4096).map(|k| replay_key(k * 241)).collect();
    g.bench_function("replayed", |b| {
        b.iter(|| {
            let key = &keys[(j % 4096) as usize];
            j += 1;
            let v = log
                .check_and_insert(black_box(key), first_until.saturating_add(3600), now)
                .unwrap();
            assert_eq!(v, ReplayVerdict::Replayed);
        })
    });
}

criterion_group!(benches, jwks_lookup, replay);
criterion_main!(benches);
