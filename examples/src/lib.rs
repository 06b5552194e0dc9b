#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
pub mod audit;
pub mod clock;
mod error;
#[cfg(any(feature = "host_app", feature = "token_issuer"))]
pub mod http;
pub mod narrate;

pub use args::ServeArgs;
pub use audit::{JsonLines, check_json_lines};
pub use clock::SimClock;
pub use error::{During, ExampleError, expect, expect_refused};
pub use narrate::Narrator;

/// The system random number generator, as the examples use it
/// (`rand_core::UnwrapErr(getrandom::SysRng)`).
#[must_use]
pub fn system_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A path for a fresh SQLite file in the temporary directory, unique to this process and
/// instant (`handoff-NAME-PID-NANOS.sqlite3`); remove it with [`remove_sqlite_file`].
#[must_use]
pub fn scratch_sqlite_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "handoff-{name}-{}-{nanos}.sqlite3",
        std::process::id()
    ))
}

/// Removes a SQLite file and its WAL companions (`-wal`, `-shm`), ignoring the ones that
/// do not exist.
pub fn remove_sqlite_file(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The repository README's snippets ("Which crate for which job"), compiled and run as doc
/// tests of this package (`cargo test -p examples --doc`); not part of the rendered docs.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;
