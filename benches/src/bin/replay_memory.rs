//! Measures the in-memory replay log's memory per live entry at 1 million entries.
//!
//! `cargo run --release -p benches --bin replay_memory [ENTRIES]`
//!
//! Unsafe code is forbidden in this workspace, so there is no counting allocator: the
//! figure is the growth of the resident set (`/proc/self/statm`) while the entries are
//! inserted, which includes allocator overhead and any table memory freed on growth but
//! not returned to the system (an upper bound on the live footprint).

use std::process::ExitCode;

use benches::fixtures::prefill;
use benches::report::{REPLAY_MEMORY_FILE, ReplayMemory, criterion_dir};
use handoff_core::UnixTime;
use handoff_core::replay::InMemoryReplayLog;

const DEFAULT_ENTRIES: u64 = 1_000_000;

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux on the machines this runs on uses 4 KiB pages.
    Some(pages * 4096)
}

fn main() -> ExitCode {
    let entries = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => DEFAULT_ENTRIES,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: the argument is the number of entries, a positive integer");
            return ExitCode::FAILURE;
        }
    };
    let Some(before) = rss_bytes() else {
        eprintln!("error: cannot read /proc/self/statm: this measurement needs Linux");
        return ExitCode::FAILURE;
    };
    let now = UnixTime::from_secs(1_700_000_000);
    let log = InMemoryReplayLog::new(usize::try_from(entries).unwrap_or(usize::MAX));
    let fresh = match prefill(&log, entries, now.saturating_add(3600), now) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(after) = rss_bytes() else {
        eprintln!("error: cannot read /proc/self/statm");
        return ExitCode::FAILURE;
    };
    if fresh != entries || log.len() as u64 != entries {
        eprintln!(
            "error: only {fresh} of {entries} entries were accepted (log holds {}); the measurement would be wrong",
            log.len()
        );
        return ExitCode::FAILURE;
    }
    let delta = after.saturating_sub(before);
    let m = ReplayMemory {
        entries,
        rss_delta_bytes: delta,
        bytes_per_entry: delta as f64 / entries as f64,
    };
    println!(
        "InMemoryReplayLog: {} live entries, RSS grew by {:.1} MiB: {:.1} bytes per entry (target: at most 96)",
        m.entries,
        delta as f64 / (1024.0 * 1024.0),
        m.bytes_per_entry
    );
    let dir = criterion_dir(None);
    let path = dir.join(REPLAY_MEMORY_FILE);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap_or_default()));
    match written {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("warning: cannot write {}: {e}", path.display()),
    }
    std::hint::black_box(&log);
    ExitCode::SUCCESS
}
