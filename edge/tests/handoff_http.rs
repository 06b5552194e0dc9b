//! The whole handoff over loopback HTTP with the Rust client (reqwest + handoff-dpop):
//! host JWKS server, token service, API, each speaking HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, dpop_key};
use handoff_edge::DpopClient;
use handoff_edge::token_service::JWT_BEARER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handoff_refresh_reuse_and_revocation_over_http() {
    let gw = Gateway::start().await;
    let client = DpopClient::new(dpop_key()).unwrap();

    // Discovery (RFC 8414).
    let meta = reqwest::get(gw.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], gw.issuer.as_str());
    let token_endpoint = meta["token_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(token_endpoint, gw.url("/token"));
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == JWT_BEARER)
    );
    assert_eq!(meta["token_endpoint_auth_methods_supported"][0], "none");

    // The handoff: the host JWT as a jwt-bearer assertion, with DPoP (the client does
    // the use_dpop_nonce retry itself).
    let host_jwt = gw.host_jwt("user-42");
    let form = [
        ("grant_type", JWT_BEARER),
        ("assertion", host_jwt.as_str()),
        ("client_id", "web-app"),
    ];
    let r = client.post_form(&token_endpoint, &form).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.json();
    assert_eq!(t["token_type"], "DPoP");
    assert_eq!(client.nonce_retries(), 1, "the use_dpop_nonce round trip");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh1 = t["refresh_token"].as_str().unwrap().to_owned();

    // The handoff is one-time: the same assertion is refused.
    let r = client.post_form(&token_endpoint, &form).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");

    // The API.
    let me = client.get(&gw.url("/api/me"), &access).await.unwrap();
    assert_eq!(me.status, 200, "{:?} {:?}", me.headers, me.json());
    assert_eq!(me.json()["sub"], "user-42");
    assert_eq!(me.json()["tenant"], "tenant-7");
    assert_eq!(me.json()["jkt"], client.jkt().as_str());

    // Refresh: rotation.
    let r = client
        .post_form(
            &token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let refresh2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let access2 = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh1);
    assert_eq!(
        client
            .get(&gw.url("/api/me"), &access2)
            .await
            .unwrap()
            .status,
        200
    );

    // A stolen refresh token presented with another DPoP key: refused, and the family
    // is NOT revoked (the thief lacks the key; revoking would let anyone holding a copy
    // log the user out), so the owner's next refresh still works.
    let thief = DpopClient::new(dpop_key()).unwrap();
    let r = thief
        .post_form(
            &token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("bound to another DPoP key")
    );
    // The same stolen token without any proof.
    let r = reqwest::Client::new()
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("bound to a DPoP key")
    );
    let r = client
        .post_form(
            &token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the owner still refreshes: {:?}", r.json());
    let refresh3 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let access3 = r.json()["access_token"].as_str().unwrap().to_owned();

    // The old refresh token replayed (by its owner's key, as a copy would be): reuse,
    // the family is revoked with its access tokens.
    let r = client
        .post_form(
            &token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    let me = client.get(&gw.url("/api/me"), &access3).await.unwrap();
    assert_eq!(me.status, 401);
    let challenge = me.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("revoked"), "{challenge}");
    let r = client
        .post_form(
            &token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh3),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        r.status, 400,
        "the current refresh token dies with the family"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dpop_the_token_is_bearer_and_the_dpop_api_refuses_it() {
    let gw = Gateway::start().await;
    let http = reqwest::Client::new();
    let host_jwt = gw.host_jwt("user-9");
    let r = http
        .post(gw.url("/token"))
        .form(&[("grant_type", JWT_BEARER), ("assertion", host_jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().unwrap();
    let r = http
        .get(gw.url("/api/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let w = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(w.starts_with("DPoP "), "{w}");
    assert!(w.contains("algs=\"ES256 EdDSA RS256 PS256\""), "{w}");
    assert_eq!(r.text().await.unwrap(), "{\"error\":\"invalid_token\"}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_are_rfc6749_json() {
    let gw = Gateway::start().await;
    let http = reqwest::Client::new();
    for (form, status, error) in [
        (
            vec![("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("grant_type", JWT_BEARER)], 400, "invalid_request"),
        (
            vec![("grant_type", JWT_BEARER), ("assertion", "not.a.jwt")],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "rf1.nope"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", JWT_BEARER), ("client_id", "other")],
            401,
            "invalid_client",
        ),
    ] {
        let r = http
            .post(gw.url("/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{form:?}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}");
    }
    // A DPoP proof without the server's nonce: use_dpop_nonce with a DPoP-Nonce header.
    let key = dpop_key();
    let proof = key
        .proof(
            "POST",
            &gw.url("/token"),
            handoff_edge::Clock::now(&handoff_edge::SystemClock),
            &mut common::rng(),
            None,
            None,
        )
        .unwrap();
    let host_jwt = gw.host_jwt("user-1");
    let r = http
        .post(gw.url("/token"))
        .header("dpop", proof)
        .form(&[("grant_type", JWT_BEARER), ("assertion", host_jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().contains_key("dpop-nonce"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
}
