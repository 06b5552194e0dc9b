//! RFC 3986 normalisation of `htu` and the request URI (sections 6.2.2 and 6.2.3).
//!
//! Both sides of the `htu` comparison go through [`normalize_htu`]: the query and the
//! fragment are dropped, the scheme and host are lower-cased, the default port of `http`
//! and `https` is dropped, percent-encodings get upper-case hex and unreserved characters
//! are decoded, dot segments are removed and an empty path becomes `/`. Anything that is
//! not an absolute hierarchical URI is refused with a precise reason.

/// Largest URI accepted, in bytes (before normalisation).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Why a URI could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UriError(pub(crate) &'static str);

/// A URI split into its normalised origin (`scheme://host[:port]`) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalizedUri {
    pub(crate) origin: String,
    pub(crate) path: String,
}

impl NormalizedUri {
    pub(crate) fn to_htu(&self) -> String {
        let mut s = String::with_capacity(self.origin.len() + self.path.len());
        s.push_str(&self.origin);
        s.push_str(&self.path);
        s
    }
}

/// Normalises an absolute URI for `htu` comparison, ignoring query and fragment.
///
/// # Errors
/// [`crate::Error::InvalidUri`]-style reason when the URI is not an absolute `scheme://`
/// URI with a host, is too long, carries user information, a bad port, a bad
/// percent-encoding or a character that must be percent-encoded.
pub(crate) fn normalize(uri: &str) -> Result<NormalizedUri, UriError> {
    if uri.len() > MAX_URI_BYTES {
        return Err(UriError("longer than 8192 bytes"));
    }
    // Query and fragment are ignored on both sides (RFC 9449 section 4.3, check 9).
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    let uri = &uri[..end];
    let colon = uri.find(':').ok_or(UriError(
        "no scheme: use an absolute URI such as https://host/path",
    ))?;
    let scheme = &uri[..colon];
    let mut sb = scheme.bytes();
    match sb.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(UriError("the scheme must start with a letter")),
    }
    if !sb.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) {
        return Err(UriError(
            "the scheme has a character outside letters, digits, + - .",
        ));
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = uri[colon + 1..].strip_prefix("//").ok_or(UriError(
        "no authority: the URI must be of the form scheme://host/path",
    ))?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.contains('@') {
        return Err(UriError("user information (user@host) is not allowed"));
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err(UriError("the host is empty"));
    }
    let host = if host.starts_with('[') {
        if !host.ends_with(']')
            || !host[1..host.len() - 1]
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        {
            return Err(UriError("malformed IPv6 literal host"));
        }
        host.to_ascii_lowercase()
    } else {
        let h = normalize_component(host, false)?;
        // RFC 3986 6.2.2.1: host is case-insensitive. Percent-encoded octets keep upper hex.
        lower_outside_escapes(&h)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(UriError("the port is not a number from 0 to 65535"));
            }
            let n: u32 = p
                .parse()
                .map_err(|_| UriError("the port is not a number from 0 to 65535"))?;
            if n > 65_535 {
                return Err(UriError("the port is not a number from 0 to 65535"));
            }
            let default = match scheme.as_str() {
                "https" | "wss" => Some(443),
                "http" | "ws" => Some(80),
                _ => None,
            };
            if default == Some(n) { None } else { Some(n) }
        }
    };
    let mut origin = String::with_capacity(scheme.len() + 3 + host.len() + 6);
    origin.push_str(&scheme);
    origin.push_str("://");
    origin.push_str(&host);
    if let Some(p) = port {
        origin.push(':');
        origin.push_str(&p.to_string());
    }
    let path = normalize_component(path, true)?;
    let mut path = remove_dot_segments(&path);
    if path.is_empty() {
        path.push('/');
    }
    Ok(NormalizedUri { origin, path })
}

/// The normalised `htu` form of a URI: origin and path, no query, no fragment.
pub(crate) fn normalize_htu(uri: &str) -> Result<String, UriError> {
    normalize(uri).map(|n| n.to_htu())
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UriError> {
    if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or(UriError("malformed IPv6 literal host"))?;
        let (host, after) = authority.split_at(close + 1);
        match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UriError("unexpected text after the IPv6 literal host")),
        }
    } else {
        match authority.rfind(':') {
            Some(i) => Ok((&authority[..i], Some(&authority[i + 1..]))),
            None => Ok((authority, None)),
        }
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-encoding normalisation (RFC 3986 6.2.2.1, 6.2.2.2): upper-case hex, unreserved
/// characters decoded; characters that are not allowed raw are refused.
fn normalize_component(s: &str, is_path: bool) -> Result<String, UriError> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(UriError("a '%' is not followed by two hex digits"));
            };
            let v = (h << 4) | l;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
            }
            i += 3;
            continue;
        }
        let allowed =
            is_unreserved(c) || is_sub_delim(c) || (is_path && matches!(c, b'/' | b':' | b'@'));
        if !allowed {
            return Err(UriError(
                "a character that must be percent-encoded appears raw (space, non-ASCII, quote or bracket)",
            ));
        }
        out.push(char::from(c));
        i += 1;
    }
    Ok(out)
}

fn lower_outside_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0u8;
    for c in s.chars() {
        if hex_left > 0 {
            out.push(c);
            hex_left -= 1;
        } else if c == '%' {
            out.push(c);
            hex_left = 2;
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// RFC 3986 section 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out: Vec<&str> = Vec::new();
    // Each pushed element is a segment including its leading '/'.
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix("../") {
            input = r;
        } else if let Some(r) = input.strip_prefix("./") {
            input = r;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            out.pop();
        } else if input == "/.." {
            input = "/";
            out.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push(&input[..end]);
            input = &input[end..];
        }
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_htu(s).unwrap()
    }

    #[test]
    fn rfc3986_examples() {
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/../x"), "/x");
        assert_eq!(
            n("HTTP://www.Example.com:80/%7Euser/a%2fb?q#f"),
            "http://www.example.com/~user/a%2Fb"
        );
        assert_eq!(n("https://Example.COM:443"), "https://example.com/");
        assert_eq!(n("https://example.com:8443/"), "https://example.com:8443/");
        assert_eq!(n("https://example.com:/x"), "https://example.com/x");
        assert_eq!(n("https://[::1]:443/x"), "https://[::1]/x");
        assert_eq!(n("https://ex%61mple.com/%2e%2E/b"), "https://example.com/b");
        assert_ne!(n("https://e.com/a"), n("https://e.com/a/"));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "/relative",
            "https:no-authority",
            "1http://x/",
            "https://user@x/",
            "https://x:99999/",
            "https://x:1a/",
            "https:///path",
            "https://x/a b",
            "https://x/%zz",
            "https://x/%4",
            "https://x/é",
            "https://[::1/",
            "https://[::1]x/",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(normalize(&format!("https://x/{}", "a".repeat(MAX_URI_BYTES))).is_err());
    }
}
