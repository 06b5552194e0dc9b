//! The whole handoff driven by panva's oauth4webapi (npm, `interop/`), an independent
//! OAuth client: discovery, jwt-bearer with DPoP and the use_dpop_nonce retry, the API,
//! refresh, and the replayed refresh token revoking the family.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_drives_the_handoff() {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop");
    // Loud skip (one line on the real stderr, counted by `.ci/test`), a failure under CI.
    if handoff_test_support::need_interop("handoff-edge oauth4webapi interop", &["oauth4webapi"])
        .is_none()
    {
        return;
    }
    let gw = Gateway::start().await;
    let input = serde_json::json!({
        "issuer": gw.issuer,
        "assertion": gw.host_jwt("user-42"),
        "expect_sub": "user-42",
        "expect_tenant": "tenant-7",
    });
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("node")
            .arg(interop.join("edge_oauth4webapi.mjs"))
            .current_dir(&interop)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be on PATH for the interop test");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "oauth4webapi run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in [
        "discovery",
        "jwt-bearer grant",
        "use_dpop_nonce retry happened",
        "api",
        "handoff replay refused",
        "refresh rotates",
        "api after refresh",
        "old refresh token replayed",
        "family access token revoked",
        "family refresh token revoked",
    ] {
        let s = steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("step {name} missing:\n{stdout}"));
        assert_eq!(s["ok"], true, "{name}: {s}");
    }
}
