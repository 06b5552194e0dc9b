//! Issue 18 finding 4: the in-memory replay log after a mass expiry. Fills the log with
//! ENTRIES live entries (expiries spread over one hour), lets every one of them expire,
//! then times CALLS single `check_and_insert` calls one by one and reports the worst, the
//! percentiles, and the most entries one call purged (the work bound, free of timing
//! noise: at most `PURGE_STEP`). Before the fix the first call after the expiry purged a
//! whole shard inline (11.6 ms at 10 M entries).
//!
//! `cargo run --release -p benches --bin replay_stall [ENTRIES] [CALLS]`
//!
//! Single calls are timed with `Instant` (about 20 ns of overhead each); on a busy machine
//! a preempted call shows up as a multi-millisecond outlier, which is why the purged-count
//! bound is printed next to the times.

use std::process::ExitCode;
use std::time::Instant;

use benches::fixtures::{prefill, replay_key};
use handoff_core::UnixTime;
use handoff_core::replay::{InMemoryReplayLog, PURGE_STEP, ReplayLog, ReplayVerdict};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let entries = match args.next() {
        None => 10_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: the first argument is the number of entries, a positive integer");
            return ExitCode::FAILURE;
        }
    };
    let calls = match args.next() {
        None => 1_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: the second argument is the number of timed calls");
            return ExitCode::FAILURE;
        }
    };
    let now = UnixTime::from_secs(1_700_000_000);
    let log = InMemoryReplayLog::new(usize::try_from(entries + calls).unwrap_or(usize::MAX));
    let t = Instant::now();
    match prefill(&log, entries, now.saturating_add(60), now) {
        Ok(n) if n == entries => {}
        Ok(n) => {
            eprintln!("error: only {n} of {entries} entries were accepted");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "filled {entries} entries in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Every entry expires (the last until is now + 60 + 3599; buckets are 10 s).
    let later = now.saturating_add(60 + 3600 + 20);
    let mut times = Vec::with_capacity(usize::try_from(calls).unwrap_or(0));
    let mut held = log.len();
    let mut max_purged = 0usize;
    for i in 0..calls {
        let key = replay_key(entries + i);
        let t = Instant::now();
        let v = log.check_and_insert(&key, later.saturating_add(300), later);
        let ns = t.elapsed().as_nanos();
        if !matches!(v, Ok(ReplayVerdict::Fresh)) {
            eprintln!("error: call {i} answered {v:?}");
            return ExitCode::FAILURE;
        }
        let now_held = log.len();
        max_purged = max_purged.max(held + 1 - now_held);
        held = now_held;
        times.push(ns);
    }
    let first = times.first().copied().unwrap_or(0);
    times.sort_unstable();
    let pct = |p: f64| {
        let ix = ((times.len() as f64 - 1.0) * p).round() as usize;
        times.get(ix).copied().unwrap_or(0)
    };
    println!(
        "after a mass expiry of {entries} entries, {calls} calls: first {first} ns, median {} ns, p99.9 {} ns, p99.99 {} ns, worst {} ns",
        pct(0.5),
        pct(0.999),
        pct(0.9999),
        times.last().copied().unwrap_or(0)
    );
    println!(
        "most entries purged by one call: {max_purged} (bound PURGE_STEP = {PURGE_STEP}); still held: {held}"
    );
    std::hint::black_box(&log);
    ExitCode::SUCCESS
}
