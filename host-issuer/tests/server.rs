#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The JWKS server on real sockets (127.0.0.1:0): slow clients cannot block it, the
//! mountable router's HTTP caching, and every rule of the dev token endpoint.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff_issuer::server::{
    DevTokenConfig, ServerConfig, ServerLimits, SharedKeyring, jwks_router, spawn,
};
use handoff_issuer::{Algorithm, HostIssuerKeys, Keyring, UnixTime};
use rand_core::UnwrapErr;
use serde_json::Value;

fn rng() -> UnwrapErr<getrandom::SysRng> {
    UnwrapErr(getrandom::SysRng)
}

fn key(kid: &str) -> HostIssuerKeys {
    HostIssuerKeys::generate(Algorithm::EdDSA, Some(kid), &mut rng()).unwrap()
}

/// Sends `raw` (a whole HTTP/1.1 request, `Connection: close`) and reads the answer:
/// (status, head, body).
fn raw_request(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn get_with(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    raw_request(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n")
            .as_bytes(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether the server has closed `s` (EOF or reset) within `limit`; any bytes it sends
/// first (a 408) are read and ignored.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Whether `s` is still open (no EOF, no error, nothing to read right now).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(s.peek(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn sixty_four_slow_connections_do_not_block_jwks_fetches() {
    const READ_TIMEOUT: Duration = Duration::from_secs(4);
    let ring = Keyring::new(key("k1"), handoff_issuer::server::system_now().unwrap());
    let server = spawn(
        ServerConfig::with_keyring(ring, "127.0.0.1:0".parse().unwrap())
            .dev_token_endpoint(DevTokenConfig::default())
            .limits(ServerLimits::default().read_timeout(READ_TIMEOUT)),
    )
    .unwrap();
    let addr = server.addr();

    // 64 slow clients, four kinds of 16:
    //  0: sent half a request head, then nothing;
    //  1: trickle a header one byte every 100 ms, forever;
    //  2: announced a 2000-byte JSON body, trickle it one byte every 100 ms;
    //  3: connected and sent nothing at all.
    let mut slow = Vec::new();
    for i in 0..64 {
        let mut s = TcpStream::connect(addr).unwrap();
        match i % 4 {
            0 => s
                .write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: loc")
                .unwrap(),
            1 => s
                .write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap(),
            2 => s
                .write_all(
                    b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{",
                )
                .unwrap(),
            _ => {}
        }
        slow.push((i % 4, s));
    }
    let tricklers: Vec<TcpStream> = slow
        .iter()
        .filter(|(kind, _)| *kind == 1 || *kind == 2)
        .map(|(_, s)| s.try_clone().unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let write_failures = Arc::new(AtomicU64::new(0));
    let trickle = {
        let stop = Arc::clone(&stop);
        let failures = Arc::clone(&write_failures);
        let mut socks: Vec<Option<TcpStream>> = tricklers.into_iter().map(Some).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for slot in &mut socks {
                    if let Some(s) = slot
                        && s.write_all(b"a").is_err()
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                        *slot = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // A normal client fetches the JWKS 100 times (fresh connections and keep-alive
    // alternate), each answered 200 with the key set.
    let expected = server
        .keys()
        .jwks_response(handoff_issuer::server::system_now().unwrap());
    let mut keep_alive = TcpStream::connect(addr).unwrap();
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for i in 0..100 {
        if i % 2 == 0 {
            let (status, _, body) = get_with(addr, "GET", "/.well-known/jwks.json", "");
            assert_eq!(status, 200, "fetch {i}");
            assert_eq!(body, expected.body(), "fetch {i}");
        } else {
            keep_alive
                .write_all(b"GET /certs HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(expected.body()) {
                let n = keep_alive.read(&mut buf).unwrap();
                assert!(n > 0, "keep-alive fetch {i}: connection closed");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "fetch {i}");
        }
    }
    // All 100 fetches were answered while every slow connection was still held open:
    // none of them waited for a slow client.
    let open = slow.iter().filter(|(_, s)| still_open(s)).count();
    assert_eq!(write_failures.load(Ordering::Relaxed), 0);
    assert_eq!(
        open, 64,
        "slow connections closed before the fetches were done"
    );

    // Then the server closes every slow connection after its read timeout (header
    // timeout for kinds 0, 1, 3; whole-request timeout, with a 408, for kind 2).
    for (kind, s) in &mut slow {
        assert!(
            closed_by_server(s, READ_TIMEOUT * 4),
            "slow connection of kind {kind} still open after {:?}",
            READ_TIMEOUT * 4
        );
    }
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    // The server still answers.
    assert_eq!(get_with(addr, "GET", "/healthz", "").0, 200);
    server.shutdown();
    assert!(common::port_closes(addr));
}

/// Serves `jwks_router` on a background tokio runtime (as a host app would).
fn serve_router(keys: SharedKeyring) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "host app" }))
        .merge(jwks_router(keys));
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (addr, t)
}

#[test]
fn mounted_router_caches_revalidates_and_follows_the_rotation_schedule() {
    let t0 = 1_800_000_000u64;
    let now = Arc::new(Mutex::new(t0));
    let clock_now = Arc::clone(&now);
    let mut ring = Keyring::new(key("old"), UnixTime::from_secs(t0 - 10));
    // "old" retires at t0 and stays published until t0 + 3660.
    let _ = ring.rotate(key("new"), UnixTime::from_secs(t0)).unwrap();
    let keys = SharedKeyring::with_clock(
        ring,
        Arc::new(move || Ok(UnixTime::from_secs(*clock_now.lock().unwrap()))),
    );
    let (addr, _t) = serve_router(keys.clone());

    // The host app's own route still works next to the mounted ones.
    let (status, _, body) = get_with(addr, "GET", "/", "");
    assert_eq!((status, body.as_slice()), (200, &b"host app"[..]));

    let (status, head, body) = get_with(addr, "GET", "/.well-known/jwks.json", "");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "cache-control"), Some("public, max-age=300"));
    let etag = header(&head, "etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    // Same document, same ETag, on /certs.
    let (_, certs_head, certs_body) = get_with(addr, "GET", "/certs", "");
    assert_eq!(certs_body, body);
    assert_eq!(header(&certs_head, "etag"), Some(etag.as_str()));

    // HEAD: headers, no body.
    let (status, head, body) = get_with(addr, "HEAD", "/.well-known/jwks.json", "");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));

    // Revalidation: a matching If-None-Match (exact, weak, in a list, or *) gets 304
    // without a body; a stale one gets the document.
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"stale\", {etag}"),
        "*".to_owned(),
    ] {
        let (status, head, body) = get_with(
            addr,
            "GET",
            "/.well-known/jwks.json",
            &format!("If-None-Match: {inm}\r\n"),
        );
        assert_eq!(status, 304, "{inm}");
        assert!(body.is_empty());
        assert_eq!(header(&head, "etag"), Some(etag.as_str()));
        assert_eq!(header(&head, "cache-control"), Some("public, max-age=300"));
    }
    let (status, _, _) = get_with(
        addr,
        "GET",
        "/.well-known/jwks.json",
        "If-None-Match: \"stale\"\r\n",
    );
    assert_eq!(status, 200);

    // Cache-Control follows the rotation schedule: max-age never reaches past the moment
    // the retiring key leaves the set (t0 + 3660).
    *now.lock().unwrap() = t0 + 3660 - 42;
    let (_, head, _) = get_with(addr, "GET", "/.well-known/jwks.json", "");
    assert_eq!(header(&head, "cache-control"), Some("public, max-age=42"));
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    // Once it has left, the document and its ETag change; the old ETag no longer
    // revalidates.
    *now.lock().unwrap() = t0 + 3661;
    let (status, head, body) = get_with(
        addr,
        "GET",
        "/.well-known/jwks.json",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status, 200);
    assert_ne!(header(&head, "etag"), Some(etag.as_str()));
    assert_eq!(header(&head, "cache-control"), Some("public, max-age=300"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 1);
    assert_eq!(v["keys"][0]["kid"], "new");

    // Swapping the keyring at run time: the next request sees it.
    let _old = keys.replace(Keyring::new(key("swapped"), UnixTime::from_secs(t0)));
    let (_, _, body) = get_with(addr, "GET", "/certs", "");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["keys"][0]["kid"], "swapped");
    let (status, _, body) = get_with(addr, "GET", "/healthz", "");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["active_kid"],
        "swapped"
    );
    keys.set_reload_error(Some("k.json: broken".into()));
    let (status, _, body) = get_with(addr, "GET", "/healthz", "");
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("k.json: broken"));
    // Other methods: 405 with Allow.
    let (status, head, _) = get_with(addr, "POST", "/.well-known/jwks.json", "");
    assert_eq!(status, 405);
    assert!(header(&head, "allow").unwrap().contains("GET"));
}

