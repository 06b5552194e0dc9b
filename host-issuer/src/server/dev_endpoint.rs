//! `POST /token`: the development-only token endpoint.
//!
//! It authenticates nobody, so it guards against the ways a browser could reach it:
//!
//! - the server binds a loopback address only ([`check_dev_bind`]);
//! - a request whose `Host` is not a loopback name or address is refused (`421`): a DNS
//!   rebinding page reaches the loopback port under its own host name;
//! - a request with an `Origin` that is not a loopback origin (including `null`) is
//!   refused (`403`): any cross-site `fetch` or form post carries one;
//! - the body is JSON only (`Content-Type: application/json`, `415` otherwise): a form or
//!   `text/plain` post needs no CORS preflight, a JSON one does, and this endpoint answers
//!   no preflight. A request without a body (the `sub` in the query string) must not carry
//!   another `Content-Type` either.
//!
//! [`check_not_production`] refuses to start it when the environment says production.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand_core::UnwrapErr;
use serde_json::{Value, json};

use super::{SharedKeyring, TOKEN_PATH, json_error};
use crate::dev::{DEV_AUDIENCE, DEV_ISSUER, DEV_TOKEN_TTL_SECS, DEV_TOKEN_TYP, DevClaims};
use crate::error::clip;
use crate::{Error, HostClaims};

/// Largest `POST /token` body read, in bytes.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 8 * 1024;

/// Environment variables that, set to `production` (any case), make the dev token
/// endpoint and the dev issuer refuse to start: `HANDOFF_ENV` (this crate's own) and
/// `NODE_ENV` (what a Node host app next to it sets).
pub const PRODUCTION_ENV_VARS: [&str; 2] = ["HANDOFF_ENV", "NODE_ENV"];

/// What `POST /token` mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DevTokenFormat {
    /// A host token (`typ: host+jwt`) from the keyring's active key, as `mint` does:
    /// `sub`, optional `aud`, `iss`, `ttl`, `tenant`.
    #[default]
    HostJwt,
    /// The simulator story's dev token ([`crate::dev`]): `typ: JWT`, `exp` 15 minutes,
    /// `iss` default `https://issuer.local`; `sub`, optional `aud`.
    Simulator,
}

/// Settings of the dev token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevTokenConfig {
    /// `iss` when the request names none; `None` uses the server's base URL
    /// ([`DevTokenFormat::HostJwt`]) or `https://issuer.local` (simulator).
    pub default_iss: Option<String>,
    /// `aud` when the request names none (default `dev-service`).
    pub default_aud: String,
    /// Allows a non-loopback bind address. Off by default: anyone who can reach the
    /// endpoint can mint tokens. The `Host` and `Origin` checks stay on regardless.
    pub allow_non_loopback: bool,
    /// What the endpoint mints.
    pub format: DevTokenFormat,
}

impl Default for DevTokenConfig {
    fn default() -> Self {
        Self {
            default_iss: None,
            default_aud: DEV_AUDIENCE.into(),
            allow_non_loopback: false,
            format: DevTokenFormat::HostJwt,
        }
    }
}

impl DevTokenConfig {
    /// The simulator story's defaults: `iss` `https://issuer.local`, `aud` `dev-service`,
    /// simulator tokens.
    #[must_use]
    pub fn simulator() -> Self {
        Self {
            default_iss: Some(DEV_ISSUER.into()),
            format: DevTokenFormat::Simulator,
            ..Self::default()
        }
    }
}

/// Checks the bind address against the dev endpoint's loopback guard.
///
/// # Errors
/// [`Error::Server`] for a non-loopback address without `allow_non_loopback`.
pub fn check_dev_bind(bind: SocketAddr, dev: &DevTokenConfig) -> Result<(), Error> {
    if !bind.ip().is_loopback() && !dev.allow_non_loopback {
        return Err(Error::Server(format!(
            "refusing to serve the dev token endpoint on {}: it mints tokens for anyone who can reach it; bind to 127.0.0.1 or ::1, or pass --allow-non-loopback-dev if you really mean it",
            bind.ip()
        )));
    }
    Ok(())
}

/// Refuses when the environment says production: one of [`PRODUCTION_ENV_VARS`] is
/// `production`. `lookup` reads a variable (`|k| std::env::var(k).ok()`).
///
/// # Errors
/// [`Error::Server`] naming the variable.
pub fn check_not_production(lookup: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
    for var in PRODUCTION_ENV_VARS {
        if let Some(v) = lookup(var)
            && v.trim().eq_ignore_ascii_case("production")
        {
            return Err(Error::Server(format!(
                "refusing to start a dev token issuer: {var}=production says this is production, where a token endpoint without authentication must never run; unset {var} (or set it to development) on a developer machine"
            )));
        }
    }
    Ok(())
}

