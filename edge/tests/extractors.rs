//! Every extractor rule at the HTTP level: status and WWW-Authenticate (RFC 6750
//! section 3, RFC 9449 section 7.1), body with the error code only. Plus the tower layer
//! without axum.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use common::{HOST, HostServer, dpop_key, rng};
use handoff_core::{Algorithm, HmacSecret, SigningKey};
use handoff_dpop::{DpopKey, DpopVerifier, NonceIssuer, NoncePolicy};
use handoff_edge::{
    Access, Clock, Dpop, EdgeAuth, EdgeAuthLayer, Host, RemoteJwks, Require, RequiredScopes,
    Service, SystemClock,
};
use handoff_verify::{
    AccessClaims, ServiceClaims, ServiceTokenVerifier, TokenKind, Verifier, mint_access_token,
    mint_service_token,
};

const API: &str = "https://api.example";

struct OrdersWrite;
impl RequiredScopes for OrdersWrite {
    const SCOPES: &'static [&'static str] = &["orders:write"];
}

struct Fixture {
    base: String,
    origin: String,
    session: SigningKey,
    gateway: SigningKey,
    host: HostServer,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

fn now() -> handoff_core::UnixTime {
    SystemClock.now()
}

async fn fixture(nonces: bool) -> Fixture {
    let host = HostServer::start(Arc::new(SystemClock)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The configured external origin: what clients address, not what `Host` says.
    let origin = base.clone();
    let session = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let gateway = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let mut dpop = DpopVerifier::builder();
    if nonces {
        dpop = dpop.nonce(NoncePolicy::Required(NonceIssuer::new(
            HmacSecret::generate(&mut rng()),
            b"api".to_vec(),
        )));
    }
    let auth = EdgeAuth::builder(&origin)
        .host_tokens(
            Verifier::builder(TokenKind::Host)
                .issuer(HOST)
                .audience(API)
                .algorithm(Algorithm::EdDSA)
                .build()
                .unwrap(),
            RemoteJwks::builder(host.jwks_url()).build().unwrap(),
        )
        .access_tokens(
            Verifier::builder(TokenKind::Access)
                .issuer("https://login.example")
                .audience(API)
                .algorithm(Algorithm::EdDSA)
                .build()
                .unwrap(),
            session.verifying_key(),
        )
        .service_tokens(
            ServiceTokenVerifier::new(
                Verifier::builder(TokenKind::Service)
                    .issuer("gateway")
                    .audience("orders")
                    .algorithm(Algorithm::EdDSA)
                    .build()
                    .unwrap(),
                gateway.verifying_key(),
                ["orders:read", "orders:write"],
            )
            .unwrap(),
        )
        .dpop(dpop.build().unwrap())
        .allow_bearer(true)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/dpop",
            get(|Dpop(v): Dpop| async move { v.token.subject().to_owned() }),
        )
        .route(
            "/access",
            get(|Access(t): Access| async move { t.subject().to_owned() }),
        )
        .route(
            "/host",
            get(|Host(h): Host| async move { h.subject().to_owned() }),
        )
        .route(
            "/service",
            get(|s: Service<OrdersWrite>| async move { s.token().subject().to_owned() }),
        )
        .with_state(auth);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        base,
        origin,
        session,
        gateway,
        host,
        http: reqwest::Client::new(),
        _task: task,
    }
}

impl Fixture {
    fn access(&self, bound: Option<&DpopKey>) -> String {
        let mut c = AccessClaims::new("https://login.example", "user-42", API, "web-app");
        if let Some(k) = bound {
            c = c.bound_to(k.thumbprint());
        }
        mint_access_token(&c, &self.session, now(), &mut rng())
            .unwrap()
            .into_string()
    }
    fn proof(
        &self,
        key: &DpopKey,
        method: &str,
        path: &str,
        token: &str,
        nonce: Option<&str>,
    ) -> String {
        key.proof(
            method,
            &format!("{}{path}", self.origin),
            now(),
            &mut rng(),
            nonce,
            Some(token),
        )
        .unwrap()
    }
    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<String>, String, Option<String>) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let nonce = resp
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, www, resp.text().await.unwrap(), nonce)
    }
}

