//! The login steps against a provider made of local keys: every refusal has its test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_core::jws::{self, SignHeader};
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{Algorithm, Jwks, SigningKey, UnixTime};
use handoff_login::{
    AdminAllowList, AppContext, CallbackParams, ClientAuth, ClientConfig, ClientSecret,
    IdTokenVerifier, LoginError, PendingLogin, ProviderMetadata, Role, Roles, SealingKey,
    SessionVerifier, Suppressed, SuppressionList, TokenResponse, authorize, mint_session_token,
};
use handoff_verify::{AccessClaims, NoCustomClaims, TokenKind, Verifier, VerifyError};
use serde_json::json;

const ISS: &str = "https://idp.example.com";
const NOW: u64 = 1_800_000_000;

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}
fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn metadata() -> ProviderMetadata {
    let doc = json!({
        "issuer": ISS,
        "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token",
        "jwks_uri": "https://idp.example.com/jwks",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "authorization_response_iss_parameter_supported": true
    });
    ProviderMetadata::parse(doc.to_string().as_bytes(), ISS).unwrap()
}

fn client(auth: ClientAuth) -> ClientConfig {
    ClientConfig::new("app", "https://login.example.com/cb", auth).unwrap()
}

fn key() -> SigningKey {
    SigningKey::generate(Algorithm::EdDSA, &mut rng())
        .unwrap()
        .with_kid("k1")
        .unwrap()
}

fn sign(key: &SigningKey, typ: Option<&str>, claims: &serde_json::Value) -> String {
    let h = SignHeader {
        typ,
        ..SignHeader::default()
    };
    jws::sign(key, &h, claims.to_string().as_bytes(), &mut rng()).unwrap()
}

fn id_claims(nonce: &str) -> serde_json::Value {
    json!({"iss": ISS, "sub": "u1", "aud": "app", "exp": NOW + 300, "iat": NOW, "nonce": nonce,
           "email": "Admin@Example.com", "email_verified": true})
}

fn verifier() -> IdTokenVerifier {
    IdTokenVerifier::builder("app")
        .issuer(ISS)
        .algorithm(Algorithm::EdDSA)
        .build()
        .unwrap()
}

fn keys(k: &SigningKey) -> Jwks {
    Jwks::from_keys([k.verifying_key()]).unwrap()
}

#[test]
fn metadata_is_checked() {
    let base = json!({"issuer": ISS, "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token", "jwks_uri": "https://idp.example.com/jwks",
        "response_types_supported": ["code"]});
    assert!(ProviderMetadata::parse(base.to_string().as_bytes(), ISS).is_ok());
    // Wrong issuer (mix-up at discovery).
    assert!(matches!(
        ProviderMetadata::parse(base.to_string().as_bytes(), "https://other.example.com"),
        Err(LoginError::Metadata(_))
    ));
    let mut m = base.clone();
    m["token_endpoint"] = json!("http://idp.example.com/token");
    assert!(ProviderMetadata::parse(m.to_string().as_bytes(), ISS).is_err());
    let mut m = base.clone();
    m["code_challenge_methods_supported"] = json!(["plain"]);
    assert!(ProviderMetadata::parse(m.to_string().as_bytes(), ISS).is_err());
    let mut m = base.clone();
    m["response_types_supported"] = json!(["id_token"]);
    assert!(ProviderMetadata::parse(m.to_string().as_bytes(), ISS).is_err());
    assert!(ProviderMetadata::parse(&vec![b' '; 70_000], ISS).is_err());
    // Loopback http is allowed for development.
    let l = json!({"issuer": "http://127.0.0.1:9", "authorization_endpoint": "http://127.0.0.1:9/a",
        "token_endpoint": "http://127.0.0.1:9/t", "jwks_uri": "http://127.0.0.1:9/j",
        "response_types_supported": ["code"]});
    assert!(ProviderMetadata::parse(l.to_string().as_bytes(), "http://127.0.0.1:9").is_ok());
}

