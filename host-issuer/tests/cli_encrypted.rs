#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Encrypted keyring files through the CLI (`--encrypt`) and the library: the passphrase
//! from `HOST_ISSUER_PASSPHRASE` (never an argument), a wrong passphrase named as such,
//! damaged files refused without a panic, and OpenSSL opening the keys (skips loudly
//! without the `openssl` command, fails under `CI=true`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Served, http, wait_for_active_kid, wait_for_health_status};
use handoff_issuer::server::{ServerConfig, ServerLimits, spawn, write_private_file};

use handoff_core::{Jwks, JwksLimits, Validation, VerifyingKey, verify};
use handoff_issuer::encrypted::{
    ENCRYPTED_KEYRING_FORMAT, PASSPHRASE_ENV, Passphrase, from_encrypted_key_file,
    is_encrypted_key_file, to_encrypted_key_file,
};
use handoff_issuer::{Algorithm, HOST_TOKEN_TYP, HostIssuerKeys, Keyring, UnixTime};
use serde_json::Value;

const PASS: &str = "a long test passphrase";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("host-issuer-enc-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the CLI with stdin closed (no terminal, so no prompt) and the passphrase variable
/// set or not.
fn cli(args: &[&str], pass: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_host-issuer"));
    c.args(args).stdin(Stdio::null()).env_remove(PASSPHRASE_ENV);
    if let Some(p) = pass {
        c.env(PASSPHRASE_ENV, p);
    }
    c.output().unwrap()
}

fn ok(args: &[&str], pass: Option<&str>) -> String {
    let out = cli(args, pass);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A failure with a message, never a panic (exit code 1, not 101).
fn fails(args: &[&str], pass: Option<&str>) -> String {
    let out = cli(args, pass);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn now() -> UnixTime {
    handoff_issuer::server::system_now().unwrap()
}

#[test]
fn generate_mint_rotate_with_an_encrypted_keyring() {
    let dir = scratch("cli");
    let path = dir.join("keys.json");
    let p = s(&path);
    let kid = ok(
        &["generate-keys", "--encrypt", "--kid", "host-1", "--out", p],
        Some(PASS),
    );
    assert_eq!(kid, "host-1");
    let text = fs::read_to_string(&path).unwrap();
    assert!(is_encrypted_key_file(&text));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], ENCRYPTED_KEYRING_FORMAT);
    let entry = &v["keys"][0];
    assert!(
        entry["pkcs8"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    assert!(entry.get("jwk").is_none(), "a private JWK left in clear");
    assert!(!text.contains("\"d\""), "private member in clear");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Every reading command needs the passphrase; without it, a clear error.
    let err = fails(&["jwks", "--keys", p], None);
    assert!(err.contains(PASSPHRASE_ENV), "{err}");
    assert!(err.contains("never taken as an argument"), "{err}");
    assert_eq!(err.matches(p).count(), 1, "the file named once: {err}");
    let err = fails(&["jwks", "--keys", p], Some("not the passphrase"));
    assert!(err.contains("wrong passphrase"), "{err}");
    // There is no way to give it as an argument.
    let out = cli(&["jwks", "--keys", p, "--passphrase", PASS], None);
    assert!(!out.status.success());

    let jwks = ok(&["jwks", "--keys", p], Some(PASS));
    let token = ok(
        &[
            "mint",
            "--keys",
            p,
            "--iss",
            "https://host",
            "--aud",
            "svc",
            "--sub",
            "u1",
        ],
        Some(PASS),
    );
    let set = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    let policy = Validation::builder()
        .issuer("https://host")
        .audience("svc")
        .typ(HOST_TOKEN_TYP)
        .build()
        .unwrap();
    verify::<Value, _>(&token, &set, &policy, now()).unwrap();

    // Rotation keeps the file encrypted under the same passphrase.
    let new_kid = ok(&["rotate", "--keys", p, "--kid", "host-2"], Some(PASS));
    assert_eq!(new_kid, "host-2");
    let text = fs::read_to_string(&path).unwrap();
    assert!(is_encrypted_key_file(&text));
    let ring = from_encrypted_key_file(&text, &Passphrase::new(PASS).unwrap()).unwrap();
    assert_eq!(ring.active().kid(), "host-2");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rotate_encrypt_turns_a_plain_keyring_into_an_encrypted_one() {
    let dir = scratch("upgrade");
    let path = dir.join("keys.json");
    let p = s(&path);
    ok(&["generate-keys", "--out", p], None);
    assert!(!is_encrypted_key_file(&fs::read_to_string(&path).unwrap()));
    // Reading a plain keyring never asks for a passphrase.
    ok(&["jwks", "--keys", p], None);
    ok(&["rotate", "--keys", p, "--encrypt"], Some(PASS));
    let text = fs::read_to_string(&path).unwrap();
    assert!(is_encrypted_key_file(&text));
    let ring = from_encrypted_key_file(&text, &Passphrase::new(PASS).unwrap()).unwrap();
    assert_eq!(ring.entries().len(), 2);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damaged_encrypted_keyrings_are_refused_without_a_panic() {
    let dir = scratch("damage");
    let path = dir.join("keys.json");
    let p = s(&path);
    ok(&["generate-keys", "--encrypt", "--out", p], Some(PASS));
    let good = fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&good).unwrap();
    let pem = v["keys"][0]["pkcs8"].as_str().unwrap().to_owned();
    // Damage inside the ciphertext (the middle of the base64 body), a truncated PEM, a
    // truncated file, a swapped thumbprint, garbage.
    let mid = pem.len() / 2;
    let flipped_char = if pem.as_bytes()[mid] == b'A' {
        "B"
    } else {
        "A"
    };
    let flipped = format!("{}{}{}", &pem[..mid], flipped_char, &pem[mid + 1..]);
    let mut cases = Vec::new();
    for replacement in [flipped, pem[..pem.len() / 3].to_owned()] {
        let mut w = v.clone();
        w["keys"][0]["pkcs8"] = Value::String(replacement);
        cases.push(serde_json::to_string(&w).unwrap());
    }
    let mut w = v.clone();
    w["keys"][0]["thumbprint"] = Value::String("x".repeat(43));
    cases.push(serde_json::to_string(&w).unwrap());
    cases.push(good[..good.len() / 2].to_owned());
    cases.push("\u{0}\u{1}garbage".to_owned());
    for (i, text) in cases.iter().enumerate() {
        fs::write(&path, text).unwrap();
        let err = fails(&["jwks", "--keys", p], Some(PASS));
        assert!(err.starts_with("error:"), "case {i}: {err}");
    }
    // The thumbprint check names the problem.
    fs::write(&path, &cases[2]).unwrap();
    let err = fails(&["jwks", "--keys", p], Some(PASS));
    assert!(err.contains("another key than the one recorded"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn library_round_trip_keeps_every_key_and_setting() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let t0 = UnixTime::from_secs(1_700_000_000);
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::ES256, Some("a"), &mut rng).unwrap(),
        t0,
    )
    .with_max_token_lifetime(600)
    .unwrap();
    let _ = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::RS256, Some("b"), &mut rng).unwrap(),
            t0.saturating_add(10),
        )
        .unwrap();
    let pass = Passphrase::new(PASS).unwrap();
    let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
    let back = from_encrypted_key_file(&text, &pass).unwrap();
    assert_eq!(*back.to_key_file(), *ring.to_key_file());
    let err = from_encrypted_key_file(&text, &Passphrase::new("wrong").unwrap()).unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}

fn openssl_available(test: &str) -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!(
            "SKIP {test}: the `openssl` command is missing; install it (apt-get install openssl)"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg} (CI=true: failing)"
        );
        eprintln!("{msg}");
    }
    ok
}

