//! Shared helpers of the integration tests: server urls from the environment, loud skips.
#![allow(dead_code)]

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
