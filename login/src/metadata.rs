//! Provider metadata: OpenID Connect Discovery 1.0 / RFC 8414, parsed from bytes the
//! caller fetched.

use serde::Deserialize;
use url::Url;

use crate::error::{LoginError, clip};

/// Largest metadata document accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Raw {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    response_types_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The provider metadata this crate uses, checked.
///
/// Endpoints must be `https`, except on a loopback host (`127.0.0.1`, `[::1]`,
/// `localhost`), which is accepted over `http` for local development and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    token_endpoint_auth_methods: Option<Vec<String>>,
    id_token_algs: Option<Vec<String>>,
    iss_parameter_supported: bool,
}

/// Whether `url` may carry credentials or codes: `https`, or `http` to a loopback host.
pub(crate) fn transport_ok(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

fn endpoint(what: &'static str, s: &str) -> Result<Url, LoginError> {
    let url = Url::parse(s).map_err(|e| LoginError::Url {
        what,
        reason: e.to_string(),
    })?;
    if !transport_ok(&url) {
        return Err(LoginError::Url {
            what,
            reason: "must be https (http only on a loopback host)".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LoginError::Url {
            what,
            reason: "must not carry userinfo".into(),
        });
    }
    if url.fragment().is_some() {
        return Err(LoginError::Url {
            what,
            reason: "must not carry a fragment".into(),
        });
    }
    Ok(url)
}

impl ProviderMetadata {
    /// Parses a discovery document fetched from `expected_issuer`'s well-known URL.
    ///
    /// The document's `issuer` must equal `expected_issuer` exactly (OpenID Connect
    /// Discovery section 4.3, RFC 8414 section 3.3); the provider must support the `code`
    /// response type and, when it lists PKCE methods, `S256`.
    ///
    /// # Errors
    /// [`LoginError::Metadata`] or [`LoginError::Url`] naming the offending member.
    pub fn parse(bytes: &[u8], expected_issuer: &str) -> Result<Self, LoginError> {
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(LoginError::Metadata(format!(
                "document is {} bytes, over the {MAX_METADATA_BYTES}-byte cap",
                bytes.len()
            )));
        }
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| LoginError::Metadata(clip(&e.to_string())))?;
        if raw.issuer != expected_issuer {
            return Err(LoginError::Metadata(format!(
                "issuer is {:?}, not the expected {:?} (wrong issuer or a mix-up)",
                clip(&raw.issuer),
                clip(expected_issuer)
            )));
        }
        let issuer_url = endpoint("issuer", &raw.issuer)?;
        if issuer_url.query().is_some() {
            return Err(LoginError::Metadata("issuer must not carry a query".into()));
        }
        if !raw.response_types_supported.iter().any(|t| t == "code") {
            return Err(LoginError::Metadata(
                "the provider does not support the authorization code flow (response_types_supported lacks \"code\")".into(),
            ));
        }
        if let Some(m) = &raw.code_challenge_methods_supported
            && !m.iter().any(|m| m == "S256")
        {
            return Err(LoginError::Metadata(
                "the provider does not support PKCE S256 (code_challenge_methods_supported)".into(),
            ));
        }
        Ok(Self {
            authorization_endpoint: endpoint(
                "authorization_endpoint",
                &raw.authorization_endpoint,
            )?,
            token_endpoint: endpoint("token_endpoint", &raw.token_endpoint)?,
            jwks_uri: endpoint("jwks_uri", &raw.jwks_uri)?,
            issuer: raw.issuer,
            token_endpoint_auth_methods: raw.token_endpoint_auth_methods_supported,
            id_token_algs: raw.id_token_signing_alg_values_supported,
            iss_parameter_supported: raw.authorization_response_iss_parameter_supported,
        })
    }

    /// The discovery URL of an issuer (`<issuer>/.well-known/openid-configuration`).
    ///
    /// # Errors
    /// [`LoginError::Url`] when the issuer is not an https (or loopback http) URL.
    pub fn discovery_url(issuer: &str) -> Result<String, LoginError> {
        endpoint("issuer", issuer)?;
        Ok(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The authorization endpoint.
    #[must_use]
    pub fn authorization_endpoint(&self) -> &Url {
        &self.authorization_endpoint
    }
    /// The token endpoint.
    #[must_use]
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }
    /// The JWKS URI: give it to a `handoff_verify::JwksCacheConfig`.
    #[must_use]
    pub fn jwks_uri(&self) -> &Url {
        &self.jwks_uri
    }
    /// Whether the provider sends `iss` in authorization responses (RFC 9207).
    #[must_use]
    pub fn iss_parameter_supported(&self) -> bool {
        self.iss_parameter_supported
    }
    /// Whether the provider lists this token-endpoint authentication method (RFC 8414
    /// default when absent: `client_secret_basic` only).
    #[must_use]
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods {
            Some(m) => m.iter().any(|x| x == method),
            None => method == "client_secret_basic",
        }
    }
    /// The ID-token signing algorithms the provider lists, if it lists them.
    #[must_use]
    pub fn id_token_algs(&self) -> Option<&[String]> {
        self.id_token_algs.as_deref()
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a discovery document (against a fixed
/// https issuer and a loopback one) and as an issuer for [`ProviderMetadata::discovery_url`].
/// Never panics.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    for issuer in ["https://issuer.example", "http://127.0.0.1:8080"] {
        if let Ok(m) = ProviderMetadata::parse(data, issuer) {
            debug_assert_eq!(m.issuer(), issuer);
            debug_assert!(transport_ok(m.token_endpoint()) && transport_ok(m.jwks_uri()));
            let _ = m.supports_auth_method("client_secret_basic");
            let _ = m.id_token_algs();
            let _ = m.authorization_endpoint();
        }
    }
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = ProviderMetadata::discovery_url(text);
    }
}