#[test]
fn openssl_opens_the_keys_of_an_encrypted_keyring() {
    if !openssl_available("openssl_opens_the_keys_of_an_encrypted_keyring") {
        return;
    }
    let dir = scratch("openssl");
    let path = dir.join("keys.json");
    let p = s(&path);
    ok(
        &["generate-keys", "--encrypt", "--alg", "ES256", "--out", p],
        Some(PASS),
    );
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let pem_path = dir.join("key.pem");
    fs::write(&pem_path, v["keys"][0]["pkcs8"].as_str().unwrap()).unwrap();
    let out = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            s(&pem_path),
            "-passin",
            &format!("env:{PASSPHRASE_ENV}"),
            "-pubout",
        ])
        .env(PASSPHRASE_ENV, PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap();
    // The public key OpenSSL derived is the one the JWKS publishes.
    let jwks = ok(&["jwks", "--keys", p], Some(PASS));
    let set = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    let published = set.keys()[0].to_public_key_pem().unwrap();
    let from_openssl = VerifyingKey::from_pem(&public, Algorithm::ES256).unwrap();
    assert_eq!(
        from_openssl.to_public_key_pem().unwrap(),
        published,
        "OpenSSL opened another key"
    );
    fs::remove_dir_all(dir).unwrap();
}

