//! The full authorization code + PKCE flow against panva's certified `oidc-provider`
//! (npm, `interop/`), started on 127.0.0.1 with an ephemeral port. The test does the HTTP;
//! the crate makes every decision. Needs Node and `npm ci` in `interop/`: without them
//! the test skips loudly, and fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handoff_core::UnixTime;
use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_login::{
    AdminAllowList, AppContext, CallbackParams, ClientAuth, ClientConfig, ClientSecret,
    CodeExchange, IdToken, IdTokenVerifier, LoginError, OAuthErrorCode, PendingLogin,
    ProviderMetadata, RedirectAllowList, Role, Roles, SessionVerifier, TokenResponse, authorize,
    mint_session_token,
};
use handoff_verify::{
    AccessClaims, FetchResponse, JwksCache, JwksCacheConfig, NoCustomClaims, Outcome, TokenKind,
    Verifier, VerifyError,
};
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:9/oauthCallback";
const SECRET: &str = "app-secret-0123456789-abcdefghijkl";

fn wall() -> UnixTime {
    UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}
fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

struct Provider {
    child: Child,
    issuer: String,
    // Held open for the provider's lifetime: it exits when stdin closes, and writing to a
    // closed stdout would kill it.
    _stdin: std::process::ChildStdin,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Starts oidc-provider, or returns `None` after a loud skip (panics under `CI`).
fn provider(test: &str) -> Option<Provider> {
    let dir = interop_dir();
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok || !dir.join("node_modules/oidc-provider").is_dir() {
        // Loud skip (one line on the real stderr, counted by `.ci/test`), a failure under CI.
        handoff_test_support::skip(
            &format!("handoff-login oidc-provider interop ({test})"),
            "node or interop/node_modules/oidc-provider is missing",
            "npm ci --prefix interop",
        );
        return None;
    }
    let mut child = Command::new("node")
        .arg("oidc_provider.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let config = json!({
        "clients": [
            {"client_id": "app", "client_secret": SECRET, "token_endpoint_auth_method": "client_secret_basic", "redirect_uris": [REDIRECT]},
            {"client_id": "other", "client_secret": SECRET, "token_endpoint_auth_method": "client_secret_post", "redirect_uris": [REDIRECT]},
            {"client_id": "public", "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT]},
            {"client_id": "slow", "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT], "code_ttl": 1}
        ],
        "account": {"sub": "user-42", "email": "Admin@Example.com", "email_verified": true}
    });
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{config}").unwrap();
    // The provider's own errors reach the test output; its development-mode warnings
    // (in-memory adapter, Node version) do not.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if !line.starts_with("oidc-provider WARNING") {
                let _ = writeln!(std::io::stderr(), "oidc-provider: {line}");
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let issuer = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("oidc-provider did not start: {line:?}"))
        .trim()
        .to_owned();
    Some(Provider {
        child,
        issuer,
        _stdin: stdin,
        _stdout: stdout,
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, Option<String>, Vec<u8>, Option<String>) {
    let mut r = agent.get(url).call().unwrap();
    let status = r.status().as_u16();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, cc) = (h("location"), h("cache-control"));
    let body = r.body_mut().read_to_vec().unwrap();
    (status, location, body, cc)
}

struct Rp {
    metadata: ProviderMetadata,
    cache: JwksCache,
}

fn discover(p: &Provider) -> Rp {
    let agent = agent();
    let (status, _, body, _) = get(&agent, &ProviderMetadata::discovery_url(&p.issuer).unwrap());
    assert_eq!(status, 200);
    let metadata = ProviderMetadata::parse(&body, &p.issuer).unwrap();
    assert!(metadata.iss_parameter_supported());
    let cache = JwksCache::new(JwksCacheConfig::new(metadata.jwks_uri().as_str())).unwrap();
    Rp { metadata, cache }
}

fn client(id: &str) -> ClientConfig {
    let auth = match id {
        "app" => ClientAuth::SecretBasic(ClientSecret::new(SECRET).unwrap()),
        "other" => ClientAuth::SecretPost(ClientSecret::new(SECRET).unwrap()),
        _ => ClientAuth::None,
    };
    ClientConfig::new(id, REDIRECT, auth).unwrap()
}

/// The browser: follows the provider's redirects (login and consent are automated by the
/// provider's interaction route) until it is sent to the redirect URI.
fn browse_to_callback(agent: &ureq::Agent, start: &url::Url) -> String {
    let mut at = start.clone();
    for _ in 0..12 {
        let (status, location, body, _) = get(agent, at.as_str());
        assert!(
            (300..400).contains(&status),
            "{status} at {at}: {}",
            String::from_utf8_lossy(&body)
        );
        let next = at
            .join(&location.expect("a redirect has a Location"))
            .unwrap();
        if next.as_str().starts_with(REDIRECT) {
            return next.into();
        }
        at = next;
    }
    panic!("too many redirects");
}

/// Starts a login for `client_id` in browser session `browser` and brings back the
/// callback URL.
fn login(rp: &Rp, client_id: &str, browser: &[u8], app: AppContext) -> (PendingLogin, String) {
    let start = authorize(
        &rp.metadata,
        &client(client_id),
        browser,
        app,
        wall(),
        &mut rng(),
    )
    .unwrap();
    let cb = browse_to_callback(&agent(), &start.url);
    (start.pending, cb)
}

fn exchange(rp: &Rp, client_id: &str, ex: &CodeExchange) -> Result<TokenResponse, LoginError> {
    let req = ex.token_request(&rp.metadata, &client(client_id))?;
    let mut b = agent().post(&req.url);
    for (n, v) in &req.headers {
        b = b.header(*n, v.as_str());
    }
    let mut r = b.send(req.body.as_str()).unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_vec().unwrap();
    TokenResponse::parse(status, &body)
}

/// Verifies through the JWKS cache, performing the fetches it asks for.
fn verify_id(
    rp: &mut Rp,
    v: &IdTokenVerifier,
    token: &str,
    nonce: &str,
) -> Result<IdToken<NoCustomClaims>, LoginError> {
    for _ in 0..3 {
        match v.verify_with_cache::<NoCustomClaims>(token, &mut rp.cache, nonce, wall())? {
            Outcome::Verified(t) => return Ok(t),
            Outcome::VerifiedRefresh { value, fetch } => {
                rp.cache.cancel_fetch(fetch.id);
                return Ok(value);
            }
            Outcome::Fetch(req) => {
                let (status, _, body, cache_control) = get(&agent(), &req.url);
                let report = rp.cache.on_fetch_complete(
                    wall(),
                    req.id,
                    FetchResponse {
                        status,
                        body,
                        cache_control,
                        etag: None,
                    },
                );
                assert_eq!(report.added.len(), 1, "{report:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("the cache kept asking for fetches");
}

fn id_verifier(p: &Provider, client_id: &str) -> IdTokenVerifier {
    IdTokenVerifier::builder(client_id)
        .issuer(&p.issuer)
        .require_verified_email()
        .build()
        .unwrap()
}

fn accept(
    p: &PendingLogin,
    cb: &str,
    browser: &[u8],
    log: &InMemoryReplayLog,
) -> Result<CodeExchange, LoginError> {
    let params = CallbackParams::from_url(cb)?;
    p.on_callback(&params, browser, wall())?
        .confirm(log, wall())
        .map_err(|e| match e {
            ReplayRefused::Replayed => LoginError::Replayed,
            other => LoginError::ReplayStore(other.to_string()),
        })
}

#[test]
fn full_code_flow_with_pkce_against_oidc_provider() {
    let Some(p) = provider("full_code_flow_with_pkce_against_oidc_provider") else {
        return;
    };
    let mut rp = discover(&p);
    let log = InMemoryReplayLog::new(1000);
    let apps = RedirectAllowList::new()
        .allow("https://app.example.com")
        .unwrap();

    // /oauthStart?redirect_uri=https://app.example.com/home&role=admin
    let return_to = apps.check("https://app.example.com/home").unwrap();
    let app = AppContext::new(Some(return_to.url().to_string()), Some("admin".into()));
    let (pending, cb) = login(&rp, "app", b"browser-A", app);
    assert!(cb.contains("code=") && cb.contains("iss="), "{cb}");

    // /oauthCallback
    let ex = accept(&pending, &cb, b"browser-A", &log).unwrap();
    let tokens = exchange(&rp, "app", &ex).unwrap();
    let v = id_verifier(&p, "app");
    let id = verify_id(&mut rp, &v, &tokens.id_token, ex.nonce()).unwrap();
    assert_eq!(id.subject(), "user-42");
    assert_eq!(id.verified_email(), Some("Admin@Example.com"));

    // Role: admin only for allow-listed accounts.
    let requested = Role::parse(ex.pending().app().role.as_deref().unwrap()).unwrap();
    let role = AdminAllowList::new()
        .email("admin@example.com")
        .decide(&id, requested)
        .unwrap();
    assert_eq!(role, Role::Admin);
    assert!(AdminAllowList::new().decide(&id, requested).is_err());

    // Session token minted with the role, verified into the caller's type.
    let session_key =
        handoff_core::SigningKey::generate(handoff_core::Algorithm::EdDSA, &mut rng()).unwrap();
    let claims = AccessClaims::new("https://login.example.com", id.subject(), "plat-api", "app");
    let session =
        mint_session_token(&claims, &Roles::one(role), &session_key, wall(), &mut rng()).unwrap();
    let sv = SessionVerifier::new(
        Verifier::builder(TokenKind::Access)
            .issuer("https://login.example.com")
            .audience("plat-api")
            .algorithm(handoff_core::Algorithm::EdDSA)
            .build()
            .unwrap(),
    )
    .unwrap();
    let got = sv
        .verify::<Roles, _>(session.as_str(), &session_key.verifying_key(), wall())
        .unwrap();
    assert!(got.custom().has(Role::Admin));

    // Back to the app, token in the fragment, only to the allow-listed origin.
    let back = apps
        .check(ex.pending().app().return_to.as_deref().unwrap())
        .unwrap();
    let loc = back.with_session_token(session.as_str());
    assert_eq!(
        loc.location(),
        format!(
            "https://app.example.com/home#session_token={}",
            session.as_str()
        )
    );

    // Negative: the same callback again (state replayed) is refused by the crate, and the
    // provider refuses the code a second time too.
    assert!(matches!(
        accept(&pending, &cb, b"browser-A", &log),
        Err(LoginError::Replayed)
    ));
    match exchange(&rp, "app", &ex) {
        Err(LoginError::TokenEndpoint { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("{other:?}"),
    }
    // Negative: the wrong issuer (discovery for another issuer, an ID-token verifier
    // for another issuer, an authorization response naming another issuer).
    let (_, _, body, _) = get(
        &agent(),
        &ProviderMetadata::discovery_url(&p.issuer).unwrap(),
    );
    assert!(matches!(
        ProviderMetadata::parse(&body, "https://accounts.google.com"),
        Err(LoginError::Metadata(_))
    ));
    let wrong = IdTokenVerifier::google("app").build().unwrap();
    assert!(matches!(
        verify_id(&mut rp, &wrong, &tokens.id_token, ex.nonce()),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::WrongIssuer(_)
        )))
    ));
    let (pending2, cb2) = login(&rp, "app", b"browser-A", AppContext::default());
    let forged = cb2.replace(
        &format!("iss={}", form(&p.issuer)),
        "iss=https%3A%2F%2Fevil.example.com",
    );
    assert_ne!(forged, cb2);
    assert!(matches!(
        accept(&pending2, &forged, b"browser-A", &log),
        Err(LoginError::IssuerMismatch(_))
    ));
    // Negative: the callback arrives in another browser session.
    assert!(matches!(
        accept(&pending2, &cb2, b"browser-B", &log),
        Err(LoginError::BrowserSessionMismatch)
    ));
    // ... and with the state of another login.
    assert!(matches!(
        accept(&pending, &cb2, b"browser-A", &log),
        Err(LoginError::StateMismatch)
    ));
    // Negative: nonce mismatch (this login's ID token against the other login's nonce).
    let ex2 = accept(&pending2, &cb2, b"browser-A", &log).unwrap();
    let tokens2 = exchange(&rp, "app", &ex2).unwrap();
    assert!(matches!(
        verify_id(&mut rp, &v, &tokens2.id_token, ex.nonce()),
        Err(LoginError::IdTokenClaim { claim: "nonce", .. })
    ));
    assert!(verify_id(&mut rp, &v, &tokens2.id_token, ex2.nonce()).is_ok());
}

fn form(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn id_token_for_another_client_and_expired_code() {
    let Some(p) = provider("id_token_for_another_client_and_expired_code") else {
        return;
    };
    let mut rp = discover(&p);
    let log = InMemoryReplayLog::new(1000);

    // A login of client "other" (client_secret_post) succeeds for "other" ...
    let (pending, cb) = login(&rp, "other", b"browser-A", AppContext::default());
    let ex = accept(&pending, &cb, b"browser-A", &log).unwrap();
    let tokens = exchange(&rp, "other", &ex).unwrap();
    assert!(
        verify_id(
            &mut rp,
            &id_verifier(&p, "other"),
            &tokens.id_token,
            ex.nonce()
        )
        .is_ok()
    );
    // ... and its ID token is refused by client "app": wrong audience.
    assert!(matches!(
        verify_id(
            &mut rp,
            &id_verifier(&p, "app"),
            &tokens.id_token,
            ex.nonce()
        ),
        Err(LoginError::IdToken(VerifyError::Token(
            handoff_core::Error::WrongAudience
        )))
    ));
    // "app" cannot redeem a code issued to "other" (the crate refuses to build it).
    assert!(matches!(
        ex.token_request(&rp.metadata, &client("app")),
        Err(LoginError::Config(_))
    ));

    // A public client (PKCE only) works too.
    let (pending, cb) = login(&rp, "public", b"browser-P", AppContext::default());
    let ex = accept(&pending, &cb, b"browser-P", &log).unwrap();
    let tokens = exchange(&rp, "public", &ex).unwrap();
    assert!(
        verify_id(
            &mut rp,
            &id_verifier(&p, "public"),
            &tokens.id_token,
            ex.nonce()
        )
        .is_ok()
    );

    // Expired code: client "slow" gets codes living 1 s.
    let (pending, cb) = login(&rp, "slow", b"browser-S", AppContext::default());
    let ex = accept(&pending, &cb, b"browser-S", &log).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    match exchange(&rp, "slow", &ex) {
        Err(e @ LoginError::TokenEndpoint { .. }) => {
            let LoginError::TokenEndpoint { error, .. } = &e else {
                unreachable!()
            };
            assert_eq!(error, "invalid_grant");
            // The app is told, in the fragment, with an RFC 6749 code.
            let apps = RedirectAllowList::new()
                .allow("https://app.example.com")
                .unwrap();
            let loc = apps
                .check("https://app.example.com/")
                .unwrap()
                .with_error(OAuthErrorCode::AccessDenied, Some(&e.to_string()));
            assert!(loc.location().starts_with("https://app.example.com/#oauth_error=access_denied&oauth_error_description=the+token+endpoint+refused"), "{}", loc.location());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn provider_error_response_reaches_the_app() {
    let Some(p) = provider("provider_error_response_reaches_the_app") else {
        return;
    };
    let rp = discover(&p);
    // An unregistered scope value is ignored by providers; an unsupported prompt is an
    // error the provider sends back to the redirect URI with state and iss.
    let start = authorize(
        &rp.metadata,
        &client("app"),
        b"b",
        AppContext::default(),
        wall(),
        &mut rng(),
    )
    .unwrap();
    let mut url = start.url.clone();
    url.query_pairs_mut().append_pair("prompt", "none");
    let cb = browse_to_callback(&agent(), &url);
    match start
        .pending
        .on_callback(&CallbackParams::from_url(&cb).unwrap(), b"b", wall())
    {
        Err(LoginError::ProviderError { error, .. }) => assert_eq!(error, "login_required"),
        other => panic!("{other:?}"),
    }
}
