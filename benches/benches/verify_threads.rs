//! Does verification scale with cores when threads share one policy (and so its header
//! cache) and one key? HS256 tokens verified per second by one thread and by two, best of
//! several runs, in one process, with the load average printed (meaningful on a quiet
//! machine only). A plain program (`harness = false`), not criterion.
//!
//! `cargo bench -p benches --bench verify_threads [-- VERIFICATIONS_PER_THREAD RUNS]`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use benches::fixtures::{Fixture, policy, verify_ours};
use handoff_core::Algorithm;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Verifications per second over `threads` threads, each verifying `n` times.
fn rate(f: &Arc<Fixture>, p: &Arc<handoff_core::Validation>, threads: usize, n: u64) -> f64 {
    let now = common::now();
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, p, start) = (Arc::clone(f), Arc::clone(p), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for _ in 0..n {
                    black_box(verify_ours(black_box(&f.token), &f.verifying, &p, now).unwrap());
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let total = (n * threads as u64) as f64;
    total / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let runs = args.get(1).copied().unwrap_or(5);
    let mut rng = common::rng();
    let f = Arc::new(Fixture::new(Algorithm::HS256, common::now(), &mut rng).unwrap());
    let p = Arc::new(policy(Algorithm::HS256).unwrap());
    println!("load average before: {}", load_average());
    let best = |threads| {
        (0..runs)
            .map(|_| rate(&f, &p, threads, n))
            .fold(0.0_f64, f64::max)
    };
    let one = best(1);
    let two = best(2);
    println!(
        "HS256 verify, shared policy and key: 1 thread {one:.0}/s, 2 threads {two:.0}/s, 2/1 = {:.2}x",
        two / one
    );
    println!("load average after: {}", load_average());
}
