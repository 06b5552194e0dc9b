//! OpenID Connect login end to end, in one process (`cargo run --example login`).
//!
//! A small OpenID Provider made of the family's own `handoff-issuer` keys (discovery
//! document, JWKS, an authorization endpoint whose login and consent are automated, a
//! token endpoint checking PKCE and the client secret) stands in for Google. The login
//! service (`handoff-login`) makes every decision: discovery, the authorization URL with
//! state, PKCE and nonce, the callback, the token request, the ID token through the JWKS
//! cache, the admin role, the session token and the redirect back to the app. Then the
//! refusals: a replayed callback, a hostile return URL, an admin role for an account not
//! on the list, a client over its rate limit and a suppressed client.
//!
//! Time is a simulated clock read once from the system and advanced by hand. No socket is
//! opened: the "HTTP" between the parties is function calls carrying the same values.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use examples::{During, ExampleError, Narrator, SimClock, expect, expect_refused, system_rng};
use handoff_core::jws::{self, SignHeader};
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{Algorithm, UnixTime, b64};
use handoff_issuer::{HostIssuerKeys, Keyring};
use handoff_login::{
    AdminAllowList, AppContext, CallbackParams, ClientAuth, ClientConfig, ClientSecret,
    IdTokenVerifier, LoginError, OAuthErrorCode, ProviderMetadata, RateLimiter, RatePolicy,
    RedirectAllowList, Role, Roles, SessionVerifier, Suppressed, SuppressionList, TokenRequest,
    TokenResponse, authorize, mint_session_token,
};
use handoff_verify::{
    AccessClaims, FetchResponse, JwksCache, JwksCacheConfig, NoCustomClaims, Outcome, TokenKind,
    Verifier,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

const IDP: &str = "https://idp.example.com";
const LOGIN: &str = "https://login.example.com";
const CALLBACK: &str = "https://login.example.com/oauthCallback";
const APP: &str = "https://app.example.com";
const CLIENT_SECRET: &str = "plat-login-secret-0123456789abcdef";

fn main() -> ExitCode {
    let result = SimClock::from_system().and_then(|clock| run(std::io::stdout().lock(), clock));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("login FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The stand-in OpenID Provider. Its keys come from `handoff-issuer`; everything else is
/// the minimum a provider does for the code flow.
struct Provider {
    keyring: Keyring,
    codes: HashMap<String, Grant>,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    sub: String,
    email: String,
    expires: UnixTime,
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

impl Provider {
    fn discovery(&self) -> Vec<u8> {
        json!({
            "issuer": IDP,
            "authorization_endpoint": format!("{IDP}/authorize"),
            "token_endpoint": format!("{IDP}/token"),
            "jwks_uri": format!("{IDP}/jwks"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "authorization_response_iss_parameter_supported": true
        })
        .to_string()
        .into_bytes()
    }

    /// The authorization endpoint: the user (`sub`, `email`) logs in and consents (both
    /// automated); the answer is the redirect to the client's callback.
    fn authorize(&mut self, at: &Url, sub: &str, email: &str, now: UnixTime) -> String {
        let q = query(at);
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        let code = b64::encode(&Sha256::digest(format!(
            "{}{}",
            get("state"),
            now.as_secs()
        )));
        self.codes.insert(
            code.clone(),
            Grant {
                client_id: get("client_id"),
                redirect_uri: get("redirect_uri"),
                challenge: get("code_challenge"),
                nonce: get("nonce"),
                sub: sub.to_owned(),
                email: email.to_owned(),
                expires: now.saturating_add(60),
            },
        );
        let mut back = Url::parse(&get("redirect_uri"))
            .unwrap_or_else(|_| Url::parse(CALLBACK).unwrap_or_else(|_| at.clone()));
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &get("state"))
            .append_pair("iss", IDP);
        back.into()
    }

    /// The token endpoint: client secret (Basic), one-time code, exact redirect URI,
    /// PKCE S256; answers with an ID token signed by the keyring's active key.
    fn token(&mut self, req: &TokenRequest, now: UnixTime) -> (u16, Vec<u8>) {
        let err = |e: &str| (400, json!({ "error": e }).to_string().into_bytes());
        let basic = format!(
            "Basic {}",
            <base64ct::Base64 as base64ct::Encoding>::encode_string(
                format!("plat-login:{CLIENT_SECRET}").as_bytes()
            )
        );
        if !req
            .headers
            .iter()
            .any(|(n, v)| *n == "Authorization" && *v == basic)
        {
            return (
                401,
                json!({ "error": "invalid_client" })
                    .to_string()
                    .into_bytes(),
            );
        }
        let form: HashMap<String, String> = url::form_urlencoded::parse(req.body.as_bytes())
            .into_owned()
            .collect();
        let Some(g) = form.get("code").and_then(|c| self.codes.remove(c)) else {
            return err("invalid_grant");
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if g.client_id != "plat-login"
            || form.get("redirect_uri") != Some(&g.redirect_uri)
            || b64::encode(&Sha256::digest(verifier.as_bytes())) != g.challenge
            || now > g.expires
        {
            return err("invalid_grant");
        }
        let claims = json!({
            "iss": IDP, "sub": g.sub, "aud": g.client_id, "iat": now.as_secs(),
            "exp": now.as_secs() + 300, "nonce": g.nonce, "email": g.email, "email_verified": true
        });
        let header = SignHeader {
            typ: Some("JWT"),
            ..SignHeader::default()
        };
        let Ok(id_token) = jws::sign(
            self.keyring.active().signing_key(),
            &header,
            claims.to_string().as_bytes(),
            &mut system_rng(),
        ) else {
            return (500, Vec::new());
        };
        (200, json!({ "access_token": "opaque-idp-token", "token_type": "Bearer", "expires_in": 300, "id_token": id_token }).to_string().into_bytes())
    }
}

/// The login service's configuration and state.
struct LoginService {
    metadata: ProviderMetadata,
    client: ClientConfig,
    ids: IdTokenVerifier,
    cache: JwksCache,
    apps: RedirectAllowList,
    admins: AdminAllowList,
    states: InMemoryReplayLog,
    limiter: RateLimiter<String>,
    suppressed: SuppressionList<String>,
    session_key: handoff_core::SigningKey,
}

impl LoginService {
    /// Verifies the ID token, fetching the provider's JWKS when the cache asks for it.
    fn verify_id(
        &mut self,
        idp: &Provider,
        token: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<handoff_login::IdToken<NoCustomClaims>, LoginError> {
        loop {
            match self.ids.verify_with_cache::<NoCustomClaims>(
                token,
                &mut self.cache,
                nonce,
                now,
            )? {
                Outcome::Fetch(req) => {
                    let jwks = idp.keyring.jwks_response(now);
                    let _report = self.cache.on_fetch_complete(
                        now,
                        req.id,
                        FetchResponse {
                            status: 200,
                            cache_control: Some(jwks.cache_control()),
                            body: jwks.into_body(),
                            etag: None,
                        },
                    );
                }
                other => {
                    return other
                        .verified()
                        .ok_or(LoginError::Config("the JWKS cache is busy"));
                }
            }
        }
    }
}

#[allow(clippy::too_many_lines)] // one story, told in order
fn run<W: Write>(out: W, mut clock: SimClock) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(
        out,
        "login: OpenID Connect code flow with PKCE, roles and abuse controls",
    );
    out.info("(simulated clock: read once from the system, then advanced by hand)");

    let mut step = "start a provider whose keys come from handoff-issuer";
    out.step("idp", step);
    let keys =
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("idp-2026-01"), &mut rng).during(step)?;
    let mut idp = Provider {
        keyring: Keyring::new(keys, clock.now()),
        codes: HashMap::new(),
    };
    out.ok("discovery document, JWKS and endpoints ready (EdDSA, kid idp-2026-01)");

    step = "discover the provider and configure the login service";
    out.step("login", step);
    let metadata = ProviderMetadata::parse(&idp.discovery(), IDP).during(step)?;
    let client = ClientConfig::new(
        "plat-login",
        CALLBACK,
        ClientAuth::SecretBasic(ClientSecret::new(CLIENT_SECRET).during(step)?),
    )
    .during(step)?;
    let mut login = LoginService {
        cache: JwksCache::new(JwksCacheConfig::new(metadata.jwks_uri().as_str())).during(step)?,
        ids: IdTokenVerifier::builder("plat-login")
            .issuer(IDP)
            .algorithm(Algorithm::EdDSA)
            .require_verified_email()
            .build()
            .during(step)?,
        metadata,
        client,
        apps: RedirectAllowList::new().allow(APP).during(step)?,
        admins: AdminAllowList::new().email("ada@example.com"),
        states: InMemoryReplayLog::new(100_000),
        limiter: RateLimiter::new(
            RatePolicy::SlidingWindow {
                limit: 5,
                window_secs: 30,
            },
            100_000,
        )
        .during(step)?,
        suppressed: SuppressionList::new(100_000, 3600).during(step)?,
        session_key: handoff_core::SigningKey::generate(Algorithm::EdDSA, &mut rng).during(step)?,
    };
    out.ok(format!(
        "issuer {IDP}, iss parameter (RFC 9207) promised: {}",
        login.metadata.iss_parameter_supported()
    ));

    // ---- the happy path ----
    step = "GET /oauthStart?redirect_uri=https://app.example.com/home&role=admin";
    out.step("browser", format!("{step} ({})", clock.label()));
    let client_ip = "203.0.113.7".to_owned();
    expect(
        login.suppressed.check(&client_ip, clock.now()).is_none(),
        step,
        "client not suppressed",
    )?;
    expect(
        login.limiter.check(&client_ip, clock.now()).is_allowed(),
        step,
        "within the rate limit",
    )?;
    let return_to = login
        .apps
        .check("https://app.example.com/home")
        .during(step)?;
    let start = authorize(
        &login.metadata,
        &login.client,
        b"browser-cookie-1",
        AppContext::new(Some(return_to.url().to_string()), Some("admin".into())),
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let sealed = start
        .pending
        .seal(&handoff_login::SealingKey::from_bytes([7; 32]), &mut rng)
        .during(step)?;
    out.ok(format!("302 to the provider with state, nonce and PKCE S256; pending login sealed into a cookie ({} bytes)", sealed.len()));

    clock.advance(3);
    step = "log in and consent at the provider";
    out.step("idp", format!("{step} ({})", clock.label()));
    let callback = idp.authorize(&start.url, "ada-1815", "ada@example.com", clock.now());
    out.ok("302 back to /oauthCallback with code, state and iss");

    step = "GET /oauthCallback: state, browser session, iss, then the code exchange";
    out.step("login", step);
    let pending =
        handoff_login::PendingLogin::open(&handoff_login::SealingKey::from_bytes([7; 32]), &sealed)
            .during(step)?;
    let params = CallbackParams::from_url(&callback).during(step)?;
    let exchange = pending
        .on_callback(&params, b"browser-cookie-1", clock.now())
        .during(step)?
        .confirm(&login.states, clock.now())
        .during(step)?;
    let request = exchange
        .token_request(&login.metadata, &login.client)
        .during(step)?;
    let (status, body) = idp.token(&request, clock.now());
    let tokens = TokenResponse::parse(status, &body).during(step)?;
    out.ok(format!(
        "token endpoint answered {status} with an ID token ({tokens:?})"
    ));

    step = "verify the ID token through the JWKS cache";
    out.step("login", step);
    let id = login
        .verify_id(&idp, &tokens.id_token, exchange.nonce(), clock.now())
        .during(step)?;
    expect(id.subject() == "ada-1815", step, "sub ada-1815")?;
    out.ok(format!(
        "sub {}, verified email {:?}",
        id.subject(),
        id.verified_email()
    ));

    step = "decide the role and mint the session token";
    out.step("login", step);
    let requested =
        Role::parse(exchange.pending().app().role.as_deref().unwrap_or("user")).during(step)?;
    let role = login.admins.decide(&id, requested).during(step)?;
    let session = mint_session_token(
        &AccessClaims::new(LOGIN, id.subject(), "plat-api", "plat-login"),
        &Roles::one(role),
        &login.session_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let back = login
        .apps
        .check(
            exchange
                .pending()
                .app()
                .return_to
                .as_deref()
                .unwrap_or_default(),
        )
        .during(step)?
        .with_session_token(session.as_str());
    expect(
        back.location()
            .starts_with("https://app.example.com/home#session_token="),
        step,
        "fragment redirect to the app",
    )?;
    out.ok(format!(
        "role {}; 302 to https://app.example.com/home#session_token=… (jti {})",
        role.as_str(),
        session.jti()
    ));

    step = "the app's API verifies the session token into its own type";
    out.step("api", step);
    let api = SessionVerifier::new(
        Verifier::builder(TokenKind::Access)
            .issuer(LOGIN)
            .audience("plat-api")
            .algorithm(Algorithm::EdDSA)
            .build()
            .during(step)?,
    )
    .during(step)?;
    let verified = api
        .verify::<Roles, _>(
            session.as_str(),
            &login.session_key.verifying_key(),
            clock.now(),
        )
        .during(step)?;
    expect(verified.custom().has(Role::Admin), step, "roles [admin]")?;
    out.ok(format!(
        "sub {:?}, roles {:?}",
        verified.registered().sub,
        verified.custom().roles
    ));

    // ---- refusals ----
    step = "the same callback again (replayed state)";
    out.step("attacker", step);
    let e = expect_refused(
        pending
            .on_callback(&params, b"browser-cookie-1", clock.now())
            .during(step)?
            .confirm(&login.states, clock.now()),
        step,
    )?;
    out.refused("state already used", &e);

    step = "/oauthStart with a hostile return URL";
    out.step("attacker", step);
    for hostile in [
        "https://app.example.com.evil.com/",
        "//evil.com",
        "https://app.example.com@evil.com/",
        "javascript:alert(1)",
    ] {
        let e = expect_refused(login.apps.check(hostile), step)?;
        out.refused(format!("{hostile:?}"), &e);
    }

    step = "an account not on the admin list asks for admin";
    out.step("browser", step);
    let start = authorize(
        &login.metadata,
        &login.client,
        b"browser-cookie-2",
        AppContext::new(Some(format!("{APP}/")), Some("admin".into())),
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let cb = CallbackParams::from_url(&idp.authorize(
        &start.url,
        "mallory-1",
        "mallory@example.com",
        clock.now(),
    ))
    .during(step)?;
    let ex = start
        .pending
        .on_callback(&cb, b"browser-cookie-2", clock.now())
        .during(step)?
        .confirm(&login.states, clock.now())
        .during(step)?;
    let (status, body) = idp.token(
        &ex.token_request(&login.metadata, &login.client)
            .during(step)?,
        clock.now(),
    );
    let tokens = TokenResponse::parse(status, &body).during(step)?;
    let mallory = login
        .verify_id(&idp, &tokens.id_token, ex.nonce(), clock.now())
        .during(step)?;
    let e = expect_refused(login.admins.decide(&mallory, Role::Admin), step)?;
    let denied = login
        .apps
        .check(&format!("{APP}/"))
        .during(step)?
        .with_error(OAuthErrorCode::AccessDenied, Some(&e.to_string()));
    expect(
        denied
            .location()
            .starts_with("https://app.example.com/#oauth_error=access_denied"),
        step,
        "error in the fragment",
    )?;
    out.refused(
        "admin role; 302 to https://app.example.com/#oauth_error=access_denied&…",
        &e,
    );

    step = "a client over 5 starts per 30 s, then suppressed for 10 minutes";
    out.step("attacker", step);
    let bot = "198.51.100.9".to_owned();
    let mut passed = 0;
    for _ in 0..8 {
        if login.limiter.check(&bot, clock.now()).is_allowed() {
            passed += 1;
        }
    }
    expect(passed == 5, step, "exactly 5 of 8 pass")?;
    let s = login.suppressed.suppress(bot.clone(), 600, clock.now());
    expect(matches!(s, Suppressed::Until(_)), step, "suppressed")?;
    clock.advance(31);
    expect(
        login.limiter.check(&bot, clock.now()).is_allowed(),
        step,
        "window slid",
    )?;
    expect(
        login.suppressed.check(&bot, clock.now()).is_some(),
        step,
        "still suppressed",
    )?;
    out.ok(format!(
        "5 of 8 passed, 3 got 429; suppressed until {:?}",
        login.suppressed.check(&bot, clock.now())
    ));

    out.finish("every decision made by handoff-login, every outcome as expected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_story_runs() {
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let out = String::from_utf8(run(Vec::new(), clock).unwrap()).unwrap();
        assert!(
            out.contains("role admin; 302 to https://app.example.com/home#session_token="),
            "{out}"
        );
        assert!(
            out.contains("refused, as expected: state already used"),
            "{out}"
        );
        assert!(out.contains("5 of 8 passed"), "{out}");
    }
}