#[test]
fn client_config_refusals() {
    for bad in [
        "http://login.example.com/cb",
        "https://login.example.com/cb#x",
        "https://u@login.example.com/cb",
        "/cb",
        "javascript:x",
    ] {
        assert!(
            ClientConfig::new("app", bad, ClientAuth::None).is_err(),
            "{bad}"
        );
    }
    assert!(ClientConfig::new("", "https://login.example.com/cb", ClientAuth::None).is_err());
    let c = client(ClientAuth::None);
    assert!(c.clone().with_scope("email profile").is_err());
    assert!(c.clone().with_scope("openid \\x").is_err());
    assert!(c.clone().with_login_ttl(0).is_err());
    assert!(c.with_scope("openid email profile").is_ok());
    assert!(ClientSecret::new("").is_err());
    assert!(!format!("{:?}", ClientSecret::new("hunter2").unwrap()).contains("hunter2"));
    // A provider that does not list the client's method is refused at the start.
    let doc = json!({"issuer": ISS, "authorization_endpoint": "https://idp.example.com/auth",
        "token_endpoint": "https://idp.example.com/token", "jwks_uri": "https://idp.example.com/jwks",
        "response_types_supported": ["code"], "token_endpoint_auth_methods_supported": ["private_key_jwt"]});
    let md = ProviderMetadata::parse(doc.to_string().as_bytes(), ISS).unwrap();
    let c = client(ClientAuth::SecretPost(ClientSecret::new("s").unwrap()));
    assert!(authorize(&md, &c, b"b", AppContext::default(), now(), &mut rng()).is_err());
}

#[test]
fn authorization_url_carries_pkce_state_nonce() {
    let s = authorize(
        &metadata(),
        &client(ClientAuth::None),
        b"b1",
        AppContext::default(),
        now(),
        &mut rng(),
    )
    .unwrap();
    let q: std::collections::HashMap<_, _> = s.url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["state"], s.pending.state());
    assert_eq!(q["nonce"].len(), 43);
    assert_eq!(q["redirect_uri"], "https://login.example.com/cb");
    assert!(!format!("{:?}", s.pending).contains(&q["state"]));
    let other = authorize(
        &metadata(),
        &client(ClientAuth::None),
        b"b1",
        AppContext::default(),
        now(),
        &mut rng(),
    )
    .unwrap();
    assert_ne!(other.pending.state(), s.pending.state());
    assert!(
        authorize(
            &metadata(),
            &client(ClientAuth::None),
            b"",
            AppContext::default(),
            now(),
            &mut rng()
        )
        .is_err()
    );
}

fn start() -> PendingLogin {
    authorize(
        &metadata(),
        &client(ClientAuth::None),
        b"browser-1",
        AppContext::default(),
        now(),
        &mut rng(),
    )
    .unwrap()
    .pending
}

fn cb(p: &PendingLogin, extra: &str) -> CallbackParams {
    CallbackParams::from_query(&format!("state={}{extra}", p.state())).unwrap()
}

#[test]
fn callback_refusals() {
    let p = start();
    let ok = cb(&p, &format!("&code=c1&iss={ISS}"));
    assert!(p.on_callback(&ok, b"browser-1", now()).is_ok());
    // Another browser session.
    assert!(matches!(
        p.on_callback(&ok, b"browser-2", now()),
        Err(LoginError::BrowserSessionMismatch)
    ));
    // State of another login.
    let q = start();
    assert!(matches!(
        p.on_callback(&cb(&q, &format!("&code=c&iss={ISS}")), b"browser-1", now()),
        Err(LoginError::StateMismatch)
    ));
    // Expired.
    let late = now().saturating_add(601);
    assert!(matches!(
        p.on_callback(&ok, b"browser-1", late),
        Err(LoginError::Expired { .. })
    ));
    // RFC 9207: another issuer, or none although promised.
    assert!(matches!(
        p.on_callback(
            &cb(&p, "&code=c&iss=https://evil.example.com"),
            b"browser-1",
            now()
        ),
        Err(LoginError::IssuerMismatch(_))
    ));
    assert!(matches!(
        p.on_callback(&cb(&p, "&code=c"), b"browser-1", now()),
        Err(LoginError::IssuerMismatch(_))
    ));
    // The provider's error.
    match p.on_callback(
        &cb(
            &p,
            &format!("&error=access_denied&error_description=no%0athanks&iss={ISS}"),
        ),
        b"browser-1",
        now(),
    ) {
        Err(LoginError::ProviderError { error, description }) => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("nothanks"));
        }
        other => panic!("{other:?}"),
    }
    // Malformed callbacks.
    assert!(CallbackParams::from_query("code=a&code=b").is_err());
    assert!(CallbackParams::from_query(&"x".repeat(9000)).is_err());
    assert!(
        p.on_callback(
            &CallbackParams::from_query("code=a").unwrap(),
            b"browser-1",
            now()
        )
        .is_err()
    );
    assert!(
        p.on_callback(&cb(&p, &format!("&iss={ISS}")), b"browser-1", now())
            .is_err()
    );
    // One-time: the second confirmation is a replay.
    let log = InMemoryReplayLog::new(100);
    assert!(
        p.on_callback(&ok, b"browser-1", now())
            .unwrap()
            .confirm(&log, now())
            .is_ok()
    );
    assert!(
        p.on_callback(&ok, b"browser-1", now())
            .unwrap()
            .confirm(&log, now())
            .is_err()
    );
}

