//! The host handoff, end to end in one process (`cargo run --example host_handoff`).
//!
//! A host platform hands its logged-in user over to a service:
//!
//! 1. the host generates its signing key and publishes its JWKS (`host-issuer`);
//! 2. the host mints a short-lived host JWT (`typ: host+jwt`) for the user;
//! 3. the browser makes a DPoP key and a proof for the service's token endpoint (`dpop`);
//! 4. the service verifies the host JWT through its JWKS cache, fed the document the
//!    host published (`session-verify`), and consumes its one-time `jti`;
//! 5. the service checks the DPoP proof, mints a DPoP-bound access token
//!    (`cnf.jkt`) and starts a refresh-token family (`refresh-family`);
//! 6. replays of the handoff are refused;
//! 7. the browser calls the API with a fresh proof carrying `ath`, and the resource server
//!    verifies the token, the proof and the binding;
//! 8. the browser refreshes: the refresh token rotates;
//! 9. a stolen copy of the old refresh token is replayed: reuse is detected, the family is
//!    revoked with its access tokens, and the legitimate client is logged out too.
//!
//! Everything is Sans-IO: the host, the browser, the service and the API are plain values
//! here, and HTTP is simulated by passing strings. Time is a simulated clock read once from
//! the system and advanced by hand.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;

use examples::{During, ExampleError, Narrator, SimClock, expect, expect_refused, system_rng};
use handoff_core::replay::{InMemoryReplayLog, ReplayRefused};
use handoff_core::{HmacSecret, SigningKey, UnixTime, VerifyingKey};
use handoff_dpop::{DpopKey, DpopRequest, DpopVerifier};
use handoff_issuer::{Algorithm, HostClaims, HostIssuerKeys, Keyring};
use handoff_refresh::{FamilyId, InMemoryFamilyStore, Outcome as Refresh, RefreshError};
use handoff_refresh::{Policy, RefreshFamilies};
use handoff_verify::{
    AccessClaims, AccessTokenVerifier, FetchResponse, HostTokenVerifier, JwksCache,
    JwksCacheConfig, NoCustomClaims, Outcome, Presented, TokenKind, Verifier, VerifyError,
    mint_access_token,
};

const HOST: &str = "https://host.example";
const SERVICE: &str = "https://service.example";
const TOKEN_ENDPOINT: &str = "https://service.example/token";
const API: &str = "https://api.example";
const ORDERS_URL: &str = "https://api.example/orders?page=1";
const CLIENT_ID: &str = "web-app";

fn main() -> ExitCode {
    let result = SimClock::from_system().and_then(|clock| run(std::io::stdout().lock(), clock));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host_handoff FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first characters of a credential, enough to tell two apart in the output.
fn short(token: &str) -> String {
    let head: String = token.chars().take(12).collect();
    format!("{head}... ({} chars)", token.len())
}

/// What the service keeps: its session signing key, the replay logs, the refresh
/// families, and which access tokens each family got (to revoke them on reuse).
struct Service {
    host_verifier: HostTokenVerifier,
    host_jwks: JwksCache,
    host_jtis: InMemoryReplayLog,
    dpop: DpopVerifier,
    dpop_jtis: InMemoryReplayLog,
    session_key: SigningKey,
    families: RefreshFamilies,
    store: InMemoryFamilyStore,
    access_by_family: HashMap<FamilyId, Vec<String>>,
    revoked_access: HashSet<String>,
}

/// What the resource server keeps: the service's public key and a DPoP replay log. It
/// learns revoked access-token ids from the service.
struct Api {
    verifier: AccessTokenVerifier,
    session_public: VerifyingKey,
    dpop: DpopVerifier,
    dpop_jtis: InMemoryReplayLog,
}

/// Why the API refused a request.
#[derive(Debug)]
enum ApiRefusal {
    Token(VerifyError),
    Proof(handoff_dpop::Error),
    Revoked,
}

impl core::fmt::Display for ApiRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Token(e) => write!(f, "401 invalid_token: {e}"),
            Self::Proof(e) => write!(f, "401 {}: {e}", e.code().as_str()),
            Self::Revoked => f.write_str("401 invalid_token: the access token was revoked"),
        }
    }
}

