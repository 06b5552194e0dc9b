//! Fuzzing entry points (`fuzz/`): the edge's readers of untrusted HTTP input, driven
//! through the production code. Each takes an HTTP message as bytes (`name: value` lines,
//! an empty line, the body), never panics on any input, and asserts the properties that
//! every answer must keep (a refusal renders into valid header values, a body cap holds,
//! a cache decision stays within its bounds). Not part of the public API.
#![allow(
    clippy::panic,
    reason = "fuzz entry points report a broken property by panicking, like assert!"
)]

use core::future::Future;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;

use handoff_core::replay::{ReplayKey, ReplayLog, ReplayStoreError, ReplayVerdict};
use handoff_core::{Algorithm, HmacSecret, UnixTime, VerifyingKey};
use handoff_dpop::{DpopRequest, DpopVerifier, NonceIssuer, NoncePolicy};
use handoff_verify::{
    FetchOutcome, FetchRequest, FetchResponse, JwksCache, JwksCacheConfig, Lookup,
    ServiceTokenVerifier, TokenKind, Verifier, jwks_cache::parse_max_age,
};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};

use crate::auth::{AuthRejection, Credential, EdgeAuth, MAX_AUTHORIZATION_BYTES, Scheme};
use crate::clock::ManualClock;
use crate::token_service::{Grant, OAuthError, TokenForm, read_token_request};

/// The fixed time of the fuzz targets (the seeds' proofs and tokens are issued then).
pub const FUZZ_NOW: u64 = 1_562_262_618;
/// The external origin of the resource server in [`fuzz_auth_headers`].
pub const FUZZ_ORIGIN: &str = "https://rs.example";
/// The request path in [`fuzz_auth_headers`].
pub const FUZZ_PATH: &str = "/resource";
/// Issuer of the host and access tokens in [`fuzz_auth_headers`].
pub const FUZZ_ISSUER: &str = "https://issuer.example";
/// Audience of the host and access tokens in [`fuzz_auth_headers`].
pub const FUZZ_AUDIENCE: &str = "api";
/// Most header lines read from one input.
const MAX_FUZZ_HEADERS: usize = 64;

