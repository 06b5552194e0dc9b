//! The redirect back to the app: only to allow-listed origins, with the session token or
//! the error in the fragment.

use core::fmt;

use url::Url;

use crate::error::LoginError;

/// Largest redirect target accepted, in bytes.
pub const MAX_REDIRECT_BYTES: usize = 2048;
/// Most origins an allow-list holds.
pub const MAX_ORIGINS: usize = 64;

/// One allowed origin: scheme, host and port, compared exactly after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Raw-text checks before any parsing: what a URL parser would "repair" is refused here.
fn raw_checks(s: &str) -> Result<(), LoginError> {
    if s.is_empty() || s.len() > MAX_REDIRECT_BYTES {
        return Err(LoginError::Redirect("empty or longer than 2048 bytes"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(LoginError::Redirect("control or whitespace characters"));
    }
    if s.contains('\\') {
        return Err(LoginError::Redirect("backslash"));
    }
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(LoginError::Redirect(
            "not an absolute http(s) URL with an authority (relative, scheme-relative or another scheme)",
        ));
    }
    // Percent-encoded slashes, backslashes, dots, at-signs, percent signs and controls
    // are how filters get confused; a legitimate app return URL has no need for them.
    for enc in [
        "%2f", "%5c", "%2e", "%40", "%25", "%00", "%09", "%0a", "%0d",
    ] {
        if lower.contains(enc) {
            return Err(LoginError::Redirect("percent-encoded separator or control"));
        }
    }
    Ok(())
}

fn origin_of(u: &Url) -> Result<Origin, LoginError> {
    if !u.username().is_empty() || u.password().is_some() {
        return Err(LoginError::Redirect("userinfo (user@host) is not allowed"));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(LoginError::Redirect("no host")),
    };
    let port = u
        .port_or_known_default()
        .ok_or(LoginError::Redirect("no port"))?;
    Ok(Origin {
        scheme: u.scheme().to_owned(),
        host,
        port,
    })
}

/// The app origins the login may send a browser back to.
///
/// A candidate is accepted only when, after the raw checks (no control characters,
/// whitespace, backslashes, percent-encoded separators; an absolute `http(s)://` URL),
/// the WHATWG parse gives no userinfo, no fragment, and a scheme, host and port equal to
/// one entry's. Hosts are compared after the parser's normalization (lower case, IDNA),
/// so `APP.example.com` matches `app.example.com`, while `app.example.com.` (trailing
/// dot) matches only an entry that has the dot.
#[derive(Debug, Clone, Default)]
pub struct RedirectAllowList {
    origins: Vec<Origin>,
}

impl RedirectAllowList {
    /// An empty list (refuses everything).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an origin, given as `scheme://host[:port]` (a path of `/` at most).
    ///
    /// # Errors
    /// [`LoginError::Config`] for anything but a bare http(s) origin, or over
    /// [`MAX_ORIGINS`] entries.
    pub fn allow(mut self, origin: &str) -> Result<Self, LoginError> {
        raw_checks(origin)
            .map_err(|_| LoginError::Config("allow-list entry is not a bare http(s) origin"))?;
        let u = Url::parse(origin)
            .map_err(|_| LoginError::Config("allow-list entry does not parse"))?;
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            return Err(LoginError::Config(
                "allow-list entry must be an origin: scheme://host[:port] without path, query or fragment",
            ));
        }
        let o = origin_of(&u)
            .map_err(|_| LoginError::Config("allow-list entry has userinfo or no host"))?;
        if self.origins.len() >= MAX_ORIGINS {
            return Err(LoginError::Config("allow-list holds at most 64 origins"));
        }
        if !self.origins.contains(&o) {
            self.origins.push(o);
        }
        Ok(self)
    }

    /// Checks a redirect target.
    ///
    /// # Errors
    /// [`LoginError::Redirect`] saying which rule refused it.
    pub fn check(&self, candidate: &str) -> Result<AllowedRedirect, LoginError> {
        raw_checks(candidate)?;
        let u = Url::parse(candidate).map_err(|_| LoginError::Redirect("does not parse"))?;
        if u.fragment().is_some() {
            return Err(LoginError::Redirect(
                "carries a fragment (the login writes its own)",
            ));
        }
        if u.cannot_be_a_base() {
            return Err(LoginError::Redirect("not a hierarchical URL"));
        }
        let o = origin_of(&u)?;
        if !self.origins.contains(&o) {
            return Err(LoginError::Redirect("origin is not on the allow-list"));
        }
        Ok(AllowedRedirect { url: u })
    }
}

