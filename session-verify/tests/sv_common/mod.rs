//! Helpers shared by the session-verify integration tests (fake clock, forging).
#![allow(dead_code, unreachable_pub, missing_docs)]

use handoff_core::{Algorithm, Jwks, SigningKey, UnixTime, b64};
use handoff_verify::{
    FetchRequest, FetchResponse, JwksCache, JwksCacheConfig, TokenKind, Verifier,
};
use serde_json::{Value, json};

pub const ISS: &str = "https://issuer.example";
pub const AUD: &str = "https://api.example";
pub const JWKS_URI: &str = "https://issuer.example/.well-known/jwks.json";
pub const NOW: u64 = 1_800_000_000;

pub type Rng = rand_core::UnwrapErr<getrandom::SysRng>;

pub fn rng() -> Rng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(secs)
}

pub fn key(alg: Algorithm, kid: &str) -> SigningKey {
    SigningKey::generate(alg, &mut rng())
        .unwrap()
        .with_kid(kid)
        .unwrap()
}

pub fn jwks_of(keys: &[&SigningKey]) -> Jwks {
    Jwks::from_keys(keys.iter().map(|k| k.verifying_key())).unwrap()
}

/// Signs arbitrary header and claims JSON with `key`, whatever the header says.
pub fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let mut s = b64::encode(header.to_string().as_bytes());
    s.push('.');
    s.push_str(&b64::encode(claims.to_string().as_bytes()));
    let sig = key.sign(s.as_bytes(), &mut rng()).unwrap();
    s.push('.');
    s.push_str(&b64::encode(&sig));
    s
}

/// A token of the key's own algorithm, with `kid` and `typ`.
pub fn token(key: &SigningKey, typ: &str, claims: &Value) -> String {
    let header = json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": typ});
    forge(key, &header, claims)
}

pub fn base_claims(now: u64) -> Value {
    json!({
        "iss": ISS, "sub": "user-42", "aud": AUD,
        "iat": now, "exp": now + 120,
        "jti": format!("jti-{}", rand_u64()),
    })
}

pub fn rand_u64() -> u64 {
    use rand_core::Rng as _;
    rng().next_u64()
}

pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

pub fn access_claims(now: u64) -> Value {
    with(
        base_claims(now),
        json!({"client_id": "web-app", "scope": "read"}),
    )
}
pub fn host_claims(now: u64) -> Value {
    with(base_claims(now), json!({"host_tenant_id": "tenant-7"}))
}
pub fn service_claims(now: u64) -> Value {
    with(base_claims(now), json!({"scope": "orders:read"}))
}

pub fn profile(kind: TokenKind, algs: &[Algorithm]) -> Verifier {
    let mut b = Verifier::builder(kind).issuer(ISS).audience(AUD);
    for a in algs {
        b = b.algorithm(*a);
    }
    b.build().unwrap()
}

pub fn cache() -> JwksCache {
    JwksCache::new(JwksCacheConfig::new(JWKS_URI)).unwrap()
}

pub fn ok(body: &str, cache_control: Option<&str>) -> FetchResponse {
    FetchResponse {
        status: 200,
        body: body.as_bytes().to_vec(),
        cache_control: cache_control.map(str::to_owned),
        etag: None,
    }
}

/// Performs a fetch request against a fake origin serving `body`.
pub fn serve(cache: &mut JwksCache, now: UnixTime, req: &FetchRequest, body: &str) {
    assert_eq!(req.url, JWKS_URI);
    let report = cache.on_fetch_complete(now, req.id, ok(body, Some("max-age=600")));
    assert_eq!(
        report.outcome,
        handoff_verify::FetchOutcome::Replaced,
        "{report:?}"
    );
}
