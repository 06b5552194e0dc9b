//! Helpers shared by the CLI and interop tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_host-issuer");

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("host-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "host-issuer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn fails(args: &[&str]) -> String {
    let out = cli(args);
    assert!(!out.status.success(), "host-issuer {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// `host-issuer serve` as a child process, killed on drop.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
}

impl Served {
    pub fn start(keys: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--keys",
            keys.to_str().unwrap(),
            "--port",
            "0",
            "--reload-interval-ms",
            "50",
        ])
        .args(extra);
        Self::spawn(cmd)
    }

    /// Starts `cmd` (a `serve` or `dev-issuer` command) and reads the address it prints.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("HANDOFF_ENV")
            .env_remove("NODE_ENV")
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("serving the JWKS at http://")
            .unwrap_or_else(|| panic!("unexpected serve output {line:?}"));
        let addr = url.split('/').next().unwrap().parse().unwrap();
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits (bounded: 20 s) for the exit status.
    #[cfg(unix)]
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange on loopback: (status, headers lower-cased, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Whether the node peers are installed; panics under CI when they are not.
pub fn node_available() -> bool {
    if interop_dir().join("node_modules/jose").is_dir() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("interop/node_modules is missing under CI: run `npm ci` in interop/");
    }
    eprintln!(
        "SKIPPED: interop/node_modules is missing; run `npm ci` in interop/ to check interop with panva's jose"
    );
    false
}

/// Runs interop/host_verify.mjs with `input` on stdin; returns its stdout lines.
pub fn node_verify(input: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut child = Command::new("node")
        .arg("host_verify.mjs")
        .current_dir(interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is on PATH");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "jose disagreed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Whether connections to `addr` are refused within 5 s (the server's listener is closed
/// by its accept thread shortly after shutdown).
#[allow(dead_code)]
pub fn port_closes(addr: std::net::SocketAddr) -> bool {
    for _ in 0..250 {
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_err()
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Polls `/healthz` (bounded: 10 s) until the active kid is `kid` (the server re-reads
/// the key file every 50 ms in the tests).
pub fn wait_for_active_kid(addr: SocketAddr, kid: &str) {
    for _ in 0..200 {
        let (_, _, body) = http(addr, "GET", "/healthz", None, b"");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if v["active_kid"] == kid {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not pick up active kid {kid} within 10 s");
}

/// Polls `/healthz` (bounded: 10 s) until it answers `status`; returns it and the body.
pub fn wait_for_health_status(addr: SocketAddr, status: u16) -> (u16, Vec<u8>) {
    let mut last = (0, Vec::new());
    for _ in 0..200 {
        let (s, _, body) = http(addr, "GET", "/healthz", None, b"");
        last = (s, body);
        if s == status {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    last
}

/// Polls `/healthz` (bounded: 10 s) until `kid` is among the published kids.
pub fn wait_for_published_kid(addr: SocketAddr, kid: &str) {
    for _ in 0..200 {
        let (_, _, body) = http(addr, "GET", "/healthz", None, b"");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if v["published_kids"]
            .as_array()
            .is_some_and(|a| a.iter().any(|k| k == kid))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not publish kid {kid} within 10 s");
}