#[test]
fn sealed_and_server_side_records() {
    let p = start();
    let k = SealingKey::generate(&mut rng());
    let sealed = p.seal(&k, &mut rng()).unwrap();
    assert!(!sealed.contains(p.state()));
    let back = PendingLogin::open(&k, &sealed).unwrap();
    assert_eq!(back.state(), p.state());
    assert!(matches!(
        PendingLogin::open(&SealingKey::generate(&mut rng()), &sealed),
        Err(LoginError::Sealed)
    ));
    let mut t = sealed.into_bytes();
    let i = t.len() / 2;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        PendingLogin::open(&k, core::str::from_utf8(&t).unwrap()),
        Err(LoginError::Sealed)
    ));
    let json = p.to_json();
    assert_eq!(PendingLogin::from_json(&json).unwrap().state(), p.state());
    assert!(PendingLogin::from_json("{}").is_err());
}

#[test]
fn token_requests_per_client_auth() {
    let md = metadata();
    let secret = || ClientSecret::new("s3cr:et").unwrap();
    for (auth, basic, in_body) in [
        (ClientAuth::None, false, "client_id=app"),
        (
            ClientAuth::SecretPost(secret()),
            false,
            "client_secret=s3cr%3Aet",
        ),
        (ClientAuth::SecretBasic(secret()), true, "code_verifier="),
    ] {
        let c = client(auth);
        let s = authorize(&md, &c, b"b", AppContext::default(), now(), &mut rng()).unwrap();
        let params = CallbackParams::from_query(&format!(
            "code=c%2B1&state={}&iss={ISS}",
            s.pending.state()
        ))
        .unwrap();
        let ex = s
            .pending
            .on_callback(&params, b"b", now())
            .unwrap()
            .confirm(&InMemoryReplayLog::new(10), now())
            .unwrap();
        let r = ex.token_request(&md, &c).unwrap();
        // PKCE: the verifier sent is RFC 7636 text whose S256 is the challenge of the URL.
        let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(r.body.as_bytes())
            .into_owned()
            .collect();
        let verifier = &form["code_verifier"];
        assert!((43..=128).contains(&verifier.len()));
        assert!(
            verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        let challenge: std::collections::HashMap<_, _> = s.url.query_pairs().into_owned().collect();
        use sha2::Digest;
        assert_eq!(
            handoff_core::b64::encode(&sha2::Sha256::digest(verifier.as_bytes())),
            challenge["code_challenge"]
        );
        assert!(r.body.starts_with("grant_type=authorization_code&code=c%2B1&redirect_uri=https%3A%2F%2Flogin.example.com%2Fcb&code_verifier="));
        assert!(r.body.contains(in_body), "{}", r.body);
        let auth = r.headers.iter().find(|(n, _)| *n == "Authorization");
        assert_eq!(auth.is_some(), basic);
        if basic {
            // base64("app:s3cr%3Aet")
            assert_eq!(auth.unwrap().1, "Basic YXBwOnMzY3IlM0FldA==");
            assert!(!r.body.contains("client_secret"));
        }
        assert!(!format!("{r:?}").contains("s3cr"));
        // Another client cannot use this exchange.
        let other =
            ClientConfig::new("other", "https://login.example.com/cb", ClientAuth::None).unwrap();
        assert!(ex.token_request(&md, &other).is_err());
    }
}

#[test]
fn token_responses_are_parsed_strictly() {
    let ok = br#"{"access_token":"a","token_type":"Bearer","id_token":"x.y.z","expires_in":60}"#;
    assert!(TokenResponse::parse(200, ok).is_ok());
    match TokenResponse::parse(
        400,
        br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
    ) {
        Err(LoginError::TokenEndpoint { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("{other:?}"),
    }
    for bad in [
        &br#"{"access_token":"a","token_type":"Bearer","id_token":"x","id_token":"y"}"#[..],
        br#"{"access_token":"a","token_type":"MAC","id_token":"x"}"#,
        br#"{"access_token":"a","token_type":"Bearer"}"#,
        br#"{"access_token":"","token_type":"Bearer","id_token":"x"}"#,
        br#"[]"#,
    ] {
        assert!(
            matches!(
                TokenResponse::parse(200, bad),
                Err(LoginError::TokenResponse(_))
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(TokenResponse::parse(500, b"oops").is_err());
}

#[test]
fn id_token_typ_is_absent_or_jwt_and_the_kinds_refuse_each_other() {
    let k = key();
    let v = verifier();
    for typ in [None, Some("JWT"), Some("jwt"), Some("application/JWT")] {
        let t = sign(&k, typ, &id_claims("n1"));
        assert!(
            v.verify::<NoCustomClaims, _>(&t, &keys(&k), "n1", now())
                .is_ok(),
            "{typ:?}"
        );
    }
    for typ in [
        "at+jwt",
        "host+jwt",
        "service+jwt",
        "dpop+jwt",
        "JOSE",
        "id+jwt",
    ] {
        let t = sign(&k, Some(typ), &id_claims("n1"));
        match v.verify::<NoCustomClaims, _>(&t, &keys(&k), "n1", now()) {
            Err(LoginError::IdToken(VerifyError::Token(handoff_core::Error::WrongType {
                ..
            }))) => {}
            other => panic!("{typ}: {other:?}"),
        }
    }
    // The family's own profiles refuse an ID token (typ JWT or none).
    let id = sign(&k, Some("JWT"), &id_claims("n1"));
    for kind in [TokenKind::Access, TokenKind::Service] {
        let p = Verifier::builder(kind)
            .issuer(ISS)
            .audience("app")
            .algorithm(Algorithm::EdDSA)
            .build()
            .unwrap();
        assert!(
            p.verify::<NoCustomClaims, _>(&id, &keys(&k), now())
                .is_err(),
            "{kind}"
        );
    }
    let bare = sign(&k, None, &id_claims("n1"));
    let p = Verifier::builder(TokenKind::Access)
        .issuer(ISS)
        .audience("app")
        .algorithm(Algorithm::EdDSA)
        .build()
        .unwrap();
    assert!(
        p.verify::<NoCustomClaims, _>(&bare, &keys(&k), now())
            .is_err()
    );
}

#[test]
fn id_token_claim_refusals() {
    let k = key();
    let v = verifier();
    let check = |claims: serde_json::Value, nonce: &str| {
        v.verify::<NoCustomClaims, _>(&sign(&k, None, &claims), &keys(&k), nonce, now())
    };
    assert!(matches!(
        check(id_claims("n1"), "n2"),
        Err(LoginError::IdTokenClaim { claim: "nonce", .. })
    ));
    let mut c = id_claims("n1");
    c.as_object_mut().unwrap().remove("nonce");
    assert!(matches!(
        check(c, "n1"),
        Err(LoginError::IdTokenClaim { claim: "nonce", .. })
    ));
    let mut c = id_claims("n1");
    c["iss"] = json!("https://evil.example.com");
    assert!(matches!(
        check(c, "n1"),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::WrongIssuer(_)
        )))
    ));
    let mut c = id_claims("n1");
    c["aud"] = json!("other-client");
    assert!(matches!(
        check(c, "n1"),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::WrongAudience
        )))
    ));
    let mut c = id_claims("n1");
    c["aud"] = json!(["app", "other"]);
    assert!(matches!(
        check(c.clone(), "n1"),
        Err(LoginError::IdTokenClaim { claim: "azp", .. })
    ));
    c["azp"] = json!("other");
    assert!(matches!(
        check(c.clone(), "n1"),
        Err(LoginError::IdTokenClaim { claim: "azp", .. })
    ));
    c["azp"] = json!("app");
    assert!(check(c, "n1").is_ok());
    let mut c = id_claims("n1");
    c["exp"] = json!(NOW - 61);
    assert!(matches!(
        check(c, "n1"),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::Expired { .. }
        )))
    ));
    // Signed by another key: opaque.
    let other = key();
    let t = sign(&other, None, &id_claims("n1"));
    assert!(matches!(
        v.verify::<NoCustomClaims, _>(&t, &keys(&k), "n1", now()),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::InvalidSignature
        )))
    ));
    // Verified email and hosted domain policies.
    let strict = IdTokenVerifier::builder("app")
        .issuer(ISS)
        .algorithm(Algorithm::EdDSA)
        .require_verified_email()
        .hosted_domain("example.com")
        .build()
        .unwrap();
    let mut c = id_claims("n1");
    c["hd"] = json!("example.com");
    assert!(
        strict
            .verify::<NoCustomClaims, _>(&sign(&k, None, &c), &keys(&k), "n1", now())
            .is_ok()
    );
    c["email_verified"] = json!("false");
    assert!(matches!(
        strict.verify::<NoCustomClaims, _>(&sign(&k, None, &c), &keys(&k), "n1", now()),
        Err(LoginError::IdTokenClaim {
            claim: "email_verified",
            ..
        })
    ));
    c["email_verified"] = json!(true);
    c["hd"] = json!("evil.com");
    assert!(matches!(
        strict.verify::<NoCustomClaims, _>(&sign(&k, None, &c), &keys(&k), "n1", now()),
        Err(LoginError::IdTokenClaim { claim: "hd", .. })
    ));
    assert!(
        IdTokenVerifier::builder("app")
            .issuer(ISS)
            .algorithm(Algorithm::HS256)
            .build()
            .is_err()
    );
    assert!(IdTokenVerifier::builder("app").build().is_err());
}

