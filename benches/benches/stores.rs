//! Store throughput on loopback: replay checks per second and refresh rotations per
//! second, with 1 and 8 concurrent workers, for every engine of `handoff-stores`:
//! SQLite (one file, WAL, `synchronous = FULL` and `NORMAL`), PostgreSQL (sync r2d2 and
//! async deadpool) and Redis (sync r2d2 and async connection manager).
//!
//! Servers come from `STORES_PG_URL` / `STORES_REDIS_URL` (`source .ci/services.sh`);
//! without them those engines are skipped with a printed note. Compare with the servers'
//! own round-trip limits: `redis-benchmark -t set` and `pgbench -S` (see RESULTS.md).
//!
//! `cargo bench -p benches --bench stores -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use handoff_core::replay::{ReplayKey, ReplayLog};
use handoff_core::replay_async::AsyncReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{FamilyStore, Outcome, Policy, RefreshFamilies, rotate, rotate_async, start};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;
use handoff_stores::pg_async::AsyncPgStore;
use handoff_stores::redis::RedisReplayLog;
use handoff_stores::sqlite::{Durability, SqliteConfig, SqliteStore};

const WORKERS: [usize; 2] = [1, 8];

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn env(var: &str) -> Option<String> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        println!("note: {var} is not set; its engines are skipped (source .ci/services.sh)");
    }
    v
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Unique keys across every run of the process.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn key() -> ReplayKey {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    ReplayKey::derive(
        "bench/stores",
        &[&n.to_be_bytes(), &pid.to_be_bytes(), &nanos().to_be_bytes()],
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn now() -> UnixTime {
    UnixTime::from_secs(u64::try_from(nanos() / 1_000_000_000).unwrap())
}

/// `iters` operations split over `workers` threads; the wall time of the whole batch.
fn threads<L: Send + Sync + 'static + ?Sized>(
    state: &Arc<L>,
    workers: usize,
    iters: u64,
    op: fn(&L),
) -> Duration {
    let per = iters.div_ceil(workers as u64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let st = Arc::clone(state);
            s.spawn(move || {
                for _ in 0..per {
                    op(&st);
                }
            });
        }
    });
    start.elapsed()
}

fn replay_sync(c: &mut Criterion, name: &str, log: Arc<dyn ReplayLog>) {
    let mut g = c.benchmark_group("stores_replay_check");
    g.sample_size(10);
    for w in WORKERS {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new(name, w), &w, |b, &w| {
            b.iter_custom(|iters| {
                threads(&log, w, iters, |l| {
                    let n = now();
                    let v = l.check_and_insert(&key(), n.saturating_add(60), n);
                    assert!(v.is_ok(), "{v:?}");
                })
            });
        });
    }
    g.finish();
}

fn replay_benches(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("handoff-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (label, d) in [
        ("sqlite_full", Durability::Full),
        ("sqlite_normal", Durability::Normal),
    ] {
        let db = SqliteStore::open(
            dir.join(format!("{label}.db")),
            SqliteConfig::default().durability(d),
        )
        .unwrap();
        replay_sync(c, label, Arc::new(db.replay_log()));
    }
    if let Some(url) = env("STORES_REDIS_URL") {
        let prefix = format!("bench:{}:", std::process::id());
        let log = RedisReplayLog::builder(url.as_str(), prefix.as_str())
            .pool(PoolConfig::with_max_size(8))
            .build()
            .unwrap();
        replay_sync(c, "redis_sync", Arc::new(log));
        let mut g = c.benchmark_group("stores_replay_check");
        g.sample_size(10);
        for w in WORKERS {
            let rt = runtime(w);
            let log = {
                let _e = rt.enter();
                Arc::new(
                    RedisReplayLog::builder(url.as_str(), prefix.as_str())
                        .build_async()
                        .unwrap(),
                )
            };
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(BenchmarkId::new("redis_async", w), &w, |b, &w| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(w as u64);
                    let log = Arc::clone(&log);
                    rt.block_on(async move {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..w)
                            .map(|_| {
                                let log = Arc::clone(&log);
                                tokio::spawn(async move {
                                    for _ in 0..per {
                                        let n = now();
                                        let v = log
                                            .check_and_insert(&key(), n.saturating_add(60), n)
                                            .await;
                                        assert!(v.is_ok(), "{v:?}");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        start.elapsed()
                    })
                });
            });
        }
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn engine() -> Arc<RefreshFamilies> {
    let master = HmacSecret::generate(&mut rng());
    Arc::new(RefreshFamilies::new(
        &master,
        Policy::builder().attempts(10).build().unwrap(),
    ))
}

/// One chain per worker: each rotates its own family's head `per` times.
fn rotate_sync<S: FamilyStore + 'static>(c: &mut Criterion, name: &str, store: Arc<S>) {
    let engine = engine();
    let clock = Arc::new(AtomicU64::new(1_700_000_000));
    let mut g = c.benchmark_group("stores_rotation");
    g.sample_size(10);
    for w in WORKERS {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new(name, w), &w, |b, &w| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(w as u64);
                let t0 = UnixTime::from_secs(clock.fetch_add(per + 1, Ordering::Relaxed));
                let heads: Vec<String> = (0..w)
                    .map(|i| {
                        start(&*store, &engine, &format!("bench-{i}"), "c", t0, &mut rng())
                            .unwrap()
                            .token
                            .expose_secret()
                            .to_owned()
                    })
                    .collect();
                let started = Instant::now();
                std::thread::scope(|s| {
                    for head in heads {
                        let (store, engine) = (Arc::clone(&store), Arc::clone(&engine));
                        s.spawn(move || {
                            let mut head = head;
                            for i in 0..per {
                                let Outcome::Issued(next) = rotate(
                                    &*store,
                                    &engine,
                                    &head,
                                    t0.saturating_add(i + 1),
                                    &mut rng(),
                                )
                                .unwrap() else {
                                    panic!("refused")
                                };
                                head = next.token.expose_secret().to_owned();
                            }
                        });
                    }
                });
                started.elapsed()
            });
        });
    }
    g.finish();
}