impl Api {
    /// `GET url` with `Authorization: DPoP <token>` and one `DPoP` header: the proof is
    /// checked (signature, `htm`, `htu`, `iat`, `ath`) but not yet recorded, the access
    /// token is verified bound to the proof's key, and the proof's `jti` is recorded last,
    /// so a refused request never burns an honest proof.
    fn get(
        &self,
        access_token: &str,
        dpop_header: &str,
        url: &str,
        revoked: &HashSet<String>,
        now: UnixTime,
    ) -> Result<(String, handoff_dpop::DpopProof), ApiRefusal> {
        let headers = [dpop_header];
        // The URI is the configured external origin plus the path, never the Host header.
        let request = DpopRequest::new(&headers, "GET", url).with_access_token(access_token);
        let unconfirmed = self.dpop.verify(&request, now).map_err(ApiRefusal::Proof)?;
        let token = self
            .verifier
            .verify(
                access_token,
                &self.session_public,
                &Presented::dpop_unconfirmed(&unconfirmed),
                now,
            )
            .map_err(ApiRefusal::Token)?;
        let jti = token.jti().to_owned();
        if revoked.contains(&jti) {
            return Err(ApiRefusal::Revoked);
        }
        let proof = self
            .dpop
            .confirm(unconfirmed, &self.dpop_jtis, now)
            .map_err(ApiRefusal::Proof)?;
        let sub = token.subject().to_owned();
        Ok((sub, proof))
    }
}