/// Splits `host[:port]` / `[v6]:port` into the host part.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Whether a `Host` header value names this machine: `localhost`, a `*.localhost` name
/// (RFC 6761: always loopback), or a loopback address (`127.0.0.0/8`, `::1`), with an
/// optional port.
#[must_use]
pub fn is_loopback_host(value: &str) -> bool {
    let host = host_part(value.trim()).trim_end_matches('.');
    if host.is_empty() {
        return false;
    }
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Origin` header value is a loopback origin (`http(s)://` + a loopback
/// host, [`is_loopback_host`]). `null` is not.
#[must_use]
pub fn is_loopback_origin(value: &str) -> bool {
    let v = value.trim();
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(authority) if !authority.contains(['/', '?', '#', '@']) => is_loopback_host(authority),
        _ => false,
    }
}

#[derive(Clone)]
struct DevState {
    keys: SharedKeyring,
    iss: String,
    aud: String,
    format: DevTokenFormat,
}

/// `POST /token` over `keys` (see the [module docs](self) for the rules it enforces).
/// `base_url` is the default `iss` of host tokens when `dev.default_iss` is `None`.
/// Bodies over [`MAX_TOKEN_REQUEST_BYTES`] are refused with `413`.
pub fn dev_token_router(keys: SharedKeyring, dev: &DevTokenConfig, base_url: &str) -> Router {
    let iss = dev.default_iss.clone().unwrap_or_else(|| match dev.format {
        DevTokenFormat::Simulator => DEV_ISSUER.to_owned(),
        _ => base_url.to_owned(),
    });
    Router::new()
        .route(TOKEN_PATH, post(token_handler))
        .layer(DefaultBodyLimit::max(MAX_TOKEN_REQUEST_BYTES))
        .with_state(DevState {
            keys,
            iss,
            aud: dev.default_aud.clone(),
            format: dev.format,
        })
}

fn refuse(status: StatusCode, description: &str) -> Response {
    json_error(status, "invalid_request", description)
}

/// The request checks, before the body is looked at.
fn check_request(headers: &HeaderMap) -> Result<bool, (StatusCode, String)> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(h) if is_loopback_host(h) => {}
        Some(h) => {
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host {:?} is not a loopback name: the dev token endpoint answers only requests addressed to localhost, 127.0.0.1 or [::1] (DNS rebinding protection)",
                    clip(h)
                ),
            ));
        }
        None => {
            return Err((
                StatusCode::BAD_REQUEST,
                "the Host header is missing; send Host: localhost".into(),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        if !is_loopback_origin(o) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Origin {:?} is not a loopback origin: web pages cannot mint dev tokens; call the endpoint from a local tool or a page served from localhost",
                    clip(o)
                ),
            ));
        }
    }
    match headers.get(header::CONTENT_TYPE) {
        None => Ok(false),
        Some(ct) => {
            let media = ct
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media == "application/json" {
                Ok(true)
            } else {
                Err((
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Content-Type {:?} is refused: send a JSON body with Content-Type: application/json (form and text bodies are refused, they need no CORS preflight)",
                        clip(&media)
                    ),
                ))
            }
        }
    }
}

async fn token_handler(
    State(st): State<DevState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let is_json = match check_request(&headers) {
        Ok(j) => j,
        Err((status, why)) => return refuse(status, &why),
    };
    if !is_json && !body.is_empty() {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a body without Content-Type is refused: send JSON with Content-Type: application/json",
        );
    }
    let mut fields = TokenFields::default();
    if is_json && let Err(msg) = parse_json_fields(&body, &mut fields) {
        return refuse(StatusCode::BAD_REQUEST, &msg);
    }
    if let Some(q) = query
        && let Err(msg) = parse_query_fields(&q, &mut fields)
    {
        return refuse(StatusCode::BAD_REQUEST, &msg);
    }
    let Some(sub) = fields.sub else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "sub is required: POST /token?sub=alice, or a JSON body {\"sub\": \"alice\"}",
        );
    };
    let now = match st.keys.now() {
        Ok(n) => n,
        Err(e) => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            );
        }
    };
    let ring = st.keys.load();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let iss = fields.iss.unwrap_or_else(|| st.iss.clone());
    let aud = fields.aud.unwrap_or_else(|| st.aud.clone());
    let (minted, typ, ttl) = match st.format {
        DevTokenFormat::Simulator => {
            if fields.ttl.is_some() || fields.tenant.is_some() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "the dev issuer's tokens always live 15 minutes and carry no tenant: drop ttl and tenant",
                );
            }
            let claims = DevClaims {
                iss: iss.clone(),
                aud: aud.clone(),
                sub,
            };
            (
                crate::dev::mint_dev_jwt(ring.active(), &claims, now, &mut rng),
                DEV_TOKEN_TYP,
                DEV_TOKEN_TTL_SECS,
            )
        }
        _ => {
            let mut claims = HostClaims::new(iss.clone(), aud.clone(), sub);
            if let Some(t) = fields.tenant {
                claims = claims.tenant(t);
            }
            if let Some(ttl) = fields.ttl {
                claims = claims.ttl(ttl);
            }
            let ttl = claims.ttl;
            (
                ring.mint(&claims, now, &mut rng),
                crate::HOST_TOKEN_TYP,
                ttl,
            )
        }
    };
    match minted {
        Ok(t) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::Json(json!({
                "token": t.token(),
                "token_type": typ,
                "expires_in": ttl,
                "kid": t.kid(),
                "iss": iss,
                "aud": aud,
            })),
        )
            .into_response(),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[derive(Default)]
