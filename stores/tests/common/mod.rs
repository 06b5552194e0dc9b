//! Shared helpers of the integration tests: server urls from the environment, loud skips.
#![allow(dead_code)]

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The url in `var`, or `None` after a loud skip notice. Panics when `CI` is set: in CI
/// these tests never skip (`.ci/services.sh` starts the servers).
pub(crate) fn server_url(var: &str, what: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{var} is not set but CI is: run `source .ci/services.sh` before the tests");
            }
            // Straight to the process's stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no {what}): {test}: set {var} (run `source .ci/services.sh`)"
            );
            None
        }
    }
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
