//! Shared helpers of the integration tests: server urls from the environment, loud skips.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The url in `var`, or `None` after a loud skip notice (one line per test binary and
/// server). Panics when `CI` is set: in CI these tests never skip (`.ci/services.sh` starts
/// the servers). `_test` names the caller (kept for call-site readability).
pub(crate) fn server_url(var: &str, what: &str, _test: &str) -> Option<String> {
    let group = format!("handoff-stores: tests against {what}");
    handoff_test_support::need_env(&group, var, what)
}

/// Wall-clock seconds (tests against a real server share its clock).
pub(crate) fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A name unique to this test run, for key prefixes and schema names.
pub(crate) fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{tag}_{}_{}_{nanos}", std::process::id(), wall_secs())
}

/// A temporary directory of its own per test, removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// The SQLite file's path in it.
    pub(crate) fn db(&self) -> std::path::PathBuf {
        self.0.join("identity.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plain connection to a SQLite file, behind the stores' back.
pub(crate) fn raw_sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

/// A random key-encryption key for the device registries' `AeadSealer`.
pub(crate) fn kek() -> [u8; 32] {
    let mut kek = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut kek);
    kek
}

/// A two-worker tokio runtime for the async adapters.
#[cfg(any(feature = "postgres-async", feature = "redis-async"))]
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