struct TokenFields {
    sub: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    tenant: Option<String>,
    ttl: Option<u64>,
}

fn set_field(f: &mut TokenFields, name: &str, value: String) -> Result<(), String> {
    let slot = match name {
        "sub" => &mut f.sub,
        "aud" => &mut f.aud,
        "iss" => &mut f.iss,
        "tenant" | "host_tenant_id" => &mut f.tenant,
        "ttl" => {
            let ttl = value
                .parse::<u64>()
                .map_err(|_| format!("ttl {:?} is not a whole number of seconds", clip(&value)))?;
            if f.ttl.replace(ttl).is_some() {
                return Err("ttl is given twice".into());
            }
            return Ok(());
        }
        // Unknown fields are ignored, as OAuth token endpoints do.
        _ => return Ok(()),
    };
    if slot.is_some() {
        return Err(format!(
            "{name} is given twice (query string and body, or twice in one); give it once"
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_json_fields(body: &[u8], f: &mut TokenFields) -> Result<(), String> {
    let v: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON object: {}", clip(&e.to_string())))?;
    for (k, v) in v {
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) if k == "ttl" => n.to_string(),
            _ => return Err(format!("{} must be a string", clip(&k))),
        };
        set_field(f, &k, s)?;
    }
    Ok(())
}

fn parse_query_fields(query: &str, f: &mut TokenFields) -> Result<(), String> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        set_field(f, &percent_decode(k)?, percent_decode(v)?)?;
    }
    Ok(())
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| core::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "malformed percent-encoding in the query string".to_owned())?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query string decodes to invalid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let mut f = TokenFields::default();
        parse_query_fields("sub=user%2042&aud=a+b&ttl=60&x=1", &mut f).unwrap();
        assert_eq!(f.sub.as_deref(), Some("user 42"));
        assert_eq!(f.aud.as_deref(), Some("a b"));
        assert_eq!(f.ttl, Some(60));
        for bad in ["sub=%zz", "sub=%4", "sub=a&sub=b", "ttl=-1", "sub=%ff"] {
            assert!(
                parse_query_fields(bad, &mut TokenFields::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_decoding() {
        let mut f = TokenFields::default();
        parse_json_fields(br#"{"sub":"u","ttl":30,"iss":"i"}"#, &mut f).unwrap();
        assert_eq!(f.sub.as_deref(), Some("u"));
        assert_eq!(f.ttl, Some(30));
        for bad in [&br#"{"sub":1}"#[..], b"[]", br#"{"ttl":1.5}"#] {
            assert!(parse_json_fields(bad, &mut TokenFields::default()).is_err());
        }
        // The same field in the query string and the body is refused.
        let mut f = TokenFields::default();
        parse_json_fields(br#"{"sub":"a"}"#, &mut f).unwrap();
        assert!(parse_query_fields("sub=b", &mut f).is_err());
    }

    #[test]
    fn loopback_guard() {
        let dev = DevTokenConfig::default();
        assert!(check_dev_bind("127.0.0.1:0".parse().unwrap(), &dev).is_ok());
        assert!(check_dev_bind("[::1]:0".parse().unwrap(), &dev).is_ok());
        let e = check_dev_bind("0.0.0.0:3001".parse().unwrap(), &dev).unwrap_err();
        assert!(e.to_string().contains("--allow-non-loopback-dev"), "{e}");
        assert!(check_dev_bind("192.0.2.1:3001".parse().unwrap(), &dev).is_err());
        let allowed = DevTokenConfig {
            allow_non_loopback: true,
            ..DevTokenConfig::default()
        };
        assert!(check_dev_bind("0.0.0.0:3001".parse().unwrap(), &allowed).is_ok());
    }

    #[test]
    fn loopback_hosts_and_origins() {
        for ok in [
            "localhost",
            "localhost:3001",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1",
            "127.1.2.3:9",
            "[::1]:3001",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:3001",
            "[::2]:1",
            "0.0.0.0",
            ":3001",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert!(is_loopback_origin("http://localhost:3000"));
        assert!(is_loopback_origin("https://127.0.0.1"));
        for bad in [
            "null",
            "http://evil.example",
            "file://",
            "http://localhost@evil.example",
            "http://localhost/path",
            "ftp://localhost",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn production_refusal() {
        assert!(check_not_production(|_| None).is_ok());
        assert!(check_not_production(|_| Some("development".into())).is_ok());
        for var in PRODUCTION_ENV_VARS {
            let e = check_not_production(|k| (k == var).then(|| " Production".into())).unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
        }
    }
}