fn rotation_benches(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("handoff-bench-rot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (label, d) in [
        ("sqlite_full", Durability::Full),
        ("sqlite_normal", Durability::Normal),
    ] {
        let db = SqliteStore::open(
            dir.join(format!("{label}.db")),
            SqliteConfig::default().durability(d),
        )
        .unwrap();
        rotate_sync(c, label, Arc::new(db.family_store()));
    }
    if let Some(url) = env("STORES_PG_URL") {
        let schema = format!("bench_stores_{}", std::process::id());
        let pg = PgStore::connect(&url, &schema, PoolConfig::with_max_size(8)).unwrap();
        pg.migrate().unwrap();
        rotate_sync(c, "pg_sync", Arc::new(pg.family_store()));
        let engine = engine();
        let clock = Arc::new(AtomicU64::new(1_800_000_000));
        let mut g = c.benchmark_group("stores_rotation");
        g.sample_size(10);
        for w in WORKERS {
            let rt = runtime(w);
            let store = Arc::new(
                AsyncPgStore::connect(&url, &schema, PoolConfig::with_max_size(8))
                    .unwrap()
                    .family_store(),
            );
            g.throughput(Throughput::Elements(1));
            g.bench_with_input(BenchmarkId::new("pg_async", w), &w, |b, &w| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(w as u64);
                    let t0 = UnixTime::from_secs(clock.fetch_add(per + 1, Ordering::Relaxed));
                    let (store, engine) = (Arc::clone(&store), Arc::clone(&engine));
                    rt.block_on(async move {
                        let mut heads = Vec::new();
                        for i in 0..w {
                            let l = handoff_refresh::start_async(
                                &*store,
                                &engine,
                                &format!("bench-{i}"),
                                "c",
                                t0,
                                &mut rng(),
                            )
                            .await
                            .unwrap();
                            heads.push(l.token.expose_secret().to_owned());
                        }
                        let started = Instant::now();
                        let tasks: Vec<_> = heads
                            .into_iter()
                            .map(|mut head| {
                                let (store, engine) = (Arc::clone(&store), Arc::clone(&engine));
                                tokio::spawn(async move {
                                    for i in 0..per {
                                        let mut r = rng();
                                        let Outcome::Issued(next) = rotate_async(
                                            &*store,
                                            &engine,
                                            &head,
                                            t0.saturating_add(i + 1),
                                            &mut r,
                                        )
                                        .await
                                        .unwrap() else {
                                            panic!("refused")
                                        };
                                        head = next.token.expose_secret().to_owned();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        started.elapsed()
                    })
                });
            });
        }
        g.finish();
        // Leave nothing behind on the shared server.
        if let Ok(mut client) = url
            .parse::<postgres::Config>()
            .and_then(|c| c.connect(postgres::NoTls))
        {
            let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, replay_benches, rotation_benches);
criterion_main!(benches);
