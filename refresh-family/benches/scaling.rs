//! Issue 14: does the in-memory store scale with cores? Rotations per second with one
//! thread and with two threads (each on its own families), best of several runs, in one
//! process, for the sharded `InMemoryFamilyStore` and, as the same-run baseline, the same
//! store behind one global mutex held across load and apply (the old design).
//!
//! Two figures per configuration: the wall-clock rate, meaningful only on a quiet machine
//! (the load average is printed), and a quiet-machine projection that holds on a busy one:
//! each thread's rate over its wall time minus the time it spent runnable but waiting for
//! a CPU (`/proc/thread-self/schedstat`, Linux), i.e. what it would have done with a core
//! of its own. Time blocked on a lock is kept in the projection, so contention shows.
//! A plain program (`harness = false`), not criterion.
//!
//! `cargo bench -p handoff-refresh --bench scaling [-- ROTATIONS_PER_THREAD RUNS]`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    ApplyOutcome, FamilyId, FamilyRecord, FamilyStore, GcReport, InMemoryFamilyStore, Loaded,
    Outcome, Policy, RefreshError, RefreshFamilies, TokenId, WritePlan, rotate, start,
};

/// The old design, for the same-run baseline: every call under one mutex.
struct GlobalLock(Mutex<()>, InMemoryFamilyStore);

impl FamilyStore for GlobalLock {
    fn load(&self, f: FamilyId, t: TokenId) -> Result<Loaded, RefreshError> {
        let _g = self.0.lock().unwrap();
        self.1.load(f, t)
    }
    fn load_family(&self, f: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        let _g = self.0.lock().unwrap();
        self.1.load_family(f)
    }
    fn live_families_of_subject(
        &self,
        s: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        let _g = self.0.lock().unwrap();
        self.1.live_families_of_subject(s, now, max)
    }
    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        let _g = self.0.lock().unwrap();
        self.1.apply(plan)
    }
    fn gc(&self, now: UnixTime, max: usize) -> Result<GcReport, RefreshError> {
        let _g = self.0.lock().unwrap();
        self.1.gc(now, max)
    }
}

/// A pass-through store whose calls are never inlined, so that callgrind reports the
/// instructions spent in the store (under its shard lock) apart from the rest of a
/// rotation: `scaling -- instructions N` under `valgrind --tool=callgrind`.
struct Measured(InMemoryFamilyStore);

impl FamilyStore for Measured {
    #[inline(never)]
    fn load(&self, f: FamilyId, t: TokenId) -> Result<Loaded, RefreshError> {
        self.0.load(f, t)
    }
    fn load_family(&self, f: FamilyId) -> Result<Option<FamilyRecord>, RefreshError> {
        self.0.load_family(f)
    }
    fn live_families_of_subject(
        &self,
        s: &str,
        now: UnixTime,
        max: usize,
    ) -> Result<Vec<FamilyRecord>, RefreshError> {
        self.0.live_families_of_subject(s, now, max)
    }
    #[inline(never)]
    fn apply(&self, plan: &WritePlan) -> Result<ApplyOutcome, RefreshError> {
        self.0.apply(plan)
    }
    fn gc(&self, now: UnixTime, max: usize) -> Result<GcReport, RefreshError> {
        self.0.gc(now, max)
    }
}

#[inline(never)]
fn rotations(store: &Measured, engine: &RefreshFamilies, heads: &mut [String], n: usize) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    for i in 0..n {
        let len = heads.len();
        let tok = &mut heads[i % len];
        match rotate(store, engine, tok, T0, &mut rng).unwrap() {
            Outcome::Issued(n) => *tok = n.token.expose_secret().to_owned(),
            _ => panic!("rotation refused"),
        }
    }
}

/// (ns on a CPU, ns runnable but waiting for one) of the calling thread.
fn schedstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);
const FAMILIES_PER_THREAD: usize = 64;

