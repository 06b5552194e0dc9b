//! Prints the benchmark comparison table from criterion's results.
//!
//! `cargo run -p benches --bin report [CRITERION_DIR]`

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = benches::report::criterion_dir(std::env::args().nth(1));
    let ms = match benches::report::collect(&dir) {
        Ok(ms) => ms,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let replay = match benches::report::read_replay_memory(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if replay.is_none() {
        eprintln!(
            "note: no replay memory measurement yet; run `cargo run --release -p benches --bin replay_memory`"
        );
    }
    print!("{}", benches::report::render(&ms, replay.as_ref()));
    match benches::report::read_icount(&dir.join(benches::report::ICOUNT_FILE)) {
        Ok(c) if c.is_empty() => eprintln!(
            "note: no instruction counts yet; run `cargo bench -p benches --bench icount` (valgrind)"
        ),
        Ok(c) => print!("\n{}", benches::report::render_icount(&c)),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
