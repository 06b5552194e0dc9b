#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `host-issuer` binary: key file mode and overwrite refusal, validation messages,
//! `--help`, the server's routes, hot reload and the dev endpoint's loopback guard.

mod common;

use common::{Served, cli, fails, http, ok, scratch};
use common::{wait_for_active_kid, wait_for_health_status};
use handoff_core::{Jwks, JwksLimits, Validation, b64, verify};
use handoff_issuer::{HOST_TOKEN_TYP, Keyring, UnixTime};
use serde_json::Value;
use std::time::Duration;

fn now() -> UnixTime {
    handoff_issuer::server::system_now().unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn help_on_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["generate-keys", "--help"],
        vec!["jwks", "--help"],
        vec!["mint", "--help"],
        vec!["rotate", "--help"],
        vec!["serve", "--help"],
        vec!["inspect", "--help"],
    ] {
        let out = ok(&cmd);
        assert!(out.contains("Usage: host-issuer"), "{cmd:?}: {out}");
    }
}

#[test]
fn generate_keys_writes_0600_and_refuses_to_overwrite() {
    let dir = scratch("gen");
    let path = dir.join("nested/keys.json");
    let p = path.to_str().unwrap();
    let kid = ok(&[
        "generate-keys",
        "--alg",
        "ES256",
        "--kid",
        "host-1",
        "--out",
        p,
    ]);
    assert_eq!(kid, "host-1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let before = std::fs::read(&path).unwrap();
    let err = fails(&["generate-keys", "--out", p]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "file untouched");
    // --force replaces it, still 0600, and no temporary file is left behind.
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let kid2 = ok(&["generate-keys", "--out", p, "--force"]);
    assert_ne!(kid2, "host-1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode after --force {mode:o}");
    }
    let ring = Keyring::from_key_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(ring.active().kid(), kid2);
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mint_validates_inputs_and_prints_a_verifiable_token() {
    let dir = scratch("mint");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let base = ["mint", "--keys", k, "--iss", "https://h", "--aud", "svc"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    assert!(fails(&with(&base, &["--sub", ""])).contains("invalid sub: must not be empty"));
    assert!(fails(&with(&base, &["--sub", "u", "--ttl", "0"])).contains("invalid ttl"));
    assert!(fails(&with(&base, &["--sub", "u", "--ttl", "3601"])).contains("1 to 3600"));
    assert!(fails(&with(&base, &["--sub", "u", "--claim", "iss=x"])).contains("registered claim"));
    assert!(fails(&with(&base, &["--sub", "u", "--claim", "noequals"])).contains("NAME=VALUE"));
    assert!(
        fails(&with(
            &base,
            &["--sub", "u", "--claim", "a=1", "--claim", "a=2"]
        ))
        .contains("twice")
    );
    assert!(
        fails(&["generate-keys", "--alg", "HS256", "--out", "x"]).contains("EdDSA, ES256 or RS256")
    );
    let missing = fails(&[
        "mint",
        "--keys",
        "/nonexistent/k.json",
        "--iss",
        "i",
        "--aud",
        "a",
        "--sub",
        "s",
    ]);
    assert!(missing.contains("generate-keys"), "{missing}");

    let token = ok(&with(
        &base,
        &["--sub", "u", "--claim", "n=5", "--claim", "role=admin"],
    ));
    let c = claims_of(&token);
    assert_eq!(
        c["host_tenant_id"], "https://h",
        "--tenant defaults to --iss"
    );
    assert_eq!(c["n"], 5);
    assert_eq!(c["role"], "admin");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    let t2 = ok(&with(
        &base,
        &["--sub", "u", "--tenant", "t9", "--ttl", "60"],
    ));
    assert_eq!(claims_of(&t2)["host_tenant_id"], "t9");

    let jwks = ok(&["jwks", "--keys", k]);
    let jwks = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    let policy = Validation::builder()
        .issuer("https://h")
        .audience("svc")
        .typ(HOST_TOKEN_TYP)
        .build()
        .unwrap();
    verify::<Value, _>(&token, &jwks, &policy, now()).unwrap();

    let shown = ok(&["inspect", &token]);
    assert!(shown.starts_with("UNVERIFIED"), "{shown}");
    assert!(shown.contains("\"sub\": \"u\"") && shown.contains("host+jwt"));
    assert!(fails(&["inspect", "a.b"]).contains("three base64url segments"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rotate_keeps_the_previous_key_published() {
    let dir = scratch("rotate");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    let old = ok(&["generate-keys", "--out", k, "--kid", "old"]);
    let old_token = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    let err = fails(&["rotate", "--keys", k, "--retire-after", "10"]);
    assert!(err.contains("at least 3660"), "{err}");
    let new = ok(&["rotate", "--keys", k, "--kid", "new", "--alg", "RS256"]);
    assert_eq!((old.as_str(), new.as_str()), ("old", "new"));
    let new_token = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    let header: Value =
        serde_json::from_slice(&b64::decode(new_token.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["kid"], "new");
    assert_eq!(header["alg"], "RS256");
    let jwks = ok(&["jwks", "--keys", k]);
    let jwks = Jwks::parse(jwks.as_bytes(), &JwksLimits::default())
        .unwrap()
        .jwks;
    assert_eq!(jwks.len(), 2);
    let policy = Validation::builder()
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    verify::<Value, _>(&old_token, &jwks, &policy, now()).unwrap();
    verify::<Value, _>(&new_token, &jwks, &policy, now()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_routes_reload_and_dev_endpoint() {
    let dir = scratch("serve");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k, "--kid", "first"]);
    let s = Served::start(&keys, &["--dev-token-endpoint", "--dev-aud", "svc"]);

    for path in ["/.well-known/jwks.json", "/certs"] {
        let (status, head, body) = http(s.addr, "GET", path, None, b"");
        assert_eq!(status, 200);
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains("cache-control: public, max-age=300"),
            "{head}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["keys"][0]["kid"], "first");
    }
    let (status, _, body) = http(s.addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["status"],
        "ok"
    );
    assert_eq!(http(s.addr, "GET", "/nope", None, b"").0, 404);
    let (status, head, _) = http(s.addr, "POST", "/certs", None, b"");
    assert_eq!(status, 405);
    assert!(head.contains("allow: get,head"), "{head}");

    // Dev endpoint: query string and JSON bodies, validation, content types.
    let (status, _, body) = http(s.addr, "POST", "/token?sub=user%2042&ttl=60", None, b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let c = claims_of(v["token"].as_str().unwrap());
    assert_eq!(c["sub"], "user 42");
    assert_eq!(c["aud"], "svc");
    assert_eq!(c["iss"], format!("http://{}", s.addr));
    assert_eq!(v["expires_in"], 60);
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"u","aud":"other","iss":"https://h","ttl":30}"#,
    );
    assert_eq!(status, 200);
    let c = claims_of(
        serde_json::from_slice::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        (c["aud"].as_str(), c["iss"].as_str()),
        (Some("other"), Some("https://h"))
    );
    let (status, _, body) = http(s.addr, "POST", "/token", Some("application/json"), b"{}");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("sub is required"));
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"u","ttl":0}"#,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid ttl"));
    assert_eq!(
        http(s.addr, "POST", "/token", Some("text/plain"), b"sub=u").0,
        415
    );
    // A form post (no CORS preflight) is refused.
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/token",
            Some("application/x-www-form-urlencoded"),
            b"sub=u"
        )
        .0,
        415
    );
    let big = vec![b'a'; 9000];
    assert_eq!(
        http(s.addr, "POST", "/token", Some("application/json"), &big).0,
        413
    );

    // Rotation is picked up without a restart.
    ok(&["rotate", "--keys", k, "--kid", "second"]);
    wait_for_active_kid(s.addr, "second");
    let (_, head, body) = http(s.addr, "GET", "/.well-known/jwks.json", None, b"");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let kids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["second", "first"]);
    assert!(head.contains("max-age=300"));
    // A broken key file keeps the last good keys and reports it on /healthz.
    std::fs::write(&keys, b"{ broken").unwrap();
    let (status, body) = wait_for_health_status(s.addr, 503);
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("degraded"));
    let (status, _, body) = http(s.addr, "GET", "/certs", None, b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["keys"][0]["kid"],
        "second"
    );
    drop(s);

    // Without --dev-token-endpoint there is no /token.
    ok(&["generate-keys", "--out", k, "--force"]);
    let plain = Served::start(&keys, &[]);
    assert_eq!(
        http(
            plain.addr,
            "POST",
            "/token",
            Some("application/json"),
            br#"{"sub":"u"}"#
        )
        .0,
        404
    );
    drop(plain);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_endpoint_refuses_non_loopback_bind() {
    let dir = scratch("guard");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let out = cli(&[
        "serve",
        "--keys",
        k,
        "--port",
        "0",
        "--bind",
        "0.0.0.0",
        "--dev-token-endpoint",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing") && err.contains("--allow-non-loopback-dev"),
        "{err}"
    );
    // The flag only makes sense with the dev endpoint.
    let err = fails(&["serve", "--keys", k, "--allow-non-loopback-dev"]);
    assert!(err.contains("--dev-token-endpoint"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

fn dev_issuer(dir: &std::path::Path, persist: Option<&std::path::Path>) -> Served {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["dev-issuer", "--port", "0"])
        .current_dir(dir)
        .env_remove("PERSIST_KEYS_DIR");
    if let Some(p) = persist {
        cmd.env("PERSIST_KEYS_DIR", p);
    }
    Served::spawn(cmd)
}

fn segment(token: &str, i: usize) -> Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn dev_token(s: &Served, query: &str) -> String {
    let (status, _, body) = http(s.addr, "POST", &format!("/token{query}"), None, b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn served_jwks(s: &Served) -> Vec<u8> {
    let (status, _, jwks) = http(s.addr, "GET", "/.well-known/jwks.json", None, b"");
    assert_eq!(status, 200);
    let (_, _, certs) = http(s.addr, "GET", "/certs", None, b"");
    assert_eq!(jwks, certs, "the same document on both paths");
    jwks
}

fn verify_dev(token: &str, jwks: &[u8], aud: &str) -> Value {
    let jwks = Jwks::parse(jwks, &JwksLimits::default()).unwrap().jwks;
    let policy = Validation::builder()
        .issuer("https://issuer.local")
        .audience(aud)
        .typ("JWT")
        .algorithm(handoff_core::Algorithm::RS256)
        .build()
        .unwrap();
    verify::<Value, _>(token, &jwks, &policy, now())
        .unwrap()
        .custom()
        .clone()
}

#[test]
fn dev_issuer_matches_the_simulator_defaults() {
    let dir = scratch("dev-defaults");
    let s = dev_issuer(&dir, None);
    let token = dev_token(&s, "?sub=alice");
    assert_eq!(
        segment(&token, 0),
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "dev-key"})
    );
    let c = segment(&token, 1);
    assert_eq!(c["iss"], "https://issuer.local");
    assert_eq!(c["aud"], "dev-service");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
    let jwks = served_jwks(&s);
    let v: Value = serde_json::from_slice(&jwks).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 1);
    assert_eq!(v["keys"][0]["kty"], "RSA");
    assert_eq!(v["keys"][0]["kid"], "dev-key");
    // RSA-2048: a 256-byte modulus.
    let n = b64::decode(v["keys"][0]["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256);
    verify_dev(&token, &jwks, "dev-service");
    // The sub in a JSON body, with another audience.
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/token",
        Some("application/json"),
        br#"{"sub":"bob","aud":"https://svc.example"}"#,
    );
    assert_eq!(status, 200);
    let t = serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verify_dev(&t, &jwks, "https://svc.example")["sub"], "bob");
    // Without a persistence directory, nothing is written.
    drop(s);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // A restart without persistence makes another key.
    let again = dev_issuer(&dir, None);
    assert_ne!(served_jwks(&again), jwks);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_issuer_keeps_its_key_across_a_restart() {
    let dir = scratch("dev-persist");
    let keys = dir.join("keys");
    let s = dev_issuer(&dir, Some(&keys));
    let token = dev_token(&s, "?sub=alice");
    let jwks = served_jwks(&s);
    let private = keys.join("private.pem");
    let public = keys.join("public.pem");
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(s);
    let s = dev_issuer(&dir, Some(&keys));
    assert_eq!(served_jwks(&s), jwks, "the same key after a restart");
    assert_eq!(
        std::fs::read_to_string(&private).unwrap(),
        pem,
        "written once"
    );
    // A token minted before the restart still verifies against the JWKS served after it.
    verify_dev(&token, &served_jwks(&s), "dev-service");
    drop(s);
    // A private.pem that others may read is refused, with the fix.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["dev-issuer", "--port", "0"])
            .env("PERSIST_KEYS_DIR", &keys)
            .env_remove("HANDOFF_ENV")
            .env_remove("NODE_ENV")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_issuer_and_dev_endpoint_refuse_production_and_wide_binds() {
    let dir = scratch("dev-prod");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let persist = dir.join("persist");
    for (var, value) in [
        ("HANDOFF_ENV", "production"),
        ("NODE_ENV", "production"),
        ("HANDOFF_ENV", "PRODUCTION"),
    ] {
        for args in [
            vec!["dev-issuer", "--port", "0"],
            vec!["serve", "--keys", k, "--port", "0", "--dev-token-endpoint"],
        ] {
            let out = std::process::Command::new(common::BIN)
                .args(&args)
                .env_remove("HANDOFF_ENV")
                .env_remove("NODE_ENV")
                .env(var, value)
                .env("PERSIST_KEYS_DIR", &persist)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{args:?} with {var}={value}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("{var}=production")) && err.contains("refusing"),
                "{err}"
            );
        }
    }
    assert!(!persist.exists(), "no key is made when production refuses");
    // Development values start normally.
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["dev-issuer", "--port", "0"])
        .env("NODE_ENV", "development");
    let s = Served::spawn(cmd);
    assert_eq!(http(s.addr, "GET", "/healthz", None, b"").0, 200);
    drop(s);
    // Loopback only, no override for the dev issuer.
    let err = fails(&["dev-issuer", "--port", "0", "--bind", "0.0.0.0"]);
    assert!(err.contains("loopback only"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn jwks_into_a_closed_pipe_does_not_panic() {
    let dir = scratch("pipe");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k, "--alg", "RS256"]);
    // The reader is gone before the command writes (as `| head -c 10` after 10 bytes).
    for args in [vec!["jwks", "--keys", k], vec!["inspect", "a.b.c"]] {
        let mut child = std::process::Command::new(common::BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
    // Through a real shell pipe, as a user types it.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' jwks --keys '{k}' | head -c 10", common::BIN))
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 10);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("perm");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [
            vec!["jwks", "--keys", k],
            vec![
                "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
            ],
            vec!["rotate", "--keys", k],
            vec!["serve", "--keys", k, "--port", "0"],
        ] {
            let err = fails(&args);
            assert!(
                err.contains(&format!("chmod 600 {k}"))
                    && err.contains("--allow-insecure-key-file")
                    && err.contains(&format!("{mode:04o}")),
                "{args:?}: {err}"
            );
        }
    }
    // The explicit flag allows it.
    ok(&["jwks", "--keys", k, "--allow-insecure-key-file"]);
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&["jwks", "--keys", k]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn malformed_key_files_get_whole_words_and_what_to_put_there() {
    let dir = scratch("badfile");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let jwks = ok(&["jwks", "--keys", k]);
    let write = |bytes: &[u8]| {
        let tmp = dir.join("bad.json");
        let _ = std::fs::remove_file(&tmp);
        std::fs::write(&tmp, bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        fails(&["jwks", "--keys", tmp.to_str().unwrap()])
    };
    let err = write(jwks.as_bytes());
    assert!(
        err.contains("public JWKS") && err.contains("cannot sign"),
        "{err}"
    );
    let err = write(b"-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n");
    assert!(err.contains("PEM file, not a keyring"), "{err}");
    let err = write(br#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#);
    assert!(err.contains("single JWK"), "{err}");
    let err = write(b"");
    assert!(err.contains("empty"), "{err}");
    let long_garbage = format!(
        "{{\"format\": \"host-issuer-keyring\", \"version\": 1, \"{}\": 1}}",
        "unexpected_member_name_".repeat(8)
    );
    let err = write(long_garbage.as_bytes());
    for e in [&err] {
        assert!(
            e.contains("generate-keys"),
            "says what the file should contain: {e}"
        );
    }
    // Every message ends on whole words: no token is cut in the middle.
    for e in [
        write(jwks.as_bytes()),
        write(long_garbage.as_bytes()),
        write(b"{ not json at all, clearly something else entirely, with many words"),
    ] {
        let line = e.trim_end();
        assert!(
            !line.contains("unexpected_member_name_unexp"),
            "a word was cut: {line}"
        );
        for w in line.split_whitespace() {
            assert!(!w.ends_with('\u{2026}'), "no mid-word ellipsis: {line}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_phase_rotation_from_the_cli() {
    let dir = scratch("two-phase");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&[
        "generate-keys",
        "--out",
        k,
        "--kid",
        "one",
        "--max-cache-age",
        "1",
    ]);
    let out = cli(&["rotate", "--keys", k, "--publish-next", "--kid", "two"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "two");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not sign yet")
            && err.contains("rotate --activate")
            && err.contains("1 s"),
        "{err}"
    );
    // Published, not signing.
    let jwks: Value = serde_json::from_str(&ok(&["jwks", "--keys", k])).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["one", "two"]);
    let t = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    assert_eq!(segment(&t, 0)["kid"], "one");
    // A second publish is refused while one is staged.
    let err = fails(&["rotate", "--keys", k, "--publish-next"]);
    assert!(err.contains("already published as next"), "{err}");
    // Activation waits for the verifiers' caches (max-age 1 s here).
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(ok(&["rotate", "--keys", k, "--activate"]), "two");
    let t = ok(&[
        "mint", "--keys", k, "--iss", "i", "--aud", "a", "--sub", "s",
    ]);
    assert_eq!(segment(&t, 0)["kid"], "two");
    let err = fails(&["rotate", "--keys", k, "--activate"]);
    assert!(err.contains("no next key"), "{err}");
    // Too early is refused with the time to wait.
    ok(&["rotate", "--keys", k, "--publish-next", "--kid", "three"]);
    let err = fails(&["rotate", "--keys", k, "--activate"]);
    assert!(err.contains("activate at or after"), "{err}");
    // The one-step rotate says what it implies.
    let out = cli(&["rotate", "--keys", k, "--kid", "four"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("signs NOW") && err.contains("--publish-next"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = scratch("sigterm");
    let keys = dir.join("k.json");
    let k = keys.to_str().unwrap();
    ok(&["generate-keys", "--out", k]);
    let s = Served::start(&keys, &[]);
    let addr = s.addr;
    assert_eq!(http(addr, "GET", "/healthz", None, b"").0, 200);
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(common::port_closes(addr));
    let _ = std::fs::remove_dir_all(dir);
}