fn dpop_auth(t: &str) -> String {
    format!("DPoP {t}")
}

fn one(www: &[String]) -> &str {
    assert_eq!(www.len(), 1, "{www:?}");
    &www[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_extractor_rules() {
    let f = fixture(false).await;
    let key = dpop_key();
    let token = f.access(Some(&key));
    let auth = dpop_auth(&token);

    // The good request, once.
    let proof = f.proof(&key, "GET", "/dpop", &token, None);
    let (s, _, body, _) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &proof)])
        .await;
    assert_eq!((s, body.as_str()), (200, "user-42"));

    // Replayed proof.
    let (s, www, body, _) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &proof)])
        .await;
    assert_eq!(s, 401);
    let w = one(&www);
    assert!(w.starts_with("DPoP error=\"invalid_dpop_proof\""), "{w}");
    assert!(w.contains("algs=\"ES256 EdDSA RS256 PS256\""), "{w}");
    assert_eq!(body, "{\"error\":\"invalid_dpop_proof\"}");

    // No credential at all: a bare challenge with algs, no error code.
    let (s, www, _, _) = f.get("/dpop", &[]).await;
    assert_eq!(
        (s, one(&www)),
        (401, "DPoP algs=\"ES256 EdDSA RS256 PS256\"")
    );

    // Missing DPoP header.
    let (s, www, _, _) = f.get("/dpop", &[("authorization", &auth)]).await;
    assert_eq!(s, 401);
    assert!(
        one(&www).contains("error=\"invalid_dpop_proof\""),
        "{www:?}"
    );
    assert!(one(&www).contains("no DPoP header"), "{www:?}");

    // Two DPoP headers.
    let p1 = f.proof(&key, "GET", "/dpop", &token, None);
    let p2 = f.proof(&key, "GET", "/dpop", &token, None);
    let (s, www, _, _) = f
        .get(
            "/dpop",
            &[("authorization", &auth), ("dpop", &p1), ("dpop", &p2)],
        )
        .await;
    assert_eq!(s, 401);
    assert!(
        one(&www).contains("error=\"invalid_dpop_proof\""),
        "{www:?}"
    );
    assert!(one(&www).contains("2 DPoP header values"), "{www:?}");

    // Wrong htu, wrong htm.
    let other = f.proof(&key, "GET", "/elsewhere", &token, None);
    let post = f.proof(&key, "POST", "/dpop", &token, None);
    for p in [&other, &post] {
        let (s, www, _, _) = f
            .get("/dpop", &[("authorization", &auth), ("dpop", p)])
            .await;
        assert_eq!(s, 401);
        assert!(
            one(&www).contains("error=\"invalid_dpop_proof\""),
            "{www:?}"
        );
    }

    // A proof made for another origin, with a matching Host header: still refused (htu
    // is checked against the configured origin, never the Host header).
    let evil = key
        .proof(
            "GET",
            "http://evil.example/dpop",
            now(),
            &mut rng(),
            None,
            Some(&token),
        )
        .unwrap();
    let (s, www, _, _) = f
        .get(
            "/dpop",
            &[
                ("authorization", &auth),
                ("dpop", &evil),
                ("host", "evil.example"),
            ],
        )
        .await;
    assert_eq!(s, 401);
    assert!(
        one(&www).contains("error=\"invalid_dpop_proof\""),
        "{www:?}"
    );

    // Proof by another key (the token is bound to `key`).
    let thief = dpop_key();
    let p = f.proof(&thief, "GET", "/dpop", &token, None);
    let (s, www, _, _) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &p)])
        .await;
    assert_eq!(s, 401);
    assert!(one(&www).starts_with("DPoP "), "{www:?}");
    assert!(one(&www).contains("error=\"invalid_token\""), "{www:?}");

    // Bearer presentation of a bound token on the DPoP-only route.
    let (s, www, _, _) = f
        .get("/dpop", &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(s, 401);
    assert!(
        one(&www).starts_with("DPoP error=\"invalid_token\""),
        "{www:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_extractor_allows_bearer_only_for_unbound_tokens() {
    let f = fixture(false).await;
    let key = dpop_key();
    let bound = f.access(Some(&key));
    let unbound = f.access(None);

    let (s, _, body, _) = f
        .get(
            "/access",
            &[("authorization", &format!("Bearer {unbound}"))],
        )
        .await;
    assert_eq!((s, body.as_str()), (200, "user-42"));

    // Downgrade: a bound token presented as Bearer.
    let (s, www, body, _) = f
        .get("/access", &[("authorization", &format!("Bearer {bound}"))])
        .await;
    assert_eq!(s, 401);
    assert_eq!(www.len(), 2, "{www:?}");
    assert!(
        www[0].starts_with("Bearer error=\"invalid_token\""),
        "{www:?}"
    );
    assert!(
        www[1].starts_with("DPoP error=\"invalid_token\""),
        "{www:?}"
    );
    assert!(
        www[1].ends_with("algs=\"ES256 EdDSA RS256 PS256\""),
        "{www:?}"
    );
    assert_eq!(body, "{\"error\":\"invalid_token\"}");

    // The bound token with its proof.
    let p = f.proof(&key, "GET", "/access", &bound, None);
    let (s, _, _, _) = f
        .get(
            "/access",
            &[("authorization", &dpop_auth(&bound)), ("dpop", &p)],
        )
        .await;
    assert_eq!(s, 200);

    // No credential: both challenges.
    let (s, www, _, _) = f.get("/access", &[]).await;
    assert_eq!(s, 401);
    assert_eq!(www, ["Bearer", "DPoP algs=\"ES256 EdDSA RS256 PS256\""]);

    // A garbage token.
    let (s, www, _, _) = f
        .get("/access", &[("authorization", "Bearer abc.def.ghi")])
        .await;
    assert_eq!(s, 401);
    assert!(
        www[0].starts_with("Bearer error=\"invalid_token\""),
        "{www:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_use_dpop_nonce_then_succeed() {
    let f = fixture(true).await;
    let key = dpop_key();
    let token = f.access(Some(&key));
    let auth = dpop_auth(&token);
    let p = f.proof(&key, "GET", "/dpop", &token, None);
    let (s, www, body, nonce) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &p)])
        .await;
    assert_eq!(s, 401);
    assert!(
        one(&www).starts_with("DPoP error=\"use_dpop_nonce\""),
        "{www:?}"
    );
    assert_eq!(body, "{\"error\":\"use_dpop_nonce\"}");
    let nonce = nonce.expect("a DPoP-Nonce header");
    let p = f.proof(&key, "GET", "/dpop", &token, Some(&nonce));
    let (s, _, _, _) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &p)])
        .await;
    assert_eq!(s, 200);
    // A made-up nonce.
    let p = f.proof(&key, "GET", "/dpop", &token, Some("made-up"));
    let (s, www, _, n) = f
        .get("/dpop", &[("authorization", &auth), ("dpop", &p)])
        .await;
    assert_eq!(s, 401);
    assert!(one(&www).contains("use_dpop_nonce"), "{www:?}");
    assert!(n.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_extractor_requires_every_scope() {
    let f = fixture(false).await;
    let mint = |scopes: &[&str]| {
        mint_service_token(
            &ServiceClaims::new("gateway", "billing", "orders", scopes.iter().copied()),
            &f.gateway,
            now(),
            &mut rng(),
        )
        .unwrap()
        .into_string()
    };
    let good = mint(&["orders:write"]);
    let (s, _, body, _) = f
        .get("/service", &[("authorization", &format!("Bearer {good}"))])
        .await;
    assert_eq!((s, body.as_str()), (200, "billing"));

    // Wrong scope: 403 insufficient_scope naming the scope needed.
    let read_only = mint(&["orders:read"]);
    let (s, www, body, _) = f
        .get(
            "/service",
            &[("authorization", &format!("Bearer {read_only}"))],
        )
        .await;
    assert_eq!(s, 403);
    let w = one(&www);
    assert!(w.starts_with("Bearer error=\"insufficient_scope\""), "{w}");
    assert!(w.contains("scope=\"orders:write\""), "{w}");
    assert_eq!(body, "{\"error\":\"insufficient_scope\"}");

    // A scope outside the accepted set altogether.
    let other = mint(&["admin"]);
    let (s, www, _, _) = f
        .get("/service", &[("authorization", &format!("Bearer {other}"))])
        .await;
    assert_eq!(s, 403);
    assert!(one(&www).contains("insufficient_scope"), "{www:?}");

    // No credential.
    let (s, www, _, _) = f.get("/service", &[]).await;
    assert_eq!((s, one(&www)), (401, "Bearer"));
    // The DPoP scheme is not for service tokens.
    let (s, www, _, _) = f
        .get("/service", &[("authorization", &format!("DPoP {good}"))])
        .await;
    assert_eq!(s, 401);
    assert!(
        one(&www).starts_with("Bearer error=\"invalid_token\""),
        "{www:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_extractor_verifies_through_remote_jwks_and_is_one_time() {
    let f = fixture(false).await;
    let jwt = f.host.mint(API, "user-7");
    let auth = format!("Bearer {jwt}");
    let (s, _, body, _) = f.get("/host", &[("authorization", &auth)]).await;
    assert_eq!((s, body.as_str()), (200, "user-7"));
    let (s, www, _, _) = f.get("/host", &[("authorization", &auth)]).await;
    assert_eq!(s, 401);
    assert!(
        one(&www).starts_with("Bearer error=\"invalid_token\""),
        "{www:?}"
    );
    assert!(one(&www).contains("already used"), "{www:?}");
    // Another audience.
    let jwt = f.host.mint("https://other.example", "user-7");
    let (s, www, _, _) = f
        .get("/host", &[("authorization", &format!("Bearer {jwt}"))])
        .await;
    assert_eq!(s, 401);
    assert!(one(&www).contains("invalid_token"), "{www:?}");
    // Two Authorization headers.
    let (s, www, _, _) = f
        .get(
            "/host",
            &[("authorization", &auth), ("authorization", &auth)],
        )
        .await;
    assert_eq!(s, 400);
    assert!(one(&www).contains("invalid_request"), "{www:?}");
}

#[tokio::test]
async fn the_tower_layer_works_without_axum() {
    use tower::{ServiceBuilder, ServiceExt};
    let session = SigningKey::generate(Algorithm::EdDSA, &mut rng()).unwrap();
    let auth = EdgeAuth::builder("https://api.example")
        .access_tokens(
            Verifier::builder(TokenKind::Access)
                .issuer("https://login.example")
                .audience(API)
                .algorithm(Algorithm::EdDSA)
                .build()
                .unwrap(),
            session.verifying_key(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(EdgeAuthLayer::new(auth, Require::Dpop))
        .service(tower::service_fn(|req: http::Request<String>| async move {
            let v = req.extensions().get::<handoff_edge::DpopAccess>().unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(v.token.subject().to_owned()))
        }));
    let key = dpop_key();
    let token = mint_access_token(
        &AccessClaims::new("https://login.example", "user-42", API, "web-app")
            .bound_to(key.thumbprint()),
        &session,
        now(),
        &mut rng(),
    )
    .unwrap()
    .into_string();
    let proof = key
        .proof(
            "GET",
            "https://api.example/orders",
            now(),
            &mut rng(),
            None,
            Some(&token),
        )
        .unwrap();
    let req = || {
        http::Request::builder()
            .uri("/orders")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .body(String::new())
            .unwrap()
    };
    let resp = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), "user-42");
    let resp = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(resp.status(), 401, "the replayed proof");
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"invalid_dpop_proof\"")
    );
    assert_eq!(resp.body(), "{\"error\":\"invalid_dpop_proof\"}");
}