fn dev_server() -> handoff_issuer::server::ServerHandle {
    spawn(
        ServerConfig::with_keyring(
            Keyring::new(key("dev"), handoff_issuer::server::system_now().unwrap()),
            "127.0.0.1:0".parse().unwrap(),
        )
        .dev_token_endpoint(DevTokenConfig::default()),
    )
    .unwrap()
}

fn post_token(addr: SocketAddr, path: &str, headers: &str, body: &[u8]) -> (u16, Value) {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let (status, head, body) = raw_request(addr, &raw);
    assert_eq!(header(&head, "cache-control"), Some("no-store"), "{head}");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

const JSON: &str = "Content-Type: application/json\r\n";

#[test]
fn dev_endpoint_accepts_json_from_loopback() {
    let s = dev_server();
    for host in ["localhost", "localhost:3001", "127.0.0.1", "[::1]:80"] {
        let (status, v) = post_token(
            s.addr(),
            "/token",
            &format!("Host: {host}\r\n{JSON}"),
            br#"{"sub":"alice"}"#,
        );
        assert_eq!(status, 200, "{host}: {v}");
        assert_eq!(v["token_type"], "host+jwt");
    }
    // A page served from localhost may call it.
    let (status, _) = post_token(
        s.addr(),
        "/token",
        &format!("Host: localhost\r\nOrigin: http://localhost:5173\r\n{JSON}"),
        br#"{"sub":"alice"}"#,
    );
    assert_eq!(status, 200);
    // The sub in the query string, no body.
    let (status, v) = post_token(s.addr(), "/token?sub=bob", "Host: localhost\r\n", b"");
    assert_eq!(status, 200, "{v}");
}

#[test]
fn dev_endpoint_refuses_a_foreign_host() {
    let s = dev_server();
    for host in [
        "evil.example",
        "evil.example:3001",
        "10.0.0.1",
        "localhost.evil.example",
    ] {
        let (status, v) = post_token(
            s.addr(),
            "/token",
            &format!("Host: {host}\r\n{JSON}"),
            br#"{"sub":"alice"}"#,
        );
        assert_eq!(status, 421, "{host}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("DNS rebinding"),
            "{v}"
        );
    }
    let (status, _) = post_token(s.addr(), "/token", JSON, br#"{"sub":"alice"}"#);
    assert_eq!(status, 400, "no Host");
}

#[test]
fn dev_endpoint_refuses_a_foreign_origin() {
    let s = dev_server();
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost.evil.example",
    ] {
        let (status, v) = post_token(
            s.addr(),
            "/token",
            &format!("Host: localhost\r\nOrigin: {origin}\r\n{JSON}"),
            br#"{"sub":"alice"}"#,
        );
        assert_eq!(status, 403, "{origin}");
        assert!(v.get("token").is_none());
    }
}

#[test]
fn dev_endpoint_refuses_bodies_other_than_json() {
    let s = dev_server();
    for ct in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let (status, v) = post_token(
            s.addr(),
            "/token",
            &format!("Host: localhost\r\nContent-Type: {ct}\r\n"),
            b"sub=alice",
        );
        assert_eq!(status, 415, "{ct}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{v}"
        );
    }
    // A body without a Content-Type, and a form type even with the sub in the query.
    let (status, _) = post_token(s.addr(), "/token", "Host: localhost\r\n", b"sub=alice");
    assert_eq!(status, 415);
    let (status, _) = post_token(
        s.addr(),
        "/token?sub=alice",
        "Host: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        b"",
    );
    assert_eq!(status, 415);
    // JSON, with a charset parameter, is accepted.
    let (status, _) = post_token(
        s.addr(),
        "/token",
        "Host: localhost\r\nContent-Type: application/json; charset=utf-8\r\n",
        br#"{"sub":"alice"}"#,
    );
    assert_eq!(status, 200);
}