/// The error codes of an authorization error response (RFC 6749 section 4.1.2.1), as
/// sent back to the app in `oauth_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `access_denied`
    AccessDenied,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `invalid_scope`
    InvalidScope,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    /// The code as sent.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The code for a provider's `error` value; an unknown value becomes `server_error`.
    #[must_use]
    pub fn from_provider(error: &str) -> Self {
        match error {
            "invalid_request" => Self::InvalidRequest,
            "unauthorized_client" => Self::UnauthorizedClient,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            _ => Self::ServerError,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A redirect target that passed the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRedirect {
    url: Url,
}

/// The final redirect: `302` the browser to `location`.
#[must_use = "send the browser to the location"]
#[derive(Clone)]
pub struct AppRedirect {
    location: String,
}

impl AppRedirect {
    /// The `Location` header value (it may carry a session token: never log it).
    #[must_use]
    pub fn location(&self) -> &str {
        &self.location
    }
    /// Consumes into the `Location` value.
    #[must_use]
    pub fn into_location(self) -> String {
        self.location
    }
}

impl fmt::Debug for AppRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRedirect").finish_non_exhaustive()
    }
}

/// RFC 6749 section 4.1.2.1: `error_description` is limited to %x20-21 / %x23-5B /
/// %x5D-7E; anything else is dropped, and the text is clipped to 256 characters.
fn description(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
        .take(256)
        .collect()
}

impl AllowedRedirect {
    /// The checked URL.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `…#session_token=<token>`.
    pub fn with_session_token(&self, token: &str) -> AppRedirect {
        let frag: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("session_token", token)
            .finish();
        let mut u = self.url.clone();
        u.set_fragment(Some(&frag));
        AppRedirect { location: u.into() }
    }

    /// `…#oauth_error=<code>&oauth_error_description=<text>`.
    pub fn with_error(&self, code: OAuthErrorCode, text: Option<&str>) -> AppRedirect {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair("oauth_error", code.as_str());
        if let Some(t) = text {
            let d = description(t);
            if !d.is_empty() {
                ser.append_pair("oauth_error_description", &d);
            }
        }
        let frag = ser.finish();
        let mut u = self.url.clone();
        u.set_fragment(Some(&frag));
        AppRedirect { location: u.into() }
    }
}

/// Fuzzing entry point: checks arbitrary bytes as a redirect target against a fixed
/// allow-list, builds both final redirects from an accepted one (each must parse back to
/// the same origin), and builds an error redirect carrying the bytes as provider error
/// text. Never panics.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    static LIST: std::sync::LazyLock<Option<RedirectAllowList>> = std::sync::LazyLock::new(|| {
        [
            "https://app.example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
            "https://xn--bcher-kva.example",
        ]
        .into_iter()
        .try_fold(RedirectAllowList::new(), RedirectAllowList::allow)
        .ok()
    });
    let Some(list) = LIST.as_ref() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    if let Ok(ok) = list.check(&text) {
        let origin = origin_of(ok.url()).ok();
        for loc in [
            ok.with_session_token("tok.en-_~ &#"),
            ok.with_error(OAuthErrorCode::from_provider(&text), Some(&text)),
        ] {
            let back = Url::parse(loc.location()).ok();
            debug_assert!(back.is_some(), "an accepted redirect must stay a valid URL");
            debug_assert!(back.as_ref().and_then(|u| origin_of(u).ok()) == origin);
        }
    }
    let _ = RedirectAllowList::new().allow(&text);
    if let Ok(fixed) = list.check("https://app.example.com/done") {
        let loc = fixed.with_error(OAuthErrorCode::from_provider(&text), Some(&text));
        debug_assert!(
            !loc.location()
                .chars()
                .any(|c| c.is_control() || c.is_whitespace()),
            "the error text must not inject raw characters into the Location"
        );
    }
}