/// Splits `data` into a header map and a body: `name: value` lines (`\n` or `\r\n`) up
/// to the first empty line; the rest is the body. A line that `http` would refuse (bad
/// name, control bytes in the value) is skipped, as hyper never hands such a message on.
#[must_use]
pub fn message(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    let mut lines = 0;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines += 1;
        if lines > MAX_FUZZ_HEADERS {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    (headers, rest)
}

/// Polls a future once: the edge's verification futures complete without waiting when
/// the keys are held in memory.
pub(crate) fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = core::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The properties of every refusal: a client or server error status, each challenge a
/// valid header value that the rendered headers carry, a valid `DPoP-Nonce`, and a JSON
/// body naming the error code.
fn check_rejection(r: &AuthRejection) {
    assert!(
        r.status().is_client_error() || r.status().is_server_error(),
        "{r}"
    );
    for c in r.challenges() {
        assert!(HeaderValue::from_str(c).is_ok(), "challenge {c:?}");
    }
    let headers = r.headers();
    assert_eq!(
        headers.get_all(WWW_AUTHENTICATE).iter().count(),
        r.challenges().len(),
        "a challenge was dropped from the headers"
    );
    if let Some(n) = r.dpop_nonce() {
        assert!(headers.get("dpop-nonce").is_some(), "nonce {n:?} dropped");
    }
    if r.status() == StatusCode::UNAUTHORIZED {
        assert!(!r.challenges().is_empty(), "401 without a challenge");
    }
    let body: serde_json::Value = serde_json::from_str(&r.body()).unwrap_or_default();
    assert_eq!(body["error"].as_str(), Some(r.error()));
}

/// A replay log that forgets everything on [`FuzzReplay::reset`]: each verification of
/// [`fuzz_auth_headers`] starts from an empty log, as with a fresh log, without the cost
/// of building one per input.
#[derive(Default)]
struct FuzzReplay(std::sync::Mutex<Vec<ReplayKey>>);

impl FuzzReplay {
    fn reset(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

impl ReplayLog for FuzzReplay {
    fn check_and_insert(
        &self,
        key: &ReplayKey,
        _until: UnixTime,
        _now: UnixTime,
    ) -> Result<ReplayVerdict, ReplayStoreError> {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(key) {
            return Ok(ReplayVerdict::Replayed);
        }
        seen.push(*key);
        Ok(ReplayVerdict::Fresh)
    }
}

/// The verification state of [`fuzz_auth_headers`], built once: [`EdgeAuth`]s accepting
/// host, access (DPoP, and Bearer in one of them) and service tokens of
/// [`FUZZ_ISSUER`] signed by one key, the clock at [`FUZZ_NOW`].
pub struct FuzzAuth {
    strict: EdgeAuth,
    bearer: EdgeAuth,
    replay: Arc<FuzzReplay>,
}

impl FuzzAuth {
    /// The state for tokens signed by `key` (`None` if a profile cannot be built).
    #[must_use]
    pub fn new(key: &VerifyingKey) -> Option<Self> {
        let replay = Arc::new(FuzzReplay::default());
        let auth = |allow_bearer| fuzz_auth(key, allow_bearer, replay.clone());
        Some(Self {
            strict: auth(false)?,
            bearer: auth(true)?,
            replay: replay.clone(),
        })
    }
}

fn fuzz_auth(key: &VerifyingKey, allow_bearer: bool, replay: Arc<FuzzReplay>) -> Option<EdgeAuth> {
    let profile = |kind| {
        Verifier::builder(kind)
            .issuer(FUZZ_ISSUER)
            .audience(FUZZ_AUDIENCE)
            .algorithm(key.algorithm())
            .build()
            .ok()
    };
    let mut b = EdgeAuth::builder(FUZZ_ORIGIN)
        .host_tokens(profile(TokenKind::Host)?, key.clone())
        .access_tokens(profile(TokenKind::Access)?, key.clone())
        .replay_log(replay)
        .clock(Arc::new(ManualClock::new(UnixTime::from_secs(FUZZ_NOW))))
        .allow_bearer(allow_bearer);
    if key.algorithm() == Algorithm::EdDSA {
        let service = Verifier::builder(TokenKind::Service)
            .issuer(FUZZ_ISSUER)
            .audience(FUZZ_AUDIENCE)
            .algorithm(Algorithm::EdDSA)
            .build()
            .ok()?;
        b = b
            .service_tokens(ServiceTokenVerifier::new(service, key.clone(), ["orders:read"]).ok()?);
    }
    b.build().ok()
}

/// Fuzzing entry point for the request headers a resource server reads: the
/// `Authorization` credential (`Bearer`, `DPoP`, duplicates, size, non-ASCII) and the
/// `DPoP` proofs, through `verify_access` (with and without Bearer allowed),
/// `verify_dpop`, `verify_host` and `verify_service` of `state` (each from an empty
/// replay log), then the refusal's rendering. Never panics. Returns how many of the five
/// verifications accepted the request (so that seeds can be checked to reach them).
#[doc(hidden)]
pub fn fuzz_auth_headers(data: &[u8], state: &FuzzAuth) -> u32 {
    let mut accepted = 0;
    let (headers, _) = message(data);
    let authorizations = headers.get_all(AUTHORIZATION).iter().count();
    let credential = crate::auth::credential(&headers);
    match &credential {
        Ok(Credential::Bearer(t) | Credential::Dpop(t)) => {
            assert_eq!(authorizations, 1);
            assert!(!t.is_empty() && !t.contains(' ') && t.len() <= MAX_AUTHORIZATION_BYTES);
        }
        Ok(Credential::None) => assert_eq!(authorizations, 0),
        Ok(Credential::Other) => assert_eq!(authorizations, 1),
        Err(r) => {
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            check_rejection(r);
        }
    }
    let presented = match credential {
        Ok(Credential::Bearer(t)) => Some((false, t)),
        Ok(Credential::Dpop(t)) => Some((true, t)),
        _ => None,
    };
    let proofs = crate::auth::dpop_proofs(&headers);
    assert_eq!(proofs.len(), headers.get_all("dpop").iter().count());
    let method = Method::GET;
    // `verify_access` with and without Bearer allowed: the same path for a DPoP
    // credential, so that one is tried once (signature checks are the cost).
    let dpop = matches!(presented, Some((true, _)));
    let variants: &[(bool, &EdgeAuth)] = if dpop {
        &[(false, &state.strict)]
    } else {
        &[(false, &state.strict), (true, &state.bearer)]
    };
    let mut dpop_accepted = false;
    for &(allow_bearer, auth) in variants {
        state.replay.reset();
        match poll_once(auth.verify_access(&method, FUZZ_PATH, &headers)) {
            Some(Ok(_)) => {
                accepted += 1;
                let Some((dpop, _)) = presented else {
                    panic!("an access token accepted without a credential");
                };
                assert!(dpop || allow_bearer, "Bearer accepted though not allowed");
                assert!(
                    !dpop || proofs.len() == 1,
                    "DPoP accepted without one proof"
                );
                dpop_accepted = dpop;
            }
            Some(Err(r)) => check_rejection(&r),
            None => panic!("verify_access waited with keys in memory"),
        }
    }
    let auth = &state.strict;
    if dpop_accepted {
        // The proof `verify_access` recorded is a replay for `verify_dpop`.
        match poll_once(auth.verify_dpop(&method, FUZZ_PATH, &headers)) {
            Some(Err(r)) => check_rejection(&r),
            _ => panic!("a DPoP proof was accepted twice"),
        }
    }
    state.replay.reset();
    match poll_once(auth.verify_dpop(&method, FUZZ_PATH, &headers)) {
        Some(Ok(v)) => {
            accepted += 1;
            assert!(dpop && proofs.len() == 1);
            assert!(!v.proof.jkt().is_empty());
        }
        Some(Err(r)) => check_rejection(&r),
        None => panic!("verify_dpop waited with keys in memory"),
    }
    state.replay.reset();
    match poll_once(auth.verify_host::<handoff_verify::NoCustomClaims>(&headers)) {
        Some(Ok(_)) => {
            accepted += 1;
            assert!(matches!(presented, Some((false, _))));
        }
        Some(Err(r)) => check_rejection(&r),
        None => panic!("verify_host waited with keys in memory"),
    }
    match auth.verify_service(&headers, &["orders:read"]) {
        Ok(t) => {
            accepted += 1;
            assert!(t.has_scope("orders:read"));
        }
        Err(r) => check_rejection(&r),
    }
    // Refusals quoting request text (a description or a scope) stay valid headers.
    if let Some(v) = headers.get(AUTHORIZATION) {
        let text = String::from_utf8_lossy(v.as_bytes());
        check_rejection(&AuthRejection::bad_request(&text));
        check_rejection(&AuthRejection::scope(&[&text]));
        check_rejection(&AuthRejection::token(
            Scheme::Both(auth.dpop_challenge()),
            &text,
            None,
        ));
    }
    accepted
}

/// The token endpoint of [`fuzz_token_request`].
pub const FUZZ_TOKEN_ENDPOINT: &str = "https://login.example/token";
/// The client id of [`fuzz_token_request`].
pub const FUZZ_CLIENT_ID: &str = "web-app";

/// The nonce issuer of [`fuzz_token_request`] (fixed secret, fuzzing only), so that seeds
/// can carry a nonce it accepts at [`FUZZ_NOW`].
#[must_use]
pub fn fuzz_nonce_issuer() -> NonceIssuer {
    let secret = HmacSecret::new(b"fuzz-only-dpop-nonce-secret-32b!".to_vec());
    NonceIssuer::new(
        secret.unwrap_or_else(|_| unreachable!("32 bytes")),
        b"https://login.example".to_vec(),
    )
}

/// The DPoP verifier of [`fuzz_token_request`]: nonces of [`fuzz_nonce_issuer`] required.
static TOKEN_DPOP: std::sync::LazyLock<Option<DpopVerifier>> = std::sync::LazyLock::new(|| {
    DpopVerifier::builder()
        .nonce(NoncePolicy::Required(fuzz_nonce_issuer()))
        .build()
        .ok()
});

/// The properties of every `/token` error answer: a 4xx or 5xx status, a JSON body with
/// an `error` code, the `DPoP-Nonce` and `WWW-Authenticate` it carries kept in the
/// headers, never cached.
fn check_oauth_error(e: OAuthError) {
    assert!(e.status.is_client_error() || e.status.is_server_error());
    let body: serde_json::Value = serde_json::from_str(&e.body).unwrap_or_default();
    assert!(
        body["error"].as_str().is_some_and(|c| !c.is_empty()),
        "{}",
        e.body
    );
    let (nonce, challenge) = (e.nonce.is_some(), e.www_authenticate.is_some());
    let resp = axum::response::IntoResponse::into_response(e);
    let h = resp.headers();
    assert_eq!(h.contains_key("dpop-nonce"), nonce, "DPoP-Nonce dropped");
    assert_eq!(
        h.contains_key(WWW_AUTHENTICATE),
        challenge,
        "WWW-Authenticate dropped"
    );
    assert_eq!(
        h.get(http::header::CACHE_CONTROL)
            .map(HeaderValue::as_bytes),
        Some(&b"no-store"[..])
    );
}

/// Fuzzing entry point for the token endpoint's request: `Content-Type`, the form body
/// (`grant_type`, `assertion`, `refresh_token`, `client_id`, `scope`; duplicates, size,
/// encoding) and the `DPoP` headers, read by the handler's own reader, the proof checked
/// by a verifier requiring [`fuzz_nonce_issuer`]'s nonces, then the grant; every refusal
/// rendered. Never panics. Returns whether a grant was read after a proof (if any)
/// passed.
#[doc(hidden)]
pub fn fuzz_token_request(data: &[u8]) -> bool {
    let (headers, body) = message(data);
    let request = match read_token_request(&headers, body, FUZZ_CLIENT_ID) {
        Ok(r) => r,
        Err(e) => {
            check_oauth_error(e);
            return false;
        }
    };
    assert!(body.len() <= 16 * 1024);
    assert!(
        request
            .form
            .client_id
            .as_deref()
            .is_none_or(|c| c == FUZZ_CLIENT_ID)
    );
    assert_eq!(request.proofs.len(), headers.get_all("dpop").iter().count());
    if !request.proofs.is_empty() {
        let Some(verifier) = TOKEN_DPOP.as_ref() else {
            return false;
        };
        let req = DpopRequest::new(&request.proofs, "POST", FUZZ_TOKEN_ENDPOINT);
        if let Err(e) = verifier.verify(&req, UnixTime::from_secs(FUZZ_NOW)) {
            check_oauth_error(OAuthError::dpop(verifier, &e));
            return false;
        }
        assert_eq!(request.proofs.len(), 1);
    }
    let (assertion, refresh) = (
        request.form.assertion.clone(),
        request.form.refresh_token.clone(),
    );
    // Debug does not depend on the credentials' values.
    let blank = TokenForm {
        grant_type: request.form.grant_type.clone(),
        assertion: assertion.as_ref().map(|_| String::new()),
        refresh_token: refresh.as_ref().map(|_| String::new()),
        client_id: request.form.client_id.clone(),
        scope: request.form.scope.clone(),
    };
    assert_eq!(
        format!("{blank:?}"),
        format!("{:?}", request.form),
        "a credential in Debug"
    );
    match request.form.grant() {
        Ok(Grant::JwtBearer(a)) => assert_eq!(Some(a), assertion),
        Ok(Grant::Refresh(t)) => assert_eq!(Some(t), refresh),
        Err(e) => {
            check_oauth_error(e);
            return false;
        }
    }
    true
}

/// The body cap of [`fuzz_jwks_response`] (small, so that inputs pass it).
pub const FUZZ_JWKS_MAX_BODY: usize = 8 * 1024;
/// The key-set URL of [`fuzz_jwks_response`].
pub const FUZZ_JWKS_URI: &str = "https://issuer.example/jwks.json";
/// Chunk size the body is delivered in.
const FUZZ_CHUNK: usize = 1000;
/// The key set the conditional case holds before the fuzzed response (its `ETag` is
/// `"v1"`): an Ed25519 key, `kid` `k1`.
const PRIMED_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// Reads the fuzzed response as the driver does (declared length, then the body in
/// chunks under the cap) and reports it to `cache` for fetch `req`; checks the report.
fn deliver(
    cache: &mut JwksCache,
    req: &FetchRequest,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<handoff_verify::FetchReport> {
    let now = UnixTime::from_secs(FUZZ_NOW);
    let max = FUZZ_JWKS_MAX_BODY;
    let read = if status == 200 {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        crate::jwks::check_declared_length(declared, max).and_then(|()| {
            let mut out = Vec::new();
            for chunk in body.chunks(FUZZ_CHUNK) {
                crate::jwks::append_capped(&mut out, chunk, max)?;
            }
            Ok(out)
        })
    } else {
        Ok(Vec::new())
    };
    let body = match read {
        Ok(b) => b,
        Err(crate::jwks::FetchFailure::BodyTooLarge { max: m }) => {
            assert!(m == max && (body.len() > max || headers.contains_key("content-length")));
            let report = cache.on_fetch_failed(now, req.id);
            assert!(matches!(report.outcome, FetchOutcome::Failed(_)));
            return None;
        }
        Err(e) => panic!("reading a body in memory failed: {e}"),
    };
    assert!(body.len() <= max);
    let response = crate::jwks::fetch_response(status, headers, body);
    let held_before = cache.keys().is_some();
    let report = cache.on_fetch_complete(now, req.id, response.clone());
    let max_age = response
        .cache_control
        .as_deref()
        .and_then(parse_max_age)
        .unwrap_or(cache.config().default_max_age)
        .clamp(cache.config().min_max_age, cache.config().max_max_age);
    match &report.outcome {
        FetchOutcome::Replaced => {
            assert_eq!(status, 200);
            // An empty `keys` array is a set too (the issuer withdrew every key).
            assert!(cache.keys().is_some());
            assert_eq!(report.fresh_until, Some(now.saturating_add(max_age)));
        }
        FetchOutcome::NotModified => {
            assert!(status == 304 && held_before && req.if_none_match.is_some());
            assert_eq!(report.fresh_until, Some(now.saturating_add(max_age)));
        }
        FetchOutcome::Failed(why) => {
            assert!(!why.is_empty());
            assert_eq!(
                cache.keys().is_some(),
                held_before,
                "a failure changed the set"
            );
        }
        FetchOutcome::Ignored => panic!("the fetch in flight was ignored"),
        _ => {}
    }
    Some(report)
}

/// Fuzzing entry point for a key-set HTTP response: the first line is the status, then
/// `name: value` header lines (`Cache-Control`, `ETag`, `Content-Length`, `Expires`,
/// `Retry-After`, `Content-Type`, duplicates, non-ASCII), an empty line, and the body.
/// It is read with the driver's body cap and header reading and reported to a
/// `JwksCache` built as [`crate::RemoteJwks`] builds it: once as the first fetch, once
/// as the conditional refresh of a held set. Checks the cache decision (keys replaced
/// only on a 200 with usable keys, freshness the clamped `max-age`, a failure keeps the
/// held set, the `ETag` sent back is a valid header value). Never panics. Returns
/// whether the first fetch replaced the (empty) set.
#[doc(hidden)]
pub fn fuzz_jwks_response(data: &[u8]) -> bool {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let Some(status) = core::str::from_utf8(line)
        .ok()
        .and_then(|l| l.trim().parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
    else {
        return false;
    };
    let (headers, body) = message(rest);
    let now = UnixTime::from_secs(FUZZ_NOW);
    let new =
        || crate::jwks::new_cache(JwksCacheConfig::new(FUZZ_JWKS_URI), FUZZ_JWKS_MAX_BODY).ok();
    // The first fetch, with no set held.
    let Some(mut cache) = new() else {
        return false;
    };
    let Lookup::Fetch(req) = cache.lookup(now, Some("k1"), Algorithm::EdDSA) else {
        panic!("an empty cache did not ask for a fetch");
    };
    assert!(req.if_none_match.is_none());
    let mut replaced = false;
    if let Some(report) = deliver(&mut cache, &req, status, &headers, body)
        && report.outcome == FetchOutcome::Replaced
    {
        replaced = true;
        for k in cache.keys().map(|s| s.keys().to_vec()).unwrap_or_default() {
            let _ = cache.lookup(now, k.kid(), k.algorithm());
        }
        // The refresh after expiry sends the kept ETag back: a valid header value.
        let later = now.saturating_add(25 * 3600);
        if let Some(next) = cache.handle_timeout(later)
            && let Some(etag) = &next.if_none_match
        {
            assert!(HeaderValue::from_str(etag).is_ok(), "ETag {etag:?}");
        }
    }
    // The conditional refresh of a held set.
    let Some(mut cache) = new() else {
        return replaced;
    };
    let Lookup::Fetch(first) = cache.lookup(now, Some("k1"), Algorithm::EdDSA) else {
        return replaced;
    };
    let primed = FetchResponse {
        status: 200,
        body: PRIMED_JWKS.as_bytes().to_vec(),
        cache_control: Some("max-age=60".into()),
        etag: Some("\"v1\"".into()),
    };
    let report = cache.on_fetch_complete(now, first.id, primed);
    assert_eq!(report.outcome, FetchOutcome::Replaced, "the primed set");
    let Some(req) = cache.handle_timeout(now.saturating_add(3600)) else {
        panic!("a stale set was not refreshed");
    };
    assert_eq!(req.if_none_match.as_deref(), Some("\"v1\""));
    let _ = deliver(&mut cache, &req, status, &headers, body);
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn message_reads_header_lines_then_the_body() {
        let (h, body) = message(b"A: 1\r\nb:  two \nbad name: x\nc: \x01\n\nbody\n\nmore");
        assert_eq!(h.get("a").unwrap(), "1");
        assert_eq!(h.get("b").unwrap(), "two");
        assert_eq!(h.len(), 2, "a bad name and a control byte are skipped");
        assert_eq!(body, b"body\n\nmore");
        let (h, body) = message(b"only: header");
        assert_eq!((h.len(), body), (1, &b""[..]));
    }

    #[test]
    fn every_cache_control_line_counts() {
        // Regression: only the first Cache-Control line was read, so a `no-store` (or a
        // `max-age`) on a second line was ignored and the set cached for a day.
        let h = headers(&[
            ("cache-control", "max-age=86400"),
            ("cache-control", "no-store"),
        ]);
        let r = crate::jwks::fetch_response(200, &h, Vec::new());
        assert_eq!(r.cache_control.as_deref(), Some("max-age=86400, no-store"));
        let h = headers(&[
            ("cache-control", "public"),
            ("cache-control", "max-age=120"),
        ]);
        let r = crate::jwks::fetch_response(200, &h, br#"{"keys":[]}"#.to_vec());
        assert_eq!(r.cache_control.as_deref(), Some("public, max-age=120"));
        // Through the cache: the set is fresh for the clamped minimum, not a day.
        let now = UnixTime::from_secs(FUZZ_NOW);
        let mut cache =
            crate::jwks::new_cache(JwksCacheConfig::new(FUZZ_JWKS_URI), FUZZ_JWKS_MAX_BODY)
                .unwrap();
        let Lookup::Fetch(req) = cache.lookup(now, Some("k1"), Algorithm::EdDSA) else {
            panic!("no fetch");
        };
        let h = headers(&[
            ("cache-control", "max-age=86400"),
            ("cache-control", "no-store"),
        ]);
        let resp = crate::jwks::fetch_response(200, &h, PRIMED_JWKS.as_bytes().to_vec());
        let report = cache.on_fetch_complete(now, req.id, resp);
        assert_eq!(report.outcome, FetchOutcome::Replaced);
        let min = cache.config().min_max_age;
        assert_eq!(report.fresh_until, Some(now.saturating_add(min)));
        // A line that is not visible ASCII is left out, the others still count.
        let mut h = headers(&[("cache-control", "max-age=60")]);
        h.append(
            http::header::CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=\xff").unwrap(),
        );
        let r = crate::jwks::fetch_response(200, &h, Vec::new());
        assert_eq!(r.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            crate::jwks::fetch_response(200, &HeaderMap::new(), Vec::new()).cache_control,
            None
        );
    }

    #[test]
    fn the_body_cap_holds_for_declared_and_streamed_lengths() {
        use crate::jwks::{FetchFailure, append_capped, check_declared_length};
        assert!(check_declared_length(Some(10), 10).is_ok());
        assert!(check_declared_length(None, 10).is_ok());
        assert_eq!(
            check_declared_length(Some(11), 10),
            Err(FetchFailure::BodyTooLarge { max: 10 })
        );
        let mut body = Vec::new();
        append_capped(&mut body, b"12345", 10).unwrap();
        append_capped(&mut body, b"67890", 10).unwrap();
        assert_eq!(
            append_capped(&mut body, b"x", 10),
            Err(FetchFailure::BodyTooLarge { max: 10 })
        );
        assert_eq!(body, b"1234567890");
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn the_token_request_reader_checks_type_size_duplicates_and_client() {
        let ok = headers(&[("content-type", FORM)]);
        let r = read_token_request(
            &ok,
            b"grant_type=refresh_token&refresh_token=a%2Bb",
            "web-app",
        )
        .unwrap();
        assert_eq!(r.form.grant().unwrap(), Grant::Refresh("a+b".into()));
        let charset = headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded ; charset=UTF-8",
        )]);
        assert!(read_token_request(&charset, b"grant_type=x", "web-app").is_ok());
        for bad in [
            headers(&[]),
            headers(&[("content-type", "application/json")]),
            headers(&[("content-type", "application/x-www-form-urlencodedx")]),
            headers(&[("content-type", FORM), ("content-type", FORM)]),
        ] {
            let e = read_token_request(&bad, b"grant_type=x", "web-app").unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.body.contains("invalid_request"), "{}", e.body);
        }
        let dup = read_token_request(&ok, b"grant_type=a&grant_type=b", "web-app").unwrap_err();
        assert!(dup.body.contains("each parameter once"), "{}", dup.body);
        let big = vec![b'a'; 16 * 1024 + 1];
        assert!(read_token_request(&ok, &big, "web-app").is_err());
        let other = read_token_request(&ok, b"client_id=other", "web-app").unwrap_err();
        assert_eq!(other.status, StatusCode::UNAUTHORIZED);
        assert!(other.body.contains("invalid_client"));
        let proofs = headers(&[("content-type", FORM), ("dpop", "a.b.c"), ("dpop", "d.e.f")]);
        assert_eq!(
            read_token_request(&proofs, b"", "web-app").unwrap().proofs,
            ["a.b.c", "d.e.f"]
        );
    }

    #[test]
    fn the_grant_needs_its_parameter() {
        let ok = headers(&[("content-type", FORM)]);
        let grant = |body: &str| {
            read_token_request(&ok, body.as_bytes(), "web-app")
                .unwrap()
                .form
                .grant()
                .map_err(|e| e.body)
        };
        assert_eq!(
            grant(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=h.p.s"
            ),
            Ok(Grant::JwtBearer("h.p.s".into()))
        );
        assert!(
            grant("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
                .unwrap_err()
                .contains("assertion parameter")
        );
        assert!(
            grant("grant_type=refresh_token")
                .unwrap_err()
                .contains("refresh_token parameter")
        );
        assert!(
            grant("grant_type=password")
                .unwrap_err()
                .contains("unsupported_grant_type")
        );
        assert!(grant("").unwrap_err().contains("grant_type parameter"));
    }

    #[test]
    fn the_token_form_debug_leaves_out_credentials() {
        let ok = headers(&[("content-type", FORM)]);
        let r = read_token_request(
            &ok,
            b"grant_type=refresh_token&refresh_token=secret-refresh&assertion=secret-assertion",
            "web-app",
        )
        .unwrap();
        let debug = format!("{r:?}");
        assert!(!debug.contains("secret-"), "{debug}");
        assert!(debug.contains("refresh_token") && debug.contains("<redacted>"));
    }

    #[test]
    fn the_entry_points_take_odd_inputs() {
        let key = handoff_core::SigningKey::generate(
            Algorithm::EdDSA,
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )
        .unwrap()
        .verifying_key();
        let key = &FuzzAuth::new(&key).unwrap();
        for input in [
            &b""[..],
            b"\n\n\n",
            b"Authorization: Bearer a\nAuthorization: Bearer b\n",
            b"Authorization: DPoP a.b.c\nDPoP: \xff\n",
            b"Authorization: Bearer \"quoted\\\"\n",
            b"Authorization: \xc3\xa9\n",
            b"DPoP: x\nDPoP: y\n",
        ] {
            assert_eq!(fuzz_auth_headers(input, key), 0);
            assert!(!fuzz_token_request(input));
            assert!(!fuzz_jwks_response(input));
        }
        assert!(!fuzz_token_request(
            b"content-type: application/x-www-form-urlencoded\n\n%zz=%FF&grant_type"
        ));
        assert!(fuzz_token_request(
            b"content-type: application/x-www-form-urlencoded\n\ngrant_type=refresh_token&refresh_token=x"
        ));
        assert!(!fuzz_jwks_response(
            b"200\ncontent-length: 99999999999999999999\n\n{}"
        ));
        assert!(!fuzz_jwks_response(b"304\netag: \"v1\"\n\n"));
        assert!(fuzz_jwks_response(
            format!("200\n\n{PRIMED_JWKS}").as_bytes()
        ));
        assert!(!fuzz_jwks_response(b"0\n\n"));
    }
}