/// The public JWKS members of an encrypted keyring, read through the library.
fn kids_and_keys(jwks: &[u8]) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(jwks).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "a private member published: {k}");
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["x"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn serve_opens_an_encrypted_keyring_and_reloads_it_after_a_rotation() {
    let dir = scratch("serve");
    let path = dir.join("keys.json");
    let p = s(&path);
    ok(
        &["generate-keys", "--encrypt", "--kid", "first", "--out", p],
        Some(PASS),
    );
    let serve = ["serve", "--keys", p, "--port", "0"];
    // No passphrase (stdin is not a terminal): the server does not start, and says why.
    let err = fails(&serve, None);
    assert!(err.contains(PASSPHRASE_ENV), "{err}");
    let err = fails(&serve, Some("not the passphrase"));
    assert!(err.contains("wrong passphrase"), "{err}");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-issuer"));
    cmd.args(serve)
        .args(["--reload-interval-ms", "50"])
        .stdin(Stdio::null())
        .env(PASSPHRASE_ENV, PASS);
    let server = Served::spawn(cmd);
    let (status, _, body) = http(server.addr, "GET", "/.well-known/jwks.json", None, b"");
    assert_eq!(status, 200);
    let pass = Passphrase::new(PASS).unwrap();
    let ring = from_encrypted_key_file(&fs::read_to_string(&path).unwrap(), &pass).unwrap();
    let expected = ring.jwks(now()).to_json().into_bytes();
    assert_eq!(kids_and_keys(&body), kids_and_keys(&expected));
    assert_eq!(kids_and_keys(&body)[0].0, "first");

    // A rotation (the file stays encrypted under the same passphrase) is picked up
    // without a restart and without asking again.
    ok(&["rotate", "--keys", p, "--kid", "second"], Some(PASS));
    wait_for_active_kid(server.addr, "second");
    let (_, _, body) = http(server.addr, "GET", "/.well-known/jwks.json", None, b"");
    let kids: Vec<String> = kids_and_keys(&body).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kids, ["second", "first"]);

    // The same keys under another passphrase: refused at reload, the last good keys stay
    // and /healthz says what went wrong.
    let ring = from_encrypted_key_file(&fs::read_to_string(&path).unwrap(), &pass).unwrap();
    let other = Passphrase::new("another passphrase").unwrap();
    let text =
        to_encrypted_key_file(&ring, &other, &mut rand_core::UnwrapErr(getrandom::SysRng)).unwrap();
    fs::write(&path, text.as_bytes()).unwrap();
    let (status, body) = wait_for_health_status(server.addr, 503);
    assert_eq!(status, 503);
    assert!(
        String::from_utf8_lossy(&body).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, body) = http(server.addr, "GET", "/certs", None, b"");
    assert_eq!(status, 200);
    assert_eq!(kids_and_keys(&body)[0].0, "second");
    drop(server);
    fs::remove_dir_all(dir).unwrap();
}

fn limits() -> ServerLimits {
    ServerLimits::default().reload_interval(Duration::from_millis(50))
}

/// Polls (bounded: 10 s) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} within 10 s");
}

/// A library server on `path` whose passphrase source counts its calls.
fn counting_server(path: &Path) -> (handoff_issuer::server::ServerHandle, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let server = spawn(
        ServerConfig::from_key_file(path, "127.0.0.1:0".parse().unwrap())
            .limits(limits())
            .key_file_passphrase(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(Passphrase::new(PASS).unwrap())
            }),
    )
    .unwrap();
    (server, asked)
}