fn run<W: Write>(out: W, mut clock: SimClock) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(out, "host_handoff: a host hands its user over to a service");
    out.info("(simulated clock: read once from the system, then advanced by hand)");

    // ---------------------------------------------------------------- host
    let mut step = "generate the host key and publish the JWKS";
    out.step("host", step);
    let host_key =
        HostIssuerKeys::generate(Algorithm::EdDSA, Some("host-2026-01"), &mut rng).during(step)?;
    let keyring = Keyring::new(host_key, clock.now());
    let published = keyring.jwks_response(clock.now());
    let document = String::from_utf8_lossy(published.body()).into_owned();
    expect(
        !document.contains("\"d\""),
        step,
        "public members only in the JWKS",
    )?;
    out.info(format!(
        "GET {HOST}/.well-known/jwks.json -> {} bytes, Content-Type {}, Cache-Control {}",
        published.body().len(),
        published.content_type(),
        published.cache_control()
    ));
    out.ok(format!(
        "active key kid {} ({}), public members only",
        keyring.active().kid(),
        keyring.active().algorithm()
    ));

    step = "mint a host JWT for the logged-in user";
    out.step("host", step);
    let claims = HostClaims::new(HOST, SERVICE, "user-42")
        .tenant("tenant-7")
        .ttl(120);
    let host_jwt = keyring.mint(&claims, clock.now(), &mut rng).during(step)?;
    out.info(format!(
        "host+jwt for sub user-42, tenant tenant-7: kid {}, jti {}, expires in 120 s",
        host_jwt.kid(),
        host_jwt.jti()
    ));
    out.ok(format!("token {}", short(host_jwt.token())));

    // ---------------------------------------------------------------- browser
    step = "make a DPoP key and a proof for the token endpoint";
    out.step("browser", step);
    let browser_key = DpopKey::generate(Algorithm::ES256, &mut rng).during(step)?;
    let handoff_proof = browser_key
        .proof("POST", TOKEN_ENDPOINT, clock.now(), &mut rng, None, None)
        .during(step)?;
    out.info(format!(
        "ES256 key, thumbprint (jkt) {}; POST {TOKEN_ENDPOINT} with the host JWT and DPoP: {}",
        browser_key.jkt(),
        short(&handoff_proof)
    ));
    out.ok("the private key never leaves the browser; the proof embeds the public JWK");

    // ---------------------------------------------------------------- service
    let mut service = Service {
        host_verifier: HostTokenVerifier::new(
            Verifier::builder(TokenKind::Host)
                .issuer(HOST)
                .audience(SERVICE)
                .algorithm(Algorithm::EdDSA)
                .build()
                .during("configure the host-token profile")?,
        )
        .during("configure the host-token profile")?,
        host_jwks: JwksCache::new(JwksCacheConfig::new(format!(
            "{HOST}/.well-known/jwks.json"
        )))
        .during("configure the JWKS cache")?,
        host_jtis: InMemoryReplayLog::new(10_000),
        dpop: DpopVerifier::default(),
        dpop_jtis: InMemoryReplayLog::new(10_000),
        session_key: SigningKey::generate(Algorithm::EdDSA, &mut rng)
            .and_then(|k| k.with_kid("session-1"))
            .during("generate the session key")?,
        families: RefreshFamilies::new(&HmacSecret::generate(&mut rng), Policy::default()),
        store: InMemoryFamilyStore::new(10_000),
        access_by_family: HashMap::new(),
        revoked_access: HashSet::new(),
    };

    step = "verify the host JWT through the JWKS cache";
    out.step("service", step);
    let mut fetches = 0;
    let host = loop {
        match service
            .host_verifier
            .verify_with_cache::<NoCustomClaims>(
                host_jwt.token(),
                &mut service.host_jwks,
                clock.now(),
            )
            .during(step)?
        {
            Outcome::Verified(unconfirmed)
            | Outcome::VerifiedRefresh {
                value: unconfirmed, ..
            } => {
                // The host JWT is one-time: its jti is consumed before anything is read.
                break unconfirmed
                    .confirm(&service.host_jtis, clock.now())
                    .during(step)?;
            }
            Outcome::Fetch(request) if fetches == 0 => {
                fetches += 1;
                out.info(format!(
                    "cold cache: the cache asks for GET {}",
                    request.url
                ));
                // In production: your HTTP client. Here: the document the host published.
                let response = FetchResponse {
                    status: 200,
                    body: published.body().to_vec(),
                    cache_control: Some(published.cache_control()),
                    etag: None,
                };
                let report = service
                    .host_jwks
                    .on_fetch_complete(clock.now(), request.id, response);
                let kids: Vec<&str> = report
                    .added
                    .iter()
                    .filter_map(|k| k.kid.as_deref())
                    .collect();
                expect(
                    kids == [keyring.active().kid()],
                    step,
                    "the host's key added to the cache",
                )?;
                out.info(format!(
                    "fetched: keys added {kids:?}, skipped {}, fresh until {}",
                    report.skipped.len(),
                    report.fresh_until.map_or(0, |t| t.as_secs())
                ));
            }
            other => {
                return Err(ExampleError::Unexpected {
                    step: step.into(),
                    expected: "one fetch, then a verified token".into(),
                    got: format!("{other:?}"),
                });
            }
        }
    };
    expect(host.subject() == "user-42", step, "sub user-42")?;
    expect(host.host_tenant_id() == "tenant-7", step, "tenant tenant-7")?;
    out.ok(format!(
        "iss {}, sub {}, host_tenant_id {}, jti consumed in the replay log",
        host.issuer(),
        host.subject(),
        host.host_tenant_id()
    ));

    step = "check the DPoP proof, mint a bound access token and start a refresh family";
    out.step("service", step);
    let headers = [handoff_proof.as_str()];
    let proof = service
        .dpop
        .verify_and_confirm(
            &DpopRequest::new(&headers, "POST", TOKEN_ENDPOINT),
            clock.now(),
            &service.dpop_jtis,
        )
        .during(step)?;
    expect(
        proof.thumbprint() == browser_key.thumbprint(),
        step,
        "the browser's key",
    )?;
    out.info(format!(
        "proof ok: htm POST, htu {}, jkt {}",
        proof.htu(),
        proof.jkt()
    ));
    let access = mint_access_token(
        &AccessClaims::new(SERVICE, host.subject(), API, CLIENT_ID)
            .with_scope("orders:read")
            .bound_to(proof.thumbprint()),
        &service.session_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    let login = handoff_refresh::start(
        &service.store,
        &service.families,
        host.subject(),
        CLIENT_ID,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    service
        .access_by_family
        .entry(login.family)
        .or_default()
        .push(access.jti().to_owned());
    let mut refresh_token = login.token;
    out.info(format!(
        "access token (at+jwt, cnf.jkt = {}, 300 s): {}",
        proof.jkt(),
        short(access.as_str())
    ));
    out.info(format!(
        "refresh token, family {}: {}",
        login.family.to_base64url(),
        short(refresh_token.expose_secret())
    ));
    out.ok("the browser now holds a DPoP-bound access token and a refresh token");

    step = "replay the captured handoff request";
    out.step("attacker", step);
    let replayed_host = match service
        .host_verifier
        .verify_with_cache::<NoCustomClaims>(host_jwt.token(), &mut service.host_jwks, clock.now())
        .during(step)?
    {
        Outcome::Verified(u) | Outcome::VerifiedRefresh { value: u, .. } => {
            u.confirm(&service.host_jtis, clock.now())
        }
        other => {
            return Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "a verified signature (the key is cached)".into(),
                got: format!("{other:?}"),
            });
        }
    };
    let e = expect_refused(replayed_host, step)?;
    expect(
        e == ReplayRefused::Replayed,
        step,
        "the host JWT's jti already used",
    )?;
    out.refused("the host JWT is one-time", &e);
    let e = expect_refused(
        service.dpop.verify_and_confirm(
            &DpopRequest::new(&headers, "POST", TOKEN_ENDPOINT),
            clock.now(),
            &service.dpop_jtis,
        ),
        step,
    )?;
    expect(
        e == handoff_dpop::Error::Replayed,
        step,
        "the proof's jti already used",
    )?;
    out.refused("the DPoP proof is one-time", &e);

    // ---------------------------------------------------------------- API
    let api = Api {
        verifier: AccessTokenVerifier::new(
            Verifier::builder(TokenKind::Access)
                .issuer(SERVICE)
                .audience(API)
                .algorithm(Algorithm::EdDSA)
                .build()
                .during("configure the access-token profile")?,
        )
        .during("configure the access-token profile")?,
        session_public: service.session_key.verifying_key(),
        dpop: DpopVerifier::default(),
        dpop_jtis: InMemoryReplayLog::new(10_000),
    };

    clock.advance(5);
    step = "call the API with the access token and a fresh proof carrying ath";
    out.step("browser", format!("{step} ({})", clock.label()));
    let api_proof = browser_key
        .proof(
            "GET",
            ORDERS_URL,
            clock.now(),
            &mut rng,
            None,
            Some(access.as_str()),
        )
        .during(step)?;
    let (sub, verified) = api
        .get(
            access.as_str(),
            &api_proof,
            ORDERS_URL,
            &service.revoked_access,
            clock.now(),
        )
        .map_err(|e| ExampleError::Unexpected {
            step: step.into(),
            expected: "200 OK".into(),
            got: e.to_string(),
        })?;
    expect(sub == "user-42", step, "sub user-42")?;
    out.info(format!(
        "GET {ORDERS_URL}: token verified, proof htu {} (query dropped), ath ok, jkt {} = cnf.jkt",
        verified.htu(),
        verified.jkt()
    ));
    out.ok("200 OK for user-42");

    step = "use the access token without its key";
    out.step("attacker", step);
    let e = expect_refused(
        api.verifier.verify(
            access.as_str(),
            &api.session_public,
            &Presented::Bearer,
            clock.now(),
        ),
        step,
    )?;
    expect(
        e == VerifyError::BoundTokenAsBearer,
        step,
        "a bound token refused as bearer",
    )?;
    out.refused(
        "Authorization: Bearer with a DPoP-bound token (downgrade)",
        &e,
    );
    let attacker_key = DpopKey::generate(Algorithm::ES256, &mut rng).during(step)?;
    let attacker_proof = attacker_key
        .proof(
            "GET",
            ORDERS_URL,
            clock.now(),
            &mut rng,
            None,
            Some(access.as_str()),
        )
        .during(step)?;
    let e = expect_refused(
        api.get(
            access.as_str(),
            &attacker_proof,
            ORDERS_URL,
            &service.revoked_access,
            clock.now(),
        ),
        step,
    )?;
    expect(
        matches!(e, ApiRefusal::Token(VerifyError::KeyBindingMismatch)),
        step,
        "a proof by another key refused",
    )?;
    out.refused("a proof signed by the attacker's own key", &e);
    let e = expect_refused(
        api.get(
            access.as_str(),
            &api_proof,
            ORDERS_URL,
            &service.revoked_access,
            clock.now(),
        ),
        step,
    )?;
    expect(
        matches!(e, ApiRefusal::Proof(handoff_dpop::Error::Replayed)),
        step,
        "a replayed proof refused",
    )?;
    out.refused("the browser's proof replayed", &e);

    // ---------------------------------------------------------------- refresh
    clock.advance(240);
    step = "refresh: present the refresh token with a fresh proof";
    out.step("browser", format!("{step} ({})", clock.label()));
    let old_refresh = refresh_token.expose_secret().to_owned();
    let refresh_proof = browser_key
        .proof("POST", TOKEN_ENDPOINT, clock.now(), &mut rng, None, None)
        .during(step)?;
    let headers = [refresh_proof.as_str()];
    let proof = service
        .dpop
        .verify_and_confirm(
            &DpopRequest::new(&headers, "POST", TOKEN_ENDPOINT),
            clock.now(),
            &service.dpop_jtis,
        )
        .during(step)?;
    let issued = match handoff_refresh::rotate(
        &service.store,
        &service.families,
        &old_refresh,
        clock.now(),
        &mut rng,
    )
    .during(step)?
    {
        Refresh::Issued(i) => i,
        other => {
            return Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "a rotated refresh token".into(),
                got: format!("{other:?}"),
            });
        }
    };
    expect(!issued.grace, step, "a real rotation, not a grace replay")?;
    expect(
        issued.token.expose_secret() != old_refresh,
        step,
        "a new refresh token",
    )?;
    let access2 = mint_access_token(
        &AccessClaims::new(SERVICE, &issued.subject, API, &issued.client_id)
            .with_scope("orders:read")
            .bound_to(proof.thumbprint()),
        &service.session_key,
        clock.now(),
        &mut rng,
    )
    .during(step)?;
    service
        .access_by_family
        .entry(issued.family)
        .or_default()
        .push(access2.jti().to_owned());
    refresh_token = issued.token;
    out.info(format!("events: {:?}", issued.events));
    out.ok(format!(
        "new refresh token {} and a new bound access token; the old refresh token is spent",
        short(refresh_token.expose_secret())
    ));

    // ---------------------------------------------------------------- reuse
    clock.advance(60);
    step = "replay a stolen copy of the old refresh token";
    out.step("attacker", format!("{step} ({})", clock.label()));
    let attacker_proof = attacker_key
        .proof("POST", TOKEN_ENDPOINT, clock.now(), &mut rng, None, None)
        .during(step)?;
    let headers = [attacker_proof.as_str()];
    // The attacker's proof is valid (for the attacker's own key): only the refresh
    // family's reuse detection stands in the way.
    let _attacker = service
        .dpop
        .verify_and_confirm(
            &DpopRequest::new(&headers, "POST", TOKEN_ENDPOINT),
            clock.now(),
            &service.dpop_jtis,
        )
        .during(step)?;
    let refused = match handoff_refresh::rotate(
        &service.store,
        &service.families,
        &old_refresh,
        clock.now(),
        &mut rng,
    )
    .during(step)?
    {
        Refresh::Refused(r) => r,
        other => {
            return Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "reuse detected".into(),
                got: format!("{other:?}"),
            });
        }
    };
    expect(
        refused.error == RefreshError::ReuseDetected,
        step,
        "reuse detected",
    )?;
    expect(
        refused.revoke_access_tokens == [login.family],
        step,
        "the family to revoke",
    )?;
    out.refused(
        format!("400 {} (reuse detected)", refused.error.oauth_error()),
        &refused.error,
    );
    for family in &refused.revoke_access_tokens {
        let jtis = service
            .access_by_family
            .get(family)
            .cloned()
            .unwrap_or_default();
        out.info(format!(
            "family {} revoked; revoking its {} access tokens",
            family.to_base64url(),
            jtis.len()
        ));
        service.revoked_access.extend(jtis);
    }
    out.info(format!("events: {:?}", refused.events));

    step = "the legitimate browser is logged out too";
    out.step("browser", step);
    let after = match handoff_refresh::rotate(
        &service.store,
        &service.families,
        refresh_token.expose_secret(),
        clock.now(),
        &mut rng,
    )
    .during(step)?
    {
        Refresh::Refused(r) => r,
        other => {
            return Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "the revoked family refused".into(),
                got: format!("{other:?}"),
            });
        }
    };
    expect(
        after.error.reason() == "family_revoked",
        step,
        "family_revoked",
    )?;
    out.refused(
        "its current refresh token (the family is revoked)",
        &after.error,
    );
    let api_proof = browser_key
        .proof(
            "GET",
            ORDERS_URL,
            clock.now(),
            &mut rng,
            None,
            Some(access2.as_str()),
        )
        .during(step)?;
    let e = expect_refused(
        api.get(
            access2.as_str(),
            &api_proof,
            ORDERS_URL,
            &service.revoked_access,
            clock.now(),
        ),
        step,
    )?;
    expect(
        matches!(e, ApiRefusal::Revoked),
        step,
        "the access token revoked",
    )?;
    out.refused("its newest access token (revoked with the family)", &e);
    out.info("the user logs in at the host again to start a new family");

    out.finish("every outcome as expected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_handoff_runs_and_ends_in_revocation() {
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let out = String::from_utf8(run(Vec::new(), clock).unwrap()).unwrap();
        assert!(
            out.contains(
                "cold cache: the cache asks for GET https://host.example/.well-known/jwks.json"
            ),
            "{out}"
        );
        assert!(out.contains("ok: 200 OK for user-42"), "{out}");
        assert!(
            out.contains("refused, as expected: the host JWT is one-time"),
            "{out}"
        );
        assert!(
            out.contains("refused, as expected: 400 invalid_grant (reuse detected)"),
            "{out}"
        );
        assert!(
            out.contains("its newest access token (revoked with the family)"),
            "{out}"
        );
        assert!(out.contains("== done: 11 steps"), "{out}");
    }

    #[test]
    fn short_never_prints_a_whole_credential() {
        let token = "rf1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let s = short(token);
        assert!(!s.contains(token));
        assert!(s.ends_with(&format!("({} chars)", token.len())));
    }
}