#[test]
fn google_preset_accepts_both_spellings_only() {
    let k = SigningKey::generate(Algorithm::RS256, &mut rng())
        .unwrap()
        .with_kid("g")
        .unwrap();
    let v = IdTokenVerifier::google("app").build().unwrap();
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        let mut c = id_claims("n");
        c["iss"] = json!(iss);
        assert!(
            v.verify::<NoCustomClaims, _>(&sign(&k, Some("JWT"), &c), &keys(&k), "n", now())
                .is_ok(),
            "{iss}"
        );
    }
    for iss in [
        "https://accounts.google.com/",
        "http://accounts.google.com",
        "https://accounts.google.com.evil.com",
    ] {
        let mut c = id_claims("n");
        c["iss"] = json!(iss);
        assert!(
            v.verify::<NoCustomClaims, _>(&sign(&k, Some("JWT"), &c), &keys(&k), "n", now())
                .is_err(),
            "{iss}"
        );
    }
}

#[test]
fn session_tokens_with_roles_and_the_admin_decision() {
    let k = key();
    let v = verifier();
    let id = v
        .verify::<NoCustomClaims, _>(&sign(&k, None, &id_claims("n")), &keys(&k), "n", now())
        .unwrap();
    let admins = AdminAllowList::new().email("admin@example.com");
    assert_eq!(admins.decide(&id, Role::Admin).unwrap(), Role::Admin);
    assert_eq!(
        AdminAllowList::new().decide(&id, Role::User).unwrap(),
        Role::User
    );
    assert!(matches!(
        AdminAllowList::new().decide(&id, Role::Admin),
        Err(LoginError::RoleDenied("admin"))
    ));
    assert_eq!(
        AdminAllowList::new()
            .subject(ISS, "u1")
            .decide(&id, Role::Admin)
            .unwrap(),
        Role::Admin
    );
    assert!(
        AdminAllowList::new()
            .subject("https://other", "u1")
            .decide(&id, Role::Admin)
            .is_err()
    );
    // An unverified email never makes an admin.
    let mut c = id_claims("n");
    c["email_verified"] = json!(false);
    let unverified = v
        .verify::<NoCustomClaims, _>(&sign(&k, None, &c), &keys(&k), "n", now())
        .unwrap();
    assert!(admins.decide(&unverified, Role::Admin).is_err());

    let session_key = key();
    let claims = AccessClaims::new("https://login.example.com", id.subject(), "api", "app");
    let tok = mint_session_token(
        &claims,
        &Roles::one(Role::Admin),
        &session_key,
        now(),
        &mut rng(),
    )
    .unwrap();
    assert!(!format!("{tok:?}").contains(tok.as_str()));
    let sv = SessionVerifier::new(
        Verifier::builder(TokenKind::Access)
            .issuer("https://login.example.com")
            .audience("api")
            .algorithm(Algorithm::EdDSA)
            .build()
            .unwrap(),
    )
    .unwrap();
    let got = sv
        .verify::<Roles, _>(tok.as_str(), &keys(&session_key), now())
        .unwrap();
    assert!(got.custom().has(Role::Admin));
    assert_eq!(got.registered().sub.as_deref(), Some("u1"));
    // The session token is no ID token, and the host profile refuses it.
    assert!(
        v.verify::<NoCustomClaims, _>(tok.as_str(), &keys(&session_key), "n", now())
            .is_err()
    );
    let host = Verifier::builder(TokenKind::Host)
        .issuer("https://login.example.com")
        .audience("api")
        .algorithm(Algorithm::EdDSA)
        .build()
        .unwrap();
    assert!(
        host.verify_once::<NoCustomClaims, _>(tok.as_str(), &keys(&session_key), now())
            .is_err()
    );
    // Reserved names and non-objects are refused.
    assert!(
        mint_session_token(
            &claims,
            &json!({"sub": "x"}),
            &session_key,
            now(),
            &mut rng()
        )
        .is_err()
    );
    assert!(
        mint_session_token(
            &claims,
            &json!({"cnf": {}}),
            &session_key,
            now(),
            &mut rng()
        )
        .is_err()
    );
    assert!(
        mint_session_token(&claims, &json!(["admin"]), &session_key, now(), &mut rng()).is_err()
    );
    assert!(SessionVerifier::new(host).is_err());
}