/// (wall-clock rate, projected quiet-machine rate) of `threads` threads.
fn run<S: FamilyStore + 'static>(
    store: S,
    engine: &Arc<RefreshFamilies>,
    threads: usize,
    per_thread: usize,
) -> (f64, f64) {
    let store = Arc::new(store);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let heads: Vec<Vec<String>> = (0..threads)
        .map(|t| {
            (0..FAMILIES_PER_THREAD)
                .map(|f| {
                    start(
                        &*store,
                        engine,
                        &format!("user-{t}-{f}"),
                        "web",
                        T0,
                        &mut rng,
                    )
                    .unwrap()
                    .token
                    .expose_secret()
                    .to_owned()
                })
                .collect()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = heads
        .into_iter()
        .map(|mut mine| {
            let (store, engine, barrier) =
                (Arc::clone(&store), Arc::clone(engine), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                barrier.wait();
                let (_, wait0) = schedstat();
                let t0 = Instant::now();
                for i in 0..per_thread {
                    let tok = &mut mine[i % FAMILIES_PER_THREAD];
                    match rotate(&*store, &engine, tok, T0, &mut rng).unwrap() {
                        Outcome::Issued(n) => *tok = n.token.expose_secret().to_owned(),
                        _ => panic!("rotation refused"),
                    }
                }
                let wall = t0.elapsed().as_nanos() as f64;
                let (_, wait1) = schedstat();
                let own_core = (wall - (wait1 - wait0) as f64).max(1.0);
                per_thread as f64 / (own_core / 1e9)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let projected: f64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    ((threads * per_thread) as f64 / secs, projected)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    if std::env::args().any(|a| a == "instructions") {
        let n = std::env::args()
            .filter_map(|a| a.parse().ok())
            .next()
            .unwrap_or(20_000);
        let master = HmacSecret::new(vec![0x42; 32]).unwrap();
        let engine = RefreshFamilies::new(&master, Policy::default());
        let store = Measured(InMemoryFamilyStore::new(1_000_000));
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let mut heads: Vec<String> = (0..FAMILIES_PER_THREAD)
            .map(|f| {
                start(&store, &engine, &format!("user-{f}"), "web", T0, &mut rng)
                    .unwrap()
                    .token
                    .expose_secret()
                    .to_owned()
            })
            .collect();
        rotations(&store, &engine, &mut heads, n);
        println!(
            "{n} rotations done (read the inclusive costs of `rotations`, `Measured::load` and `Measured::apply`)"
        );
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let per_thread = args.first().copied().unwrap_or(100_000);
    let runs = args.get(1).copied().unwrap_or(5);
    let master = HmacSecret::new(vec![0x42; 32]).unwrap();
    let engine = Arc::new(RefreshFamilies::new(&master, Policy::default()));
    let cores = thread::available_parallelism().map_or(1, usize::from);
    println!("refresh/scaling: {per_thread} rotations per thread, best of {runs}, {cores} cores");
    println!("load average before: {}", loadavg());
    for (name, sharded) in [
        ("sharded store (this crate)", true),
        ("one global mutex (old design)", false),
    ] {
        let mut w = [0f64; 2];
        let mut p = [0f64; 2];
        for _ in 0..runs {
            for (i, threads) in [1usize, 2].into_iter().enumerate() {
                let fresh = InMemoryFamilyStore::new(1_000_000);
                let (wall, proj) = if sharded {
                    run(fresh, &engine, threads, per_thread)
                } else {
                    run(
                        GlobalLock(Mutex::new(()), fresh),
                        &engine,
                        threads,
                        per_thread,
                    )
                };
                w[i] = w[i].max(wall);
                p[i] = p[i].max(proj);
            }
        }
        println!("{name}:");
        println!(
            "  wall clock: 1 thread {:>9.0}/s, 2 threads {:>9.0}/s, ratio {:.2}x",
            w[0],
            w[1],
            w[1] / w[0]
        );
        println!(
            "  projected (own core per thread): 1 thread {:>9.0}/s, 2 threads {:>9.0}/s, ratio {:.2}x (target >= 1.6x)",
            p[0],
            p[1],
            p[1] / p[0]
        );
    }
    println!("load average after: {}", loadavg());
}
