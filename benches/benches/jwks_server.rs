//! `jwks_server`: JWKS requests per second against `handoff_issuer::server` (the server
//! `host-issuer serve` runs: hyper-util builder, header/body/request timeouts, size and
//! connection caps, the axum `jwks_router`), on loopback with keep-alive clients.
//!
//! Groups: `jwks_server/200` (full document) and `jwks_server/304` (`If-None-Match`
//! revalidation), each with 1 and 64 concurrent keep-alive clients; `raw` is a bare hyper
//! server answering the same precomputed bytes (no routing, no ETag, no timeouts) on the
//! same builder, as the floor. One iteration = one request per client, so criterion's
//! `elem/s` is requests per second. Client and server share the machine's cores.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use handoff_issuer::server::{ServerConfig, ServerHandle, spawn};
use handoff_issuer::{Algorithm, HostIssuerKeys, Keyring, UnixTime};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const PATH: &str = "/.well-known/jwks.json";

fn ring() -> Keyring {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = UnixTime::from_secs(1_800_000_000);
    // A realistic published set mid-rotation: the active EdDSA key and a retiring RSA key.
    let mut ring = Keyring::new(
        HostIssuerKeys::generate(Algorithm::RS256, Some("old"), &mut rng).unwrap(),
        now,
    );
    let _ = ring
        .rotate(
            HostIssuerKeys::generate(Algorithm::EdDSA, Some("new"), &mut rng).unwrap(),
            now,
        )
        .unwrap();
    ring
}

/// A bare hyper server on the same builder answering `body` to everything.
fn raw_server(rt: &tokio::runtime::Runtime, body: Bytes) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            let svc = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .unwrap(),
                    )
                }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            tokio::spawn(conn);
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn one(sender: &mut SendRequest<Empty<Bytes>>, etag: Option<&str>, expect: StatusCode) {
    sender.ready().await.unwrap();
    let mut req = Request::get(PATH).header("host", "localhost");
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let resp = sender
        .send_request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), expect);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    std::hint::black_box(body);
}

/// `iters` requests on each of the `clients` connections, concurrently; the elapsed time.
fn run(
    rt: &tokio::runtime::Runtime,
    conns: &mut Vec<SendRequest<Empty<Bytes>>>,
    iters: u64,
    etag: Option<&'static str>,
    expect: StatusCode,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .drain(..)
            .map(|mut s| {
                tokio::spawn(async move {
                    for _ in 0..iters {
                        one(&mut s, etag, expect).await;
                    }
                    s
                })
            })
            .collect();
        for t in tasks {
            conns.push(t.await.unwrap());
        }
        start.elapsed()
    })
}

fn jwks_server(c: &mut Criterion) {
    let server: ServerHandle = spawn(ServerConfig::with_keyring(
        ring(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The ETag and body as served.
    let (etag, body) = clients_rt.block_on(async {
        let mut s = connect(server.addr()).await;
        let resp = s
            .send_request(
                Request::get(PATH)
                    .header("host", "localhost")
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        (etag, resp.into_body().collect().await.unwrap().to_bytes())
    });
    let etag: &'static str = Box::leak(etag.into_boxed_str());
    let raw_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let raw = raw_server(&raw_rt, body);

    for (name, inm, status) in [
        ("200", None, StatusCode::OK),
        ("304", Some(etag), StatusCode::NOT_MODIFIED),
    ] {
        let mut g = c.benchmark_group(format!("jwks_server/{name}"));
        for clients in [1usize, 64] {
            g.throughput(Throughput::Elements(clients as u64));
            let mut conns: Vec<_> = clients_rt.block_on(async {
                let mut v = Vec::new();
                for _ in 0..clients {
                    v.push(connect(server.addr()).await);
                }
                v
            });
            g.bench_function(format!("ours/{clients}"), |b| {
                b.iter_custom(|iters| run(&clients_rt, &mut conns, iters, inm, status))
            });
            if inm.is_none() {
                let mut raw_conns: Vec<_> = clients_rt.block_on(async {
                    let mut v = Vec::new();
                    for _ in 0..clients {
                        v.push(connect(raw).await);
                    }
                    v
                });
                g.bench_function(format!("raw/{clients}"), |b| {
                    b.iter_custom(|iters| {
                        run(&clients_rt, &mut raw_conns, iters, None, StatusCode::OK)
                    })
                });
            }
        }
        g.finish();
    }
    server.shutdown();
}

criterion_group!(benches, jwks_server);
criterion_main!(benches);