#[test]
fn suppression_list_ttl_and_capacity() {
    let mut s = SuppressionList::new(2, 3600).unwrap();
    let t0 = now();
    assert_eq!(
        s.suppress("a", 30, t0),
        Suppressed::Until(t0.saturating_add(30))
    );
    assert_eq!(
        s.check(&"a", t0.saturating_add(29)),
        Some(t0.saturating_add(30))
    );
    assert_eq!(s.check(&"a", t0.saturating_add(30)), None);
    // TTL clamped to the maximum.
    assert_eq!(
        s.suppress("b", 1_000_000, t0),
        Suppressed::Until(t0.saturating_add(3600))
    );
    // Full of live entries: the earliest-expiring one makes room for a longer one.
    assert_eq!(
        s.suppress("c", 60, t0),
        Suppressed::EvictedEarliest {
            until: t0.saturating_add(60),
            evicted: "a"
        }
    );
    // ... but never for a shorter one.
    assert_eq!(s.suppress("d", 10, t0), Suppressed::AtCapacity);
    assert_eq!(s.len(), 2);
    // Expired entries are purged to make room.
    assert_eq!(
        s.suppress("d", 10, t0.saturating_add(61)),
        Suppressed::Until(t0.saturating_add(71))
    );
    assert!(s.lift(&"d"));
    assert!(SuppressionList::<u8>::new(0, 1).is_err());
}
