//! Loud skips for tests that need something outside the crate: the npm interop peers in
//! `interop/node_modules`, a server whose URL comes from the environment, a command-line
//! tool.
//!
//! A test that cannot reach what it needs calls one of the `need_*` functions (or [`skip`])
//! and returns when it gets `None`. The skip is never silent:
//!
//! - a line ``SKIPPED <group>: <reason>; run `<command>` `` goes straight to the process's
//!   stderr (the test harness captures `eprintln!` of passing tests, so it would not show),
//!   once per group and test binary;
//! - when `HANDOFF_SKIP_LOG` names a file, the same line is appended to it (`.ci/test`
//!   counts them and fails when there is any);
//! - when `CI` is set (to anything but `""`, `0` or `false`), the skip is a failure: the
//!   function panics with the same message, so CI never passes with a test that did nothing.
//!
//! Add it to a crate as a path-only dev-dependency (`handoff-test-support.workspace = true`
//! under `[dev-dependencies]`); `cargo publish` removes such dependencies from the published
//! manifest.
//!
//! ```no_run
//! // in a test: returns None (after the loud line) when the peers are not installed
//! let Some(dir) = handoff_test_support::need_interop("my crate: jose interop", &["jose"]) else {
//!     return;
//! };
//! # let _ = dir;
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The environment variable naming a file that collects one line per skipped group.
pub const SKIP_LOG_VAR: &str = "HANDOFF_SKIP_LOG";

/// The command that installs the npm interop peers.
pub const NPM_CI: &str = "npm ci --prefix interop";

/// The command that starts PostgreSQL and Redis on loopback and exports their URLs.
pub const SERVICES: &str = "source .ci/services.sh";

/// Whether this run is CI: `CI` is set to anything but `""`, `0` or `false`.
#[must_use]
pub fn is_ci() -> bool {
    ci_value(std::env::var_os("CI").as_deref())
}

fn ci_value(v: Option<&OsStr>) -> bool {
    match v.and_then(OsStr::to_str) {
        None => v.is_some(),
        Some(s) => !matches!(s.trim(), "" | "0" | "false" | "FALSE" | "False"),
    }
}

/// The one line printed for a skipped group.
#[must_use]
pub fn skip_line(group: &str, reason: &str, run: &str) -> String {
    format!("SKIPPED {group}: {reason}; run `{run}` (or `bash .ci/test`, which sets up everything)")
}

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Records that the tests of `group` cannot run because of `reason`, and says what to `run`.
///
/// Prints the line once per group and process, appends it to `$HANDOFF_SKIP_LOG` when set,
/// and panics when [`is_ci`]: a skip under CI is a failure.
///
/// # Panics
///
/// When `CI` is set: the message says what is missing and what to run.
pub fn skip(group: &str, reason: &str, run: &str) {
    let line = skip_line(group, reason, run);
    let first = {
        let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get_or_insert_with(HashSet::new)
            .insert(group.to_owned())
    };
    if first {
        // Straight to the process's stderr: the harness swallows `eprintln!` of passing tests.
        // A leading newline: the harness may have printed `test NAME ... ` without one.
        let _ = writeln!(std::io::stderr(), "\n{line}");
        if let Some(path) = std::env::var_os(SKIP_LOG_VAR).filter(|p| !p.is_empty()) {
            let appended = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
            if let Err(e) = appended {
                let _ = writeln!(
                    std::io::stderr(),
                    "could not append to {SKIP_LOG_VAR} ({}): {e}",
                    Path::new(&path).display()
                );
            }
        }
    }
    if is_ci() {
        #[allow(clippy::panic, reason = "a skip under CI must fail the test")]
        {
            panic!("CI is set, so this test may not skip: {line}");
        }
    }
}

/// The repository's `interop/` directory (npm peers and the scripts that drive them).
#[must_use]
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// The `interop/` directory when `node` is on `PATH` and every npm package in `packages`
/// is installed in `interop/node_modules`; otherwise a loud [`skip`] of `group` and `None`.
#[must_use]
pub fn need_interop(group: &str, packages: &[&str]) -> Option<PathBuf> {
    let dir = interop_dir();
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dir.join("node_modules").join(p).is_dir())
        .collect();
    if !missing.is_empty() {
        skip(
            group,
            &format!("interop/node_modules lacks {}", missing.join(", ")),
            NPM_CI,
        );
        return None;
    }
    if find_on_path("node").is_none() {
        skip(
            group,
            "`node` is not on PATH",
            "install Node.js 20 or later, then `npm ci --prefix interop`",
        );
        return None;
    }
    Some(dir)
}

/// The value of the environment variable `var` (a server URL) when set and non-empty;
/// otherwise a loud [`skip`] of `group` saying that `what` is needed and `None`.
#[must_use]
pub fn need_env(group: &str, var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            skip(group, &format!("{var} is not set ({what})"), SERVICES);
            None
        }
    }
}

/// The path of the command-line tool `tool` when it is on `PATH`; otherwise a loud
/// [`skip`] of `group` saying to run `install` and `None`.
#[must_use]
pub fn need_tool(group: &str, tool: &str, install: &str) -> Option<PathBuf> {
    let found = find_on_path(tool);
    if found.is_none() {
        skip(group, &format!("`{tool}` is not on PATH"), install);
    }
    found
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        assert!(!ci_value(None));
        assert!(!ci_value(Some(OsStr::new(""))));
        assert!(!ci_value(Some(OsStr::new("0"))));
        assert!(!ci_value(Some(OsStr::new("false"))));
        assert!(ci_value(Some(OsStr::new("true"))));
        assert!(ci_value(Some(OsStr::new("1"))));
    }

    #[test]
    fn the_line_says_what_to_run() {
        let l = skip_line("dpop: interop", "interop/node_modules lacks jose", NPM_CI);
        assert!(
            l.starts_with("SKIPPED dpop: interop: interop/node_modules lacks jose; run `npm ci")
        );
    }

    #[test]
    fn a_skip_fails_under_ci_and_is_logged() {
        // The environment is process-wide: run the CI and non-CI behaviour in a child
        // process (this test binary itself) so that other tests are not affected.
        if std::env::var_os("HANDOFF_TEST_SUPPORT_CHILD").is_some() {
            skip("child group", "nothing", "nothing");
            skip("child group", "nothing", "nothing");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("handoff-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips");
        let run = |ci: &str| {
            let _ = std::fs::remove_file(&log);
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "tests::a_skip_fails_under_ci_and_is_logged",
                    "--nocapture",
                ])
                .env("HANDOFF_TEST_SUPPORT_CHILD", "1")
                .env("CI", ci)
                .env(SKIP_LOG_VAR, &log)
                .output()
                .unwrap()
        };
        let local = run("false");
        assert!(local.status.success(), "{local:?}");
        let stderr = String::from_utf8_lossy(&local.stderr);
        assert_eq!(
            stderr.matches("SKIPPED child group: nothing").count(),
            1,
            "{stderr}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);

        let ci = run("true");
        assert!(!ci.status.success(), "a skip under CI must fail: {ci:?}");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ci.stdout),
            String::from_utf8_lossy(&ci.stderr)
        );
        assert!(
            said.contains("CI is set, so this test may not skip: SKIPPED child group"),
            "{said}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