#[test]
fn a_library_server_asks_for_the_passphrase_once_and_only_for_an_encrypted_file() {
    let dir = scratch("lib-serve");
    let path = dir.join("keys.json");
    let addr = "127.0.0.1:0".parse().unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let pass = Passphrase::new(PASS).unwrap();
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("one"), &mut rng).unwrap(),
        now(),
    );
    let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
    write_private_file(&path, text.as_bytes(), false).unwrap();

    // Without a passphrase source, an encrypted file is refused with what to do.
    let err = spawn(ServerConfig::from_key_file(&path, addr).limits(limits()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is an encrypted keyring"), "{err}");
    assert!(err.contains("key_file_passphrase"), "{err}");
    // A source that fails: its error, and no server.
    let err = spawn(
        ServerConfig::from_key_file(&path, addr)
            .key_file_passphrase(|| Err(handoff_issuer::Error::KeyFile("no terminal".into()))),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no terminal"), "{err}");

    let (server, asked) = counting_server(&path);
    assert_eq!(server.keys().load().active().kid(), "one");
    // Rotate twice, rewriting the encrypted file each time: reloaded, never asked again.
    for kid in ["two", "three"] {
        let key = HostIssuerKeys::generate(Algorithm::EdDSA, Some(kid), &mut rng).unwrap();
        let _ = ring.rotate(key, now()).unwrap();
        let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
        write_private_file(&path, text.as_bytes(), true).unwrap();
        eventually(&format!("the server did not reload to {kid}"), || {
            server.keys().load().active().kid() == kid
        });
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(server.keys().reload_error().is_none());
    server.shutdown();

    // A plain keyring: the source is never called.
    write_private_file(&path, ring.to_key_file().as_bytes(), true).unwrap();
    let (server, asked) = counting_server(&path);
    assert_eq!(server.keys().load().active().kid(), "three");
    // Turned encrypted while the server runs: refused at reload (the source is not called
    // from the reload task), the keys stay.
    let text = to_encrypted_key_file(&ring, &pass, &mut rng).unwrap();
    write_private_file(&path, text.as_bytes(), true).unwrap();
    eventually("the reload error was not reported", || {
        server.keys().reload_error().is_some()
    });
    let err = server.keys().reload_error().unwrap();
    assert!(err.contains("is an encrypted keyring"), "{err}");
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(server.keys().load().active().kid(), "three");
    server.shutdown();
    fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn passphrase_file_for_services() {
    let dir = scratch("pass-file");
    let keys = dir.join("keys.json");
    let k = s(&keys);
    let file = dir.join("passphrase");
    let f = s(&file);
    // As `echo` writes it: the trailing newline is not part of the passphrase.
    fs::write(&file, format!("{PASS}\n")).unwrap();
    chmod(&file, 0o600);
    ok(
        &[
            "generate-keys",
            "--encrypt",
            "--passphrase-file",
            f,
            "--kid",
            "svc-1",
            "--out",
            k,
        ],
        None,
    );
    // The same passphrase as the variable gives: the file holds PASS, not PASS + newline.
    let ring = from_encrypted_key_file(
        &fs::read_to_string(&keys).unwrap(),
        &Passphrase::new(PASS).unwrap(),
    )
    .unwrap();
    assert_eq!(ring.active().kid(), "svc-1");
    // The file wins over the variable.
    let jwks = ok(
        &["jwks", "--keys", k, "--passphrase-file", f],
        Some("not the passphrase"),
    );
    assert!(jwks.contains("svc-1"), "{jwks}");

    // `serve` from the file, no variable, no terminal.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-issuer"));
    cmd.args(["serve", "--keys", k, "--port", "0", "--passphrase-file", f])
        .stdin(Stdio::null())
        .env_remove(PASSPHRASE_ENV);
    let server = Served::spawn(cmd);
    let (status, _, body) = http(server.addr, "GET", "/.well-known/jwks.json", None, b"");
    assert_eq!(status, 200);
    assert_eq!(kids_and_keys(&body)[0].0, "svc-1");
    drop(server);

    // A passphrase file others may read is refused with the fix; a missing or empty one
    // is named.
    chmod(&file, 0o644);
    let err = fails(&["jwks", "--keys", k, "--passphrase-file", f], None);
    assert!(err.contains("chmod 600"), "{err}");
    let missing = dir.join("nope");
    let err = fails(
        &["jwks", "--keys", k, "--passphrase-file", s(&missing)],
        None,
    );
    assert!(
        err.contains("does not exist") || err.contains("nope"),
        "{err}"
    );
    fs::write(&file, "\n").unwrap();
    chmod(&file, 0o600);
    let err = fails(&["jwks", "--keys", k, "--passphrase-file", f], None);
    assert!(err.contains("empty"), "{err}");
    // Only with --encrypt for a new keyring.
    let out = cli(
        &[
            "generate-keys",
            "--passphrase-file",
            f,
            "--out",
            s(&dir.join("x.json")),
        ],
        None,
    );
    assert!(!out.status.success());
    fs::remove_dir_all(dir).unwrap();
}
